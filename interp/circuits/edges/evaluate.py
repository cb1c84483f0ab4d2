"""Faithfulness of edge circuits and MIB's CPR / CMD.

A circuit's metric ``m(C)`` is measured with every edge *outside* it ablated: each receiver reads its clean
residual with, for every ablated edge into it, the sender's output in this pass replaced by the sender's ablation
value. ``m(N)`` is the unablated model, ``m(∅)`` has every edge ablated. MIB's faithfulness at one circuit::

    f(C) = (m(C) - m(∅)) / (m(N) - m(∅))         (metric means over prompts first, as MIB)

``per_prompt`` also keeps the per-prompt ratios, the aggregation of the node evaluator (`interp.ablation`).
MIB's curve: the top ``k`` edges (by |score|, pruned) at edge budgets ``k`` = {0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50,
100}% of all edges (``int(pct * n_edges)`` edges, as MIB), and by the trapezoid rule over the budget axis as a
fraction (0.001 .. 1)::

    CPR = area under f          CMD = area under |1 - f|

Higher CPR and lower CMD are better; a budget that rounds to zero edges is the empty circuit (f = 0).

MIB reports the two areas from two curves (``print_results.py``): CPR from the curve of the *signed* ranking
(``absolute=False``: the edges that help the behaviour most first, `EdgeScores.helpfulness`) and CMD from the curve
of the |score| ranking. `mib_scores` computes that pair; `mib_curve` / `EdgeEvaluator.curve` give one curve with
both areas under it (by default the |score| curve, whose CMD is MIB's and whose CPR is the |score| variant).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.circuits.edges.forward import EdgeForward
from interp.circuits.edges.graph import EdgeError
from interp.circuits.edges.prep import check_ablation, check_metric, prepare_batches, resolve_pairs
from interp.circuits.edges.result import EdgeCircuit, EdgeScores, ranking_key
from interp.circuits.edges.select import greedy_edges, prune_edges, top_n_edges

__all__ = ["MIB_BUDGETS", "EdgeEvaluator", "EdgeFaithfulness", "check_budgets", "mib_curve", "mib_scores",
           "trapezoid_areas", "random_curve"]

MIB_BUDGETS: tuple[float, ...] = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)


def check_budgets(budgets: Sequence[float]) -> list[float]:
    """Budgets in percent of all edges, each in (0, 100], strictly increasing, at least two."""
    out = [float(b) for b in budgets]
    bad = [b for b in out if not (0 < b <= 100) or math.isnan(b)]
    if bad:
        raise EdgeError(f"edge budgets are percentages of all edges and must lie in (0, 100]; got {bad}")
    if len(out) < 2 or any(b2 <= b1 for b1, b2 in zip(out, out[1:])):
        raise EdgeError(f"give at least two strictly increasing budgets (the curve's x axis); got {out}")
    return out


def trapezoid_areas(x: Sequence[float], f: Sequence[float]) -> tuple[float, float]:
    """(area under f, area under |1 - f|) by the trapezoid rule over ``x`` (MIB's CPR and CMD)."""
    cpr = cmd = 0.0
    for i in range(len(x) - 1):
        w = x[i + 1] - x[i]
        cpr += w * (f[i] + f[i + 1]) / 2
        cmd += w * (abs(1 - f[i]) + abs(1 - f[i + 1])) / 2
    return cpr, cmd


@dataclass(frozen=True)
class EdgeFaithfulness:
    """MIB faithfulness of one circuit, with the per-prompt metric values it comes from."""

    faithfulness: float
    m_circuit: np.ndarray
    m_empty: np.ndarray
    m_full: np.ndarray
    n_edges: int

    @property
    def per_prompt(self) -> np.ndarray:
        den = self.m_full - self.m_empty
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den != 0, (self.m_circuit - self.m_empty) / np.where(den != 0, den, 1), np.nan)

    @property
    def mean_of_ratios(self) -> float:
        """The node evaluator's aggregation (mean of per-prompt ratios, undefined prompts left out)."""
        v = self.per_prompt
        v = v[~np.isnan(v)]
        return float(v.mean()) if len(v) else float("nan")


