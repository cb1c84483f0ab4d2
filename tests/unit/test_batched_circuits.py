"""Batched circuit evaluation (`interp.circuits.batched`) against one circuit per pass (`FaithfulnessEvaluator`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.circuits.batched import BatchedFaithfulness, row_bytes, score_circuits
from interp.circuits.faithfulness import FaithfulnessEvaluator
from interp.circuits.search import sweep
from interp.errors import ShapeError
from interp.sites import hook_name
from tests.conftest import random_pairs

CIRCUITS = [
    ([], []),
    ([(0, 1), (2, 3)], [0, 2]),
    ([(l, h) for l in range(3) for h in range(4)], [0, 1, 2]),
    ([(1, 0)], [1]),
    {"keep_heads": [(0, 0)], "keep_mlps": [0], "keep_neurons": {1: [3, 5, 60]}},
]


@pytest.fixture(scope="module")
def setup(tiny):
    pairs = random_pairs(tiny, batch=7, seq=6)
    g = torch.Generator().manual_seed(1)
    mean = {hook_name("head", l): torch.randn(6, 4, 8, generator=g) for l in range(3)}
    mean |= {hook_name("mlp", l): torch.randn(6, 64, generator=g) for l in range(3)}
    return pairs, mean


def _kw(c):
    return c if isinstance(c, dict) else {"keep_heads": c[0], "keep_mlps": c[1]}


@pytest.mark.parametrize("engine", [False, True], ids=["hooked", "shared-forward"])
@pytest.mark.parametrize("ablation", ["mean", "zero", "resample"])
@pytest.mark.parametrize("max_rows", [None, 3, 14])  # all in one pass, prompts split, two circuits per pass
def test_batched_equals_one_circuit_per_pass(tiny, setup, ablation, max_rows, engine):
    pairs, mean = setup
    ev = FaithfulnessEvaluator(tiny, pairs.clean_tokens, pairs.clean_answers, ablation=ablation, mean=mean,
                               resample_tokens=pairs.corrupt_tokens)
    got = score_circuits(ev, CIRCUITS, max_rows=max_rows, engine=engine)
    for c, r in zip(CIRCUITS, got, strict=True):
        ref = ev.score(**_kw(c))
        np.testing.assert_allclose(r.nl_circuit, ref.nl_circuit, rtol=1e-6, atol=1e-7)
        assert r.faithfulness == pytest.approx(ref.faithfulness, abs=1e-6)
        assert (r.n_heads, r.n_mlps, r.n_neurons) == (ref.n_heads, ref.n_mlps, ref.n_neurons)
    # the empty circuit is NL(∅) and the full one NL(M) by construction
    assert got[0].faithfulness == pytest.approx(0.0, abs=1e-6)
    assert got[2].faithfulness == pytest.approx(1.0, abs=1e-6)


def test_passes_follow_the_budget(tiny, setup):
    pairs, mean = setup
    ev = FaithfulnessEvaluator(tiny, pairs.clean_tokens, pairs.clean_answers, ablation="mean", mean=mean)
    one = row_bytes(tiny, 6)
    b = BatchedFaithfulness(ev, max_memory=one * 14)  # two circuits of 7 prompts per pass
    b.score_many(CIRCUITS)
    assert b.stats["passes"] == 3 and b.stats["rows"] == 35
    assert b.stats["peak_bytes_estimate"] <= one * 14
    with pytest.raises(ShapeError, match="too small for one evaluated row.*minimum is"):
        BatchedFaithfulness(ev, max_memory=one - 1)


def test_sweep_curve_equals_one_circuit_per_pass(tiny, setup):
    pairs, mean = setup
    ev = FaithfulnessEvaluator(tiny, pairs.clean_tokens, pairs.clean_answers, ablation="mean", mean=mean)
    order = [("head", 1, 2), ("head", 0, 3), ("mlp", 0, None), ("head", 2, 1), ("mlp", 2, None)]
    curve = sweep(ev, order, base_mlps=[1])
    heads, mlps = [], [1]
    for row, step in zip(curve, [None, *order], strict=True):  # the old loop: one circuit per pass
        if step is not None:
            (heads if step[0] == "head" else mlps).append((step[1], step[2]) if step[0] == "head" else step[1])
        assert row["faithfulness"] == pytest.approx(ev.score(keep_heads=heads, keep_mlps=mlps).faithfulness, abs=1e-6)
    assert [r["added"] for r in curve] == [None, "L1H2", "L0H3", "MLP0", "L2H1", "MLP2"]
    stopped = sweep(ev, order, base_mlps=[1], target=-10.0, stop_at_target=True)
    assert len(stopped) == 1


def test_sweep_shows_progress_off_a_terminal(tiny, setup, monkeypatch):
    """The sweep is a stage of its own (minutes on SmolLM2): a counter of the circuits scored, as plain lines."""
    import io

    from interp import progress

    pairs, mean = setup
    ev = FaithfulnessEvaluator(tiny, pairs.clean_tokens, pairs.clean_answers, ablation="mean", mean=mean)
    out, real = io.StringIO(), progress.bar
    monkeypatch.setattr(progress, "bar", lambda total, **kw: real(total, **{**kw, "every": 0.0, "stream": out}))
    order = [("head", 1, 2), ("head", 0, 3), ("mlp", 0, None)]
    sweep(ev, order, base_mlps=[1], progress=True)
    assert "sweep circuits: 4/4 (100%)" in out.getvalue()
    out.truncate(0)
    sweep(ev, order, base_mlps=[1])
    assert out.getvalue() == ""


def _nested(model, n=None):
    """The sweep's circuits: heads added one at a time in a fixed shuffled order, all MLPs kept."""
    n_l, n_h = int(model.cfg.n_layers), int(model.cfg.n_heads)
    order = [(l, h) for l in range(n_l) for h in range(n_h)]
    order = [order[i] for i in torch.randperm(len(order), generator=torch.Generator().manual_seed(3)).tolist()]
    return [(order[:k], list(range(n_l))) for k in range((n or len(order)) + 1)]


