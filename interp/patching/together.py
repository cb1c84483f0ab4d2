"""All-position patching (``positions="together"``): each component patched at every position at once.

The equivalent of TransformerLens's ``get_act_patch_attn_head_out_all_pos`` (and its ``*_all_pos`` family): one
patch variant per layer (and head / neuron) that writes the source run's activation into *every* position of the
base run. The result has no position axis: ``[layer head]`` for heads (TL's shape), ``[layer]`` for resid, attn_out,
mlp_out and whole MLPs, ``[layer neuron]`` for neurons.

Through the cone engine (`interp.patching.engine`): a patch at layer ``l`` changes the residual stream entering
layer ``start_layer(l)`` at every position (`ConeEngine.injected`, position by position: the head's rank-``d_head``
change and layer ``l``'s MLP for heads and attn_out, the cached ``resid_mid`` plus the source MLP output for MLPs,
a rank-1 change for neurons). Only layers ``start..n-1`` are recomputed, the last one at the last position only,
with no hooks; variants starting at later layers join the batch when the computation reaches their layer, chunked
to the memory budget. Architectures the engine does not handle run one hooked full forward per chunk of stacked
variants (``engine="full"``), with the same numbers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import ShapeError
from interp.metrics import MetricContext, metric_unpatched_values
from interp.patching.engine import ConeEngine, EngineStats, Unsupported, format_bytes, parse_bytes
from interp.patching.result import PatchResult
from interp.sites import hook_name

__all__ = ["TOGETHER", "is_together", "patch_together"]

TOGETHER = "together"


def is_together(positions: Any) -> bool:
    """True for ``positions="together"``; a clear error when ``"together"`` is mixed with positions."""
    if isinstance(positions, str):
        parts = [p.strip() for p in positions.split(",") if p.strip()]
        if TOGETHER in parts:
            if len(parts) > 1:
                raise ShapeError(f"positions={positions!r}: 'together' patches every position at once and cannot be "
                                 "combined with a position list; use positions='together' alone, or a list of ints")
            return True
        return False
    if isinstance(positions, Sequence) and any(isinstance(p, str) and p.strip() == TOGETHER for p in positions):
        raise ShapeError(f"positions={list(positions)!r}: 'together' patches every position at once and cannot be "
                         "combined with a position list; use positions='together' alone, or a list of ints")
    return False


def _all_pos_hook(specs: list[tuple[int, int | None]], source_act: Tensor, batch: int) -> Any:
    """Writes ``source_act`` into row block ``j`` at every position (unit ``u`` only, if given)."""
    rows = torch.tensor([j for j, _ in specs])
    units = torch.tensor([u if u is not None else 0 for _, u in specs])
    has_unit = specs[0][1] is not None

    def hook(act: Tensor, hook: Any) -> Tensor:
        act = act.clone()
        view = act.view(-1, batch, *act.shape[1:])  # [variant batch pos ...]
        if has_unit:
            # [k B pos (d_head)] <- source [B pos k (d_head)]
            view[rows, :, :, units] = source_act[:, :, units].movedim(2, 0).to(act.dtype)
        else:
            view[rows] = source_act.unsqueeze(0).to(act.dtype)
        return act

    return hook


def _run_full(sw: Any, specs: list[tuple[int, int, int | None]], src_cache: Any) -> int:
    from interp.patching.exact import _full_row_bytes

    seq_len = sw.base.shape[1]
    fixed = sum(int(t.numel()) * t.element_size() for t in src_cache.values())
    row = _full_row_bytes(sw.model, seq_len)
    if fixed + sw.batch * row > sw.budget:
        raise ShapeError(f"max_memory={format_bytes(sw.budget)} is too small for one patch; raise it to at least "
                         f"{format_bytes(fixed + sw.batch * row)} (or use fewer prompts)")
    per = max(1, (sw.budget - fixed) // (sw.batch * row))
    if sw.max_rows is not None:
        per = min(per, max(1, sw.max_rows // sw.batch))
    n = 0
    for start in range(0, len(specs), per):
        chunk = specs[start : start + per]
        by_hook: dict[str, list[tuple[int, int | None]]] = {}
        for j, (_, lyr, unit) in enumerate(chunk):
            by_hook.setdefault(hook_name(sw.kind, lyr), []).append((j, unit))
        hooks = [(nm, _all_pos_hook(s, src_cache[nm], sw.batch)) for nm, s in by_hook.items()]
        logits = sw.model.run_with_hooks(sw.base.repeat(len(chunk), 1), fwd_hooks=hooks)[:, -1, :]
        sw.record([i for i, _, _ in chunk], logits)
        n += 1
    return n


def _injected_all(cone: ConeEngine, kind: str, layer: int, units: list[int | None], p0: int,
                  stats: EngineStats) -> Tensor:
    """New residual stream [k B S-p0 d_model] entering `start_layer` with the patch at positions ``p0..S-1``."""
    vecs = [cone.injected(kind, layer, p, units, stats) for p in range(p0, cone.seq_len)]  # each [k|1 B d]
    return torch.stack([v.expand(len(units), -1, -1) if v.shape[0] == 1 else v for v in vecs], dim=2)


def _first_changed(cone: ConeEngine, kind: str, specs: list[tuple[int, int, int | None]]) -> dict[int, int | None]:
    """Per variant: the first position where the source value differs from the base value for some prompt (None if
    nowhere). Positions before it are unchanged by the patch, so the cone starts there (one host sync per layer)."""
    by_layer: dict[int, list[tuple[int, int | None]]] = {}
    for vid, lyr, unit in specs:
        by_layer.setdefault(lyr, []).append((vid, unit))
    out: dict[int, int | None] = {}
    for lyr, items in by_layer.items():
        units = list(dict.fromkeys(u for _, u in items))
        same = cone.noop(kind, lyr, list(range(cone.seq_len)), units).tolist()  # [pos unit]
        for vid, u in items:
            j = units.index(u)
            out[vid] = next((p for p in range(cone.seq_len) if not same[p][j]), None)
    return out


def _run_cone(sw: Any, cone: ConeEngine, specs: list[tuple[int, int, int | None]], stats: EngineStats) -> int:
    from interp.patching.exact import answer_columns

    b, s = sw.batch, sw.base.shape[1]
    answer = answer_columns(sw.metric, sw.ctx)
    cols, small_ctx = answer if answer is not None else (None, None)
    n_cols = None if cols is None else int(cols.shape[1])
    layers = sorted({lyr for _, lyr, _ in specs})
    fixed = cone.cache_bytes(sw.kind, layers, b, s)
    avail = sw.budget - fixed
    first = _first_changed(cone, sw.kind, specs)
    dead = [vid for vid, p0 in first.items() if p0 is None]
    if dead:  # the source equals the base everywhere: the unpatched value
        sw.record_unpatched(dead)
        stats.skipped = len(dead)
    live = [x for x in specs if first[x[0]] is not None]
    if live and avail < b * cone.row_bytes(s - min(first[v] for v, _, _ in live), s, n_cols):  # type: ignore
        one = b * cone.row_bytes(s, s, n_cols)
        raise ShapeError(f"max_memory={format_bytes(sw.budget)} is too small for one patch: the caches take "
                         f"{format_bytes(fixed)} and one variant of {b} prompts needs up to {format_bytes(one)}; "
                         f"raise it to at least {format_bytes(fixed + one)} (or use fewer prompts)")
    groups: dict[int, list[tuple[int, int, int | None]]] = {}
    for x in live:
        groups.setdefault(first[x[0]], []).append(x)  # type: ignore[arg-type]
    peak = 0
    for p0, items in sorted(groups.items()):
        t = s - p0
        row = cone.row_bytes(t, s, n_cols)
        per = max(1, avail // (b * row))
        if sw.max_rows is not None:
            per = min(per, max(1, sw.max_rows // b))
        ordered = sorted(items, key=lambda x: cone.start_layer(sw.kind, x[1]))
        for i in range(0, len(ordered), int(per)):
            peak = max(peak, _cone_chunk(sw, cone, ordered[i : i + int(per)], p0, cols, small_ctx, stats) * row)
    stats.peak_bytes_estimate = fixed + peak
    return stats.passes


def _cone_chunk(sw: Any, cone: ConeEngine, chunk: list[tuple[int, int, int | None]], p0: int, cols: Tensor | None,
                small_ctx: Any, stats: EngineStats) -> int:
    """One pass: variants patched at positions ``p0..S-1`` joining as the computation reaches their start layer."""
    b, s, n = sw.batch, cone.seq_len, cone.n_layers
    t = s - p0
    by_start: dict[int, dict[int, list[tuple[int, int | None]]]] = {}
    for vid, lyr, unit in chunk:
        by_start.setdefault(cone.start_layer(sw.kind, lyr), {}).setdefault(lyr, []).append((vid, unit))
    order: list[int] = []

    def inject(start: int) -> Tensor:
        parts = []
        for lyr, items in sorted(by_start[start].items()):
            new = _injected_all(cone, sw.kind, lyr, [u for _, u in items], p0, stats)  # [k B t d]
            parts.append(new.reshape(len(items) * b, t, cone.d_model))
            order.extend(v for v, _ in items)
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    x: Tensor | None = None
    for j in range(min(by_start), n):
        if j in by_start:
            new = inject(j)
            x = new if x is None else torch.cat([cone.placement.to(x, j), cone.placement.to(new, j)])
        assert x is not None
        x = cone.layer(j, x, p0, x.shape[0] // b, last=j == n - 1, stats=stats)
    if n in by_start:  # patches after the last block change only the final residual
        new = inject(n)[:, -1:]
        x = new if x is None else torch.cat([cone.placement.to(x, n), cone.placement.to(new, n)])
    assert x is not None
    rows = x.shape[0]
    cl = None if cols is None else cols.repeat(rows // b, 1)
    sw.record(order, cone.logits(x[:, -1], cl), small_ctx)
    stats.passes += 1
    return rows


def patch_together(
    model: Any,
    pairs: Any,
    *,
    site: str = "heads",
    metric: str = "ie",
    direction: str = "noising",
    layers: Sequence[int] | None = None,
    neurons: Sequence[int] | None = None,
    max_rows: int | None = 4096,
    progress: bool = False,
    model_name: str = "",
    max_memory: int | str = "auto",
    engine: str = "auto",
) -> PatchResult:
    """Every component of ``site`` patched at all positions at once (`interp.patching.patch` with
    ``positions="together"``); axes ``SWEEP_AXES`` without ``pos``."""
    from interp.patching.exact import _model_device, _Sweep
    from interp.patching.variants import plan_sweep_variants, sweep_result

    t0 = time.time()
    if isinstance(neurons, Mapping):
        raise ShapeError("positions='together' takes one neuron list for every layer, not {layer: [neurons]}")
    if isinstance(max_memory, Mapping):
        raise ShapeError("positions='together' takes one max_memory size, not one per device")
    sp = plan_sweep_variants(model, pairs, site=site, positions="last", metric=metric, direction=direction,
                             layers=layers, neurons=neurons, max_rows=max_rows)
    kind, pairs, batch = sp.kind, sp.pairs, sp.batch
    specs = [(i, v.layer, v.unit) for i, v in enumerate(sp.variants)]  # one variant per layer (x unit)
    budget = parse_bytes(max_memory, device=_model_device(model))
    cone: ConeEngine | None = None
    note = ""
    if engine != "full":
        try:
            cone = ConeEngine.for_model(model)
            if cone.placement.multi:
                raise Unsupported("positions='together' runs the cone engine on single-device models")
            cone.verify(pairs.clean_tokens)
        except Unsupported as e:
            if engine == "cone":
                raise
            note, cone = f"full passes: {e}", None
    base, source = pairs.clean_tokens, pairs.corrupt_tokens
    stats = EngineStats()
    with torch.inference_mode():
        src_cache = None
        if cone is not None:
            base_logits, source_logits = cone.setup(kind, sp.layers, base, source, stats)
        else:
            names = {hook_name(kind, lyr) for lyr in sp.layers}
            base_logits = model(base)[:, -1, :].float()
            out, src_cache = model.run_with_cache(source, names_filter=lambda nm: nm in names)
            source_logits = out[:, -1, :].float()
        dev = base_logits.device
        ctx = MetricContext(base_logits.float(), source_logits.float(), pairs.clean_answers.to(dev),
                            pairs.corrupt_answers.to(dev))
        sw = _Sweep(model, kind, sp.variants, base, source, metric, ctx, batch, max_rows, budget, progress, site)
        if cone is not None:
            try:
                n_pass = _run_cone(sw, cone, specs, stats)
            finally:
                cone.release()
        else:
            n_pass = _run_full(sw, specs, src_cache)
        baseline = metric_unpatched_values(metric, ctx)
        mean, se, n_def = sw.host()
    meta: dict[str, Any] = {"engine": "cone" if cone is not None else "full", "positions": TOGETHER,
                            "max_memory": budget, **({"engine_note": note} if note else {})}
    if cone is not None:
        meta.update(stats.to_dict())
    res = sweep_result(sp, mean, se, site=site, metric=metric, direction=direction, model=model,
                       model_name=model_name, n_forward_passes=2 + n_pass, seconds=time.time() - t0,
                       baseline=baseline, meta=meta, n_defined=n_def)
    i = res.axes.index("pos")  # one entry (a placeholder): drop it
    if "n_undefined" in res.meta:  # per-cell counts without the placeholder axis
        res.meta["n_undefined"] = np.asarray(res.meta["n_undefined"]).squeeze(i).tolist()
    axes = tuple(a for a in res.axes if a != "pos")
    return dataclasses.replace(
        res, effects=res.effects.squeeze(i), stderr=None if res.stderr is None else res.stderr.squeeze(i), axes=axes,
        index={a: res.index[a] for a in axes}, labels={a: res.labels[a] for a in axes},
    )
