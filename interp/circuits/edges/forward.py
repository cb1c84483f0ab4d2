"""The explicit edge-level forward: every receiver (a head's q, k or v input, an MLP input, the logits) gets its own
copy of the residual stream, so single edges can be patched, ablated or differentiated.

It runs on the cone engine's explicit forward (`interp.patching.engine.ConeEngine`: the bridge's own weights,
normalizations, rotary tables and activation, checked against the bridge by `ConeEngine.verify`), rewritten so that
each receiver reads ``resid + delta_r`` where ``delta_r = sum over ablated edges (s -> r) of (A_s - O_s)``: ``O_s``
is sender ``s``'s output in this very pass and ``A_s`` its ablation value (its output on the corrupt prompt, a
mean, or zero). Everything else is computed as in the model. Unpatched, it reproduces the bridge.

A receiver's ``delta`` can also be given directly (``extra``, used by exact edge patching), and zero "probe" tensors
can be added at every receiver input so that ``d metric / d receiver input`` is one backward pass (EAP).
Sender outputs: the input is the residual entering block 0 (token + position embeddings), head ``h`` of layer
``l`` writes ``z_h @ W_O[h]`` (the attention output bias belongs to no head and is never ablated), MLP ``l`` writes
its ``hook_mlp_out``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from interp.circuits.edges.graph import EdgeGraph, build_graph
from interp.patching.engine import ConeEngine

__all__ = ["EdgeForward", "EdgeRun"]


@dataclass
class EdgeRun:
    """What one pass returns: last-position logits, sender outputs (if kept) and the receiver probes (if any)."""

    logits: Tensor  # [N d_vocab]
    outputs: Tensor | None = None  # [N S n_senders d_model]
    # ("qkv", l) [N S 3H d], ("mlp", l) [N S d], ("logits", 0) [N 1 d]
    probes: dict[tuple[str, int], Tensor] = field(default_factory=dict)
    resid: list[Tensor] = field(default_factory=list)  # residual entering each layer and the final one (if kept)


class EdgeForward:
    """The explicit forward of ``model`` with one residual copy per receiver (see the module docstring)."""

    def __init__(self, model: Any, graph: EdgeGraph | None = None) -> None:
        self.graph = graph or build_graph(model)
        self.engine = ConeEngine.for_model(model)  # raises Unsupported (with the reason) for other architectures
        self.model = model
        e = self.engine
        h, kv, dh, d = e.n_heads, e.n_kv, e.d_head, e.d_model
        g = h // kv
        self.n_heads, self.d_model, self.d_head = h, d, dh
        self.per_head: list[dict[str, Tensor | None]] = []
        for blk in e.blocks:
            wk = blk.wk.view(kv, dh, d).repeat_interleave(g, 0)  # query head h reads key/value head h // g
            wv = blk.wv.view(kv, dh, d).repeat_interleave(g, 0)
            self.per_head.append({
                "wq": blk.wq.view(h, dh, d), "bq": None if blk.bq is None else blk.bq.view(h, dh),
                "wk": wk, "bk": None if blk.bk is None else blk.bk.view(kv, dh).repeat_interleave(g, 0),
                "wv": wv, "bv": None if blk.bv is None else blk.bv.view(kv, dh).repeat_interleave(g, 0),
                "wo": blk.wo.view(d, h, dh).permute(1, 2, 0).contiguous(),  # [head d_head d_model]
            })
        self.passes = 0  # forward passes run (rows x layers are in `row_layers`)
        self.row_layers = 0

    # ------------------------------------------------------------------ pieces
    def verify(self, tokens: Tensor) -> None:
        """`ConeEngine.verify`: the explicit forward equals the bridge on these prompts (else `Unsupported`)."""
        with torch.inference_mode():
            self.engine.verify(tokens)

    def embed(self, tokens: Tensor) -> Tensor:
        return self.engine.embed(tokens)

    def mlp_bias(self) -> Tensor:
        """[n_layers d_model]: what each MLP writes when its hidden activation is zero (its output bias)."""
        d = self.d_model
        outs = [torch.zeros(d) if b.b_out is None else b.b_out.detach().float() for b in self.engine.blocks]
        return torch.stack(outs)

    def _proj(self, hin: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        """Per-head projection of per-head inputs ``hin`` [N S H d] -> [N H S dh]."""
        out = torch.einsum("nshd,hed->nhse", hin, w)
        return out if b is None else out + b[None, :, None, :]

    def head_inputs(self, layer: int, x: Tensor) -> Tensor:
        """[3 N H S d_head]: every query head's q and k (rotated) and v from the residual ``x`` [N S d]."""
        e, blk = self.engine, self.engine.blocks[layer]
        n, s, _ = x.shape
        h, dh, g = self.n_heads, self.d_head, self.n_heads // e.n_kv
        hn = blk.ln1(x)
        q = F.linear(hn, blk.wq, blk.bq).view(n, s, h, dh).transpose(1, 2)
        k = F.linear(hn, blk.wk, blk.bk).view(n, s, e.n_kv, dh).transpose(1, 2).repeat_interleave(g, dim=1)
        v = F.linear(hn, blk.wv, blk.bv).view(n, s, e.n_kv, dh).transpose(1, 2).repeat_interleave(g, dim=1)
        return torch.stack([e._rope(q, 0), e._rope(k, 0), v])

    def _attention(self, layer: int, x: Tensor, d3: Tensor | None) -> Tensor:
        """Per-head outputs [N S H d_model] of ``layer`` with q/k/v receiver deltas ``d3`` [N S 3H d] (or None)."""
        e, ph = self.engine, self.per_head[layer]
        blk = e.blocks[layer]
        n, s, _ = x.shape
        h, dh = self.n_heads, self.d_head
        if d3 is None:
            hn = blk.ln1(x)
            q = F.linear(hn, blk.wq, blk.bq).view(n, s, h, dh).transpose(1, 2)
            k = F.linear(hn, blk.wk, blk.bk).view(n, s, e.n_kv, dh).transpose(1, 2)
            v = F.linear(hn, blk.wv, blk.bv).view(n, s, e.n_kv, dh).transpose(1, 2)
            g = h // e.n_kv
            if g > 1:
                k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        else:
            hn = blk.ln1(x[:, :, None, :] + d3)  # [N S 3H d]
            q = self._proj(hn[:, :, :h], ph["wq"], ph["bq"])
            k = self._proj(hn[:, :, h : 2 * h], ph["wk"], ph["bk"])
            v = self._proj(hn[:, :, 2 * h :], ph["wv"], ph["bv"])
        q, k = e._rope(q, 0), e._rope(k, 0)
        scores = q @ k.transpose(-1, -2)
        scores = scores / e._scale_div if e._scale_div is not None else scores * e._scale_mul
        mask = torch.ones(s, s, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
        pattern = torch.softmax(scores, dim=-1, dtype=torch.float32).to(x.dtype)
        z = pattern @ v  # [N H S dh]
        return torch.einsum("nhse,hed->nshd", z, ph["wo"])

    # ------------------------------------------------------------------ the pass
    def run(
        self,
        tokens: Tensor | None = None,
        *,
        ablate: Tensor | None = None,
        values: Tensor | None = None,
        extra: Mapping[tuple[str, int], Tensor] | None = None,
        override: Mapping[tuple[str, int], Tensor] | None = None,
        probes: bool = False,
        keep_outputs: bool = False,
        start: tuple[int, Tensor] | None = None,
    ) -> EdgeRun:
        """One pass. ``ablate`` [n_senders n_receivers] bool (True = edge ablated) with ``values`` [N S n_senders d]
        (each sender's ablation value); ``extra[(kind, layer)]`` adds a fixed delta to receivers (``("qkv", l)``
        [N S 3H d], ``("mlp", l)`` [N S d], ``("logits", 0)`` [N S d]); ``override[(kind, layer)]`` replaces a sender
        group's output (``("input", 0)`` [N S d], ``("attn", l)`` [N S H d], ``("mlp", l)`` [N S d]); ``probes`` adds
        zero tensors requiring grad at every receiver input; ``start=(layer, resid_pre)`` starts at ``layer`` from a
        given residual (no ablation then)."""
        gph, e = self.graph, self.engine
        extra, override = extra or {}, override or {}
        if start is None:
            assert tokens is not None
            x = override.get(("input", 0))
            if x is None:
                x = self.embed(tokens)
            first = 0
        else:
            first, x = start
            if ablate is not None:
                raise ValueError("start= cannot be combined with ablate=")
        n, s, d = x.shape
        e._rope_tables(s)
        outs = x.new_zeros(n, s, len(gph.senders), d) if keep_outputs else None
        amask = None if ablate is None else torch.as_tensor(ablate, device=x.device)
        # ablation deltas A_s - O_s, sender-major [n_senders N*S*d] (a receiver group's delta is one matrix product
        # with its mask columns), and their running sum over the senders so far
        dmat = None if amask is None else x.new_empty(len(gph.senders), n * s * d)
        dsum = None if amask is None else x.new_zeros(n, s, d)

        def record(lo: int, out: Tensor) -> None:
            """Senders ``lo..`` produced ``out`` [N S k d] in this pass."""
            nonlocal dsum
            k = out.shape[2]
            if outs is not None:
                outs[:, :, lo : lo + k] = out
            if dmat is not None:
                assert values is not None and dsum is not None
                dd = (values[:, :, lo : lo + k] - out).permute(2, 0, 1, 3)  # [k N S d]
                dmat[lo : lo + k] = dd.reshape(k, -1)
                dsum = dsum + dd.sum(0)

        if first == 0:
            record(0, x[:, :, None])
        probe_t: dict[tuple[str, int], Tensor] = {}
        resid: list[Tensor] = []

        def combine(m: Tensor, rows: Tensor, n_snd: int) -> Tensor:
            """``sum_s m[s, r] (A_s - O_s)`` for the receivers r of ``m`` [n_snd R] -> [N S R d]; only ``rows``
            can be nonzero (a gather of those rows when they are few, else the whole block)."""
            assert dmat is not None
            if len(rows) * 2 < n_snd:
                prod = m[rows].T.to(dmat.dtype) @ dmat[rows]
            else:
                prod = m.T.to(dmat.dtype) @ dmat[:n_snd]
            return prod.view(m.shape[1], n, s, d).permute(1, 2, 0, 3)

        def delta(rcv: slice, n_snd: int) -> Tensor | None:
            if amask is None:
                return None
            m = amask[:n_snd, rcv]  # every sender < n_snd writes before these receivers read
            rows = m.any(1).nonzero()[:, 0]
            if len(rows) == 0:
                return None
            assert dsum is not None
            keep = ~m
            kept_rows = keep.any(1).nonzero()[:, 0]
            if len(kept_rows) < len(rows):  # small circuits: all deltas minus the kept edges' (fewer senders)
                full = dsum[:, :, None]  # [N S 1 d]
                if len(kept_rows) == 0:
                    return full.expand(-1, -1, m.shape[1], -1)
                return full - combine(keep, kept_rows, n_snd)
            return combine(m, rows, n_snd)

        def add(cur: Tensor | None, more: Tensor | None) -> Tensor | None:
            if more is None:
                return cur
            return more if cur is None else cur + more

        for layer in range(first, e.n_layers):
            blk = e.blocks[layer]
            if keep_outputs:
                resid.append(x)
            r0 = gph.receiver_index(layer, "q", 0)
            s0 = gph.sender_index(layer, 0)
            d3 = add(delta(slice(r0, r0 + 3 * self.n_heads), s0), extra.get(("qkv", layer)))
            if probes:
                p = torch.zeros(n, s, 3 * self.n_heads, d, dtype=x.dtype, device=x.device, requires_grad=True)
                probe_t[("qkv", layer)] = p
                d3 = add(d3, p)
            res = override.get(("attn", layer))
            if res is None:
                res = self._attention(layer, x, d3)
            attn_out = res.sum(2) if blk.bo is None else res.sum(2) + blk.bo
            mid = x + attn_out
            record(s0, res)
            rm = gph.receiver_index(layer, "mlp")
            dm = add(delta(slice(rm, rm + 1), s0 + self.n_heads), extra.get(("mlp", layer)))
            if dm is not None and dm.ndim == 4:
                dm = dm[:, :, 0]
            if probes:
                p = torch.zeros(n, s, d, dtype=x.dtype, device=x.device, requires_grad=True)
                probe_t[("mlp", layer)] = p
                dm = add(dm, p)
            mlp_out = override.get(("mlp", layer))
            if mlp_out is None:
                xin = mid if dm is None else mid + dm
                mlp_out = F.linear(blk.post(blk.ln2(xin)), blk.w_out, blk.b_out)
            record(s0 + self.n_heads, mlp_out[:, :, None])
            x = mid + mlp_out
        if keep_outputs:
            resid.append(x)
        rl = gph.receiver_index(0, "logits")
        dl = add(delta(slice(rl, rl + 1), len(gph.senders)), extra.get(("logits", 0)))
        if dl is not None and dl.ndim == 4:
            dl = dl[:, :, 0]
        final = x[:, -1:]
        if dl is not None:
            final = final + dl[:, -1:]
        if probes:
            p = torch.zeros(n, 1, d, dtype=x.dtype, device=x.device, requires_grad=True)
            probe_t[("logits", 0)] = p
            final = final + p
        self.passes += 1
        self.row_layers += n * (e.n_layers - first)
        return EdgeRun(e.logits(final[:, 0]), outs, probe_t, resid)

    def sender_outputs(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Last-position logits and every sender's output [N S n_senders d] on ``tokens`` (no grad)."""
        with torch.inference_mode():
            r = self.run(tokens, keep_outputs=True)
        assert r.outputs is not None
        return r.logits, r.outputs
