"""Result types of neuron importance: per-neuron effects, the AtP-vs-exact check, the faithfulness-vs-k curve."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from interp.errors import ShapeError
from interp.neurons.results.base import _arr, _Saved

__all__ = ["NeuronImportance", "ImportanceCheck", "FaithfulnessCurve"]


@dataclass(frozen=True, repr=False)
class NeuronImportance(_Saved):
    """Per-neuron importance at the last position: mean and std over prompts of the per-prompt effect.

    ``score = mean + std`` is the paper code's ranking (``get_neuron_importance_scores``). Arrays are
    ``[layer d_mlp]``; ``method`` is ``atp`` (attribution patching) or ``exact`` (activation patching).
    """

    kind: ClassVar[str] = "neuron_importance"
    mean: np.ndarray
    std: np.ndarray
    method: str
    metric: str
    n_prompts: int
    layers: list[int]
    group: str = ""
    task: str = ""
    model: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.mean.shape != self.std.shape or self.mean.shape[0] != len(self.layers):
            raise ShapeError(f"mean {self.mean.shape} and std {self.std.shape} must be [layer d_mlp] for layers "
                             f"{self.layers}")

    def _repr_top(self) -> list[tuple[str, Any]]:
        s = self.score
        flat = np.argsort(-np.nan_to_num(s, nan=-np.inf).reshape(-1), kind="stable")[:3]
        return [(f"L{self.layers[i // s.shape[1]]}N{i % s.shape[1]}", float(s.reshape(-1)[i])) for i in flat]

    @property
    def score(self) -> np.ndarray:
        """``mean + std`` over prompts, ``[layer d_mlp]`` (rows follow ``layers``)."""
        return self.mean + self.std

    def layer_scores(self, layer: int) -> np.ndarray:
        if layer not in self.layers:
            raise ShapeError(f"layer {layer} was not scored (scored layers: {self.layers})")
        return self.score[self.layers.index(layer)]

    def top(self, *, k: int | None = None, frac: float | None = None,
            layers: list[int] | None = None) -> dict[int, list[int]]:
        """``{layer: the top k (or frac of d_mlp) neurons by score}``, best first; k must lie in 1..d_mlp.

        A neuron whose importance is exactly 0 (mean and std: patching it never changes the metric, e.g. a neuron
        that never activates) is never "top": a layer's list can be shorter than k (`zero_importance` lists those
        neurons). NaN scores (undefined) rank after every number, with a warning."""
        from interp.neurons._common import check_top
        from interp.patching.result import rank_order

        n = check_top(self.mean.shape[1], k=k, frac=frac)
        use = self.layers if layers is None else layers
        out = {}
        for l in use:
            score = self.layer_scores(int(l))
            zero = self._zero_row(int(l))
            order = [int(i) for i in rank_order(score, what=f"L{l} neuron scores") if not zero[i]]
            out[int(l)] = order[:n]
        return out

    def _zero_row(self, layer: int) -> np.ndarray:
        row = self.layers.index(layer)
        return (self.mean[row] == 0) & (self.std[row] == 0)

    def zero_importance(self) -> dict[int, list[int]]:
        """``{layer: neurons whose importance is exactly 0}`` (mean and std 0): never ranked as top neurons."""
        if any(layer not in self.layers for layer in self.layers):  # pragma: no cover - layers are validated
            raise ShapeError("bad layers")
        return {int(l): np.flatnonzero(self._zero_row(int(l))).tolist() for l in self.layers}

    def importance_of(self, layer: int, neuron: int) -> float:
        return float(self.layer_scores(layer)[neuron])

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NeuronImportance:
        return cls(_arr(d["mean"]), _arr(d["std"]), d["method"], d["metric"], int(d["n_prompts"]),
                   [int(x) for x in d["layers"]], d.get("group", ""), d.get("task", ""), d.get("model", ""),
                   float(d.get("seconds", 0.0)))

    def plot(self) -> Any:
        """Fig. 4a: every neuron's score per layer, sorted - only a few neurons matter."""
        import plotly.graph_objects as go

        fig = go.Figure()
        for row, l in enumerate(self.layers):
            fig.add_scatter(y=np.sort(self.score[row])[::-1], mode="lines", name=f"L{l}")
        fig.update_layout(title=f"Neuron importance ({self.method}, mean+std of {self.metric}) {self.group}",
                          xaxis_title="neuron rank", yaxis_title="score", xaxis_type="log")
        return fig


@dataclass(frozen=True, repr=False)
class ImportanceCheck(_Saved):
    """Estimated (AtP) versus exact patching of chosen neurons at the last position.

    ``estimate``/``exact`` are the mean effects over prompts; ``estimate_score``/``exact_score`` the ranking scores
    (mean + std). The paper's IE metric is a ratio of probabilities, far from linear, so AtP's values are rough
    while its ranking is what matters: compare ``spearman`` and the exact scores of the chosen neurons.
    """

    kind: ClassVar[str] = "importance_check"
    layers: list[int]
    neurons: list[int]
    estimate: list[float]
    exact: list[float]
    estimate_score: list[float]
    exact_score: list[float]

    @staticmethod
    def _spearman(a: list[float], b: list[float]) -> float:
        if len(a) < 2:
            return float("nan")
        return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])

    @property
    def pearson(self) -> float:
        return float(np.corrcoef(self.estimate, self.exact)[0, 1]) if len(self.exact) > 1 else float("nan")

    @property
    def spearman(self) -> float:
        """Rank correlation of the estimated and exact mean effects."""
        return self._spearman(self.estimate, self.exact)

    @property
    def score_spearman(self) -> float:
        """Rank correlation of the estimated and exact ranking scores (mean + std)."""
        return self._spearman(self.estimate_score, self.exact_score)

    def plot(self) -> Any:
        import plotly.graph_objects as go

        text = [f"L{l}N{n}" for l, n in zip(self.layers, self.neurons)]
        fig = go.Figure(go.Scatter(x=self.estimate_score, y=self.exact_score, mode="markers", text=text))
        fig.update_layout(title=f"Estimated vs exact neuron score (Spearman {self.score_spearman:.2f})",
                          xaxis_title="estimate (mean + std)", yaxis_title="exact patching (mean + std)")
        return fig


@dataclass(frozen=True, repr=False)
class FaithfulnessCurve(_Saved):
    """Fig. 4b: faithfulness (Eq. 2) of the circuit keeping the top-k neurons per layer, for each k."""

    kind: ClassVar[str] = "faithfulness_curve"
    ks: list[int]
    values: dict[str, list[float]]
    layers: list[int]
    d_mlp: int
    ablation: str = "mean"

    def plot(self) -> Any:
        import plotly.graph_objects as go

        fig = go.Figure()
        for op, v in self.values.items():
            fig.add_scatter(x=self.ks, y=v, mode="lines+markers", name=op)
        fig.update_layout(title=f"Faithfulness vs top-k neurons per layer (layers {self.layers}, {self.ablation} "
                          "ablation of the rest)", xaxis_title="k (neurons per layer)", yaxis_title="faithfulness")
        return fig
