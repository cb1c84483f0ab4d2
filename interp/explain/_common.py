"""Pieces shared by the `interp.explain` modules: the error class, prompt encoding with character spans, targets."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from interp.errors import InterpError

__all__ = ["ExplainError", "Encoded", "encode_prompt", "single_token", "check_finite", "check_context", "label_tokens"]


class ExplainError(InterpError, ValueError):
    """Bad input to an explanation method (targets, steps, stimuli, steering settings, sample counts)."""


def check_finite(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as e:
        raise ExplainError(f"{name} must be a finite number; got {value!r}") from e
    if not math.isfinite(v):
        raise ExplainError(f"{name} must be a finite number; got {value!r}")
    return v


def check_context(model: Any, ids: Sequence[Sequence[int]], *, what: str = "a prompt") -> None:
    """Refuse token sequences longer than the model's context (``cfg.n_ctx``) with the length and the limit, before
    a forward pass fails deep inside the model."""
    n_ctx = int(getattr(model.cfg, "n_ctx", 0) or 0)
    longest = max((len(x) for x in ids), default=0)
    if n_ctx and longest > n_ctx:
        raise ExplainError(f"{what} has {longest} tokens, more than the model's context of {n_ctx} tokens; use "
                           "shorter inputs or a model with a longer context")


@dataclass(frozen=True)
class Encoded:
    """One prompt as token ids with, per token, its string, its word index and its segment index (-1: BOS/none)."""

    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    words: tuple[str, ...]
    word_of: tuple[int, ...]
    segments: tuple[str, ...]
    segment_of: tuple[int, ...]


def _tok_strings(model: Any, ids: Sequence[int]) -> list[str]:
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        return [f"<{i}>" for i in ids]
    return [tok.decode([i]) for i in ids]


def _owner(spans: list[tuple[int, int]], start: int, end: int, text: str) -> int:
    """Index of the span holding the first non-space character of [start, end) (or start); -1 when none."""
    c = start
    while c < end and text[c].isspace():
        c += 1
    if c >= end:
        c = start
    for i, (s, e) in enumerate(spans):
        if s <= c < e:
            return i
    return -1


def encode_prompt(model: Any, prompt: Any, *, prepend_bos: bool = True, segment_names: Sequence[str] | None = None
                  ) -> Encoded:
    """Encode a prompt: a string, a list of strings (segments, e.g. demonstrations then the query, concatenated as
    given), or a sequence of token ids (no words or segments then)."""
    if isinstance(prompt, str):
        segs = [prompt]
    elif isinstance(prompt, Sequence) and prompt and all(isinstance(s, str) for s in prompt):
        segs = list(prompt)
    elif isinstance(prompt, Sequence) and prompt and all(isinstance(t, int) or hasattr(t, "__index__") for t in prompt):
        ids = [int(t) for t in prompt]
        d_vocab = int(model.cfg.d_vocab)
        bad = [t for t in ids if not 0 <= t < d_vocab]
        if bad:
            raise ExplainError(f"token ids {bad[:5]} are outside the vocabulary [0, {d_vocab})")
        strs = _tok_strings(model, ids)
        return Encoded(tuple(ids), tuple(strs), tuple(strs), tuple(range(len(ids))), (), (-1,) * len(ids))
    else:
        raise ExplainError(f"a prompt must be a non-empty string, a list of strings (segments) or a list of token ids; "
                           f"got {type(prompt).__name__} {str(prompt)[:60]!r}")
    from interp.tasks.base import encode, get_tokenizer

    tok = get_tokenizer(model)
    text = "".join(segs)
    if not text.strip():
        raise ExplainError("empty prompt")
    bos = prepend_bos and tok.bos_token_id is not None
    ids_l, offs_l = encode(tok, [text], prepend_bos=bos)
    ids, offs = ids_l[0], offs_l[0]
    word_spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    words = [text[s:e] for s, e in word_spans]
    seg_spans, c = [], 0
    for s in segs:
        seg_spans.append((c, c + len(s)))
        c += len(s)
    word_of, seg_of = [], []
    for i, (s, e) in enumerate(offs):
        if bos and i == 0:
            word_of.append(-1)
            seg_of.append(-1)
            continue
        word_of.append(_owner(word_spans, s, e, text))
        seg_of.append(_owner(seg_spans, s, e, text))
    names = list(segment_names) if segment_names is not None else [f"seg{i}" for i in range(len(segs))]
    if len(names) != len(segs):
        raise ExplainError(f"{len(names)} segment names for {len(segs)} segments")
    return Encoded(tuple(ids), tuple(_tok_strings(model, ids)), tuple(words), tuple(word_of), tuple(names),
                   tuple(seg_of))


def single_token(model: Any, target: Any, *, what: str = "target") -> int:
    """A token id from an int or a string that must encode to exactly one token."""
    if isinstance(target, bool):
        raise ExplainError(f"{what} must be a token id or a single-token string; got {target!r}")
    if isinstance(target, int) or hasattr(target, "__index__") and not isinstance(target, str):
        t = int(target)
        d_vocab = int(model.cfg.d_vocab)
        if not 0 <= t < d_vocab:
            raise ExplainError(f"{what} token id {t} is outside the vocabulary [0, {d_vocab})")
        return t
    if isinstance(target, str):
        tok = getattr(model, "tokenizer", None)
        if tok is None:
            raise ExplainError(f"{what} {target!r} is a string but the model has no tokenizer; pass a token id")
        ids = tok(target, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            pieces = [tok.decode([i]) for i in ids]
            raise ExplainError(f"{what} {target!r} is not a single token: it encodes to {len(ids)} tokens {pieces}; "
                               f"use a single-token string (often with a leading space, e.g. ' Paris') or a token id")
        return int(ids[0])
    raise ExplainError(f"{what} must be a token id or a single-token string; got {type(target).__name__}")


def label_tokens(model: Any, labels: Sequence[str]) -> list[int]:
    """Single-token ids of label words (``[" negative", " positive"]``)."""
    return [single_token(model, w, what="label word") for w in labels]
