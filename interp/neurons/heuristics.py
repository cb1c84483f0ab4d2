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

from collections.abc import Sequence

import numpy as np

from interp.neurons._common import NeuronError, check_threshold
from interp.neurons.candidates import (
    GRIDS,
    K_RULES,
    MAP_MODES,
    MULTI_SIZES,
    PAPER_MAX_OP,
    PAPER_MULTI_K,
    ClassifierConfig,
    Heuristic,
    _build_candidates,
    parse_heuristic,
)
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
        #: ``{family: reason}`` for the heuristic families with no valid candidate on this grid
        self.skipped_families: dict[str, str] = {}
        self.candidates = [c for c in _build_candidates(grid, config, also_bottom, self.skipped_families)
                           if c.map in maps]
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
        """Code k-rule: per target keep the ``max_patterns`` most frequent patterns occurring >= k/10 times.

        Equal counts go to the more specific pattern (more fixed digits; a value before any wildcard pattern), as in
        the released code, so ``result_value_102`` keeps its slot against an equally frequent ``result_pattern_..2``.
        """
        for target in ("op1", "op2", "result"):
            idx = np.array([i for i, c in enumerate(self.candidates) if c.group == target], dtype=np.int64)
            if len(idx) == 0:
                continue
            k = self.candidates[idx[0]].k
            fixed = np.array([sum(ch != "." for ch in str(self.candidates[i].heuristic.params[0])) for i in idx])
            by_spec = np.argsort(-fixed, kind="stable")  # most specific first; ties keep candidate order
            sub = scores[:, idx]
            order = by_spec[np.argsort(-sub[:, by_spec], axis=1, kind="stable")][:, : self.config.max_patterns]
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
