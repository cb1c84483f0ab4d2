"""The heuristics of Algorithm 1 and their parameter grids: `Heuristic`, `parse_heuristic`, `ClassifierConfig`,
and the candidate heuristics with their top-k (the ``grid`` / ``k_rule`` variants of `interp.neurons.heuristics`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from interp.errors import UnknownNameError, unknown
from interp.neurons._common import NeuronError, check_threshold
from interp.neurons.maps import OperandGrid

__all__ = [
    "CODE_MODS",
    "GRIDS",
    "K_RULES",
    "MAP_MODES",
    "PAPER_MODS",
    "ClassifierConfig",
    "Heuristic",
    "parse_heuristic",
]

GRIDS = ("paper", "code")
K_RULES = ("paper", "code")
MAP_MODES = ("hybrid", "k", "kv")

PAPER_MODS = (2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 15)
CODE_MODS = tuple(range(2, 11))
PAPER_RANGE_SIZES = {"+": (10, 30, 50, 100), "-": (10, 30, 50, 100), "*": (10, 30, 50, 100), "/": (2, 10, 100)}
CODE_OPERAND_RANGE_SIZES = {"+": (10, 30, 50, 100), "-": (10, 30, 50, 100), "*": (3, 5, 10), "/": (10, 30, 50, 100)}
CODE_RESULT_RANGE_SIZES = {"+": (10, 30, 50), "-": (10, 30, 50), "*": (10, 30, 50, 100), "/": (2, 10, 100)}
MULTI_SIZES = {"paper": (2, 3, 4), "code": (2, 3, 4, 5)}
PAPER_MAX_OP = 300
PAPER_MULTI_K = 1000
_NON_NEGATIVE_ACTS = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu", "solu_ln")


@dataclass(frozen=True)
class ClassifierConfig:
    """Settings of the classifier; see the module docstring for ``grid`` and ``k_rule``.

    ``also_bottom=None`` decides from the model: on for gated MLPs and activations that go far below zero
    (SiLU/SwiGLU), off for GELU/ReLU. ``ClassifierConfig.code()`` takes the released code's grid and k constants;
    see `code` for where it departs from that code.
    """

    threshold: float = 0.6
    grid: str = "paper"
    k_rule: str = "paper"
    maps: str = "hybrid"
    also_bottom: bool | None = None
    max_coverage: float = 0.5
    min_prompts: int = 3
    max_patterns: int = 5
    multi_value_mass: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        if self.grid not in GRIDS:
            raise unknown("heuristic grid", self.grid, GRIDS)
        if self.k_rule not in K_RULES:
            raise unknown("k rule", self.k_rule, K_RULES)
        if self.maps not in MAP_MODES:
            raise unknown("map mode", self.maps, MAP_MODES)
        if not 0.0 < self.max_coverage <= 1.0:
            raise NeuronError(f"max_coverage must lie in (0, 1]; got {self.max_coverage}")
        check_threshold(self.multi_value_mass, name="multi_value_mass")

    @classmethod
    def code(cls, **overrides: Any) -> ClassifierConfig:
        """The released code's grid and k constants, with three deliberate departures (docs/neurons.md):

        * operand ranges: the code caches the range ``k`` without the operand, so op2's ranges reuse op1's count
          (on the − grid ``op2_range_0_10`` is scored with k=55 instead of 955); here ``k = |P_H|`` per operand;
        * × zero cancellation clears every result ``0 mod n`` heuristic and every pattern made only of 0s and
          wildcards, and ÷ drops every multi-value set containing 0: both broader than the code's explicit lists;
        * a heuristic whose code ``k`` falls below ``min_prompts`` is not scored (on small grids the code's
          ``(max_op // n)² · factor`` reaches 1, and every neuron would match every large-modulus family at 1.00).

        Count ties among patterns go to the more specific pattern, as in the code."""
        return cls(**{"grid": "code", "k_rule": "code", **overrides})

    def resolve_bottom(self, model: Any | None) -> bool:
        if self.also_bottom is not None:
            return bool(self.also_bottom)
        if model is None:
            return False
        cfg = model.cfg
        return bool(getattr(cfg, "gated_mlp", False)) or str(getattr(cfg, "act_fn", "gelu")) not in _NON_NEGATIVE_ACTS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------- heuristics

_TARGETS = ("op1", "op2", "both_operands", "same_operand", "result")
_NAME_RES = [
    (re.compile(r"^(op1|op2|both_operands|result)_(\d+)mod(\d+)$"), "mod"),
    (re.compile(r"^(op1|op2|both_operands|result)_range_(\d+)_(\d+)$"), "range"),
    (re.compile(r"^(op1|op2|result)_pattern_([0-9.]+)$"), "pattern"),
    (re.compile(r"^(op1|op2|result)_value_(\d+)$"), "value"),
    (re.compile(r"^(result)_multi_value_\d+=\[([\d, ]*)\]$"), "multi_value"),
    (re.compile(r"^(same_operand)$"), "same"),
]


def _digits_match(values: np.ndarray, pattern: str) -> np.ndarray:
    """Zero-padded ``values`` of width len(pattern) match ``pattern`` ('.' = any digit)."""
    w = len(pattern)
    ok = (values >= 0) & (values < 10**w)
    for i, ch in enumerate(pattern):
        if ch != ".":
            ok &= (values // 10 ** (w - 1 - i)) % 10 == int(ch)
    return ok


@dataclass(frozen=True)
class Heuristic:
    """One heuristic: ``target`` (op1, op2, both_operands, same_operand, result), ``family`` and parameters.

    ``holds(a, b, result)`` is the association test used everywhere (classification, knockouts); ranges are
    half-open ``[lo, hi)`` in both places (the paper code mixes ``<`` and ``<=`` and parses an old ``region`` name
    that its classifier never emits - neither is copied here).
    """

    target: str
    family: str
    params: tuple = ()

    @property
    def name(self) -> str:
        t, f, p = self.target, self.family, self.params
        if f == "mod":
            return f"{t}_{p[0]}mod{p[1]}"
        if f == "range":
            return f"{t}_range_{p[0]}_{p[1]}"
        if f == "pattern":
            return f"{t}_pattern_{p[0]}"
        if f == "value":
            return f"{t}_value_{p[0]}"
        if f == "multi_value":
            return f"{t}_multi_value_{len(p)}=[{', '.join(str(v) for v in p)}]"
        return "same_operand"

    @property
    def kind(self) -> str:
        """``direct`` (on the result; scored on KV maps) or ``indirect`` (on operands; K maps)."""
        return "direct" if self.target == "result" else "indirect"

    def holds(self, a: Any, b: Any, result: Any) -> np.ndarray:
        a, b, r = np.asarray(a), np.asarray(b), np.asarray(result)
        t, f, p = self.target, self.family, self.params
        if f == "same":
            return a == b
        if t == "both_operands":
            if f == "mod":
                return (a % p[1] == p[0]) & (b % p[1] == p[0])
            return (a >= p[0]) & (a < p[1]) & (b >= p[0]) & (b < p[1])
        v = {"op1": a, "op2": b, "result": r}[t]
        if f == "mod":
            return v % p[1] == p[0]
        if f == "range":
            return (v >= p[0]) & (v < p[1])
        if f in ("pattern", "value"):
            return _digits_match(v, p[0])
        return np.isin(v, np.asarray(p))

    @classmethod
    def parse(cls, name: str) -> Heuristic:
        return parse_heuristic(name)


def parse_heuristic(name: str) -> Heuristic:
    """The `Heuristic` of a name such as ``op1_range_20_30``, ``result_3mod7``, ``op2_pattern_.5``."""
    for rx, family in _NAME_RES:
        m = rx.match(name)
        if not m:
            continue
        t = m.group(1)
        if family == "mod":
            mm, n = int(m.group(2)), int(m.group(3))
            if not 0 <= mm < n:
                raise UnknownNameError(f"heuristic {name!r}: a residue class 'RmodN' needs N >= 1 and 0 <= R < N "
                                       f"(e.g. {t}_3mod7); got R={mm}, N={n}")
            return Heuristic(t, "mod", (mm, n))
        if family == "range":
            lo, hi = int(m.group(2)), int(m.group(3))
            if not lo < hi:
                raise UnknownNameError(f"heuristic {name!r}: a range 'range_A_B' is the half-open interval [A, B) and "
                                       f"needs A < B (e.g. {t}_range_{min(lo, hi)}_{max(lo, hi) + (lo == hi)}); got "
                                       f"A={lo}, B={hi}")
            return Heuristic(t, "range", (lo, hi))
        if family == "pattern":
            if not any(c.isdigit() for c in m.group(2)):
                raise UnknownNameError(f"heuristic {name!r}: a pattern needs at least one digit ('.' = any digit, "
                                       f"e.g. {t}_pattern_.5)")
            return Heuristic(t, "pattern", (m.group(2),))
        if family == "value":
            return Heuristic(t, "value", (m.group(2),))
        if family == "multi_value":
            vals = tuple(int(x) for x in m.group(2).split(",") if x.strip())
            if not vals:
                raise UnknownNameError(f"heuristic {name!r}: a multi-value set needs at least one value, e.g. "
                                       "result_multi_value_2=[3, 7]")
            return Heuristic(t, "multi_value", vals)
        return Heuristic("same_operand", "same")
    hint = " (ranges are named op1_range_A_B, not region)" if "region" in name else ""
    raise UnknownNameError(
        f"unknown heuristic name {name!r}{hint}; names look like op1_3mod7, both_operands_range_0_10, "
        "result_range_50_60, op2_pattern_.5, result_value_042, same_operand, result_multi_value_2=[3, 7]"
    )


# -------------------------------------------------------------------------------------------------- candidates


@dataclass(frozen=True, eq=False)
class _Cand:
    heuristic: Heuristic
    k: int
    members: np.ndarray
    map: str  # "k" or "kv"
    bottom: bool
    group: str | None  # code k-rule: the pattern group competing for the top-5 slots
    report: bool


def _starts(stop: int, step: int) -> range:
    return range(0, stop, step)


def _sizes(table: dict[str, tuple[int, ...]], op: str) -> tuple[int, ...]:
    """Range lengths of ``op``; a custom operator (not one of + - * /) takes those of ``+``."""
    return table.get(op, table["+"])


def _skip_reasons(stats: dict[str, dict[str, int]], cfg: ClassifierConfig, n: int) -> dict[str, str]:
    """``{family: reason}`` for every heuristic family none of whose candidates could be scored on the grid."""
    out = {}
    for fam, st in stats.items():
        if st["kept"]:
            continue
        parts = []
        if st["coverage"]:
            parts.append(f"{st['coverage']} hold on more than {cfg.max_coverage:.0%} of the {n} prompts (a random "
                         "neuron would score about their coverage)")
        if st["few"]:
            parts.append(f"{st['few']} hold on fewer than min_prompts={cfg.min_prompts} prompts")
        if st["small_k"]:
            parts.append(f"{st['small_k']} have a top-k below min_prompts={cfg.min_prompts} (code k-rule on a small "
                         "grid)")
        out[fam] = f"no candidate on this grid: of {st['tried']} candidates, " + "; ".join(parts)
    return out


def _build_candidates(grid: OperandGrid, cfg: ClassifierConfig, bottom: bool,
                      skipped: dict[str, str] | None = None) -> list[_Cand]:
    """The candidate heuristics of ``grid``; ``skipped`` (when given) receives ``{family: reason}`` for every
    family (``op1_range``, ``result_mod``, ...) that has no valid candidate on this grid."""
    op, span, factor, code_k = grid.op, grid.span, grid.factor, cfg.k_rule == "code"
    mods = CODE_MODS if cfg.grid == "code" else PAPER_MODS
    out: list[_Cand] = []
    stats: dict[str, dict[str, int]] = {}

    def map_of(h: Heuristic) -> str:
        return {"hybrid": "kv" if h.kind == "direct" else "k", "k": "k", "kv": "kv"}[cfg.maps]

    def add(h: Heuristic, mask: np.ndarray, k_code: int | None = None, *, group: str | None = None,
            report: bool = True) -> None:
        members = np.flatnonzero(mask).astype(np.int64)
        fam = "same_operand" if h.family == "same" else f"{h.target}_{h.family}"
        st = stats.setdefault(fam, {"tried": 0, "kept": 0, "coverage": 0, "few": 0, "small_k": 0}) if report \
            else {"tried": 0, "kept": 0, "coverage": 0, "few": 0, "small_k": 0}
        st["tried"] += 1
        if len(members) < max(1, cfg.min_prompts if report else 1):
            st["few"] += 1
            return
        if report and len(members) > cfg.max_coverage * grid.n:
            st["coverage"] += 1
            return
        k = k_code if (code_k and k_code is not None) else len(members)
        k = min(int(k), grid.n)
        # the code's k constants shrink with the grid ((max_op // n)² · factor is 1 on a 0..9 grid); with k below
        # the minimum prompt count a neuron's single top prompt would "match" every heuristic holding on it
        if k < 1 or (report and k < cfg.min_prompts):
            st["small_k"] += 1
            return
        st["kept"] += 1
        m = map_of(h)
        out.append(_Cand(h, k, members, m, bottom and m == "k", group, report))

    def cap(k: int) -> int:  # the code caps result k at max_op for × and ÷ ("result imbalance")
        return min(k, span) if op in ("*", "/") else k

    def patterns(target: str, values: np.ndarray, width: int, *, periodic: bool) -> None:
        digits = [(values // 10 ** (width - 1 - i)) % 10 for i in range(width)]
        k_code = int(span * factor)
        for n_fixed in range(1, width + 1):
            for fixed in itertools.combinations(range(width), n_fixed):
                code = sum(digits[i] * 10 ** j for j, i in enumerate(fixed))
                keys, inverse = np.unique(code, return_inverse=True)
                for gi, key in enumerate(keys.tolist()):
                    chars = ["."] * width
                    for j, i in enumerate(fixed):
                        chars[i] = str((key // 10**j) % 10)
                    pat = "".join(chars)
                    is_value = "." not in pat
                    is_prefix = not is_value and pat[-1] == "." and pat[0] != "."
                    if not is_value and not periodic:
                        continue
                    if is_prefix and not code_k:
                        continue  # a prefix pattern is a range (the range heuristics cover it)
                    h = Heuristic(target, "value" if is_value else "pattern", (pat,))
                    add(h, inverse == gi, k_code, group=target if code_k else None, report=not is_prefix)

    def operand_ranges() -> list[tuple[int, int]]:
        if cfg.grid == "code":
            return [(s, s + size) for size in _sizes(CODE_OPERAND_RANGE_SIZES, op) for s in _starts(grid.hi + 1, size)]
        return [(s, s + size) for size in _sizes(PAPER_RANGE_SIZES, op)
                for s in _starts(grid.hi + 1, max(size // 3, 10))]

    for target, v in (("op1", grid.a), ("op2", grid.b)):
        for n in mods:
            for m in range(n):
                add(Heuristic(target, "mod", (m, n)), v % n == m, int((span // n) * span * factor))
        for lo, hi in operand_ranges():
            add(Heuristic(target, "range", (lo, hi)), (v >= lo) & (v < hi))
        patterns(target, v, grid.operand_width, periodic=True)
    for n in mods:
        for m in range(n):
            h = Heuristic("both_operands", "mod", (m, n))
            add(h, h.holds(grid.a, grid.b, grid.result), int((span // n) ** 2 * factor))
    for lo, hi in operand_ranges():
        h = Heuristic("both_operands", "range", (lo, hi))
        add(h, h.holds(grid.a, grid.b, grid.result))
    add(Heuristic("same_operand", "same"), grid.a == grid.b)

    r = grid.result
    if op != "/":
        for n in mods:
            for m in range(n):
                add(Heuristic("result", "mod", (m, n)), r % n == m, cap(int((span // n) ** 2 * factor)))
    sizes = _sizes(CODE_RESULT_RANGE_SIZES if cfg.grid == "code" else PAPER_RANGE_SIZES, op)
    for size in sizes:
        for lo in _starts(grid.max_result + 1, max(size // 3, 10)):
            if op == "/" and lo == 0:
                continue  # ÷: result sets containing 0 are dropped (half the grid has result 0)
            mask = (r >= lo) & (r < lo + size)
            add(Heuristic("result", "range", (lo, lo + size)), mask, cap(int(mask.sum())))
    patterns("result", r, grid.result_width, periodic=op != "/")
    if skipped is not None:
        skipped.update(_skip_reasons(stats, cfg, grid.n))
    return out
