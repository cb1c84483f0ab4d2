"""Exact activation patching (the reference method), its cone-aware engine and its result type.

Level 3 (patching): sweep planning shared by every backend (`variants`), exact sweeps (`exact`), the cone engine
(`engine/`), all-position patching (`together`, ``positions="together"``), path patching (`path`, through the cone
in `path_cone`), attribution patching (`attribution`), `PatchResult` and result helpers (`result`). May import core,
models and tasks.
"""

from interp.patching.exact import ENGINES, patch, patch_by_group
from interp.patching.result import PatchResult, top_neurons_per_layer
from interp.patching.variants import DIRECTIONS, resolve_positions

__all__ = ["DIRECTIONS", "ENGINES", "PatchResult", "patch", "patch_by_group", "resolve_positions",
           "top_neurons_per_layer"]
