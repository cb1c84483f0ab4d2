"""Metric formulas against hand computation."""

from __future__ import annotations

import math

import torch

from interp.metrics import MetricContext, indirect_effect, make_metric, normalized_logit


def test_indirect_effect_eq1_by_hand():
    # base probs: r=0 -> 0.5, r2=1 -> 0.25 ; patched: r -> 0.25, r2 -> 0.5
    base = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    patched = torch.log(torch.tensor([[0.25, 0.5, 0.25]]))
    r, r2 = torch.tensor([0]), torch.tensor([1])
    # 1/2 * [(0.5-0.25)/0.25 + (0.5-0.25)/0.25] = 1/2 * [1 + 1] = 1
    assert math.isclose(float(indirect_effect(base, patched, r, r2)), 1.0, rel_tol=1e-6)
    # asymmetric denominators: second term divides by the patched probability
    patched2 = torch.log(torch.tensor([[0.125, 0.25, 0.625]]))
    # 1/2 * [(0.25-0.25)/0.25 + (0.5-0.125)/0.125] = 1/2 * 3 = 1.5
    assert math.isclose(float(indirect_effect(base, patched2, r, r2)), 1.5, rel_tol=1e-6)
    assert float(indirect_effect(base, base, r, r2)) == 0.0


def test_normalized_logit():
    logits = torch.tensor([[2.0, 4.0, 1.0], [3.0, 1.0, 0.5]])
    assert normalized_logit(logits, torch.tensor([0, 0])).tolist() == [0.5, 1.0]


def test_normalized_metrics_are_0_at_base_and_1_at_source():
    g = torch.Generator().manual_seed(0)
    base, src = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    ctx = MetricContext(base, src, torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 0]))
    for name in ("logit_diff_norm", "prob_norm"):
        f = make_metric(name, ctx)
        torch.testing.assert_close(f(base), torch.zeros(4, dtype=torch.float64))
        torch.testing.assert_close(f(src), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(make_metric("logit_diff_change", ctx)(base), torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(make_metric("ie", ctx)(base), torch.zeros(4, dtype=torch.float64))
