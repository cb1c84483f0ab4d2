"""``positions="together"`` (every position at once) against TransformerLens's ``*_all_pos`` functions."""

from __future__ import annotations

import pytest
import torch
import transformer_lens.patching as tlp
from conftest import random_pairs, tiny_bridge

from interp.errors import ShapeError
from interp.metrics import MetricContext, make_metric
from interp.patching import patch

TOL = 1e-4


def _oracle(model, pairs, metric):
    with torch.no_grad():
        base = model(pairs.clean_tokens)[:, -1].float()
        src, cache = model.run_with_cache(pairs.corrupt_tokens)
    f = make_metric(metric, MetricContext(base, src[:, -1].float(), pairs.clean_answers, pairs.corrupt_answers))
    return cache, lambda logits: f(logits[:, -1].float()).mean()


def _all_pos_setter(corrupted, index, clean):  # a whole layer's activation, every position
    corrupted[:] = clean
    return corrupted


@pytest.mark.parametrize("engine", ["cone", "full"])
@pytest.mark.parametrize("metric", ["ie", "logit_diff"])
@pytest.mark.parametrize("site,act", [("heads", None), ("resid", "resid_pre"), ("attn_out", "attn_out"),
                                      ("mlp_out", "mlp_out"), ("mlps", "post")])
def test_together_matches_transformer_lens_all_pos(tiny, site, act, metric, engine):
    pairs = random_pairs(tiny, batch=5, seq=6, seed=4)
    cache, tl_metric = _oracle(tiny, pairs, metric)
    ours = patch(tiny, pairs, site=site, positions="together", metric=metric, progress=False, max_rows=10,
                 engine=engine)
    if act is None:
        tl = tlp.get_act_patch_attn_head_out_all_pos(tiny, pairs.clean_tokens, cache, tl_metric)
        assert ours.axes == ("layer", "head")
    else:
        tl = tlp.generic_activation_patch(tiny, pairs.clean_tokens, cache, tl_metric, _all_pos_setter, act,
                                          index_axis_names=["layer"])
        assert ours.axes == ("layer",)
    assert ours.meta["engine"] == engine
    assert ours.effects.shape == tuple(tl.shape)
    assert float((torch.tensor(ours.effects) - tl.double()).abs().max()) <= TOL
    assert float(abs(ours.effects).max()) > 1e-3
    ours.plot()  # renders without a position axis


@pytest.mark.parametrize("site", ["heads", "mlps", "resid"])
def test_together_shared_prefix_starts_the_cone_late(tiny, site):
    """Clean and corrupt share their first 3 tokens (as IOI pairs share all but S2): the cone starts at position 3,
    with the same numbers as TransformerLens."""
    pairs = random_pairs(tiny, batch=4, seq=6, seed=6)
    pairs.corrupt_tokens[:, :3] = pairs.clean_tokens[:, :3]
    cache, tl_metric = _oracle(tiny, pairs, "ie")
    ours = patch(tiny, pairs, site=site, positions="together", progress=False, engine="cone")
    act = {"heads": None, "mlps": "post", "resid": "resid_pre"}[site]
    if act is None:
        tl = tlp.get_act_patch_attn_head_out_all_pos(tiny, pairs.clean_tokens, cache, tl_metric)
    else:
        tl = tlp.generic_activation_patch(tiny, pairs.clean_tokens, cache, tl_metric, _all_pos_setter, act,
                                          index_axis_names=["layer"])
    assert float((torch.tensor(ours.effects) - tl.double()).abs().max()) <= TOL
    full = patch(tiny, pairs, site=site, positions="together", progress=False, engine="full")
    assert float(abs(ours.effects - full.effects).max()) <= TOL
    assert ours.meta["flops"] < 0.75 * patch(tiny, random_pairs(tiny, batch=4, seq=6, seed=6), site=site,
                                              positions="together", progress=False).meta["flops"]


def test_together_rotary_gqa_and_neurons():
    """Rotary positions, RMSNorm, gated MLP and grouped-query attention; single neurons at every position."""
    m = tiny_bridge(positional_embedding_type="rotary", normalization_type="RMS", gated_mlp=True, act_fn="silu",
                    n_key_value_heads=2)
    pairs = random_pairs(m, batch=4, seq=6, seed=5)
    cone = patch(m, pairs, site="heads", positions="together", progress=False, engine="cone")
    full = patch(m, pairs, site="heads", positions="together", progress=False, engine="full")
    assert float(abs(cone.effects - full.effects).max()) <= TOL
    cone = patch(m, pairs, site="neurons", neurons=[1, 7, 30], positions="together", progress=False, engine="cone")
    full = patch(m, pairs, site="neurons", neurons=[1, 7, 30], positions="together", progress=False, engine="full")
    assert cone.axes == ("layer", "neuron") and cone.effects.shape == (3, 3)
    assert float(abs(cone.effects - full.effects).max()) <= TOL


def test_together_bad_input(tiny):
    pairs = random_pairs(tiny, batch=3, seq=5)
    for bad in ("together,2", ["together", 3]):
        with pytest.raises(ShapeError, match="cannot be combined with a position list"):
            patch(tiny, pairs, site="heads", positions=bad, progress=False)
    with pytest.raises(ShapeError, match="too small for one patch.*at least"):
        patch(tiny, pairs, site="heads", positions="together", progress=False, max_memory=1000, engine="cone")
