"""Arithmetic prompts over an operand grid (Nikankin et al., ICLR 2025, methods.md §A.0).

The default template is the paper's ``"{a}{op}{b}="`` with BOS prepended and no few-shot context. The legal grid
follows the paper: ``-`` needs b <= a, ``/`` is integer division with b >= 1, and results must be non-negative (and
single tokens in the single-token setting). Tokenization is checked, not assumed:

* **single-token mode** - every operand and result is one token (Llama-3 style tokenizers, `toy-arith`); the metric
  token is the result token.
* **multi-token mode** - numbers are token sequences (SmolLM2 splits digits); the metric uses the first answer token
  and correctness checks the whole answer by teacher forcing. Prompts are grouped by *layout* (how many tokens each
  field takes) so that clean and corrupt prompts have equal length and aligned positions.

Clean/corrupt pairs: the corrupt prompt is another correct prompt of the same layout with a different first answer
token, drawn from the same operator or from all operators of the task (the paper's choice), seeded.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from interp.errors import TaskError, unknown
from interp.models.toy import OPERATORS, apply_op
from interp.tasks.base import PromptPairs, encode, get_tokenizer

log = logging.getLogger(__name__)

# the largest operand grid a task builds per operator: 0-999 (about 1e6 prompts, ~1 GB of tokenized prompts); a
# wider range is refused before anything is built, since every prompt of the grid is tokenized and stored
MAX_GRID = 1000 * 1000

__all__ = ["OPERATORS", "ArithPrompt", "ArithTask", "AccuracyReport", "apply_op", "single_token_limit"]

OP_NAMES = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
_FIELD_RE = re.compile(r"\{(a|op|b)\}")


@functools.lru_cache(maxsize=64)
def _template_parts(template: str) -> tuple[tuple[str, str | None], ...]:
    """``template`` as ``(literal, field)`` pieces (the last one's field None): rendering without a regex per prompt."""
    parts: list[tuple[str, str | None]] = []
    pos = 0
    for m in _FIELD_RE.finditer(template):
        parts.append((template[pos : m.start()], m.group(1)))
        pos = m.end()
    parts.append((template[pos:], None))
    return tuple(parts)


def single_token_limit(tokenizer: Any, *, search_max: int = 100_000, chunk: int = 1000) -> int:
    """The largest n such that every integer in [0, n] is one (known, round-tripping) token; -1 if 0 is not.

    This is the paper's definition (Llama-3: 999). Unknown-token ids do not count as single tokens.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    for start in range(0, search_max + 1, chunk):
        nums = list(range(start, min(start + chunk, search_max + 1)))
        ids = tokenizer([str(n) for n in nums], add_special_tokens=False)["input_ids"]
        for n, x in zip(nums, ids):
            if len(x) != 1 or x[0] == unk or tokenizer.decode(x).strip() != str(n):
                return n - 1
    return search_max


@dataclass(frozen=True)
class ArithPrompt:
    """One arithmetic prompt with its tokens; ``layout`` is the token count of (prefix, a, op, b, answer)."""

    a: int
    op: str
    b: int
    result: int
    text: str
    tokens: tuple[int, ...]
    answer_tokens: tuple[int, ...]
    roles: tuple[str, ...]

    @property
    def answer_token(self) -> int:
        return self.answer_tokens[0]

    @property
    def layout(self) -> tuple[str, ...]:
        return self.roles

    def __str__(self) -> str:
        return f"{self.a}{self.op}{self.b}={self.result}"


@dataclass(frozen=True)
class AccuracyReport:
    """Greedy accuracy per operator: ``n_correct[op] / n_total[op]``."""

    n_correct: dict[str, int]
    n_total: dict[str, int]

    @property
    def accuracy(self) -> dict[str, float]:
        return {op: self.n_correct[op] / self.n_total[op] if self.n_total[op] else float("nan") for op in self.n_total}

    @property
    def overall(self) -> float:
        tot = sum(self.n_total.values())
        return sum(self.n_correct.values()) / tot if tot else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "n_correct": self.n_correct, "n_total": self.n_total}


@dataclass(frozen=True)
class ArithTask:
    """Arithmetic prompts for chosen operators over the operand range [lo, hi].

    Build one from a command-line spec with `ArithTask.from_spec` (``arith``, ``arith:+``, ``arith:+-``,
    ``arith:+:0-99``) or directly. ``number_mode`` is ``auto`` (single-token when the tokenizer allows it),
    ``single`` or ``multi``.
    """

    operators: tuple[str, ...] = OPERATORS
    lo: int = 0
    hi: int = 99
    template: str = "{a}{op}{b}="
    answer_template: str = "{r}"
    prefix: str = ""
    prepend_bos: bool = True
    number_mode: str = "auto"
    max_result: int | None = None
    _cache: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    def _get(self, key: tuple, owner: Any) -> Any:
        """A cached value computed for ``owner`` (a model or tokenizer), or None; ids are checked by weakref."""
        hit = self._cache.get(key)
        if hit is None or hit[0]() is not owner:
            return None
        return hit[1]

    def _put(self, key: tuple, owner: Any, value: Any) -> Any:
        self._cache[key] = (weakref.ref(owner), value)
        return value

    def __post_init__(self) -> None:
        bad = [op for op in self.operators if op not in OPERATORS]
        if bad or not self.operators:
            raise TaskError(f"operators {self.operators!r} are not valid; choose from {' '.join(OPERATORS)}")
        if len(set(self.operators)) != len(self.operators):
            raise TaskError(f"operators {self.operators!r} contain duplicates")
        for name in ("lo", "hi"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TaskError(f"operand bound {name}={v!r} must be an integer")
        if not 0 <= self.lo <= self.hi:
            raise TaskError(f"operand range {self.lo}-{self.hi} is invalid; need 0 <= lo <= hi")
        if (self.hi - self.lo + 1) ** 2 > MAX_GRID:
            width = int(MAX_GRID**0.5)
            raise TaskError(
                f"operand range {self.lo}-{self.hi} has {(self.hi - self.lo + 1) ** 2:,} operand pairs per operator; "
                f"at most {MAX_GRID:,} are built (a range of at most {width} numbers, e.g. {self.lo}-"
                f"{self.lo + width - 1}); give a smaller range"
            )
        if self.number_mode not in ("auto", "single", "multi"):
            raise unknown("number mode", self.number_mode, ("auto", "single", "multi"))
        if sorted(_FIELD_RE.findall(self.template)) != ["a", "b", "op"]:
            raise TaskError(f"template {self.template!r} must contain {{a}}, {{op}} and {{b}} exactly once each")

    # ---------------------------------------------------------------------------------------------------- specs
    @classmethod
    def from_spec(cls, spec: str, **overrides: Any) -> ArithTask:
        """Parse ``arith[:OPS[:LO-HI]]``; e.g. ``arith:+-:0-49``. Keyword overrides set the other fields."""
        parts = spec.split(":")
        if parts[0] != "arith" or len(parts) > 3:
            raise TaskError(f"task spec {spec!r} is not of the form arith[:OPS[:LO-HI]] (e.g. arith:+-:0-99)")
        kwargs: dict[str, Any] = {}
        if len(parts) >= 2 and parts[1]:
            kwargs["operators"] = tuple(parts[1].replace("x", "*"))
        if len(parts) == 3:
            m = re.fullmatch(r"(\d+)-(\d+)", parts[2])
            if not m:
                raise TaskError(f"operand range {parts[2]!r} in {spec!r} must look like LO-HI, e.g. 0-99")
            kwargs["lo"], kwargs["hi"] = int(m.group(1)), int(m.group(2))
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def name(self) -> str:
        return f"arith:{''.join(self.operators)}:{self.lo}-{self.hi}"

    def with_operators(self, operators: Sequence[str]) -> ArithTask:
        return replace(self, operators=tuple(operators), _cache={})

    # ---------------------------------------------------------------------------------------------- the grid
    def legal_pairs(self, op: str, max_result: int | None) -> list[tuple[int, int]]:
        out = []
        for a in range(self.lo, self.hi + 1):
            for b in range(self.lo, self.hi + 1):
                if op == "/" and b == 0:
                    continue
                r = apply_op(a, op, b)
                if r < 0 or (max_result is not None and r > max_result):
                    continue
                out.append((a, b))
        return out

    def _mode_and_limit(self, tokenizer: Any) -> tuple[str, int | None]:
        key = ("mode", id(tokenizer))
        hit = self._get(key, tokenizer)
        if hit is not None:
            return hit
        limit = single_token_limit(tokenizer)
        mode = self.number_mode
        if mode == "auto":
            mode = "single" if limit >= self.hi else "multi"
        if mode == "single":
            if limit < self.hi:
                raise TaskError(
                    f"operands {self.lo}-{self.hi} are not single tokens for this tokenizer: every integer is one "
                    f"token only up to {limit} ({'none are' if limit < 0 else f'0..{limit}'}). Use a range within "
                    f"0-{max(limit, 0)}, or the multi-token mode (number_mode='multi', --number-mode multi), where "
                    "answers are token sequences"
                )
            max_result = limit if self.max_result is None else min(self.max_result, limit)
        else:
            max_result = self.max_result
        return self._put(key, tokenizer, (mode, max_result))

    def prompts(self, model: Any, op: str) -> list[ArithPrompt]:
        """Every legal prompt of ``op`` on the grid, tokenized (cached per model)."""
        if op not in self.operators:
            raise TaskError(f"operator {op!r} is not in this task (operators: {' '.join(self.operators)})")
        tok = get_tokenizer(model)
        key = ("prompts", id(tok), op)
        hit = self._get(key, tok)
        if hit is not None:
            return hit
        mode, max_result = self._mode_and_limit(tok)
        self._check_literal_text(tok, op)
        pairs = self.legal_pairs(op, max_result)
        texts, spans = [], []
        for a, b in pairs:
            text, sp = self._render(a, op, b)
            texts.append(text)
            spans.append(sp)
        answers = [self.answer_template.format(r=apply_op(a, op, b)) for a, b in pairs]
        ids, offs = encode(tok, texts, prepend_bos=self.prepend_bos)
        full_ids, _ = encode(tok, [t + s for t, s in zip(texts, answers)], prepend_bos=self.prepend_bos,
                             offsets=False)
        out = []
        unk = tok.unk_token_id  # one lookup: the attribute costs ~10 us on an HF tokenizer
        layouts: dict[tuple, tuple[str, ...]] = {}  # prompts share a handful of (offsets, spans) layouts
        for (a, b), text, sp, pid, off, fid in zip(pairs, texts, spans, ids, offs, full_ids):
            if fid[: len(pid)] != pid or len(fid) == len(pid):
                raise TaskError(
                    f"the answer of {text!r} does not tokenize as a continuation of the prompt "
                    f"(prompt {pid}, prompt+answer {fid}); change answer_template or template"
                )
            layout = (tuple(off), *sp.values())
            roles = layouts.get(layout)
            if roles is None:
                roles = layouts[layout] = _roles(off, sp, self.prepend_bos)
            ans = tuple(fid[len(pid) :])
            if mode == "single" and (len(ans) != 1 or roles.count("op1") != 1 or roles.count("op2") != 1
                                     or unk in pid):
                raise TaskError(
                    f"{text!r}: a number is not a single token although single-token mode was chosen; "
                    "use number_mode='multi'"
                )
            out.append(ArithPrompt(a, op, b, apply_op(a, op, b), text, tuple(pid), ans, roles))
        return self._put(key, tok, out)

    def _check_literal_text(self, tok: Any, op: str) -> None:
        """Refuse a prefix or template whose text (numbers left out) the tokenizer maps to its unknown token."""
        unk = getattr(tok, "unk_token_id", None)
        if unk is None:
            return
        for what, text in (("prefix", self.prefix), ("template", _FIELD_RE.sub(
                lambda m: op if m.group(1) == "op" else "", self.template))):
            if text and unk in encode(tok, [text], prepend_bos=False)[0][0]:
                bad = sorted({c for c in text if unk in encode(tok, [c], prepend_bos=False)[0][0]})
                raise TaskError(
                    f"the {what} {text!r} contains text this tokenizer does not know (it becomes the unknown token): "
                    f"{''.join(bad)!r}; use only characters of the model's vocabulary"
                    + (" (toy-arith knows only the numbers 0-999 and + - * / =)" if getattr(
                        tok, "vocab_size", 0) < 1100 else "")
                )

    def _render(self, a: int, op: str, b: int) -> tuple[str, dict[str, tuple[int, int]]]:
        values = {"a": str(a), "op": op, "b": str(b)}
        text, spans = self.prefix, {"prefix": (0, len(self.prefix))}
        for literal, name in _template_parts(self.template):
            text += literal
            if name is not None:
                start = len(text)
                text += values[name]
                spans[name] = (start, len(text))
        return text, spans

    def _text(self, a: int, op: str, b: int) -> str:
        """``_render``'s text alone."""
        values = {"a": str(a), "op": op, "b": str(b)}
        parts = _template_parts(self.template)
        return self.prefix + "".join(lit + (values[name] if name else "") for lit, name in parts)

    def mean_ablation_tokens(self, model: Any, *, operand_max: int | None = None,
                             seq_len: int | None = None) -> torch.Tensor:
        """Token ids of every string ``"x op y="`` (x, y in ``lo..operand_max``, all four operators): the paper's
        balanced mean-ablation grid (``calc_mean_cache``).

        Illegal prompts (``5-7=``, ``3/0=``) are included, as in the paper, so every operator contributes the same
        number of strings. With multi-token numbers, strings tokenize to different lengths; only those of length
        ``seq_len`` (default: the most common length of the task's legal prompts) are kept, so positions line up
        with the evaluated prompts.
        """
        hi = self.hi if operand_max is None else int(operand_max)
        if hi < self.lo:
            raise TaskError(f"operand_max={operand_max} is below the task's lowest operand {self.lo}")
        grid = range(self.lo, hi + 1)
        texts = [self._text(a, op, b) for op in OPERATORS for a in grid for b in grid]
        ids, _ = encode(get_tokenizer(model), texts, prepend_bos=self.prepend_bos, offsets=False)
        if seq_len is None:  # the most common length of the task's legal prompts (all of them with single tokens)
            lengths = Counter(len(p.tokens) for op in self.operators for p in self.prompts(model, op))
            seq_len = lengths.most_common(1)[0][0]
        kept = [x for x in ids if len(x) == seq_len]
        if not kept:
            raise TaskError(f"no string 'x op y=' tokenizes to {seq_len} tokens; pass another seq_len")
        return torch.tensor(kept, dtype=torch.long)

    # -------------------------------------------------------------------------------------------- correctness
    def record_correctness(self, model: Any, op: str, flags: Sequence[bool]) -> None:
        """Store the greedy correctness of every prompt of ``op``'s grid (in `prompts` order), computed elsewhere
        from the same model (e.g. read off a forward pass over a superset of the grid); `accuracy` (whole grid) and
        `correct_prompts` then reuse it instead of running the model again."""
        grid = self.prompts(model, op)
        if len(flags) != len(grid):
            raise TaskError(f"{len(flags)} correctness flags for the {len(grid)} prompts of {op!r}")
        self._put(("flags", id(model), op), model, [bool(f) for f in flags])

    @torch.inference_mode()
    def _is_correct(self, model: Any, prompts: Sequence[ArithPrompt], batch_size: int = 512) -> list[bool]:
        """Greedy correctness; multi-token answers by teacher forcing (every answer token is the argmax)."""
        result = [False] * len(prompts)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault((len(p.tokens), len(p.answer_tokens)), []).append(i)
        for (n_prompt, _), idx in groups.items():
            for s in range(0, len(idx), batch_size):
                chunk = idx[s : s + batch_size]
                seqs = torch.tensor([prompts[i].tokens + prompts[i].answer_tokens[:-1] for i in chunk])
                logits = model(seqs)[:, n_prompt - 1 :, :]
                pred = logits.argmax(-1)
                want = torch.tensor([prompts[i].answer_tokens for i in chunk])
                ok = (pred == want).all(-1).tolist()
                for i, o in zip(chunk, ok):
                    result[i] = bool(o)
        return result

    def correct_prompts(
        self, model: Any, op: str, *, seed: int = 42, limit: int | None = None, max_scan: int | None = None
    ) -> list[ArithPrompt]:
        """Correct prompts of ``op`` in a seeded shuffled order (the paper shuffles with seed 42).

        Scans the shuffled grid in chunks and stops after ``limit`` correct prompts (all when None) or after
        ``max_scan`` prompts. Raises `TaskError` when the model answers none correctly, with its accuracy.
        """
        key = ("correct", id(model), op, seed)
        cached = self._get(key, model)
        if cached is not None and (cached[1] or (limit is not None and len(cached[0]) >= limit)):
            return cached[0][:limit] if limit is not None else cached[0]
        grid = list(self.prompts(model, op))
        flags = self._get(("flags", id(model), op), model)  # correctness of the whole grid, from `accuracy`
        order = list(range(len(grid)))
        random.Random(seed).shuffle(order)  # the same order as shuffling the grid itself
        grid = [grid[i] for i in order]
        if max_scan is not None:
            grid, order = grid[:max_scan], order[:max_scan]
        correct: list[ArithPrompt] = []
        scanned = 0
        if flags is not None:
            correct = [p for p, i in zip(grid, order) if flags[i]]
            scanned = len(grid)
        chunk = 2048 if limit is None else max(64, 2 * limit)
        while scanned < len(grid) and (limit is None or len(correct) < limit):
            part = grid[scanned : scanned + chunk]
            correct += [p for p, ok in zip(part, self._is_correct(model, part)) if ok]
            scanned += len(part)
        exhausted = scanned >= len(grid)
        self._put(key, model, (correct, exhausted))
        if not correct:
            raise TaskError(
                f"the model answers none of the {scanned} {op!r} prompts it was given correctly "
                f"(accuracy 0.0 on {self.name}); patching needs correct prompts - try another operand range, "
                "a few-shot prefix, or another operator"
            )
        return correct[:limit] if limit is not None else correct

    def accuracy(self, model: Any, *, max_prompts: int | None = None, seed: int = 0) -> AccuracyReport:
        """Greedy accuracy per operator over the grid (or a seeded sample of ``max_prompts`` per operator)."""
        n_correct, n_total = {}, {}
        for op in self.operators:
            grid = list(self.prompts(model, op))
            if max_prompts is not None and len(grid) > max_prompts:
                grid = random.Random(seed).sample(grid, max_prompts)
                flags = self._is_correct(model, grid)
            else:  # the whole grid: keep every prompt's correctness for `correct_prompts` (no second pass)
                key = ("flags", id(model), op)
                flags = self._get(key, model)
                if flags is None:
                    flags = self._put(key, model, self._is_correct(model, grid))
            n_correct[op] = sum(flags)
            n_total[op] = len(grid)
        return AccuracyReport(n_correct, n_total)

    # ----------------------------------------------------------------------------------------------- pairs
    def pairs(
        self,
        model: Any,
        *,
        n_per_op: int = 50,
        seed: int = 0,
        corrupt_from: str = "all",
        split: str = "discovery",
        shuffle_seed: int = 42,
    ) -> PromptPairs:
        """Clean/corrupt pairs: ``n_per_op`` correct clean prompts per operator with seeded corrupt partners.

        ``split="discovery"`` takes the first ``n_per_op`` correct prompts of the seed-42 shuffle and
        ``"evaluation"`` the next ``n_per_op`` (held out from discovery, as in the paper's code). ``seed`` only
        changes the corrupt sample. ``corrupt_from`` is ``"all"`` (any operator of the task, the paper's choice)
        or ``"same"`` (the clean prompt's operator).
        """
        if corrupt_from not in ("all", "same"):
            raise unknown("corrupt_from", corrupt_from, ("all", "same"))
        if split not in ("discovery", "evaluation"):
            raise unknown("split", split, ("discovery", "evaluation"))
        if isinstance(n_per_op, bool) or not isinstance(n_per_op, int) or n_per_op < 1:
            raise TaskError(f"n_per_op must be an integer >= 1; got {n_per_op!r}")
        n_grid = (self.hi - self.lo + 1) ** 2
        need = n_per_op if split == "discovery" else 2 * n_per_op
        if need > n_grid:
            raise TaskError(
                f"n_per_op={n_per_op} asks for more prompts per operator than the {n_grid:,} of the operand grid "
                f"{self.lo}-{self.hi}"
                f"{' (the evaluation split comes after the discovery one)' if need > n_per_op else ''}"
                f"; give n_per_op <= {n_grid if need == n_per_op else n_grid // 2:,} or a wider range"
            )
        pools = {
            op: self.correct_prompts(model, op, seed=shuffle_seed, limit=2 * n_per_op + 100) for op in self.operators
        }
        layout = self._main_layout(pools)
        pools = {op: [p for p in ps if p.layout == layout] for op, ps in pools.items()}
        rng = random.Random(seed)
        clean: list[ArithPrompt] = []
        corrupt: list[ArithPrompt] = []
        everything = [p for o in self.operators for p in pools[o]]
        for op in self.operators:
            pool = pools[op]
            chosen = pool[:n_per_op] if split == "discovery" else pool[n_per_op : 2 * n_per_op]
            if not chosen:
                raise TaskError(
                    f"no {split} prompts for {op!r}: the model answers only {len(pool)} {op!r} prompts of layout "
                    f"{layout} correctly (need more than {n_per_op} for an evaluation split); lower n_per_op"
                )
            if len(chosen) < n_per_op:
                log.warning("only %d %s prompts for %r (asked for n_per_op=%d): the model answers only %d prompts of "
                            "the grid correctly%s", len(chosen), split, op, n_per_op, len(pool),
                            "" if split == "discovery" else " (the first n_per_op go to discovery)")
            candidates = pool if corrupt_from == "same" else everything
            answers = np.array([q.answer_token for q in candidates])
            for p in chosen:
                # the candidates with another answer, in order: rng.choice over their indices draws exactly what
                # rng.choice over the filtered list would (same length, same position)
                options = np.flatnonzero(answers != p.answer_token).tolist()
                if not options:
                    raise TaskError(f"no corrupt prompt with a different answer token for {p} ({corrupt_from=})")
                clean.append(p)
                corrupt.append(candidates[rng.choice(options)])
        return PromptPairs(
            clean_tokens=torch.tensor([p.tokens for p in clean]),
            corrupt_tokens=torch.tensor([p.tokens for p in corrupt]),
            clean_answers=torch.tensor([p.answer_token for p in clean]),
            corrupt_answers=torch.tensor([p.answer_token for p in corrupt]),
            position_labels=_position_labels(layout),
            task=self.name,
            clean=tuple(clean),
            corrupt=tuple(corrupt),
            groups=tuple(p.op for p in clean),
        )

    @staticmethod
    def _main_layout(pools: dict[str, list[ArithPrompt]]) -> tuple[str, ...]:
        """The token layout shared by the most correct prompts (all of them in single-token mode)."""
        counts = Counter(p.layout for ps in pools.values() for p in ps)
        return counts.most_common(1)[0][0]


def _roles(offsets: Sequence[tuple[int, int]], spans: dict[str, tuple[int, int]], bos: bool) -> tuple[str, ...]:
    """Role of each token: bos, prefix, op1, op, op2 or template literal ('=' etc.), from character offsets."""
    names = {"a": "op1", "op": "op", "b": "op2", "prefix": "prefix"}
    roles = []
    for i, (s, e) in enumerate(offsets):
        if bos and i == 0:
            roles.append("BOS")
            continue
        role = "lit"
        for key, (fs, fe) in spans.items():
            if fs <= s < fe or (s == e == fs and fe > fs):
                role = names[key]
                break
        roles.append(role)
    return tuple(roles)


def _position_labels(layout: tuple[str, ...]) -> tuple[str, ...]:
    """Unique position labels: ``op1`` or ``op1[0]``, ``op1[1]`` for multi-token fields; literals by index."""
    counts = Counter(layout)
    seen: Counter[str] = Counter()
    out = []
    for i, r in enumerate(layout):
        if r == "lit":
            out.append("=" if i == len(layout) - 1 else f"lit{i}")
        elif counts[r] > 1:
            out.append(f"{r}[{seen[r]}]")
        else:
            out.append(r)
        seen[r] += 1
    return tuple(out)

