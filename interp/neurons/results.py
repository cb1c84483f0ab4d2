"""Result types of the neuron-level methods: frozen dataclasses with ``to_dict``/``save``/``load`` (atomic JSON)
and ``plot()`` returning plotly figures (never shown or written)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from interp._io import read_json, write_json_atomic
from interp.errors import ShapeError

__all__ = [
    "HeuristicMatch",
    "ClassifiedNeuron",
    "OperatorClassification",
    "NeuronClassification",
    "NeuronImportance",
    "ImportanceCheck",
    "FaithfulnessCurve",
    "ClassKnockoutRow",
    "ClassKnockout",
    "PromptKnockout",
    "FailureAnalysis",
    "NeuronMap",
    "DynamicsResult",
    "NeuronAnalysis",
]


def _plain(x: Any) -> Any:
    """JSON-ready copy: dataclasses -> dicts, numpy -> lists/floats, tuples -> lists, NaN -> None."""
    if is_dataclass(x) and not isinstance(x, type):
        return {f.name: _plain(getattr(x, f.name)) for f in fields(x)}
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if np.isnan(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _arr(x: Any) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in x], dtype=float) if np.ndim(x) == 1 else \
        np.array([[np.nan if v is None else v for v in row] for row in x], dtype=float)


class _Saved:
    """``save``/``load`` through ``to_dict``/``from_dict`` with a type tag."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **_plain(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Any:  # overridden where fields are nested
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})

    def save(self, path: str | os.PathLike[str]) -> Path:
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Any:
        d = read_json(path)
        if d.get("type") != cls.kind:
            raise ShapeError(f"{path} holds a {d.get('type')!r} result, not {cls.kind!r}")
        return cls.from_dict(d)


# ------------------------------------------------------------------------------------------------ classification


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
    """The classified top neurons of one operator, over its full legal grid."""

    op: str
    neurons: tuple[ClassifiedNeuron, ...]
    n_prompts: int
    seconds: float = 0.0

    @property
    def classified_fraction(self) -> float:
        return sum(n.classified for n in self.neurons) / len(self.neurons) if self.neurons else float("nan")

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
                   float(d.get("seconds", 0.0)))


@dataclass(frozen=True)
class NeuronClassification(_Saved):
    """Heuristic classification (Algorithm 1) of the top neurons of every operator of a task."""

    kind: ClassVar[str] = "neuron_classification"
    model: str
    task: str
    config: dict[str, Any]
    ops: dict[str, OperatorClassification]
    seconds: float = 0.0

    @property
    def classified_fraction(self) -> float:
        all_n = [n for oc in self.ops.values() for n in oc.neurons]
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
        import plotly.graph_objects as go

        fig = go.Figure()
        for op, oc in self.ops.items():
            classes = list(oc.by_heuristic().items())[:top]
            fig.add_bar(x=[name for name, _ in classes], y=[len(v) for _, v in classes],
                        name=f"{op} ({100 * oc.classified_fraction:.0f}% classified)")
        fig.update_layout(title=f"Largest heuristic classes of the top neurons ({self.model}, {self.task})",
                          xaxis_title="heuristic", yaxis_title="neurons", barmode="group")
        return fig


# ------------------------------------------------------------------------------------------------------ importance


@dataclass(frozen=True)
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
        """``{layer: the top k (or frac of d_mlp) neurons by score}``, best first; k must lie in 1..d_mlp."""
        from interp.neurons._common import check_top

        n = check_top(self.mean.shape[1], k=k, frac=frac)
        use = self.layers if layers is None else layers
        return {int(l): np.argsort(-self.layer_scores(int(l)), kind="stable")[:n].tolist() for l in use}

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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


# ------------------------------------------------------------------------------------------------------ knockouts


@dataclass(frozen=True)
class ClassKnockoutRow:
    op: str
    heuristic: str
    n_neurons: int
    n_prompts: int
    related_accuracy: float
    unrelated_accuracy: float
    score_sum: float


