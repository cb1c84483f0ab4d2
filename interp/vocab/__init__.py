"""Level 6: vocabulary-space analyses.

Value vectors in vocabulary space (Geva et al., EMNLP 2022; LM-Debugger, methods.md §C).

An MLP layer computes ``FFN(x) = sum_i m_i v_i``: the *coefficient* ``m_i`` is neuron i's activation
(``blocks.{l}.mlp.hook_post``; the gated product in SwiGLU models) and the *value vector* ``v_i`` is row i of
``W_out``. Each *sub-update* ``m_i v_i`` pushes the residual stream in a fixed direction, and projecting that
direction onto the unembedding, ``r_i = v_i @ W_U``, shows which tokens the neuron promotes (largest entries) and
suppresses (smallest).

* `project_values` / `top_tokens`: the projection of chosen value vectors, ``raw`` (``W_out[n] @ W_U``, the
  LM-Debugger and Rai & Yao choice; in compatibility mode the final norm's gain is already folded into ``W_U``) or
  ``final_norm`` (the vector is first passed through the model's final normalization, ffn-values'
  ``project_value_to_vocab``; for RMSNorm this rescales the logits but keeps their order).
* `scan_values`: the top and bottom ``k`` tokens of *every* neuron of every layer, in chunked matmuls. With
  ``precision="auto"`` candidates are ranked in bfloat16 when that is faster on this machine (AMX CPUs, GPUs) and the
  ``k + margin`` best are re-scored in float32, so the returned logits are float32-exact.
* `dominant_subupdates`: the sub-updates of one prompt position ranked by the *scaled coefficient*
  ``|m_i| * ||v_i||`` (Geva et al.; the quantity Rai & Yao's "Algorithm one" ranks).
* `intervene` / `compare_generation`: LM-Debugger's interventions. *Promote* sets a neuron's coefficient so that its
  scaled coefficient equals the layer's current maximum + 0.01 (LM-Debugger writes that number into GPT-2's
  pre-activation; here the coefficient itself is set, which is what a gated MLP has); *suppress* sets it to 0. Both
  act at every position; the hooks are removed when the context exits, also on error.

Modules: `projection` (value vectors, `top_tokens`, shared names), `scan` (`scan_values`), `subupdates`
(`dominant_subupdates`), `interventions` (`intervene`, `compare_generation`); subpackages `concepts` (concept neurons,
Rai & Yao 2024) and `cot` (chain-of-thought variants). May import levels 0-5 (core, models, tasks, patching,
circuits, neurons); never `interp.report` or `interp.cli`. Importing `interp.vocab` does not import `concepts` or
`cot`.
"""

from interp.vocab.interventions import InterventionResult, compare_generation, intervene, normalize_neurons
from interp.vocab.projection import (
    INTERVENTIONS,
    NORMS,
    PRECISIONS,
    TokenLogit,
    VocabError,
    project_values,
    top_tokens,
    value_norms,
    value_vectors,
    vocab_strings,
)
from interp.vocab.scan import ValueProjection, scan_values
from interp.vocab.subupdates import SubUpdate, SubUpdates, dominant_subupdates

__all__ = [
    "NORMS",
    "PRECISIONS",
    "INTERVENTIONS",
    "VocabError",
    "TokenLogit",
    "ValueProjection",
    "SubUpdate",
    "SubUpdates",
    "InterventionResult",
    "vocab_strings",
    "value_vectors",
    "value_norms",
    "project_values",
    "top_tokens",
    "scan_values",
    "dominant_subupdates",
    "normalize_neurons",
    "intervene",
    "compare_generation",
]
