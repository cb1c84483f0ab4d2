"""Sweep planning, shared by every patching backend: which patch variants a sweep has and how per-prompt metric
values become a `PatchResult`.

* `resolve_positions` (``"all"``, ``"last"``, ``"i,j"``, ints), `PatchSpec` (one variant: layer, position, unit);
* `oriented_pairs` / `prepare_sweep`: validate site, metric and direction and orient the pairs so the base run is
  ``clean_tokens`` (``direction="denoising"`` swaps the prompts only, TransformerLens's meaning);
* `plan_sweep_variants` -> `SweepVariants`: the validated layers, positions, units and variants of a sweep;
* `sweep_result`: a `PatchResult` from means and standard errors over the defined prompts, undefined counts in
  ``meta["n_undefined"]`` with one warning, axes and labels.

The engines that run the variants are in `interp.patching.exact` (bridge: cone or full passes), `together`
(every position at once) and `interp.backends` (nnsight).
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp.errors import ShapeError, unknown
from interp.metrics import METRICS
from interp.patching.result import PatchResult
from interp.sites import CLI_SITES, SWEEP_AXES, check_layer, check_layers, check_site_exists, site_kind, site_units
from interp.tasks.base import PromptPairs

__all__ = ["DIRECTIONS", "PatchSpec", "SweepVariants", "cli_site", "oriented_pairs", "plan_sweep_variants",
           "prepare_sweep", "resolve_positions", "sweep_axes", "sweep_result"]

log = logging.getLogger(__name__)

DIRECTIONS = ("noising", "denoising")


def resolve_positions(positions: str | int | Sequence[int], seq_len: int) -> list[int]:
    """``"all"``, ``"last"``, an int, ``"i,j"`` or a list of ints -> sorted non-negative positions."""
    valid = (f"'all', 'last', an int, comma-separated ints like '3,4' or a list of ints in 0..{seq_len - 1} "
             "(negative counts from the end)")
    if isinstance(positions, str):
        if positions == "all":
            return list(range(seq_len))
        if positions == "last":
            return [seq_len - 1]
        try:
            positions = [int(p) for p in positions.split(",") if p.strip()]
        except ValueError:
            raise ShapeError(f"positions {positions!r} must be {valid}") from None
    if isinstance(positions, numbers.Integral) and not isinstance(positions, bool):
        positions = [positions]
    if isinstance(positions, (bool, float, bytes)) or not hasattr(positions, "__iter__"):
        raise ShapeError(f"positions {positions!r} must be {valid}")
    out = []
    for p in positions:
        if isinstance(p, bool) or not isinstance(p, numbers.Integral):
            raise ShapeError(f"position {p!r} is not an integer; positions must be {valid}")
        if not -seq_len <= int(p) < seq_len:
            raise ShapeError(f"position {p} is out of range for prompts of {seq_len} tokens (valid: 0..{seq_len - 1})")
        out.append(int(p) % seq_len)
    if not out:
        raise ShapeError("no positions given")
    return sorted(set(out))


@dataclass(frozen=True)
class PatchSpec:
    """One patch variant: at ``layer``'s hook, position ``pos``, optional ``unit`` (head or neuron index)."""

    layer: int
    pos: int
    unit: int | None = None


def _variants(kind: str, layers: list[int], positions: list[int], units: list[int] | None) -> list[PatchSpec]:
    if kind in ("head", "neuron"):
        assert units is not None
        return [PatchSpec(l, p, u) for l in layers for p in positions for u in units]
    return [PatchSpec(l, p) for l in layers for p in positions]


def _per_layer_neurons(model: Any, neurons: Mapping[int, Sequence[int]], layers: list[int] | None,
                       ) -> tuple[list[int], dict[int, list[int]]]:
    """Validate ``{layer: [neurons]}`` (e.g. the top k of each layer); every list must have the same length."""
    per = {int(k): [int(n) for n in v] for k, v in neurons.items()}
    layer_list = sorted(per) if layers is None else layers
    missing = [lyr for lyr in layer_list if lyr not in per]
    if missing:
        raise ShapeError(f"neurons= has no list for layers {missing}; it has layers {sorted(per)}")
    lengths = {len(per[lyr]) for lyr in layer_list}
    if len(lengths) != 1 or 0 in lengths:
        raise ShapeError(f"per-layer neuron lists must be non-empty and of equal length; got lengths "
                         f"{ {lyr: len(per[lyr]) for lyr in layer_list} }")
    for lyr in layer_list:
        site_units(model, "neuron", per[lyr])  # range check
    return layer_list, {lyr: per[lyr] for lyr in layer_list}


