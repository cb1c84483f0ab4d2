"""Word problems and chain-of-thought exemplar variants (data in ``interp/data``), prompts and answer extraction.

Prompt format (Rai & Yao, methods.md §B.0): 8 exemplars, each ``Question: {q}\\n[{header}\\n]{reasoning}\\nThe answer is
{a}.``, joined by a blank line, then ``\\n\\nQuestion: {q}\\n[{header}\\n]`` for the test question (``header`` is
"Let's think step by step" except for ``equation_only`` and ``no_cot``). The answer is read from the first
``The answer is N`` of the continuation (the paper parses the 9th occurrence of the whole output, which is the same
thing). ``fallback="last_number"`` also accepts the last number written before generation stopped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from interp.errors import InterpError, unknown

__all__ = [
    "CotError",
    "WordProblem",
    "Exemplar",
    "Variant",
    "VARIANTS",
    "load_problems",
    "load_variants",
    "build_prefix",
    "build_query",
    "extract_answer",
    "answer_complete",
    "ANSWER_PREFIX",
]

ANSWER_PREFIX = "The answer is "
VARIANTS: tuple[str, ...] = ("full_cot", "equation_only", "text_only", "add_only", "mult_only", "incorrect_label",
                             "incorrect_ood_label", "no_cot")


class CotError(InterpError, ValueError):
    """Bad chain-of-thought data or settings (malformed files, no problems, bad counts)."""


@dataclass(frozen=True)
class WordProblem:
    id: str
    question: str
    answer: float
    steps: int = 1
    operators: tuple[str, ...] = ()


@dataclass(frozen=True)
class Exemplar:
    question: str
    reasoning: tuple[str, ...]
    answer: str

    def render(self, header: str | None) -> str:
        lines = [f"Question: {self.question}"]
        if header:
            lines.append(header)
        lines += list(self.reasoning)
        lines.append(f"{ANSWER_PREFIX}{self.answer}.")
        return "\n".join(lines)


@dataclass(frozen=True)
class Variant:
    """One exemplar set: name, what it ablates, the step-by-step header (or None) and its exemplars."""

    name: str
    description: str
    header: str | None
    exemplars: tuple[Exemplar, ...]


def _read(name: str, path: str | os.PathLike[str] | None) -> Any:
    try:
        if path is None:
            return json.loads(resources.files("interp").joinpath("data", name).read_text(encoding="utf-8"))
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise CotError(f"cannot read {path or 'interp/data/' + name}: {e}") from e


def load_problems(path: str | os.PathLike[str] | None = None, *, n: int | None = None,
                  ids: Sequence[str] | None = None) -> list[WordProblem]:
    """The built-in word problems (or those of a JSON file ``{"problems": [{id, question, answer}, ...]}``).

    ``n`` keeps the first ``n`` in a fixed interleaved order (one-step and two-step problems of every operator
    alternate, so any prefix is balanced); ``ids`` selects by id.
    """
    data = _read("word_problems.json", path)
    try:
        probs = [WordProblem(str(p["id"]), str(p["question"]), float(p["answer"]), int(p.get("steps", 1)),
                             tuple(p.get("operators", ()))) for p in data["problems"]]
    except (KeyError, TypeError, ValueError) as e:
        raise CotError(f"malformed word-problem file: {e}; each problem needs id, question and answer") from e
    if not probs:
        raise CotError("the word-problem file holds no problems")
    if ids is not None:
        by_id = {p.id: p for p in probs}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise CotError(f"unknown problem ids {missing[:5]}; ids look like {probs[0].id!r}")
        probs = [by_id[i] for i in ids]
    probs = _interleave(probs)
    if n is not None:
        if isinstance(n, bool) or int(n) < 1:
            raise CotError(f"n must be a positive number of problems; got {n!r}")
        probs = probs[: int(n)]
    return probs


def _interleave(probs: list[WordProblem]) -> list[WordProblem]:
    """Round-robin over (steps, first operator) groups in first-seen order: balanced prefixes."""
    groups: dict[tuple[int, str], list[WordProblem]] = {}
    for p in probs:
        groups.setdefault((p.steps, p.operators[0] if p.operators else ""), []).append(p)
    out, lists = [], list(groups.values())
    while any(lists):
        for g in lists:
            if g:
                out.append(g.pop(0))
    return out


def load_variants(path: str | os.PathLike[str] | None = None,
                  names: Sequence[str] | None = None) -> dict[str, Variant]:
    """The exemplar sets by name (all by default, in the order of `VARIANTS` for the built-ins)."""
    data = _read("cot_variants.json", path)
    try:
        variants = {
            name: Variant(name, v.get("description", ""), v.get("header"),
                          tuple(Exemplar(e["question"], tuple(e.get("reasoning", ())), str(e["answer"]))
                                for e in v["exemplars"]))
            for name, v in data["variants"].items()
        }
    except (KeyError, TypeError, AttributeError) as e:
        raise CotError(f"malformed variant file: {e}; each variant needs exemplars with question and answer") from e
    for v in variants.values():
        if not v.exemplars:
            raise CotError(f"variant {v.name!r} has no exemplars")
    if names is None:
        return variants
    names = list(names)
    if not names:
        raise CotError("no variants selected")
    for n in names:
        if n not in variants:
            raise unknown("CoT variant", n, variants)
    return {n: variants[n] for n in names}


def build_prefix(variant: Variant) -> str:
    """The exemplars of ``variant`` joined by blank lines (the part shared by every question)."""
    return "\n\n".join(e.render(variant.header) for e in variant.exemplars)


def build_query(variant: Variant, question: str) -> str:
    """What follows the prefix for one test question."""
    return f"\n\nQuestion: {question}\n" + (f"{variant.header}\n" if variant.header else "")


_ANSWER_RE = re.compile(r"The answer is\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")
_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _to_float(s: str) -> float | None:
    try:
        return float(s.replace(",", ""))
    except ValueError:
        return None


def _cut(text: str) -> str:
    """The continuation up to the end of the answer to this question (before a new 'Question:')."""
    for stop in ("\n\n", "Question:"):
        i = text.find(stop)
        if i >= 0:
            text = text[:i]
    return text


def extract_answer(text: str, *, fallback: str = "none") -> float | None:
    """The number after the first ``The answer is`` of ``text``; with ``fallback="last_number"`` the last number."""
    if fallback not in ("none", "last_number"):
        raise unknown("answer fallback", fallback, ("none", "last_number"))
    body = _cut(text)
    m = _ANSWER_RE.search(body)
    if m:
        return _to_float(m.group(1).rstrip(".,"))
    if fallback == "last_number":
        nums = _NUMBER_RE.findall(body)
        return _to_float(nums[-1].rstrip(".,")) if nums else None
    return None


_DONE_RE = re.compile(r"The answer is[^\n]*?\S[^\d\n,]|The answer is[^\n]*\n")


def answer_complete(text: str) -> bool:
    """Generation can stop: the answer line is finished, a blank line or a new question started."""
    return "\n\n" in text or "Question:" in text or _DONE_RE.search(text) is not None
