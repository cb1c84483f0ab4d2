"""Deprecated: moved to `interp.vocab.cot` (its submodules alias the new ones)."""

from interp._compat import deprecated_module

deprecated_module(globals(), "interp.vocab.cot",
                  submodules={m: f"interp.vocab.cot.{m}" for m in ("activation", "corrupt", "data", "generate", "run")})
