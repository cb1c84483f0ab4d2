"""Concept neurons (Rai & Yao, ACL 2024): neurons whose value vectors promote arithmetic and reasoning concepts.

    from interp.vocab.concepts import find_concept_neurons, load_lexicon
    found = find_concept_neurons(model)                  # lexicon rule: >= 2 of the top-20 tokens in a lexicon
    found.counts()                                       # {'connections': ..., 'add': ..., ...}
    found.neurons("add")                                 # {layer: [neuron, ...]}
    lex = load_lexicon(extra={"add": ["adding"], "mod": {"question": "...", "tokens": ["mod", "remainder"]}})
    find_concept_neurons(model, lexicon=lex, judge=my_judge)   # judge(tokens, question) -> "yes"/"no"

Part of level 6 (`interp.vocab`): may import levels 0-6 below `interp.report`.
"""

from interp.vocab.concepts.find import (
    PAPER_SKIP_FRACTION,
    ConceptNeuron,
    ConceptNeurons,
    default_skip_layers,
    find_concept_neurons,
)
from interp.vocab.concepts.judge import Judge, JudgeError, judge_prompt, llm_judge, parse_verdict
from interp.vocab.concepts.lexicon import (
    BUILTIN_CONCEPTS,
    Concept,
    ConceptError,
    Lexicon,
    load_lexicon,
    normalize_token,
)

__all__ = [
    "BUILTIN_CONCEPTS",
    "PAPER_SKIP_FRACTION",
    "Concept",
    "ConceptError",
    "ConceptNeuron",
    "ConceptNeurons",
    "Judge",
    "JudgeError",
    "Lexicon",
    "default_skip_layers",
    "find_concept_neurons",
    "judge_prompt",
    "llm_judge",
    "load_lexicon",
    "normalize_token",
    "parse_verdict",
]
