"""SmolLM2-135M (IOI, 2 prompt pairs): path patching through the cone and all-position head patching against the
hooked implementation and TransformerLens, on a few layers (the full sweeps are in scripts/bench_faster.py)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gguf")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smol():
    import sys
    from pathlib import Path

    from interp.models import load_model

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from bench_patching import ioi_pairs

    model = load_model("smollm2-135m")
    return model, ioi_pairs(model, 2)


def test_path_patching_cone_equals_hooks_on_smollm(smol):
    from interp.patching.path import path_patch

    model, pairs = smol
    kw = dict(metric="logit_diff", progress=False)
    cone = path_patch(model, pairs, layers=[27, 29], engine="cone", **kw)
    full = path_patch(model, pairs, layers=[27, 29], engine="full", **kw)
    assert float(np.abs(cone.effects - full.effects).max()) <= 1e-4 * max(1.0, float(np.abs(full.effects).max()))
    rc = path_patch(model, pairs, receivers="L26H3", layers=[25], engine="cone", **kw)
    rf = path_patch(model, pairs, receivers="L26H3", layers=[25], engine="full", **kw)
    assert float(np.abs(rc.effects - rf.effects).max()) <= 1e-4 * max(1.0, float(np.abs(rf.effects).max()))
    assert float(np.abs(cone.effects - cone.baseline["base"]).max()) > 1e-3


def test_all_position_heads_match_transformer_lens_on_smollm(smol):
    import pandas as pd
    import transformer_lens.patching as tlp

    from interp.metrics import MetricContext, make_metric
    from interp.patching import patch

    model, pairs = smol
    with torch.inference_mode():
        lb = model(pairs.clean_tokens)[:, -1].float()
        src, cache = model.run_with_cache(pairs.corrupt_tokens)
    f = make_metric("logit_diff", MetricContext(lb, src[:, -1].float(), pairs.clean_answers, pairs.corrupt_answers))
    ours = patch(model, pairs, site="heads", positions="together", layers=[28], metric="logit_diff", progress=False)
    df = pd.DataFrame([(28, h) for h in range(int(model.cfg.n_heads))], columns=["layer", "head"])
    with torch.inference_mode():
        tl = tlp.generic_activation_patch(model, pairs.clean_tokens, cache, lambda lg: f(lg[:, -1].float()).mean(),
                                          tlp.layer_head_vector_patch_setter, "z", index_df=df)
    assert ours.meta["engine"] == "cone" and ours.axes == ("layer", "head")
    assert float(np.abs(ours.effects.reshape(-1) - tl.double().numpy()).max()) <= 1e-4 * max(
        1.0, float(np.abs(ours.effects).max()))
