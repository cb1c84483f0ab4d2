"""Greedy generation of many continuations of one shared prefix, with per-step MLP observation.

Few-shot prompts share a long prefix (the exemplars) and differ only in the final question. With a Hugging Face
backed bridge the prefix is run once and its KV cache reused: each batch copies it, appends left-padded questions
(padding masked out, positions counted from the real tokens, so every row computes exactly what it would alone) and
decodes greedily one token per step through ``bridge(..., past_key_values=...)``. The cache is first checked once
per model (4 tokens run whole and as 2 + 2 through the cache must give the same logits); bridges that return no KV
cache (native models) or one that does not reproduce the uncached pass (an empty cache, as transformers 5.24 returns
through TransformerBridge 4.3) use a plain loop: one prompt at a time, the whole sequence re-run every step.

``observe(layer, act, rows)`` is called at every step for every layer with ``act = hook_post`` ``[n_rows d_mlp]``
at the position that predicts the next generated token, for the rows (prompt indices) still generating: this is
where the dominant sub-updates of Rai & Yao's Algorithm one are read. Hooks already on the model (corruptions,
interventions) stay active throughout, the prefix included.
"""

from __future__ import annotations

import copy
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from interp.errors import InterpError
from interp.sites import hook_name

__all__ = ["Generation", "greedy_generate", "Observer"]

log = logging.getLogger(__name__)

Observer = Callable[[int, Tensor, Tensor], None]


@dataclass(frozen=True)
class Generation:
    """One continuation: its token ids, text, and why it stopped (``stop``, ``eos`` or ``length``)."""

    tokens: tuple[int, ...]
    text: str
    stopped: str


class GenerationError(InterpError, ValueError):
    """Bad generation settings (no prompts, non-positive lengths, prompts beyond the context window)."""


def _strings(model: Any) -> list[str]:
    """Decoded token strings; ``<id>`` for every token of a model without a tokenizer."""
    from interp.vocab import vocab_strings

    if getattr(model, "tokenizer", None) is None:
        return [f"<{i}>" for i in range(int(model.cfg.d_vocab))]
    return vocab_strings(model)


def _eos(model: Any) -> int | None:
    tok = getattr(model, "tokenizer", None)
    return None if tok is None else tok.eos_token_id


def _observer_hooks(model: Any, observe: Observer | None, state: dict[str, Any]) -> list[tuple[str, Callable]]:
    if observe is None:
        return []

    def make(layer: int) -> Callable:
        def hook(act: Tensor, hook: Any) -> None:
            rows = state["rows"]
            if rows is not None and len(rows):
                observe(layer, act[state["active"], -1].float(), rows)

        return hook

    return [(hook_name("neuron", layer), make(layer)) for layer in range(int(model.cfg.n_layers))]


@torch.inference_mode()
def greedy_generate(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    prefix: Sequence[int] = (),
    max_new_tokens: int = 80,
    stop: Callable[[str], bool] | None = None,
    batch_size: int = 16,
    observe: Observer | None = None,
    use_cache: bool | None = None,
) -> list[Generation]:
    """Greedy continuations of ``prefix + prompt`` for every prompt (token ids), in input order.

    ``stop(text)`` ends a row once its generated text satisfies it (the EOS token always does).
    ``use_cache=None`` uses the KV-cached batched path when the model returns a cache, else the plain loop.
    """
    if not prompts:
        raise GenerationError("no prompts to generate from")
    if max_new_tokens < 1 or batch_size < 1:
        raise GenerationError(f"max_new_tokens and batch_size must be >= 1; got {max_new_tokens}, {batch_size}")
    prefix = [int(t) for t in prefix]
    prompts = [[int(t) for t in p] for p in prompts]
    if any(not p for p in prompts):
        raise GenerationError("every prompt needs at least one token (the prefix alone is not a prompt)")
    longest = len(prefix) + max(len(p) for p in prompts) + max_new_tokens
    n_ctx = int(getattr(model.cfg, "n_ctx", longest) or longest)
    if longest > n_ctx:
        raise GenerationError(f"prefix + prompt + {max_new_tokens} new tokens = {longest} tokens exceeds the "
                              f"model's context of {n_ctx}; shorten the exemplars or max_new_tokens")
    state: dict[str, Any] = {"rows": None, "active": None}
    hooks = _observer_hooks(model, observe, state)
    with model.hooks(fwd_hooks=hooks):
        cached = use_cache is not False and _supports_cache(model)
        if use_cache and not cached:
            raise GenerationError("use_cache=True, but this model returns no KV cache that reproduces its uncached "
                                  "forward pass (see the log); use use_cache=None or False")
        if cached:
            return _cached(model, prompts, prefix, _prefix_cache(model, prefix), max_new_tokens, stop, batch_size,
                           state)
        return _plain(model, prompts, prefix, max_new_tokens, stop, state)


def _prefix_cache(model: Any, prefix: list[int]) -> Any:
    if not prefix:
        return None
    return model(torch.tensor([prefix]), return_type="logits_and_cache")[1]


_CACHE_OK: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _supports_cache(model: Any) -> bool:
    """Whether ``model`` returns a KV cache that reproduces its uncached logits (checked once per model)."""
    try:
        return _CACHE_OK[model]
    except (KeyError, TypeError):
        pass
    ok = _check_cache(model)
    try:
        _CACHE_OK[model] = ok
    except TypeError:  # not weak-referenceable: check again next time
        pass
    return ok


