"""`PatchResult`: a patching sweep's effects with named axes, labels, provenance, save/load and plots."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp._io import read_json, write_json_atomic
from interp.errors import ShapeError
from interp.metrics import RAW_METRICS

__all__ = ["PatchResult", "top_neurons_per_layer", "rank_order"]

log = logging.getLogger(__name__)


def rank_order(score: np.ndarray, *, what: str = "entries", warn: bool = True) -> np.ndarray:
    """Indices of the flat ``score`` from largest to smallest, NaN always last (never first, whatever the sign).

    ``+inf`` ranks first and ``-inf`` last among the numbers; ties keep index order. NaN scores are undefined: they
    rank after every number and, with ``warn``, one warning says how many there are."""
    x = np.asarray(score, dtype=np.float64).reshape(-1)
    nan = np.isnan(x)
    order = np.lexsort((np.arange(len(x)), -np.where(nan, 0.0, x), nan))  # last key sorts first: defined, then size
    if warn and nan.any():
        log.warning("%d of %d %s have an undefined (NaN) score; they rank last", int(nan.sum()), len(x), what)
    return order


@dataclass(frozen=True)
class PatchResult:
    """Effects of a patching sweep.

    ``effects`` has one axis per name in ``axes`` (e.g. ``("layer", "pos", "head")``); ``index[axis]`` holds the
    integer index of every entry along that axis (layers, token positions, heads, neurons) and ``labels[axis]``
    its human label (``L3``, ``op2``...). ``stderr`` is the standard error of the mean over prompts.
    ``baseline`` holds the metric of the unpatched base run and of the source run.
    """

    effects: np.ndarray
    axes: tuple[str, ...]
    index: dict[str, list[int]]
    labels: dict[str, list[str]]
    site: str
    metric: str
    model: str = ""
    task: str = ""
    direction: str = "noising"
    n_prompts: int = 0
    n_forward_passes: int = 0
    seconds: float = 0.0
    stderr: np.ndarray | None = None
    baseline: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = tuple(len(self.index[a]) for a in self.axes)
        if self.effects.shape != shape:
            raise ValueError(f"effects shape {self.effects.shape} does not match axes {self.axes} of sizes {shape}")

    def __repr__(self) -> str:
        from interp._repr import short_repr

        shape = " x ".join(f"{len(self.index[a])} {a}" for a in self.axes)
        on = f" on {self.task}" if self.task else ""
        return short_repr("PatchResult", f"{self.site} patching, metric {self.metric}, {self.direction}{on}, "
                          f"{self.n_prompts} prompts", shape=shape, top=self.top(3))

    # ------------------------------------------------------------------------------------------ access
    def values(self, **where: int) -> np.ndarray:
        """Effects with some axes fixed by their index value, e.g. ``values(pos=4)`` -> [layer, head]."""
        arr, axes = self.effects, list(self.axes)
        for ax, val in where.items():
            i = axes.index(ax)
            arr = np.take(arr, self.index[ax].index(val), axis=i)
            axes.pop(i)
        return arr

    def rank_key(self) -> np.ndarray:
        """What `top` ranks by: the change of each effect from the unpatched run.

        For ``logit_diff`` and ``prob`` (the metric of the patched run itself) that is ``effect - baseline["base"]``;
        every other metric is 0 on the unpatched run by construction, so the effect is the change."""
        if self.metric not in RAW_METRICS:
            return self.effects
        base = self.baseline.get("base")
        if base is None or not np.isfinite(base):
            raise ShapeError(f"ranking a {self.metric!r} sweep needs the unpatched value baseline['base'] (an "
                             f"effect is the change from it); this result has baseline {self.baseline}")
        return self.effects - float(base)

    def top(self, k: int = 10, *, by_abs: bool = True) -> list[tuple[str, float]]:
        """The ``k`` entries with the largest effect as ``(label, effect)``, label like ``L3 op2 H1``.

        Ranked by `rank_key`: the change from the unpatched run (for ``logit_diff``/``prob`` the effect minus
        ``baseline["base"]``; for every other metric the effect itself), by absolute value unless ``by_abs=False``.
        The returned value is the effect as stored. NaN effects (no defined prompt) rank last and a warning counts
        them; ``+inf`` ranks first."""
        from interp.checks import check_int

        k = check_int(k, "k", lo=0)
        key = self.rank_key().reshape(-1)
        flat = self.effects.reshape(-1)
        order = rank_order(np.abs(key) if by_abs else key, what=f"{self.site} effects")[: int(k)]
        out = []
        for f in order:
            idx = np.unravel_index(int(f), self.effects.shape)
            out.append((" ".join(self.labels[a][i] for a, i in zip(self.axes, idx)), float(flat[f])))
        return out

    def to_frame(self) -> Any:
        """A tidy pandas DataFrame: one row per entry with an index and a label column per axis."""
        import pandas as pd

        rows = []
        for idx in np.ndindex(*self.effects.shape):
            row: dict[str, Any] = {}
            for a, i in zip(self.axes, idx):
                row[a] = self.index[a][i]
                row[f"{a}_label"] = self.labels[a][i]
            row["effect"] = float(self.effects[idx])
            if self.stderr is not None:
                row["stderr"] = float(self.stderr[idx])
            rows.append(row)
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------------------------------ io
    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "task": self.task,
            "site": self.site,
            "metric": self.metric,
            "direction": self.direction,
            "axes": list(self.axes),
            "labels": {a: list(self.labels[a]) for a in self.axes},
            "index": {a: list(map(int, self.index[a])) for a in self.axes},
            "effects": self.effects.tolist(),
            "stderr": None if self.stderr is None else self.stderr.tolist(),
            "baseline": self.baseline,
            "n_prompts": self.n_prompts,
            "n_forward_passes": self.n_forward_passes,
            "seconds": self.seconds,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PatchResult:
        axes = tuple(d["axes"])
        return cls(
            effects=np.asarray(d["effects"], dtype=np.float64),
            axes=axes,
            index={a: list(d["index"][a]) for a in axes},
            labels={a: list(d["labels"][a]) for a in axes},
            site=d["site"],
            metric=d["metric"],
            model=d.get("model", ""),
            task=d.get("task", ""),
            direction=d.get("direction", "noising"),
            n_prompts=d.get("n_prompts", 0),
            n_forward_passes=d.get("n_forward_passes", 0),
            seconds=d.get("seconds", 0.0),
            stderr=None if d.get("stderr") is None else np.asarray(d["stderr"], dtype=np.float64),
            baseline=d.get("baseline", {}),
            meta=d.get("meta", {}),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write JSON atomically."""
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PatchResult:
        return cls.from_dict(read_json(path))

    def plot(self, *, title: str | None = None, transform: str = "auto") -> Any:
        """A plotly `Figure` (a diverging heatmap centred at 0; one panel per position for head and neuron sweeps).

        ``transform="log1p"`` colours by sign(x)·log(1+|x|), the paper's display of indirect effects, with the
        colour bar labelled in raw units; ``"auto"`` (default) does so when the effects span three decades or more;
        ``"none"`` keeps a linear scale. Show it with ``fig.show()`` or save it with ``fig.write_html("f.html")``.
        """
        from interp.plotting import plot_patch_result

        return plot_patch_result(self, title=title, transform=transform)


