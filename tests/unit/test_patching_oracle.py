"""Exact patching must equal transformer_lens.patching on the same inputs, for every site (oracle test)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import transformer_lens.patching as tlp
from conftest import random_pairs, tiny_bridge

from interp.errors import ShapeError, UnknownNameError
from interp.metrics import METRICS, MetricContext, make_metric
from interp.patching import patch

TOL = 1e-4


def _oracle_setup(model, pairs, metric):
    with torch.no_grad():
        base = model(pairs.clean_tokens)[:, -1].float()
        src, cache = model.run_with_cache(pairs.corrupt_tokens)
    ctx = MetricContext(base, src[:, -1].float(), pairs.clean_answers, pairs.corrupt_answers)
    f = make_metric(metric, ctx)
    return cache, lambda logits: f(logits[:, -1].float()).mean()


def _neuron_setter(corrupted, index, clean):
    _, pos, n = index
    corrupted[:, pos, n] = clean[:, pos, n]
    return corrupted


@pytest.mark.parametrize("metric", ["ie", "logit_diff", "prob_norm"])
@pytest.mark.parametrize(
    "site,tl_fn",
    [
        ("resid", tlp.get_act_patch_resid_pre),
        ("attn_out", tlp.get_act_patch_attn_out),
        ("mlp_out", tlp.get_act_patch_mlp_out),
        ("heads", tlp.get_act_patch_attn_head_out_by_pos),
        ("mlps", None),
    ],
)
def test_sites_match_transformer_lens(tiny, site, tl_fn, metric):
    pairs = random_pairs(tiny, batch=5, seq=5, seed=1)
    cache, tl_metric = _oracle_setup(tiny, pairs, metric)
    ours = patch(tiny, pairs, site=site, positions="all", metric=metric, progress=False, max_rows=12)
    if tl_fn is None:  # whole MLP neuron vector per position: TL's generic patch on hook_post
        tl = tlp.generic_activation_patch(tiny, pairs.clean_tokens, cache, tl_metric, tlp.layer_pos_patch_setter,
                                          "post", index_axis_names=["layer", "pos"])
    else:
        tl = tl_fn(tiny, pairs.clean_tokens, cache, tl_metric)
    assert ours.effects.shape == tuple(tl.shape)
    assert float((torch.tensor(ours.effects) - tl.double()).abs().max()) <= TOL
    # effects are not trivially zero
    assert float(abs(ours.effects).max()) > 1e-3


def test_single_neurons_match_transformer_lens(tiny):
    pairs = random_pairs(tiny, batch=4, seq=5, seed=2)
    cache, tl_metric = _oracle_setup(tiny, pairs, "ie")
    neurons = [0, 5, 17, 63]
    ours = patch(tiny, pairs, site="neurons", positions=[2, 4], neurons=neurons, metric="ie", progress=False)
    rows = [(l, p, n) for l in range(3) for p in (2, 4) for n in neurons]
    df = pd.DataFrame(rows, columns=["layer", "pos", "neuron"])
    tl = tlp.generic_activation_patch(tiny, pairs.clean_tokens, cache, tl_metric, _neuron_setter, "post", index_df=df)
    assert ours.effects.shape == (3, 2, 4)
    assert float((torch.tensor(ours.effects).reshape(-1) - tl.double()).abs().max()) <= TOL


def test_denoising_matches_tl_convention(tiny):
    """direction='denoising' runs the corrupt prompt and patches clean activations in, r still the clean answer
    (TL's convention; every metric in tests/unit/test_numbers.py)."""
    from interp.patching.variants import oriented_pairs

    pairs = random_pairs(tiny, batch=4, seq=5, seed=3)
    cache, tl_metric = _oracle_setup(tiny, oriented_pairs(pairs, "denoising"), "logit_diff")
    ours = patch(tiny, pairs, site="resid", positions="all", metric="logit_diff", direction="denoising", progress=False)
    tl = tlp.get_act_patch_resid_pre(tiny, pairs.corrupt_tokens, cache, tl_metric)
    assert float((torch.tensor(ours.effects) - tl.double()).abs().max()) <= TOL


@pytest.mark.parametrize("overrides", [dict(normalization_type="RMS", positional_embedding_type="rotary",
                                            gated_mlp=True, act_fn="silu", n_key_value_heads=2)])
def test_llama_like_architecture_matches(overrides):
    model = tiny_bridge(**overrides)
    pairs = random_pairs(model, batch=3, seq=5, seed=4)
    cache, tl_metric = _oracle_setup(model, pairs, "ie")
    ours = patch(model, pairs, site="heads", positions="all", metric="ie", progress=False)
    tl = tlp.get_act_patch_attn_head_out_by_pos(model, pairs.clean_tokens, cache, tl_metric)
    assert float((torch.tensor(ours.effects) - tl.double()).abs().max()) <= TOL


def test_batching_is_invisible(tiny):
    """Stacking many patch variants per pass gives the same numbers as one variant per pass."""
    pairs = random_pairs(tiny, batch=4, seq=5, seed=5)
    one = patch(tiny, pairs, site="heads", positions="all", max_rows=4, progress=False, engine="full")
    many = patch(tiny, pairs, site="heads", positions="all", max_rows=4096, progress=False, engine="full")
    assert one.n_forward_passes == 2 + 3 * 5 * 4
    assert many.n_forward_passes == 3
    torch.testing.assert_close(torch.tensor(one.effects), torch.tensor(many.effects), atol=1e-6, rtol=1e-5)


def test_last_position_equals_slice_of_all(tiny):
    pairs = random_pairs(tiny, batch=4, seq=5, seed=6)
    allp = patch(tiny, pairs, site="mlps", positions="all", progress=False)
    last = patch(tiny, pairs, site="mlps", positions="last", progress=False)
    assert last.index["pos"] == [4]
    torch.testing.assert_close(torch.tensor(last.effects[:, 0]), torch.tensor(allp.effects[:, 4]))


def test_bad_input(tiny):
    pairs = random_pairs(tiny, batch=4, seq=5)
    with pytest.raises(UnknownNameError, match="heads"):
        patch(tiny, pairs, site="head_out", progress=False)
    with pytest.raises(ShapeError, match="out of range"):
        patch(tiny, pairs, site="heads", positions=[7], progress=False)
    with pytest.raises(ShapeError, match="comma-separated"):
        patch(tiny, pairs, site="heads", positions="first", progress=False)
    with pytest.raises(UnknownNameError, match="logit_diff"):
        patch(tiny, pairs, site="heads", metric="logitdiff", progress=False)
    with pytest.raises(ShapeError, match="max_rows"):
        patch(tiny, pairs, site="heads", max_rows=2, progress=False)
    with pytest.raises(ShapeError, match="layer 9"):
        patch(tiny, pairs, site="heads", layers=[9], progress=False)
    assert set(METRICS) >= {"ie", "logit_diff", "prob", "logit_diff_norm", "prob_norm"}
