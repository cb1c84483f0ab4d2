"""Value vectors projected onto the vocabulary (Geva et al., EMNLP 2022): strings, value vectors, `top_tokens`.

The shared names of `interp.vocab` (`VocabError`, `TokenLogit`, `NORMS`, ...) live here; `scan`, `subupdates` and
`intervene` build on them. See `interp.vocab` for the method.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import InterpError, ShapeError, TaskError, unknown

__all__ = ["NORMS", "PRECISIONS", "INTERVENTIONS", "VocabError", "TokenLogit", "vocab_strings", "value_vectors",
           "value_norms", "project_values", "top_tokens"]


NORMS: tuple[str, ...] = ("raw", "final_norm")
PRECISIONS: tuple[str, ...] = ("auto", "exact", "bf16")
INTERVENTIONS: tuple[str, ...] = ("promote", "suppress", "set")

NeuronSpec = Mapping[int, Iterable[int]] | Iterable[tuple[int, int]]


class VocabError(InterpError, ValueError):
    """Bad input to vocabulary projection or interventions (k out of range, empty neuron set, bad mode...)."""


@dataclass(frozen=True)
class TokenLogit:
    """One entry of a projection: token id, its decoded string and its logit."""

    token_id: int
    token: str
    logit: float


# ------------------------------------------------------------------------------------------------ vocabulary strings

_VOCAB_CACHE: dict[int, tuple[Any, int, list[str]]] = {}


def vocab_strings(model: Any, token_strings: Sequence[str] | None = None) -> list[str]:
    """The decoded string of every token id ``0 .. d_vocab-1`` (cached per tokenizer).

    ``token_strings`` overrides the tokenizer (for models without one, e.g. hand-made test models). Ids the
    tokenizer does not know (padded vocabularies) become ``"<id N>"``.
    """
    d_vocab = int(model.cfg.d_vocab)
    if token_strings is not None:
        if len(token_strings) != d_vocab:
            raise ShapeError(f"token_strings has {len(token_strings)} entries; the model's d_vocab is {d_vocab}")
        return list(token_strings)
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise TaskError(
            "this model has no tokenizer, so token ids cannot be shown as text; load it with a tokenizer or pass "
            "token_strings=[one string per token id]"
        )
    hit = _VOCAB_CACHE.get(id(tok))
    if hit is not None and hit[0] is tok and hit[1] == d_vocab:
        return hit[2]
    n = min(len(tok), d_vocab)
    strings = tok.batch_decode([[i] for i in range(n)], clean_up_tokenization_spaces=False)
    strings += [f"<id {i}>" for i in range(n, d_vocab)]
    _VOCAB_CACHE[id(tok)] = (tok, d_vocab, strings)
    return strings


# ------------------------------------------------------------------------------------------------ projections


def _check_layer(model: Any, layer: int) -> int:
    n_layers = int(model.cfg.n_layers)
    if isinstance(layer, bool) or not 0 <= int(layer) < n_layers:
        raise ShapeError(f"layer {layer} is out of range; the model has layers 0..{n_layers - 1}")
    return int(layer)


def _w_out(model: Any, layer: int) -> Tensor:
    w = getattr(model.blocks[layer].mlp, "W_out", None)
    if w is None:
        raise ShapeError(f"block {layer} has no MLP W_out (attention-only model?); value vectors need MLP layers")
    return w.detach().float()


def value_vectors(model: Any, layer: int) -> Float[Tensor, "d_mlp d_model"]:
    """``W_out`` of ``layer``: row i is neuron i's value vector ``v_i``."""
    return _w_out(model, _check_layer(model, layer))


@torch.inference_mode()
def value_norms(model: Any) -> Float[Tensor, "layer d_mlp"]:
    """``||v_i||_2`` of every neuron of every layer."""
    return torch.stack([_w_out(model, layer).norm(dim=-1) for layer in range(int(model.cfg.n_layers))])


def _unembed(model: Any) -> Tensor:
    return model.W_U.detach().float()


