"""`ConeEngine`: the explicit per-layer forward of a bridge and the cone-restricted patch sweep (see
`interp.patching.engine` for the method).

This module is over 450 lines on purpose: it is one class whose forward, verification and sweep share the
per-sweep caches (residual stream, keys/values, taps) and the block adapters; splitting the class would scatter one
algorithm over files that each need the others' private state.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from interp.patching.devices import BlockDevices, module_device
from interp.patching.engine.adapters import Unsupported, _activation, _Block, _linear, _norm
from interp.patching.engine.plan import _rows_matmul
from interp.sites import hook_name

__all__ = ["CHECK_RTOL", "ConeEngine", "EngineStats", "Unsupported"]

log = logging.getLogger(__name__)

CHECK_RTOL = 1e-4  # explicit forward vs bridge on the base run, relative to the reference's max |value|
_NATIVE = "NativeModel"
_HF_ARCHITECTURES = ("LlamaForCausalLM",)  # checked against the bridge in tests; others fall back


@dataclass
class EngineStats:
    """What one sweep cost: passes, FLOPs spent, FLOPs the cone strictly needs, the memory estimate."""

    passes: int = 0
    flops: int = 0  # spent on patched recomputation (2 x multiply-adds of every matmul executed)
    flops_cone: int = 0  # the minimum: activations the patch changes, keys a query can see, logits the metric reads
    flops_overhead: int = 0  # once per sweep: the base and source runs (with the key/value cache)
    skipped: int = 0  # variants whose patched value equals the base value for every prompt (effect = unpatched)
    peak_bytes_estimate: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "passes": self.passes,
            "flops": self.flops,
            "flops_cone": self.flops_cone,
            "flops_overhead": self.flops_overhead,
            "flops_ratio": (self.flops / self.flops_cone) if self.flops_cone else None,
            "skipped_noop_patches": self.skipped,
            "peak_bytes_estimate": self.peak_bytes_estimate,
        }


# the activation each site kind patches, as named in the explicit forward's taps
SITE_ACT = {"resid_pre": "resid_pre", "attn_out": "attn_out", "mlp_out": "mlp_out", "head": "z", "mlp": "post",
            "neuron": "post"}
_TAP_HOOKS = {"resid_pre": "resid_pre", "attn_out": "attn_out", "mlp_out": "mlp_out", "z": "head", "post": "mlp"}
_VERIFIED: weakref.WeakKeyDictionary[Any, set[tuple[Any, ...]]] = weakref.WeakKeyDictionary()


# ------------------------------------------------------------------------------------------ the engine
class ConeEngine:
    """The explicit per-layer forward of a supported compatibility-mode bridge, plus the cone-restricted sweep.

    `ConeEngine.for_model` raises `Unsupported` for architectures it does not handle; `verify` checks the explicit
    forward against the bridge (cached per weights and prompt length); `setup` runs the base and source prompts
    once, keeping only what the sweep reads; `run_group` evaluates the patch variants sharing one position.
    """

    def __init__(self, model: Any) -> None:
        cfg = model.cfg
        self.model = model
        orig = getattr(model, "original_model", None)
        arch = type(orig).__name__
        self.native = arch == _NATIVE
        if not self.native and str(getattr(cfg, "architecture", "")) not in _HF_ARCHITECTURES:
            raise Unsupported(f"architecture {getattr(cfg, 'architecture', arch)!r} is not handled by the cone engine")
        if not getattr(model, "compatibility_mode", False):
            raise Unsupported("the bridge is not in compatibility mode")
        for flag in ("parallel_attn_mlp", "use_split_qkv_input", "use_attn_in", "use_attn_result",
                     "use_normalization_before_and_after", "rotary_adjacent_pairs", "rotary_interleaved_cos_sin",
                     "use_qk_norm", "qk_norm_after_rope", "gated_q_proj"):
            if getattr(cfg, flag, False):
                raise Unsupported(f"cfg.{flag} is set")
        for cap in ("attn_scores_soft_cap", "output_logits_soft_cap"):
            if float(getattr(cfg, cap, -1.0) or -1.0) > 0:
                raise Unsupported(f"cfg.{cap} is set")
        if getattr(cfg, "attention_dir", "causal") != "causal":
            raise Unsupported("attention is not causal")
        if getattr(cfg, "rope_scaling", None):
            raise Unsupported("rope_scaling is set")
        dtype = getattr(cfg, "dtype", torch.float32)
        if dtype not in (torch.float32, torch.float64):
            raise Unsupported(f"dtype {dtype} (the engine is checked in float32/float64 only)")

        self.n_layers = int(cfg.n_layers)
        self.d_model = int(cfg.d_model)
        self.n_heads = int(cfg.n_heads)
        self.n_kv = int(getattr(cfg, "n_key_value_heads", None) or self.n_heads)
        self.d_head = int(cfg.d_head)
        self.attn_only = bool(getattr(cfg, "attn_only", False))
        self.gated = bool(getattr(cfg, "gated_mlp", False))
        self.d_mlp = 0 if self.attn_only else int(cfg.d_mlp)
        if self.n_heads % self.n_kv:
            raise Unsupported("n_heads is not a multiple of n_key_value_heads")

        self.blocks = [self._block(model.blocks[i], i) for i in range(self.n_layers)]
        self.ln_final = _norm(getattr(model, "ln_final", None), cfg, "ln_final")
        self.w_u, self.b_u = _linear(model.unembed, "unembed")
        self.d_vocab = int(self.w_u.shape[0])
        self.device = self.w_u.device
        self.dtype = self.w_u.dtype
        self.placement = BlockDevices.of_model(model)  # per-block devices of a sharded model (interp.patching.devices)
        self._embed_setup(model)
        self._scale_setup(model)
        self._rope_setup(model)
        self.acts: dict[tuple[str, int], Tensor] = {}  # base run: resid_pre / k / v / site activations
        self.src: dict[int, Tensor] = {}  # source run: the patched activation of each site layer
        self.src_mlp_out: dict[int, Tensor] = {}
        self.seq_len = 0
        self.batch = 0

    @classmethod
    def for_model(cls, model: Any) -> ConeEngine:
        """The engine for ``model``; raises `Unsupported` (with the reason) where it cannot reproduce the forward."""
        from transformer_lens.hook_points import HookPoint

        if getattr(model, "training", False):
            raise Unsupported("the model is in training mode (dropout); call model.eval()")
        for mod in model.modules():
            if isinstance(mod, HookPoint) and (mod.fwd_hooks or mod._forward_hooks):
                raise Unsupported(f"the model has a forward hook attached at {mod.name}")
        return cls(model)

    @classmethod
    def verified(cls, model: Any, tokens: Tensor, *, fallback: str) -> ConeEngine | None:
        """The engine for ``model``, checked against the bridge on ``tokens`` (`verify`); None where it does not
        apply, with the reason logged as ``"{fallback}: reason"`` (the caller then runs ``fallback``)."""
        try:
            eng = cls.for_model(model)
            eng.verify(tokens)
        except Unsupported as e:
            log.info("%s: %s", fallback, e)
            return None
        return eng

    # ---------------------------------------------------------------------------- construction helpers
    def _block(self, blk: Any, i: int) -> _Block:
        attn = blk.attn
        if self.native:
            if type(attn.original_component).__name__ != "NativeAttention":
                raise Unsupported(f"block {i} attention is {type(attn.original_component).__name__}")
        else:
            if type(attn).__name__ != "PositionEmbeddingsAttentionBridge":
                raise Unsupported(f"block {i} attention bridge is {type(attn).__name__}")
            if set(attn.submodules) != {"q", "k", "v", "o"}:
                raise Unsupported(f"block {i} attention has submodules {sorted(attn.submodules)}")
            hf = attn.original_component
            for a in ("attn_logit_softcapping", "sinks", "key_multiplier"):
                if getattr(hf, a, None) is not None:
                    raise Unsupported(f"block {i} attention has {a}")
            if getattr(hf, "sliding_window", None):
                raise Unsupported(f"block {i} attention uses a sliding window")
            if getattr(getattr(hf, "config", None), "clip_qkv", None) is not None:
                raise Unsupported("clip_qkv is set")
        wq, bq = _linear(attn.q, f"blocks.{i}.attn.q")
        wk, bk = _linear(attn.k, f"blocks.{i}.attn.k")
        wv, bv = _linear(attn.v, f"blocks.{i}.attn.v")
        wo, bo = _linear(attn.o, f"blocks.{i}.attn.o")
        if wq.shape[0] != self.n_heads * self.d_head or wk.shape[0] != self.n_kv * self.d_head:
            raise Unsupported(f"block {i} q/k projections have unexpected shapes {tuple(wq.shape)}, {tuple(wk.shape)}")
        ln1 = _norm(blk.ln1, self.model.cfg, f"blocks.{i}.ln1")
        if self.attn_only:
            return _Block(ln1, None, wq, bq, wk, bk, wv, bv, wo, bo, None, None, None, None, None, None, None)
        mlp = blk.mlp
        kind = type(mlp).__name__
        if kind not in ("MLPBridge", "GatedMLPBridge"):
            raise Unsupported(f"block {i} MLP bridge is {kind}")
        if (kind == "GatedMLPBridge") != self.gated:
            raise Unsupported(f"block {i}: cfg.gated_mlp={self.gated} but the MLP bridge is {kind}")
        w_in, b_in = _linear(getattr(mlp, "in"), f"blocks.{i}.mlp.in")
        w_out, b_out = _linear(mlp.out, f"blocks.{i}.mlp.out")
        w_gate = b_gate = None
        if self.gated:
            w_gate, b_gate = _linear(mlp.gate, f"blocks.{i}.mlp.gate")
        ln2 = _norm(blk.ln2, self.model.cfg, f"blocks.{i}.ln2")
        return _Block(ln1, ln2, wq, bq, wk, bk, wv, bv, wo, bo, w_in, b_in, w_gate, b_gate, w_out, b_out,
                      _activation(mlp, self.gated))

    def _embed_setup(self, model: Any) -> None:
        emb = getattr(getattr(model, "embed", None), "original_component", None)
        if not isinstance(emb, torch.nn.Embedding):
            raise Unsupported(f"token embedding is {type(emb).__name__}")
        self.w_e = emb.weight.detach()
        self.w_pos: Tensor | None = None
        kind = (getattr(model.cfg, "positional_embedding_type", None) or "standard").lower()
        if kind == "standard":
            pos = getattr(getattr(model, "pos_embed", None), "original_component", None)
            if not isinstance(pos, torch.nn.Embedding):
                raise Unsupported("learned positions without a position embedding module")
            self.w_pos = pos.weight.detach()

    def _scale_setup(self, model: Any) -> None:
        attn = model.blocks[0].attn.original_component
        if self.native:
            self._scale_div: float | None = float(attn.scale)
            self._scale_mul: float | None = None
        else:
            self._scale_div = None
            self._scale_mul = float(getattr(attn, "scaling", self.d_head**-0.5))

    def _rope_setup(self, model: Any) -> None:
        kind = (getattr(model.cfg, "positional_embedding_type", None) or "standard").lower()
        self.rope_style: str | None = None
        self._cos: Tensor | None = None
        self._sin: Tensor | None = None
        if self.native:
            rot = getattr(model.original_model, "rotary", None)
            if kind == "rotary":
                if rot is None:
                    raise Unsupported("rotary positions but no NativeRotary module")
                self.rope_style = "adjacent"
                self._native_rot = rot
            elif kind != "standard":
                raise Unsupported(f"positional_embedding_type {kind!r}")
        else:
            if kind != "rotary":
                raise Unsupported(f"positional_embedding_type {kind!r} on an HF model")
            rot = getattr(model, "rotary_emb", None)
            if rot is None:
                raise Unsupported("no rotary_emb component")
            self.rope_style = "half"
            self._hf_rot = getattr(rot, "original_component", None) or rot

    def _rope_tables(self, seq_len: int) -> None:
        if self.rope_style == "adjacent":
            rot = self._native_rot
            self._cos = rot.cos_cached[:seq_len].to(self.dtype)
            self._sin = rot.sin_cached[:seq_len].to(self.dtype)
        elif self.rope_style == "half":
            dev = module_device(self._hf_rot, self.device)
            x = torch.zeros(1, seq_len, self.d_head, dtype=self.dtype, device=dev)
            pos = torch.arange(seq_len, device=dev)[None]
            cos, sin = self._hf_rot(x, pos)
            if cos.shape[-1] != self.d_head:
                raise Unsupported(f"rotary tables of width {cos.shape[-1]} for d_head {self.d_head}")
            self._cos, self._sin = cos[0].to(self.dtype), sin[0].to(self.dtype)

    def _rope(self, x: Tensor, start: int) -> Tensor:
        """Rotate ``x`` [N heads T d_head] whose positions are ``start .. start+T-1``."""
        if self.rope_style is None:
            return x
        assert self._cos is not None and self._sin is not None
        t = x.shape[-2]
        cos, sin = self._cos[start : start + t].to(x.device), self._sin[start : start + t].to(x.device)
        rd = cos.shape[-1]
        xr = x[..., :rd]
        if self.rope_style == "half":
            h = rd // 2
            rot = torch.cat((-xr[..., h:], xr[..., :h]), dim=-1)
        else:
            rot = torch.stack((-xr[..., 1::2], xr[..., 0::2]), dim=-1).flatten(-2)
        out = xr * cos + rot * sin
        return torch.cat([out, x[..., rd:]], dim=-1) if rd < x.shape[-1] else out

    # ---------------------------------------------------------------------------- the explicit forward
    def layer(self, layer: int, x: Tensor, p: int, n_var: int, *, last: bool, stats: EngineStats | None = None,
              taps: dict[str, Tensor] | None = None, edit: Any = None) -> Tensor:
        """Layer ``layer`` on suffix positions ``p..S-1`` of ``N = n_var*B`` rows (variant-major) ``x`` [N T d].

        Positions ``< p`` enter attention from the base key/value cache. With ``last`` only the last position's
        output is computed (returns [N 1 d]). ``taps`` (a dict) receives k, v, z, attn_out, resid_mid, post,
        mlp_out. ``edit(name, value)``, when given, replaces ``z`` ([N T head d_head], before the output
        projection) and ``post`` ([N T d_mlp], before the MLP's output projection), as a hook on ``hook_z`` /
        ``hook_post`` would (circuit ablation).
        """
        blk = self.blocks[layer]
        x = self.placement.to(x, layer)  # activations follow each block's device
        n, t, d = x.shape
        s = p + t
        kv, g, dh = self.n_kv, self.n_heads // self.n_kv, self.d_head
        tq = 1 if last else t
        h = blk.ln1(x)
        hq = h[:, t - tq :] if tq < t else h
        q = F.linear(hq, blk.wq, blk.bq).view(n, tq, self.n_heads, dh).transpose(1, 2)
        k = F.linear(h, blk.wk, blk.bk).view(n, t, kv, dh).transpose(1, 2)
        v = F.linear(h, blk.wv, blk.bv).view(n, t, kv, dh).transpose(1, 2)
        q, k = self._rope(q, s - tq), self._rope(k, p)
        if taps is not None:
            taps["k"], taps["v"] = k, v
        if g > 1:  # grouped-query attention: key/value head j serves query heads j*g .. j*g+g-1
            k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        z = self.attend(layer, q, k, v, p, n_var)  # [N head tq dh]
        z = z.transpose(1, 2).reshape(n, tq, self.n_heads * dh)  # [N tq head*dh]
        if edit is not None:
            z = edit("z", z.view(n, tq, self.n_heads, dh)).reshape(n, tq, self.n_heads * dh)
        attn_out = F.linear(z, blk.wo, blk.bo)
        mid = (x[:, t - tq :] if tq < t else x) + attn_out
        if taps is not None:
            taps["z"], taps["attn_out"], taps["resid_mid"] = z.view(n, tq, self.n_heads, dh), attn_out, mid
        if stats is not None:
            stats.flops += 2 * self._layer_macs(n, t, tq, s, all_keys=True)
        if blk.ln2 is None:
            return mid
        post = blk.post(blk.ln2(mid))
        if edit is not None:
            post = edit("post", post)
        mlp_out = F.linear(post, blk.w_out, blk.b_out)
        if taps is not None:
            taps["post"], taps["mlp_out"] = post, mlp_out
        return mid + mlp_out

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor, p: int, n_var: int,
               kv_heads: Tensor | None = None) -> Tensor:
        """Causal attention of layer ``layer`` for queries ``q`` [N h tq dh] (rotated; the last ``tq`` of the
        suffix positions ``p..S-1``) over keys and values ``k``, ``v`` [N h T dh] of the suffix, one per query head,
        and positions ``< p`` from the base key/value cache (shared by the ``n_var`` variants of each prompt).
        ``kv_heads`` [h] names the cached key/value head each query head reads; None = every query head in order
        (each key/value head serving its ``n_heads / n_kv`` query heads). Returns ``z`` [N h tq dh]."""
        n, nh, tq, dh = q.shape
        s = p + k.shape[2]
        scores = q @ k.transpose(-1, -2)  # [N h tq T]
        if p:  # positions 0..p-1 from the base key/value cache, shared by the n_var variants of each prompt
            b = n // n_var
            kp, vp = self.acts[("k", layer)][:, :, :p], self.acts[("v", layer)][:, :, :p]  # [B kv p dh]
            g = self.n_heads // self.n_kv
            if kv_heads is not None:
                kp, vp = kp[:, kv_heads], vp[:, kv_heads]
            elif g > 1:
                kp, vp = kp.repeat_interleave(g, dim=1), vp.repeat_interleave(g, dim=1)
            # one [n_var*tq dh] x [dh p] product per (prompt, head) instead of n_var tiny ones
            qb = q.reshape(n_var, b, nh, tq, dh).permute(1, 2, 0, 3, 4).reshape(b, nh, -1, dh)
            sp = _rows_matmul(qb, kp.transpose(-1, -2)).view(b, nh, n_var, tq, p).permute(2, 0, 1, 3, 4)
            scores = torch.cat([sp.reshape(n, nh, tq, p), scores], dim=-1)
        scores = scores / self._scale_div if self._scale_div is not None else scores * self._scale_mul
        if tq > 1:
            mask = torch.arange(s, device=q.device)[None, :] > torch.arange(s - tq, s, device=q.device)[:, None]
            scores = scores.masked_fill_(mask, float("-inf"))
        pattern = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        z = pattern[..., p:] @ v  # [N h tq dh]
        if p:
            pp = pattern[..., :p].reshape(n_var, b, nh, tq, p).permute(1, 2, 0, 3, 4)
            zp = _rows_matmul(pp.reshape(b, nh, -1, p), vp).view(b, nh, n_var, tq, dh)
            z = z + zp.permute(2, 0, 1, 3, 4).reshape(n, nh, tq, dh)
        return z

    def _layer_macs(self, n: int, t: int, tq: int, s: int, *, all_keys: bool) -> int:
        d, h, kv, dh = self.d_model, self.n_heads, self.n_kv, self.d_head
        proj = tq * d * h * dh + 2 * t * d * kv * dh + tq * h * dh * d
        if all_keys:
            keys = tq * s
        else:  # query at absolute position a sees a + 1 keys
            keys = sum(a + 1 for a in range(s - tq, s))
        attn = 2 * h * dh * keys
        mlp = 0 if self.attn_only else tq * d * self.d_mlp * (3 if self.gated else 2)
        return n * (proj + attn + mlp)

    def logits(self, resid: Tensor, columns: Tensor | None = None) -> Tensor:
        """Logits [N d_vocab] of final residuals [N d_model]; only ``columns`` [N c] of each row if given."""
        h = self.ln_final(self.placement.to(resid, self.n_layers))
        if columns is None:
            return F.linear(h, self.w_u, self.b_u)
        columns = columns.to(h.device)
        out = (h.unsqueeze(1) * self.w_u[columns]).sum(-1)
        return out if self.b_u is None else out + self.b_u[columns]

    def embed(self, tokens: Tensor, start: int = 0) -> Tensor:
        """Token (plus learned position) embeddings [N T d] of ``tokens`` [N T] at positions ``start..``."""
        x = F.embedding(tokens.to(self.w_e.device), self.w_e)
        if self.w_pos is not None:
            x = x + self.w_pos[start : start + tokens.shape[1]].to(x.device)
        return x

    def forward(self, tokens: Tensor, want: set[tuple[str, int]], *, stats: EngineStats | None = None,
                start: int = 0) -> tuple[Tensor, dict[tuple[str, int], Tensor]]:
        """Last-position logits [B d_vocab] of ``tokens`` and the activations ``want`` = {(name, layer)}.

        Names: resid_pre (layer n_layers is the final residual), k, v (rotated keys, values [B kv S d_head]),
        z [B S head d_head], attn_out, resid_mid, post, mlp_out. With ``start > 0`` only positions ``start..``
        are computed (and returned), positions before it entering attention from the key/value cache in
        ``self.acts`` (a base run whose first ``start`` tokens equal these).
        """
        b, s = tokens.shape
        x = self.embed(tokens[:, start:], start)
        kept: dict[tuple[str, int], Tensor] = {}
        for i in range(self.n_layers):
            x = self.placement.to(x, i)  # cached activations of layer i stay on block i's device
            if ("resid_pre", i) in want:
                kept[("resid_pre", i)] = x
            taps: dict[str, Tensor] = {}
            x = self.layer(i, x, start, 1, last=False, taps=taps)
            for name, val in taps.items():
                if (name, i) in want:
                    kept[(name, i)] = val
        x = self.placement.to(x, self.n_layers)
        if ("resid_pre", self.n_layers) in want:
            kept[("resid_pre", self.n_layers)] = x
        if stats is not None:
            macs = sum(self._layer_macs(b, s - start, s - start, s, all_keys=True) for _ in range(self.n_layers))
            stats.flops_overhead += 2 * (macs + b * self.d_model * self.d_vocab)
        return self.logits(x[:, -1]), kept

    # ---------------------------------------------------------------------------- checks and caches
    def verify(self, tokens: Tensor) -> None:
        """Check the explicit forward against the bridge on (up to) two prompts; cached per weights and length.

        Compares the last-position logits and every layer's resid_pre, attn_out, z, resid_mid, post and mlp_out
        (relative to each tensor's largest value). Raises `Unsupported` beyond ``CHECK_RTOL``.
        """
        tokens = tokens[:2]
        self._rope_tables(tokens.shape[1])
        key = (tokens.shape[1], tuple((q.data_ptr(), q._version) for q in self.model.parameters()))
        done = _VERIFIED.setdefault(self.model, set())
        if key in done:
            return
        names = {
            (kind, i): f"blocks.{i}.hook_resid_mid" if kind == "resid_mid" else hook_name(_TAP_HOOKS[kind], i)
            for i in range(self.n_layers)
            for kind in ("resid_pre", "attn_out", "z", "resid_mid", "post", "mlp_out")
            if not (self.attn_only and kind in ("post", "mlp_out"))
        }
        hooks = getattr(self.model, "hook_dict", {})
        names = {k: v for k, v in names.items() if v in hooks}
        wanted = set(names.values())
        ref_out, ref = self.model.run_with_cache(tokens, names_filter=lambda nm: nm in wanted)
        got_logits, got = self.forward(tokens, set(names))
        worst, where = _rel_err(got_logits.float().to(ref_out.device), ref_out[:, -1].float()), "logits"
        for k, nm in names.items():
            err = _rel_err(got[k].reshape(ref[nm].shape).to(ref[nm].device), ref[nm])
            if err > worst:
                worst, where = err, nm
        if not worst <= CHECK_RTOL:
            raise Unsupported(f"the explicit forward differs from the bridge at {where} by {worst:.2e} (relative) "
                              f"> {CHECK_RTOL}")
        done.add(key)

    def setup(self, kind: str, layers: Sequence[int], base: Tensor, source: Tensor, stats: EngineStats,
              ) -> tuple[Tensor, Tensor]:
        """Run base and source once, keeping only what the sweep reads; returns their last-position logits."""
        n = self.n_layers
        lo = min(layers)
        self.batch, self.seq_len = base.shape
        self._rope_tables(self.seq_len)
        act = SITE_ACT[kind]
        want: set[tuple[str, int]] = {("resid_pre", i) for i in range(lo, n + 1)}
        want |= {(c, i) for i in range(self.start_layer(kind, lo), n) for c in ("k", "v")}
        want |= {(act, lyr) for lyr in layers}
        if kind in ("mlp_out", "mlp"):
            want |= {("resid_mid", lyr) for lyr in layers}
        base_logits, self.acts = self.forward(base, want, stats=stats)
        src_want = {(act, lyr) for lyr in layers}
        if kind == "mlp":  # a whole hook_post vector patched in gives exactly the source run's mlp_out
            src_want |= {("mlp_out", lyr) for lyr in layers}
        src_logits, src = self.forward(source, src_want, stats=stats)
        self.src = {lyr: src[(act, lyr)] for lyr in layers}
        self.src_mlp_out = {lyr: src[("mlp_out", lyr)] for lyr in layers} if kind == "mlp" else {}
        return base_logits, src_logits

    def cache_bytes(self, kind: str, layers: Sequence[int], batch: int, seq_len: int) -> int:
        """Bytes of the base/source caches of a sweep plus the transient full forward that builds them."""
        width = {"resid_pre": self.d_model, "attn_out": self.d_model, "mlp_out": self.d_model,
                 "head": self.n_heads * self.d_head, "mlp": self.d_mlp, "neuron": self.d_mlp}[kind]
        lo = min(layers)
        per_token = (self.n_layers - lo + 1) * self.d_model + (self.n_layers - lo) * 2 * self.n_kv * self.d_head
        per_token += 2 * len(layers) * width + (2 * len(layers) * self.d_model if kind == "mlp" else 0)
        per_token += len(layers) * self.d_model if kind == "mlp_out" else 0
        transient = self.row_bytes(seq_len, seq_len) * batch
        return per_token * batch * seq_len * self.dtype.itemsize + transient

    def row_bytes(self, t: int, seq_len: int, n_cols: int | None = None) -> int:
        """Working memory of one patched row with ``t`` suffix positions (activations, logits, metric)."""
        d, h, kv, dh, m = self.d_model, self.n_heads, self.n_kv, self.d_head, self.d_mlp
        act = t * (4 * d + 2 * (h + 2 * kv) * dh + 2 * h * dh + 3 * m) + 3 * h * t * seq_len
        logits = 6 * self.d_vocab if n_cols is None else n_cols * (d + 6)
        return int((act + logits) * max(self.dtype.itemsize, 4) * 1.25)

    def release(self) -> None:
        self.acts, self.src, self.src_mlp_out = {}, {}, {}

    # ---------------------------------------------------------------------------- patches
    def start_layer(self, kind: str, layer: int) -> int:
        """The layer whose input residual a patch of ``kind`` at ``layer`` first changes."""
        return layer if kind == "resid_pre" else layer + 1

    def noop(self, kind: str, layer: int, positions: Sequence[int], units: Sequence[int | None]) -> Tensor:
        """[pos unit] bool: patches whose source value equals the base value for every prompt (no effect at all).

        Also true where the patch cannot reach the last position (after the last block, before the last position).
        """
        a, b = self.src[layer], self.acts[(SITE_ACT[kind], layer)]
        pos = torch.as_tensor(list(positions), device=a.device)
        a, b = a[:, pos], b[:, pos]
        if units[0] is None:
            same = (a == b).flatten(2).all(-1).all(0)[:, None]
        else:
            u = torch.as_tensor(list(units), device=a.device)
            eq = a[:, :, u] == b[:, :, u]  # [B pos unit (d_head)]
            same = eq.reshape(*eq.shape[:3], -1).all(-1).all(0)  # [pos unit]
        if self.start_layer(kind, layer) == self.n_layers:
            same = same | (pos != self.seq_len - 1)[:, None]
        return same

    def injected(self, kind: str, layer: int, p: int, units: list[int | None], stats: EngineStats) -> Tensor:
        """New residual vectors [k B d_model] entering layer `start_layer` at position ``p``, one per unit."""
        b, k = self.batch, len(units)
        blk = self.blocks[layer]
        d, dh, h = self.d_model, self.d_head, self.n_heads
        src = self.src[layer]
        if kind == "resid_pre":
            return src[:, p].unsqueeze(0)
        if kind in ("attn_out", "head"):
            if kind == "attn_out":
                attn_out = src[:, p].unsqueeze(0)  # [1 B d]
            else:
                z = self.acts[("z", layer)][:, p].unsqueeze(0).repeat(k, 1, 1, 1)  # [k B H dh]
                heads = torch.tensor(units, device=z.device)
                z[torch.arange(k, device=z.device), :, heads] = src[:, p, heads].transpose(0, 1)
                attn_out = F.linear(z.view(k, b, h * dh), blk.wo, blk.bo)
                stats.flops += 2 * k * b * h * dh * d
                stats.flops_cone += 2 * k * b * dh * d  # one head's rank-d_head change
            mid = self.acts[("resid_pre", layer)][:, p].unsqueeze(0) + attn_out
            if blk.ln2 is None:
                return mid
            out = mid + F.linear(blk.post(blk.ln2(mid)), blk.w_out, blk.b_out)
            mlp_macs = mid.shape[0] * b * d * self.d_mlp * (3 if self.gated else 2)
            stats.flops += 2 * mlp_macs
            stats.flops_cone += 2 * mlp_macs
            return out
        if kind == "mlp_out":
            return (self.acts[("resid_mid", layer)][:, p] + src[:, p]).unsqueeze(0)
        if kind == "mlp":
            return (self.acts[("resid_mid", layer)][:, p] + self.src_mlp_out[layer][:, p]).unsqueeze(0)
        # one neuron: a rank-1 change of the residual after the MLP
        neurons = torch.tensor(units, device=src.device)
        delta = src[:, p, neurons] - self.acts[("post", layer)][:, p, neurons]  # [B k]
        w = blk.w_out[:, neurons].transpose(0, 1)  # [k d]
        stats.flops += 2 * k * b * d
        stats.flops_cone += 2 * k * b * d
        after = self.acts[("resid_pre", layer + 1)][:, p].unsqueeze(0)  # [1 B d], on block layer+1's device
        return after + (delta.transpose(0, 1)[:, :, None] * w[:, None, :]).to(after.device)

    def run_group(self, kind: str, p: int, specs: list[tuple[int, int, int | None]], stats: EngineStats,
                  columns: Tensor | None = None) -> tuple[Tensor, list[int]]:
        """Patched last-position logits [k*B ...] of variants ``specs`` = (variant id, layer, unit) at ``p``.

        Returns the logits (only ``columns`` [B c] of each prompt if given) and the variant ids in row-block order.
        """
        b, s, n = self.batch, self.seq_len, self.n_layers
        t = s - p
        by_start: dict[int, dict[int, list[tuple[int, int | None]]]] = {}
        for vid, lyr, unit in specs:
            by_start.setdefault(self.start_layer(kind, lyr), {}).setdefault(lyr, []).append((vid, unit))
        order: list[int] = []
        x: Tensor | None = None

        def inject(start: int) -> Tensor:
            parts = []
            for lyr, items in sorted(by_start[start].items()):
                vec = self.injected(kind, lyr, p, [u for _, u in items], stats)
                k = len(items)
                rows = self.acts[("resid_pre", start)][:, p:].unsqueeze(0).repeat(k, 1, 1, 1)  # [k B T d]
                rows[:, :, 0] = vec.to(rows.device).expand(k, -1, -1)  # computed at layer start-1's device
                parts.append(rows.view(k * b, t, self.d_model))
                order.extend(v for v, _ in items)
            return torch.cat(parts) if len(parts) > 1 else parts[0]

        for j in range(min(by_start), n):
            if j in by_start:
                new = inject(j)
                x = new if x is None else torch.cat([self.placement.to(x, j), new])
            assert x is not None
            x = self.layer(j, x, p, x.shape[0] // b, last=j == n - 1, stats=stats)
        if n in by_start:  # patches after the last block change only the final residual
            new = inject(n)[:, -1:]
            x = new if x is None else torch.cat([self.placement.to(x, n), new])
        assert x is not None
        rows = x.shape[0]
        cols = None if columns is None else columns.repeat(rows // b, 1)
        logits = self.logits(x[:, -1], cols)
        unembed = self.d_model * (self.d_vocab if columns is None else columns.shape[1])
        stats.flops += 2 * rows * unembed
        for _, lyr, _ in specs:  # the cone: layers start..n-1 at positions p..S-1, last layer's last row only
            start = self.start_layer(kind, lyr)
            macs = sum(self._layer_macs(b, t, 1 if j == n - 1 else t, s, all_keys=False) for j in range(start, n))
            stats.flops_cone += 2 * (macs + b * unembed)
        return logits, order


def _rel_err(got: Tensor, ref: Tensor) -> float:
    got, ref = got.detach(), ref.detach()
    scale = float(ref.abs().max())
    return float((got - ref).abs().max()) / max(scale, 1e-6)