def top_neurons_per_layer(result: Any, k: int, *, pos: int | None = None, by_abs: bool = True) -> dict[int, list[int]]:
    """The ``k`` neurons of each layer with the largest effect in a neuron sweep (``neurons=`` of a later sweep).

    ``pos`` picks one position; by default a neuron's score is its largest effect over the swept positions.
    Scores are changes from the unpatched run (`PatchResult.rank_key`); NaN scores rank last with a warning.
    """
    if tuple(result.axes) != ("layer", "pos", "neuron"):
        raise ShapeError(f"top_neurons_per_layer needs a neuron sweep with axes (layer, pos, neuron); "
                         f"got {result.axes}")
    key = result.rank_key() if isinstance(result, PatchResult) else result.effects
    eff = np.abs(key) if by_abs else key
    if pos is not None:
        if pos not in result.index["pos"]:
            raise ShapeError(f"position {pos} is not in the sweep (positions {result.index['pos']})")
        score = eff[:, result.index["pos"].index(pos), :]
    else:
        all_nan = np.isnan(eff).all(axis=1)
        score = np.where(all_nan, np.nan, np.nanmax(np.where(np.isnan(eff), -np.inf, eff), axis=1))
    if isinstance(k, bool) or int(k) != k or int(k) < 1:
        raise ShapeError(f"k must be a positive integer (neurons per layer); got {k!r}")
    kk = min(int(k), score.shape[1])
    n_nan = int(np.isnan(score).sum())
    if n_nan:
        log.warning("%d of %d neurons have an undefined (NaN) score; they rank last", n_nan, score.size)
    out = {}
    for i, lyr in enumerate(result.index["layer"]):
        order = rank_order(score[i], warn=False)[:kk]
        out[int(lyr)] = [int(result.index["neuron"][j]) for j in order]
    return out
