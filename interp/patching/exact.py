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

import dataclasses
import logging
import numbers
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import ShapeError, unknown
from interp.metrics import METRICS, MetricContext, make_metric, metric_unpatched_values
from interp.patching.devices import dev_name, device_budgets, pass_budget
from interp.patching.engine import ConeEngine, EngineStats, Unsupported, format_bytes, parse_bytes, plan_passes
from interp.patching.result import PatchResult
from interp.sites import (
    CLI_SITES,
    SWEEP_AXES,
    check_layer,
    check_layers,
    check_site_exists,
    hook_name,
    site_kind,
    site_units,
)
from interp.tasks.base import PromptPairs

__all__ = ["patch", "prepare_sweep", "resolve_positions", "PatchSpec", "DIRECTIONS", "ENGINES", "SweepVariants",
           "plan_sweep_variants", "sweep_result", "oriented_pairs"]

log = logging.getLogger(__name__)

DIRECTIONS = ("noising", "denoising")
ENGINES = ("auto", "cone", "full")


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
    """Everything both engines share: inputs, variants, the metric and the running sums."""

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

    def __post_init__(self) -> None:
        self.sums = torch.zeros(len(self.variants), dtype=torch.float64)
        self.sq = torch.zeros(len(self.variants), dtype=torch.float64)
        self.n_def = torch.full((len(self.variants),), self.batch, dtype=torch.int64)

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
        if self.sums.device != vals.device:
            self.sums, self.sq = self.sums.to(vals.device), self.sq.to(vals.device)
            self.n_def = self.n_def.to(vals.device)
        ok = torch.isfinite(vals)
        vals = torch.where(ok, vals, torch.zeros((), dtype=vals.dtype, device=vals.device))
        self.sums[idx] = vals.sum(1)
        self.sq[idx] = (vals**2).sum(1)
        self.n_def[idx] = ok.sum(1)


# metrics that read only the answer logits r and r2 of each prompt (checked on real logits before use)
ANSWER_ONLY_METRICS = ("logit_diff", "logit_diff_change", "logit_diff_norm")


def _answer_columns(sw: _Sweep) -> tuple[Tensor, MetricContext] | None:
    """``[B 2]`` answer token columns and the metric context on them, when the metric reads nothing else."""
    if sw.metric not in ANSWER_ONLY_METRICS:
        return None
    ctx = sw.ctx
    cols = torch.stack([ctx.r, ctx.r2], dim=1).to(ctx.base_logits.device)
    small = MetricContext(ctx.base_logits.gather(1, cols), ctx.source_logits.gather(1, cols),
                          torch.zeros_like(ctx.r), torch.ones_like(ctx.r2))
    full_fn, small_fn = make_metric(sw.metric, ctx), make_metric(sw.metric, small)
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
    answer = _answer_columns(sw)
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
        sw = _Sweep(model, kind, variants, base, source, metric, ctx, batch, max_rows, budget, progress, site,
                    budgets)
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
        sums, sq, n_def = sw.sums.cpu().numpy(), sw.sq.cpu().numpy(), sw.n_def.cpu().numpy()

    meta: dict[str, Any] = {"engine": used, "max_memory": budget, **({"engine_note": note} if note else {})}
    if used == "cone":
        meta.update(stats.to_dict())
    return sweep_result(sp, sums, sq, site=site, metric=metric, direction=direction, model=model,
                        model_name=model_name, n_forward_passes=2 + n_pass, seconds=time.time() - t0,
                        baseline=baseline, meta=meta, n_defined=n_def)


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


def sweep_result(sp: SweepVariants, sums: np.ndarray, sq: np.ndarray, *, site: str, metric: str, direction: str,
                 model: Any, model_name: str, n_forward_passes: int, seconds: float, baseline: dict[str, float],
                 meta: dict[str, Any], n_defined: np.ndarray | None = None) -> PatchResult:
    """The `PatchResult` of a sweep from per-variant sums and sums of squares of the per-prompt metric.

    ``n_defined`` counts each variant's prompts with a finite metric value (the sums cover only those; default:
    every prompt); undefined counts go to ``meta["n_undefined"]`` and one warning."""
    kind, pairs, layer_list, pos_list, batch = sp.kind, sp.pairs, sp.layers, sp.positions, sp.batch
    units, per_layer = sp.units, sp.per_layer
    n = np.full(sums.shape, batch, dtype=np.int64) if n_defined is None else np.asarray(n_defined, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, sums / np.maximum(n, 1), np.nan)
        var = np.maximum(sq / np.maximum(n, 1) - mean**2, 0.0) * n / np.maximum(n - 1, 1)
        stderr = np.where(n > 0, np.sqrt(var / np.maximum(n, 1)), np.nan)
    n_undef = batch - n
    total = int(n_undef.sum())
    index: dict[str, list[int]] = {"layer": layer_list, "pos": pos_list}
    labels: dict[str, list[str]] = {
        "layer": [f"L{x}" for x in layer_list],
        "pos": [f"{p} {pairs.position_labels[p]}" for p in pos_list],
    }
    axes = SWEEP_AXES[kind]
    if kind == "head":
        index["head"], labels["head"] = units or [], [f"H{u}" for u in units or []]
    if kind == "neuron" and per_layer is None:
        index["neuron"], labels["neuron"] = units or [], [f"N{u}" for u in units or []]
    if per_layer is not None:
        axes = ("layer", "pos", "rank")
        index["rank"], labels["rank"] = list(units or []), [f"#{r + 1}" for r in units or []]
        meta["neurons"] = {str(lyr): per_layer[lyr] for lyr in layer_list}
    shape = tuple(len(index[a]) for a in axes)
    meta["n_undefined_total"] = total
    if total:
        meta["n_undefined"] = n_undef.reshape(shape).tolist()
        log.warning("%d of %d per-prompt %s values are undefined (not finite) in %d of %d cells; each cell's mean "
                    "leaves them out (counts per cell in meta['n_undefined']; cells with none defined are NaN)",
                    total, n_undef.size * batch, metric, int((n_undef > 0).sum()), n_undef.size)
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
        n_forward_passes=n_forward_passes,
        seconds=seconds,
        stderr=stderr.reshape(shape),
        baseline=baseline,
        meta=meta,
    )
