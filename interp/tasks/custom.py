"""Tasks from your own data: `PairsTask` (clean/corrupt pairs) and `OperandTask` (an operand grid for the neuron
heuristics), built from Python lists or read from a JSONL/CSV file (`load_task_file`, ``--task file:PATH``).

`PairsTask` rows are ``clean``, ``corrupt``, ``answer``, optional ``corrupt_answer`` and ``group``; prompts are texts
(tokenized with the model's tokenizer) or token-id lists (tokenizer-free models). ``split="discovery"`` is the first
half of each group's pairs (in the given order), ``"evaluation"`` the second half (disjoint), ``"all"`` (default)
every pair. The mean-ablation reference set is ``reference`` when given, else every clean and corrupt prompt.

`OperandTask` rows are ``(a, b, result, tokens, answer_token)`` per operator (``op``): the grid the classifier,
K/KV maps and knockouts run on. Its pairs are drawn as for arithmetic: correct prompts in a seed-42 shuffle,
discovery = the first ``n_per_op``, evaluation = the next ``n_per_op``, corrupt partners with another answer token.

Bad data raises `TaskError` naming the pair (or the file's line): missing columns, unequal clean/corrupt lengths,
answers that are not single tokens, ids outside the vocabulary (before any forward pass), empty lists or files,
mismatched list lengths, a grid with fewer than ``MIN_GRID`` prompts.
"""

from __future__ import annotations

import random
import weakref
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import TaskError, unknown
from interp.tasks.base import PromptPairs, encode, get_tokenizer, run_last_logits
from interp.tasks.build import (
    MULTI_TOKEN,
    _is_int,
    answer_ids,
    pairs_from_text,
    pairs_from_tokens,
    resolve_prepend_bos,
)

__all__ = ["GridPrompt", "MIN_GRID", "OperandTask", "PAIR_SPLITS", "PairsTask"]

PAIR_SPLITS = ("all", "discovery", "evaluation")
MIN_GRID = 3


class _PerModel:
    """Values cached per model object (checked by weakref, so a recycled id never returns a stale value)."""

    def __init__(self) -> None:
        self._d: dict[tuple, tuple[Any, Any]] = {}

    def get(self, key: tuple, model: Any) -> Any:
        hit = self._d.get((id(model), *key))
        return hit[1] if hit is not None and hit[0]() is model else None

    def put(self, key: tuple, model: Any, value: Any) -> Any:
        try:
            ref: Any = weakref.ref(model)
        except TypeError:
            ref = lambda m=model: m  # noqa: E731 - objects without weakref support are kept alive
        self._d[(id(model), *key)] = (ref, value)
        return value


def _check_split(split: str) -> str:
    if split not in PAIR_SPLITS:
        raise unknown("split", split, PAIR_SPLITS)
    return split


def _is_text(x: Any) -> bool:
    return isinstance(x, str)


