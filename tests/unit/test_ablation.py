"""Ablation hooks, the mean cache and faithfulness (Eq. 2) on tiny random bridges."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from conftest import random_pairs, tiny_bridge

from interp.circuits.ablation import ABLATIONS, CircuitError, ablation_hooks, mean_cache, mean_cache_tokens
from interp.circuits.circuit import Circuit
from interp.circuits.faithfulness import FaithfulnessEvaluator, faithfulness, faithfulness_score
from interp.errors import InterpError, ShapeError, UnknownNameError
from interp.metrics import normalized_logit

ALL_HEADS = {(l, h) for l in range(3) for h in range(4)}
ALL_MLPS = {0, 1, 2}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tiny_bridge()


@pytest.fixture(scope="module")
def data(model):
    p = random_pairs(model, batch=8, seq=5, seed=1)
    g = torch.Generator().manual_seed(3)
    grid = torch.randint(0, 50, (40, 5), generator=g)
    return p, mean_cache(model, None, tokens=grid), grid


def _kw(abl, data):
    p, mean, _ = data
    return dict(ablation=abl, mean=mean, resample_tokens=p.corrupt_tokens)


@pytest.mark.parametrize("abl", ABLATIONS)
def test_full_model_is_one_and_empty_circuit_is_zero(model, data, abl):
    p = data[0]
    full = faithfulness(model, p.clean_tokens, p.clean_answers, keep_heads=ALL_HEADS, keep_mlps=ALL_MLPS,
                        **_kw(abl, data))
    empty = faithfulness(model, p.clean_tokens, p.clean_answers, keep_heads=(), keep_mlps=(), **_kw(abl, data))
    # a prompt whose NL is the same in the full and the fully ablated model has an undefined ratio (NaN, skipped)
    ok = ~np.isnan(full.per_prompt)
    assert ok.sum() >= 6 and np.array_equal(ok, ~np.isnan(empty.per_prompt))
    assert full.faithfulness == 1.0 and np.all(full.per_prompt[ok] == 1.0)
    assert empty.faithfulness == 0.0 and np.all(empty.per_prompt[ok] == 0.0)
    assert full.n_prompts == 8 and full.n_heads == 12 and full.n_mlps == 3


def test_formula_is_mean_of_per_prompt_ratios():
    # hand-computed: ratios (0.6-0.2)/(1.0-0.2) = 0.5 and (0.8-0.4)/(0.8-0.4) = 1.0 -> F = 0.75,
    # while the ratio of means would be (0.7-0.3)/(0.9-0.3) = 0.667
    r = faithfulness_score(torch.tensor([0.6, 0.8]), torch.tensor([0.2, 0.4]), torch.tensor([1.0, 0.8]))
    np.testing.assert_allclose(r, [0.5, 1.0])
    undefined = faithfulness_score(np.array([0.5]), np.array([0.3]), np.array([0.3]))
    assert np.isnan(undefined).all()


def test_hand_computed_faithfulness_matches_manual_hooks(model, data):
    """Oracle: ablate by hand-written hooks, compute NL = logit[r] / max logit and the ratios directly."""
    p, mean, _ = data
    keep_heads, keep_mlps = {(0, 1), (2, 3)}, {1}

    def manual(keep_h, keep_m):
        hooks = []
        for l in range(3):
            def hz(act, hook, l=l):
                act = act.clone()
                for h in range(4):
                    if (l, h) not in keep_h:
                        act[:, :, h, :] = mean[f"blocks.{l}.attn.hook_z"][:, h, :]
                return act

            def hm(act, hook, l=l):
                return act if l in keep_m else mean[f"blocks.{l}.mlp.hook_post"].expand_as(act).clone()

            hooks += [(f"blocks.{l}.attn.hook_z", hz), (f"blocks.{l}.mlp.hook_post", hm)]
        with torch.no_grad():
            logits = model.run_with_hooks(p.clean_tokens, fwd_hooks=hooks)[:, -1, :]
        return logits.gather(1, p.clean_answers[:, None])[:, 0] / logits.max(-1).values

    with torch.no_grad():
        nl_full = normalized_logit(model(p.clean_tokens)[:, -1, :], p.clean_answers)
    nl_c, nl_e = manual(keep_heads, keep_mlps), manual(set(), set())
    want = ((nl_c - nl_e) / (nl_full - nl_e)).double()
    res = faithfulness(model, p.clean_tokens, p.clean_answers, keep_heads=keep_heads, keep_mlps=keep_mlps,
                       ablation="mean", mean=mean)
    torch.testing.assert_close(torch.from_numpy(res.per_prompt), want, atol=1e-5, rtol=1e-5)
    assert res.faithfulness == pytest.approx(float(want.mean()), abs=1e-5)
    assert 0 < res.n_heads == 2 and res.n_mlps == 1


def test_neuron_level_keep(model, data):
    p = data[0]
    ev = FaithfulnessEvaluator(model, p.clean_tokens, p.clean_answers, ablation="zero")
    whole = ev.nl(keep_heads=ALL_HEADS, keep_mlps={0, 2})
    all_neurons = ev.nl(keep_heads=ALL_HEADS, keep_mlps={0, 2}, keep_neurons={1: range(64)})
    no_neurons = ev.nl(keep_heads=ALL_HEADS, keep_mlps={0, 1, 2}, keep_neurons={1: []})
    with_l1 = ev.nl(keep_heads=ALL_HEADS, keep_mlps={0, 1, 2})
    torch.testing.assert_close(all_neurons, with_l1, atol=0, rtol=0)  # keep_neurons overrides keep_mlps
    torch.testing.assert_close(no_neurons, whole, atol=0, rtol=0)
    some = ev.score(keep_heads=ALL_HEADS, keep_mlps={0, 2}, keep_neurons={1: [3, 5, 7]})
    assert some.n_neurons == 3


def test_hooks_only_where_needed(model, data):
    assert ablation_hooks(model, keep_heads=ALL_HEADS, keep_mlps=ALL_MLPS, ablation="zero") == []
    hooks = ablation_hooks(model, keep_heads=ALL_HEADS - {(1, 2)}, keep_mlps={0, 2}, ablation="zero")
    assert sorted(n for n, _ in hooks) == ["blocks.1.attn.hook_z", "blocks.1.mlp.hook_post"]
    # the ablated head is zero at every position, the kept ones untouched
    _, cache = model.run_with_cache(data[0].clean_tokens, names_filter=lambda n: n == "blocks.1.attn.hook_z")
    z = dict(hooks)["blocks.1.attn.hook_z"](cache["blocks.1.attn.hook_z"], types.SimpleNamespace(name="z"))
    assert torch.all(z[:, :, 2] == 0)
    torch.testing.assert_close(z[:, :, [0, 1, 3]], cache["blocks.1.attn.hook_z"][:, :, [0, 1, 3]])


def test_mean_cache_is_per_position_mean(model, data):
    _, mean, grid = data
    _, cache = model.run_with_cache(grid, names_filter=lambda n: n.endswith(("hook_z", "hook_post")))
    for name in ("blocks.0.attn.hook_z", "blocks.2.mlp.hook_post"):
        torch.testing.assert_close(mean[name], cache[name].mean(0), atol=1e-5, rtol=1e-5)
    assert mean["blocks.0.attn.hook_z"].shape == (5, 4, 8) and mean["blocks.0.mlp.hook_post"].shape == (5, 64)


def test_mean_cache_grid_is_balanced_and_includes_illegal(tmp_path):
    from interp.models.toy import build_toy_tokenizer
    from interp.tasks import parse_task

    fake = types.SimpleNamespace(tokenizer=build_toy_tokenizer(40, tmp_path))
    task = parse_task("arith:+:0-9")  # one operator in the task, but the grid holds all four
    toks = mean_cache_tokens(task, fake)
    assert toks.shape == (4 * 100, 5)
    ops = toks[:, 2].tolist()
    assert len(set(ops)) == 4 and all(ops.count(o) == 100 for o in set(ops))
    assert [3, 4] in toks[:, [1, 3]].tolist()  # includes 3-4 and 3/0, illegal prompts
    assert mean_cache_tokens(task, fake, operand_max=4).shape == (4 * 25, 5)


def test_bad_input(model, data):
    p, mean, _ = data
    kw = dict(keep_heads=(), keep_mlps=())
    with pytest.raises(UnknownNameError, match="valid: mean, resample, zero"):
        faithfulness(model, p.clean_tokens, p.clean_answers, ablation="mena", **kw)
    with pytest.raises(ShapeError, match="empty"):
        faithfulness(model, p.clean_tokens[:0], p.clean_answers[:0], ablation="zero", **kw)
    with pytest.raises(CircuitError, match="mean cache"):
        faithfulness(model, p.clean_tokens, p.clean_answers, ablation="mean", **kw)
    with pytest.raises(ShapeError, match="positions"):
        faithfulness(model, p.clean_tokens[:, :4], p.clean_answers, ablation="mean", mean=mean, **kw)
    with pytest.raises(CircuitError, match="resample_tokens"):
        faithfulness(model, p.clean_tokens, p.clean_answers, ablation="resample", **kw)
    with pytest.raises(ShapeError, match="resample_tokens"):
        faithfulness(model, p.clean_tokens, p.clean_answers, ablation="resample",
                     resample_tokens=p.corrupt_tokens[:3], **kw)
    with pytest.raises(ShapeError, match="do not exist"):
        faithfulness(model, p.clean_tokens, p.clean_answers, keep_heads={(3, 0)}, keep_mlps=(), ablation="zero")
    with pytest.raises(ShapeError, match="out of range"):
        ablation_hooks(model, keep_heads=(), keep_mlps=(), keep_neurons={0: [64]}, ablation="zero")
    assert issubclass(CircuitError, InterpError) and issubclass(CircuitError, ValueError)


def test_circuit_json_roundtrip(tmp_path):
    c = Circuit(heads=[(1, 2), (0, 3)], mlps=[0, 1], ablation="zero", faithfulness=0.93,
                curve=({"n_heads": 0, "n_mlps": 2, "faithfulness": 0.1, "added": None},
                       {"n_heads": 1, "n_mlps": 2, "faithfulness": float("nan"), "added": "L1H2"}),
                sensitivity={"mean": 0.9, "zero": 0.93, "resample": 0.5}, model="m", task="arith:+:0-9",
                neurons={1: [4, 2]}, meta={"x": float("nan")})
    path = c.save(tmp_path / "c.json")
    assert list(tmp_path.iterdir()) == [path]  # written atomically, no temporary left behind
    text = path.read_text()
    assert "NaN" not in text  # strict JSON
    back = Circuit.load(path)
    assert back.heads == ((1, 2), (0, 3)) and back.mlps == (0, 1) and back.neurons == {1: (4, 2)}
    assert back.to_dict() == c.to_dict()
    assert back.keep()["keep_heads"] == {(1, 2), (0, 3)}
    with pytest.raises(UnknownNameError):
        Circuit(heads=(), mlps=(), ablation="mode")