class EdgeEvaluator:
    """Metric of many edge circuits on one set of prompt pairs; m(N) and m(∅) computed once."""

    def __init__(self, model: Any, pairs_or_task: Any, *, ablation: str = "counterfactual",
                 metric: str = "logit_diff", n: int | None = None, seed: int = 0, batch_size: int = 16,
                 mean_tokens: Tensor | None = None) -> None:
        check_ablation(ablation)
        check_metric(metric)
        self.ef = EdgeForward(model)
        self.graph = self.ef.graph
        self.pairs = resolve_pairs(model, pairs_or_task, n=n, seed=seed)
        self.ablation, self.metric = ablation, metric
        with torch.inference_mode():
            self.batches = prepare_batches(self.ef, self.pairs, ablation=ablation, batch_size=batch_size,
                                           mean_tokens=mean_tokens)
        self.m_full = np.concatenate([b.metric(metric)(b.clean_logits).double().numpy() for b in self.batches])
        self.m_empty = self.values(np.zeros(self.graph.n_edges, dtype=bool))

    def check_defined(self) -> None:
        """Raise `EdgeError` saying why when f = (m(C) - m(∅)) / (m(N) - m(∅)) is undefined."""
        bad = int(np.sum(~np.isfinite(self.m_empty))) + int(np.sum(~np.isfinite(self.m_full)))
        if bad:
            raise EdgeError(
                f"faithfulness is undefined: {bad} prompt(s) give a non-finite {self.metric} with every edge ablated "
                f"under {self.ablation} ablation (e.g. a zero residual makes the normalized logit 0/0); use another "
                "ablation (counterfactual, mean) or metric (logit_diff)")
        den = float(self.m_full.mean() - self.m_empty.mean())
        scale = float(np.abs(self.m_full).mean() + np.abs(self.m_empty).mean())
        if abs(den) <= 1e-5 * scale:  # equal up to float rounding
            raise EdgeError(
                f"faithfulness is undefined: the full model and the fully ablated graph give the same mean "
                f"{self.metric} ({self.m_full.mean():.6g}) under {self.ablation} ablation, so f = (m(C) - m(∅)) / "
                "(m(N) - m(∅)) divides by zero; use another ablation or metric, or pairs whose clean and corrupt "
                "prompts differ")

    @torch.inference_mode()
    def values(self, keep: np.ndarray) -> np.ndarray:
        """Per-prompt metric with every edge outside ``keep`` (bool [n_edges] or edge indices) ablated."""
        g = self.graph
        keep = np.asarray(keep)
        if keep.dtype != bool:
            m = np.zeros(g.n_edges, dtype=bool)
            m[keep.astype(np.int64)] = True
            keep = m
        ablate = g.real.copy()
        s, r = g.edge_index
        ablate[s[keep], r[keep]] = False
        out = []
        for b in self.batches:
            logits = self.ef.run(b.clean, ablate=torch.as_tensor(ablate), values=b.values).logits
            out.append(b.metric(self.metric)(logits).double().numpy())
        return np.concatenate(out)

    def score(self, circuit: EdgeCircuit | Sequence[int] | np.ndarray, *, allow_empty: bool = False
              ) -> EdgeFaithfulness:
        """Faithfulness of a circuit (an `EdgeCircuit` or edge indices)."""
        edges = np.asarray(circuit.edges if isinstance(circuit, EdgeCircuit) else circuit, dtype=np.int64)
        if isinstance(circuit, EdgeCircuit) and circuit.graph != self.graph:
            raise EdgeError(f"the circuit is for a graph of {circuit.graph.describe()}, the model has "
                            f"{self.graph.describe()}")
        if len(edges) == 0 and not allow_empty:
            raise EdgeError("the circuit is empty (no edges): its faithfulness is 0 by definition; choose a larger "
                            "budget, a lower threshold or more edges")
        self.check_defined()
        mc = self.values(edges)
        f = float((mc.mean() - self.m_empty.mean()) / (self.m_full.mean() - self.m_empty.mean()))
        return EdgeFaithfulness(f, mc, self.m_empty, self.m_full, int(len(edges)))

    def curve(self, scores: EdgeScores | np.ndarray, *, budgets: Sequence[float] = MIB_BUDGETS,
              absolute: bool = True, selection: str = "topn", prune: bool = True) -> dict[str, Any]:
        """MIB's faithfulness curve of a scoring with one ranking (|score|, or the helpfulness with
        ``absolute=False``) and both areas under it (see the module docstring)."""
        return mib_curve(self, scores, budgets=budgets, absolute=absolute, selection=selection, prune=prune)

    def mib_scores(self, scores: EdgeScores | np.ndarray, *, budgets: Sequence[float] = MIB_BUDGETS,
                   selection: str = "topn", prune: bool = True) -> dict[str, Any]:
        """CPR and CMD as MIB reports them: CPR from the curve of the signed ranking (the most helpful edges
        first), CMD from the curve of the |score| ranking (two curves; circuits they share are evaluated once)."""
        return mib_scores(self, scores, budgets=budgets, selection=selection, prune=prune)


