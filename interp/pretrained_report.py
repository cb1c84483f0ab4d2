"""Deprecated: moved to `interp.report.pretrained`."""

from interp._compat import deprecated_module

deprecated_module(globals(), "interp.report.pretrained")
