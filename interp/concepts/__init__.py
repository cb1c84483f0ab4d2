"""Deprecated: moved to `interp.vocab.concepts` (submodules ``find``, ``judge``, ``lexicon`` alias the new ones)."""

from interp._compat import deprecated_module

deprecated_module(globals(), "interp.vocab.concepts",
                  submodules={m: f"interp.vocab.concepts.{m}" for m in ("find", "judge", "lexicon")})
