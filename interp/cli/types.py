"""argparse ``type=`` functions for numbers with a range: a bad value fails while the command line is parsed (exit 2,
``argument --n-per-op: must be an integer >= 1; got 0``), before anything is imported or loaded.

They reuse `interp.checks` (the library's own number checks), so the CLI and the API accept the same values.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["int_at_least", "positive_int", "nonneg_int", "positive_float", "nonneg_float", "fraction"]


def _wrap(check: Callable[[object], object], parse: Callable[[str], object], what: str) -> Callable[[str], object]:
    def convert(text: str) -> object:
        from interp.errors import InterpError

        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}; got {text!r}") from None
        try:
            return check(value)
        except InterpError as e:
            raise argparse.ArgumentTypeError(f"must be {what}; got {text!r}") from e

    convert.__name__ = what  # argparse names the type in some messages
    return convert


def int_at_least(lo: int) -> Callable[[str], object]:
    from interp.checks import check_int

    return _wrap(lambda v: check_int(v, "value", lo=lo), int, f"an integer >= {lo}")


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)


def _finite_positive(v: object) -> float:
    from interp.checks import check_float

    return check_float(v, "value", lo=0.0, lo_open=True)


def _finite_nonneg(v: object) -> float:
    from interp.checks import check_float

    return check_float(v, "value", lo=0.0)


def _fraction(v: object) -> float:
    from interp.checks import check_float

    return check_float(v, "value", lo=0.0, hi=1.0, lo_open=True)


positive_float = _wrap(_finite_positive, float, "a finite number > 0")
nonneg_float = _wrap(_finite_nonneg, float, "a finite number >= 0")
fraction = _wrap(_fraction, float, "a number in (0, 1]")
