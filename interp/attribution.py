"""Deprecated: moved to `interp.patching.attribution`."""

from interp._compat import deprecated_module

deprecated_module(globals(), "interp.patching.attribution")
