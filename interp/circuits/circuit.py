"""`Circuit`: a found (or hand-written) circuit, its faithfulness, curve and sensitivity; JSON save/load and plots."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp._io import read_json, write_json_atomic
from interp.circuits.ablation import check_ablation

__all__ = ["Circuit"]


# ---------------------------------------------------------------------------------------------------- Circuit


@dataclass(frozen=True)
class Circuit:
    """A circuit found by `interp.circuits.find_circuit` (or written by hand) and how faithful it is.

    ``heads`` are ``(layer, head)``, ``mlps`` MLP layers kept whole, ``neurons`` optional per-layer neuron lists
    (overriding ``mlps`` for their layer). ``faithfulness`` is Eq. 2 under ``ablation`` on held-out prompts;
    ``curve`` is the sweep it was chosen from (``{"n_heads", "n_mlps", "faithfulness"}`` per step) and
    ``sensitivity`` the same circuit's faithfulness under every ablation.
    """

    heads: tuple[tuple[int, int], ...]
    mlps: tuple[int, ...]
    ablation: str = "mean"
    faithfulness: float = float("nan")
    curve: tuple[dict[str, Any], ...] = ()
    sensitivity: dict[str, float] = field(default_factory=dict)
    model: str = ""
    task: str = ""
    operator: str | None = None
    target: float | None = None
    n_layers: int = 0
    n_heads_total: int = 0
    neurons: dict[int, tuple[int, ...]] | None = None
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", tuple((int(l), int(h)) for l, h in self.heads))
        object.__setattr__(self, "mlps", tuple(int(l) for l in self.mlps))
        if self.neurons is not None:
            object.__setattr__(self, "neurons", {int(k): tuple(int(n) for n in v) for k, v in self.neurons.items()})
        check_ablation(self.ablation)

    def __repr__(self) -> str:
        op = f", operator {self.operator}" if self.operator else ""
        heads = ", ".join(f"L{l}H{h}" for l, h in self.heads[:3]) + (", ..." if len(self.heads) > 3 else "")
        return (f"Circuit({len(self.heads)} heads [{heads}], {len(self.mlps)} MLPs; F = {self.faithfulness:.3f} "
                f"under {self.ablation} ablation{op})")

    @property
    def labels(self) -> list[str]:
        return [f"L{l}H{h}" for l, h in self.heads] + [f"MLP{l}" for l in self.mlps]

    def keep(self) -> dict[str, Any]:
        """Keyword arguments for `faithfulness` / `ablation_hooks`: ``keep_heads``, ``keep_mlps``, ``keep_neurons``."""
        return {"keep_heads": set(self.heads), "keep_mlps": set(self.mlps), "keep_neurons": self.neurons}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "task": self.task,
            "operator": self.operator,
            "heads": [list(x) for x in self.heads],
            "mlps": list(self.mlps),
            "neurons": None if self.neurons is None else {str(k): list(v) for k, v in self.neurons.items()},
            "ablation": self.ablation,
            "faithfulness": _num(self.faithfulness),
            "target": self.target,
            "curve": _jsonable([dict(row) for row in self.curve]),
            "sensitivity": _jsonable(dict(self.sensitivity)),
            "n_layers": self.n_layers,
            "n_heads_total": self.n_heads_total,
            "seconds": self.seconds,
            "meta": _jsonable(self.meta),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Circuit:
        nan = float("nan")
        neurons = d.get("neurons")
        return cls(
            heads=tuple(tuple(x) for x in d["heads"]),  # type: ignore[misc]
            mlps=tuple(d["mlps"]),
            ablation=d.get("ablation", "mean"),
            faithfulness=nan if d.get("faithfulness") is None else float(d["faithfulness"]),
            curve=tuple(
                {k: nan if (v is None and k == "faithfulness") else v for k, v in row.items()}
                for row in d.get("curve", ())
            ),
            sensitivity={k: nan if v is None else float(v) for k, v in d.get("sensitivity", {}).items()},
            model=d.get("model", ""),
            task=d.get("task", ""),
            operator=d.get("operator"),
            target=d.get("target"),
            n_layers=int(d.get("n_layers", 0)),
            n_heads_total=int(d.get("n_heads_total", 0)),
            neurons=None if neurons is None else {int(k): tuple(v) for k, v in neurons.items()},
            seconds=float(d.get("seconds", 0.0)),
            meta=dict(d.get("meta", {})),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write JSON atomically (NaN written as null)."""
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Circuit:
        return cls.from_dict(read_json(path))

    def plot(self, *, title: str | None = None) -> Any:
        """Faithfulness against circuit size (the sweep), the chosen circuit and the target marked."""
        from interp.circuits.plots import plot_curve

        return plot_curve(self, title=title)

    def diagram(self, *, title: str | None = None) -> Any:
        """A plotly circuit diagram: layers as rows, heads and MLPs as nodes, kept ones highlighted."""
        from interp.circuits.plots import plot_diagram

        return plot_diagram(self, title=title)


def _num(x: Any) -> Any:
    if isinstance(x, float | np.floating) and not math.isfinite(float(x)):
        return None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


def _jsonable(x: Any) -> Any:
    """Plain JSON types, NaN and infinities as null (strict JSON)."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return _num(x)
