"""interp: mechanistic interpretability on TransformerLens 4.

Load a model, build a task, patch::

    import interp
    model = interp.load_model("toy-arith")
    pairs = interp.parse_task("arith:+").pairs(model, n_per_op=50)
    result = interp.patch(model, pairs, site="heads", positions="all")
    result.plot()

The package map (levels, the one-way import rule) is in docs/CONTRIBUTING.md; this facade re-exports public names
of levels 0-3. The re-exports are lazy (PEP 562 ``__getattr__``): ``import interp`` (and so ``interp --help``) does not
import torch; the first access to e.g. ``interp.load_model`` imports the module that defines it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from interp import _env  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch is imported)

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "InterpError": "interp.errors",
    "ModelLoadError": "interp.errors",
    "ShapeError": "interp.errors",
    "TaskError": "interp.errors",
    "UnknownNameError": "interp.errors",
    "METRICS": "interp.metrics",
    "list_models": "interp.models",
    "load_model": "interp.models",
    "PatchResult": "interp.patching",
    "patch": "interp.patching",
    "Site": "interp.sites",
    "ArithTask": "interp.tasks",
    "PromptPairs": "interp.tasks",
    "parse_task": "interp.tasks",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - static tools see the eager imports
    from interp.errors import InterpError, ModelLoadError, ShapeError, TaskError, UnknownNameError  # noqa: F401
    from interp.metrics import METRICS  # noqa: F401
    from interp.models import list_models, load_model  # noqa: F401
    from interp.patching import PatchResult, patch  # noqa: F401
    from interp.sites import Site  # noqa: F401
    from interp.tasks import ArithTask, PromptPairs, parse_task  # noqa: F401


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'interp' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(_EXPORTS) | {"__version__"} | {k for k in globals() if k.startswith("__")})