def _ranking_key(ev: EdgeEvaluator, scores: EdgeScores | np.ndarray, absolute: bool) -> np.ndarray:
    """|score| or the helpfulness; a bare array is taken as scores under the evaluator's metric."""
    key = (scores.ranking_key(absolute) if isinstance(scores, EdgeScores)
           else ranking_key(scores, ev.metric, absolute=absolute))
    if key.shape != (ev.graph.n_edges,):
        raise EdgeError(f"{key.shape} scores for a graph of {ev.graph.n_edges} edges")
    return key


def mib_curve(ev: EdgeEvaluator, scores: EdgeScores | np.ndarray, *, budgets: Sequence[float] = MIB_BUDGETS,
              absolute: bool = True, selection: str = "topn", prune: bool = True,
              _memo: dict[bytes, float] | None = None) -> dict[str, Any]:
    budgets = check_budgets(budgets)
    if selection not in ("topn", "greedy"):
        raise EdgeError(f"selection must be 'topn' or 'greedy'; got {selection!r}")
    key = _ranking_key(ev, scores, absolute)
    g = ev.graph
    memo = {} if _memo is None else _memo
    fs, kept, asked = [], [], []
    for pct in budgets:
        k = int(pct / 100 * g.n_edges)
        edges = greedy_edges(g, key, k, absolute=False) if selection == "greedy" else top_n_edges(
            key, k, absolute=False)
        if prune:
            edges = prune_edges(g, edges)
        h = hashlib.blake2b(np.asarray(edges, dtype=np.int64).tobytes(), digest_size=16).digest()
        if h not in memo:
            memo[h] = ev.score(edges, allow_empty=True).faithfulness
        fs.append(memo[h])
        kept.append(int(len(edges)))
        asked.append(k)
    x = [b / 100 for b in budgets]
    cpr, cmd = trapezoid_areas(x, fs)
    return {"budgets": budgets, "n_edges": asked, "n_kept": kept, "faithfulness": fs, "cpr": cpr, "cmd": cmd,
            "selection": selection, "absolute": absolute}


def mib_scores(ev: EdgeEvaluator, scores: EdgeScores | np.ndarray, *, budgets: Sequence[float] = MIB_BUDGETS,
               selection: str = "topn", prune: bool = True) -> dict[str, Any]:
    """MIB's reported pair (``print_results.py``): CPR = area under f of the signed curve (``absolute=False``: the
    edges that help the behaviour most first), CMD = area under |1 - f| of the absolute curve (|score| first)."""
    memo: dict[bytes, float] = {}
    signed = mib_curve(ev, scores, budgets=budgets, absolute=False, selection=selection, prune=prune, _memo=memo)
    absolute = mib_curve(ev, scores, budgets=budgets, absolute=True, selection=selection, prune=prune, _memo=memo)
    return {"cpr": signed["cpr"], "cmd": absolute["cmd"], "signed": signed, "absolute": absolute,
            "n_evaluations": len(memo)}


def random_curve(ev: EdgeEvaluator, *, draws: int = 5, seed: int = 0, budgets: Sequence[float] = MIB_BUDGETS
                 ) -> dict[str, Any]:
    """The curve of random edge scores, CPR and CMD averaged over ``draws`` draws."""
    rng = np.random.default_rng(seed)
    curves = [mib_curve(ev, rng.random(ev.graph.n_edges), budgets=budgets) for _ in range(draws)]
    f = np.mean([c["faithfulness"] for c in curves], axis=0).tolist()
    return {"budgets": list(budgets), "faithfulness": f, "cpr": float(np.mean([c["cpr"] for c in curves])),
            "cmd": float(np.mean([c["cmd"] for c in curves])), "draws": draws,
            "cpr_std": float(np.std([c["cpr"] for c in curves])), "cmd_std": float(np.std([c["cmd"] for c in curves]))}