@pytest.mark.parametrize("arch", ["ln", "llama-like"])
@pytest.mark.parametrize("ablation", ["mean", "resample"])
def test_shared_forward_equals_hooked_passes_and_shares_layers(arch, ablation):
    from conftest import tiny_bridge

    from interp.circuits.ablation import mean_cache
    from interp.circuits.shared_forward import SharedForwardScorer, engine_for

    kw = {} if arch == "ln" else dict(normalization_type="RMS", positional_embedding_type="rotary", gated_mlp=True,
                                      act_fn="silu", n_key_value_heads=2)
    model = tiny_bridge(n_layers=3, **kw)
    pairs = random_pairs(model, batch=5, seq=6, seed=4)
    mean = mean_cache(model, None, tokens=random_pairs(model, batch=20, seq=6, seed=9).clean_tokens)
    ev = FaithfulnessEvaluator(model, pairs.clean_tokens, pairs.clean_answers, ablation=ablation, mean=mean,
                               resample_tokens=pairs.corrupt_tokens)
    circuits = _nested(model)
    ref = score_circuits(ev, circuits, engine=False)
    scorer = SharedForwardScorer(ev, engine_for(ev))
    got = list(scorer.nl_chunks(circuits))
    for r, nl in zip(ref, got, strict=True):
        scale = float(np.abs(r.nl_circuit).max())
        assert float(np.abs(nl.numpy() - r.nl_circuit).max()) <= 1e-5 * scale
    # nested circuits share their early layers: well under one pass per circuit
    assert scorer.stats["layer_rows"] < 0.75 * scorer.stats["layer_rows_unshared"]
    # a budget for one circuit at a time: groups of one, nothing shared, same numbers
    small = SharedForwardScorer(ev, engine_for(ev), max_memory=row_bytes(model, 6) * 5)
    small._group_size = lambda: 1
    for a, b in zip(got, small.nl_chunks(circuits), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
    assert small.stats["layer_rows"] == small.stats["layer_rows_unshared"]
    # the peak estimate stays within the budget it was given
    budget = row_bytes(model, 6) * 40
    capped = SharedForwardScorer(ev, engine_for(ev), max_memory=budget)
    list(capped.nl_chunks(circuits))
    assert 0 < capped.stats["peak_bytes_estimate"] <= budget


def test_shared_forward_falls_back_to_hooks_when_the_engine_cannot_run(tiny, setup):
    from interp.circuits.batched import iter_scores
    from interp.circuits.shared_forward import engine_for

    pairs, mean = setup
    ev = FaithfulnessEvaluator(tiny, pairs.clean_tokens, pairs.clean_answers, ablation="mean", mean=mean)
    stats = {}
    list(iter_scores(ev, CIRCUITS, stats=stats))
    assert stats["engine"] == "shared-forward" and stats["circuits"] == len(CIRCUITS)
    tiny.blocks[0].hook_resid_pre.add_hook(lambda act, hook: act)
    try:
        assert engine_for(ev) is None
        got = list(iter_scores(ev, CIRCUITS, stats=stats))  # hooked passes, the attached hook included
        assert stats["engine"] == "hooked"
    finally:
        tiny.reset_hooks()
    for c, r in zip(CIRCUITS, got, strict=True):
        assert r.faithfulness == pytest.approx(ev.score(**_kw(c)).faithfulness, abs=1e-6)
