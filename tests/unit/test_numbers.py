"""Numbers that never go silently wrong (issue 13): IE in log space, NaN-explicit rankings, undefined faithfulness,
exact-verified attribution search, TransformerLens's denoising for every metric, `top()` by change.

Each test builds the model that exposes the failure: a bridge whose softmax saturates (answer probabilities
underflow in float32), and a toy trained with two heads whose W_O is held at 0 and a residual split so that
zero-ablating every head and MLP gives all-zero logits (NL(∅) = 0/0).
"""

from __future__ import annotations

import logging

import mpmath
import numpy as np
import pandas as pd
import pytest
import torch
import transformer_lens.patching as tlp

from interp.circuits import find_circuit, mean_cache
from interp.circuits.ablation import CircuitError
from interp.circuits.effects import ComponentEffects
from interp.circuits.faithfulness import FaithfulnessEvaluator
from interp.metrics import METRICS, MetricContext, indirect_effect, make_metric
from interp.neurons.importance import neuron_importance
from interp.neurons.results import NeuronImportance
from interp.patching import PatchResult, patch
from interp.patching.result import top_neurons_per_layer
from interp.tasks.base import PromptPairs
from tests.conftest import tiny_bridge

# ------------------------------------------------------------------------------------------ saturated softmax


def _saturated(scale: float = 400.0):
    """A tiny bridge whose unembedding is scaled up: logits span hundreds, the softmax saturates, and every answer
    but the top one has a float32 probability of exactly 0 (or a denormal)."""
    m = tiny_bridge()
    with torch.no_grad():
        m.W_U.mul_(scale)
    return m


def _argmax_pairs(model, *, batch=4, seq=5, seed=0) -> PromptPairs:
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, 50, (batch, seq), generator=g)
    corrupt = torch.randint(0, 50, (batch, seq), generator=g)
    with torch.no_grad():
        r, r2 = model(clean)[:, -1].argmax(-1), model(corrupt)[:, -1].argmax(-1)
    keep = r != r2
    return PromptPairs(clean[keep], corrupt[keep], r[keep], r2[keep], tuple(f"p{i}" for i in range(seq)), "sat")


def _mp_ie(base: torch.Tensor, patched: torch.Tensor, r: int, r2: int) -> float:
    """Eq. 1 in 60-digit arithmetic from the float32 logits (the oracle)."""
    mpmath.mp.dps = 60

    def logp(x: torch.Tensor, i: int) -> mpmath.mpf:
        xs = [mpmath.mpf(float(v)) for v in x]
        return xs[i] - mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs))

    a = mpmath.exp(logp(patched, r2) - logp(base, r2)) - 1
    b = mpmath.exp(logp(base, r) - logp(patched, r)) - 1
    return float((a + b) / 2)


def test_ie_is_finite_where_float32_probabilities_underflow():
    m = _saturated()
    pairs = _argmax_pairs(m)
    assert pairs.n >= 2
    with torch.no_grad():
        base = m(pairs.clean_tokens)[:, -1]
        src, cache = m.run_with_cache(pairs.corrupt_tokens)
    # the premise: in float32 the corrupt answer's probability on the clean run is exactly 0 for some prompts
    p32 = base.float().softmax(-1).gather(1, pairs.corrupt_answers[:, None])[:, 0]
    assert (p32 == 0).any()
    res = patch(m, pairs, site="heads", positions=[2, 4], metric="ie", progress=False)
    assert np.isfinite(res.effects).all() and np.isfinite(res.stderr).all()
    assert res.meta["n_undefined_total"] == 0

    # oracle: transformer_lens.patching, one run per head, with Eq. 1 evaluated per prompt in 60-digit arithmetic
    # (kept in a list: TL stores metric values in a float32 tensor, which cannot hold them)
    oracle: list[float] = []

    def mp_metric(logits):
        last = logits[:, -1].detach()
        oracle.append(float(np.mean([_mp_ie(base[i], last[i], int(pairs.clean_answers[i]),
                                            int(pairs.corrupt_answers[i])) for i in range(pairs.n)])))
        return torch.tensor(0.0)

    df = pd.DataFrame([(lyr, p, h) for lyr in range(3) for p in (2, 4) for h in range(4)],
                      columns=["layer", "pos", "head"])

    def setter(corrupted, index, clean):
        _, pos, h = index
        corrupted[:, pos, h] = clean[:, pos, h]
        return corrupted

    tlp.generic_activation_patch(m, pairs.clean_tokens, cache, mp_metric, setter, "z", index_df=df)
    want = np.array(oracle).reshape(res.effects.shape)
    assert np.abs(want).max() > 1e30  # astronomically large, yet finite, effects
    np.testing.assert_allclose(res.effects, want, rtol=2e-3)

    # the neuron ranking built on these numbers puts the largest effects first (no NaN ranked anywhere)
    imp = neuron_importance(m, pairs, method="exact", layers=[2])
    assert np.isfinite(imp.score).all()
    top = imp.top(k=3)[2]
    assert top == list(np.argsort(-imp.score[0], kind="stable")[:3])


