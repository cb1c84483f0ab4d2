"""Indirect object identification (Wang et al., 2022): "When Mary and John went to the store, John gave a drink to"
-> " Mary".

A prompt names two people once each (``A`` and ``B``) and then repeats one of them, the subject ``S``; the
correct next token is the other one, the indirect object ``IO``. ``ABBA`` prompts put IO first ("Mary and John ...,
John"), ``BABA`` prompts put S first ("John and Mary ..., John"). The metric is the logit difference
``logit(IO) - logit(S)`` at the last position.

Clean/corrupt pairs (equal token length, aligned positions):

* ``corruption="abc"`` (default, Wang et al.'s ABC distribution): the repeated name S2 is replaced by a third name C,
  so the corrupt prompt no longer says who the subject is;
* ``corruption="swap"``: S2 is replaced by IO, which makes S the correct answer of the corrupt prompt.

`PromptPairs.clean_answers` hold IO and ``corrupt_answers`` hold the clean prompt's S in both modes, so the metric
``logit_diff`` of `interp.metrics` (``L(r) - L(r2)``) is exactly the IO-S logit difference. Names must be single
tokens with a leading space; templates whose token layout differs from the most common one are left out, so every
prompt of a task has the same length and the same positions (``A``, ``B``, ``S2``, ``end``).
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

from interp.errors import TaskError, unknown
from interp.tasks.base import PromptPairs, encode, get_tokenizer

__all__ = ["IOITask", "IOIPrompt", "IOI_TEMPLATES", "IOI_NAMES", "CORRUPTIONS", "ORDERS", "ioi_logit_diff"]

IOI_TEMPLATES: tuple[str, ...] = (
    "When {A} and {B} went to the store, {S} gave a drink to",
    "When {A} and {B} went to the park, {S} gave a ball to",
    "When {A} and {B} went to the office, {S} gave a book to",
    "When {A} and {B} went to the school, {S} gave a pen to",
    "When {A} and {B} went to the market, {S} gave a bag to",
    "When {A} and {B} went to the house, {S} gave a gift to",
)
IOI_NAMES: tuple[str, ...] = (
    "Mary", "John", "Tom", "James", "Dan", "Sarah", "Anna", "Paul", "Mark", "Kate", "Lisa", "David", "Emma", "Jack",
    "Ben", "Sam", "Alice", "Peter", "Laura", "Mike",
)
CORRUPTIONS: tuple[str, ...] = ("abc", "swap")
ORDERS: tuple[str, ...] = ("ABBA", "BABA")
_SLOT_RE = re.compile(r"\{(A|B|S)\}")


@dataclass(frozen=True)
class IOIPrompt:
    """One IOI prompt: its names, order (ABBA/BABA), template index, text and token ids."""

    io: str
    s: str
    s2: str
    order: str
    template: int
    text: str
    tokens: tuple[int, ...]
    io_token: int
    s_token: int

    @property
    def answer_token(self) -> int:
        return self.io_token


SPLITS = ("all", "discovery", "evaluation")


@dataclass(frozen=True)
class IOITask:
    """IOI prompts from templates and single-token names; see the module docstring.

    ``n_prompts`` clean prompts (half ABBA, half BABA with ``orders="both"``) are drawn with ``seed``.
    """

    templates: tuple[str, ...] = IOI_TEMPLATES
    names: tuple[str, ...] = IOI_NAMES
    n_prompts: int = 32
    orders: tuple[str, ...] = ORDERS
    corruption: str = "abc"
    prepend_bos: bool = True
    seed: int = 0
    _cache: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        if not self.templates:
            raise TaskError("no IOI templates given")
        for t in self.templates:
            if sorted(_SLOT_RE.findall(t)) != ["A", "B", "S"]:
                raise TaskError(f"IOI template {t!r} must contain {{A}}, {{B}} and {{S}} exactly once each")
        if len(set(self.names)) < 3:
            raise TaskError(f"IOI needs at least 3 distinct names (IO, S and a corrupting C); got {list(self.names)}")
        for o in self.orders:
            if o not in ORDERS:
                raise unknown("IOI order", o, ORDERS)
        if not self.orders:
            raise TaskError("no IOI orders given; use ('ABBA', 'BABA')")
        if self.corruption not in CORRUPTIONS:
            raise unknown("IOI corruption", self.corruption, CORRUPTIONS)
        if isinstance(self.n_prompts, bool) or int(self.n_prompts) < 1:
            raise TaskError(f"n_prompts must be >= 1; got {self.n_prompts!r}")

    @classmethod
    def from_spec(cls, spec: str, **overrides: Any) -> IOITask:
        """``ioi``, ``ioi:64`` (number of prompts), ``ioi:64:swap`` (corruption). Arithmetic-only overrides that
        are at their defaults (``number_mode='auto'``, ``prefix=''``) are ignored."""
        parts = spec.split(":")
        if parts[0] != "ioi" or len(parts) > 3:
            raise TaskError(f"task spec {spec!r} is not of the form ioi[:N[:abc|swap]] (e.g. ioi:32)")
        kwargs: dict[str, Any] = {}
        if len(parts) >= 2 and parts[1]:
            if not parts[1].isdigit():
                raise TaskError(f"the number of prompts in {spec!r} must be an integer >= 1, e.g. ioi:32; got "
                                f"{parts[1]!r}")
            kwargs["n_prompts"] = int(parts[1])
        if len(parts) == 3:
            kwargs["corruption"] = parts[2]
        for key, default in (("number_mode", "auto"), ("prefix", "")):
            if key in overrides and overrides.pop(key) != default:
                raise TaskError(f"{key!r} applies to arithmetic tasks only, not to {spec!r}")
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def name(self) -> str:
        return f"ioi:{self.n_prompts}:{self.corruption}"

    # ------------------------------------------------------------------------------------------ tokens
    def check_names(self, model: Any) -> dict[str, int]:
        """``{name: token id}``; raises `TaskError` naming every name that is not one token with a leading space."""
        tok = get_tokenizer(model)
        key = ("names", id(tok))
        if key in self._cache:
            return self._cache[key]
        ids = tok([" " + n for n in self.names], add_special_tokens=False)["input_ids"]
        unk = getattr(tok, "unk_token_id", None)
        bad = {n: tok.convert_ids_to_tokens(i) for n, i in zip(self.names, ids) if len(i) != 1 or i[0] == unk}
        if bad and len(bad) == len(self.names):
            raise TaskError(
                "none of the IOI names is a single token for this model's tokenizer (e.g. "
                f"{self.names[0]!r} -> {bad[self.names[0]]}); IOI needs a model with a word vocabulary such as "
                "smollm2-135m (toy-arith only knows numbers and operators)"
            )
        if bad:
            shown = list(bad.items())[:5]
            raise TaskError(
                f"IOI names must be single tokens (with a leading space) for this tokenizer; these are not: "
                f"{', '.join(bad)} (tokenized as {'; '.join(f'{n}: {t}' for n, t in shown)}"
                f"{'; ...' if len(bad) > 5 else ''}). "
                "Pass other names, e.g. IOITask(names=(...))"
            )
        out = {n: i[0] for n, i in zip(self.names, ids)}
        self._cache[key] = out
        return out

    def _render(self, template: str, a: str, b: str, s: str) -> tuple[str, dict[str, tuple[int, int]]]:
        values = {"A": a, "B": b, "S": s}
        text, spans, pos = "", {}, 0
        for m in _SLOT_RE.finditer(template):
            text += template[pos : m.start()]
            start = len(text)
            text += values[m.group(1)]
            spans[m.group(1)] = (start, len(text))
            pos = m.end()
        return text + template[pos:], spans

    def _draw(self) -> list[tuple[int, str, str, str, str]]:
        """(template, order, io, s, c) for every clean prompt, seeded; orders alternate; no clean prompt twice
        (so the discovery and evaluation halves never share a prompt)."""
        n = int(self.n_prompts)
        per_order = len(self.templates) * len(self.names) * (len(self.names) - 1)
        if n > per_order * len(self.orders):
            raise TaskError(f"n_prompts={n} exceeds the {per_order * len(self.orders)} distinct IOI prompts of "
                            f"{len(self.templates)} templates and {len(self.names)} names; add names or templates")
        rng = random.Random(self.seed)
        out, seen = [], set()
        for i in range(n):
            order = self.orders[i % len(self.orders)]
            while True:
                io, s, c = rng.sample(list(self.names), 3)
                t = rng.randrange(len(self.templates))
                if (t, order, io, s) not in seen:
                    break
            seen.add((t, order, io, s))
            out.append((t, order, io, s, c))
        return out

    def _encode(self, model: Any, items: list[tuple[int, str, str, str]]) -> list[tuple[list[int], tuple[str, ...]]]:
        tok = get_tokenizer(model)
        texts, spans = [], []
        for t, a, b, s in items:
            text, sp = self._render(self.templates[t], a, b, s)
            texts.append(text)
            spans.append(sp)
        ids, offs = encode(tok, texts, prepend_bos=self.prepend_bos)
        out = []
        for text, sp, i, off in zip(texts, spans, ids, offs):
            roles = []
            for j, (s0, e0) in enumerate(off):
                if self.prepend_bos and j == 0:
                    roles.append("BOS")
                    continue
                role = "lit"
                for slot, (fs, fe) in sp.items():
                    if s0 < fe and e0 > fs:
                        role = slot
                roles.append(role)
            for slot in ("A", "B", "S"):
                if roles.count(slot) != 1:
                    raise TaskError(f"in {text!r} the name in slot {slot} is not exactly one token; "
                                    "use single-token names")
            out.append((i, tuple(roles)))
        return out

    @property
    def operators(self) -> tuple[str, ...]:
        """No operators (the task protocol's groups; `interp.tasks.Task`): pipelines pool every pair."""
        return ()

    def prompts(self, model: Any) -> list[IOIPrompt]:
        """The clean prompts of the main token layout (cached per model)."""
        return self._build(model)[0]

    def _build(self, model: Any) -> tuple[list[IOIPrompt], list[IOIPrompt], tuple[str, ...]]:
        tok = get_tokenizer(model)
        key = ("build", id(tok))
        if key in self._cache:
            return self._cache[key]
        name_ids = self.check_names(model)
        draws = self._draw()
        clean_items, corrupt_items = [], []
        for t, order, io, s, c in draws:
            a, b = (io, s) if order == "ABBA" else (s, io)
            clean_items.append((t, a, b, s))
            corrupt_items.append((t, a, b, c if self.corruption == "abc" else io))
        clean_enc = self._encode(model, clean_items)
        corrupt_enc = self._encode(model, corrupt_items)
        layouts = Counter(r for _, r in clean_enc)
        layout = layouts.most_common(1)[0][0]
        clean, corrupt = [], []
        for (t, order, io, s, c), (ci, cr), (ki, kr) in zip(draws, clean_enc, corrupt_enc):
            if cr != layout or kr != layout:
                continue
            a, b = (io, s) if order == "ABBA" else (s, io)
            s2c = c if self.corruption == "abc" else io
            clean.append(IOIPrompt(io, s, s, order, t, self._render(self.templates[t], a, b, s)[0], tuple(ci),
                                   name_ids[io], name_ids[s]))
            corrupt.append(IOIPrompt(io, s, s2c, order, t, self._render(self.templates[t], a, b, s2c)[0], tuple(ki),
                                     name_ids[io], name_ids[s]))
        labels = tuple(self._label(tok, clean, j, r) for j, r in enumerate(layout))[:-1] + ("end",)
        self._cache[key] = (clean, corrupt, labels)
        return self._cache[key]

    @staticmethod
    def _label(tok: Any, clean: list[IOIPrompt], j: int, role: str) -> str:
        """``A``/``B``/``S2``/``BOS`` for slots; a literal token's text when every prompt has it there, else ``tJ``."""
        if role in ("A", "B", "BOS"):
            return role
        if role == "S":
            return "S2"
        ids = {p.tokens[j] for p in clean}
        text = tok.decode([next(iter(ids))]).strip() if len(ids) == 1 else ""
        return text or f"t{j}"

    def pairs(self, model: Any, *, n_per_op: int | None = None, seed: int = 0, corrupt_from: str = "all",
              split: str = "all") -> PromptPairs:
        """Clean/corrupt `PromptPairs` (groups: ABBA/BABA). ``n_per_op`` caps the number of pairs per order;
        ``seed`` and ``corrupt_from`` exist for signature compatibility with `ArithTask.pairs`. ``split``: ``"all"``
        (default) every prompt, ``"discovery"`` the first half, ``"evaluation"`` the second half (disjoint)."""
        if split not in SPLITS:
            raise unknown("split", split, SPLITS)
        clean, corrupt, labels = self._build(model)
        idx = list(range(len(clean)))
        if split == "discovery":
            idx = idx[: len(idx) // 2]
        elif split == "evaluation":
            idx = idx[len(idx) // 2 :]
        if n_per_op is not None:
            per: Counter[str] = Counter()
            keep = []
            for i in idx:
                if per[clean[i].order] < n_per_op:
                    per[clean[i].order] += 1
                    keep.append(i)
            idx = keep
        if not idx:
            raise TaskError(f"no IOI prompts left for this tokenizer (split {split!r}, n_per_op {n_per_op})")
        return PromptPairs(
            clean_tokens=torch.tensor([clean[i].tokens for i in idx]),
            corrupt_tokens=torch.tensor([corrupt[i].tokens for i in idx]),
            clean_answers=torch.tensor([clean[i].io_token for i in idx]),
            corrupt_answers=torch.tensor([clean[i].s_token for i in idx]),
            position_labels=labels,
            task=self.name,
            clean=tuple(clean[i] for i in idx),
            corrupt=tuple(corrupt[i] for i in idx),
            groups=tuple(clean[i].order for i in idx),
        )

    def mean_ablation_tokens(self, model: Any) -> torch.Tensor:
        """``[n pos]`` reference prompts of mean ablation: the ABC prompts (a third name replaces S2) of every
        drawn prompt, both splits, as in Wang et al. (2022). Same length as the clean prompts."""
        abc = self if self.corruption == "abc" else dataclasses.replace(self, corruption="abc", _cache={})
        return torch.tensor([p.tokens for p in abc._build(model)[1]])

    @torch.inference_mode()
    def logit_diff(self, model: Any) -> dict[str, float]:
        """Mean IO-S logit difference on clean and corrupt prompts, and how often IO beats S / is the top token."""
        pairs = self.pairs(model)
        clean_ld = ioi_logit_diff(model, pairs.clean_tokens, pairs.clean_answers, pairs.corrupt_answers)
        corrupt_ld = ioi_logit_diff(model, pairs.corrupt_tokens, pairs.clean_answers, pairs.corrupt_answers)
        top = model(pairs.clean_tokens)[:, -1].argmax(-1)
        return {
            "clean": float(clean_ld.mean()),
            "corrupt": float(corrupt_ld.mean()),
            "io_beats_s": float((clean_ld > 0).float().mean()),
            "io_top1": float((top == pairs.clean_answers).float().mean()),
            "n_prompts": pairs.n,
        }


@torch.inference_mode()
def ioi_logit_diff(model: Any, tokens: torch.Tensor, io: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Per-prompt ``logit(IO) - logit(S)`` at the last position."""
    logits = model(tokens)[:, -1].float()
    return logits.gather(-1, io[:, None])[:, 0] - logits.gather(-1, s[:, None])[:, 0]

