"""Concept lexicons: the seed tokens and the judge question of each concept (Rai & Yao, ACL 2024, methods.md §B.1).

The seven built-in concepts (``connections``, ``add``, ``subtract``, ``multiply``, ``division``, ``equals_to``,
``formula``) live in ``interp/data/concepts.json``. A `Lexicon` is an ordered, read-only mapping
``name -> Concept``; `load_lexicon` reads the built-ins or a user JSON file of the same shape and merges extra
tokens or whole new concepts, so users extend the data without editing the package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from interp.errors import InterpError, unknown

__all__ = ["ConceptError", "Concept", "Lexicon", "load_lexicon", "normalize_token", "BUILTIN_CONCEPTS"]

BUILTIN_CONCEPTS: tuple[str, ...] = ("connections", "add", "subtract", "multiply", "division", "equals_to", "formula")


class ConceptError(InterpError, ValueError):
    """Bad concept data or settings: an empty lexicon, a malformed lexicon file, a bad threshold or judge."""


def normalize_token(token: str) -> str:
    """How projected tokens are compared with a lexicon: stripped and lower-cased (the paper's rule)."""
    return token.strip().lower()


@dataclass(frozen=True)
class Concept:
    """One concept: its name, the question put to a judge, and its seed tokens (normalized)."""

    name: str
    question: str
    tokens: frozenset[str]

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConceptError(f"a concept needs a non-empty name; got {self.name!r}")
        toks = frozenset(normalize_token(t) for t in self.tokens if normalize_token(t))
        if not toks:
            raise ConceptError(
                f"concept {self.name!r} has an empty lexicon: give at least one non-blank seed token, "
                "e.g. load_lexicon(extra={'" + self.name + "': ['token', ...]})"
            )
        object.__setattr__(self, "tokens", toks)
        if not isinstance(self.question, str) or not self.question.strip():
            object.__setattr__(self, "question", f"Is this neuron promoting the concept '{self.name}'?")

    def matches(self, tokens: Iterable[str]) -> list[str]:
        """The tokens (as given, in order, duplicates kept) whose normalized form is in this lexicon."""
        return [t for t in tokens if normalize_token(t) in self.tokens]

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "tokens": sorted(self.tokens)}


class Lexicon(Mapping[str, Concept]):
    """An ordered, read-only ``name -> Concept`` mapping; unknown names raise an error listing the valid ones."""

    def __init__(self, concepts: Iterable[Concept]) -> None:
        self._c: dict[str, Concept] = {}
        for c in concepts:
            if c.name in self._c:
                raise ConceptError(f"concept {c.name!r} is defined twice")
            self._c[c.name] = c
        if not self._c:
            raise ConceptError("a lexicon needs at least one concept")

    def __getitem__(self, name: str) -> Concept:
        if name not in self._c:
            raise unknown("concept", name, self._c)
        return self._c[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._c)

    def __len__(self) -> int:
        return len(self._c)

    def __repr__(self) -> str:
        return f"Lexicon({', '.join(f'{n}[{len(c.tokens)}]' for n, c in self._c.items())})"

    def select(self, names: Iterable[str] | None) -> Lexicon:
        """The sub-lexicon of ``names`` (all when None); unknown names raise `UnknownNameError`."""
        if names is None:
            return self
        names = list(names)
        if not names:
            raise ConceptError("no concepts selected")
        return Lexicon(self[n] for n in names)

    def to_dict(self) -> dict[str, Any]:
        return {"concepts": {n: c.to_dict() for n, c in self._c.items()}}

    def save(self, path: str | os.PathLike[str]) -> None:
        from interp._io import write_json_atomic

        write_json_atomic(path, self.to_dict())


def _parse(data: Any, source: str) -> list[Concept]:
    block = data.get("concepts") if isinstance(data, Mapping) else None
    if not isinstance(block, Mapping):
        raise ConceptError(f"{source}: expected {{\"concepts\": {{name: {{\"question\": ..., \"tokens\": [...]}}}}}}")
    out = []
    for name, entry in block.items():
        if isinstance(entry, list):  # shorthand: name -> tokens
            entry = {"tokens": entry}
        if not isinstance(entry, Mapping) or not isinstance(entry.get("tokens", None), list):
            raise ConceptError(f"{source}: concept {name!r} needs a 'tokens' list; got {entry!r}")
        out.append(Concept(name, entry.get("question", ""), frozenset(map(str, entry["tokens"]))))
    return out


def load_lexicon(
    path: str | os.PathLike[str] | None = None,
    *,
    extra: Mapping[str, Iterable[str] | Mapping[str, Any]] | None = None,
    concepts: Iterable[str] | None = None,
) -> Lexicon:
    """The built-in lexicons (or those of the JSON file ``path``), extended by ``extra``, restricted to ``concepts``.

    ``extra`` maps a concept name to more seed tokens (added to an existing concept) or to
    ``{"question": ..., "tokens": [...]}`` (a new concept, or a replacement question).
    """
    if path is None:
        text = resources.files("interp").joinpath("data", "concepts.json").read_text(encoding="utf-8")
        source = "interp/data/concepts.json"
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConceptError(f"cannot read lexicon file {path}: {e}") from e
        source = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConceptError(f"{source} is not valid JSON: {e}") from e
    found = {c.name: c for c in _parse(data, source)}
    for name, add in (extra or {}).items():
        if isinstance(add, Mapping):
            question = add.get("question", found[name].question if name in found else "")
            toks = list(add.get("tokens", []))
        else:
            if isinstance(add, str):
                raise ConceptError(f"extra tokens of {name!r} must be a list of strings, not the string {add!r}")
            question, toks = (found[name].question if name in found else ""), list(add)
        base = set(found[name].tokens) if name in found else set()
        found[name] = Concept(name, question, frozenset(base | {str(t) for t in toks}))
    return Lexicon(found.values()).select(concepts)
