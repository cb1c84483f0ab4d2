"""Deprecated: moved to `interp.circuits.heads`."""

from interp._compat import deprecated_module

deprecated_module(globals(), "interp.circuits.heads")
