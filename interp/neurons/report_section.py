"""Deprecated: moved to `interp.report.neurons`."""

from interp._compat import deprecated_module

deprecated_module(globals(), "interp.report.neurons")
