"""Number checks shared by every public function and command: integers and floats in a stated range.

``check_int(k, "k", lo=1)`` returns ``int(k)`` or raises an `InterpError` (a `ShapeError` unless ``error`` says
otherwise) that names the argument, the value received and the valid range. Booleans are not numbers here
(``positions=True`` is refused, not read as 1), floats must be integral for an integer argument (``1.7`` is refused,
not truncated), and NaN/inf never pass a float check unless asked for.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from interp.errors import InterpError, ShapeError

__all__ = ["check_int", "check_float", "describe_range"]


def describe_range(lo: float | None, hi: float | None, *, lo_open: bool = False, hi_open: bool = False) -> str:
    """``">= 1"``, ``"in 0..9"``, ``"in (0, 1]"``... for messages."""
    if lo is not None and hi is not None:
        if isinstance(lo, int) and isinstance(hi, int) and not lo_open and not hi_open:
            return f"in {lo}..{hi}"
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return "any number"


def check_int(value: Any, name: str, *, lo: int | None = None, hi: int | None = None,
              error: type[InterpError] = ShapeError, hint: str = "") -> int:
    """``int(value)`` when it is an integer (int, numpy int, or an integral float) within ``[lo, hi]``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        ok = True
    rng = describe_range(lo, hi)
    if not ok:
        raise error(f"{name} must be an integer {rng}; got {value!r}{hint}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise error(f"{name} must be an integer {rng}; got {v}{hint}")
    return v


def check_float(value: Any, name: str, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                hi_open: bool = False, error: type[InterpError] = ShapeError, hint: str = "") -> float:
    """``float(value)`` when it is a finite real number within the range (open ends as asked)."""
    rng = describe_range(lo, hi, lo_open=lo_open, hi_open=hi_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise error(f"{name} must be a finite number {rng}; got {value!r}{hint}")
    v = float(value)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise error(f"{name} must be a finite number {rng}; got {v:g}{hint}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise error(f"{name} must be a finite number {rng}; got {v:g}{hint}")
    return v
