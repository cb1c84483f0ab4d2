"""Exact activation patching: replace one activation slice of the base run by the source run's and measure.

This is the reference every estimator in `interp` is checked against, and it is itself checked against
`transformer_lens.patching` (tests/unit/test_patching_oracle.py, tests/unit/test_engine.py). Each patched index is
one *patch variant*. Two engines compute the same numbers:

* ``"cone"`` (`interp.patching.engine`, used by default where the architecture allows): a patch at layer ``l``,
  position ``p`` is evaluated by recomputing only layers ``>= l`` at positions ``>= p`` from the base run's cached
  residual stream and key/value cache; variants are stacked along the batch axis, chunked to the memory budget;
* ``"full"`` (the fallback): variants are stacked along the batch axis (``k`` variants of a ``B``-prompt batch make
  one ``k*B``-row forward) and each chunk runs one full hooked forward pass of the bridge.

Results are identical to one pass per index because each row only ever sees its own patch.

Paper convention (Nikankin et al., methods.md §A.1): run the *clean* prompt and patch in the *corrupt* activation
(``direction="noising"``). ``direction="denoising"`` runs the corrupt prompt and patches in clean activations with
the metric's orientation unchanged (``r`` stays the clean answer): TransformerLens's meaning, the same numbers as
`transformer_lens.patching` with the same metric function (tests/unit/test_numbers.py; sign table in docs/metrics.md).

Per-prompt metric values that are not finite (NaN, ±inf: e.g. ``ie_logits`` dividing by a zero logit) are
*undefined*: each cell's mean and standard error are over its defined prompts, ``meta["n_undefined"]`` holds the
count per cell (same shape as the effects) and ``meta["n_undefined_total"]`` their sum, and one warning gives the
count; a cell with no defined prompt is NaN.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import ShapeError, unknown
from interp.metrics import MetricContext, finite_moments, make_metric, metric_unpatched_values
from interp.patching.devices import dev_name, device_budgets, pass_budget
from interp.patching.engine import ConeEngine, EngineStats, Unsupported, format_bytes, parse_bytes, plan_passes
from interp.patching.result import PatchResult
from interp.patching.variants import (  # re-exported: the planning half of a sweep lives there
    DIRECTIONS,
    PatchSpec,
    SweepVariants,
    oriented_pairs,
    plan_sweep_variants,
    prepare_sweep,
    resolve_positions,
    sweep_result,
)
from interp.sites import hook_name
from interp.tasks.base import PromptPairs

__all__ = ["patch", "patch_by_group", "prepare_sweep", "resolve_positions", "PatchSpec", "DIRECTIONS", "ENGINES",
           "SweepVariants", "plan_sweep_variants", "sweep_result", "oriented_pairs"]

log = logging.getLogger(__name__)

ENGINES = ("auto", "cone", "full")


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


def _full_row_bytes(model: Any, seq_len: int) -> int:
    """Working memory of one row of a full patched forward (activations, all-position logits, metric)."""
    c = model.cfg
    d, h, dh = int(c.d_model), int(c.n_heads), int(c.d_head)
    kv = int(getattr(c, "n_key_value_heads", None) or h)
    m = int(getattr(c, "d_mlp", 0) or 0)
    v = int(c.d_vocab_out) if int(getattr(c, "d_vocab_out", -1) or -1) > 0 else int(c.d_vocab)
    act = seq_len * (6 * d + 2 * (h + 2 * kv) * dh + 3 * m + 3 * h * seq_len + v) + 6 * v
    return int(act * 4 * 1.25)


@dataclass
class _Sweep:
    """Everything both engines share: inputs, variants, the metric and each variant's mean and standard error."""

    model: Any
    kind: str
    variants: list[PatchSpec]
    base: Tensor
    source: Tensor
    metric: str
    ctx: MetricContext
    batch: int
    max_rows: int | None
    budget: int
    progress: bool
    site: str
    budgets: dict[str, int] | None = None  # per device, for a model whose blocks live on several devices
    # each group's prompt rows (index tensors): per-group moments alongside the pooled ones (`patch_by_group`)
    group_cols: list[Tensor] | None = None

    def __post_init__(self) -> None:
        # each variant's mean, standard error and finite count over the prompts (`finite_moments`), and per group
        self.mean = torch.zeros(len(self.variants), dtype=torch.float64)
        self.se = torch.zeros(len(self.variants), dtype=torch.float64)
        self.n_def = torch.full((len(self.variants),), self.batch, dtype=torch.int64)
        if self.group_cols is not None:
            g = len(self.group_cols)
            self.g_mean = torch.zeros((len(self.variants), g), dtype=torch.float64)
            self.g_se = torch.zeros((len(self.variants), g), dtype=torch.float64)
            self.g_def = torch.zeros((len(self.variants), g), dtype=torch.int64)

    def host(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, stderr, n_defined)`` per variant on the host (one copy at the end of a sweep)."""
        return self.mean.cpu().numpy(), self.se.cpu().numpy(), self.n_def.cpu().numpy()

    def record(self, ids: Sequence[int], logits: Tensor, ctx: MetricContext | None = None) -> None:
        """Metric of the patched last-position logits [k*B ...] of variants ``ids`` (row-block order)."""
        ctx = ctx or self.ctx
        k = len(ids)
        fn = make_metric(self.metric, ctx.repeat(k)) if k > 1 else make_metric(self.metric, ctx)
        vals = fn(logits).reshape(k, self.batch).double()
        self._store(ids, vals)

    def record_unpatched(self, ids: Sequence[int]) -> None:
        """Variants whose patch changes nothing: every prompt keeps its unpatched metric value."""
        vals = make_metric(self.metric, self.ctx)(self.ctx.base_logits).double()
        self._store(ids, vals.expand(len(ids), -1))

    def _store(self, ids: Sequence[int], vals: Tensor) -> None:
        idx = torch.as_tensor(list(ids), device=vals.device)
        if self.mean.device != vals.device:
            self.mean, self.se, self.n_def = (t.to(vals.device) for t in (self.mean, self.se, self.n_def))
            if self.group_cols is not None:  # moved once: index tensors, not a mask per record (a GPU sync)
                self.group_cols = [c.to(vals.device) for c in self.group_cols]
                self.g_mean, self.g_se, self.g_def = (t.to(vals.device) for t in (self.g_mean, self.g_se, self.g_def))
        self.mean[idx], self.se[idx], self.n_def[idx] = finite_moments(vals)
        if self.group_cols is not None:
            for j, cols in enumerate(self.group_cols):
                self.g_mean[idx, j], self.g_se[idx, j], self.g_def[idx, j] = finite_moments(vals.index_select(1, cols))


# metrics that read only the answer logits r and r2 of each prompt (checked on real logits before use)
ANSWER_ONLY_METRICS = ("logit_diff", "logit_diff_change", "logit_diff_norm")


def answer_columns(metric: str, ctx: MetricContext) -> tuple[Tensor, MetricContext] | None:
    """``[B 2]`` answer token columns and the metric context on them, when the metric reads nothing else."""
    if metric not in ANSWER_ONLY_METRICS:
        return None
    cols = torch.stack([ctx.r, ctx.r2], dim=1).to(ctx.base_logits.device)
    small = MetricContext(ctx.base_logits.gather(1, cols), ctx.source_logits.gather(1, cols),
                          torch.zeros_like(ctx.r), torch.ones_like(ctx.r2))
    full_fn, small_fn = make_metric(metric, ctx), make_metric(metric, small)
    gen = torch.Generator(device=ctx.base_logits.device).manual_seed(0)  # leaves the global RNG alone
    noise = torch.randn(ctx.base_logits.shape, generator=gen, device=ctx.base_logits.device)
    probe = ctx.base_logits + noise.to(ctx.base_logits.dtype)
    for x in (ctx.source_logits, probe):
        if not torch.equal(full_fn(x), small_fn(x.gather(1, cols))):
            return None
    return cols, small


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError, TypeError):
        return torch.device("cpu")


def _too_small(budget: int, fixed: int, one: int, batch: int) -> ShapeError:
    return ShapeError(
        f"max_memory={format_bytes(budget)} is too small for one patch: the sweep's caches take "
        f"{format_bytes(fixed)} and one patch variant of {batch} prompts needs {format_bytes(one)} more; "
        f"raise max_memory to at least {format_bytes(fixed + one)} (or use fewer prompts)"
    )


def _run_full(sw: _Sweep, src_cache: Any) -> int:
    """One full forward per chunk of stacked variants; returns the number of passes."""
    from interp.progress import bar as progress_bar

    seq_len = sw.base.shape[1]
    fixed = sum(int(t.numel()) * t.element_size() for t in src_cache.values())
    row = _full_row_bytes(sw.model, seq_len)
    if fixed + sw.batch * row > sw.budget:
        raise _too_small(sw.budget, fixed, sw.batch * row, sw.batch)
    per_variant = (sw.budget - fixed) // (sw.batch * row)
    if sw.max_rows is not None:
        per_variant = min(per_variant, max(1, sw.max_rows // sw.batch))
    n_pass = 0
    bar = progress_bar(len(sw.variants), desc=f"patch {sw.site}", enabled=sw.progress)
    for start in range(0, len(sw.variants), per_variant):
        chunk = sw.variants[start : start + per_variant]
        k = len(chunk)
        by_hook: dict[str, list[tuple[int, PatchSpec]]] = {}
        for j, spec in enumerate(chunk):
            by_hook.setdefault(hook_name(sw.kind, spec.layer), []).append((j, spec))
        fwd_hooks = [(name, _make_hook(specs, src_cache[name], sw.batch)) for name, specs in by_hook.items()]
        logits = sw.model.run_with_hooks(sw.base.repeat(k, 1), fwd_hooks=fwd_hooks)[:, -1, :]
        sw.record(list(range(start, start + k)), logits)
        n_pass += 1
        bar.update(k)
    bar.close()
    return n_pass


def _run_cone(sw: _Sweep, cone: ConeEngine, stats: EngineStats) -> int:
    """The cone-aware sweep (see `interp.patching.engine`) after `ConeEngine.setup`; returns the number of passes."""
    from interp.progress import bar as progress_bar

    seq_len = sw.base.shape[1]
    answer = answer_columns(sw.metric, sw.ctx)
    cols, small_ctx = answer if answer is not None else (None, None)
    n_cols = None if cols is None else int(cols.shape[1])

    # patches whose source value equals the base value for every prompt change nothing: no recomputation
    by_layer: dict[int, list[int]] = {}
    for i, v in enumerate(sw.variants):
        by_layer.setdefault(v.layer, []).append(i)
    live: list[int] = []
    dead: list[int] = []
    for lyr, ids in by_layer.items():
        ps = list(dict.fromkeys(sw.variants[i].pos for i in ids))
        us = list(dict.fromkeys(sw.variants[i].unit for i in ids))
        mask = cone.noop(sw.kind, lyr, ps, us).tolist()  # one host sync per layer, not per patch
        for i in ids:
            v = sw.variants[i]
            (dead if mask[ps.index(v.pos)][us.index(v.unit)] else live).append(i)
    if dead:
        sw.record_unpatched(dead)
        stats.skipped = len(dead)

    fixed = cone.cache_bytes(sw.kind, sorted(by_layer), sw.batch, seq_len)
    avail = sw.budget - fixed
    if sw.budgets is not None:  # several devices: every device holds its own caches plus one pass
        avail = pass_budget(cone, sw.budgets, sw.kind, sorted(by_layer), sw.batch, seq_len, 0)
    live.sort(key=lambda i: (sw.variants[i].pos, cone.start_layer(sw.kind, sw.variants[i].layer)))
    passes = plan_passes([(i, sw.variants[i].pos) for i in live], batch=sw.batch, max_rows=sw.max_rows,
                         avail_bytes=avail,
                         row_bytes=lambda p: cone.row_bytes(seq_len - p, seq_len, n_cols))
    peak = 0
    bar = progress_bar(len(sw.variants), desc=f"patch {sw.site} (cone)", enabled=sw.progress)
    bar.update(len(dead))
    for plan in passes:
        for p, vids in plan.items():
            specs = [(i, sw.variants[i].layer, sw.variants[i].unit) for i in vids]
            logits, ids = cone.run_group(sw.kind, p, specs, stats, cols)
            sw.record(ids, logits, small_ctx)
            peak = max(peak, len(vids) * sw.batch * cone.row_bytes(seq_len - p, seq_len, n_cols))
            bar.update(len(vids))
        stats.passes += 1
    bar.close()
    stats.peak_bytes_estimate = fixed + peak
    return stats.passes


def patch(
    model: Any,
    pairs: PromptPairs,
    *,
    site: str = "heads",
    positions: str | int | Sequence[int] = "last",
    metric: str = "ie",
    direction: str = "noising",
    layers: Sequence[int] | None = None,
    neurons: Sequence[int] | Mapping[int, Sequence[int]] | None = None,
    max_rows: int | None = 4096,
    progress: bool = True,
    model_name: str = "",
    max_memory: int | str | Mapping[Any, int | str] = "auto",
    engine: str = "auto",
) -> PatchResult:
    """Exact activation patching of every index of ``site`` (heads, mlps, resid, attn_out, mlp_out, neurons).

    Returns a `PatchResult` whose effects are the mean over prompts of the per-prompt ``metric`` (see
    `interp.metrics`), with axes ``SWEEP_AXES[kind]`` (e.g. ``layer, pos, head``).

    ``engine="auto"`` (default) recomputes only the cone a patch can change (`interp.patching.engine`) and falls
    back to full forward passes for architectures the cone engine does not handle; ``"cone"`` requires the cone
    engine (raises `Unsupported` otherwise), ``"full"`` always runs full passes. Both give the same numbers.
    ``max_memory`` (bytes or e.g. ``"2GB"``) bounds the sweep's caches plus one pass's working memory; the
    default ``"auto"`` is 40% of the memory free on the model's device when the sweep starts, at least 1 GB;
    ``max_rows`` bounds the rows (variants x prompts) of one pass. For a model whose blocks live on several devices
    (``load_model(..., device_map=...)``) the budget is per device: one size for each, or ``{device: size}``
    (`interp.patching.devices`). ``neurons`` is a list of neuron indices for
    every layer, or ``{layer: [neurons]}`` with lists of equal length (e.g. `top_neurons_per_layer` of a
    previous sweep), which gives axes ``layer, pos, rank`` and the neuron ids in ``meta["neurons"]``.
    ``positions="together"`` patches each component at every position at once (TransformerLens's ``*_all_pos``;
    `interp.patching.together`): axes without ``pos``, e.g. ``[layer head]``.
    """
    t0 = time.time()
    if engine not in ENGINES:
        raise unknown("engine", engine, ENGINES)
    from interp.backends import is_nnsight_model
    from interp.patching.together import is_together, patch_together

    if is_together(positions):  # every position at once (TL's *_all_pos), through the cone engine
        if is_nnsight_model(model):
            raise Unsupported("positions='together' runs on TransformerLens bridges, not on the nnsight backend")
        return patch_together(model, pairs, site=site, metric=metric, direction=direction, layers=layers,
                              neurons=neurons, max_rows=max_rows, progress=progress, model_name=model_name,
                              max_memory=max_memory, engine=engine)  # type: ignore[arg-type]
    if is_nnsight_model(model):  # the nnsight backend: same sweep, same result, run as batched nnsight traces
        if engine == "cone":
            raise Unsupported("engine='cone' runs on TransformerLens bridges; an nnsight model runs batched full "
                              "traces (use engine='auto')")
        from interp.backends.nnsight_patching import nnsight_patch

        return nnsight_patch(model, pairs, site=site, positions=positions, metric=metric, direction=direction,
                             layers=layers, neurons=neurons, max_rows=max_rows, progress=progress,
                             model_name=model_name, max_memory=max_memory)
    return _exact_sweep(model, pairs, site=site, positions=positions, metric=metric, direction=direction,
                        layers=layers, neurons=neurons, max_rows=max_rows, progress=progress, model_name=model_name,
                        max_memory=max_memory, engine=engine, t0=t0)[0]


def patch_by_group(
    model: Any,
    pairs: PromptPairs,
    *,
    site: str = "heads",
    positions: str | int | Sequence[int] = "last",
    metric: str = "ie",
    direction: str = "noising",
    layers: Sequence[int] | None = None,
    neurons: Sequence[int] | Mapping[int, Sequence[int]] | None = None,
    max_rows: int | None = 4096,
    progress: bool = True,
    model_name: str = "",
    max_memory: int | str | Mapping[Any, int | str] = "auto",
    engine: str = "auto",
) -> tuple[PatchResult, dict[str, PatchResult]]:
    """`patch` on all of ``pairs`` plus, from the same sweep, the result of each group of ``pairs.groups`` (e.g. each
    operator): ``(pooled, {group: result})``.

    Every prompt's metric is computed once; a group's result is the mean (standard error, undefined counts,
    unpatched baseline) over its own prompts, what `patch` on ``pairs.by_group()[group]`` gives, up to float32
    rounding of the differently sized passes. Pairs without groups give ``{"all": pooled}``. ``positions="together"``
    and the nnsight backend run `patch` once per group instead (same numbers, no sharing).
    """
    from interp.backends import is_nnsight_model
    from interp.patching.together import is_together

    kw = dict(site=site, positions=positions, metric=metric, direction=direction, layers=layers, neurons=neurons,
              max_rows=max_rows, progress=progress, model_name=model_name, max_memory=max_memory, engine=engine)
    if not pairs.groups:
        pooled = patch(model, pairs, **kw)  # type: ignore[arg-type]
        return pooled, {"all": pooled}
    if engine not in ENGINES:
        raise unknown("engine", engine, ENGINES)
    if is_together(positions) or is_nnsight_model(model):
        pooled = patch(model, pairs, **kw)  # type: ignore[arg-type]
        return pooled, {g: patch(model, p, **kw) for g, p in pairs.by_group().items()}  # type: ignore[arg-type]
    return _exact_sweep(model, pairs, t0=time.time(), by_group=True, **kw)  # type: ignore[arg-type]


def _exact_sweep(
    model: Any,
    pairs: PromptPairs,
    *,
    site: str,
    positions: str | int | Sequence[int],
    metric: str,
    direction: str,
    layers: Sequence[int] | None,
    neurons: Sequence[int] | Mapping[int, Sequence[int]] | None,
    max_rows: int | None,
    progress: bool,
    model_name: str,
    max_memory: int | str | Mapping[Any, int | str],
    engine: str,
    t0: float,
    by_group: bool = False,
) -> tuple[PatchResult, dict[str, PatchResult]]:
    """The exact sweep of `patch` on a TransformerLens bridge (cone engine or full passes), and with ``by_group``
    each group's result from the same per-prompt values (`patch_by_group`)."""
    sp = plan_sweep_variants(model, pairs, site=site, positions=positions, metric=metric, direction=direction,
                             layers=layers, neurons=neurons, max_rows=max_rows)
    kind, pairs, layer_list, pos_list, variants = sp.kind, sp.pairs, sp.layers, sp.positions, sp.variants
    batch = sp.batch
    if isinstance(max_memory, Mapping):  # {device: size}: per device for the cone engine; the smallest otherwise
        budget = min(device_budgets(max_memory, [dev_name(k) for k in max_memory]).values())
    else:
        budget = parse_bytes(max_memory, device=_model_device(model))

    cone: ConeEngine | None = None
    budgets: dict[str, int] | None = None
    note = ""
    if engine != "full":
        try:
            cone = ConeEngine.for_model(model)
        except Unsupported as e:
            if engine == "cone":
                raise
            note = f"full passes: {e}"
            log.info("cone engine not used: %s", e)

    site_hooks = sorted({hook_name(kind, lyr) for lyr in layer_list})
    base, source = pairs.clean_tokens, pairs.corrupt_tokens
    stats = EngineStats()
    with torch.inference_mode():
        if cone is not None:
            try:
                cone.verify(base)
                fixed = cone.cache_bytes(kind, layer_list, batch, pairs.seq_len)
                one = batch * cone.row_bytes(pairs.seq_len - min(pos_list), pairs.seq_len)
                if cone.placement.multi:  # the budget is per device (interp.patching.devices)
                    budgets = device_budgets(max_memory, cone.placement.devices)
                    pass_budget(cone, budgets, kind, layer_list, batch, pairs.seq_len, one)
                elif fixed + one > budget:
                    raise _too_small(budget, fixed, one, batch)
            except Unsupported as e:
                if engine == "cone":
                    raise
                note = f"full passes: {e}"
                log.warning("cone engine not used: %s", e)
                cone = None
        src_cache = None
        if cone is not None:
            base_logits, source_logits = cone.setup(kind, layer_list, base, source, stats)
        else:
            base_logits = model(base)[:, -1, :].float()
            source_out, src_cache = model.run_with_cache(source, names_filter=lambda n: n in site_hooks)
            source_logits = source_out[:, -1, :].float()
            del source_out
        dev = base_logits.device
        ctx = MetricContext(base_logits.float(), source_logits.float(), pairs.clean_answers.to(dev),
                            pairs.corrupt_answers.to(dev))
        group_rows = sp.pairs.group_rows() if by_group else {}
        group_cols = [torch.as_tensor(rows, dtype=torch.long) for rows in group_rows.values()] or None
        sw = _Sweep(model, kind, variants, base, source, metric, ctx, batch, max_rows, budget, progress, site,
                    budgets, group_cols)
        if cone is not None:
            try:
                n_pass = _run_cone(sw, cone, stats)
            finally:
                cone.release()
            used = "cone"
        else:
            n_pass = _run_full(sw, src_cache)
            used = "full"
        baseline = metric_unpatched_values(metric, ctx)
        mean, se, n_def = sw.host()
        if group_rows:  # one host copy of the per-group moments, as of the totals
            g_mean, g_se, g_def = sw.g_mean.cpu().numpy(), sw.g_se.cpu().numpy(), sw.g_def.cpu().numpy()

    meta: dict[str, Any] = {"engine": used, "max_memory": budget, **({"engine_note": note} if note else {})}
    if used == "cone":
        meta.update(stats.to_dict())
    seconds = time.time() - t0
    pooled = sweep_result(sp, mean, se, site=site, metric=metric, direction=direction, model=model,
                          model_name=model_name, n_forward_passes=2 + n_pass, seconds=seconds,
                          baseline=baseline, meta=dict(meta), n_defined=n_def)
    per_group: dict[str, PatchResult] = {}
    for j, (g, rows) in enumerate(group_rows.items()):
        ix = torch.as_tensor(rows)
        sub = MetricContext(ctx.base_logits[ix], ctx.source_logits[ix], ctx.r[ix], ctx.r2[ix])
        per_group[g] = sweep_result(
            replace(sp, pairs=sp.pairs.select(rows)), g_mean[:, j], g_se[:, j], site=site, metric=metric,
            direction=direction, model=model, model_name=model_name, n_forward_passes=2 + n_pass, seconds=seconds,
            baseline=metric_unpatched_values(metric, sub), meta={**meta, "group": g, "pooled_prompts": batch},
            n_defined=g_def[:, j])
    return pooled, per_group

