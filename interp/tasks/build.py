"""Building `PromptPairs` by hand: from prompt texts (`pairs_from_text`) or token ids (`pairs_from_tokens`).

Every check runs before any forward pass: pairs of equal token length (the error names the pair and lists both
token sequences), the same length for every pair, answers that are single tokens (or ``multi_token="first"``),
every id inside ``[0, d_vocab)``, matching list lengths, no empty lists. Answers may be strings or ids, as a list,
tuple, numpy array or tensor. ``where`` (internal) replaces ``pair i`` in messages, e.g. by a file's line numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import TaskError, unknown
from interp.tasks.base import PromptPairs, encode, get_tokenizer

__all__ = ["MULTI_TOKEN", "answer_ids", "default_position_labels", "pairs_from_text", "pairs_from_tokens",
           "resolve_prepend_bos", "token_rows"]

MULTI_TOKEN = ("error", "first")


def _where(where: Sequence[str] | None, i: int) -> str:
    return where[i] if where is not None else f"pair {i}"


def _d_vocab(model: Any) -> int:
    cfg = getattr(model, "cfg", None)
    if cfg is None or getattr(cfg, "d_vocab", None) is None:
        raise TaskError(f"expected a model with cfg.d_vocab (a TransformerBridge); got {type(model).__name__}")
    return int(cfg.d_vocab)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def token_rows(x: Any, what: str) -> list[list[int]]:
    """``x`` (a ``[batch pos]`` tensor or array, or a list of id sequences) as a list of int lists."""
    if isinstance(x, (Tensor, np.ndarray)):
        if x.ndim != 2:
            raise TaskError(f"{what} token ids must be 2-D [batch pos]; got shape {tuple(x.shape)}")
        if isinstance(x, Tensor) and (x.is_floating_point() or x.is_complex()) or (
                isinstance(x, np.ndarray) and x.dtype.kind not in "iu"):
            raise TaskError(f"{what} token ids must be integers; got dtype {x.dtype}")
        rows = [[int(v) for v in row] for row in x.tolist()]
    elif isinstance(x, (str, bytes)) or not isinstance(x, Sequence):
        raise TaskError(f"{what} must be a list of token-id lists, an array or a tensor; got {type(x).__name__}")
    else:
        rows = []
        for i, row in enumerate(x):
            vals = row.tolist() if isinstance(row, (Tensor, np.ndarray)) else row
            if isinstance(vals, (str, bytes)) or not isinstance(vals, Sequence) or not all(_is_int(v) for v in vals):
                raise TaskError(f"{what} prompt {i} must be a sequence of integer token ids; got {row!r}")
            rows.append([int(v) for v in vals])
    if not rows:
        raise TaskError(f"no {what} prompts: the list is empty")
    if any(not r for r in rows):
        raise TaskError(f"{what} prompt {next(i for i, r in enumerate(rows) if not r)} has no tokens")
    return rows


def _check_range(rows: Sequence[Sequence[int]], d_vocab: int, what: str, where: Sequence[str] | None) -> None:
    for i, row in enumerate(rows):
        bad = [v for v in row if not 0 <= v < d_vocab]
        if bad:
            raise TaskError(f"{what} of {_where(where, i)} holds token id(s) {bad[:5]} outside the vocabulary "
                            f"[0, {d_vocab})")


def answer_ids(model: Any, answers: Any, n: int, what: str = "answers", *, multi_token: str = "error",
               where: Sequence[str] | None = None) -> list[int]:
    """``n`` answer ids from strings (one token each) or ids (list, tuple, array or tensor), checked in range."""
    if multi_token not in MULTI_TOKEN:
        raise unknown("multi_token mode", multi_token, MULTI_TOKEN)
    if isinstance(answers, (Tensor, np.ndarray)):
        if answers.ndim != 1:
            raise TaskError(f"{what} must be 1-D (one answer per pair); got shape {tuple(answers.shape)}")
        if isinstance(answers, Tensor) and answers.is_floating_point() or (
                isinstance(answers, np.ndarray) and answers.dtype.kind not in "iuU"):
            raise TaskError(f"{what} must be token ids (integers) or strings; got dtype {answers.dtype}")
        answers = answers.tolist()
    elif isinstance(answers, (str, bytes)) or not isinstance(answers, Sequence):
        raise TaskError(f"{what} must be a list, tuple, array or tensor with one answer per pair; "
                        f"got {type(answers).__name__}")
    answers = list(answers)
    if len(answers) != n:
        raise TaskError(f"{len(answers)} {what} for {n} prompt pairs; give exactly one per pair")
    d_vocab = _d_vocab(model)
    out = []
    for i, a in enumerate(answers):
        if _is_int(a):
            v = int(a)
        elif isinstance(a, str):
            tok = get_tokenizer(model)
            ids = tok(a, add_special_tokens=False)["input_ids"]
            if not ids:
                raise TaskError(f"the {what[:-1]} of {_where(where, i)} ({a!r}) is empty after tokenization")
            if len(ids) != 1 and multi_token == "error":
                pieces = tok.convert_ids_to_tokens(ids)
                raise TaskError(
                    f"the {what[:-1]} of {_where(where, i)}, {a!r}, is {len(ids)} tokens {pieces} (ids {ids}), not "
                    "one; give a single-token answer (often with a leading space, e.g. ' Paris'), its token id, or "
                    "multi_token='first' to score the first token"
                )
            v = int(ids[0])
        else:
            raise TaskError(f"the {what[:-1]} of {_where(where, i)} must be a string or a token id; got {a!r}")
        if not 0 <= v < d_vocab:
            raise TaskError(f"the {what[:-1]} of {_where(where, i)} is token id {v}, outside the vocabulary "
                            f"[0, {d_vocab})")
        out.append(v)
    return out


def resolve_prepend_bos(model: Any, prepend_bos: bool | None) -> bool:
    """The BOS rule of ``model.to_tokens``: ``prepend_bos=None`` means ``model.cfg.default_prepend_bos``."""
    if prepend_bos is None:
        return bool(getattr(getattr(model, "cfg", None), "default_prepend_bos", True))
    return bool(prepend_bos)


def default_position_labels(model: Any, rows: Sequence[Sequence[int]], *, bos: bool = False) -> tuple[str, ...]:
    """The clean prompts' token at each position where a tokenizer exists and every prompt shares it, else
    ``pos i``; ``BOS`` for a prepended BOS; duplicates get their index (``the[4]``)."""
    tok = getattr(model, "tokenizer", None)
    labels = []
    for j in range(len(rows[0])):
        ids = {r[j] for r in rows}
        if bos and j == 0:
            labels.append("BOS")
        elif tok is not None and len(ids) == 1:
            text = tok.decode([next(iter(ids))]).strip()
            labels.append(text or f"pos {j}")
        else:
            labels.append(f"pos {j}")
    counts = Counter(labels)
    return tuple(f"{lab}[{j}]" if counts[lab] > 1 else lab for j, lab in enumerate(labels))


def _check_labels(labels: Sequence[str] | None, seq: int) -> tuple[str, ...] | None:
    if labels is None:
        return None
    labels = tuple(str(x) for x in labels)
    if len(labels) != seq:
        raise TaskError(f"{len(labels)} position labels for prompts of {seq} tokens; give one label per position")
    return labels


def _check_groups(groups: Sequence[str] | None, n: int) -> tuple[str, ...]:
    if groups is None:
        return ()
    if isinstance(groups, str) or len(groups) != n:
        raise TaskError(f"groups must be a list with one name per pair ({n}); got {groups!r:.80}")
    out = tuple(str(g) for g in groups)
    if any(not g for g in out):
        raise TaskError("group names must be non-empty strings")
    return out


def _greedy(model: Any, rows: list[list[int]]) -> list[int]:
    from interp.tasks.base import run_last_logits

    return run_last_logits(model, torch.tensor(rows)).argmax(-1).tolist()


def _assemble(model: Any, clean: list[list[int]], corrupt: list[list[int]], answers: Any, corrupt_answers: Any, *,
              labels: tuple[str, ...], name: str, groups: tuple[str, ...], texts: tuple[tuple, tuple] = ((), ()),
              multi_token: str = "error", where: Sequence[str] | None = None) -> PromptPairs:
    n = len(clean)
    ans = answer_ids(model, answers, n, "answers", multi_token=multi_token, where=where)
    cans = (None if corrupt_answers is None else
            answer_ids(model, corrupt_answers, n, "corrupt_answers", multi_token=multi_token, where=where))
    if cans is None:  # after every check: the model's own top-1 token on each corrupt prompt
        cans = _greedy(model, corrupt)
    return PromptPairs(clean_tokens=torch.tensor(clean, dtype=torch.long),
                       corrupt_tokens=torch.tensor(corrupt, dtype=torch.long),
                       clean_answers=torch.tensor(ans, dtype=torch.long),
                       corrupt_answers=torch.tensor(cans, dtype=torch.long),
                       position_labels=labels, task=str(name), clean=texts[0], corrupt=texts[1], groups=groups)


def _check_pairs(clean: list[list[int]], corrupt: list[list[int]], show: Any, where: Sequence[str] | None) -> None:
    if len(clean) != len(corrupt):
        raise TaskError(f"{len(clean)} clean prompts but {len(corrupt)} corrupt prompts; give one corrupt per clean")
    for i, (c, k) in enumerate(zip(clean, corrupt)):
        if len(c) != len(k):
            raise TaskError(
                f"{_where(where, i)}: the clean prompt is {len(c)} tokens {show(c)} but the corrupt prompt is "
                f"{len(k)} tokens {show(k)}; patching needs clean and corrupt prompts of equal token length")
    lengths = Counter(len(c) for c in clean)
    if len(lengths) > 1:
        common = lengths.most_common(1)[0][0]
        odd = next(i for i, c in enumerate(clean) if len(c) != common)
        raise TaskError(f"{_where(where, odd)} is {len(clean[odd])} tokens {show(clean[odd])} while most pairs are "
                        f"{common} tokens; every pair must have the same length (split them into one PromptPairs "
                        "per length, or rephrase)")


def pairs_from_tokens(model: Any, clean: Any, corrupt: Any, answers: Any, corrupt_answers: Any = None, *,
                      position_labels: Sequence[str] | None = None, name: str = "custom",
                      groups: Sequence[str] | None = None, where: Sequence[str] | None = None) -> PromptPairs:
    """`PromptPairs` from token ids; see `PromptPairs.from_tokens`."""
    d_vocab = _d_vocab(model)
    c_rows, k_rows = token_rows(clean, "clean"), token_rows(corrupt, "corrupt")
    _check_pairs(c_rows, k_rows, lambda r: r, where)
    _check_range(c_rows, d_vocab, "the clean prompt", where)
    _check_range(k_rows, d_vocab, "the corrupt prompt", where)
    labels = _check_labels(position_labels, len(c_rows[0])) or default_position_labels(model, c_rows)
    return _assemble(model, c_rows, k_rows, answers, corrupt_answers, labels=labels, name=name,
                     groups=_check_groups(groups, len(c_rows)), where=where)


def _texts(x: Any, what: str) -> list[str]:
    if isinstance(x, str) or not isinstance(x, Sequence) or not all(isinstance(t, str) for t in x):
        raise TaskError(f"{what} must be a list of strings; got {type(x).__name__}")
    if not x:
        raise TaskError(f"no {what} prompts: the list is empty")
    return list(x)


def pairs_from_text(model: Any, clean: Sequence[str], corrupt: Sequence[str], answers: Any,
                    corrupt_answers: Any = None, *, prepend_bos: bool | None = None,
                    position_labels: Sequence[str] | None = None, name: str = "custom",
                    groups: Sequence[str] | None = None, multi_token: str = "error",
                    where: Sequence[str] | None = None) -> PromptPairs:
    """`PromptPairs` from prompt texts; see `PromptPairs.from_text`."""
    if multi_token not in MULTI_TOKEN:
        raise unknown("multi_token mode", multi_token, MULTI_TOKEN)
    tok = get_tokenizer(model)
    clean_t, corrupt_t = _texts(clean, "clean"), _texts(corrupt, "corrupt")
    if len(clean_t) != len(corrupt_t):
        raise TaskError(f"{len(clean_t)} clean prompts but {len(corrupt_t)} corrupt prompts; give one corrupt per "
                        "clean")
    bos = resolve_prepend_bos(model, prepend_bos)
    c_rows, _ = encode(tok, clean_t, prepend_bos=bos)
    k_rows, _ = encode(tok, corrupt_t, prepend_bos=bos)
    _check_pairs(c_rows, k_rows, lambda r: tok.convert_ids_to_tokens(r), where)
    d_vocab = _d_vocab(model)
    _check_range(c_rows, d_vocab, "the clean prompt", where)
    _check_range(k_rows, d_vocab, "the corrupt prompt", where)
    labels = _check_labels(position_labels, len(c_rows[0])) or default_position_labels(model, c_rows, bos=bos)
    return _assemble(model, c_rows, k_rows, answers, corrupt_answers, labels=labels, name=name,
                     groups=_check_groups(groups, len(c_rows)), texts=(tuple(clean_t), tuple(corrupt_t)),
                     multi_token=multi_token, where=where)