class PairsTask:
    """A task made of your own clean/corrupt pairs (texts or token ids); implements `interp.tasks.Task`."""

    def __init__(self, clean: Sequence[Any], corrupt: Sequence[Any], answers: Sequence[Any],
                 corrupt_answers: Sequence[Any] | None = None, groups: Sequence[str] | None = None, *,
                 name: str = "custom", reference: Sequence[Any] | None = None, prepend_bos: bool | None = None,
                 multi_token: str = "error", position_labels: Sequence[str] | None = None,
                 where: Sequence[str] | None = None) -> None:
        def as_list(x: Any, what: str) -> list[Any]:
            if isinstance(x, (Tensor, np.ndarray)):
                return x.tolist()
            if isinstance(x, (str, bytes)) or not isinstance(x, Sequence):
                raise TaskError(f"{what} must be a list with one entry per pair; got {type(x).__name__}")
            return list(x)

        self.clean, self.corrupt = as_list(clean, "clean"), as_list(corrupt, "corrupt")
        self.answers = as_list(answers, "answers")
        self.corrupt_answers = None if corrupt_answers is None else as_list(corrupt_answers, "corrupt_answers")
        n = len(self.clean)
        if n == 0:
            raise TaskError("no prompt pairs: the clean list is empty")
        for what, xs in (("corrupt prompts", self.corrupt), ("answers", self.answers),
                         ("corrupt_answers", self.corrupt_answers), ("groups", groups), ("where", where)):
            if xs is not None and len(xs) != n:
                raise TaskError(f"{len(xs)} {what} for {n} clean prompts; give exactly one per pair")
        kinds = {_is_text(x) for x in (*self.clean, *self.corrupt)}
        if len(kinds) != 1:
            raise TaskError("mix of text prompts and token-id prompts; give all prompts as texts or all as id lists")
        self.is_text = kinds == {True}
        if multi_token not in MULTI_TOKEN:
            raise unknown("multi_token mode", multi_token, MULTI_TOKEN)
        self.groups = tuple(str(g) for g in groups) if groups is not None else ("all",) * n
        if any(not g for g in self.groups):
            raise TaskError("group names must be non-empty strings")
        self._operators = tuple(dict.fromkeys(self.groups)) if groups is not None else ()
        self._name, self.reference, self.prepend_bos = str(name), reference, prepend_bos
        self.multi_token, self.position_labels = multi_token, position_labels
        self.where = tuple(where) if where is not None else tuple(f"pair {i}" for i in range(n))
        self._cache = _PerModel()

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]], **kwargs: Any) -> PairsTask:
        """From dicts with ``clean``, ``corrupt``, ``answer`` and optional ``corrupt_answer``, ``group``."""
        from interp.tasks.files import pairs_columns

        return cls(**pairs_columns([(f"row {i}", r) for i, r in enumerate(rows)]), **kwargs)

    @classmethod
    def from_file(cls, path: Any, **kwargs: Any) -> PairsTask:
        """From a JSONL or CSV file (one pair per line; columns as in `from_rows`); errors name the line."""
        from interp.tasks.files import pairs_columns, read_rows

        rows = read_rows(path)
        kwargs.setdefault("name", f"file:{path}")
        return cls(**pairs_columns(rows), **kwargs)

    # ------------------------------------------------------------------------------------------- protocol
    @property
    def name(self) -> str:
        return self._name

    @property
    def operators(self) -> tuple[str, ...]:
        """The group names (``()`` when no groups were given: the pairs are one pool)."""
        return self._operators

    @property
    def n(self) -> int:
        return len(self.clean)

    def __repr__(self) -> str:
        kind = "text" if self.is_text else "token"
        return f"PairsTask({self.name!r}, {self.n} {kind} pairs, groups={list(dict.fromkeys(self.groups))})"

    def all_pairs(self, model: Any) -> PromptPairs:
        """Every pair, tokenized for ``model`` and checked (cached per model)."""
        hit = self._cache.get(("pairs",), model)
        if hit is not None:
            return hit
        common = dict(position_labels=self.position_labels, name=self.name, groups=self.groups, where=self.where)
        if self.is_text:
            p = pairs_from_text(model, self.clean, self.corrupt, self.answers, self.corrupt_answers,
                                prepend_bos=self.prepend_bos, multi_token=self.multi_token, **common)
        else:
            p = pairs_from_tokens(model, self.clean, self.corrupt, self.answers, self.corrupt_answers, **common)
            p = PromptPairs(**{**p.__dict__, "clean": tuple(tuple(r) for r in p.clean_tokens.tolist()),
                               "corrupt": tuple(tuple(r) for r in p.corrupt_tokens.tolist())})
        return self._cache.put(("pairs",), model, p)

    def split_indices(self, split: str) -> list[int]:
        """Pair indices of ``split``: per group, the first half (discovery) or the second half (evaluation)."""
        _check_split(split)
        by: dict[str, list[int]] = {}
        for i, g in enumerate(self.groups):
            by.setdefault(g, []).append(i)
        out = []
        for idx in by.values():
            half = (len(idx) + 1) // 2
            out += idx if split == "all" else idx[:half] if split == "discovery" else idx[half:]
        return sorted(out)

    def pairs(self, model: Any, *, n_per_op: int | None = None, seed: int = 0, corrupt_from: str = "all",
              split: str = "all") -> PromptPairs:
        """`PromptPairs` of ``split`` (``all`` by default), at most ``n_per_op`` per group. ``seed`` and
        ``corrupt_from`` are accepted for the protocol; the corrupt prompts are the given ones."""
        if corrupt_from not in ("all", "same"):
            raise unknown("corrupt_from", corrupt_from, ("all", "same"))
        if n_per_op is not None and (not _is_int(n_per_op) or n_per_op < 1):
            raise TaskError(f"n_per_op must be a positive integer; got {n_per_op!r}")
        idx = self.split_indices(split)
        if n_per_op is not None:
            count: Counter[str] = Counter()
            keep = []
            for i in idx:
                if count[self.groups[i]] < n_per_op:
                    count[self.groups[i]] += 1
                    keep.append(i)
            idx = keep
        if not idx:
            raise TaskError(f"the {split} split of {self.name!r} is empty: {self.n} pairs in "
                            f"{len(set(self.groups))} group(s); the evaluation split needs >= 2 pairs per group")
        full = self.all_pairs(model)
        return full if idx == list(range(self.n)) else full.select(idx)

    def mean_ablation_tokens(self, model: Any) -> Tensor:
        """``[n pos]``: the ``reference`` prompts when given, else every clean and corrupt prompt."""
        full = self.all_pairs(model)
        if self.reference is None:
            return torch.cat([full.clean_tokens, full.corrupt_tokens])
        ref = list(self.reference)
        if not ref:
            raise TaskError("the reference prompt list is empty; give prompts or leave reference=None")
        if all(_is_text(r) for r in ref):
            rows, _ = encode(get_tokenizer(model), ref, prepend_bos=resolve_prepend_bos(model, self.prepend_bos))
        else:
            from interp.tasks.build import token_rows

            rows = token_rows(ref, "reference")
        bad = [i for i, r in enumerate(rows) if len(r) != full.seq_len]
        if bad:
            raise TaskError(f"reference prompt {bad[0]} is {len(rows[bad[0]])} tokens, but the pairs are "
                            f"{full.seq_len}; mean ablation needs reference prompts of the same length")
        d_vocab = int(model.cfg.d_vocab)
        if any(not 0 <= v < d_vocab for r in rows for v in r):
            raise TaskError(f"reference prompts hold token ids outside the vocabulary [0, {d_vocab})")
        return torch.tensor(rows, dtype=torch.long)


