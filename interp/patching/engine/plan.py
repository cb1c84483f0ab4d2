"""Pass planning of the cone engine: packing patch variants into passes under a row and memory budget, and the
padded matmul that makes a row's result independent of how many variants share its pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["plan_passes"]

_MIN_ROWS = 32


def _rows_matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` with at least ``_MIN_ROWS`` rows per product (zero-padded): a row's result then comes from the same
    matrix-multiply kernel whatever the number of variants stacked with it (small products take another path)."""
    m = a.shape[-2]
    if m >= _MIN_ROWS:
        return a @ b
    pad = a.new_zeros(*a.shape[:-2], _MIN_ROWS - m, a.shape[-1])
    return (torch.cat([a, pad], dim=-2) @ b)[..., :m, :]


def plan_passes(variants: Sequence[tuple[int, int]], *, batch: int, max_rows: int | None, avail_bytes: int,
                row_bytes: Callable[[int], int]) -> list[dict[int, list[int]]]:
    """Pack variants ``(variant id, position)`` into passes: ``{position: [variant ids]}`` per pass.

    A pass holds at most ``max_rows`` rows (variants x prompts); each position group inside it (run one after
    another) fits ``avail_bytes`` of working memory.
    """
    passes: list[dict[int, list[int]]] = []
    cur: dict[int, list[int]] = {}
    rows = 0
    for vid, p in variants:
        grp = len(cur.get(p, ()))
        too_many = max_rows is not None and rows + batch > max_rows
        too_big = (grp + 1) * batch * row_bytes(p) > avail_bytes
        if cur and (too_many or too_big):
            passes.append(cur)
            cur, rows = {}, 0
        cur.setdefault(p, []).append(vid)
        rows += batch
    if cur:
        passes.append(cur)
    return passes
