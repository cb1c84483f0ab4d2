"""Deprecated: moved to `interp.circuits.ablation`, `interp.circuits.faithfulness` and `interp.circuits.circuit`."""

from interp._compat import deprecated_module

deprecated_module(globals(), "interp.circuits.ablation", "interp.circuits.faithfulness", "interp.circuits.circuit")
