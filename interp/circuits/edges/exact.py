"""Exact edge patching: each edge's effect measured by patching that one edge.

For edge ``s -> r`` the receiver's input gets the sender's ablation value (its corrupt output, by default) in
place of its clean output; everything else is computed from the clean prompt, including everything downstream of
the receiver. The effect is ``mean metric(patched) - mean metric(clean)`` (MIB's ``get_scores_exact``).

Cost. A patched edge cannot change anything before its receiver's layer, so every variant starts at that layer
from the cached clean residual (the cone engine's explicit forward), and variants are stacked along the batch
axis, ``max_rows`` rows per pass. A sender's delta is zero before the first position where the clean and corrupt
(or ablated) outputs differ, so the receiver's layer and every later one recompute only positions from there (the
last layer only the last position). Edges into the logits cost one final norm and unembedding each; for the metrics
that read only the two answer logits (``logit_diff`` and its normalized forms) only those two columns of the
unembedding are computed.

`naive_edge_effect` is the oracle: one full forward of the bridge with plain TransformerLens hooks per edge.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from interp.circuits.edges.forward import EdgeForward
from interp.circuits.edges.graph import QKV
from interp.circuits.edges.prep import Batch
from interp.metrics import MetricContext, make_metric
from interp.patching.engine import Unsupported
from interp.patching.exact import answer_columns
from interp.sites import edge_hook_name

__all__ = ["edge_hooks", "exact_edge_effects", "naive_edge_effect", "sender_delta_from_cache"]


@torch.inference_mode()
def exact_edge_effects(ef: EdgeForward, batches: list[Batch], metric: str, *, edges: np.ndarray | None = None,
                       max_rows: int = 2048) -> tuple[np.ndarray, dict[str, Any]]:
    """Effects of patching each edge (all, or the given edge indices) alone -> (values [n_edges], cost)."""
    g = ef.graph
    s_idx, r_idx = g.edge_index
    todo = np.arange(g.n_edges) if edges is None else np.asarray(edges, dtype=np.int64)
    total = np.zeros(len(todo))
    n_total = sum(b.n for b in batches)
    t0 = time.perf_counter()
    passes0, rows0 = ef.passes, ef.row_layers
    d = ef.d_model
    rl = g.receiver_layer[r_idx[todo]]
    for b in batches:
        seq = b.clean.shape[1]
        run = ef.run(b.clean, keep_outputs=True)  # clean run with the residual entering each layer
        base = b.metric(metric)(b.clean_logits).double().sum()
        # metrics that read only the two answer logits get those two columns of the unembedding, not the vocabulary
        answer = answer_columns(metric, MetricContext(b.clean_logits, b.corrupt_logits, b.r, b.r2))
        cols, small = answer if answer is not None else (None, None)
        resid = run.resid  # the residual entering each layer, and the final one
        delta = (b.values - b.outputs)  # [B S n_senders d]
        clean_qkv = [ef.head_inputs(layer, resid[layer]) for layer in range(g.n_layers)]
        grp = ef.n_heads // ef.engine.n_kv
        ef.engine.acts = {(kind, i): clean_qkv[i][j][:, ::grp] for i in range(g.n_layers)
                          for j, kind in ((1, "k"), (2, "v"))}  # [B kv S d_head], as the cone engine caches them
        nz = (delta != 0).any(3).any(0)  # [S n_senders]
        first = torch.where(nz.any(0), nz.float().argmax(0), torch.tensor(seq)).numpy()
        per_chunk = max(1, max_rows // b.n)
        for layer in range(g.n_layers + 1):
            which = np.nonzero(rl == layer)[0]
            for c0 in range(0, len(which), per_chunk):
                pos = which[c0 : c0 + per_chunk]
                e = todo[pos]
                v = len(e)
                sd = delta[:, :, s_idx[e]].permute(2, 0, 1, 3).reshape(v * b.n, seq, d)  # variant-major
                rec = r_idx[e]
                if layer == g.n_layers:  # into the logits: one norm + unembedding
                    x = resid[layer].repeat(v, 1, 1)[:, -1] + sd[:, -1]
                    logits = ef.engine.logits(x, None if cols is None else cols.repeat(v, 1))
                else:
                    local = rec - g.receiver_index(layer, "q", 0)  # 0..3H-1 for q/k/v, 3H for the MLP
                    # only positions >= p (the first where a patched sender differs) are recomputed, earlier ones
                    # enter attention from the clean key/value cache; the last layer computes the last position
                    # only (the cone engine's layer)
                    p = min(int(first[s_idx[e]].min()), seq - 1)
                    x = _after_layer(ef, layer, resid[layer], run.outputs, clean_qkv[layer], sd, local, b.n, p,
                                     last=layer == g.n_layers - 1)
                    for i in range(layer + 1, g.n_layers):
                        x = ef.engine.layer(i, x, p, v, last=i == g.n_layers - 1)
                    ef.passes += 1
                    ef.row_layers += v * b.n * (g.n_layers - layer)
                    logits = ef.engine.logits(x[:, -1], None if cols is None else cols.repeat(v, 1))
                fn = b.metric(metric, reps=v) if small is None else make_metric(metric, small.repeat(v))
                vals = fn(logits).double().view(v, b.n).sum(1)
                total[pos] += (vals - base).numpy()
    ef.engine.release()
    cost = {"seconds": time.perf_counter() - t0, "passes": ef.passes - passes0,
            "row_layers": ef.row_layers - rows0, "edges": int(len(todo)), "prompts": n_total}
    return total / n_total, cost


def _after_layer(ef: EdgeForward, layer: int, resid: Tensor, outputs: Tensor | None, qkv: Tensor, sd: Tensor,
                 local: np.ndarray, b: int, p: int, last: bool) -> Tensor:
    """Residual leaving ``layer`` at positions ``p..S-1`` (the last position only if ``last``) for variants whose
    one patched receiver is in ``layer`` (variant-major rows).

    Every patched sender's delta is zero before ``p``, so nothing before ``p`` changes: a q/k/v edge recomputes
    only that head's projection at positions ``p..`` and its attention for the query positions kept (earlier keys
    and values from the clean run), the other heads' outputs come from the clean run; an MLP edge recomputes the
    MLP from the clean ``resid_mid`` at the positions kept.
    """
    assert outputs is not None
    g, blk, ph = ef.graph, ef.engine.blocks[layer], ef.per_head[layer]
    h, (v_all, s, d) = ef.n_heads, sd.shape
    v_all //= b
    qp = s - 1 if last else p  # first position whose residual is returned
    t = s - qp
    s0 = g.sender_index(layer, 0)
    res_clean = outputs[:, qp:, s0 : s0 + h]  # [B T H d]
    attn_out = res_clean.sum(2) if blk.bo is None else res_clean.sum(2) + blk.bo
    mid = (resid[:, qp:] + attn_out).repeat(v_all, 1, 1)  # [V*B T d]
    mlp_in = mid.clone()
    sdv = sd.view(v_all, b, s, d)
    qv = np.nonzero(local < 3 * h)[0]
    if len(qv):
        kind = torch.as_tensor(local[qv] // h)
        head = torch.as_tensor(local[qv] % h)
        hn = blk.ln1(resid[None, :, p:] + sdv[qv][:, :, p:])  # [Vq B S-p d]
        w = torch.stack([ph["wq"], ph["wk"], ph["wv"]])[kind, head]  # [Vq dh d]
        new = torch.einsum("vbsd,ved->vbse", hn, w)
        if any(ph[k] is not None for k in ("bq", "bk", "bv")):
            zero = torch.zeros(h, w.shape[1], dtype=new.dtype, device=new.device)
            bias = torch.stack([zero if ph[k] is None else ph[k] for k in ("bq", "bk", "bv")])  # type: ignore[misc]
            new = new + bias[kind, head][:, None, None, :]
        vq = len(qv)
        rot = ef.engine._rope(new.reshape(vq * b, 1, s - p, -1), p).view_as(new)
        new = torch.where((kind == 2)[:, None, None, None], new, rot)
        base = qkv[:, :, head].permute(0, 2, 1, 3, 4)  # [3 Vq B S dh]
        q = torch.where((kind == 0)[:, None, None, None], new[:, :, qp - p :], base[0][:, :, qp:])  # [Vq B T dh]
        k, v = (torch.cat([base[i][:, :, :p], torch.where((kind == i)[:, None, None, None], new, base[i][:, :, p:])],
                          dim=2) for i in (1, 2))  # [Vq B S dh]
        sc = q @ k.transpose(-1, -2)  # [Vq B T S]
        e = ef.engine
        sc = sc / e._scale_div if e._scale_div is not None else sc * e._scale_mul
        sc = sc.masked_fill(torch.ones(t, s, dtype=torch.bool, device=sc.device).triu(qp + 1), float("-inf"))
        z = torch.softmax(sc, dim=-1, dtype=torch.float32).to(v.dtype) @ v  # [Vq B T dh]
        res_new = torch.einsum("vbse,ved->vbsd", z, ph["wo"][head])
        change = res_new - res_clean[:, :, head].permute(2, 0, 1, 3)
        mid.view(v_all, b, t, d)[qv] += change
        mlp_in.view(v_all, b, t, d)[qv] += change
    mv = np.nonzero(local == 3 * h)[0]
    if len(mv):
        mlp_in.view(v_all, b, t, d)[mv] += sdv[mv][:, :, qp:]
    return mid + F.linear(blk.post(blk.ln2(mlp_in)), blk.w_out, blk.b_out)


# ------------------------------------------------------------------------------------- the plain-hook oracle
def sender_delta_from_cache(model: Any, clean_cache: Any, corrupt_cache: Any, sender: str) -> Tensor:
    """Corrupt minus clean output of one sender, read from two bridge caches (``run_with_cache``)."""
    if sender == "input":
        name = edge_hook_name("input")
        return corrupt_cache[name] - clean_cache[name]
    layer = int(sender[1:].split(".")[0])
    if sender.startswith("m"):
        name = edge_hook_name("mlp_out", layer)
        return corrupt_cache[name] - clean_cache[name]
    head = int(sender.split(".h")[1])
    name = edge_hook_name("z", layer)
    dz = corrupt_cache[name][:, :, head] - clean_cache[name][:, :, head]  # [B S d_head]
    w = model.blocks[layer].attn.o.original_component.weight  # [d_model, H*d_head]
    dh = dz.shape[-1]
    return dz @ w[:, head * dh : (head + 1) * dh].T


@torch.inference_mode()
def naive_edge_effect(model: Any, clean: Tensor, delta: Tensor, receiver: str) -> Tensor:
    """Last-position logits of the bridge run on ``clean`` with ``delta`` [B S d] added to one receiver's input.

    Plain hooks, one full forward (see `edge_hooks`).
    """
    return model.run_with_hooks(clean, fwd_hooks=edge_hooks(model, delta, receiver))[:, -1]


def edge_hooks(model: Any, delta: Tensor, receiver: str) -> list[tuple[str, Any]]:
    """Plain TransformerLens hooks adding ``delta`` to one receiver's input: q/k/v receivers rebuild head ``h``'s
    projection from ``ln1(resid_pre + delta)`` with the bridge's own ln1 and projection modules (multi-head
    attention only: with grouped-query attention the bridge has no hook after the key/value heads are repeated);
    MLP receivers add ``delta`` to what enters ``ln2``, the logits to what enters ``ln_final``."""
    if receiver == "logits":
        return [(edge_hook_name("logits_in"), lambda a, hook: a + delta)]
    layer = int(receiver[1:].split(".")[0].split("<")[0])
    if receiver.startswith("m"):
        return [(edge_hook_name("mlp_in", layer), lambda a, hook: a + delta)]
    head = int(receiver.split(".h")[1].split("<")[0])
    kind = receiver.split("<")[1].rstrip(">")
    assert kind in QKV
    n_kv = int(getattr(model.cfg, "n_key_value_heads", None) or model.cfg.n_heads)
    if kind != "q" and n_kv != int(model.cfg.n_heads):
        raise Unsupported(f"plain hooks cannot patch {receiver}: with grouped-query attention the key/value head is "
                          "shared by several query heads and the bridge has no hook after it is repeated")
    blk = model.blocks[layer]
    store: dict[str, Tensor] = {}

    def grab(a: Tensor, hook: Any) -> Tensor:
        store["resid"] = a
        return a

    def replace(a: Tensor, hook: Any) -> Tensor:  # a: [B S H d_head]
        lin = getattr(blk.attn, kind).original_component
        dh = a.shape[-1]
        normed = blk.ln1(store["resid"] + delta)
        w = lin.weight[head * dh : (head + 1) * dh]
        bias = None if lin.bias is None else lin.bias[head * dh : (head + 1) * dh]
        parts = list(a.unbind(2))
        parts[head] = F.linear(normed, w, bias)
        return torch.stack(parts, 2)

    return [(edge_hook_name("resid_pre", layer), grab), (edge_hook_name(kind, layer), replace)]
