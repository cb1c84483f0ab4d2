"""Value-vector vocabulary projection, dominant sub-updates and LM-Debugger interventions on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_bridge

from interp import vocab
from interp.errors import InterpError, ShapeError, TaskError, UnknownNameError
from interp.sites import hook_name

STRINGS = [f"t{i}" for i in range(50)]


@pytest.fixture(scope="module")
def model():
    return tiny_bridge(n_ctx=24)


def hand_made(d_model=32, d_vocab=50):
    """A tiny bridge whose unembedding is the identity on tokens 0..d_model-1 (other tokens near zero).

    Then ``v @ W_U`` reads off ``v``'s coordinates, so a value vector ``e_a + 2 e_b`` promotes b, then a.
    """
    m = tiny_bridge(n_ctx=24)
    with torch.no_grad():
        w_u = torch.zeros(d_model, d_vocab)
        w_u[:, :d_model] = torch.eye(d_model)
        w_u[:, d_model:] = 0.01 * torch.randn(d_model, d_vocab - d_model, generator=torch.Generator().manual_seed(1))
        m.W_U[:] = w_u
    return m


def test_scan_matches_brute_force_projection(model):
    res = vocab.scan_values(model, k=7, precision="exact", token_strings=STRINGS)
    assert res.top_ids.shape == (3, 64, 7) and res.bottom_ids.shape == (3, 64, 7)
    w_u = model.W_U.detach()
    for layer in range(3):
        full = model.blocks[layer].mlp.W_out.detach() @ w_u  # [d_mlp d_vocab]
        vals, ids = full.topk(7, dim=-1)
        np.testing.assert_array_equal(res.top_ids[layer], ids.numpy())
        torch.testing.assert_close(torch.from_numpy(res.top_logits[layer]), vals, rtol=1e-5, atol=1e-6)
        bvals, bids = (-full).topk(7, dim=-1)
        np.testing.assert_array_equal(res.bottom_ids[layer], bids.numpy())
        torch.testing.assert_close(torch.from_numpy(res.bottom_logits[layer]), -bvals, rtol=1e-5, atol=1e-6)


def test_bf16_candidates_rescored_exactly(model):
    exact = vocab.scan_values(model, k=5, precision="exact", chunk_size=17)
    fast = vocab.scan_values(model, k=5, precision="bf16", chunk_size=17)
    np.testing.assert_array_equal(exact.top_ids, fast.top_ids)
    np.testing.assert_allclose(exact.top_logits, fast.top_logits, rtol=1e-5, atol=1e-6)
    assert fast.meta["precision"].startswith("bf16")


def test_hand_made_value_vector_promotes_and_suppresses_its_tokens():
    m = hand_made()
    with torch.no_grad():
        w = m.blocks[2].mlp.W_out
        w[5] = 0.0
        w[5, 3], w[5, 9], w[5, 11] = 1.0, 2.0, -3.0
    top = vocab.top_tokens(m, 2, 5, k=2, token_strings=STRINGS)
    assert [t.token for t in top] == ["t9", "t3"]
    assert [round(t.logit, 4) for t in top] == [2.0, 1.0]
    bottom = vocab.top_tokens(m, 2, 5, k=1, bottom=True, token_strings=STRINGS)
    assert bottom[0].token == "t11" and bottom[0].logit == pytest.approx(-3.0)
    scan = vocab.scan_values(m, layers=[2], k=2, token_strings=STRINGS)
    assert scan.tokens(2, 5) == ["t9", "t3"] and scan.tokens(2, 5, bottom=True)[0] == "t11"


def test_final_norm_projection_is_the_model_final_norm(model):
    raw = vocab.project_values(model, 1, [0, 1, 2])
    normed = vocab.project_values(model, 1, [0, 1, 2], norm="final_norm")
    v = model.blocks[1].mlp.W_out.detach()[:3]
    expect = model.ln_final(v).detach() @ model.W_U.detach()
    torch.testing.assert_close(normed, expect)
    assert not torch.allclose(raw, normed)


def test_save_load_roundtrip(model, tmp_path):
    res = vocab.scan_values(model, k=4, token_strings=STRINGS)
    path = res.save(tmp_path / "proj.safetensors")
    back = vocab.ValueProjection.load(path)
    np.testing.assert_array_equal(back.top_ids, res.top_ids)
    np.testing.assert_array_equal(back.bottom_logits, res.bottom_logits)
    assert back.tokens(0, 1) == res.tokens(0, 1) and back.norm == "raw" and back.k == 4
    assert len(back.to_frame(k=2)) == 3 * 64
    assert back.plot(0, [1, 2], k=3) is not None


def test_sub_updates_sum_to_mlp_output(model):
    toks = torch.tensor([[1, 2, 3, 4, 5]])
    _, cache = model.run_with_cache(toks, names_filter=lambda n: n in (hook_name("neuron", 1), "blocks.1.hook_mlp_out"))
    m, out = cache[hook_name("neuron", 1)][0], cache["blocks.1.hook_mlp_out"][0]
    b_out = getattr(model.blocks[1].mlp, "b_out", None)
    recon = m @ model.blocks[1].mlp.W_out + (0 if b_out is None else b_out)
    torch.testing.assert_close(recon, out, rtol=1e-5, atol=1e-5)


def test_dominant_subupdates_rank_by_scaled_coefficient(model):
    toks = torch.tensor([1, 2, 3, 4, 5])
    res = vocab.dominant_subupdates(model, toks, pos=3, k=6)
    _, cache = model.run_with_cache(toks[None], names_filter=lambda n: n.endswith("mlp.hook_post"))
    norms = torch.stack([model.blocks[x].mlp.W_out.detach().norm(dim=-1) for x in range(3)])
    score = torch.stack([cache[hook_name("neuron", x)][0, 3] for x in range(3)]).abs() * norms
    top = score.reshape(-1).topk(6)
    assert [(r.layer, r.neuron) for r in res.rows] == [(int(f) // 64, int(f) % 64) for f in top.indices]
    assert [r.score for r in res.rows] == pytest.approx(top.values.tolist(), rel=1e-5)
    per = vocab.dominant_subupdates(model, toks, k=2, per_layer=True)
    assert [r.layer for r in per.rows] == [0, 0, 1, 1, 2, 2]
    assert per.neurons().keys() == {0, 1, 2} and len(per.to_frame()) == 6


def test_intervene_promote_suppress_and_restore(model):
    toks = torch.tensor([[3, 1, 4, 1, 5]])
    base = model(toks).detach()
    with vocab.intervene(model, {1: [7]}, mode="promote", reference=toks) as coefs:
        _, cache = model.run_with_cache(toks, names_filter=lambda n: n == hook_name("neuron", 1))
        act = cache[hook_name("neuron", 1)][0]
        norms = model.blocks[1].mlp.W_out.detach().norm(dim=-1)
        assert torch.allclose(act[:, 7], torch.full((5,), coefs[1][7]))
        scaled = act[-1].abs() * norms
        assert int(scaled.argmax()) == 7  # now the layer's dominant sub-update
    torch.testing.assert_close(model(toks).detach(), base)  # hooks removed
    with vocab.intervene(model, [(0, 2), (2, 9)], mode="suppress"):
        _, cache = model.run_with_cache(toks, names_filter=lambda n: n.endswith("mlp.hook_post"))
        assert cache[hook_name("neuron", 0)][0, :, 2].abs().max() == 0
        assert cache[hook_name("neuron", 2)][0, :, 9].abs().max() == 0
    with pytest.raises(RuntimeError):
        with vocab.intervene(model, {1: [7]}, mode="set", value=3.0):
            raise RuntimeError("boom")
    torch.testing.assert_close(model(toks).detach(), base)  # restored after an error too


def test_compare_generation_before_after(model):
    res = vocab.compare_generation(model, [3, 1, 4], {2: [1, 2, 3]}, mode="set", value=50.0, max_new_tokens=4,
                                   token_strings=STRINGS)
    assert res.before.count("t") == 4 and res.after.count("t") == 4
    assert res.top_before != res.top_after
    assert res.to_dict()["mode"] == "set"


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda m: vocab.scan_values(m, k=0), vocab.VocabError, "k must be"),
        (lambda m: vocab.scan_values(m, norm="layer"), UnknownNameError, "raw"),
        (lambda m: vocab.scan_values(m, precision="fp8"), UnknownNameError, "exact"),
        (lambda m: vocab.scan_values(m, layers=[5]), ShapeError, "layers 0..2"),
        (lambda m: vocab.top_tokens(m, 0, 64), ShapeError, "d_mlp is 64"),
        (lambda m: vocab.top_tokens(m, 0, 1), TaskError, "no tokenizer"),
        (lambda m: vocab.dominant_subupdates(m, [1, 2], pos=5), ShapeError, "out of range"),
        (lambda m: vocab.dominant_subupdates(m, [[1, 2], [3, 4]]), ShapeError, "one prompt"),
        (lambda m: vocab.dominant_subupdates(m, [1, 99]), ShapeError, "token ids"),
        (lambda m: vocab.dominant_subupdates(m, "text"), TaskError, "tokenizer"),
        (lambda m: vocab.intervene(m, {}, mode="suppress").__enter__(), vocab.VocabError, "no neurons"),
        (lambda m: vocab.intervene(m, {0: [1]}, mode="boost").__enter__(), UnknownNameError, "promote"),
        (lambda m: vocab.intervene(m, {0: [1]}, mode="promote").__enter__(), vocab.VocabError, "reference"),
        (lambda m: vocab.intervene(m, {0: [1]}, mode="set").__enter__(), vocab.VocabError, "value"),
        (lambda m: vocab.intervene(m, ["x"], mode="suppress").__enter__(), vocab.VocabError, "pairs"),
        (lambda m: vocab.vocab_strings(m, ["a"]), ShapeError, "d_vocab is 50"),
    ],
)
def test_bad_input(model, call, err, match):
    with pytest.raises(err, match=match):
        call(model)
    assert issubclass(err, InterpError)
