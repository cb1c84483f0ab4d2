"""Exact activation patching: replace one activation slice of the base run by the source run's and measure.

This is the reference every estimator in `interp` is checked against, and it is itself checked against
`transformer_lens.patching` (tests/unit/test_patching_oracle.py). Each patched index is one *patch variant*;
variants are stacked along the batch axis (``k`` variants of a ``B``-prompt batch make one ``k*B``-row forward),
chunked to ``max_rows`` rows, so one forward pass evaluates many patches. Results are identical to one pass per
index because each row only ever sees its own patch.

Paper convention (Nikankin et al., methods.md §A.1): run the *clean* prompt and patch in the *corrupt* activation
(``direction="noising"``). ``direction="denoising"`` runs the corrupt prompt and patches in clean activations
(TransformerLens's convention).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import ShapeError, unknown
from interp.metrics import MetricContext, make_metric, metric_unpatched_values
from interp.patching.result import PatchResult
from interp.sites import CLI_SITES, SWEEP_AXES, check_site_exists, hook_name, site_kind
from interp.tasks.base import PromptPairs

__all__ = ["patch", "resolve_positions", "PatchSpec", "DIRECTIONS"]

DIRECTIONS = ("noising", "denoising")


def resolve_positions(positions: str | int | Sequence[int], seq_len: int) -> list[int]:
    """``"all"``, ``"last"``, an int, ``"i,j"`` or a list of ints -> sorted non-negative positions."""
    if isinstance(positions, str):
        if positions == "all":
            return list(range(seq_len))
        if positions == "last":
            return [seq_len - 1]
        try:
            positions = [int(p) for p in positions.split(",") if p.strip()]
        except ValueError:
            raise ShapeError(f"positions {positions!r} must be 'all', 'last' or comma-separated ints") from None
    if isinstance(positions, int):
        positions = [positions]
    out = []
    for p in positions:
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


def _units(model: Any, kind: str, neurons: Sequence[int] | None) -> list[int] | None:
    if kind == "head":
        return list(range(int(model.cfg.n_heads)))
    if kind == "neuron":
        d_mlp = int(model.cfg.d_mlp)
        if neurons is None:
            return list(range(d_mlp))
        bad = [n for n in neurons if not 0 <= int(n) < d_mlp]
        if bad:
            raise ShapeError(f"neurons {bad[:5]} are out of range; d_mlp is {d_mlp}")
        return [int(n) for n in neurons]
    return None


def _make_hook(specs: list[tuple[int, PatchSpec]], source_act: Tensor, batch: int):
    """A hook writing ``source_act`` into row block ``j`` at each ``(j, spec)``; no host synchronisation."""
    rows = torch.tensor([j for j, _ in specs])
    pos = torch.tensor([s.pos for _, s in specs])
    unit = torch.tensor([s.unit if s.unit is not None else 0 for _, s in specs])
    has_unit = specs[0][1].unit is not None

    def hook(act: Tensor, hook: Any) -> Tensor:
        act = act.clone()
        view = act.view(-1, batch, *act.shape[1:])  # [variant batch pos ...]
        if has_unit:
            view[rows, :, pos, unit] = source_act[:, pos, unit].transpose(0, 1)
        else:
            view[rows, :, pos] = source_act[:, pos].transpose(0, 1)
        return act

    return hook


def patch(
    model: Any,
    pairs: PromptPairs,
    *,
    site: str = "heads",
    positions: str | int | Sequence[int] = "last",
    metric: str = "ie",
    direction: str = "noising",
    layers: Sequence[int] | None = None,
    neurons: Sequence[int] | None = None,
    max_rows: int = 4096,
    progress: bool = True,
    model_name: str = "",
) -> PatchResult:
    """Exact activation patching of every index of ``site`` (heads, mlps, resid, attn_out, mlp_out, neurons).

    Returns a `PatchResult` whose effects are the mean over prompts of the per-prompt ``metric`` (see
    `interp.metrics`), with axes ``SWEEP_AXES[kind]`` (e.g. ``layer, pos, head``). ``max_rows`` bounds the rows of
    one forward pass (a memory budget): ``k`` patch variants of ``B`` prompts use ``k*B`` rows.
    """
    from tqdm.auto import tqdm

    t0 = time.time()
    kind = site_kind(site)
    if direction not in DIRECTIONS:
        raise unknown("direction", direction, DIRECTIONS)
    if direction == "denoising":
        pairs = pairs.swapped()
    pairs.check_vocab(model)
    check_site_exists(model, kind)
    n_layers = int(model.cfg.n_layers)
    layer_list = list(range(n_layers)) if layers is None else sorted(set(int(x) for x in layers))
    for lyr in layer_list:
        if not 0 <= lyr < n_layers:
            raise ShapeError(f"layer {lyr} is out of range; the model has layers 0..{n_layers - 1}")
    pos_list = resolve_positions(positions, pairs.seq_len)
    units = _units(model, kind, neurons)
    variants = _variants(kind, layer_list, pos_list, units)
    batch = pairs.n
    if batch > max_rows:
        raise ShapeError(f"max_rows={max_rows} is smaller than one patch of {batch} prompts; raise it to >= {batch}")
    hooks_needed = sorted({hook_name(kind, lyr) for lyr in layer_list})

    base, source = pairs.clean_tokens, pairs.corrupt_tokens
    with torch.inference_mode():
        base_logits = model(base)[:, -1, :].float()
        source_logits, cache = model.run_with_cache(source, names_filter=lambda n: n in hooks_needed)
        source_logits = source_logits[:, -1, :].float()
        ctx = MetricContext(base_logits, source_logits, pairs.clean_answers, pairs.corrupt_answers)
        n_fwd = 2
        per_variant = max(1, max_rows // batch)
        sums = np.zeros(len(variants))
        sq = np.zeros(len(variants))
        bar = tqdm(total=len(variants), desc=f"patch {site}", disable=not progress, leave=False)
        for start in range(0, len(variants), per_variant):
            chunk = variants[start : start + per_variant]
            k = len(chunk)
            fn = make_metric(metric, ctx.repeat(k)) if k > 1 else make_metric(metric, ctx)
            by_hook: dict[str, list[tuple[int, PatchSpec]]] = {}
            for j, spec in enumerate(chunk):
                by_hook.setdefault(hook_name(kind, spec.layer), []).append((j, spec))
            fwd_hooks = [(name, _make_hook(specs, cache[name], batch)) for name, specs in by_hook.items()]
            logits = model.run_with_hooks(base.repeat(k, 1), fwd_hooks=fwd_hooks)[:, -1, :].float()
            vals = fn(logits).reshape(k, batch).double()
            sums[start : start + k] = vals.sum(1).numpy()
            sq[start : start + k] = (vals**2).sum(1).numpy()
            n_fwd += 1
            bar.update(k)
        bar.close()
        baseline = metric_unpatched_values(metric, ctx)

    mean = sums / batch
    var = np.maximum(sq / batch - mean**2, 0.0) * batch / max(batch - 1, 1)
    stderr = np.sqrt(var / batch)
    axes = SWEEP_AXES[kind]
    index: dict[str, list[int]] = {"layer": layer_list, "pos": pos_list}
    labels: dict[str, list[str]] = {
        "layer": [f"L{x}" for x in layer_list],
        "pos": [f"{p} {pairs.position_labels[p]}" for p in pos_list],
    }
    if kind == "head":
        index["head"], labels["head"] = units or [], [f"H{u}" for u in units or []]
    if kind == "neuron":
        index["neuron"], labels["neuron"] = units or [], [f"N{u}" for u in units or []]
    shape = tuple(len(index[a]) for a in axes)
    cli_name = next((k for k, v in CLI_SITES.items() if v == kind), kind)
    return PatchResult(
        effects=mean.reshape(shape),
        axes=axes,
        index=index,
        labels=labels,
        site=cli_name,
        metric=metric,
        model=model_name or str(getattr(model.cfg, "model_name", "")),
        task=pairs.task,
        direction=direction,
        n_prompts=batch,
        n_forward_passes=n_fwd,
        seconds=time.time() - t0,
        stderr=stderr.reshape(shape),
        baseline=baseline,
    )
