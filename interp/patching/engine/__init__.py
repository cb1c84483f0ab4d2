"""Cone-aware exact patching: recompute only what a patch can change, many patches per pass.

A patch at layer ``l`` and position ``p`` cannot change anything before layer ``l`` nor anything at a position
before ``p`` (attention is causal), and the metric reads only the last position's logits. The engine computes
exactly the activations inside that *cone* and reads everything else from the unpatched base run:

* the base and source prompts run once per sweep through an explicit forward that keeps only what the sweep
  reads (the residual stream from the first swept layer on, every layer's keys and values, the patched activation);
* every site reduces to "the residual stream entering layer ``L`` has a new vector at position ``p``": a
  ``resid_pre`` patch at layer ``l`` gives ``L = l``; ``attn_out``/``head`` patches finish layer ``l``'s MLP on
  that one position (``L = l + 1``); ``mlp_out``/``mlp`` patches add the new MLP output to the cached
  ``resid_mid`` and a single neuron is a rank-1 change of the cached residual (``L = l + 1``);
* layers ``L..n-1`` are recomputed only at positions ``p..S-1``; positions ``< p`` enter attention through the
  base run's key/value cache, shared by all variants by broadcasting. In the last layer only the last position's
  query, attention output and MLP are computed, so a last-position patch costs one query row per layer;
* patch variants with the same ``p`` are stacked along the batch axis; those starting at a later layer join the
  batch when the computation reaches their layer, so one pass walks the layer stack once;
* patches whose source value equals the base value for every prompt (a shared BOS token, a last-layer patch
  before the last position) change nothing and are not recomputed; metrics that read only the two answer logits
  (the logit-difference family) get only those two columns of the unembedding.

The explicit forward is written against the bridge's own weights and functions (the ``nn.Linear`` modules the
compatibility-mode forward calls, its normalization formula or HF norm module, rotary tables, activation), and
the unpatched forward reproduces the bridge bit for bit on the supported architectures: TransformerLens-native
models and the Llama adapter, with LayerNorm or RMSNorm, learned or rotary positions, plain or gated MLPs and
grouped-query attention. `ConeEngine.verify` checks it against the bridge (logits and every layer's patchable
activations, relative error ``<= CHECK_RTOL``; once per weights and prompt length). Any other architecture, an
attached hook, or a failed check raises `Unsupported`, and `interp.patching.patch` falls back to one hooked full
forward per chunk of stacked variants.

Part of level 3 (patching). Modules: `budget` (memory sizes), `adapters` (the bridge's pieces, `Unsupported`),
`plan` (pass planning), `core` (`ConeEngine`). May import core (errors, sites) only.
"""

from interp.patching.engine.adapters import Unsupported
from interp.patching.engine.budget import auto_budget, available_bytes, format_bytes, parse_bytes
from interp.patching.engine.core import CHECK_RTOL, ConeEngine, EngineStats
from interp.patching.engine.plan import plan_passes
from interp.patching.result import top_neurons_per_layer

__all__ = [
    "ConeEngine",
    "EngineStats",
    "Unsupported",
    "parse_bytes",
    "format_bytes",
    "top_neurons_per_layer",
    "CHECK_RTOL",
    "auto_budget",
    "available_bytes",
    "plan_passes",
]
