"""Short ``__repr__`` for result objects: what it is, its shape, its top 3 entries, on one or two lines.

A result printed in a REPL or a notebook says what it holds instead of dumping arrays (or, for figures, a
200-line ``Figure({...})``). Level 0 (core): imports nothing from interp.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["short_repr", "fmt_value"]


def fmt_value(v: Any) -> str:
    """A number in 4 significant digits (``nan`` for NaN/None)."""
    if v is None:
        return "nan"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "nan" if math.isnan(f) else f"{f:.4g}"


def short_repr(name: str, what: str, *, shape: str = "", top: Iterable[tuple[Any, Any]] = (),
               top_label: str = "top") -> str:
    """``Name(what; shape; top: a 1.2, b 0.8, c 0.3)``; ``top`` is (label, value) pairs, the first 3 shown."""
    parts = [what]
    if shape:
        parts.append(shape)
    items = list(top)[:3]
    if items:
        parts.append(f"{top_label}: " + ", ".join(f"{lab} {fmt_value(v)}" for lab, v in items))
    return f"{name}(" + "; ".join(p for p in parts if p) + ")"
