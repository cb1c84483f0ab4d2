"""Exact activation patching as batched nnsight traces: the same sweep, metrics and `PatchResult` as the bridge.

`interp.patching.patch(model, pairs, ...)` lands here when ``model`` is an `NNsightModel`
(``load_model(spec, backend="nnsight")``). Every site (``resid``, ``attn_out``, ``mlp_out``, ``heads``, ``mlps``,
``neurons``, ``neurons={layer: [...]}``), position set, metric and direction of the bridge path is supported.

How a sweep becomes traces
--------------------------
* A trace's batch is ``[source prompts (B rows); k patch variants x base prompts (k*B rows)]``. The source rows run
  unpatched; at each swept module the variant rows take their slice from the source rows *of the same forward*
  (``act[rows, pos(, unit)] = act[source rows, pos(, unit)]``), so no activation is ever sent back and forth: a
  remote trace uploads tokens and a few index tensors and downloads 3 numbers per row.
* Modules are visited in forward order (layers ascending), as nnsight requires within one trace. Sites map to the
  Hugging Face modules: ``resid_pre`` = the decoder layer's input, ``attn_out`` = ``o_proj`` output, heads = slices
  of ``o_proj``'s input (the bridge's ``hook_z``), ``mlp``/neurons = ``down_proj``'s input (``hook_post``),
  ``mlp_out`` = the MLP's output.
* Only the last position's logits are computed (``logits_to_keep=1``) and each row is reduced inside the trace to
  ``(L(r) - m, L(r2) - m, logsumexp(L) - m)`` with ``m`` the mean logit; locally these become three pseudo-logits
  ``[L(r), L(r2), log(rest of the probability mass)]`` whose softmax and differences equal the full ones, so the
  metric is computed by the very `interp.metrics.make_metric` the bridge uses (`pseudo_logits`).
* One setup trace runs ``[source; base]`` for the unpatched logits. Remotely, up to `TRACES_PER_REQUEST` traces go
  to NDIF together as one nnsight session (one request, one queue wait). Variants are packed ``k`` per trace so that
  ``(k + 1) * B`` rows fit ``max_rows`` and ``max_memory`` (`row_bytes` per row; ``"auto"`` = 40% of the free
  memory of the model's device, or `REMOTE_AUTO_BYTES` per request on NDIF). `plan_traces` gives the counts and
  bytes before anything runs; `nnsight_patch` logs them and records them in ``result.meta["plan"]``.

Remote (``remote=True`` on the model) runs one NDIF request per session of traces; ``remote="local"`` runs nnsight's
serialise-and-execute simulation of that path on this machine (the tests use it).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.metrics import MetricContext, finite_moments, make_metric, metric_unpatched_values
from interp.patching.engine import format_bytes, parse_bytes
from interp.patching.result import PatchResult
from interp.patching.variants import SweepVariants, plan_sweep_variants, sweep_result

__all__ = ["TracePlan", "nnsight_patch", "plan_patch", "plan_traces", "pseudo_logits", "row_bytes", "REMOTE_AUTO_BYTES"]

log = logging.getLogger(__name__)

REMOTE_AUTO_BYTES = 4 * 10**9  # max_memory="auto" for one NDIF request (the server's free memory is not known here)
SAVED_PER_ROW = 3  # float32 values downloaded per row
TRACES_PER_REQUEST = 16  # traces sent to NDIF together as one nnsight session (one request, one queue wait)


@dataclass(frozen=True)
class TracePlan:
    """What a sweep will cost on the nnsight backend, known before it runs."""

    n_variants: int
    n_prompts: int
    variants_per_trace: int
    n_traces: int  # including the setup trace
    rows: int  # rows over all traces (setup, source and patched rows)
    bytes_per_trace: int  # estimated working memory of the largest trace
    bytes_saved: int  # downloaded from the traces' saved values
    bytes_sent: int  # tokens and index tensors uploaded
    remote: bool
    budget: int
    traces_per_request: int = TRACES_PER_REQUEST

    @property
    def n_requests(self) -> int:
        """NDIF requests (one nnsight session of up to ``traces_per_request`` traces each) when remote, else 0."""
        return math.ceil(self.n_traces / self.traces_per_request) if self.remote else 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "n_requests": self.n_requests}

    def __str__(self) -> str:
        where = f"{self.n_requests} NDIF requests" if self.remote else "local"
        return (f"{self.n_variants} patch variants x {self.n_prompts} prompts in {self.n_traces} traces ({where}; "
                f"{self.variants_per_trace} variants per trace), ~{format_bytes(self.bytes_per_trace)} working "
                f"memory per trace, {format_bytes(self.bytes_saved)} saved, {format_bytes(self.bytes_sent)} sent")


def row_bytes(cfg: Any, seq_len: int, itemsize: int = 4) -> int:
    """Working memory of one row of a Hugging Face forward with eager attention and last-position logits."""
    d, h, kv, dh, m, v = (int(cfg.d_model), int(cfg.n_heads), int(cfg.n_key_value_heads), int(cfg.d_head),
                          int(cfg.d_mlp), int(cfg.d_vocab))
    per_pos = 10 * d + 4 * m + (h + 2 * kv) * dh + 3 * h * seq_len
    return int((seq_len * per_pos * itemsize + 4 * v * 4) * 1.25)


def plan_traces(model: Any, sp: SweepVariants, *, max_rows: int | None, max_memory: Any) -> TracePlan:
    """Pack the sweep's variants into traces (see the module docstring); raises `ShapeError` if one cannot fit."""
    from interp.errors import ShapeError

    b, s = sp.batch, sp.pairs.seq_len
    remote = bool(model.remote)
    if isinstance(max_memory, Mapping):
        budget = min(parse_bytes(v) for v in max_memory.values())
    elif isinstance(max_memory, str) and max_memory.strip().lower() == "auto" and remote:
        budget = REMOTE_AUTO_BYTES
    else:
        budget = parse_bytes(max_memory, device=model.device)
    one = row_bytes(model.cfg, s, max(model.dtype.itemsize, 4))
    if 2 * b * one > budget:
        raise ShapeError(f"max_memory={format_bytes(budget)} is too small for one trace of the nnsight backend: "
                         f"{b} source rows plus one variant of {b} prompts need {format_bytes(2 * b * one)}; raise it "
                         f"or use fewer prompts")
    k = budget // (b * one) - 1
    if max_rows is not None:
        if 2 * b > max_rows:
            raise ShapeError(f"max_rows={max_rows} is smaller than one nnsight trace ({b} source rows plus {b} "
                             f"patched rows); raise it to >= {2 * b}")
        k = min(k, max_rows // b - 1)
    n = len(sp.variants)
    k = max(1, min(k, n))
    n_chunks = math.ceil(n / k)
    rows = 2 * b + n * b + n_chunks * b
    return TracePlan(
        n_variants=n, n_prompts=b, variants_per_trace=k, n_traces=1 + n_chunks, rows=rows,
        bytes_per_trace=(k + 1) * b * one, bytes_saved=rows * SAVED_PER_ROW * 4,
        bytes_sent=rows * s * 8 + n * b * 4 * 8, remote=remote, budget=budget,
    )


def plan_patch(model: Any, pairs: Any, *, site: str = "heads", positions: Any = "last", metric: str = "ie",
               direction: str = "noising", layers: Sequence[int] | None = None, neurons: Any = None,
               max_rows: int | None = 4096, max_memory: Any = "auto") -> TracePlan:
    """The `TracePlan` of ``patch(model, pairs, ...)`` on an `NNsightModel` with the same arguments; runs nothing."""
    sp = plan_sweep_variants(model, pairs, site=site, positions=positions, metric=metric, direction=direction,
                             layers=layers, neurons=neurons, max_rows=max_rows)
    return plan_traces(model, sp, max_rows=max_rows, max_memory=max_memory)


def pseudo_logits(reduced: Tensor, same: Tensor) -> Tensor:
    """``[N 3]`` pseudo-logits from the in-trace reduction ``(L(r), L(r2), logsumexp)`` (centred), in float64.

    Column 2 carries the rest of the probability mass, so ``softmax`` of the three equals the full softmax at
    ``r`` and ``r2`` and differences equal the logit differences; where ``r == r2`` (``same``) column 1 is
    ``-inf`` and both answers read column 0.
    """
    x = reduced.double()
    a, b, lse = x[:, 0], x[:, 1], x[:, 2]
    b = torch.where(same, torch.full_like(b, -math.inf), b)
    mass = torch.exp(a - lse) + torch.exp(b - lse)
    rest = lse + torch.log1p(-mass.clamp(max=1.0))  # -inf when r (and r2) hold all the mass
    return torch.stack([a, b, rest], dim=1)


def _context(base: Tensor, source: Tensor, same: Tensor) -> MetricContext:
    r = torch.zeros(base.shape[0], dtype=torch.long)
    return MetricContext(base, source, r, torch.where(same, r, r + 1))


def _trace(model: Any, tokens: Tensor, kind: str, layer_specs: list[tuple[int, Tensor, Tensor, Tensor, Tensor]],
           cols: Tensor) -> Tensor:
    """One trace: patch ``layer_specs`` = (layer, rows, source rows, positions, units) and return the [N 3]
    reduction of the last-position logits. The body is plain torch on nnsight values so it serialises for NDIF."""
    nn, n_heads, d_head = model.nn, int(model.cfg.n_heads), int(model.cfg.d_head)
    remote = model.remote
    if not remote:
        tokens = tokens.to(model.device)
    with nn.trace(tokens, logits_to_keep=1, remote=remote):
        for layer, rows, src, pos, unit in layer_specs:
            blk = nn.model.layers[layer]
            if kind == "resid_pre":
                act = blk.input
            elif kind == "attn_out":
                act = blk.self_attn.o_proj.output
            elif kind == "head":
                act = blk.self_attn.o_proj.input
            elif kind == "mlp_out":
                act = blk.mlp.output
            else:  # mlp, neuron: hook_post is down_proj's input
                act = blk.mlp.down_proj.input
            if kind == "head":
                view = act.view(act.shape[0], act.shape[1], n_heads, d_head)
                view[rows, pos, unit] = view[src, pos, unit]
            elif kind == "neuron":
                act[rows, pos, unit] = act[src, pos, unit]
            else:
                act[rows, pos] = act[src, pos]
        logits = nn.lm_head.output[:, -1].float()
        mean = logits.mean(-1, keepdim=True)
        picked = logits.gather(1, cols.to(logits.device))
        out = torch.cat([picked - mean, logits.logsumexp(-1, keepdim=True) - mean], dim=1).cpu().save()
    return out


def _session(model: Any, kind: str, jobs: list[tuple[Tensor, list[tuple[int, Tensor, Tensor, Tensor, Tensor]], Tensor]],
             ) -> list[Tensor]:
    """`_trace` for each job ``(tokens, layer specs, cols)``, all in one nnsight session (one NDIF request).

    The body repeats `_trace`'s so that the whole session serialises without any `interp` code in it."""
    nn, n_heads, d_head = model.nn, int(model.cfg.n_heads), int(model.cfg.d_head)
    outs: list[Tensor] = []
    with nn.session(remote=model.remote):
        for tokens, layer_specs, cols in jobs:
            with nn.trace(tokens, logits_to_keep=1):
                for layer, rows, src, pos, unit in layer_specs:
                    blk = nn.model.layers[layer]
                    if kind == "resid_pre":
                        act = blk.input
                    elif kind == "attn_out":
                        act = blk.self_attn.o_proj.output
                    elif kind == "head":
                        act = blk.self_attn.o_proj.input
                    elif kind == "mlp_out":
                        act = blk.mlp.output
                    else:
                        act = blk.mlp.down_proj.input
                    if kind == "head":
                        view = act.view(act.shape[0], act.shape[1], n_heads, d_head)
                        view[rows, pos, unit] = view[src, pos, unit]
                    elif kind == "neuron":
                        act[rows, pos, unit] = act[src, pos, unit]
                    else:
                        act[rows, pos] = act[src, pos]
                logits = nn.lm_head.output[:, -1].float()
                mean = logits.mean(-1, keepdim=True)
                picked = logits.gather(1, cols.to(logits.device))
                outs.append(torch.cat([picked - mean, logits.logsumexp(-1, keepdim=True) - mean], dim=1).cpu().save())
    return list(outs)


def _chunk_specs(sp: SweepVariants, ids: Sequence[int], b: int) -> list[tuple[int, Tensor, Tensor, Tensor, Tensor]]:
    """Index tensors per layer for variants ``ids`` stacked after the ``b`` source rows (variant j: rows b + j*b..)."""
    by_layer: dict[int, list[tuple[int, int]]] = {}
    for j, vid in enumerate(ids):
        by_layer.setdefault(sp.variants[vid].layer, []).append((j, vid))
    prompts = torch.arange(b)
    out = []
    for layer in sorted(by_layer):
        items = by_layer[layer]
        rows = torch.cat([b + j * b + prompts for j, _ in items])
        src = prompts.repeat(len(items))
        pos = torch.tensor([sp.variants[v].pos for _, v in items]).repeat_interleave(b)
        unit = torch.tensor([sp.variants[v].unit or 0 for _, v in items]).repeat_interleave(b)
        out.append((layer, rows, src, pos, unit))
    return out


def nnsight_patch(model: Any, pairs: Any, *, site: str = "heads", positions: Any = "last", metric: str = "ie",
                  direction: str = "noising", layers: Sequence[int] | None = None, neurons: Any = None,
                  max_rows: int | None = 4096, progress: bool = True, model_name: str = "",
                  max_memory: Any = "auto") -> PatchResult:
    """`interp.patching.patch` on an `NNsightModel` (arguments and result as there; see the module docstring)."""
    from interp.progress import bar as progress_bar

    t0 = time.time()
    sp = plan_sweep_variants(model, pairs, site=site, positions=positions, metric=metric, direction=direction,
                             layers=layers, neurons=neurons, max_rows=max_rows)
    plan = plan_traces(model, sp, max_rows=max_rows, max_memory=max_memory)
    log.info("nnsight patch %s: %s", site, plan)
    p, b, kind = sp.pairs, sp.batch, sp.kind
    r, r2 = p.clean_answers.long(), p.corrupt_answers.long()
    same = r == r2
    answer_cols = torch.stack([r, r2], dim=1)
    k = plan.variants_per_trace
    chunks = [list(range(start, min(start + k, len(sp.variants)))) for start in range(0, len(sp.variants), k)]
    jobs = [(torch.cat([p.corrupt_tokens, p.clean_tokens]), [], answer_cols.repeat(2, 1))]  # the setup trace
    jobs += [(torch.cat([p.corrupt_tokens, p.clean_tokens.repeat(len(ids), 1)]), _chunk_specs(sp, ids, b),
              answer_cols.repeat(len(ids) + 1, 1)) for ids in chunks]
    mean = np.zeros(len(sp.variants))
    se = np.zeros(len(sp.variants))
    n_def = np.full(len(sp.variants), b, dtype=np.int64)  # prompts with a finite value (as the bridge sweep counts)
    bar = progress_bar(len(sp.variants), desc=f"patch {site} (nnsight)", enabled=progress)
    with torch.inference_mode():
        if model.remote:  # traces_per_request traces per nnsight session = one NDIF request each
            reduced: list[Tensor] = []
            for i in range(0, len(jobs), plan.traces_per_request):
                reduced += _session(model, kind, jobs[i : i + plan.traces_per_request])
        else:
            reduced = []
        for j, (tokens, specs, cols) in enumerate(jobs):
            red = reduced[j] if model.remote else _trace(model, tokens, kind, specs, cols)
            if j == 0:
                ctx = _context(pseudo_logits(red[b:], same), pseudo_logits(red[:b], same), same)
                continue
            ids = chunks[j - 1]
            px = pseudo_logits(red[b:], same.repeat(len(ids)))
            vals = make_metric(metric, ctx.repeat(len(ids)))(px).reshape(len(ids), b)
            mean[ids], se[ids], n_def[ids] = (t.cpu().numpy() for t in finite_moments(vals))
            bar.update(len(ids))
        bar.close()
        baseline = metric_unpatched_values(metric, ctx)
    meta = {"engine": "nnsight", "backend": "nnsight", "remote": model.remote, "max_memory": plan.budget,
            "plan": plan.to_dict(), "logits": "centred over the vocabulary (as the bridge's center_unembed)"}
    return sweep_result(sp, mean, se, site=site, metric=metric, direction=direction, model=model,
                        model_name=model_name, n_forward_passes=plan.n_traces, seconds=time.time() - t0,
                        baseline=baseline, meta=meta, n_defined=n_def)
