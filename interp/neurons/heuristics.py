"""Naming what a neuron does: the heuristic classifier of Nikankin et al. (ICLR 2025, App. F, Algorithm 1).

A *heuristic* ``H`` is a condition on a prompt's operands or result (``op1 in [20, 30)``, ``op2 = 3 mod 7``,
``result matches .5.``). ``P_H`` is the set of legal prompts that satisfy it. Algorithm 1::

    A = the neuron's activation map over every legal prompt of the operator   (K map, `interp.neurons.maps`)
    if H is direct (on the result): A = KV map = K map x logit of each prompt's result token in W_out[n] @ W_U
    P_N = the top-k prompts by A ;  score = |P_H ∩ P_N| / k ;  the neuron implements H iff score >= t (0.6)

Heuristics on the result are *direct* and scored on KV maps; those on operands are *indirect* and scored on K maps
(the paper's "HYBRID" choice, ``maps="hybrid"``). With ``also_bottom`` the K-map scores also try the most negative
activations (for gated MLPs) and keep the larger score.

Paper versus released code (methods.md §A.4), both available:

* ``grid`` - the parameter grid. ``"paper"``: mod n in {2..9, 11, 13, 15}; range lengths [10, 30, 50, 100]
  ([2, 10, 100] for ÷) with start step max(len // 3, 10) for operands and results; multi-value sets of 2..4.
  ``"code"``: mod n in 2..10; non-overlapping operand ranges of [10, 30, 50, 100] ([3, 5, 10] for ×); result ranges
  [10, 30, 50] / [10, 30, 50, 100] / [2, 10, 100] with step max(len // 3, 10); multi-value sets of 2..5.
* ``k_rule`` - how many top prompts are compared. ``"paper"``: Algorithm 1, k = |P_H| for every heuristic, and every
  digit pattern is a candidate. ``"code"``: the code's constants - op mod: (max_op // n) * max_op * factor; both
  or result mod: (max_op // n)² * factor (result k capped at max_op for × and ÷); ranges and same-operand: |P_H|
  (result ranges capped at max_op for × and ÷); patterns and values: max_op * factor top prompts, keeping the 5
  most frequent wildcard patterns among them that occur at least k/10 times.

Scaling to the task: ``max_op`` is the operand span of the task (hi - lo + 1; 300 in the paper, 100 for 0..99),
``factor`` = |legal prompts| / max_op², pattern widths are the digits of the largest operand (result) - 2 and 3 for
operands 0..99 - instead of the paper's fixed 3, and the multi-value top-k (1000 of a 300x300 grid) keeps its share
of the grid: 1000 * (max_op / 300)². Range lengths are absolute (a range of numbers means the same on any grid).

Always applied (both variants):

* prefix patterns (``1..``, ``12.``) are ranges, not patterns;
* ÷ has no result mod or result pattern heuristics and drops result sets containing 0 (the code's post-processing);
* for × a neuron matching ``result_value_0`` (score 1 with the code's k, >= t with the paper's) has its
  zero-related mod and pattern scores set to 0;
* heuristics that hold on more than ``max_coverage`` (0.5) of the legal prompts are skipped, because a random
  neuron scores about their coverage, and so are those with fewer than ``min_prompts`` (3) legal prompts (with
  k = 1 a neuron's single top prompt would always "match" its own value);
* ties in a map are broken by a seeded random order, never by grid order.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from interp.errors import UnknownNameError, unknown
from interp.neurons._common import NeuronError, check_threshold
from interp.neurons.maps import OperandGrid
from interp.neurons.results import HeuristicMatch

__all__ = [
    "GRIDS",
    "K_RULES",
    "MAP_MODES",
    "ClassifierConfig",
    "Heuristic",
    "HeuristicScorer",
    "classify_maps",
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
    (SiLU/SwiGLU), off for GELU/ReLU. ``ClassifierConfig.code()`` reproduces the released code.
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
        """The released code's grid and k constants."""
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
                break
            return Heuristic(t, "mod", (mm, n))
        if family == "range":
            return Heuristic(t, "range", (int(m.group(2)), int(m.group(3))))
        if family == "pattern":
            return Heuristic(t, "pattern", (m.group(2),))
        if family == "value":
            return Heuristic(t, "value", (m.group(2),))
        if family == "multi_value":
            return Heuristic(t, "multi_value", tuple(int(x) for x in m.group(2).split(",") if x.strip()))
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


