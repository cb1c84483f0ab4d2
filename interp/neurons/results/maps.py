"""Result types of neuron maps (K / KV maps of one neuron) and of the training dynamics (Fig. 10)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from interp.neurons.results.base import _arr, _Saved
from interp.neurons.results.classification import (
    HeuristicMatch,
)

__all__ = ["NeuronMap", "DynamicsResult"]


@dataclass(frozen=True, repr=False)
class NeuronMap(_Saved):
    """A neuron's K and KV maps as op1 x op2 matrices (NaN where illegal) and its top value-vector tokens."""

    kind: ClassVar[str] = "neuron_map"
    op: str
    layer: int
    neuron: int
    lo: int
    hi: int
    k_map: np.ndarray
    kv_map: np.ndarray
    top_tokens: tuple[tuple[str, float], ...]
    heuristics: tuple[Any, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NeuronMap:
        return cls(d["op"], d["layer"], d["neuron"], d["lo"], d["hi"], _arr(d["k_map"]), _arr(d["kv_map"]),
                   tuple((t, v) for t, v in d["top_tokens"]),
                   tuple(HeuristicMatch(**h) if isinstance(h, Mapping) else h for h in d.get("heuristics", ())))

    def plot(self, *, which: str = "k") -> Any:
        """op1 x op2 heatmap of the K (``which="k"``) or KV map; the title lists the top value-vector tokens."""
        from interp.plotting import heatmap

        z = self.k_map if which == "k" else self.kv_map
        ticks = [str(v) for v in range(self.lo, self.hi + 1)]
        toks = ", ".join(t for t, _ in self.top_tokens)
        names = ", ".join(h.name if hasattr(h, "name") else str(h) for h in self.heuristics[:4])
        title = f"L{self.layer}N{self.neuron} {which.upper()} map, op {self.op}" + (f" [{names}]" if names else "")
        fig = heatmap(z, x=ticks, y=ticks, title=f"{title}<br><sub>top value-vector tokens: {toks}</sub>",
                      zlabel="activation" if which == "k" else "act x logit")
        # the subtitle sits in the top margin, clear of the plot and its tick labels
        fig.update_layout(xaxis_title="op2", yaxis_title="op1", margin=dict(t=100),
                          title=dict(y=0.97, yanchor="top"))
        return fig


@dataclass(frozen=True, repr=False)
class DynamicsResult(_Saved):
    """§A.6 on training checkpoints: accuracy, classified fraction, the share of the final model's
    (heuristic, layer, neuron) triples present at each step, and prompt-guided vs random knockout per step."""

    kind: ClassVar[str] = "neuron_dynamics"
    steps: list[int]
    accuracy: dict[str, list[float]]
    classified_fraction: list[float]
    intersection: list[float]
    knockout_per_layer: list[int]
    heuristic_accuracy: dict[str, list[float]]
    random_accuracy: dict[str, list[float]]
    n_final_triples: int = 0
    # Fig. 10b, per operator and step (empty when not computed)
    faithfulness_heuristic: dict[str, list[float]] = field(default_factory=dict)
    faithfulness_mutual: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DynamicsResult:
        """JSON writes NaN (an operator with no correct prompt at a step) as null; read it back as NaN."""
        def nan(v: Any) -> Any:
            if isinstance(v, list):
                return [float("nan") if x is None else x for x in v]
            if isinstance(v, dict):
                return {k: nan(x) for k, x in v.items()}
            return v

        keys = ("accuracy", "classified_fraction", "intersection", "heuristic_accuracy", "random_accuracy",
                "faithfulness_heuristic", "faithfulness_mutual")
        return super().from_dict({k: nan(v) if k in keys else v for k, v in d.items()})

    def mutual_share(self) -> list[float]:
        """Per step, F(mutual neurons) / F(all heuristic neurons), averaged over operators where both are defined
        and F(all) > 0 (the paper's "mutual neurons account for 79% of the heuristics' contribution")."""
        out = []
        for i in range(len(self.steps)):
            r = [self.faithfulness_mutual[op][i] / fa[i] for op, fa in self.faithfulness_heuristic.items()
                 if fa[i] == fa[i] and fa[i] > 0 and self.faithfulness_mutual[op][i] == self.faithfulness_mutual[op][i]]
            out.append(float(np.mean(r)) if r else float("nan"))
        return out

    def plot(self) -> Any:
        from plotly.subplots import make_subplots

        cols = 3 if self.faithfulness_heuristic else 2
        titles = ["Final model's heuristic neurons present / accuracy",
                  "Prompt-guided (solid) vs random (dashed) knockout",
                  "Faithfulness: all heuristic (solid) vs mutual (dashed) neurons"][:cols]
        fig = make_subplots(rows=1, cols=cols, subplot_titles=titles)
        fig.add_scatter(x=self.steps, y=self.intersection, name="intersection ratio", row=1, col=1)
        fig.add_scatter(x=self.steps, y=self.classified_fraction, name="classified fraction", row=1, col=1)
        for op, acc in self.accuracy.items():
            fig.add_scatter(x=self.steps, y=acc, name=f"accuracy {op}", line=dict(dash="dot"), row=1, col=1)
        for key, acc in self.heuristic_accuracy.items():
            fig.add_scatter(x=self.steps, y=acc, name=f"heuristic {key}", row=1, col=2)
            fig.add_scatter(x=self.steps, y=self.random_accuracy[key], name=f"random {key}", line=dict(dash="dash"),
                            row=1, col=2)
        for op, f in self.faithfulness_heuristic.items():
            fig.add_scatter(x=self.steps, y=f, name=f"F all heuristic {op}", row=1, col=3)
            fig.add_scatter(x=self.steps, y=self.faithfulness_mutual.get(op, []), name=f"F mutual {op}",
                            line=dict(dash="dash"), row=1, col=3)
        fig.update_xaxes(title_text="training step")
        fig.update_layout(title="Heuristic neurons across training")
        return fig
