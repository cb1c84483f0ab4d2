"""Saliency: the linear-model oracle (IG = exact per-token contribution), completeness, gradient vs finite
differences, aggregation per word and segment, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.explain import saliency
from interp.explain.saliency import SaliencyResult
from tests.conftest import tiny_bridge


def linear_bridge():
    """Attention-only, no normalisation, Q = K = 0: uniform causal attention, so the last-position logits are an
    affine function of the token embeddings (plus constant positional terms)."""
    b = tiny_bridge(normalization_type=None, attn_only=True, n_layers=2, d_mlp=None, seed=1)
    with torch.no_grad():
        for name, p in b.named_parameters():
            if ".q." in name or ".k." in name:
                p.zero_()
            elif "tok_embed" in name:
                p.mul_(30.0)  # contributions of order 1, not 1e-3
    return b


def _score_with(model, ids, emb, r):
    def put(act, hook):
        return emb

    with torch.inference_mode():
        return float(model.run_with_hooks(ids, fwd_hooks=[("hook_embed", put)])[0, -1, r])


@pytest.fixture(scope="module")
def lin():
    return linear_bridge()


def test_linear_model_ig_equals_exact_contribution(lin):
    ids = [3, 17, 5, 41, 9, 22]
    r = 7
    res = saliency(lin, ids, target=r, method=["integrated_gradients", "grad_x_input"], steps=3,
                   baseline="zero")
    it = res[0]
    # oracle: remove one token's embedding at a time (replace by the zero baseline) - exact for an affine model
    t = torch.tensor([ids])
    captured = {}

    def grab(act, hook):
        captured["e"] = act.clone()

    with torch.inference_mode():
        lin.run_with_hooks(t, fwd_hooks=[("hook_embed", grab)])
    e = captured["e"]
    full = _score_with(lin, t, e, r)
    exact = []
    for p in range(len(ids)):
        e2 = e.clone()
        e2[0, p] = 0
        exact.append(full - _score_with(lin, t, e2, r))
    np.testing.assert_allclose(it.values("integrated_gradients"), exact, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(it.values("grad_x_input"), exact, atol=1e-4, rtol=1e-4)
    assert it.completeness_error < 1e-4
    assert max(abs(v) for v in exact) > 0.5  # the oracle is not trivially zero
    # the model is really linear: the all-zero run equals full minus every contribution
    assert it.score_baseline == pytest.approx(full - sum(exact), abs=1e-4)


def test_completeness_error_shrinks_with_steps():
    m = tiny_bridge()
    ids = [1, 4, 9, 16, 25, 36, 2]
    errs = [saliency(m, ids, target=3, steps=s, integration="riemann_trapezoid")[0].completeness_error
            for s in (2, 64)]
    assert errs[1] < errs[0] / 20
    gl = saliency(m, ids, target=3, steps=32)[0]
    assert gl.completeness_error < 1e-3 * max(1.0, abs(gl.score_x - gl.score_baseline))


def test_gradient_matches_finite_differences():
    m = tiny_bridge()
    ids = [5, 6, 7, 8]
    it = saliency(m, ids, target=(3, 11), method=["gradient", "grad_x_input"], keep_bos=False)[0]
    assert it.target == (3, 11)
    t = torch.tensor([ids])
    e = {}
    with torch.inference_mode():
        m.run_with_hooks(t, fwd_hooks=[("hook_embed", lambda a, hook: e.setdefault("e", a.clone()))])
    x = e["e"].double()

    def ld(emb):
        def put(act, hook):
            return emb.float()
        with torch.inference_mode():
            out = m.run_with_hooks(t, fwd_hooks=[("hook_embed", put)])[0, -1].double()
        return float(out[3] - out[11])

    # directional derivative along the input at position 2 equals grad . x_2 (grad x input at that token)
    h = 1e-2
    xp, xm = x.clone(), x.clone()
    xp[0, 2] *= 1 + h
    xm[0, 2] *= 1 - h
    fd = (ld(xp) - ld(xm)) / (2 * h)
    assert it.values("grad_x_input")[2] == pytest.approx(fd, rel=2e-2, abs=1e-3)
    assert (it.values("gradient") >= 0).all()


def test_attention_is_a_distribution(lin):
    it = saliency(lin, [1, 2, 3, 4, 5], target=0, method="attention")[0]
    v = it.values("attention")
    assert v.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(v, np.full(5, 0.2), atol=1e-5)  # Q = K = 0: uniform over the 5 positions


def test_word_and_segment_aggregation(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<s>", "a", "b", "c", "ab", "x", "y", "Ġ", "Ġa", "Ġb", "Ġx", ":", "Ċ"])}
    tk = Tokenizer(models.WordPiece(vocab={**vocab, "[UNK]": len(vocab)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", unk_token="[UNK]")
    fast.save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    m = tiny_bridge(d_vocab=len(tok))
    m.tokenizer = tok
    res = saliency(m, [["ab a ", "b x"]], target=2, method=["grad_x_input", "integrated_gradients"], steps=8,
                   segment_names=["demo", "query"])
    it = res[0]
    assert it.encoded.words == ("ab", "a", "b", "x")
    v = it.values("integrated_gradients")
    segs = it.by_segment("integrated_gradients")
    assert set(segs) == {"demo", "query"}
    assert segs["demo"] + segs["query"] == pytest.approx(v[1:].sum(), abs=1e-9)  # BOS belongs to no segment
    words = it.by_word("integrated_gradients")
    assert sum(s for _, s in words) == pytest.approx(v[1:].sum(), abs=1e-9)
    p = res.save(tmp_path / "s.json")
    back = SaliencyResult.load(p)
    assert back[0].by_segment("integrated_gradients") == pytest.approx(segs)
    assert "SaliencyResult(1 prompts" in repr(back)
    assert back.plot() is not None


def test_cot_step_saliency_equals_single_target_runs():
    from interp.explain.cot_saliency import step_saliency

    m = tiny_bridge()
    seq = [2, 9, 4, 11, 7, 3, 8]
    sal = step_saliency(m, seq, [3, 4, 5], batch_size=2)
    for row, p in zip(sal, (3, 4, 5)):
        one = saliency(m, seq[: p + 1], target=seq[p + 1], method="grad_x_input")[0].values("grad_x_input")
        np.testing.assert_allclose(row[: p + 1], np.abs(one), rtol=1e-4, atol=1e-6)
        assert np.all(row[p + 1 :] == 0)  # causal: later tokens get no gradient


def test_mixed_single_and_pair_targets():
    m = tiny_bridge()
    res = saliency(m, [[1, 2, 3], [4, 5, 6]], target=[7, (8, 9)], method="grad_x_input")
    with torch.inference_mode():
        a = m(torch.tensor([[1, 2, 3]]))[0, -1]
        b = m(torch.tensor([[4, 5, 6]]))[0, -1]
    assert res[0].score_x == pytest.approx(float(a[7]), rel=1e-5)
    assert res[1].score_x == pytest.approx(float(b[8] - b[9]), rel=1e-5)
