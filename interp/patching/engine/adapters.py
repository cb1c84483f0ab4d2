"""The bridge's pieces as the cone engine computes them: linear weights, normalizations, activations, one block.

Each adapter reads a compatibility-mode bridge module (the ``nn.Linear`` its forward calls, its normalization
formula or HF norm module, its activation function) and raises `Unsupported` for anything the engine cannot
reproduce bit for bit; `interp.patching.patch` then falls back to hooked full forwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from interp.errors import InterpError

__all__ = ["Unsupported"]


class Unsupported(InterpError):
    """The cone engine cannot reproduce this model's forward pass (the caller falls back to full passes)."""


@dataclass(frozen=True)
class _Norm:
    """One normalization as the bridge computes it: the HF module called directly, or the bridge's formula."""

    module: Any  # the HF module the bridge calls itself (native-autograd path), else None
    rms: bool
    weight: Tensor | None
    bias: Tensor | None
    eps: float
    identity: bool = False

    def __call__(self, x: Tensor) -> Tensor:
        if self.identity:
            return x
        if self.module is not None:
            out = self.module(x)
            return out if out.dtype == x.dtype else out.to(x.dtype)
        # the bridge's from-scratch formula (NormalizationBridge._python_norm_forward), kept op for op so the
        # unpatched explicit forward reproduces the bridge's numbers exactly
        h = x if x.dtype in (torch.float32, torch.float64) else x.float()
        if not self.rms:
            h = h - h.mean(-1, keepdim=True)
        h = h / (h.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()
        if self.weight is not None:
            h = h * self.weight
        if self.bias is not None:
            h = h + self.bias
        return h.to(x.dtype)


@dataclass(frozen=True)
class _Block:
    ln1: _Norm
    ln2: _Norm | None
    wq: Tensor
    bq: Tensor | None
    wk: Tensor
    bk: Tensor | None
    wv: Tensor
    bv: Tensor | None
    wo: Tensor
    bo: Tensor | None
    w_in: Tensor | None
    b_in: Tensor | None
    w_gate: Tensor | None
    b_gate: Tensor | None
    w_out: Tensor | None
    b_out: Tensor | None
    act: Callable[[Tensor], Tensor] | None

    def post(self, x: Tensor) -> Tensor:
        """MLP hidden activation (``hook_post``) of the normalized input ``x``."""
        assert self.act is not None and self.w_in is not None
        pre = F.linear(x, self.w_in, self.b_in)
        if self.w_gate is None:
            return self.act(pre)
        return self.act(F.linear(x, self.w_gate, self.b_gate)) * pre


def _linear(bridge_linear: Any, what: str) -> tuple[Tensor, Tensor | None]:
    lin = getattr(bridge_linear, "original_component", None)
    if not isinstance(lin, torch.nn.Linear):
        raise Unsupported(f"{what} is {type(lin).__name__}, not nn.Linear")
    return lin.weight.detach(), None if lin.bias is None else lin.bias.detach()


def _norm(bridge_norm: Any, cfg: Any, what: str) -> _Norm:
    if bridge_norm is None:
        return _Norm(None, False, None, None, 0.0, identity=True)
    orig = getattr(bridge_norm, "original_component", None)
    if orig is None or isinstance(orig, torch.nn.Identity):
        return _Norm(None, False, None, None, 0.0, identity=True)
    if getattr(bridge_norm, "uses_weight_offset", False):
        raise Unsupported(f"{what} uses a (1 + weight) RMSNorm")
    rms = bool(getattr(bridge_norm, "uses_rms_norm", False))
    native_path = bool(getattr(bridge_norm, "use_native_layernorm_autograd", False)) or bool(
        getattr(getattr(bridge_norm, "config", None), "layer_norm_folding", False)
    )
    if native_path:
        return _Norm(orig, rms, None, None, 0.0)
    w = getattr(orig, "weight", None)
    b = getattr(orig, "bias", None) if not rms else None
    eps = float(getattr(getattr(bridge_norm, "config", None), "eps", getattr(cfg, "eps", 1e-5)))
    return _Norm(None, rms, None if w is None else w.detach(), None if b is None else b.detach(), eps)


def _activation(bridge_mlp: Any, gated: bool) -> Callable[[Tensor], Tensor]:
    if gated and getattr(bridge_mlp, "_use_processed_weights", False):
        from transformer_lens.model_bridge.generalized_components.gated_mlp import resolve_activation_fn

        return resolve_activation_fn(bridge_mlp.config)
    orig = getattr(bridge_mlp, "original_component", None)
    act = getattr(orig, "act_fn", None) or getattr(orig, "act", None)
    if act is None or not callable(act):
        raise Unsupported(f"cannot find the activation function of {type(orig).__name__}")
    if getattr(orig, "ln", None) is not None:
        raise Unsupported("SoLU-LN MLPs are not handled")
    return act
