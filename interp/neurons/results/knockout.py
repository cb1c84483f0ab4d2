"""Result types of knockouts: heuristic-class knockout (Fig. 7), prompt-guided vs random (Fig. 8), failures (Fig. 9)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from interp.neurons.results.base import _Saved

__all__ = ["ClassKnockoutRow", "ClassKnockout", "PromptKnockout", "FailureAnalysis"]


@dataclass(frozen=True)
class ClassKnockoutRow:
    op: str
    heuristic: str
    n_neurons: int
    n_prompts: int
    related_accuracy: float
    unrelated_accuracy: float
    score_sum: float


@dataclass(frozen=True, repr=False)
class ClassKnockout(_Saved):
    """Fig. 7: zeroing one heuristic class's neurons hurts prompts it applies to more than other prompts."""

    kind: ClassVar[str] = "class_knockout"
    rows: tuple[ClassKnockoutRow, ...]
    min_neurons: int

    def means(self) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for op in dict.fromkeys(r.op for r in self.rows):
            rs = [r for r in self.rows if r.op == op]
            out[op] = (float(np.mean([r.related_accuracy for r in rs])),
                       float(np.mean([r.unrelated_accuracy for r in rs])))
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassKnockout:
        return cls(tuple(ClassKnockoutRow(**r) for r in d["rows"]), int(d["min_neurons"]))

    def plot(self) -> Any:
        import plotly.graph_objects as go

        # horizontal bars: class names stay readable however many classes there are; the largest drop on top
        rows = sorted(self.rows, key=lambda r: r.related_accuracy - r.unrelated_accuracy, reverse=True)
        y = [f"{r.op} {r.heuristic} ({r.n_neurons} neurons)" for r in rows]
        fig = go.Figure()
        fig.add_bar(y=y, x=[r.related_accuracy for r in rows], name="prompts the class is related to",
                    orientation="h")
        fig.add_bar(y=y, x=[r.unrelated_accuracy for r in rows], name="unrelated prompts", orientation="h")
        fig.update_layout(title="Heuristic-class knockout: accuracy after zeroing each class's neurons",
                          xaxis_title="accuracy after the knockout (1.0 before)", xaxis_range=[0, 1.02],
                          yaxis=dict(title="operator, heuristic class", automargin=True),
                          barmode="group", height=max(320, 140 + 34 * len(rows)),
                          legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"),
                          margin=dict(t=90, b=50, r=20))
        return fig


@dataclass(frozen=True, repr=False)
class PromptKnockout(_Saved):
    """Fig. 8: per prompt, zero up to L of its associated heuristic neurons per layer, vs as many random top ones."""

    kind: ClassVar[str] = "prompt_knockout"
    op: str
    per_layer: list[int]
    heuristic_accuracy: list[float]
    random_accuracy: list[float]
    mean_ablated: list[float]
    mean_random_ablated: list[float]
    n_prompts: int
    rank_by: str = "count"
    random_pool: str = "top"  # where the random neurons come from (interp.neurons.knockout.RANDOM_POOLS or custom)
    pool_sizes: dict[str, int] = field(default_factory=dict)  # the pool's size per layer

    def plot(self) -> Any:
        return _knockout_figure({self.op: self})

    @staticmethod
    def figure(results: Mapping[str, PromptKnockout]) -> Any:
        return _knockout_figure(results)


def _knockout_figure(results: Mapping[str, PromptKnockout]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    for op, r in results.items():
        fig.add_scatter(x=r.per_layer, y=r.heuristic_accuracy, mode="lines+markers", name=f"{op} heuristic neurons")
        fig.add_scatter(x=r.per_layer, y=r.random_accuracy, mode="lines+markers", name=f"{op} random top neurons",
                        line=dict(dash="dash"))
    fig.update_layout(title="Prompt-guided knockout vs random knockout", xaxis_title="neurons zeroed per layer",
                      yaxis_title="accuracy", yaxis_range=[0, 1.02])
    return fig


@dataclass(frozen=True, repr=False)
class FailureAnalysis(_Saved):
    """Fig. 9: for correct and incorrect prompts, the number of associated heuristic neurons and their summed
    contribution to the correct answer's logit (activation x value-vector logit of the answer)."""

    kind: ClassVar[str] = "failure_analysis"
    op: str
    correct_counts: list[int]
    incorrect_counts: list[int]
    correct_logit: list[float]
    incorrect_logit: list[float]

    def summary(self) -> dict[str, float]:
        m = lambda x: float(np.mean(x)) if len(x) else float("nan")  # noqa: E731
        return {"correct_mean_neurons": m(self.correct_counts), "incorrect_mean_neurons": m(self.incorrect_counts),
                "correct_mean_logit": m(self.correct_logit), "incorrect_mean_logit": m(self.incorrect_logit)}

    def plot(self) -> Any:
        import plotly.graph_objects as go

        fig = go.Figure()
        fig.add_scatter(x=self.correct_logit, y=self.correct_counts, mode="markers", name="correct")
        fig.add_scatter(x=self.incorrect_logit, y=self.incorrect_counts, mode="markers", name="incorrect")
        fig.update_layout(title=f"Correct vs incorrect prompts ({self.op})",
                          xaxis_title="summed logit contribution to the correct answer",
                          yaxis_title="associated heuristic neurons")
        return fig
