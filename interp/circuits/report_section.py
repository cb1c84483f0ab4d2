"""Deprecated: moved to `interp.report.circuits`."""

from interp._compat import deprecated_module

deprecated_module(globals(), "interp.report.circuits")
