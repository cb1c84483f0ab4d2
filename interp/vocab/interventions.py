"""LM-Debugger's interventions: promote / suppress / set neurons' coefficients, and generation with and without."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from interp.errors import ShapeError, unknown
from interp.sites import hook_name
from interp.vocab.projection import (
    INTERVENTIONS,
    NeuronSpec,
    TokenLogit,
    VocabError,
    _as_tokens,
    _check_layer,
    value_norms,
    vocab_strings,
)

__all__ = ["InterventionResult", "compare_generation", "intervene", "normalize_neurons"]


def normalize_neurons(model: Any, neurons: NeuronSpec) -> dict[int, list[int]]:
    """``{layer: [neuron...]}`` from a mapping or (layer, neuron) pairs, checked against the model."""
    pairs: list[tuple[int, int]] = []
    if isinstance(neurons, Mapping):
        for layer, idx in neurons.items():
            pairs += [(int(layer), int(n)) for n in idx]
    else:
        for item in neurons:
            if hasattr(item, "layer") and hasattr(item, "neuron"):
                pairs.append((int(item.layer), int(item.neuron)))
            else:
                try:
                    layer, n = item
                except (TypeError, ValueError):
                    raise VocabError(
                        f"neurons must be {{layer: [index...]}} or (layer, index) pairs; got {item!r}") from None
                pairs.append((int(layer), int(n)))
    if not pairs:
        raise VocabError("no neurons given")
    d_mlp = int(model.cfg.d_mlp)
    out: dict[int, list[int]] = {}
    for layer, n in pairs:
        _check_layer(model, layer)
        if not 0 <= n < d_mlp:
            raise ShapeError(f"neuron {n} of layer {layer} is out of range; d_mlp is {d_mlp}")
        out.setdefault(layer, [])
        if n not in out[layer]:
            out[layer].append(n)
    return {layer: sorted(v) for layer, v in sorted(out.items())}


@torch.inference_mode()
def _max_scaled(model: Any, reference: Tensor, layers: Iterable[int]) -> dict[int, float]:
    names = {hook_name("neuron", x): x for x in layers}
    _, cache = model.run_with_cache(reference, names_filter=lambda n: n in names)
    norms = value_norms(model)
    return {x: float((cache[n][0, -1].float().abs() * norms[x]).max()) for n, x in names.items()}


@contextmanager
def intervene(
    model: Any,
    neurons: NeuronSpec,
    *,
    mode: str = "promote",
    value: float | None = None,
    reference: Any = None,
    eps: float = 0.01,
) -> Iterator[dict[int, dict[int, float]]]:
    """Set chosen neurons' coefficients at every position while the context is open (LM-Debugger).

    ``promote``: coefficient ``(max_j |m_j| ||v_j|| + eps) / ||v_i||``, where the maximum is over the neuron's
    layer at the last position of ``reference`` (the prompt, unintervened), so the neuron becomes its layer's
    dominant sub-update. ``suppress``: 0. ``set``: ``value``. Yields ``{layer: {neuron: coefficient}}``.
    """
    if mode not in INTERVENTIONS:
        raise unknown("intervention", mode, INTERVENTIONS)
    chosen = normalize_neurons(model, neurons)
    coefs: dict[int, dict[int, float]] = {}
    if mode == "suppress":
        coefs = {layer: dict.fromkeys(idx, 0.0) for layer, idx in chosen.items()}
    elif mode == "set":
        if value is None:
            raise VocabError("mode='set' needs value=<coefficient>")
        coefs = {layer: dict.fromkeys(idx, float(value)) for layer, idx in chosen.items()}
    else:
        if value is not None:
            coefs = {layer: dict.fromkeys(idx, float(value)) for layer, idx in chosen.items()}
        else:
            if reference is None:
                raise VocabError(
                    "mode='promote' needs reference=<the prompt> to find each layer's largest scaled coefficient "
                    "(LM-Debugger), or an explicit value="
                )
            ref = _as_tokens(model, reference)
            maxima = _max_scaled(model, ref, chosen)
            norms = value_norms(model)
            coefs = {layer: {n: (maxima[layer] + eps) / max(float(norms[layer, n]), 1e-12) for n in idx}
                     for layer, idx in chosen.items()}

    def make_hook(layer_coefs: dict[int, float]):
        idx = torch.tensor(list(layer_coefs))
        vals = torch.tensor(list(layer_coefs.values()))

        def hook(act: Tensor, hook: Any) -> Tensor:
            act = act.clone()
            act[..., idx] = vals.to(act.dtype).to(act.device)
            return act

        return hook

    fwd = [(hook_name("neuron", layer), make_hook(c)) for layer, c in coefs.items()]
    with model.hooks(fwd_hooks=fwd):  # removes exactly these hooks on exit, also on error
        yield coefs


@dataclass(frozen=True)
class InterventionResult:
    """Greedy continuations of one prompt before and after an intervention, and the top next tokens."""

    prompt: str
    mode: str
    neurons: dict[int, list[int]]
    coefficients: dict[int, dict[int, float]]
    before: str
    after: str
    top_before: tuple[TokenLogit, ...]
    top_after: tuple[TokenLogit, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt, "mode": self.mode, "before": self.before, "after": self.after,
            "neurons": {str(k): v for k, v in self.neurons.items()},
            "coefficients": {str(k): {str(n): c for n, c in v.items()} for k, v in self.coefficients.items()},
            "top_before": [t.__dict__ for t in self.top_before], "top_after": [t.__dict__ for t in self.top_after],
        }


@torch.inference_mode()
def _greedy(model: Any, toks: Tensor, max_new_tokens: int) -> Tensor:
    out = model.generate(toks, max_new_tokens=max_new_tokens, do_sample=False, stop_at_eos=False, verbose=False)
    return out[0, toks.shape[1] :]


def compare_generation(
    model: Any,
    prompt: Any,
    neurons: NeuronSpec,
    *,
    mode: str = "promote",
    value: float | None = None,
    max_new_tokens: int = 10,
    top: int = 5,
    prepend_bos: bool = True,
    token_strings: Sequence[str] | None = None,
) -> InterventionResult:
    """Greedy continuation and top next tokens of ``prompt`` without and with `intervene` (LM-Debugger's view)."""
    toks = _as_tokens(model, prompt, prepend_bos=prepend_bos)
    strings = vocab_strings(model, token_strings)
    if max_new_tokens < 1:
        raise VocabError(f"max_new_tokens must be >= 1; got {max_new_tokens}")

    def top_next() -> tuple[TokenLogit, ...]:
        with torch.inference_mode():
            lg = model(toks)[0, -1].float()
        v, i = lg.topk(top)
        return tuple(TokenLogit(int(a), strings[int(a)], float(b)) for b, a in zip(v, i))

    def text(ids: Tensor) -> str:
        return "".join(strings[int(i)] for i in ids)

    before_top, before = top_next(), text(_greedy(model, toks, max_new_tokens))
    with intervene(model, neurons, mode=mode, value=value, reference=toks) as coefs:
        after_top, after = top_next(), text(_greedy(model, toks, max_new_tokens))
    prompt_text = prompt if isinstance(prompt, str) else text(toks[0])
    return InterventionResult(prompt_text, mode, normalize_neurons(model, neurons), coefs, before, after,
                              before_top, after_top)