@torch.inference_mode()
def _check_cache(model: Any) -> bool:
    """Run 4 tokens whole and as 2 + 2 through the returned KV cache; the last logits must agree.

    A bridge can return a cache object that its attention never fills (transformers 5.24 through
    TransformerBridge 4.3 returns an empty ``DynamicCache``): decoding from it silently gives wrong tokens, so such
    a cache is never used and generation falls back to the plain loop.
    """
    v = int(model.cfg.d_vocab)
    toks = torch.tensor([[i % v for i in (0, 1, 2, 3)]])
    out = model(toks[:, :2], return_type="logits_and_cache")
    if not (isinstance(out, tuple) and out[1] is not None):
        return False
    try:
        step, _ = model(toks[:, 2:], return_type="logits_and_cache", past_key_values=out[1],
                        attention_mask=torch.ones((1, 4), dtype=torch.long), position_ids=torch.arange(2, 4)[None])
    except Exception as e:  # noqa: BLE001 - any failure means: do not use the cache
        log.warning("KV-cached decoding failed on this model (%s: %s); generating without the cache (slower)",
                    type(e).__name__, e)
        return False
    logits = model(toks)
    full = logits[0, -1].float()
    err = float((step[0, -1].float() - full).abs().max())
    # fp32: the two paths agree to ~1e-6; half precision rounds differently but an unused cache is off by O(1)
    rel = 1e-3 if logits.dtype in (torch.float32, torch.float64) else 5e-2
    ok = err <= rel * max(1.0, float(full.abs().max()))
    if not ok:
        import transformers

        log.warning("this model's KV cache does not reproduce its uncached forward pass (max |delta logit| %.3g, "
                    "transformers %s); generating without the cache (slower). transformers<5.24 is known to work.",
                    err, transformers.__version__)
    return ok


def _finish(text_of: Callable[[list[int]], str], gen: list[int], tok: int, eos: int | None,
            stop: Callable[[str], bool] | None) -> str | None:
    if eos is not None and tok == eos:
        return "eos"
    if stop is not None and stop(text_of(gen)):
        return "stop"
    return None


def _plain(model: Any, prompts: list[list[int]], prefix: list[int], max_new: int,
           stop: Callable[[str], bool] | None, state: dict[str, Any]) -> list[Generation]:
    strings, eos = _strings(model), _eos(model)

    def text_of(ids: list[int]) -> str:
        return "".join(strings[i] for i in ids)

    out = []
    for i, p in enumerate(prompts):
        seq, gen, why = prefix + p, [], "length"
        state["rows"], state["active"] = torch.tensor([i]), torch.tensor([True])
        for _ in range(max_new):
            tok = int(model(torch.tensor([seq]))[0, -1].argmax())
            gen.append(tok)
            seq.append(tok)
            reason = _finish(text_of, gen, tok, eos, stop)
            if reason:
                why = reason
                break
        gen_text = text_of(gen[:-1] if why == "eos" else gen)
        out.append(Generation(tuple(gen), gen_text, why))
    state["rows"] = None
    return out


def _cached(model: Any, prompts: list[list[int]], prefix: list[int], prefix_cache: Any, max_new: int,
            stop: Callable[[str], bool] | None, batch_size: int, state: dict[str, Any]) -> list[Generation]:
    strings, eos = _strings(model), _eos(model)

    def text_of(ids: list[int]) -> str:
        return "".join(strings[i] for i in ids)

    n_pre = len(prefix)
    pad = 0 if eos is None else int(eos)
    results: list[Generation | None] = [None] * len(prompts)
    # longest first: batches of similar length waste less padding
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        b = len(idx)
        lens = [len(prompts[i]) for i in idx]
        width = max(lens)
        toks = torch.full((b, width), pad, dtype=torch.long)
        mask = torch.zeros((b, n_pre + width), dtype=torch.long)
        mask[:, :n_pre] = 1
        pos = torch.full((b, width), max(n_pre, 1) - 1, dtype=torch.long)  # pads: any position, they are masked
        for r, (i, n) in enumerate(zip(idx, lens)):
            toks[r, width - n :] = torch.tensor(prompts[i])
            mask[r, n_pre + width - n :] = 1
            pos[r, width - n :] = torch.arange(n_pre, n_pre + n)
        cache = None
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(b)
        rows = torch.tensor(idx)
        active = torch.ones(b, dtype=torch.bool)
        state["rows"], state["active"] = rows, active.clone()
        logits, cache = model(toks, return_type="logits_and_cache", past_key_values=cache, attention_mask=mask,
                              position_ids=pos)
        next_pos = pos[:, -1] + 1
        gens: list[list[int]] = [[] for _ in idx]
        why = ["length"] * b
        for step in range(max_new):
            nxt = logits[:, -1].argmax(-1)
            for r in range(b):
                if active[r]:
                    t = int(nxt[r])
                    gens[r].append(t)
                    reason = _finish(text_of, gens[r], t, eos, stop)
                    if reason:
                        why[r], active[r] = reason, False
            if not bool(active.any()) or step == max_new - 1:
                break
            state["rows"], state["active"] = rows[active], active.clone()
            mask = torch.cat([mask, torch.ones((b, 1), dtype=torch.long)], dim=1)
            logits, cache = model(nxt[:, None], return_type="logits_and_cache", past_key_values=cache,
                                  attention_mask=mask, position_ids=next_pos[:, None])
            next_pos = next_pos + 1
        for r, i in enumerate(idx):
            g = gens[r]
            results[i] = Generation(tuple(g), text_of(g[:-1] if why[r] == "eos" else g), why[r])
    state["rows"] = None
    return [r for r in results if r is not None]
