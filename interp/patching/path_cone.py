"""Path patching through the cone engine: recompute only what a sender's path can change.

With every head other than the sender frozen at its base value (`interp.patching.path`), a sender's change reaches
the rest of the network only through the MLPs, which act position by position, and the norms:

* ``receivers="logits"``: only the last position matters. Per sender ``(l, h)``: the attention output of layer
  ``l`` at the last position with head ``h``'s ``z`` from the source run, then, for layers ``l..n-1``, ``resid_mid
  = resid + attn_out`` (the base value for every other layer) and ``resid += MLP(ln2(resid_mid))`` at that one
  position, then the final norm and the unembedding (only the answer columns for the logit-difference metrics).
  With ``freeze_mlps=True`` the MLP outputs are the base run's too. All heads of a layer are one batch
  (``heads x prompts`` rows, chunked to the memory budget); no hooks, no attention recomputed.
* receiver heads: step 2 of Wang et al. runs the same position-wise recurrence at *every* position up to the last
  receiver layer and computes each receiver layer's heads from that stream (their queries, keys and values all see
  the sender's path); step 3 is the base run with the receivers' ``z`` replaced, recomputed from the first
  receiver layer on (all positions; the last layer at the last position only).

The same numbers as the hooked implementation (`interp.patching.path`, kept as the oracle), up to float32 rounding.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from interp.errors import ShapeError
from interp.metrics import MetricContext, make_metric
from interp.patching.engine import ConeEngine, Unsupported, format_bytes, parse_bytes

__all__ = ["path_patch_cone"]


def _first_true(mask: Tensor) -> int:
    """The first position where ``mask`` [S] is True (the last position if none: the metric still reads it)."""
    return int(mask.nonzero()[0, 0]) if bool(mask.any()) else mask.shape[0] - 1


def _mlp(cone: ConeEngine, layer: int, mid: Tensor, frozen: Tensor | None) -> Tensor:
    """``mid + mlp_out``: recomputed from ``mid``, or the base run's ``frozen`` output."""
    blk = cone.blocks[layer]
    if blk.ln2 is None:
        return mid
    if frozen is not None:
        return mid + frozen
    return mid + F.linear(blk.post(blk.ln2(mid)), blk.w_out, blk.b_out)


def _sender_attn(cone: ConeEngine, layer: int, heads: list[int], z_base: Tensor, z_src: Tensor) -> Tensor:
    """Attention output ``[k B ... d]`` of ``layer`` with head ``heads[j]`` from the source run in variant ``j``."""
    k = len(heads)
    z = z_base.unsqueeze(0).repeat(k, *([1] * z_base.ndim))  # [k B (S) H dh]
    idx = torch.arange(k, device=z.device)
    hidx = torch.tensor(heads, device=z.device)
    z[idx, ..., hidx, :] = z_src[..., hidx, :].movedim(-2, 0)
    blk = cone.blocks[layer]
    return F.linear(z.flatten(-2), blk.wo, blk.bo)


def _override_layer(cone: ConeEngine, layer: int, x: Tensor, p: int, n_var: int, heads: list[int], z_new: Tensor,
                    last: bool) -> Tensor:
    """Layer ``layer`` on suffix ``x`` [N T d] (positions ``p..``; earlier ones from the base key/value cache) with
    heads ``heads``' z replaced by ``z_new`` [N T h dh]: one pass of the layer, the replacement applied before the
    output projection (in the last layer only the last position is computed)."""
    hidx = torch.tensor(heads, device=z_new.device)

    def edit(name: str, act: Tensor) -> Tensor:
        if name != "z":
            return act
        z = act.clone()  # [N T' H dh], T' = T or 1 (last position)
        z[:, :, hidx] = z_new[:, z_new.shape[1] - act.shape[1] :].to(z.dtype)
        return z

    return cone.layer(layer, x, p, n_var, last=last, edit=edit)


def _heads_z(cone: ConeEngine, layer: int, x: Tensor, p: int, n_var: int, heads: list[int]) -> Tensor:
    """``z`` [N T h dh] of only the heads ``heads`` of ``layer`` on suffix ``x`` [N T d] (``N = n_var*B`` rows,
    variant-major; positions ``< p`` from the base key/value cache): the receivers' queries, keys and values, not
    the whole layer (`ConeEngine.layer`'s attention restricted to these heads; its other heads, output projection
    and MLP are not needed in step 2)."""
    blk = cone.blocks[layer]
    x = cone.placement.to(x, layer)
    n, t, _ = x.shape
    nh, kv, dh = cone.n_heads, cone.n_kv, cone.d_head
    m = len(heads)
    hid = torch.tensor(heads, device=x.device)
    grp = hid // (nh // kv)  # the key/value head each query head reads (grouped-query attention)

    def proj(w: Tensor, b: Tensor | None, rows: int, idx: Tensor) -> Tensor:
        ww = w.view(rows, dh, -1)[idx].reshape(m * dh, -1)
        bb = None if b is None else b.view(rows, dh)[idx].reshape(m * dh)
        return F.linear(h, ww, bb).view(n, t, m, dh).transpose(1, 2)  # [N m T dh]

    h = blk.ln1(x)
    q = cone._rope(proj(blk.wq, blk.bq, nh, hid), p)
    k = cone._rope(proj(blk.wk, blk.bk, kv, grp), p)
    v = proj(blk.wv, blk.bv, kv, grp)
    z = cone.attend(layer, q, k, v, p, n_var, kv_heads=grp)  # [N m T dh]
    return z.transpose(1, 2)  # [N T m dh]


