"""Exact activation patching (the reference method) and its result type."""

from interp.patching.exact import DIRECTIONS, patch, resolve_positions
from interp.patching.result import PatchResult

__all__ = ["DIRECTIONS", "PatchResult", "patch", "resolve_positions"]
