"""Device bookkeeping of the cone engine for bridges whose blocks live on several devices.

A model loaded with ``load_model(..., device_map=...)`` or ``n_devices=`` (TransformerLens 4 / accelerate) keeps
consecutive blocks on consecutive devices. The engine's explicit forward then follows three rules, all decided by
one per-block lookup, `BlockDevices`:

* **activations follow each block's device**: the residual rows entering block ``i`` are moved to block ``i``'s
  device before it runs (`BlockDevices.to`); the final residual goes to the unembedding's device;
* **caches live with the block that reads them**: the base run's ``resid_pre``/keys/values and the patched
  activation of layer ``i`` are produced by block ``i`` on its device and stay there; an injected residual computed
  at layer ``l`` for a patch entering at ``l + 1`` is moved to block ``l + 1``'s device;
* **the memory budget is per device**: ``max_memory`` is a size for every device (``"auto"``: 40% of the memory
  free on each) or ``{device: size}``; each device must hold its own caches (`cache_bytes_by_device`) plus one
  pass's working memory, and passes are packed to the tightest device (`pass_budget`).

On one device every lookup returns that device and every move is a no-op. The unit tests
(tests/unit/test_scale.py) point ``engine.placement`` at a recording map to check the moves and the per-device
accounting on a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from interp.errors import ShapeError

__all__ = ["BlockDevices", "dev_name", "device_budgets", "cache_bytes_by_device", "pass_budget", "module_device"]


def module_device(module: Any, default: Any = "cpu") -> torch.device:
    """The device of ``module``'s first parameter (or buffer), else ``default``."""
    for it in (getattr(module, "parameters", None), getattr(module, "buffers", None)):
        if it is None:
            continue
        try:
            return next(it()).device
        except StopIteration:
            continue
    return torch.device(default)


class BlockDevices:
    """The device of every block of a bridge, of its embedding (input) and of its unembedding (output).

    ``block(i)`` for ``i == n_layers`` is the unembedding's device (where the final residual goes).
    """

    def __init__(self, blocks: Sequence[Any], embed: Any, unembed: Any) -> None:
        self.blocks = tuple(torch.device(d) for d in blocks)
        self.embed = torch.device(embed)
        self.unembed = torch.device(unembed)

    @classmethod
    def of_model(cls, model: Any) -> BlockDevices:
        blocks = [module_device(b) for b in model.blocks]
        out = module_device(getattr(model, "unembed", None), blocks[-1] if blocks else "cpu")
        emb = module_device(getattr(model, "embed", None), blocks[0] if blocks else out)
        return cls(blocks, emb, out)

    def block(self, i: int) -> torch.device:
        return self.unembed if i >= len(self.blocks) else self.blocks[i]

    @property
    def devices(self) -> list[str]:
        """Distinct devices in the order the forward pass visits them."""
        seen = [str(self.embed), *(str(d) for d in self.blocks), str(self.unembed)]
        return list(dict.fromkeys(seen))

    @property
    def multi(self) -> bool:
        return len(self.devices) > 1

    def to(self, x: Tensor, i: int) -> Tensor:
        """``x`` on block ``i``'s device (no copy when it is already there)."""
        dev = self.block(i)
        return x if x.device == dev else x.to(dev)

    def __repr__(self) -> str:
        spans: list[str] = []
        start = 0
        for i in range(1, len(self.blocks) + 1):
            if i == len(self.blocks) or self.blocks[i] != self.blocks[start]:
                spans.append(f"{start}-{i - 1}:{self.blocks[start]}")
                start = i
        return f"BlockDevices({', '.join(spans)}; unembed {self.unembed})"


def device_budgets(max_memory: Any, devices: Sequence[str]) -> dict[str, int]:
    """Per-device byte budgets: one size (or ``"auto"``) for every device, or ``{device: size}`` for each."""
    from interp.patching.engine import parse_bytes

    if isinstance(max_memory, Mapping):
        norm = {dev_name(k): v for k, v in max_memory.items()}
        missing = [d for d in devices if d not in norm]
        if missing:
            raise ShapeError(f"max_memory has no budget for device(s) {missing}; the model's blocks live on "
                             f"{list(devices)}: give a size for each, or one size for all")
        return {d: parse_bytes(norm[d], device=d) for d in devices}
    return {d: parse_bytes(max_memory, device=d) for d in devices}


def dev_name(key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"cuda:{key}"
    return str(torch.device(key) if str(key) != "cuda" else torch.device("cuda", 0))


def cache_bytes_by_device(engine: Any, kind: str, layers: Sequence[int], batch: int, seq_len: int,
                          ) -> dict[str, int]:
    """`ConeEngine.cache_bytes` split by the device each cached tensor lives on.

    Layer ``i``'s residual, keys/values and site activations stay with block ``i``; the final residual with the
    unembedding. The transient full forward that builds the caches passes through every device, so each device
    is charged its working memory. Summed over devices minus the repeated transient, this is ``cache_bytes``.
    """
    placement: BlockDevices = engine.placement
    n, d, kvw = engine.n_layers, engine.d_model, 2 * engine.n_kv * engine.d_head
    width = {"resid_pre": d, "attn_out": d, "mlp_out": d, "head": engine.n_heads * engine.d_head,
             "mlp": engine.d_mlp, "neuron": engine.d_mlp}[kind]
    lo = min(layers)
    per_layer: dict[int, int] = {i: d for i in range(lo, n + 1)}  # resid_pre lo..n (n = final residual)
    for i in range(lo, n):
        per_layer[i] += kvw
    for lyr in layers:
        per_layer[lyr] = per_layer.get(lyr, 0) + 2 * width + (2 * d if kind == "mlp" else 0) + (
            d if kind == "mlp_out" else 0)
    scale = batch * seq_len * engine.dtype.itemsize
    out = {dev: 0 for dev in placement.devices}
    for i, elems in per_layer.items():
        out[str(placement.block(i))] += elems * scale
    transient = engine.row_bytes(seq_len, seq_len) * batch
    return {dev: b + transient for dev, b in out.items()}


def pass_budget(engine: Any, budgets: Mapping[str, int], kind: str, layers: Sequence[int], batch: int,
                seq_len: int, one: int) -> int:
    """Bytes one pass may use on every device: ``min(budget - caches)``; raises `ShapeError` naming the device
    that cannot hold its caches plus ``one`` patch variant."""
    from interp.patching.engine import format_bytes

    fixed = cache_bytes_by_device(engine, kind, layers, batch, seq_len)
    avail = []
    for dev, cached in fixed.items():
        budget = budgets[dev]
        if cached + one > budget:
            raise ShapeError(
                f"max_memory for device {dev} ({format_bytes(budget)}) is too small for one patch: the caches of "
                f"the blocks on {dev} take {format_bytes(cached)} and one patch variant of {batch} prompts needs "
                f"{format_bytes(one)} more; raise its budget to at least {format_bytes(cached + one)} "
                f"(budgets per device: { {k: format_bytes(v) for k, v in budgets.items()} })"
            )
        avail.append(budget - cached)
    return min(avail)
