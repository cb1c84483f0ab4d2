"""Deprecated import paths: one helper that turns a module into a thin, warning re-export of its new home.

A shim module (e.g. ``interp/ablation.py``) is two lines::

    from interp._compat import deprecated_module
    deprecated_module(globals(), "interp.circuits.ablation", "interp.circuits.faithfulness", ...)

On every execution of the shim (every fresh import in a process, every ``importlib.reload``) it emits a
`DeprecationWarning` pointing at the importing line, then copies the public names (``__all__``) of the new modules
into the shim and resolves any other attribute (private helpers) from them on access, so old code gets the very same
objects. A shim of a package with submodules passes ``submodules={"find": "interp.vocab.concepts.find", ...}``: the
aliases are registered in `sys.modules`, so ``import interp.concepts.find`` and ``from interp.concepts.find import x``
keep working and give the new module itself.

Level 0 (core): imports only the standard library.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["deprecated_module", "DEPRECATED_PATHS"]

# every deprecated import path and where it moved (tests/unit/test_layout.py checks each one); removed next release
DEPRECATED_PATHS: dict[str, tuple[str, ...]] = {
    "interp.ablation": ("interp.circuits.ablation", "interp.circuits.faithfulness", "interp.circuits.circuit"),
    "interp.attribution": ("interp.patching.attribution",),
    "interp.heads": ("interp.circuits.heads",),
    "interp.concepts": ("interp.vocab.concepts",),
    "interp.concepts.find": ("interp.vocab.concepts.find",),
    "interp.concepts.judge": ("interp.vocab.concepts.judge",),
    "interp.concepts.lexicon": ("interp.vocab.concepts.lexicon",),
    "interp.cot": ("interp.vocab.cot",),
    "interp.cot.activation": ("interp.vocab.cot.activation",),
    "interp.cot.corrupt": ("interp.vocab.cot.corrupt",),
    "interp.cot.data": ("interp.vocab.cot.data",),
    "interp.cot.generate": ("interp.vocab.cot.generate",),
    "interp.cot.run": ("interp.vocab.cot.run",),
    "interp.pretrained_report": ("interp.report.pretrained",),
    "interp.circuits.report_section": ("interp.report.circuits",),
    "interp.neurons.report_section": ("interp.report.neurons",),
}


def _public(mod: Any) -> list[str]:
    names = getattr(mod, "__all__", None)
    return list(names) if names is not None else [n for n in vars(mod) if not n.startswith("_")]


def deprecated_module(namespace: dict[str, Any], *new: str, submodules: Mapping[str, str] | None = None) -> None:
    """Fill the shim module whose globals are ``namespace`` with the public names of the modules ``new``; warn."""
    old = namespace["__name__"]
    warnings.warn(f"{old} is deprecated and will be removed in the next release; import {' / '.join(new)} instead",
                  DeprecationWarning, stacklevel=3)
    mods = [importlib.import_module(m) for m in new]
    exported: list[str] = []
    for mod in mods:
        for name in _public(mod):
            namespace[name] = getattr(mod, name)
            exported.append(name)
    namespace["__all__"] = exported

    def __getattr__(name: str) -> Any:  # private helpers of the old module, resolved from its new home
        for mod in mods:
            if hasattr(mod, name):
                return getattr(mod, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    namespace["__getattr__"] = __getattr__
    for sub, target in (submodules or {}).items():
        sys.modules[f"{old}.{sub}"] = importlib.import_module(target)
        namespace[sub] = sys.modules[f"{old}.{sub}"]
