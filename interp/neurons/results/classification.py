"""Result types of Algorithm 1: which heuristics each neuron implements, per operator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from interp.neurons.results.base import _Saved

__all__ = ["HeuristicMatch", "ClassifiedNeuron", "OperatorClassification", "NeuronClassification"]


@dataclass(frozen=True)
class HeuristicMatch:
    """A heuristic a neuron implements: ``kind`` is ``direct`` (result, KV map) or ``indirect`` (operands, K map)."""

    name: str
    kind: str
    score: float


@dataclass(frozen=True)
class ClassifiedNeuron:
    layer: int
    index: int
    importance: float | None
    heuristics: tuple[HeuristicMatch, ...] = ()

    @property
    def classified(self) -> bool:
        return bool(self.heuristics)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassifiedNeuron:
        return cls(int(d["layer"]), int(d["index"]), d.get("importance"),
                   tuple(HeuristicMatch(h["name"], h["kind"], float(h["score"])) for h in d.get("heuristics", ())))


@dataclass(frozen=True)
class OperatorClassification:
    """The classified top neurons of one operator, over its full legal grid.

    ``skipped_families`` names each heuristic family (``op1_range``, ``result_mod``, ...) that had no valid
    candidate on this grid, with the reason (on a small grid, e.g. 0-9, every operand range of the standard lengths
    covers more than half of the prompts), so "no label" is never silent.

    ``inactive`` lists ``(layer, neuron)`` pairs that were chosen but never activate on the grid (activation exactly
    0 on every prompt): they are not classified and not in ``neurons``."""

    op: str
    neurons: tuple[ClassifiedNeuron, ...]
    n_prompts: int
    seconds: float = 0.0
    skipped_families: dict[str, str] = field(default_factory=dict)
    inactive: tuple[tuple[int, int], ...] = ()

    @property
    def classified_fraction(self) -> float:
        """Classified share of the neurons with nonzero importance (unknown importance counts; a neuron whose
        importance is exactly 0 does not, nor does an inactive one)."""
        counted = [n for n in self.neurons if n.importance is None or n.importance != 0]
        return sum(n.classified for n in counted) / len(counted) if counted else float("nan")

    def by_heuristic(self) -> dict[str, list[tuple[int, int, float]]]:
        """``{heuristic: [(layer, neuron, score)]}``, largest classes first."""
        out: dict[str, list[tuple[int, int, float]]] = {}
        for n in self.neurons:
            for h in n.heuristics:
                out.setdefault(h.name, []).append((n.layer, n.index, h.score))
        return dict(sorted(out.items(), key=lambda kv: (-len(kv[1]), kv[0])))

    def top_neurons(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for n in self.neurons:
            out.setdefault(n.layer, []).append(n.index)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OperatorClassification:
        return cls(d["op"], tuple(ClassifiedNeuron.from_dict(n) for n in d["neurons"]), int(d["n_prompts"]),
                   float(d.get("seconds", 0.0)), dict(d.get("skipped_families") or {}),
                   tuple((int(a), int(b)) for a, b in d.get("inactive", ())))


@dataclass(frozen=True, repr=False)
class NeuronClassification(_Saved):
    """Heuristic classification (Algorithm 1) of the top neurons of every operator of a task."""

    kind: ClassVar[str] = "neuron_classification"
    model: str
    task: str
    config: dict[str, Any]
    ops: dict[str, OperatorClassification]
    seconds: float = 0.0

    def _repr_top(self) -> list[tuple[str, Any]]:
        counts: dict[str, int] = {}
        for oc in self.ops.values():
            for name, members in oc.by_heuristic().items():
                counts[name] = counts.get(name, 0) + len(members)
        return sorted(counts.items(), key=lambda kv: -kv[1])

    @property
    def classified_fraction(self) -> float:
        all_n = [n for oc in self.ops.values() for n in oc.neurons if n.importance is None or n.importance != 0]
        return sum(n.classified for n in all_n) / len(all_n) if all_n else float("nan")

    def fractions(self) -> dict[str, float]:
        return {op: oc.classified_fraction for op, oc in self.ops.items()}

    def to_frame(self) -> Any:
        import pandas as pd

        rows = [{"op": op, "layer": n.layer, "neuron": n.index, "importance": n.importance, "heuristic": h.name,
                 "kind": h.kind, "score": h.score}
                for op, oc in self.ops.items() for n in oc.neurons for h in (n.heuristics or (None,)) if h]
        return pd.DataFrame(rows)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NeuronClassification:
        return cls(d["model"], d["task"], dict(d["config"]),
                   {op: OperatorClassification.from_dict(v) for op, v in d["ops"].items()}, float(d["seconds"]))

    def plot(self, *, top: int = 15) -> Any:
        """Bars: the largest heuristic classes per operator (neuron counts), classified fraction in the legend."""

        from plotly.subplots import make_subplots

        # one panel of horizontal bars per operator: long class names stay readable, no 30-label x axis
        ops = list(self.ops.items())
        cols = min(2, max(1, len(ops)))
        rows = (len(ops) + cols - 1) // cols
        fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.32, vertical_spacing=0.12 if rows > 1 else 0,
                            subplot_titles=[f"operator {op}: {100 * oc.classified_fraction:.0f}% of "
                                            f"{len(oc.neurons)} neurons classified" for op, oc in ops])
        for i, (op, oc) in enumerate(ops):
            classes = list(oc.by_heuristic().items())[:top]
            r, c = i // cols + 1, i % cols + 1
            fig.add_bar(y=[name for name, _ in classes], x=[len(v) for _, v in classes], orientation="h",
                        name=op, showlegend=False, row=r, col=c,
                        hovertemplate="%{y}: %{x} neurons<extra></extra>")
            fig.update_yaxes(autorange="reversed", automargin=True, tickfont=dict(size=10), row=r, col=c)
            fig.update_xaxes(title_text="neurons", row=r, col=c)
        fig.update_layout(title=f"Largest heuristic classes of the top neurons ({self.model}, {self.task})",
                          height=max(360, rows * (60 + 19 * top) + 100), margin=dict(t=90, b=50, l=40, r=20))
        return fig