def _build_candidates(grid: OperandGrid, cfg: ClassifierConfig, bottom: bool) -> list[_Cand]:
    op, span, factor, code_k = grid.op, grid.span, grid.factor, cfg.k_rule == "code"
    mods = CODE_MODS if cfg.grid == "code" else PAPER_MODS
    out: list[_Cand] = []

    def map_of(h: Heuristic) -> str:
        return {"hybrid": "kv" if h.kind == "direct" else "k", "k": "k", "kv": "kv"}[cfg.maps]

    def add(h: Heuristic, mask: np.ndarray, k_code: int | None = None, *, group: str | None = None,
            report: bool = True) -> None:
        members = np.flatnonzero(mask).astype(np.int64)
        if len(members) < max(1, cfg.min_prompts if report else 1) or (
            report and len(members) > cfg.max_coverage * grid.n
        ):
            return
        k = k_code if (code_k and k_code is not None) else len(members)
        k = min(int(k), grid.n)
        if k < 1:
            return
        m = map_of(h)
        out.append(_Cand(h, k, members, m, bottom and m == "k", group, report))

    def cap(k: int) -> int:  # the code caps result k at max_op for × and ÷ ("result imbalance")
        return min(k, span) if op in "*/" else k

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
            return [(s, s + size) for size in CODE_OPERAND_RANGE_SIZES[op] for s in _starts(grid.hi + 1, size)]
        return [(s, s + size) for size in PAPER_RANGE_SIZES[op] for s in _starts(grid.hi + 1, max(size // 3, 10))]

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
    sizes = CODE_RESULT_RANGE_SIZES[op] if cfg.grid == "code" else PAPER_RANGE_SIZES[op]
    for size in sizes:
        for lo in _starts(grid.max_result + 1, max(size // 3, 10)):
            if op == "/" and lo == 0:
                continue  # ÷: result sets containing 0 are dropped (half the grid has result 0)
            mask = (r >= lo) & (r < lo + size)
            add(Heuristic("result", "range", (lo, lo + size)), mask, cap(int(mask.sum())))
    patterns("result", r, grid.result_width, periodic=op != "/")
    return out


# ----------------------------------------------------------------------------------------------------- scoring


def _ranks(x: np.ndarray, perm: np.ndarray, *, descending: bool) -> np.ndarray:
    """``[neuron prompt]`` rank of each prompt (0 = first) in each column of ``x`` ``[prompt neuron]``.

    Ties are broken by the seeded permutation ``perm``: a stable sort of the permuted column.
    """
    import torch

    n = len(perm)
    xt = torch.from_numpy(np.ascontiguousarray(x[perm].T, dtype=np.float32))  # [neuron prompt], permuted
    order = torch.sort(xt, dim=1, descending=descending, stable=True).indices
    ranks_perm = torch.empty(order.shape, dtype=torch.int32)
    ranks_perm.scatter_(1, order, torch.arange(n, dtype=torch.int32).expand(order.shape[0], -1).contiguous())
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(n)
    return ranks_perm[:, torch.from_numpy(inverse)].numpy()


class HeuristicScorer:
    """Scores many neurons' maps against every heuristic of one operator grid at once.

    The candidate heuristics (with their k and prompt sets) are built once per grid and config; ``score`` ranks the
    prompts of each map column once and counts, for every heuristic, its prompts among the top-k with one gather
    and one segment sum - ``O(neurons x sum |P_H|)`` instead of a Python loop over heuristics.
    """

    def __init__(self, grid: OperandGrid, config: ClassifierConfig | None = None, *,
                 also_bottom: bool = False, maps: Sequence[str] = ("k", "kv")) -> None:
        config = config or ClassifierConfig()
        self.grid, self.config = grid, config
        self.candidates = [c for c in _build_candidates(grid, config, also_bottom) if c.map in maps]
        self.names = [c.heuristic.name for c in self.candidates]
        self.kinds = [c.heuristic.kind for c in self.candidates]
        self._perm = np.random.default_rng(config.seed).permutation(grid.n)
        self._groups: dict[str, np.ndarray] = {}
        for m in ("k", "kv"):
            idx = np.array([i for i, c in enumerate(self.candidates) if c.map == m], dtype=np.int64)
            self._groups[m] = idx
        self._flat = {m: self._flatten(idx) for m, idx in self._groups.items()}

    def _flatten(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cands = [self.candidates[i] for i in idx]
        if not cands:
            return np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.int64)
        members = np.concatenate([c.members for c in cands])
        ks = np.concatenate([np.full(len(c.members), c.k, dtype=np.int32) for c in cands])
        offsets = np.cumsum([0] + [len(c.members) for c in cands[:-1]]).astype(np.int64)
        return members, ks, offsets

    def _counts(self, ranks: np.ndarray, m: str, chunk: int = 8) -> np.ndarray:
        """``[neuron cand]`` number of each candidate's prompts among the candidate's top-k."""
        members, ks, offsets = self._flat[m]
        out = np.zeros((ranks.shape[0], len(offsets)), dtype=np.int64)
        if len(offsets) == 0:
            return out
        for s in range(0, ranks.shape[0], chunk):
            hits = (ranks[s : s + chunk][:, members] < ks[None, :]).view(np.uint8)
            out[s : s + chunk] = np.add.reduceat(hits, offsets, axis=1, dtype=np.int64)
        return out

    def _direction(self, maps: dict[str, np.ndarray | None], *, descending: bool) -> np.ndarray:
        n_neurons = next(v.shape[1] for v in maps.values() if v is not None)
        scores = np.zeros((n_neurons, len(self.candidates)))
        for m, idx in self._groups.items():
            if len(idx) == 0:
                continue
            if not descending:
                idx = np.array([i for i in idx if self.candidates[i].bottom], dtype=np.int64)
                if len(idx) == 0:
                    continue
            x = maps[m]
            if x is None:
                raise NeuronError(f"heuristics scored on {m.upper()} maps need the {m.upper()} map (got None)")
            ranks = _ranks(x, self._perm, descending=descending)
            counts = self._counts(ranks, m)
            ks = np.array([self.candidates[i].k for i in self._groups[m]], dtype=np.float64)
            sub = counts / ks[None, :]
            pos = {int(c): j for j, c in enumerate(self._groups[m])}
            scores[:, idx] = sub[:, [pos[int(i)] for i in idx]]
        if self.config.k_rule == "code":
            self._keep_top_patterns(scores)
        return scores

    def _keep_top_patterns(self, scores: np.ndarray) -> None:
        """Code k-rule: per target keep the ``max_patterns`` most frequent patterns occurring >= k/10 times."""
        for target in ("op1", "op2", "result"):
            idx = np.array([i for i, c in enumerate(self.candidates) if c.group == target], dtype=np.int64)
            if len(idx) == 0:
                continue
            k = self.candidates[idx[0]].k
            sub = scores[:, idx]
            order = np.argsort(-sub, axis=1, kind="stable")[:, : self.config.max_patterns]
            keep = np.zeros_like(sub, dtype=bool)
            np.put_along_axis(keep, order, True, axis=1)
            keep &= sub * k >= k // 10
            scores[:, idx] = np.where(keep, sub, 0.0)

    def score(self, k_map: np.ndarray | None, kv_map: np.ndarray | None) -> np.ndarray:
        """``[neuron heuristic]`` scores (fractions of top-k prompts in P_H) for map columns ``[prompt neuron]``."""
        maps = {"k": k_map, "kv": kv_map}
        for name, x in maps.items():
            if x is not None and (x.ndim != 2 or x.shape[0] != self.grid.n):
                raise NeuronError(f"the {name.upper()} map must be [prompt neuron] with {self.grid.n} prompts "
                                  f"(the {self.grid.op!r} grid); got {x.shape}")
        scores = self._direction(maps, descending=True)
        if any(c.bottom for c in self.candidates):
            scores = np.maximum(scores, self._direction(maps, descending=False))
        report = np.array([c.report for c in self.candidates], dtype=bool)
        scores[:, ~report] = 0.0
        if self.grid.op == "*":
            self._cancel_zero(scores)
        return scores

    def _cancel_zero(self, scores: np.ndarray) -> None:
        """×: a neuron whose top results are all 0 gets its zero-related mod and pattern scores set to 0."""
        zero = "0" * self.grid.result_width
        if f"result_value_{zero}" not in self.names:
            return
        # the code's test is "score == 1.0" with its small value k; with k = |P_H| (every zero-result prompt)
        # a result-0 neuron rarely reaches exactly 1, so the paper k-rule uses the matching threshold instead
        bar = 1.0 if self.config.k_rule == "code" else self.config.threshold
        is_zero = scores[:, self.names.index(f"result_value_{zero}")] >= bar - 1e-12
        if not is_zero.any():
            return
        related = [i for i, c in enumerate(self.candidates)
                   if (c.heuristic.target == "result" and c.heuristic.family == "mod" and c.heuristic.params[0] == 0)
                   or (c.heuristic.family == "pattern" and set(c.heuristic.params[0]) <= {"0", "."})]
        scores[np.ix_(is_zero, related)] = 0.0

    def multi_values(self, kv_map: np.ndarray) -> list[list[HeuristicMatch]]:
        """÷ only: ``result_multi_value_n=[S]`` when the top results concentrate on a few values (not 0)."""
        out: list[list[HeuristicMatch]] = [[] for _ in range(kv_map.shape[1])]
        if self.grid.op != "/":
            return out
        k = max(1, min(self.grid.n, round(PAPER_MULTI_K * (self.grid.span / PAPER_MAX_OP) ** 2)))
        ranks = _ranks(kv_map, self._perm, descending=True)
        sizes = MULTI_SIZES[self.config.grid]
        for j in range(kv_map.shape[1]):
            top = self.grid.result[ranks[j] < k]
            vals, counts = np.unique(top, return_counts=True)
            order = np.argsort(-counts, kind="stable")
            mass = np.cumsum(counts[order]) / counts.sum()
            for n in sizes:
                if n <= len(mass) and mass[n - 2] < self.config.multi_value_mass <= mass[n - 1]:
                    chosen = sorted(int(v) for v in vals[order[:n]])
                    if 0 not in chosen:
                        h = Heuristic("result", "multi_value", tuple(chosen))
                        out[j].append(HeuristicMatch(h.name, "direct", float(mass[n - 1])))
                    break
        return out

    def matches(self, scores: np.ndarray, *, threshold: float | None = None) -> list[list[HeuristicMatch]]:
        """Per neuron, the heuristics with score >= threshold, best first."""
        t = check_threshold(self.config.threshold if threshold is None else threshold)
        out = []
        for row in scores:
            hit = np.flatnonzero(row >= t - 1e-12)
            hit = hit[np.argsort(-row[hit], kind="stable")]
            out.append([HeuristicMatch(self.names[i], self.kinds[i], float(row[i])) for i in hit])
        return out


def classify_maps(
    grid: OperandGrid,
    k_map: np.ndarray,
    kv_map: np.ndarray | None = None,
    *,
    config: ClassifierConfig | None = None,
    also_bottom: bool | None = None,
) -> list[list[HeuristicMatch]]:
    """Algorithm 1 on maps ``[prompt neuron]`` of one operator's grid -> matched heuristics per neuron.

    Without a KV map only the heuristics scored on K maps are tried (the indirect ones, with ``maps="hybrid"``).
    """
    config = config or ClassifierConfig()
    bottom = config.resolve_bottom(None) if also_bottom is None else also_bottom
    scorer = HeuristicScorer(grid, config, also_bottom=bottom, maps=("k",) if kv_map is None else ("k", "kv"))
    found = scorer.matches(scorer.score(k_map, kv_map))
    direct_map = k_map if config.maps == "k" else kv_map
    if direct_map is not None:
        for row, extra in zip(found, scorer.multi_values(direct_map)):
            row.extend(extra)
    return found