@dataclass(frozen=True)
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

        rows = sorted(self.rows, key=lambda r: r.related_accuracy - r.unrelated_accuracy)
        x = [f"{r.op} {r.heuristic} ({r.n_neurons})" for r in rows]
        fig = go.Figure()
        fig.add_bar(x=x, y=[r.related_accuracy for r in rows], name="related prompts")
        fig.add_bar(x=x, y=[r.unrelated_accuracy for r in rows], name="unrelated prompts")
        fig.update_layout(title="Heuristic-class knockout: accuracy after zeroing the class's neurons",
                          yaxis_title="accuracy", barmode="group")
        return fig


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


# ------------------------------------------------------------------------------------------------------ maps, dynamics


@dataclass(frozen=True)
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
        fig.update_layout(xaxis_title="op2", yaxis_title="op1")
        return fig


@dataclass(frozen=True)
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


# ------------------------------------------------------------------------------------------------------ the whole run


@dataclass(frozen=True)
class NeuronAnalysis(_Saved):
    """Everything ``interp neurons`` computes; ``to_dict`` is the documented ``neurons.json`` layout."""

    kind: ClassVar[str] = "neuron_analysis"
    model: str
    task: str
    classification: NeuronClassification
    class_knockout: ClassKnockout
    prompt_knockout: dict[str, PromptKnockout]
    failure: dict[str, FailureAnalysis]
    settings: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        c = self.classification
        pk = self.prompt_knockout
        per_layer = next(iter(pk.values())).per_layer if pk else []
        mean = lambda key: [float(np.mean([getattr(r, key)[i] for r in pk.values()]))  # noqa: E731
                            for i in range(len(per_layer))]
        return {
            "type": self.kind,
            "model": self.model,
            "task": self.task,
            "settings": _plain(self.settings),
            "neurons": [
                {"operator": op, "layer": n.layer, "index": n.index, "importance": _plain(n.importance),
                 "heuristics": [_plain(h) for h in n.heuristics]}
                for op, oc in c.ops.items() for n in oc.neurons
            ],
            "classified_fraction": _plain(c.classified_fraction),
            "classified_fraction_by_operator": _plain(c.fractions()),
            "class_knockout": [_plain(r) for r in self.class_knockout.rows],
            "prompt_knockout": {
                "per_layer": per_layer,
                "heuristic_accuracy": mean("heuristic_accuracy") if pk else [],
                "random_accuracy": mean("random_accuracy") if pk else [],
                "by_operator": {op: _plain(r) for op, r in pk.items()},
            },
            "failure_analysis": {op: {**_plain(f), "summary": _plain(f.summary())} for op, f in self.failure.items()},
            "classifier": _plain(c.config),
            "grid_prompts": {op: oc.n_prompts for op, oc in c.ops.items()},
            "classification_seconds": {op: round(oc.seconds, 2) for op, oc in c.ops.items()},
            "seconds": round(self.seconds, 2),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NeuronAnalysis:
        per_op: dict[str, list[ClassifiedNeuron]] = {op: [] for op in d["grid_prompts"]}
        for n in d["neurons"]:
            per_op[n["operator"]].append(ClassifiedNeuron.from_dict(n))
        secs = d.get("classification_seconds", {})
        ops = {op: OperatorClassification(op, tuple(ns), int(d["grid_prompts"][op]), float(secs.get(op, 0.0)))
               for op, ns in per_op.items()}
        classification = NeuronClassification(d["model"], d["task"], dict(d["classifier"]), ops,
                                              float(sum(secs.values())))
        return cls(
            d["model"], d["task"], classification,
            ClassKnockout(tuple(ClassKnockoutRow(**r) for r in d["class_knockout"]),
                          int(d.get("settings", {}).get("min_neurons", 0))),
            {op: PromptKnockout.from_dict(r) for op, r in d["prompt_knockout"]["by_operator"].items()},
            {op: FailureAnalysis.from_dict(f) for op, f in d.get("failure_analysis", {}).items()},
            dict(d.get("settings", {})), float(d["seconds"]),
        )