def oriented_pairs(pairs: PromptPairs, direction: str) -> PromptPairs:
    """``pairs`` with the *base* (patched) run in ``clean_tokens`` and the source run in ``corrupt_tokens``.

    ``denoising`` swaps the prompts only: the base run is the corrupt prompt, the source the clean one, while
    ``clean_answers`` (``r``) and ``corrupt_answers`` (``r2``) keep their meaning, so a metric keeps its orientation
    (TransformerLens's denoising). `PromptPairs.swapped` also swaps the answers, which flips every metric's sign.
    """
    if direction == "noising":
        return pairs
    return dataclasses.replace(pairs, clean_tokens=pairs.corrupt_tokens, corrupt_tokens=pairs.clean_tokens,
                               clean=pairs.corrupt, corrupt=pairs.clean)


def prepare_sweep(model: Any, pairs: PromptPairs, site: str, metric: str, direction: str) -> tuple[str, PromptPairs]:
    """Validate a sweep's site, metric and direction; return the site kind and the pairs oriented so that the
    base run is ``pairs.clean_tokens`` (the corrupt prompt for ``direction="denoising"``, `oriented_pairs`)."""
    kind = site_kind(site)
    if metric not in METRICS:
        raise unknown("metric", metric, METRICS)
    if direction not in DIRECTIONS:
        raise unknown("direction", direction, DIRECTIONS)
    pairs = oriented_pairs(pairs, direction)
    pairs.check_vocab(model)
    check_site_exists(model, kind)
    return kind, pairs


@dataclass(frozen=True)
class SweepVariants:
    """A validated sweep: site kind, oriented pairs, layers, positions, units and one `PatchSpec` per variant."""

    kind: str
    pairs: PromptPairs
    layers: list[int]
    positions: list[int]
    units: list[int] | None
    per_layer: dict[int, list[int]] | None
    variants: list[PatchSpec]

    @property
    def batch(self) -> int:
        return self.pairs.n


def plan_sweep_variants(model: Any, pairs: PromptPairs, *, site: str, positions: str | int | Sequence[int],
                        metric: str, direction: str, layers: Sequence[int] | None,
                        neurons: Sequence[int] | Mapping[int, Sequence[int]] | None, max_rows: int | None,
                        ) -> SweepVariants:
    """Validate a sweep's arguments (as `patch` takes them) and list its variants; shared by every backend."""
    kind, pairs = prepare_sweep(model, pairs, site, metric, direction)
    n_layers = int(model.cfg.n_layers)
    layer_list = None if layers is None else check_layers(model, layers)  # [], True, 1.7, 99 -> ShapeError
    per_layer: dict[int, list[int]] | None = None
    if kind == "neuron" and isinstance(neurons, Mapping):
        layer_list, per_layer = _per_layer_neurons(model, neurons, layer_list)
    elif isinstance(neurons, Mapping):
        raise ShapeError(f"neurons={{layer: [...]}} only applies to site='neurons', not {site!r}")
    if layer_list is None:
        layer_list = list(range(n_layers))
    for lyr in layer_list:
        check_layer(model, lyr)
    pos_list = resolve_positions(positions, pairs.seq_len)
    if per_layer is not None:
        units = list(range(len(next(iter(per_layer.values())))))
        variants = [PatchSpec(lyr, p, per_layer[lyr][r]) for lyr in layer_list for p in pos_list for r in units]
    else:
        units = site_units(model, kind, neurons)  # type: ignore[arg-type]
        variants = _variants(kind, layer_list, pos_list, units)
    if max_rows is not None and pairs.n > max_rows:
        raise ShapeError(f"max_rows={max_rows} is smaller than one patch of {pairs.n} prompts; raise it to >= "
                         f"{pairs.n}")
    return SweepVariants(kind, pairs, layer_list, pos_list, units, per_layer, variants)