def test_ie_from_log_probabilities_matches_eq1_and_is_differentiable():
    base = torch.log(torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64))
    patched = torch.log(torch.tensor([[0.125, 0.25, 0.625]], dtype=torch.float64)).requires_grad_()
    val = indirect_effect(base, patched, torch.tensor([0]), torch.tensor([1]))
    assert val.dtype == torch.float64 and float(val.detach()) == pytest.approx(1.5, rel=1e-12)
    val.sum().backward()
    assert torch.isfinite(patched.grad).all()
    # a probability ratio of e^800 overflows float64: +inf, counted as undefined by the sweep
    far = torch.tensor([[0.0, -800.0, 0.0]])
    assert torch.isinf(indirect_effect(far, torch.tensor([[0.0, 0.0, -1.0]]), torch.tensor([0]),
                                       torch.tensor([1])))[0]


def test_undefined_prompts_are_counted_per_cell_and_left_out(caplog):
    """ie_logits divides by the patched logit of r: where it is exactly 0 the value is undefined."""
    m = tiny_bridge()
    pairs = _argmax_pairs(m, batch=6, seed=1)
    with torch.no_grad():
        m.W_U[:, int(pairs.clean_answers[0])] = 0.0  # logit of prompt 0's answer is 0 on every run
    with caplog.at_level(logging.WARNING, logger="interp.patching"):
        res = patch(m, pairs, site="heads", positions="last", metric="ie_logits", progress=False)
    n = pairs.n
    und = np.asarray(res.meta["n_undefined"])
    assert und.shape == res.effects.shape and (und >= 1).all()
    assert res.meta["n_undefined_total"] == und.sum()
    assert np.isfinite(res.effects).all()  # mean over the defined prompts
    assert sum("undefined" in r.message for r in caplog.records) == 1
    # the mean leaves exactly the undefined prompts out: recompute cell (0, 0, 0) by hand
    with torch.no_grad():
        base = m(pairs.clean_tokens)[:, -1]
        src, cache = m.run_with_cache(pairs.corrupt_tokens)

        def hook(act, hook):
            act = act.clone()
            act[:, -1, 0] = cache["blocks.0.attn.hook_z"][:, -1, 0]
            return act

        patched = m.run_with_hooks(pairs.clean_tokens, fwd_hooks=[("blocks.0.attn.hook_z", hook)])[:, -1]
    v = make_metric("ie_logits", MetricContext(base, src[:, -1], pairs.clean_answers, pairs.corrupt_answers))(patched)
    ok = torch.isfinite(v)
    assert int((~ok).sum()) == und[0, 0, 0] and n - int(ok.sum()) == und[0, 0, 0]
    assert res.effects[0, 0, 0] == pytest.approx(float(v[ok].mean()), rel=1e-6)


