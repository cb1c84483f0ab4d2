"""Results of edge-level circuit discovery: `EdgeScores` (a float per edge) and `EdgeCircuit` (a set of edges).

Both save to JSON (edges by MIB name, NaN as null), load back, check the edge names against the graph, and plot
(plotly figures, never shown).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp._io import read_json, write_json_atomic
from interp.circuits.edges.graph import EdgeError, EdgeGraph

__all__ = ["EdgeScores", "EdgeCircuit", "graph_from_cfg", "ranking_key"]


def graph_from_cfg(cfg: dict[str, Any]) -> EdgeGraph:
    try:
        return EdgeGraph(int(cfg["n_layers"]), int(cfg["n_heads"]), int(cfg.get("n_key_value_heads") or cfg["n_heads"]),
                         model=str(cfg.get("model", "")), parallel_attn_mlp=bool(cfg.get("parallel_attn_mlp", False)))
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgeError(f"the file's 'cfg' block is malformed ({exc}); it needs n_layers and n_heads") from None


def _num(x: float) -> float | None:
    return None if not math.isfinite(float(x)) else float(x)


def _scores_from(graph: EdgeGraph, edges: dict[str, Any], what: str) -> np.ndarray:
    idx = graph.edges_from_names(list(edges))
    out = np.full(graph.n_edges, np.nan)
    out[idx] = [np.nan if v is None else float(v) for v in edges.values()]
    return out


def ranking_key(scores: np.ndarray, metric: str, *, absolute: bool) -> np.ndarray:
    """|scores|, or (``absolute=False``) the helpfulness ``helps_sign(metric) * scores`` of scores under ``metric``."""
    from interp.circuits.edges.prep import helps_sign

    scores = np.asarray(scores, dtype=np.float64)
    return np.abs(scores) if absolute else helps_sign(metric) * scores


@dataclass(frozen=True)
class EdgeScores:
    """One score per edge of ``graph`` (edge order = ``graph.names``), from `edge_scores`."""

    graph: EdgeGraph
    scores: np.ndarray
    method: str = ""
    ablation: str = "counterfactual"
    metric: str = "logit_diff"
    ig_steps: int = 1
    model: str = ""
    task: str = ""
    n_prompts: int = 0
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scores.shape != (self.graph.n_edges,):
            raise EdgeError(f"{self.scores.shape} scores for a graph of {self.graph.n_edges} edges")

    def __repr__(self) -> str:
        return (f"EdgeScores({self.method}, {self.model or '?'}, {self.graph.n_edges} edges, {self.n_prompts} prompts, "
                f"{self.ablation}, {self.metric})")

    @property
    def helpfulness(self) -> np.ndarray:
        """``helps_sign(metric) * scores``: positive for an edge whose ablation moves the model toward the corrupt
        answer (it helps the behaviour), whatever the metric's direction. MIB's scores have this sign."""
        return ranking_key(self.scores, self.metric, absolute=False)

    def ranking_key(self, absolute: bool = True) -> np.ndarray:
        """What selection ranks by: |score| (``absolute=True``, MIB's CMD) or the helpfulness (``absolute=False``,
        MIB's signed selection for CPR: the edges that help the behaviour most first)."""
        return ranking_key(self.scores, self.metric, absolute=absolute)

    def top(self, k: int = 10, *, absolute: bool = True) -> list[tuple[str, float]]:
        """The ``k`` edges with the largest |score| (or, ``absolute=False``, the ``k`` most helpful edges)."""
        from interp.checks import check_int

        k = check_int(k, "k", lo=0)
        key = self.ranking_key(absolute)
        order = np.argsort(-np.nan_to_num(key, nan=-np.inf), kind="stable")[:k]
        return [(self.graph.names[i], float(self.scores[i])) for i in order]

    def matrix(self) -> np.ndarray:
        """[n_senders n_receivers] scores (NaN where no edge exists)."""
        m = np.full(self.graph.real.shape, np.nan)
        s, r = self.graph.edge_index
        m[s, r] = self.scores
        return m

    def circuit(self, n: int | None = None, *, threshold: float | None = None, absolute: bool = True,
                prune: bool = True) -> EdgeCircuit:
        """The top-``n`` edges (or those whose key is >= ``threshold``), pruned; see `select`. The key is |score|,
        or with ``absolute=False`` the helpfulness (`helpfulness`: the edges that help the behaviour most)."""
        from interp.circuits.edges.select import prune_edges, threshold_edges, top_n_edges

        if (n is None) == (threshold is None):
            raise EdgeError("give exactly one of n= (top-n edges) or threshold=")
        key = self.ranking_key(absolute)
        edges = (top_n_edges(key, n, absolute=False) if n is not None
                 else threshold_edges(key, threshold, absolute=False))  # type: ignore[arg-type]
        if prune:
            edges = prune_edges(self.graph, edges)
        return EdgeCircuit(self.graph, tuple(int(e) for e in edges), scores=self.scores, method=self.method,
                           ablation=self.ablation, metric=self.metric, model=self.model, task=self.task)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "edge_scores", "cfg": self.graph.to_cfg(), "method": self.method, "ablation": self.ablation,
            "metric": self.metric, "ig_steps": self.ig_steps, "model": self.model, "task": self.task,
            "n_prompts": self.n_prompts, "seconds": self.seconds, "meta": self.meta,
            "edges": {n: _num(v) for n, v in zip(self.graph.names, self.scores)},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EdgeScores:
        if d.get("kind") != "edge_scores":
            raise EdgeError("not an edge-scores file (no \"kind\": \"edge_scores\"); MIB files load with load_mib")
        g = graph_from_cfg(d["cfg"])
        return cls(g, _scores_from(g, d["edges"], "scores"), d.get("method", ""), d.get("ablation", "counterfactual"),
                   d.get("metric", "logit_diff"), int(d.get("ig_steps", 1)), d.get("model", ""), d.get("task", ""),
                   int(d.get("n_prompts", 0)), float(d.get("seconds", 0.0)), dict(d.get("meta", {})))

    def save(self, path: str | os.PathLike[str]) -> Path:
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EdgeScores:
        return cls.from_dict(read_json(path))

    def plot(self, k: int = 30, *, title: str | None = None) -> Any:
        """Bar chart of the ``k`` edges with the largest |score|."""
        import plotly.graph_objects as go

        top = self.top(k)[::-1]
        fig = go.Figure(go.Bar(x=[v for _, v in top], y=[n for n, _ in top], orientation="h"))
        fig.update_layout(title=title or f"top {k} edges ({self.method}, {self.model})", height=200 + 18 * len(top),
                          xaxis_title=f"score ({self.metric}, {self.ablation})")
        return fig


@dataclass(frozen=True)
class EdgeCircuit:
    """A set of edges of ``graph`` (edge indices), with the scores it was chosen from and its evaluation."""

    graph: EdgeGraph
    edges: tuple[int, ...]
    scores: np.ndarray | None = None
    method: str = ""
    ablation: str = "counterfactual"
    metric: str = "logit_diff"
    model: str = ""
    task: str = ""
    faithfulness: float = float("nan")
    curve: dict[str, Any] = field(default_factory=dict)  # MIB curve: budgets, faithfulness, cpr, cmd
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        f = "" if math.isnan(self.faithfulness) else f", faithfulness {self.faithfulness:.3f}"
        return f"EdgeCircuit({len(self.edges)}/{self.graph.n_edges} edges, {self.model or '?'}{f})"

    @property
    def names(self) -> list[str]:
        return [self.graph.names[i] for i in self.edges]

    @property
    def mask(self) -> np.ndarray:
        return self.graph.mask(self.edges)

    @property
    def nodes(self) -> list[str]:
        """Senders with an outgoing edge in the circuit, plus the logits if any edge reaches them."""
        s, r = self.graph.edge_index
        idx = np.asarray(self.edges, dtype=np.int64)
        out = sorted(set(s[idx].tolist()))
        names = [self.graph.senders[i] for i in out]
        if np.any(r[idx] == len(self.graph.receivers) - 1):
            names.append("logits")
        return names

    @classmethod
    def from_names(cls, graph: EdgeGraph, names: list[str], **kw: Any) -> EdgeCircuit:
        return cls(graph, tuple(int(i) for i in graph.edges_from_names(names)), **kw)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": "edge_circuit", "cfg": self.graph.to_cfg(), "method": self.method, "ablation": self.ablation,
            "metric": self.metric, "model": self.model, "task": self.task, "faithfulness": _num(self.faithfulness),
            "curve": {k: ([_num(x) for x in v] if isinstance(v, list) else (_num(v) if isinstance(v, float) else v))
                      for k, v in self.curve.items()},
            "meta": self.meta, "edges": self.names,
        }
        if self.scores is not None:
            d["scores"] = {n: _num(v) for n, v in zip(self.graph.names, self.scores)}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EdgeCircuit:
        if d.get("kind") != "edge_circuit":
            raise EdgeError("not an edge-circuit file (no \"kind\": \"edge_circuit\"); MIB files load with load_mib")
        g = graph_from_cfg(d["cfg"])
        scores = _scores_from(g, d["scores"], "scores") if d.get("scores") is not None else None
        f = d.get("faithfulness")
        return cls.from_names(g, list(d["edges"]), scores=scores, method=d.get("method", ""),
                              ablation=d.get("ablation", "counterfactual"), metric=d.get("metric", "logit_diff"),
                              model=d.get("model", ""), task=d.get("task", ""),
                              faithfulness=float("nan") if f is None else float(f),
                              curve={k: ([float("nan") if x is None else x for x in v] if isinstance(v, list) else v)
                                     for k, v in d.get("curve", {}).items()},
                              meta=dict(d.get("meta", {})))

    def save(self, path: str | os.PathLike[str]) -> Path:
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EdgeCircuit:
        return cls.from_dict(read_json(path))

    def plot(self, *, title: str | None = None, max_edges: int = 400) -> Any:
        """The kept edges as a layered graph (plotly): input at the bottom, each layer's heads, then its MLP, the
        logits on top; edge width by |score|, colour by the receiver input (q, k, v, MLP/logits)."""
        from interp.circuits.edges.plots import plot_edge_circuit

        return plot_edge_circuit(self, title=title, max_edges=max_edges)

    def plot_curve(self, *, title: str | None = None) -> Any:
        from interp.circuits.edges.plots import plot_mib_curve

        return plot_mib_curve(self.curve, title=title)
