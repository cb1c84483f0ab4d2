"""Stimulus sets written for the project (``interp/data``) and user files.

* ``sentiment.jsonl``: 200 short reviews, 100 positive and 100 negative, written in contrasting pairs (pair *i* is
  the same sentence with its sentiment flipped), each with its cue word and a fixed train/test split. A user file
  is JSONL with ``text`` and ``label`` (any two label values) per line.
* ``statements.json``: true/false statements in two families for truth probes and their cross-dataset test:
  ``cities`` (216: "The city of Paris is in France." / "... is in Austria.") and ``animals`` (202: "A dog is a
  mammal." / "A dog is an amphibian."). Each true statement is paired with a false one; every 4th pair is held out.
  Regenerate both with ``scripts/make_explain_data.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from interp.errors import unknown
from interp.explain._common import ExplainError

__all__ = ["Labelled", "load_sentiment", "load_statements", "statement_families", "split", "check_two_classes"]


@dataclass(frozen=True)
class Labelled:
    """A labelled text; ``pair`` links contrasting items (-1: unpaired); ``split`` is ``train`` or ``test``."""

    text: str
    label: Any
    cue: str = ""
    pair: int = -1
    split: str = "train"


def _builtin(name: str) -> str:
    return resources.files("interp").joinpath("data", name).read_text(encoding="utf-8")


def load_sentiment(path: str | os.PathLike[str] | None = None) -> list[Labelled]:
    """The built-in sentiment set, or a user's JSONL file of ``{"text": ..., "label": ...}`` lines."""
    try:
        text = _builtin("sentiment.jsonl") if path is None else open(path, encoding="utf-8").read()
    except OSError as e:
        raise ExplainError(f"cannot read the sentiment file {path}: {e}") from e
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            rows.append(Labelled(str(d["text"]), d["label"], str(d.get("cue", "")), int(d.get("pair", -1)),
                                 str(d.get("split", "train"))))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ExplainError(f"{path or 'sentiment.jsonl'} line {n} is not a JSON object with 'text' and 'label': "
                               f"{e}") from e
    check_two_classes([r.label for r in rows], what=f"the sentiment set {path or '(built-in)'}")
    return rows


def statement_families(path: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Family name -> description."""
    return {k: v.get("description", "") for k, v in _statements(path).items()}


def _statements(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    try:
        d = json.loads(_builtin("statements.json") if path is None else open(path, encoding="utf-8").read())
        return dict(d["families"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ExplainError(f"cannot read statements from {path or 'interp/data/statements.json'}: {e}; expected "
                           '{"families": {name: {"items": [{"text", "label"}...]}}}') from e


def load_statements(family: str = "cities", path: str | os.PathLike[str] | None = None) -> list[Labelled]:
    """True/false statements of one family (``cities`` or ``animals`` built in); labels are booleans."""
    fams = _statements(path)
    if family not in fams:
        raise unknown("statement family", family, fams)
    try:
        rows = [Labelled(str(x["text"]), bool(x["label"]), "", int(x.get("pair", -1)), str(x.get("split", "train")))
                for x in fams[family]["items"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ExplainError(f"malformed statement family {family!r}: {e}") from e
    check_two_classes([r.label for r in rows], what=f"statement family {family!r}")
    return rows


def check_two_classes(labels: Sequence[Any], *, what: str = "the stimulus set") -> list[Any]:
    """The two distinct labels (sorted); empty or one-class sets raise `ExplainError`."""
    if len(labels) == 0:
        raise ExplainError(f"{what} is empty; it needs examples of two classes")
    classes = sorted(set(labels), key=str)
    if len(classes) < 2:
        raise ExplainError(f"{what} has only one class ({classes[0]!r}, {len(labels)} examples); it needs two")
    if len(classes) > 2:
        raise ExplainError(f"{what} has {len(classes)} classes {classes[:5]}; it needs exactly two")
    return classes


def split(rows: Sequence[Labelled], which: str) -> list[Labelled]:
    if which not in ("train", "test", "all"):
        raise unknown("split", which, ("train", "test", "all"))
    return list(rows) if which == "all" else [r for r in rows if r.split == which]
