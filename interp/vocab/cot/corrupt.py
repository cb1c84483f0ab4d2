"""Corrupting chosen MLP neurons, and random control neurons from the same layers (Rai & Yao, methods.md §B.2).

Two modes, both applied at every position while the context is open:

* ``noise`` (the paper's intervention, default): a Gaussian vector ``N(mean=-1, std=1)`` over ``d_model`` is added
  to each chosen neuron's value vector, drawn **once** from ``numpy.random.RandomState(seed)`` (seed 1 as in the
  paper). The paper's code adds fresh noise inside a forward hook on every call, so its corruption accumulates over
  decoding steps; adding it once is the faithful reading of "noise added to the value vector". The weights are not
  touched: the hook adds ``m_i * noise_i`` to the MLP output, which is the same thing.
* ``zero``: the neuron's coefficient ``m_i`` (``hook_post``) is set to 0 (zero ablation).

`random_like` draws the control: for each layer, as many random neurons of that layer as were chosen there, none of
them chosen (the paper drew 10 neurons from random layers, indices < 1024 only; matching layers is the fairer control).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import unknown
from interp.sites import hook_name
from interp.vocab import normalize_neurons

__all__ = ["CORRUPTIONS", "corrupt_neurons", "random_like"]

CORRUPTIONS: tuple[str, ...] = ("noise", "zero")


@contextmanager
def corrupt_neurons(
    model: Any,
    neurons: Mapping[int, Sequence[int]] | Sequence[tuple[int, int]],
    *,
    mode: str = "noise",
    mean: float = -1.0,
    std: float = 1.0,
    seed: int = 1,
) -> Iterator[dict[int, list[int]]]:
    """Corrupt ``neurons`` (``{layer: [neuron...]}``) while the context is open; yields the normalized selection."""
    if mode not in CORRUPTIONS:
        raise unknown("corruption", mode, CORRUPTIONS)
    chosen = normalize_neurons(model, neurons)
    d_model = int(model.cfg.d_model)
    rng = np.random.RandomState(seed)
    fwd = []
    for layer, idx in chosen.items():
        sel = torch.tensor(idx)
        if mode == "zero":

            def zero(act: Tensor, hook: Any, sel: Tensor = sel) -> Tensor:
                act = act.clone()
                act[..., sel] = 0.0
                return act

            fwd.append((hook_name("neuron", layer), zero))
        else:
            noise = torch.from_numpy(rng.normal(mean, std, size=(len(idx), d_model))).float()
            stash: dict[str, Tensor] = {}

            def grab(act: Tensor, hook: Any, sel: Tensor = sel, stash: dict = stash) -> None:
                stash["m"] = act[..., sel]

            def add(out: Tensor, hook: Any, noise: Tensor = noise, stash: dict = stash) -> Tensor:
                m = stash.pop("m")
                return out + (m.to(noise.dtype) @ noise).to(out.dtype)

            fwd.append((hook_name("neuron", layer), grab))
            fwd.append((hook_name("mlp_out", layer), add))
    with model.hooks(fwd_hooks=fwd):
        yield chosen


def random_like(model: Any, neurons: Mapping[int, Sequence[int]], *, seed: int = 0,
                exclude: Mapping[int, Sequence[int]] | None = None) -> dict[int, list[int]]:
    """As many random neurons per layer as ``neurons`` has there, avoiding ``neurons`` and ``exclude``."""
    chosen = normalize_neurons(model, neurons)
    avoid = {layer: set(v) for layer, v in chosen.items()}
    for layer, v in (exclude or {}).items():
        avoid.setdefault(int(layer), set()).update(int(i) for i in v)
    d_mlp = int(model.cfg.d_mlp)
    rng = np.random.default_rng(seed)
    out = {}
    for layer, idx in chosen.items():
        pool = np.array([i for i in range(d_mlp) if i not in avoid[layer]])
        out[layer] = sorted(int(i) for i in rng.choice(pool, size=min(len(idx), len(pool)), replace=False))
    return out
