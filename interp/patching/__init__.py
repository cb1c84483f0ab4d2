"""Exact activation patching (the reference method), its cone-aware engine and its result type.

Level 3 (patching): exact sweeps (`exact`), the cone engine (`engine/`), all-position patching
(`together`, ``positions="together"``), path patching (`path`, through the cone in `path_cone`), attribution
patching (`attribution`), `PatchResult` and result helpers (`result`). May import core, models and tasks.
"""

from interp.patching.exact import DIRECTIONS, ENGINES, patch, resolve_positions
from interp.patching.result import PatchResult, top_neurons_per_layer

__all__ = ["DIRECTIONS", "ENGINES", "PatchResult", "patch", "resolve_positions", "top_neurons_per_layer"]
