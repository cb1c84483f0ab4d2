"""Path patching (Wang et al. 2023, the IOI circuit paper; Goldowsky-Dill et al. 2023): a head's effect along
chosen paths only.

Activation patching measures a sender head's *total* effect: everything downstream of it recomputes. Path
patching keeps only the paths that end in chosen *receivers*:

* ``receivers="logits"`` (the direct path). Run the base prompt with the sender's output (``attn.hook_z``, every
  position) taken from the source prompt and every other head frozen at its base value; the metric is read from
  that run's logits. With ``freeze_mlps=True`` the MLPs are frozen too and only the sender's own write to the
  residual stream reaches the unembedding; by default (Wang et al.) MLPs recompute and are part of the path.
* ``receivers=[(layer, head), ...]``. The same frozen run gives each receiver's output as computed from a residual
  stream in which only the sender's path has changed (its queries, keys and values all see the change); a second
  base run with just the receivers' outputs set to those values gives the metric (Wang et al.'s three steps).

Every head of the swept layers is a sender in turn: 1 (logits) or 2 (receivers) full forward passes per sender,
on all prompts at once. Results are `PatchResult`s with axes ``layer, head`` and the same metrics, directions and
baselines as `interp.patching.patch`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from interp.errors import ShapeError, unknown
from interp.metrics import MetricContext, finite_moments, make_metric, metric_unpatched_values
from interp.patching.engine import Unsupported
from interp.patching.exact import ENGINES
from interp.patching.result import PatchResult
from interp.patching.variants import prepare_sweep
from interp.sites import hook_name, resolve_layers
from interp.tasks.base import PromptPairs

__all__ = ["path_patch", "parse_receivers"]

log = logging.getLogger(__name__)

_HEAD = re.compile(r"^L(\d+)H(\d+)$", re.IGNORECASE)


def parse_receivers(spec: str | Sequence[tuple[int, int]] | Sequence[str]) -> str | list[tuple[int, int]]:
    """``"logits"``, ``"L9H6,L9H9"`` or ``[(9, 6), (9, 9)]`` / ``["L9H6"]`` -> ``"logits"`` or ``[(layer, head)]``."""
    if isinstance(spec, str):
        if spec.strip().lower() == "logits":
            return "logits"
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    out: list[tuple[int, int]] = []
    for item in spec:
        if isinstance(item, str):
            m = _HEAD.match(item.strip())
            if not m:
                raise ShapeError(f"receivers must be 'logits' or heads like L9H6,L9H9; got {item!r}")
            out.append((int(m.group(1)), int(m.group(2))))
        else:
            layer, head = item
            out.append((int(layer), int(head)))
    if not out:
        raise ShapeError("no receivers given; use 'logits' or heads like L9H6,L9H9")
    return sorted(set(out))


def _check_receivers(model: Any, receivers: list[tuple[int, int]], sender_layers: list[int]) -> None:
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    bad = [f"L{lyr}H{h}" for lyr, h in receivers if not (0 <= lyr < n_layers and 0 <= h < n_heads)]
    if bad:
        raise ShapeError(f"receivers {bad} do not exist; the model has layers 0..{n_layers - 1} and heads "
                         f"0..{n_heads - 1}")
    if max(lyr for lyr, _ in receivers) <= min(sender_layers):
        raise ShapeError(f"every receiver sits in a layer <= every sender layer ({min(sender_layers)}), so no path "
                         "joins them; receivers must come after the senders")


@torch.inference_mode()
def path_patch(
    model: Any,
    pairs: PromptPairs,
    *,
    receivers: str | Sequence[tuple[int, int]] | Sequence[str] = "logits",
    layers: Sequence[int] | None = None,
    metric: str = "logit_diff",
    direction: str = "noising",
    freeze_mlps: bool = False,
    progress: bool = True,
    model_name: str = "",
    engine: str = "auto",
    max_memory: int | str = "auto",
) -> PatchResult:
    """Path patching of every head of ``layers`` (default: all) as sender, to ``receivers`` (see module doc).

    ``direction="noising"`` runs the clean prompt and takes the sender's output from the corrupt one (as
    `interp.patching.patch`); ``"denoising"`` the reverse. ``effects[layer, head]`` is the mean metric of the
    path-patched runs; ``baseline`` holds the unpatched base and source values.

    ``engine="auto"`` (default) runs through the cone engine (`interp.patching.path_cone`: only the MLPs and, for
    receiver heads, the receivers' cone are recomputed, every sender of a layer in one batch within ``max_memory``)
    and falls back to the hooked full passes below for architectures it does not handle; ``"cone"`` requires the
    engine, ``"full"`` always runs the hooked passes (one or two per sender). Both give the same numbers.
    """
    from interp.progress import iterate

    t0 = time.time()
    _, pairs = prepare_sweep(model, pairs, "heads", metric, direction)
    recv = parse_receivers(receivers)
    sender_layers = resolve_layers(model, layers)
    if recv != "logits":
        _check_receivers(model, recv, sender_layers)
    if engine not in ENGINES:
        raise unknown("engine", engine, ENGINES)
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    note = ""
    if engine != "full":
        from interp.patching.path_cone import path_patch_cone

        try:
            per_prompt, ctx, n_pass, meta = path_patch_cone(model, pairs, recv=recv, sender_layers=sender_layers,
                                                            metric=metric, freeze_mlps=freeze_mlps,
                                                            max_memory=max_memory)
            return _result(per_prompt, ctx, pairs, sender_layers, n_heads, recv, freeze_mlps, metric, direction,
                           model, model_name, 2 + n_pass, time.time() - t0, meta)
        except Unsupported as e:
            if engine == "cone":
                raise
            note = f"full passes: {e}"
    z_names = [hook_name("head", lyr) for lyr in range(n_layers)]
    mlp_names = [hook_name("mlp_out", lyr) for lyr in range(n_layers)] if freeze_mlps else []
    keep = set(z_names + mlp_names)
    base_logits, base_cache = model.run_with_cache(pairs.clean_tokens, names_filter=lambda n: n in keep)
    src_logits, src_cache = model.run_with_cache(pairs.corrupt_tokens, names_filter=lambda n: n in keep)
    ctx = MetricContext(base_logits[:, -1].float(), src_logits[:, -1].float(), pairs.clean_answers,
                        pairs.corrupt_answers)
    score = make_metric(metric, ctx)
    n_fwd = 2
    per_prompt = torch.full((len(sender_layers), n_heads, pairs.n), float("nan"), dtype=torch.float64)
    recv_by_layer: dict[int, list[int]] = {}
    if recv != "logits":
        for lyr, h in recv:
            recv_by_layer.setdefault(lyr, []).append(h)

    senders = [(lyr, h) for lyr in sender_layers for h in range(n_heads)]
    for si, (ls, hs) in enumerate(iterate(senders, desc="path patching", enabled=progress)):
        recorded: dict[int, Tensor] = {}

        def freeze_z(z: Tensor, hook: Any, layer: int, ls: int = ls, hs: int = hs,
                     recorded: dict[int, Tensor] = recorded) -> Tensor:
            if layer in recv_by_layer:  # the receivers' outputs as computed from the path-patched stream
                recorded[layer] = z[:, :, recv_by_layer[layer]].clone()
            if layer != ls:
                return base_cache[hook.name]  # frozen; read-only downstream, like freeze_mlp's
            out = base_cache[hook.name].clone()
            out[:, :, hs] = src_cache[hook.name][:, :, hs]
            return out

        def freeze_mlp(x: Tensor, hook: Any) -> Tensor:
            return base_cache[hook.name]

        hooks = [(z_names[lyr], _bind(freeze_z, lyr)) for lyr in range(ls, n_layers)]
        hooks += [(mlp_names[lyr], freeze_mlp) for lyr in range(ls, n_layers)] if freeze_mlps else []
        logits = model.run_with_hooks(pairs.clean_tokens, fwd_hooks=hooks)
        n_fwd += 1
        if recv != "logits":
            def set_receivers(z: Tensor, hook: Any, layer: int, recorded: dict[int, Tensor] = recorded) -> Tensor:
                z = z.clone()
                z[:, :, recv_by_layer[layer]] = recorded[layer]
                return z

            logits = model.run_with_hooks(
                pairs.clean_tokens,
                fwd_hooks=[(z_names[lyr], _bind(set_receivers, lyr)) for lyr in recv_by_layer if lyr > ls],
            )
            n_fwd += 1
        per_prompt[si // n_heads, hs] = score(logits[:, -1].float()).double()

    return _result(per_prompt, ctx, pairs, sender_layers, n_heads, recv, freeze_mlps, metric, direction, model,
                   model_name, n_fwd, time.time() - t0, {"engine": "full", **({"engine_note": note} if note else {})})


def _result(per_prompt: Tensor, ctx: MetricContext, pairs: PromptPairs, sender_layers: list[int], n_heads: int,
            recv: Any, freeze_mlps: bool, metric: str, direction: str, model: Any, model_name: str, n_fwd: int,
            seconds: float, meta: dict[str, Any]) -> PatchResult:
    # undefined (non-finite) per-prompt values are left out of each cell's mean and counted, as in `patch`
    mean_t, se_t, n_def = finite_moments(per_prompt.cpu())  # float64, no overflow near the float64 limit
    mean, stderr = mean_t.numpy(), se_t.numpy()
    n_undef = (pairs.n - n_def).numpy()
    if n_undef.sum():
        log.warning("%d per-prompt %s values are undefined (not finite) in %d path-patching cells; each cell's mean "
                    "leaves them out (meta['n_undefined'])", int(n_undef.sum()), metric, int((n_undef > 0).sum()))
    heads = list(range(n_heads))
    return PatchResult(
        effects=mean,
        axes=("layer", "head"),
        index={"layer": sender_layers, "head": heads},
        labels={"layer": [f"L{x}" for x in sender_layers], "head": [f"H{h}" for h in heads]},
        site="heads",
        metric=metric,
        model=model_name or str(getattr(model.cfg, "model_name", "")),
        task=pairs.task,
        direction=direction,
        n_prompts=pairs.n,
        n_forward_passes=n_fwd,
        seconds=seconds,
        stderr=stderr,
        baseline=metric_unpatched_values(metric, ctx),
        meta={"method": "path_patching", "n_undefined_total": int(n_undef.sum()),
              **({"n_undefined": n_undef.tolist()} if n_undef.sum() else {}),
              "receivers": "logits" if recv == "logits" else [f"L{lyr}H{h}" for lyr, h in recv],
              "freeze_mlps": freeze_mlps, **meta},
    )


def _bind(fn: Any, layer: int) -> Any:
    def hook(x: Tensor, hook: Any) -> Tensor:
        return fn(x, hook, layer)

    return hook
