"""`patch_by_group`: every group's result from one sweep equals `patch` on that group's pairs alone."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_pairs, tiny_bridge

from interp.patching import patch, patch_by_group
from interp.tasks.base import PromptPairs


def _grouped(model, groups=("a", "b", "a", "c", "b", "a", "c", "a")):
    p = random_pairs(model, batch=len(groups), seq=6, seed=3)
    return PromptPairs(p.clean_tokens, p.corrupt_tokens, p.clean_answers, p.corrupt_answers, p.position_labels,
                       "random", groups=tuple(groups))


def _same(a, b, rel=1e-5):
    scale = max(float(np.nanmax(np.abs(b.effects))), 1e-12)
    assert a.effects.shape == b.effects.shape and a.axes == b.axes
    assert np.array_equal(np.isnan(a.effects), np.isnan(b.effects))
    assert float(np.nanmax(np.abs(a.effects - b.effects))) <= rel * scale
    assert float(np.nanmax(np.abs(a.stderr - b.stderr))) <= rel * max(float(np.nanmax(np.abs(b.stderr))), 1e-12)
    assert a.n_prompts == b.n_prompts and a.meta["n_undefined_total"] == b.meta["n_undefined_total"]
    for k in b.baseline:
        assert a.baseline[k] == pytest.approx(b.baseline[k], rel=rel, abs=1e-9)


@pytest.mark.parametrize("engine", ["cone", "full"])
@pytest.mark.parametrize(("site", "metric", "direction"),
                         [("heads", "ie", "noising"), ("mlps", "logit_diff", "noising"),
                          ("resid", "prob", "denoising")])
def test_each_group_equals_its_own_sweep(engine, site, metric, direction):
    model = tiny_bridge(n_layers=2)
    pairs = _grouped(model)
    kw = dict(site=site, positions="all", metric=metric, direction=direction, engine=engine, progress=False)
    pooled, groups = patch_by_group(model, pairs, **kw)
    _same(pooled, patch(model, pairs, **kw), rel=1e-12)
    assert list(groups) == ["a", "b", "c"]  # first-seen order, as PromptPairs.by_group
    for g, sub in pairs.by_group().items():
        assert groups[g].n_prompts == sub.n
        _same(groups[g], patch(model, sub, **kw))


def test_pairs_without_groups_and_all_positions_at_once():
    model = tiny_bridge(n_layers=2)
    plain = random_pairs(model, batch=4, seq=6, seed=1)
    pooled, groups = patch_by_group(model, plain, site="heads", positions="all", progress=False)
    assert list(groups) == ["all"] and groups["all"] is pooled
    pairs = _grouped(model)
    pooled, groups = patch_by_group(model, pairs, site="heads", positions="together", progress=False)
    for g, sub in pairs.by_group().items():  # positions="together" runs each group on its own: same numbers
        _same(groups[g], patch(model, sub, site="heads", positions="together", progress=False), rel=1e-12)