def _apply_norm(model: Any, v: Tensor, norm: str) -> Tensor:
    if norm not in NORMS:
        raise unknown("projection norm", norm, NORMS)
    if norm == "raw":
        return v
    return model.ln_final(v).float()


@torch.inference_mode()
def project_values(
    model: Any, layer: int, neurons: Sequence[int] | None = None, *, norm: str = "raw"
) -> Float[Tensor, "neuron d_vocab"]:
    """Vocabulary logits ``v_i @ W_U`` (``norm="raw"``) or ``final_norm(v_i) @ W_U`` of neurons of ``layer``."""
    w = value_vectors(model, layer)
    if neurons is not None:
        idx = _check_indices(model, neurons)
        w = w[idx]
    return _apply_norm(model, w, norm) @ _unembed(model)


def _check_indices(model: Any, neurons: Sequence[int]) -> list[int]:
    d_mlp = int(model.cfg.d_mlp)
    idx = [int(n) for n in neurons]
    bad = [n for n in idx if not 0 <= n < d_mlp]
    if bad:
        raise ShapeError(f"neurons {bad[:5]} are out of range; d_mlp is {d_mlp}")
    return idx


def _check_k(k: int, d_vocab: int) -> int:
    if isinstance(k, bool) or int(k) != k or not 1 <= int(k) <= d_vocab:
        raise VocabError(f"k must be an integer in 1..d_vocab={d_vocab}; got {k!r}")
    return int(k)


def top_tokens(
    model: Any,
    layer: int,
    neuron: int,
    *,
    k: int = 20,
    norm: str = "raw",
    bottom: bool = False,
    token_strings: Sequence[str] | None = None,
) -> list[TokenLogit]:
    """The ``k`` tokens neuron ``(layer, neuron)`` promotes most (``bottom=True``: suppresses most), best first."""
    k = _check_k(k, int(model.cfg.d_vocab))
    logits = project_values(model, layer, [neuron], norm=norm)[0]
    vals, ids = tie_ordered_topk(-logits if bottom else logits, k)
    strings = vocab_strings(model, token_strings)
    sign = -1.0 if bottom else 1.0
    return [TokenLogit(int(i), strings[int(i)], sign * float(v)) for v, i in zip(vals, ids)]


def _as_tokens(model: Any, tokens: Any, *, prepend_bos: bool = True) -> Tensor:
    if isinstance(tokens, str):
        if getattr(model, "tokenizer", None) is None:
            raise TaskError("text input needs a model with a tokenizer; pass token ids instead")
        return model.to_tokens(tokens, prepend_bos=prepend_bos)
    t = torch.as_tensor(tokens)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[0] != 1:
        raise ShapeError(f"expected one prompt ([pos] or [1 pos] token ids, or a string); got shape {tuple(t.shape)}")
    d_vocab = int(model.cfg.d_vocab)
    if t.numel() == 0 or int(t.min()) < 0 or int(t.max()) >= d_vocab:
        raise ShapeError(f"token ids must be a non-empty sequence in [0, {d_vocab})")
    return t.long()


def _order_ties(vals: Tensor, ids: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` largest of ``vals`` [n c] (token ids ``ids``), exact ties broken by the lower token id."""
    by_id = ids.argsort(dim=-1)
    vals, ids = vals.gather(-1, by_id), ids.gather(-1, by_id)
    order = vals.argsort(dim=-1, descending=True, stable=True)[..., :k]
    return vals.gather(-1, order), ids.gather(-1, order)


def tie_ordered_topk(scores: Tensor, k: int, *, extra: int = 8) -> tuple[Tensor, Tensor]:
    """``scores.topk(k)`` with a deterministic order: equal scores are ranked by the lower index (``torch.topk``
    leaves ties in an unspecified, thread-dependent order). Ties are resolved among the ``k + extra`` largest."""
    extra = max(0, min(extra, scores.shape[-1] - k))
    vals, ids = scores.topk(k + extra, dim=-1)
    return _order_ties(vals, ids, k)