def _mp_mean_stderr(xs: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean in 60-digit arithmetic (the oracle for `finite_moments`)."""
    mpmath.mp.dps = 60
    v = [mpmath.mpf(x) for x in xs]
    mu = mpmath.fsum(v) / len(v)
    var = mpmath.fsum((x - mu) ** 2 for x in v) / max(len(v) - 1, 1)
    return float(mu), float(mpmath.sqrt(var / len(v)))


@pytest.mark.parametrize("row", [
    [1e300, 1.5e300, -3e299, float("nan"), 2e300, 1.7e308],  # squares and sums overflow float64
    [1e8 + 1, 1e8 + 2, 1e8 + 3, float("inf")],  # E[x^2] - E[x]^2 cancels to 0 (or below) in float64
    [-5e-320, 3e-321, 7e-322],  # denormals: scaling must not divide by 0
    [2.5],  # one value: no standard error (NaN)
])
def test_finite_moments_match_exact_arithmetic(row):
    from interp.metrics import finite_moments
    mean, se, n = finite_moments(torch.tensor([row, row[::-1]], dtype=torch.float64))
    finite = [x for x in row if np.isfinite(x)]
    want_mean, want_se = _mp_mean_stderr(finite)
    assert n.tolist() == [len(finite)] * 2
    for i in range(2):
        assert float(mean[i]) == pytest.approx(want_mean, rel=1e-12)
        if len(finite) == 1:
            assert np.isnan(float(se[i]))
        else:
            assert float(se[i]) == pytest.approx(want_se, rel=1e-9)
    none = finite_moments(torch.tensor([[float("nan"), float("-inf")]]))
    assert np.isnan(float(none[0][0])) and np.isnan(float(none[1][0])) and int(none[2][0]) == 0


def test_sweep_standard_errors_stay_finite_near_the_float64_limit():
    """A saturated model (unembedding x3000) gives IE effects near 1e306: the sweep's mean and standard error of each
    cell are those of its per-prompt values in exact arithmetic (the sums of squares overflowed to inf before: the
    arithmetic itself is checked to 1e-9 in `test_finite_moments_match_exact_arithmetic`)."""
    m = _saturated(3000.0)
    pairs = _argmax_pairs(m, batch=8)
    assert pairs.n >= 4
    with np.errstate(all="raise"):  # no overflow anywhere on the way
        res = patch(m, pairs, site="heads", layers=[0, 1], positions=[4], metric="ie", progress=False)
    one = [patch(m, pairs.select([i]), site="heads", layers=[0, 1], positions=[4], metric="ie",
                 progress=False).effects for i in range(pairs.n)]
    per_prompt = np.stack(one)  # [prompt layer pos head]: each prompt's own value (NaN where undefined)
    assert np.nanmax(np.abs(per_prompt)) > 1e160  # the premise: a value whose square overflows float64
    for cell in np.ndindex(res.effects.shape):
        xs = [float(x) for x in per_prompt[(slice(None), *cell)] if np.isfinite(x)]
        if len(xs) < 2:
            continue
        want_mean, want_se = _mp_mean_stderr(xs)
        assert np.isfinite(res.stderr[cell]), cell
        # one-prompt passes round differently in float32, and exp(Δ log p) amplifies that (measured: 2.4e-4)
        assert res.effects[cell] == pytest.approx(want_mean, rel=1e-2), cell
        assert res.stderr[cell] == pytest.approx(want_se, rel=1e-2), cell


@pytest.mark.parametrize("engine", ["full", "cone"])
def test_path_patching_standard_errors_stay_finite_near_the_float64_limit(engine):
    """Path patching's per-cell mean and standard error (the same `finite_moments`) on the 3000x-unembedding bridge:
    the squared deviations overflowed to inf there before."""
    from interp.patching.path import path_patch

    m = _saturated(3000.0)
    pairs = _argmax_pairs(m, batch=8)
    res = path_patch(m, pairs, layers=[0, 1], metric="ie", progress=False, engine=engine)
    assert np.nanmax(np.abs(res.effects)) > 1e160  # the premise: a value whose square overflows float64
    n_def = pairs.n - np.asarray(res.meta.get("n_undefined", np.zeros(res.effects.shape)))
    ok = np.isfinite(res.effects) & (n_def >= 2)
    assert ok.sum() >= 4 and np.isfinite(res.stderr[ok]).all() and (res.stderr[ok] >= 0).all()


def test_unpatched_baseline_mean_does_not_overflow():
    """The source run's IE is ~3e307 per prompt here (Δ log p = 708 both ways); the mean of eight of them is finite
    (summing first gave inf)."""
    from interp.metrics import metric_unpatched_values

    base = torch.tensor([[0.0, -708.0, -1000.0]]).repeat(8, 1)
    source = torch.tensor([[-708.0, 0.0, -1000.0]]).repeat(8, 1)
    ctx = MetricContext(base, source, torch.zeros(8, dtype=torch.long), torch.ones(8, dtype=torch.long))
    per_prompt = make_metric("ie", ctx)(source)
    assert float(per_prompt.min()) > 2e307 and not torch.isfinite(per_prompt.sum())  # the premise
    got = metric_unpatched_values("ie", ctx)
    assert got["base"] == 0.0 and got["source"] == pytest.approx(float(per_prompt[0]), rel=1e-12)


def test_one_prompt_has_no_standard_error():
    """One prompt gives an effect but no standard error: NaN, never 0 (exact, path and attribution sweeps); the neuron
    ranking's mean + std still gets a number (std 0, as its AtP path)."""
    from interp.patching.attribution import attribution_patch
    from interp.patching.path import path_patch

    m = tiny_bridge()
    one = _argmax_pairs(m, batch=6, seed=2).select([0])
    for res in (patch(m, one, site="heads", positions="last", metric="logit_diff", progress=False),
                path_patch(m, one, metric="logit_diff", progress=False),
                attribution_patch(m, one, site="heads", positions="last", metric="logit_diff")):
        assert np.isfinite(res.effects).all() and np.isnan(res.stderr).all(), res.site
    imp = neuron_importance(m, one, method="exact", metric="logit_diff")
    assert (imp.std == 0).all() and np.isfinite(imp.score).all()


def test_combined_seeds_do_not_overflow():
    """The mean over seeds divides before it sums, and the standard errors combine by hypot: effects near the float64
    limit and standard errors whose squares overflow keep finite, exact combinations."""
    from interp.circuits.effects import _combine

    def res(e, s):
        return PatchResult(effects=np.array([e]), axes=("layer",), index={"layer": [0]}, labels={"layer": ["L0"]},
                           site="mlps", metric="ie", model="m", task="t", direction="noising", n_prompts=4,
                           n_forward_passes=1, seconds=0.0, stderr=np.array([s]), baseline={}, meta={})

    big = 1.6e308
    out, _ = _combine([res(big, 1e200), res(big, 3e200), res(big / 2, 2e200)], seeds=(1, 2, 3), method="exact")
    mpmath.mp.dps = 60
    assert out.effects[0] == pytest.approx(float((2 * mpmath.mpf(big) + mpmath.mpf(big) / 2) / 3), rel=1e-14)
    assert out.stderr[0] == pytest.approx(float(mpmath.sqrt(mpmath.mpf(1e200) ** 2 + mpmath.mpf(3e200) ** 2
                                                           + mpmath.mpf(2e200) ** 2) / 3), rel=1e-14)
    # one draw counted three times (a task whose pairs ignore the seed): the error of that one sample
    same, _ = _combine([res(1.0, 1e200)] * 3, seeds=(1, 2, 3), method="exact", draws=[0, 0, 0])
    assert same.stderr[0] == pytest.approx(1e200, rel=1e-14)


# ------------------------------------------------------------------------------------------ rankings with NaN


def _result(effects, metric="ie", baseline=None):
    effects = np.asarray(effects, dtype=np.float64)
    return PatchResult(effects=effects, axes=("layer", "pos", "head"),
                       index={"layer": [0], "pos": [4], "head": list(range(effects.shape[-1]))},
                       labels={"layer": ["L0"], "pos": ["4 ="], "head": [f"H{i}" for i in range(effects.shape[-1])]},
                       site="heads", metric=metric, baseline=baseline or {"base": 0.0, "source": 1.0})


def test_patch_result_top_ranks_nan_last_and_inf_first(caplog):
    res = _result([[[np.nan, 0.5, -np.inf, 2.0, np.nan, -1.0]]])
    with caplog.at_level(logging.WARNING):
        top = res.top(6)
    assert [lab.split()[-1] for lab, _ in top] == ["H2", "H3", "H5", "H1", "H0", "H4"]
    assert any("2 of 6" in r.message and "NaN" in r.message for r in caplog.records)
    assert [lab for lab, _ in res.top(2, by_abs=False)] == ["L0 4 = H3", "L0 4 = H1"]
    with pytest.raises(Exception, match="k must be an integer >= 0"):
        res.top(-1)


def test_top_ranks_logit_diff_by_change_from_unpatched():
    """The unpatched logit difference is 3.0: the head that moves it most (to 0.5) ranks first, not the one
    leaving the largest logit difference (3.2, a change of 0.2)."""
    res = _result([[[3.2, 0.5, 2.9, 3.0]]], metric="logit_diff", baseline={"base": 3.0, "source": -1.0})
    top = res.top(2)
    assert [lab.split()[-1] for lab, _ in top] == ["H1", "H0"]
    assert top[0][1] == pytest.approx(0.5)  # the stored effect is returned
    prob = _result([[[0.90, 0.1, 0.88]]], metric="prob", baseline={"base": 0.9, "source": 0.0})
    assert prob.top(1)[0][0].endswith("H1")


def test_top_neurons_per_layer_ranks_nan_last():
    """A neuron's score is its largest defined effect over positions; undefined everywhere ranks last."""
    eff = np.array([[[np.nan, np.nan, 3.0, np.inf, 0.1], [0.2, np.nan, -5.0, 0.0, 0.1]]])  # [layer pos neuron]
    res = PatchResult(effects=eff, axes=("layer", "pos", "neuron"),
                      index={"layer": [1], "pos": [3, 4], "neuron": [0, 1, 2, 3, 4]},
                      labels={"layer": ["L1"], "pos": ["3", "4"], "neuron": [f"N{i}" for i in range(5)]},
                      site="neurons", metric="ie", baseline={"base": 0.0, "source": 1.0})
    assert top_neurons_per_layer(res, 5) == {1: [3, 2, 0, 4, 1]}
    assert top_neurons_per_layer(res, 5, pos=4) == {1: [2, 0, 4, 3, 1]}


def test_neuron_top_ranks_nan_last_and_skips_zero_importance():
    mean = np.array([[np.nan, 0.0, 2.0, -1.0, 0.5, 0.0]])
    imp = NeuronImportance(mean=mean, std=np.zeros_like(mean), method="exact", metric="ie", n_prompts=4, layers=[0])
    assert imp.top(k=6) == {0: [2, 4, 3, 0]}  # zero-importance neurons are never "top"; NaN last
    assert imp.zero_importance() == {0: [1, 5]}
    assert imp.top(k=2) == {0: [2, 4]}


def test_circuit_ranks_put_nan_last():
    heads = PatchResult(effects=np.array([[[np.nan, 1.0]], [[2.0, -3.0]]]), axes=("layer", "pos", "head"),
                        index={"layer": [0, 1], "pos": [1], "head": [0, 1]},
                        labels={"layer": ["L0", "L1"], "pos": ["1"], "head": ["H0", "H1"]}, site="heads", metric="ie")
    mlps = PatchResult(effects=np.array([[0.5], [np.nan]]), axes=("layer", "pos"), index={"layer": [0, 1], "pos": [1]},
                       labels={"layer": ["L0", "L1"], "pos": ["1"]}, site="mlps", metric="ie")
    eff = ComponentEffects(heads=heads, mlps=mlps, seeds=(0,), heads_per_seed=heads.effects[None],
                           mlps_per_seed=mlps.effects[None], rank_positions=(1,))
    assert eff.head_ranking() == [(1, 0), (0, 1), (1, 1), (0, 0)]
    ranked = [(k, l, h) for k, l, h, _ in eff.ranking(include_mlps=True)]
    assert ranked[:4] == [("head", 1, 0), ("head", 0, 1), ("mlp", 0, None), ("head", 1, 1)]
    assert set(ranked[4:]) == {("head", 0, 0), ("mlp", 1, None)}


# ------------------------------------------------------------------------------------------ denoising = TL


@pytest.mark.parametrize("metric", METRICS)
def test_denoising_equals_transformer_lens_for_every_metric(metric):
    """TL's denoising: run the corrupt prompt, patch clean activations in, apply the user's metric - here ours,
    built for that run (base = corrupt run, source = clean run, r = clean answer, r2 = corrupt answer)."""
    m = tiny_bridge()
    from tests.conftest import random_pairs

    pairs = random_pairs(m, batch=4, seq=5, seed=21)
    with torch.no_grad():
        clean_out, clean_cache = m.run_with_cache(pairs.clean_tokens)
        corrupt_last = m(pairs.corrupt_tokens)[:, -1]
    f = make_metric(metric, MetricContext(corrupt_last, clean_out[:, -1], pairs.clean_answers, pairs.corrupt_answers))
    tl_heads = tlp.get_act_patch_attn_head_out_by_pos(m, pairs.corrupt_tokens, clean_cache,
                                                      lambda lg: f(lg[:, -1]).mean())
    tl_resid = tlp.get_act_patch_resid_pre(m, pairs.corrupt_tokens, clean_cache, lambda lg: f(lg[:, -1]).mean())
    for site, tl in (("heads", tl_heads), ("resid", tl_resid)):
        for engine in ("cone", "full"):
            ours = patch(m, pairs, site=site, positions="all", metric=metric, direction="denoising", engine=engine,
                         progress=False)
            want = tl.double().numpy()
            np.testing.assert_allclose(ours.effects, want, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(want).max()))