@dataclass(frozen=True)
class GridPrompt:
    """One prompt of an operand grid: operands, result, its tokens and answer token(s)."""

    a: int
    op: str
    b: int
    result: int
    tokens: tuple[int, ...]
    answer_tokens: tuple[int, ...]

    @property
    def answer_token(self) -> int:
        return self.answer_tokens[0]

    def __str__(self) -> str:
        return f"{self.a}{self.op}{self.b}={self.result}"


class OperandTask:
    """A task made of your own operand grid(s): ``{op: rows}``, each row ``(a, b, result, tokens, answer_token)``
    (tuples or dicts; ``tokens`` an id list or a text, ``answer_token`` an id or a single-token string).
    Implements `interp.tasks.GridTask`: every neuron pipeline runs on it."""

    def __init__(self, grids: Mapping[str, Sequence[Any]], *, name: str = "custom-grid",
                 prepend_bos: bool | None = None, lo: int | None = None, hi: int | None = None) -> None:
        if not isinstance(grids, Mapping) or not grids:
            raise TaskError("grids must be a non-empty {operator: rows} mapping")
        self._rows: dict[str, list[tuple[int, int, int, Any, Any, str]]] = {}
        for op, rows in grids.items():
            if not isinstance(op, str) or not op:
                raise TaskError(f"operator names must be non-empty strings; got {op!r}")
            rows = list(rows)
            if len(rows) < MIN_GRID:
                raise TaskError(f"the {op!r} grid has {len(rows)} prompt(s); the neuron heuristics need at least "
                                f"{MIN_GRID} (a heuristic's top-k must hold more than one prompt)")
            self._rows[op] = [self._row(op, i, r) for i, r in enumerate(rows)]
        ops = [x for rows in self._rows.values() for r in rows for x in r[:2]]
        self.lo = int(min(ops)) if lo is None else int(lo)
        self.hi = int(max(ops)) if hi is None else int(hi)
        if not 0 <= self.lo <= min(ops) or max(ops) > self.hi:
            raise TaskError(f"operand range {self.lo}-{self.hi} must hold every operand ({min(ops)}..{max(ops)})")
        self._name, self.prepend_bos = str(name), prepend_bos
        self._cache = _PerModel()

    @staticmethod
    def _row(op: str, i: int, r: Any) -> tuple[int, int, int, Any, Any, str]:
        where = f"{op!r} row {i}"
        if isinstance(r, Mapping):
            missing = [k for k in ("a", "b", "result", "tokens", "answer_token") if k not in r]
            if missing:
                raise TaskError(f"{where} lacks {missing}; rows need a, b, result, tokens, answer_token")
            r = (r["a"], r["b"], r["result"], r["tokens"], r["answer_token"])
        if isinstance(r, (str, bytes)) or not isinstance(r, Sequence) or len(r) != 5:
            raise TaskError(f"{where} must be (a, b, result, tokens, answer_token); got {r!r:.80}")
        a, b, res, toks, ans = r
        if not all(_is_int(x) and x >= 0 for x in (a, b, res)):
            raise TaskError(f"{where}: a, b and result must be non-negative integers; got {(a, b, res)}")
        if isinstance(toks, (Tensor, np.ndarray)):
            toks = toks.tolist()
        if not (_is_text(toks) or (isinstance(toks, Sequence) and toks and all(_is_int(t) for t in toks))):
            raise TaskError(f"{where}: tokens must be a prompt text or a non-empty list of token ids; got {toks!r:.80}")
        return int(a), int(b), int(res), toks if _is_text(toks) else tuple(int(t) for t in toks), ans, where

    @property
    def name(self) -> str:
        return self._name

    @property
    def operators(self) -> tuple[str, ...]:
        return tuple(self._rows)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{op}: {len(r)}" for op, r in self._rows.items())
        return f"OperandTask({self.name!r}, operands {self.lo}-{self.hi}, prompts {{{sizes}}})"

    def _check_op(self, op: str) -> None:
        if op not in self._rows:
            raise TaskError(f"operator {op!r} is not in the task {self.name!r} (operators: {' '.join(self._rows)})")

    def prompts(self, model: Any, op: str) -> list[GridPrompt]:
        """Every prompt of ``op``'s grid, tokenized and checked for ``model`` (cached)."""
        self._check_op(op)
        hit = self._cache.get(("prompts", op), model)
        if hit is not None:
            return hit
        rows = self._rows[op]
        texts = [i for i, r in enumerate(rows) if _is_text(r[3])]
        toks: list[Any] = [r[3] for r in rows]
        if texts:
            ids, _ = encode(get_tokenizer(model), [rows[i][3] for i in texts],
                            prepend_bos=resolve_prepend_bos(model, self.prepend_bos))
            for i, x in zip(texts, ids):
                toks[i] = tuple(x)
        lengths = Counter(len(t) for t in toks)
        if len(lengths) > 1:
            common = lengths.most_common(1)[0][0]
            odd = next(i for i, t in enumerate(toks) if len(t) != common)
            raise TaskError(f"{rows[odd][5]} is {len(toks[odd])} tokens {list(toks[odd])} while the other prompts "
                            f"of {op!r} are {common}; every prompt of a grid must have the same length")
        d_vocab = int(model.cfg.d_vocab)
        for r, t in zip(rows, toks):
            if any(not 0 <= v < d_vocab for v in t):
                raise TaskError(f"{r[5]}: token ids {list(t)} leave the vocabulary [0, {d_vocab})")
        answers = answer_ids(model, [r[4] for r in rows], len(rows), "answer tokens", where=[r[5] for r in rows])
        out = [GridPrompt(r[0], op, r[1], r[2], tuple(t), (ans,)) for r, t, ans in zip(rows, toks, answers)]
        return self._cache.put(("prompts", op), model, out)

    def correct_prompts(self, model: Any, op: str, *, seed: int = 42, limit: int | None = None) -> list[GridPrompt]:
        """The prompts of ``op`` whose answer token is the model's greedy top-1, in a seeded shuffled order."""
        hit = self._cache.get(("correct", op, seed), model)
        if hit is None:
            grid = list(self.prompts(model, op))
            random.Random(seed).shuffle(grid)
            top = run_last_logits(model, torch.tensor([p.tokens for p in grid])).argmax(-1).tolist()
            hit = self._cache.put(("correct", op, seed), model,
                                  [p for p, t in zip(grid, top) if t == p.answer_token])
        if not hit:
            raise TaskError(f"the model answers none of the {len(self._rows[op])} {op!r} prompts of {self.name!r} "
                            "correctly (greedy top-1 at the last position); check the answer tokens")
        return hit[:limit] if limit is not None else list(hit)

    def pairs(self, model: Any, *, n_per_op: int = 50, seed: int = 0, corrupt_from: str = "all",
              split: str = "discovery") -> PromptPairs:
        """Pairs as for arithmetic: ``n_per_op`` correct prompts per operator (discovery: the first of the seed-42
        shuffle; evaluation: the next), each with a seeded corrupt prompt of another answer token."""
        if corrupt_from not in ("all", "same"):
            raise unknown("corrupt_from", corrupt_from, ("all", "same"))
        if split not in ("discovery", "evaluation"):
            raise unknown("split", split, ("discovery", "evaluation"))
        if not _is_int(n_per_op) or n_per_op < 1:
            raise TaskError(f"n_per_op must be a positive integer; got {n_per_op!r}")
        pools = {op: self.correct_prompts(model, op) for op in self.operators}
        length = Counter(len(p.tokens) for ps in pools.values() for p in ps).most_common(1)[0][0]
        pools = {op: [p for p in ps if len(p.tokens) == length] for op, ps in pools.items()}
        rng = random.Random(seed)
        clean, corrupt = [], []
        for op in self.operators:
            pool = pools[op]
            chosen = pool[:n_per_op] if split == "discovery" else pool[n_per_op : 2 * n_per_op]
            if not chosen:
                raise TaskError(f"no {split} prompts for {op!r}: the model answers {len(pool)} of its prompts "
                                f"correctly (an evaluation split needs more than n_per_op={n_per_op}); lower n_per_op")
            cands = pool if corrupt_from == "same" else [p for o in self.operators for p in pools[o]]
            for p in chosen:
                options = [q for q in cands if q.answer_token != p.answer_token]
                if not options:
                    raise TaskError(f"no corrupt prompt with another answer token for {p} ({corrupt_from=})")
                clean.append(p)
                corrupt.append(rng.choice(options))
        return PromptPairs(torch.tensor([p.tokens for p in clean]), torch.tensor([p.tokens for p in corrupt]),
                           torch.tensor([p.answer_token for p in clean]),
                           torch.tensor([p.answer_token for p in corrupt]),
                           tuple(f"pos {j}" for j in range(length)), self.name, tuple(clean), tuple(corrupt),
                           tuple(p.op for p in clean))

    def mean_ablation_tokens(self, model: Any) -> Tensor:
        """``[n pos]``: every grid prompt of every operator (the common length), the analogue of arithmetic's
        balanced grid."""
        every = [p.tokens for op in self.operators for p in self.prompts(model, op)]
        length = Counter(len(t) for t in every).most_common(1)[0][0]
        return torch.tensor([t for t in every if len(t) == length], dtype=torch.long)
