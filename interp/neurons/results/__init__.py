"""Result types of the neuron-level methods: frozen dataclasses with ``to_dict``/``save``/``load`` (atomic JSON)
and ``plot()`` returning plotly figures (never shown or written); one module per method (`classification`,
`importance`, `knockout`, `maps`, `analysis`) on the shared `base`.

Part of level 5 (neurons): may import core only (lazily `interp.plotting`, `interp.neurons._common`).
"""

from interp.neurons.results.analysis import NeuronAnalysis
from interp.neurons.results.classification import (
    ClassifiedNeuron,
    HeuristicMatch,
    NeuronClassification,
    OperatorClassification,
)
from interp.neurons.results.importance import FaithfulnessCurve, ImportanceCheck, NeuronImportance
from interp.neurons.results.knockout import ClassKnockout, ClassKnockoutRow, FailureAnalysis, PromptKnockout
from interp.neurons.results.maps import DynamicsResult, NeuronMap

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
