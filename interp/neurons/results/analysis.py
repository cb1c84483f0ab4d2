"""`NeuronAnalysis`: the whole neuron pipeline's result (``analyze_neurons``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from interp.neurons.results.base import _plain, _Saved
from interp.neurons.results.classification import (
    ClassifiedNeuron,
    NeuronClassification,
    OperatorClassification,
)
from interp.neurons.results.knockout import ClassKnockout, ClassKnockoutRow, FailureAnalysis, PromptKnockout

__all__ = ["NeuronAnalysis"]


@dataclass(frozen=True, repr=False)
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
            "skipped_families": {op: dict(oc.skipped_families) for op, oc in c.ops.items()},
            "seconds": round(self.seconds, 2),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NeuronAnalysis:
        per_op: dict[str, list[ClassifiedNeuron]] = {op: [] for op in d["grid_prompts"]}
        for n in d["neurons"]:
            per_op[n["operator"]].append(ClassifiedNeuron.from_dict(n))
        secs = d.get("classification_seconds", {})
        skipped = d.get("skipped_families") or {}
        ops = {op: OperatorClassification(op, tuple(ns), int(d["grid_prompts"][op]), float(secs.get(op, 0.0)),
                                          dict(skipped.get(op) or {}))
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
