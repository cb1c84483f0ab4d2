"""The smallest edge circuit that reaches a target faithfulness: score edges, then grow the circuit budget by
budget (top-n by |score| or greedy from the logits, pruned) until f >= target on held-out pairs."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from interp.circuits.edges.evaluate import MIB_BUDGETS, EdgeEvaluator, check_budgets, trapezoid_areas
from interp.circuits.edges.graph import EdgeError
from interp.circuits.edges.result import EdgeCircuit, EdgeScores
from interp.circuits.edges.select import greedy_edges, prune_edges, top_n_edges

__all__ = ["SELECTIONS", "find_edge_circuit"]

SELECTIONS: tuple[str, ...] = ("topn", "greedy")


def find_edge_circuit(ev: EdgeEvaluator, scores: EdgeScores, *, target: float = 0.9, selection: str = "topn",
                      budgets: Sequence[float] = MIB_BUDGETS, refine: bool = True) -> EdgeCircuit:
    """Sweep ``budgets`` (% of edges) and return the first circuit with faithfulness >= ``target``; with ``refine``
    bisect the edge count between that budget and the one before it. The whole MIB curve is kept in ``curve``."""
    if not 0 < target <= 1:
        raise EdgeError(f"target faithfulness must lie in (0, 1]; got {target}")
    if selection not in SELECTIONS:
        raise EdgeError(f"selection must be one of {SELECTIONS}; got {selection!r}")
    budgets = check_budgets(budgets)
    if scores.graph != ev.graph:
        raise EdgeError("the scores are for another graph than the evaluator's model")
    t0 = time.perf_counter()
    g = ev.graph

    def pick(k: int) -> np.ndarray:
        e = greedy_edges(g, scores.scores, k) if selection == "greedy" else top_n_edges(scores.scores, k)
        return prune_edges(g, e)

    fs, hit = [], None
    for i, pct in enumerate(budgets):
        k = int(pct / 100 * g.n_edges)
        f = ev.score(pick(k), allow_empty=True).faithfulness
        fs.append(f)
        if hit is None and f >= target:
            hit = i
    cpr, cmd = trapezoid_areas([b / 100 for b in budgets], fs)
    if hit is None:
        k_best = g.n_edges
    else:
        k_best = int(budgets[hit] / 100 * g.n_edges)
        lo = int(budgets[hit - 1] / 100 * g.n_edges) if hit > 0 else 0
        while refine and k_best - lo > 1:  # f(k) is not monotone in general: this finds *a* crossing
            mid = (lo + k_best) // 2
            if ev.score(pick(mid), allow_empty=True).faithfulness >= target:
                k_best = mid
            else:
                lo = mid
    edges = pick(k_best)
    if len(edges) == 0:
        raise EdgeError("the selected circuit is empty after pruning; lower the target or use another selection")
    f = ev.score(edges).faithfulness
    return EdgeCircuit(g, tuple(int(e) for e in edges), scores=scores.scores, method=scores.method,
                       ablation=ev.ablation, metric=ev.metric, model=scores.model, task=scores.task, faithfulness=f,
                       curve={"budgets": budgets, "faithfulness": fs, "cpr": cpr, "cmd": cmd, "selection": selection,
                              "target": target, "reached": hit is not None},
                       meta={"seconds": time.perf_counter() - t0, "n_requested": k_best})