def cli_site(kind: str) -> str:
    """The command-line site name (``heads``, ``mlps``, ...) of a site kind, as results record it."""
    return next((k for k, v in CLI_SITES.items() if v == kind), kind)


def sweep_axes(kind: str, pairs: PromptPairs, layers: list[int], positions: list[int], units: list[int] | None,
               per_layer: Mapping[int, Sequence[int]] | None = None,
               ) -> tuple[tuple[str, ...], dict[str, list[int]], dict[str, list[str]]]:
    """``(axes, index, labels)`` of a layer x position sweep of ``kind``: a head or neuron axis where the site has
    units, a ``rank`` axis for per-layer neuron lists (``per_layer``); shared by every sweep that returns a
    `PatchResult` (exact, attribution, nnsight)."""
    index: dict[str, list[int]] = {"layer": list(layers), "pos": list(positions)}
    labels: dict[str, list[str]] = {
        "layer": [f"L{x}" for x in layers],
        "pos": [f"{p} {pairs.position_labels[p]}" for p in positions],
    }
    axes = SWEEP_AXES[kind]
    if kind == "head":
        index["head"], labels["head"] = units or [], [f"H{u}" for u in units or []]
    if kind == "neuron" and per_layer is None:
        index["neuron"], labels["neuron"] = units or [], [f"N{u}" for u in units or []]
    if per_layer is not None:
        axes = ("layer", "pos", "rank")
        index["rank"], labels["rank"] = list(units or []), [f"#{r + 1}" for r in units or []]
    return axes, index, labels


def sweep_result(sp: SweepVariants, mean: np.ndarray, stderr: np.ndarray, *, site: str, metric: str,
                 direction: str, model: Any, model_name: str, n_forward_passes: int, seconds: float,
                 baseline: dict[str, float], meta: dict[str, Any], n_defined: np.ndarray | None = None) -> PatchResult:
    """The `PatchResult` of a sweep from each variant's mean and standard error of the per-prompt metric over its
    prompts with a finite value (`interp.metrics.finite_moments`: float64, no overflow).

    ``n_defined`` counts each variant's prompts with a finite metric value (default: every prompt); undefined counts
    go to ``meta["n_undefined"]`` and one warning."""
    kind, pairs, layer_list, pos_list, batch = sp.kind, sp.pairs, sp.layers, sp.positions, sp.batch
    units, per_layer = sp.units, sp.per_layer
    mean, stderr = np.asarray(mean, dtype=np.float64), np.asarray(stderr, dtype=np.float64)
    n = np.full(mean.shape, batch, dtype=np.int64) if n_defined is None else np.asarray(n_defined, dtype=np.int64)
    n_undef = batch - n
    total = int(n_undef.sum())
    axes, index, labels = sweep_axes(kind, pairs, layer_list, pos_list, units, per_layer)
    if per_layer is not None:
        meta["neurons"] = {str(lyr): per_layer[lyr] for lyr in layer_list}
    shape = tuple(len(index[a]) for a in axes)
    meta["n_undefined_total"] = total
    if total:
        meta["n_undefined"] = n_undef.reshape(shape).tolist()
        log.warning("%d of %d per-prompt %s values are undefined (not finite) in %d of %d cells; each cell's mean "
                    "leaves them out (counts per cell in meta['n_undefined']; cells with none defined are NaN)",
                    total, n_undef.size * batch, metric, int((n_undef > 0).sum()), n_undef.size)
    return PatchResult(
        effects=mean.reshape(shape),
        axes=axes,
        index=index,
        labels=labels,
        site=cli_site(kind),
        metric=metric,
        model=model_name or str(getattr(model.cfg, "model_name", "")),
        task=pairs.task,
        direction=direction,
        n_prompts=batch,
        n_forward_passes=n_forward_passes,
        seconds=seconds,
        stderr=stderr.reshape(shape),
        baseline=baseline,
        meta=meta,
    )
