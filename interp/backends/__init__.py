"""Where `interp`'s computations run: the TransformerLens bridge (default) or nnsight (locally or on NDIF).

The backend is chosen when the model is loaded and travels with the model object:

* ``load_model(spec)`` -> a TransformerLens 4 bridge: every pipeline, the cone engine, one process (optionally
  sharded over local GPUs with ``device_map=``/``n_devices=``, `interp.models.placement`);
* ``load_model(spec, backend="nnsight")`` -> an `NNsightModel` wrapping nnsight's ``TransformersModel`` on the
  same Hugging Face weights; ``remote=True`` sends its traces to NDIF. `interp.patching.patch`,
  `interp.patching.attribution.attribution_patch`, `interp.circuits.ablation.mean_cache` and
  `interp.circuits.faithfulness` accept it unchanged (they dispatch on the model: `nnsight_patching`,
  `nnsight_attribution`, `nnsight_ablation`).

nnsight is an optional dependency: ``pip install 'interp[nnsight]'``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from interp.errors import ModelLoadError, unknown

__all__ = ["BACKENDS", "NNSIGHT_EXTRA", "check_backend", "is_nnsight_model", "nnsight_available", "require_nnsight"]

BACKENDS = ("bridge", "nnsight")
NNSIGHT_EXTRA = "pip install 'interp[nnsight]'  (or: pip install 'nnsight>=0.8,<0.9')"


def check_backend(name: str) -> str:
    """``name`` if it is a backend, else `UnknownNameError` listing them."""
    if name not in BACKENDS:
        raise unknown("backend", str(name), BACKENDS)
    return name


def nnsight_available() -> bool:
    return importlib.util.find_spec("nnsight") is not None


def require_nnsight(what: str = "the nnsight backend") -> None:
    """Raise `ModelLoadError` naming the extra to install when nnsight is missing."""
    if not nnsight_available():
        raise ModelLoadError(f"{what} needs the optional package nnsight, which is not installed: {NNSIGHT_EXTRA}")


def is_nnsight_model(model: Any) -> bool:
    """Whether ``model`` is an `NNsightModel` (checked without importing nnsight)."""
    return type(model).__name__ == "NNsightModel" and hasattr(model, "nn")
