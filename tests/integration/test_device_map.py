"""A bridge loaded through accelerate's device map (all on the CPU here) gives the same sweep as a plain load.

This runs TransformerLens 4's ``boot_transformers(device_map=...)`` path end to end through ``load_model``; the
multi-device moves themselves are unit-tested with a recording map (tests/unit/test_scale.py).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # two SmolLM2 loads: ~15-40 s


def test_device_map_auto_on_cpu_equals_plain_load():
    import torch

    from interp.models import load_model
    from interp.patching import patch
    from interp.tasks import parse_task

    torch.set_num_threads(1)
    plain = load_model("smollm2-135m")
    mapped = load_model("smollm2-135m", device_map="auto")
    assert mapped.cfg.device == "cpu"
    pairs = parse_task("ioi:2").pairs(plain)
    kw = dict(site="resid", positions="last", layers=[0, 29], metric="logit_diff", progress=False)
    a, b = patch(plain, pairs, **kw), patch(mapped, pairs, **kw)
    assert b.meta["engine"] == "cone"
    np.testing.assert_array_equal(a.effects, b.effects)
