"""Exact activation patching (the reference method), its cone-aware engine and its result type."""


from interp.patching.exact import DIRECTIONS, ENGINES, patch, resolve_positions
from interp.patching.result import PatchResult, top_neurons_per_layer

__all__ = ["DIRECTIONS", "ENGINES", "PatchResult", "patch", "resolve_positions", "top_neurons_per_layer"]
