"""Shared fixtures: tiny deterministic bridges built from configs (no download, no tokenizer needed)."""

from __future__ import annotations

import pytest
import torch


def tiny_bridge(**overrides):
    """A random native bridge in compatibility mode, eval mode."""
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    cfg = dict(d_model=32, d_head=8, n_heads=4, n_layers=3, d_mlp=64, d_vocab=50, n_ctx=12,
               act_fn="gelu", normalization_type="LN", seed=0)
    cfg.update(overrides)
    b = TransformerBridge.boot_native(TransformerBridgeConfig(**cfg))
    b.enable_compatibility_mode()
    b.eval()
    return b


def random_pairs(model, *, batch=6, seq=6, seed=0):
    from interp.tasks.base import PromptPairs

    g = torch.Generator().manual_seed(seed)
    v = int(model.cfg.d_vocab)
    clean = torch.randint(0, v, (batch, seq), generator=g)
    corrupt = torch.randint(0, v, (batch, seq), generator=g)
    r = torch.randint(0, v, (batch,), generator=g)
    r2 = (r + 1 + torch.randint(0, v - 1, (batch,), generator=g)) % v
    return PromptPairs(clean, corrupt, r, r2, tuple(f"p{i}" for i in range(seq)), "random")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny():
    return tiny_bridge()
