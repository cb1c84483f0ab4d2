"""Path patching through the cone engine (`interp.patching.path_cone`) against the hooked implementation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_pairs, tiny_bridge

from interp.errors import ShapeError
from interp.patching.path import path_patch

TOL = 1e-5


@pytest.fixture(scope="module")
def models():
    ln = tiny_bridge(n_layers=4)
    rope = tiny_bridge(n_layers=4, positional_embedding_type="rotary", normalization_type="RMS", gated_mlp=True,
                       act_fn="silu", n_key_value_heads=2)
    return {"ln": ln, "rope": rope}


def _same(a, b):
    assert a.effects.shape == b.effects.shape
    scale = max(1.0, float(np.abs(b.effects).max()))
    assert float(np.abs(a.effects - b.effects).max()) <= TOL * scale
    np.testing.assert_allclose(a.stderr, b.stderr, atol=TOL * scale)
    assert a.baseline == pytest.approx(b.baseline, abs=TOL * scale)


@pytest.mark.parametrize("arch", ["ln", "rope"])
@pytest.mark.parametrize("receivers,freeze", [("logits", False), ("logits", True), ("L2H1,L3H0,L3H3", False),
                                              ("L1H2,L3H1", True)])
@pytest.mark.parametrize("metric,shared", [("logit_diff", 0), ("ie", 3)])  # shared: clean and corrupt share their
def test_cone_equals_hooked_path_patching(models, arch, receivers, freeze, metric, shared):  # first tokens
    m = models[arch]
    pairs = random_pairs(m, batch=5, seq=6, seed=7)
    pairs.corrupt_tokens[:, :shared] = pairs.clean_tokens[:, :shared]
    cone = path_patch(m, pairs, receivers=receivers, metric=metric, freeze_mlps=freeze, progress=False,
                      engine="cone", layers=[0, 1, 2])
    full = path_patch(m, pairs, receivers=receivers, metric=metric, freeze_mlps=freeze, progress=False,
                      engine="full", layers=[0, 1, 2])
    assert cone.meta["engine"] == "cone" and full.meta["engine"] == "full"
    _same(cone, full)
    assert float(np.abs(cone.effects - cone.baseline["base"]).max()) > 1e-4  # paths do change the metric


@pytest.mark.parametrize("receivers", ["L3H0", "logits"])
def test_cone_chunks_to_the_memory_budget(models, receivers):
    m = models["ln"]
    pairs = random_pairs(m, batch=5, seq=6, seed=8)
    whole = path_patch(m, pairs, receivers=receivers, progress=False, engine="cone")
    with pytest.raises(ShapeError, match="too small for one sender.*at least"):
        path_patch(m, pairs, receivers=receivers, progress=False, engine="cone", max_memory=1000)
    need = int(whole.meta["peak_bytes_estimate"] * 0.6)  # fewer senders per pass, same numbers
    small = path_patch(m, pairs, receivers=receivers, progress=False, engine="cone", max_memory=need)
    assert small.meta["passes"] > whole.meta["passes"]
    assert small.meta["peak_bytes_estimate"] <= need
    np.testing.assert_allclose(small.effects, whole.effects, atol=1e-6)


def test_receiver_errors(models):
    m = models["ln"]
    pairs = random_pairs(m, batch=3, seq=5)
    with pytest.raises(ShapeError, match="do not exist"):
        path_patch(m, pairs, receivers="L9H0", progress=False)
    with pytest.raises(ShapeError, match="receivers must come after the senders"):
        path_patch(m, pairs, receivers="L1H0", layers=[1, 2], progress=False)
