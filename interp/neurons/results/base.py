"""The base of every neuron result: `_Saved` (``to_dict``/``save``/``load``, atomic JSON) and JSON helpers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from interp._io import read_json, write_json_atomic
from interp.errors import ShapeError

__all__: list[str] = []


def _plain(x: Any) -> Any:
    """JSON-ready copy: dataclasses -> dicts, numpy -> lists/floats, tuples -> lists, NaN -> None."""
    if is_dataclass(x) and not isinstance(x, type):
        return {f.name: _plain(getattr(x, f.name)) for f in fields(x)}
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if np.isnan(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _arr(x: Any) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in x], dtype=float) if np.ndim(x) == 1 else \
        np.array([[np.nan if v is None else v for v in row] for row in x], dtype=float)


class _Saved:
    """``save``/``load`` through ``to_dict``/``from_dict`` with a type tag."""

    kind: ClassVar[str] = ""

    def _repr_top(self) -> list[tuple[str, Any]]:
        """The (label, value) pairs `__repr__` shows as "top" (subclasses with a ranking override it)."""
        return []

    def __repr__(self) -> str:
        """One line: the class, its scalar fields, the size of the others, and its top 3 (see `_repr_top`)."""
        from interp._repr import fmt_value, short_repr

        parts = []
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, str):
                if v:
                    parts.append(f"{f.name} {v}" if len(v) < 40 else f"{f.name} {v[:37]}...")
            elif isinstance(v, (bool, int, float, np.integer, np.floating)):
                parts.append(f"{f.name} {fmt_value(v)}")
            elif isinstance(v, np.ndarray):
                parts.append(f"{f.name} array{tuple(v.shape)}")
            elif isinstance(v, Mapping):
                keys = list(v)
                parts.append(f"{f.name} {{{', '.join(map(str, keys[:6]))}{', ...' if len(keys) > 6 else ''}}}")
            elif isinstance(v, (list, tuple)):
                parts.append(f"{f.name} [{len(v)}]")
        return short_repr(type(self).__name__, ", ".join(parts), top=self._repr_top())

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **_plain(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Any:  # overridden where fields are nested
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})

    def save(self, path: str | os.PathLike[str]) -> Path:
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Any:
        d = read_json(path)
        if d.get("type") != cls.kind:
            raise ShapeError(f"{path} holds a {d.get('type')!r} result, not {cls.kind!r}")
        return cls.from_dict(d)