# ------------------------------------------------------------------------------------------ circuit search

ZERO_HEADS = ((0, 1), (1, 2))


@pytest.fixture(scope="module")
def split_toy(tmp_path_factory):
    """A 2-layer toy (RMSNorm) trained on ``a ± b`` with a, b < 10, under three constraints kept after every step:
    heads L0H1 and L1H2 have W_O = 0 (exactly zero effect); embeddings write only the first half of the residual
    and the unembedding reads only the second half; attention and MLP output biases are 0. Zero-ablating every
    head and MLP therefore leaves all logits exactly 0, so NL(∅) = 0/0 on every prompt."""
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    from interp.models.toy import ToyArithConfig, build_toy_tokenizer
    from interp.tasks import parse_task

    cfg = ToyArithConfig(n_numbers=40, operand_max=9, n_layers=2, d_model=32, n_heads=4, d_mlp=64, seed=0)
    tok = build_toy_tokenizer(cfg.n_numbers, tmp_path_factory.mktemp("split_toy"))
    half, dh = cfg.d_model // 2, cfg.d_model // cfg.n_heads
    task = parse_task("arith:+-:0-9")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TransformerBridge.boot_native(
            TransformerBridgeConfig(**{**cfg.bridge_config(), "normalization_type": "RMS"}), tokenizer=tok)
        p = dict(model.named_parameters())

        def project():
            with torch.no_grad():
                p["tok_embed._original_component.weight"][:, half:] = 0
                p["pos._original_component.weight"][:, half:] = 0
                p["head._original_component.weight"][:, :half] = 0
                for lyr in range(cfg.n_layers):
                    a = f"layers.{lyr}._original_component."
                    for name in ("attn._original_component.o", "attn._original_component.v",
                                 "mlp._original_component.fc_out"):
                        p[a + name + "._original_component.bias"].zero_()  # b_V folds into b_O in compat mode
                for lyr, h in ZERO_HEADS:
                    w = p[f"layers.{lyr}._original_component.attn._original_component.o._original_component.weight"]
                    w[:, h * dh:(h + 1) * dh] = 0

        project()
        prompts = [q for op in task.operators for q in task.prompts(model, op)]
        x = torch.tensor([q.tokens for q in prompts])
        y = torch.tensor([q.answer_token for q in prompts])
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
        for _ in range(250):
            idx = torch.randint(0, len(y), (128,))
            loss = torch.nn.functional.cross_entropy(model(x[idx])[:, -1], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            project()
    model.enable_compatibility_mode()
    model.eval()
    return model, task


KW = dict(operator="+", n_per_op=8, n_eval=8, seeds=(42,))


def test_zero_ablation_search_raises_a_clear_error(split_toy):
    model, task = split_toy
    want = r"undefined on all 8 evaluation prompts with ablation='zero'.*NL\(∅\).*'mean' or 'resample'"
    with pytest.raises(CircuitError, match=want):
        find_circuit(model, task, ablation="zero", **KW)


def test_undefined_sensitivity_is_reported_with_reason_and_count(split_toy):
    model, task = split_toy
    c = find_circuit(model, task, mean=mean_cache(model, task), **KW)
    assert np.isnan(c.sensitivity["zero"]) and np.isfinite(c.sensitivity["mean"])
    und = c.meta["undefined"]["zero"]
    assert und["n_undefined"] == und["n_prompts"] == 8 and "NL(∅) is undefined on 8 of 8" in und["reason"]
    assert set(c.meta["undefined"]) == {"zero"}
    ev = FaithfulnessEvaluator(model, *_eval(model, task), ablation="zero")
    res = ev.score(keep_heads=[(0, 0)], keep_mlps=[0, 1])
    assert res.n_undefined == 8 and np.isnan(res.faithfulness) and res.to_dict()["undefined_reason"]


def _eval(model, task):
    p = task.pairs(model, n_per_op=8, split="evaluation").by_group()["+"]
    return p.clean_tokens, p.clean_answers


def test_attribution_search_rejects_zero_effect_heads(split_toy):
    """Heads with W_O = 0 have exactly zero effect; the attribution-ranked search never adds them (also with
    target 1.0 and the full curve, which sweeps every ranked component) and reports how many it rejected."""
    model, task = split_toy
    c = find_circuit(model, task, mean=mean_cache(model, task), rank="attribution", target=1.0, **KW)
    assert c.meta["verified"] and c.meta["n_rejected"] == 2
    assert sorted(c.meta["rejected"]) == ["L0H1", "L1H2"]
    assert not set(ZERO_HEADS) & set(c.heads)
    assert not {"L0H1", "L1H2"} & {row["added"] for row in c.curve}
    assert c.meta["reached_target"] and c.faithfulness == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------ classifier fidelity


def test_code_rule_prefers_the_more_specific_pattern_on_equal_counts():
    """A neuron whose KV map is 1 exactly on result 102: the value ties with wildcard patterns (..2, .0., 1.2, ...)
    on the count of top prompts; the more specific one keeps its top-5 slot, as in the released code."""
    from interp.neurons import ClassifierConfig, OperandGrid, classify_maps

    g = OperandGrid.synthetic("+", lo=0, hi=99, max_result=999)
    kv = (g.result == 102).astype(float)[:, None]
    k = np.zeros_like(kv)
    names = [h.name for h in classify_maps(g, k, kv, config=ClassifierConfig.code())[0]]
    assert "result_value_102" in names


def test_code_k_never_falls_below_the_minimum_prompt_count():
    """On a 0..9 grid the code's (max_op // n)² · factor is 1 for n >= 6: with k = 1 every neuron matched every
    large-modulus family at 1.00. Those heuristics are not scored."""
    from interp.neurons import ClassifierConfig, HeuristicScorer, OperandGrid, classify_maps

    g = OperandGrid.synthetic("+", lo=0, hi=9)
    cfg = ClassifierConfig.code()
    cands = HeuristicScorer(g, cfg).candidates
    assert min(c.k for c in cands if c.report) >= cfg.min_prompts
    assert not any(c.heuristic.name.startswith("both_operands_") and c.heuristic.name.endswith("mod9") for c in cands)
    rng = np.random.default_rng(0)
    found = classify_maps(g, rng.normal(size=(g.n, 20)), rng.normal(size=(g.n, 20)), config=cfg)
    hits = [h.name for row in found for h in row if h.score == 1.0 and "mod" in h.name]
    assert not any(n.startswith("both_operands") for n in hits)

