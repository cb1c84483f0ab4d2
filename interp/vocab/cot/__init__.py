"""Chain-of-thought prompt variants and concept neurons (Rai & Yao, ACL 2024; methods.md §B).

    from interp.vocab.cot import run_cot, corruption_experiment, load_problems
    from interp.vocab.concepts import find_concept_neurons
    concepts = find_concept_neurons(model)
    res = run_cot(model, concept_neurons=concepts, n_problems=64)       # accuracy + activation per variant
    res.correlation["all"]                                               # accuracy vs activation across variants
    corruption_experiment(model, concepts, variant="full_cot", mode="noise")   # concept vs random neurons

Data: 64 word problems written for the project (`interp/data/word_problems.json`) and 8-shot exemplar sets in
the seven variants of the paper plus a no-CoT baseline (`interp/data/cot_variants.json`).

Part of level 6 (`interp.vocab`): may import levels 0-6 below `interp.report`.
"""

from interp.vocab.cot.activation import ConceptActivation, DominantCollector
from interp.vocab.cot.corrupt import CORRUPTIONS, corrupt_neurons, random_like
from interp.vocab.cot.data import (
    VARIANTS,
    CotError,
    Exemplar,
    Variant,
    WordProblem,
    answer_complete,
    build_prefix,
    build_query,
    extract_answer,
    load_problems,
    load_variants,
)
from interp.vocab.cot.generate import Generation, greedy_generate
from interp.vocab.cot.run import (
    CorruptionResult,
    CotResult,
    ProblemOutcome,
    VariantResult,
    concept_neuron_sets,
    correlation,
    corruption_experiment,
    evaluate_variant,
    run_cot,
)

__all__ = [
    "CORRUPTIONS",
    "VARIANTS",
    "ConceptActivation",
    "CorruptionResult",
    "CotError",
    "CotResult",
    "DominantCollector",
    "Exemplar",
    "Generation",
    "ProblemOutcome",
    "Variant",
    "VariantResult",
    "WordProblem",
    "answer_complete",
    "build_prefix",
    "build_query",
    "concept_neuron_sets",
    "correlation",
    "corrupt_neurons",
    "corruption_experiment",
    "evaluate_variant",
    "extract_answer",
    "greedy_generate",
    "load_problems",
    "load_variants",
    "random_like",
    "run_cot",
]
