"""Attribution patching against real interventions: finite differences, exact patching, TransformerLens's AtP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_pairs, tiny_bridge

from interp.errors import ShapeError, UnknownNameError
from interp.metrics import MetricContext, make_metric
from interp.patching import patch
from interp.patching.attribution import agreement, attribution_patch, attribution_scores, spearman
from interp.sites import hook_name, site_kind
from interp.tasks.base import PromptPairs


@pytest.fixture(scope="module")
def model64():
    m = tiny_bridge()
    m.to(torch.float64)
    return m


@pytest.mark.parametrize("site", ["heads", "mlps", "neurons", "resid", "attn_out", "mlp_out"])
def test_matches_real_intervention_with_tiny_patch_deltas(model64, site):
    """Patch in a + eps (a' - a) for real; (metric - metric_0) / eps must equal the attribution score."""
    p = random_pairs(model64, batch=3, seq=5, seed=2)
    layer, pos, unit, eps = 1, 3, 2, 1e-4
    kind = site_kind(site)
    neurons = [unit, 9] if kind == "neuron" else None
    scores = attribution_scores(model64, p, site=site, metric="logit_diff", positions=[pos], layers=[layer],
                                neurons=neurons)
    assert scores.shape[:3] == (3, 1, 1)
    name = hook_name(kind, layer)
    _, src = model64.run_with_cache(p.corrupt_tokens, names_filter=lambda n: n == name)

    def hook(act, hook):
        act = act.clone()
        idx = (slice(None), pos, unit) if kind in ("head", "neuron") else (slice(None), pos)
        act[idx] = act[idx] + eps * (src[name][idx] - act[idx])
        return act

    with torch.no_grad():
        base = model64(p.clean_tokens)[:, -1]
        moved = model64.run_with_hooks(p.clean_tokens, fwd_hooks=[(name, hook)])[:, -1]
    f = make_metric("logit_diff", MetricContext(base, base, p.clean_answers, p.corrupt_answers))
    fd = (f(moved) - f(base)) / eps
    got = scores[:, 0, 0, unit] if kind == "head" else scores[:, 0, 0, 0] if kind == "neuron" else scores[:, 0, 0]
    torch.testing.assert_close(got, fd.double(), rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("site", ["heads", "mlps", "neurons", "mlp_out", "attn_out"])
def test_exact_for_linear_metric_on_linear_sites(site):
    """No LayerNorm: the logits are linear in last-layer head outputs and MLP activations, so AtP is exact."""
    m = tiny_bridge(normalization_type=None)
    p = random_pairs(m, batch=6, seq=5, seed=4)
    kw = dict(site=site, positions="all", metric="logit_diff", layers=[2])
    if site == "neurons":
        kw["neurons"] = [0, 5, 17]
    a = attribution_patch(m, p, **kw)
    e = patch(m, p, progress=False, **kw)
    assert a.axes == e.axes and a.index == e.index and a.labels == e.labels
    np.testing.assert_allclose(a.effects, e.effects, atol=1e-4, rtol=1e-4)
    assert a.meta["method"] == "attribution" and a.n_forward_passes == 2


def test_ie_metric_is_zero_at_clean_point_and_agrees_with_exact():
    m = tiny_bridge()
    p = random_pairs(m, batch=8, seq=5, seed=1)
    a = attribution_patch(m, p, site="heads", positions="all", metric="ie")
    e = patch(m, p, site="heads", positions="all", metric="ie", progress=False)
    assert a.baseline["base"] == pytest.approx(0.0, abs=1e-6)
    s = attribution_scores(m, p, site="heads", positions="all", metric="ie")
    np.testing.assert_allclose(s.mean(0).numpy(), a.effects, atol=1e-6)
    agr = agreement(a, e, k=5)
    assert agr.spearman > 0.6 and agr.n == 3 * 5 * 4  # a random model, yet the ranking is close


def test_denoising_matches_transformer_lens_attribution_patch():
    """TL's node AtP (gradient on the corrupt run, clean - corrupt) is our denoising direction."""
    from transformer_lens.tools.analysis.attribution_patching import attribution_patch as tl_atp

    m = tiny_bridge()
    g = torch.Generator().manual_seed(5)
    clean, corrupt = torch.randint(0, 50, (4, 5), generator=g), torch.randint(0, 50, (4, 5), generator=g)
    r_clean, r_corrupt = 3, 7  # fixed answers: TL's metric_fn is one function for every pair
    pairs = PromptPairs(clean, corrupt, torch.full((4,), r_clean), torch.full((4,), r_corrupt),
                        tuple("abcde"), "fixed")
    # denoising keeps the metric's orientation: r = the clean answer (TransformerLens's meaning)
    tl = tl_atp(m, clean, corrupt, lambda lg: lg[0, -1, r_clean] - lg[0, -1, r_corrupt])
    ours = attribution_patch(m, pairs, site="heads", positions="all", metric="logit_diff_change",
                             direction="denoising")
    ours_mlp = attribution_patch(m, pairs, site="mlp_out", positions="all", metric="logit_diff_change",
                                 direction="denoising")
    for node, score in tl.node_scores.items():
        if node.kind == "attn_head_out":
            assert ours.effects[node.layer, node.position, node.head] == pytest.approx(score, abs=1e-5)
        elif node.kind == "mlp_out":
            assert ours_mlp.effects[node.layer, node.position] == pytest.approx(score, abs=1e-5)


def test_scores_shapes_and_subsets(model64):
    p = random_pairs(model64, batch=5, seq=6, seed=0)
    s = attribution_scores(model64, p, site="neurons", positions="last")
    assert s.shape == (5, 3, 1, 64) and s.dtype == torch.float64
    sub = attribution_scores(model64, p, site="neurons", positions="last", neurons=[3, 60], layers=[2])
    torch.testing.assert_close(sub, s[:, 2:3, :, [3, 60]])
    assert attribution_scores(model64, p, site="mlps", positions=[1, 2]).shape == (5, 3, 2)
    chunked = attribution_scores(model64, p, site="heads", positions="all", batch_size=2)
    torch.testing.assert_close(chunked, attribution_scores(model64, p, site="heads", positions="all"))


def test_agreement_and_spearman():
    assert spearman(np.array([1, 2, 3, 4.0]), np.array([10, 20, 30, 45.0])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4.0]), np.array([4, 3, 2, 1.0])) == pytest.approx(-1.0)
    # ties get average ranks: ranks (1.5, 1.5, 3) vs (1, 2, 3) -> r = 0.866
    assert spearman(np.array([1, 1, 2.0]), np.array([1, 2, 3.0])) == pytest.approx(np.sqrt(3) / 2)
    m = tiny_bridge()
    p = random_pairs(m, batch=4, seq=5)
    e = patch(m, p, site="mlps", positions="all", progress=False)
    same = agreement(e, e, k=3)
    assert same.spearman == pytest.approx(1.0) and same.top_k_overlap == 1.0
    with pytest.raises(ShapeError, match="different sites"):
        agreement(e, patch(m, p, site="mlps", positions="last", progress=False))


def test_bad_input():
    m = tiny_bridge()
    p = random_pairs(m, batch=2, seq=5)
    with pytest.raises(UnknownNameError, match="valid"):
        attribution_patch(m, p, site="headz")
    with pytest.raises(UnknownNameError, match="metric"):
        attribution_patch(m, p, metric="iee")
    with pytest.raises(UnknownNameError, match="direction"):
        attribution_scores(m, p, site="heads", direction="sideways")
    with pytest.raises(ShapeError, match="out of range"):
        attribution_scores(m, p, site="neurons", neurons=[64])
    with pytest.raises(ShapeError, match="layer"):
        attribution_scores(m, p, site="heads", layers=[5])