@torch.inference_mode()
def path_patch_cone(model: Any, pairs: Any, *, recv: str | list[tuple[int, int]], sender_layers: list[int],
                    metric: str, freeze_mlps: bool, max_memory: int | str = "auto",
                    ) -> tuple[Tensor, MetricContext, int, dict[str, Any]]:
    """Per-prompt metric ``[layer head batch]`` of every sender, its metric context, passes run and engine notes.

    Raises `Unsupported` where the cone engine cannot reproduce the model (the caller falls back to hooks).
    """
    from interp.patching.exact import answer_columns

    cone = ConeEngine.for_model(model)
    if cone.placement.multi:
        raise Unsupported("path patching through the cone runs on single-device models")
    base, source = pairs.clean_tokens, pairs.corrupt_tokens
    cone.verify(base)
    n, H, b, s = cone.n_layers, cone.n_heads, pairs.n, pairs.seq_len
    lo = min(sender_layers)
    recv_by_layer: dict[int, list[int]] = {}
    if recv != "logits":
        for lyr, h in recv:  # type: ignore[union-attr]
            recv_by_layer.setdefault(lyr, []).append(h)
    want = {("resid_pre", l) for l in range(lo, n + 1)} | {("z", l) for l in range(lo, n)}
    want |= {("attn_out", l) for l in range(lo, n)}
    if freeze_mlps:
        want |= {("mlp_out", l) for l in range(lo, n)}
    if recv_by_layer:
        want |= {("resid_pre", min(recv_by_layer))} | {("z", l) for l in recv_by_layer}
        want |= {(c, l) for l in range(min(recv_by_layer), n) for c in ("k", "v")}  # positions before the cone
    # the source run computes only positions from the first token where it differs from the base run (IOI: the
    # last third), the earlier ones entering attention from the base run's key/value cache
    p_src = _first_true((base != source).any(0))
    if p_src:
        want |= {(c, l) for l in range(n) for c in ("k", "v")}
    base_logits, acts = cone.forward(base, want)
    cone.acts, cone.batch, cone.seq_len = acts, b, s
    src_logits, src = cone.forward(source, {("z", l) for l in sender_layers}, start=p_src)
    src = {key: torch.cat([acts[key][:, :p_src], val], dim=1) for key, val in src.items()}
    dev = base_logits.device
    ctx = MetricContext(base_logits.float(), src_logits.float(), pairs.clean_answers.to(dev),
                        pairs.corrupt_answers.to(dev))
    answer = answer_columns(metric, ctx)
    cols, mctx = answer if answer is not None else (None, ctx)
    n_cols = None if cols is None else int(cols.shape[1])

    # memory: one row (one sender, one prompt) of the widest step, against the budget left after the caches
    budget = parse_bytes(max_memory, dev)
    fixed = sum(t.numel() * t.element_size() for t in (*acts.values(), *src.values()))
    t_rows = s if recv_by_layer else 1
    row = cone.row_bytes(t_rows, s, n_cols)
    if fixed + b * row > budget:
        raise ShapeError(f"max_memory={format_bytes(budget)} is too small for one sender: the caches take "
                         f"{format_bytes(fixed)} and one sender of {b} prompts needs {format_bytes(b * row)}; raise "
                         f"it to at least {format_bytes(fixed + b * row)} (or use fewer prompts)")
    out = torch.empty(len(sender_layers), H, b, dtype=torch.float64, device=dev)
    passes = 0
    peak = 0
    senders = [(li, ls, h) for li, ls in enumerate(sender_layers) for h in range(H)]
    if recv == "logits":  # senders of every layer share a pass, joining when the recurrence reaches their layer
        per = max(1, (budget - fixed) // (b * row))
        chunks = [senders[i : i + per] for i in range(0, len(senders), per)]
    else:  # one layer's heads per pass (step 3 starts at the first receiver layer for all of them)
        per = max(1, min(H, (budget - fixed) // (b * row)))
        chunks = [senders[i : i + per] for li in range(len(sender_layers))
                  for i in range(li * H, (li + 1) * H, per)]
    for chunk in chunks:
        k = len(chunk)
        if recv == "logits":
            x = _to_logits(cone, [(ls, h) for _, ls, h in chunk], acts, src, freeze_mlps)
        else:
            x = _through_receivers(cone, chunk[0][1], [h for _, _, h in chunk], acts, src, freeze_mlps,
                                   recv_by_layer)
        logits = cone.logits(x.reshape(k * b, -1), None if cols is None else cols.repeat(k, 1))
        fn = make_metric(metric, mctx.repeat(k)) if k > 1 else make_metric(metric, mctx)
        vals = fn(logits.float()).double().view(k, b)
        li_idx = torch.tensor([li for li, _, _ in chunk], device=dev)
        h_idx = torch.tensor([h for _, _, h in chunk], device=dev)
        out[li_idx, h_idx] = vals
        passes += 1
        peak = max(peak, k * b * row)
    cone.release()
    meta = {"engine": "cone", "passes": passes, "max_memory": budget, "peak_bytes_estimate": fixed + peak}
    return out.cpu(), ctx, passes, meta


def _to_logits(cone: ConeEngine, senders: list[tuple[int, int]], acts: dict, src: dict, freeze: bool) -> Tensor:
    """Final residual [k B d] at the last position, sender ``senders[j]`` = (layer, head) in row block j (sorted by
    layer): each sender's rows join the batch at its layer."""
    by_layer: dict[int, list[int]] = {}
    for ls, h in senders:
        by_layer.setdefault(ls, []).append(h)
    x: Tensor | None = None  # [k_so_far B d]
    for l in range(min(by_layer), cone.n_layers):
        mid = None if x is None else x + acts[("attn_out", l)][:, -1].unsqueeze(0)
        if l in by_layer:
            attn = _sender_attn(cone, l, by_layer[l], acts[("z", l)][:, -1], src[("z", l)][:, -1])  # [k B d]
            new = acts[("resid_pre", l)][:, -1].unsqueeze(0) + attn
            mid = new if mid is None else torch.cat([mid, new])
        assert mid is not None
        x = _mlp(cone, l, mid, acts[("mlp_out", l)][:, -1].unsqueeze(0) if freeze else None)
    assert x is not None
    return x


def _through_receivers(cone: ConeEngine, ls: int, heads: list[int], acts: dict, src: dict, freeze: bool,
                       recv_by_layer: dict[int, list[int]]) -> Tensor:
    """Final residual [k B d] at the last position after Wang et al.'s steps 2 and 3 for senders (ls, heads).

    Positions before the first one where a sender's z differs between source and base (for some prompt) are
    unchanged in both steps, so both run on positions ``p0..S-1`` with the base key/value cache before them.
    """
    k = len(heads)
    b, s, d, n = acts[("z", ls)].shape[0], acts[("z", ls)].shape[1], cone.d_model, cone.n_layers
    diff = (src[("z", ls)][:, :, heads] != acts[("z", ls)][:, :, heads]).flatten(2).any(-1).any(0)  # [S]
    p0 = _first_true(diff)
    t = s - p0
    recorded: dict[int, Tensor] = {}
    later = [lr for lr in sorted(recv_by_layer) if lr > ls]
    for lr in sorted(recv_by_layer):  # receivers at or before the sender's layer keep their base output
        if lr <= ls:
            z = acts[("z", lr)][:, p0:, recv_by_layer[lr]]
            recorded[lr] = z.unsqueeze(0).expand(k, *z.shape).reshape(k * b, t, len(recv_by_layer[lr]), -1)
    if later:  # step 2: the frozen run, positions p0.., up to the last receiver layer
        attn = _sender_attn(cone, ls, heads, acts[("z", ls)][:, p0:], src[("z", ls)][:, p0:])  # [k B t d]
        x = acts[("resid_pre", ls)][:, p0:].unsqueeze(0).expand(k, -1, -1, -1)
        for l in range(ls, max(later) + 1):
            if l in recv_by_layer and l > ls:
                recorded[l] = _heads_z(cone, l, x.reshape(k * b, t, d), p0, k, recv_by_layer[l])
            if l == max(later):
                break
            a = attn if l == ls else acts[("attn_out", l)][:, p0:].unsqueeze(0)
            x = _mlp(cone, l, x + a, acts[("mlp_out", l)][:, p0:].unsqueeze(0) if freeze else None)
    # step 3: the base run with the receivers' z replaced, from the first receiver layer on
    first = min(recv_by_layer)
    x = acts[("resid_pre", first)][:, p0:].unsqueeze(0).expand(k, -1, -1, -1).reshape(k * b, t, d)
    for l in range(first, n):
        last = l == n - 1
        if l in recorded:
            x = _override_layer(cone, l, x, p0, k, recv_by_layer[l], recorded[l], last)
        else:
            x = cone.layer(l, x, p0, k, last=last)
    return x[:, -1].reshape(k, b, d)
