"""Ablating everything outside a circuit (Nikankin et al., ICLR 2025): ablation values and the hooks that apply them.

A *circuit* is a set of attention heads (``hook_z`` of one head) and MLP layers (the whole ``hook_post`` vector), or
single neurons of an MLP layer. Everything outside it is *ablated*: its activation is replaced, at every position,
by an ablation value. Three ablations are offered (`ABLATIONS`), because faithfulness depends on the choice:

* ``mean`` - the per-position mean of the activation over every string ``"x op y="`` with x, y in the operand range
  and all four operators, illegal ones included, so the operators are balanced (the paper's ``calc_mean_cache``;
  see `mean_cache`);
* ``zero`` - zero (takes the model far off its training distribution; usually much harsher);
* ``resample`` - the activation of another prompt (row ``i`` of ``resample_tokens``, e.g. the corrupt prompts).

The faithfulness score built on these hooks is in `interp.circuits.faithfulness`, the `Circuit` result in
`interp.circuits.circuit`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from interp.errors import InterpError, ShapeError, unknown
from interp.sites import check_site_exists, hook_name, site_kind
from interp.tasks.base import require

__all__ = ["ABLATIONS", "CircuitError", "Hook", "ablation_hooks", "check_ablation", "grid_pass", "mean_cache",
           "mean_cache_tokens"]

log = logging.getLogger(__name__)

ABLATIONS: tuple[str, ...] = ("mean", "zero", "resample")

Hook = tuple[str, Callable[..., Tensor]]


class CircuitError(InterpError, ValueError):
    """Bad circuit-discovery input: ablation settings that do not fit, a target outside (0, 1], ..."""


def check_ablation(name: str) -> str:
    if name not in ABLATIONS:
        raise unknown("ablation", name, ABLATIONS)
    return name


# ---------------------------------------------------------------------------------------------------- mean cache


def mean_cache_tokens(task: Any, model: Any, *, operand_max: int | None = None, seq_len: int | None = None) -> Tensor:
    """The task's mean-ablation reference prompts, ``task.mean_ablation_tokens(model)`` (the task protocol).

    Arithmetic: every string ``"x op y="`` (x, y in ``task.lo..operand_max``, all four operators, illegal ones
    included, as in the paper); ``operand_max`` and ``seq_len`` are passed on to tasks whose method takes them.
    """
    require(task, "mean ablation", "mean_ablation_tokens")
    own = task.mean_ablation_tokens
    try:
        params = inspect.signature(own).parameters
    except (TypeError, ValueError):
        params = {}
    kw = {k: v for k, v in (("operand_max", operand_max), ("seq_len", seq_len)) if v is not None and k in params}
    tokens = own(model, **kw)
    if not isinstance(tokens, Tensor):
        tokens = torch.as_tensor(tokens, dtype=torch.long)
    if operand_max is not None and "operand_max" not in params:
        log.info("operand_max=%s does not apply to task %s (it supplies its own reference prompts)", operand_max,
                 getattr(task, "name", task))
    return tokens


@torch.inference_mode()
def mean_cache(
    model: Any,
    task: Any,
    *,
    kinds: Sequence[str] = ("head", "mlp"),
    operand_max: int | None = None,
    batch_size: int = 512,
    seq_len: int | None = None,
    tokens: Tensor | None = None,
    on_logits: Callable[[Tensor, Tensor], None] | None = None,
    engine: bool = True,
) -> dict[str, Tensor]:
    """Per-position mean of each hook of ``kinds`` over the balanced grid of all operators (``calc_mean_cache``).

    Returns ``{hook_name: mean}`` with ``mean`` of shape ``[pos, ...]`` (``[pos head_index d_head]`` for heads,
    ``[pos d_mlp]`` for MLPs and neurons). ``operand_max`` shrinks the grid for large models (the paper uses
    operands 0-299, 360k strings). ``tokens`` overrides the grid with any ``[batch pos]`` token set. The reference
    prompts come from the task's ``mean_ablation_tokens(model)`` (the task protocol; arithmetic: the balanced grid,
    IOI: the ABC prompts, induction: fresh random sequences); a task without it raises `TaskError` naming it.
    ``on_logits(rows, last_logits)`` receives each batch's last-position logits ``[batch d_vocab]`` of the rows
    ``rows`` (a LongTensor of indices into the reference tokens; batches may come in any order) from the same
    forward passes, so a caller can read predictions off the grid at no extra cost (`grid_pass` takes greedy
    correctness from them); not supported on the nnsight backend.

    ``engine=True`` (default) computes the means through the cone engine's explicit forward where it supports the
    model (verified against the bridge; `interp.patching.engine.means`): logits only at the last position, and a
    prefix shared by equal-sized groups of reference prompts (the grid's ``BOS x op``) computed once - about 3x
    fewer token positions on the arithmetic grid. The values equal the bridge's ``run_with_cache`` means up to
    float32 rounding; ``engine=False`` runs the bridge on every prompt.
    """
    names = sorted({hook_name(k, layer) for k in kinds for layer in range(int(model.cfg.n_layers))})
    for k in kinds:
        check_site_exists(model, site_kind(k))
    if tokens is None:
        tokens = mean_cache_tokens(task, model, operand_max=operand_max, seq_len=seq_len)
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise ShapeError(f"mean-cache tokens must be a non-empty [batch pos] tensor; got {tuple(tokens.shape)}")
    from interp.backends import is_nnsight_model

    if is_nnsight_model(model):  # the same means from nnsight traces (interp.backends.nnsight_ablation)
        from interp.backends.nnsight_ablation import nnsight_mean_cache

        if on_logits is not None:
            raise InterpError("mean_cache(on_logits=...) is not supported on the nnsight backend")
        return nnsight_mean_cache(model, tokens, kinds=kinds, batch_size=batch_size)
    sums = _engine_sums(model, tokens, kinds, batch_size, on_logits) if engine else None
    if sums is None:
        sums = {}
        for i in range(0, tokens.shape[0], batch_size):
            logits, cache = model.run_with_cache(tokens[i : i + batch_size], names_filter=lambda n: n in names)
            if on_logits is not None:
                on_logits(torch.arange(i, i + logits.shape[0]), logits[:, -1, :])
            for n in names:
                s = cache[n].double().sum(0)
                sums[n] = s if n not in sums else sums[n] + s
    return {n: (s / tokens.shape[0]).float() for n, s in sums.items()}


def _engine_sums(model: Any, tokens: Tensor, kinds: Sequence[str], batch_size: int,
                 on_logits: Callable[[Tensor, Tensor], None] | None) -> dict[str, Tensor] | None:
    """The mean cache's sums through the cone engine's explicit forward (shared prefixes computed once:
    `interp.patching.engine.means`), keyed by hook name; None where the engine does not apply (the caller then
    runs the bridge)."""
    from interp.patching.engine import ConeEngine
    from interp.patching.engine.core import SITE_ACT
    from interp.patching.engine.means import TAPS, activation_sums

    taps = {k: SITE_ACT.get(site_kind(k)) for k in kinds}
    if any(t not in TAPS for t in taps.values()):
        return None
    eng = ConeEngine.verified(model, tokens, fallback="mean cache on full bridge passes")
    if eng is None:
        return None
    n_layers = int(model.cfg.n_layers)
    keys = {hook_name(k, layer): (t, layer) for k, t in taps.items() for layer in range(n_layers)}
    sums = activation_sums(eng, tokens, set(keys.values()), max_rows=batch_size, on_logits=on_logits)
    return {name: sums[key] for name, key in keys.items()}


def grid_pass(model: Any, task: Any) -> dict[str, Tensor] | None:
    """One forward pass over every string ``x op y=`` of all four operators (the mean-ablation grid) that yields
    both the mean cache (returned) and the greedy correctness of every legal prompt (recorded on ``task`` with
    ``record_correctness``, so its `accuracy`, `correct_prompts` and `pairs` run no model): the legal prompts are a
    subset of those strings and, with single-token answers, correctness is the last position's argmax.

    Returns None (and does nothing) where that does not hold: a task that is not an `ArithTask` (IOI, induction,
    your own tasks have their own mean-ablation sets), multi-token answers, or prompts that are not among the strings.
    """
    from interp.tasks.arith import ArithTask

    if not isinstance(task, ArithTask):
        return None
    tokens = mean_cache_tokens(task, model)
    prompts = {op: task.prompts(model, op) for op in task.operators}
    row = {tuple(t): i for i, t in enumerate(tokens.tolist())}
    where = {}
    for op, ps in prompts.items():
        idx = [row.get(p.tokens) for p in ps]
        if any(i is None for i in idx) or any(len(p.answer_tokens) != 1 for p in ps):
            return None
        where[op] = idx
    pred = torch.empty(tokens.shape[0], dtype=torch.long)

    def keep(rows: Tensor, last: Tensor) -> None:
        pred[rows.cpu()] = last.argmax(-1).cpu()

    with torch.inference_mode():
        mean = mean_cache(model, task, tokens=tokens, on_logits=keep)
    for op, ps in prompts.items():
        got = pred[torch.tensor(where[op])].tolist()
        task.record_correctness(model, op, [g == p.answer_tokens[0] for g, p in zip(got, ps)])
    return mean


# ------------------------------------------------------------------------------------------------------ hooks


def _check_components(
    model: Any,
    keep_heads: Iterable[tuple[int, int]],
    keep_mlps: Iterable[int],
    keep_neurons: Mapping[int, Sequence[int]] | None,
) -> tuple[set[tuple[int, int]], set[int], dict[int, list[int]]]:
    n_layers, n_heads, d_mlp = int(model.cfg.n_layers), int(model.cfg.n_heads), int(model.cfg.d_mlp)
    heads = {(int(l), int(h)) for l, h in keep_heads}
    mlps = {int(l) for l in keep_mlps}
    bad_h = sorted(x for x in heads if not (0 <= x[0] < n_layers and 0 <= x[1] < n_heads))
    if bad_h:
        raise ShapeError(
            f"heads {bad_h[:5]} do not exist; the model has layers 0..{n_layers - 1}, heads 0..{n_heads - 1}"
        )
    bad_m = sorted(x for x in mlps if not 0 <= x < n_layers)
    if bad_m:
        raise ShapeError(f"MLP layers {bad_m[:5]} do not exist; the model has layers 0..{n_layers - 1}")
    neurons: dict[int, list[int]] = {}
    for layer, idx in (keep_neurons or {}).items():
        if not 0 <= int(layer) < n_layers:
            raise ShapeError(f"keep_neurons layer {layer} does not exist; the model has layers 0..{n_layers - 1}")
        idx = sorted({int(n) for n in idx})
        bad = [n for n in idx if not 0 <= n < d_mlp]
        if bad:
            raise ShapeError(f"neurons {bad[:5]} of layer {layer} are out of range; d_mlp is {d_mlp}")
        neurons[int(layer)] = idx
    return heads, mlps, neurons


def _replace_hook(keep: Tensor, value: Tensor | None) -> Callable[..., Tensor]:
    """Replace the units where ``keep`` is False by ``value`` (None = zero), at every position."""

    def hook(act: Tensor, hook: Any) -> Tensor:
        if value is None:
            return torch.where(keep, act, torch.zeros((), dtype=act.dtype, device=act.device))
        v = value.to(act.dtype)
        if v.shape[-act.ndim + 1 :] != act.shape[1:] or (v.ndim == act.ndim and v.shape[0] != act.shape[0]):
            want = "[batch " + " ".join(map(str, act.shape[1:])) + "]"
            raise ShapeError(
                f"{hook.name}: the ablation value has shape {tuple(v.shape)} but the activation is "
                f"{tuple(act.shape)}; the mean cache must have the evaluated prompts' length and resample tokens "
                f"one row per prompt ({want})"
            )
        return torch.where(keep, act, v)

    return hook


def ablation_hooks(
    model: Any,
    *,
    keep_heads: Iterable[tuple[int, int]],
    keep_mlps: Iterable[int],
    keep_neurons: Mapping[int, Sequence[int]] | None = None,
    ablation: str,
    mean: Mapping[str, Tensor] | None = None,
    resample_tokens: Tensor | None = None,
) -> list[Hook]:
    """Forward hooks that ablate every head ``z`` and MLP ``hook_post`` outside the kept set, at every position.

    ``keep_neurons[layer]`` keeps only those neurons of that MLP layer (the rest are ablated) and overrides
    ``keep_mlps`` for that layer. ``mean`` comes from `mean_cache` (``ablation="mean"``); ``resample_tokens``
    ``[batch pos]`` are run once and row ``i`` replaces prompt ``i`` (``ablation="resample"``).
    Returns ``[(hook_name, fn)]`` for ``model.run_with_hooks`` / ``model.hooks``; empty when nothing is ablated.
    """
    check_ablation(ablation)
    heads, mlps, neurons = _check_components(model, keep_heads, keep_mlps, keep_neurons)
    n_layers, n_heads, d_mlp = int(model.cfg.n_layers), int(model.cfg.n_heads), int(model.cfg.d_mlp)
    device = next(iter(model.parameters())).device
    plan: list[tuple[str, Tensor]] = []  # (hook name, keep mask broadcastable to the activation)
    for layer in range(n_layers):
        kept = [h for h in range(n_heads) if (layer, h) in heads]
        if len(kept) < n_heads:
            mask = torch.zeros(n_heads, dtype=torch.bool, device=device)
            mask[kept] = True
            plan.append((hook_name("head", layer), mask[:, None]))  # [head 1] vs [batch pos head d_head]
        if layer in neurons:
            mask = torch.zeros(d_mlp, dtype=torch.bool, device=device)
            mask[neurons[layer]] = True
            if not bool(mask.all()):
                plan.append((hook_name("mlp", layer), mask))
        elif layer not in mlps:
            plan.append((hook_name("mlp", layer), torch.zeros(d_mlp, dtype=torch.bool, device=device)))
    if not plan:
        return []
    values: dict[str, Tensor | None] = {}
    if ablation == "mean":
        if mean is None:
            raise CircuitError("ablation='mean' needs the mean cache: pass mean=mean_cache(model, task)")
        missing = [n for n, _ in plan if n not in mean]
        if missing:
            raise CircuitError(f"the mean cache has no entry for {missing[:3]}; build it with kinds=('head', 'mlp')")
        values = {n: mean[n].to(device) for n, _ in plan}
    elif ablation == "resample":
        if resample_tokens is None:
            raise CircuitError("ablation='resample' needs resample_tokens (e.g. the corrupt prompts), one per prompt")
        if resample_tokens.ndim != 2:
            raise ShapeError(f"resample_tokens must be [batch pos]; got {tuple(resample_tokens.shape)}")
        need = {n for n, _ in plan}
        with torch.inference_mode():
            _, cache = model.run_with_cache(resample_tokens.to(device), names_filter=lambda n: n in need)
        values = {n: cache[n].clone() for n in need}
    else:
        values = {n: None for n, _ in plan}
    return [(n, _replace_hook(mask, values[n])) for n, mask in plan]
