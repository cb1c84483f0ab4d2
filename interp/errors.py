"""The error classes of `interp`.

Every error the toolkit raises on bad input is an `InterpError` and also inherits the matching builtin, so
``except ValueError`` keeps working for callers who do not know about `interp`. Messages say what was received,
what was expected and what the valid options are.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "InterpError",
    "UnknownNameError",
    "ShapeError",
    "ModelLoadError",
    "TaskError",
    "FileError",
    "FileFormatError",
    "close_matches_hint",
]


class InterpError(Exception):
    """Base class of every error `interp` raises on purpose."""


class UnknownNameError(InterpError, KeyError):
    """A name (model, site, metric, task, ablation...) that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ShapeError(InterpError, ValueError):
    """Tensors or positions whose shapes or ranges do not fit together."""


class ModelLoadError(InterpError, RuntimeError):
    """A model that cannot be loaded (no network, missing file, missing optional dependency)."""


class TaskError(InterpError, ValueError):
    """A task that cannot be built or used (bad spec, no correct prompts, multi-token numbers...)."""


class FileError(InterpError, OSError):
    """A file or directory that cannot be read or written: missing, a directory where a file is expected, a parent
    that is a file, no permission, disk full (`interp._io` wraps every OS error in it)."""


class FileFormatError(FileError, ValueError):
    """A file that exists but cannot be parsed (invalid JSON, a truncated weights file...)."""


def close_matches_hint(name: str, valid: Iterable[str]) -> str:
    """``"valid: a, b, c; did you mean: b?"`` for error messages."""
    valid = sorted(set(valid))
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f"valid: {', '.join(valid)}"
    if close:
        hint += f"; did you mean: {', '.join(close)}?"
    return hint


def unknown(kind: str, name: str, valid: Iterable[str]) -> UnknownNameError:
    """An `UnknownNameError` for ``kind`` named ``name`` that lists the valid names and close matches."""
    return UnknownNameError(f"unknown {kind} {name!r}; {close_matches_hint(name, valid)}")
