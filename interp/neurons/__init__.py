"""Neuron-level heuristics (Nikankin et al., "Arithmetic Without Algorithms", ICLR 2025, §3-§5; methods.md §A.2-§A.6).

The pipeline, one module per step:

* `importance` - which MLP neurons matter at the last position (AtP or exact patching, ranked by mean + std over
  prompts), top-k per layer, the faithfulness-vs-k curve;
* `maps` - K maps (activation over every legal (op1, op2)), the value-vector logit lens, KV maps; streamed;
* `heuristics` - Algorithm 1: which heuristics (range, mod, pattern, value, same-operand, multi-value) each
  neuron implements, direct ones on KV maps, indirect ones on K maps; `candidates` - the heuristics themselves,
  their parameter grids and top-k rules;
* `knockout` - zeroing neurons: heuristic-class knockout (Fig. 7), prompt-guided vs random knockout (Fig. 8),
  correct vs incorrect prompts (Fig. 9);
* `dynamics` - the same across training checkpoints (§5, Fig. 10);
* `results` - the result dataclasses (save/load/plot); `pipeline` - `analyze_neurons`, the whole run.

Level 5 (neurons): may import levels 0-4 (core, models, tasks, patching, circuits); never vocab, report, cli.
"""

from interp.neurons._common import NeuronError
from interp.neurons.heuristics import ClassifierConfig, Heuristic, HeuristicScorer, classify_maps, parse_heuristic
from interp.neurons.maps import OperandGrid, iter_maps, neuron_map, neuron_maps, top_value_tokens, value_logits
from interp.neurons.results import (
    ClassifiedNeuron,
    ClassKnockout,
    DynamicsResult,
    FailureAnalysis,
    FaithfulnessCurve,
    HeuristicMatch,
    ImportanceCheck,
    NeuronAnalysis,
    NeuronClassification,
    NeuronImportance,
    NeuronMap,
    OperatorClassification,
    PromptKnockout,
)

__all__ = [
    "NeuronError",
    "ClassifierConfig",
    "Heuristic",
    "HeuristicScorer",
    "classify_maps",
    "parse_heuristic",
    "OperandGrid",
    "iter_maps",
    "neuron_map",
    "neuron_maps",
    "top_value_tokens",
    "value_logits",
    "ClassifiedNeuron",
    "ClassKnockout",
    "DynamicsResult",
    "FailureAnalysis",
    "FaithfulnessCurve",
    "HeuristicMatch",
    "ImportanceCheck",
    "NeuronAnalysis",
    "NeuronClassification",
    "NeuronImportance",
    "NeuronMap",
    "OperatorClassification",
    "PromptKnockout",
]
