"""Does a confidence score predict correctness? AUROC (Mann–Whitney, ties counted half) and expected calibration
error with the reliability diagram (equal-width bins)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from interp.explain._common import ExplainError

__all__ = ["auroc", "ece", "reliability"]


def _arrays(conf: Sequence[float], correct: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(conf, dtype=np.float64)
    y = np.asarray(correct, dtype=bool)
    if c.shape != y.shape or c.ndim != 1:
        raise ExplainError(f"confidence and correctness must be 1-D of equal length; got {c.shape} and {y.shape}")
    return c, y


def auroc(conf: Sequence[float], correct: Sequence[bool]) -> float:
    """P(conf of a random correct answer > conf of a random wrong one), ties ½; NaN when one class is missing or
    a confidence is NaN."""
    c, y = _arrays(conf, correct)
    if np.isnan(c).any() or y.all() or not y.any():
        return float("nan")
    pos, neg = c[y], c[~y]
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return float((gt + 0.5 * eq) / (len(pos) * len(neg)))


def reliability(conf: Sequence[float], correct: Sequence[bool], *, bins: int = 10) -> dict[str, Any]:
    """Per equal-width confidence bin: count, mean confidence and accuracy (None for empty bins)."""
    c, y = _arrays(conf, correct)
    if bins < 1:
        raise ExplainError(f"bins must be >= 1; got {bins}")
    if len(c) and (np.nanmin(c) < -1e-9 or np.nanmax(c) > 1 + 1e-9):
        raise ExplainError("calibration needs confidences in [0, 1]")
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.searchsorted(edges, c, side="right") - 1, 0, bins - 1)
    out: dict[str, Any] = {"edges": edges.tolist(), "count": [], "confidence": [], "accuracy": []}
    for b in range(bins):
        m = idx == b
        n = int(m.sum())
        out["count"].append(n)
        out["confidence"].append(float(c[m].mean()) if n else None)
        out["accuracy"].append(float(y[m].mean()) if n else None)
    return out


def ece(conf: Sequence[float], correct: Sequence[bool], *, bins: int = 10) -> float:
    """Expected calibration error: Σ_b (n_b / n) |accuracy_b − confidence_b|; NaN for no data or NaN confidences."""
    c, y = _arrays(conf, correct)
    if len(c) == 0 or np.isnan(c).any():
        return float("nan")
    r = reliability(c, y, bins=bins)
    n = len(c)
    return float(sum(k / n * abs(a - cf) for k, a, cf in zip(r["count"], r["accuracy"], r["confidence"]) if k))
