"""Reading task data from JSONL and CSV files: one row per line, errors naming the file and line.

Pair files (`interp.tasks.custom.PairsTask`): columns ``clean``, ``corrupt``, ``answer`` and optional
``corrupt_answer``, ``group``. Grid files (`interp.tasks.custom.OperandTask`): ``a``, ``b``, ``result``, ``tokens``
(or ``prompt``), ``answer`` and optional ``op``. In JSONL, prompts are strings or token-id lists and answers strings
or ids; in CSV every cell is text, except a prompt cell written as a JSON list (``[12, 7, 3]``), whose answers are
then ids.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from interp.errors import TaskError

__all__ = ["GRID_COLUMNS", "PAIR_COLUMNS", "load_task_file", "pairs_columns", "read_rows"]

PAIR_COLUMNS = ("clean", "corrupt", "answer", "corrupt_answer", "group")
PAIR_REQUIRED = ("clean", "corrupt", "answer")
GRID_COLUMNS = ("a", "b", "result", "tokens", "prompt", "answer", "op")
GRID_REQUIRED = ("a", "b", "result", "answer")
SUFFIXES = (".jsonl", ".csv")


def read_rows(path: Any) -> list[tuple[str, dict[str, Any]]]:
    """``[(where, row)]`` of a ``.jsonl`` or ``.csv`` file; ``where`` is ``"PATH line N"``."""
    p = Path(str(path)).expanduser()
    if p.suffix.lower() not in SUFFIXES:
        raise TaskError(f"task file {p} must end in .jsonl or .csv (one pair per line)")
    if not p.is_file():
        raise TaskError(f"task file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    rows: list[tuple[str, dict[str, Any]]] = []
    if p.suffix.lower() == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise TaskError(f"{p} line {n}: not valid JSON ({e.msg}); each line must be one JSON object "
                                f"such as {{\"clean\": ..., \"corrupt\": ..., \"answer\": ...}}") from None
            if not isinstance(obj, dict):
                raise TaskError(f"{p} line {n}: expected a JSON object, got {type(obj).__name__}")
            rows.append((f"{p} line {n}", obj))
    else:
        reader = csv.DictReader(text.splitlines())
        for row in reader:
            extra = row.pop(None, None)  # type: ignore[call-overload]
            if extra:
                raise TaskError(f"{p} line {reader.line_num}: more cells than header columns ({reader.fieldnames})")
            if all(v in (None, "") for v in row.values()):
                continue
            if any(v is None for v in row.values()):
                missing = [k for k, v in row.items() if v is None]
                raise TaskError(f"{p} line {reader.line_num}: missing cell(s) for {missing}")
            rows.append((f"{p} line {reader.line_num}", {k: _csv_cell(k, v) for k, v in row.items()}))
    if not rows:
        raise TaskError(f"task file {p} is empty: it holds no rows")
    return rows


def _csv_cell(key: str, v: str) -> Any:
    if key in ("clean", "corrupt", "tokens") and v.strip().startswith("["):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    if key in ("a", "b", "result"):
        return int(v) if v.strip().lstrip("-").isdigit() else v
    return v


def _check_columns(rows: Sequence[tuple[str, Mapping[str, Any]]], valid: Sequence[str],
                   required: Sequence[str]) -> None:
    for where, row in rows:
        unknown_cols = [k for k in row if k not in valid]
        if unknown_cols:
            raise TaskError(f"{where}: unknown column(s) {unknown_cols}; valid columns: {', '.join(valid)}")
        missing = [k for k in required if k not in row or row[k] in (None, "")]
        if missing:
            raise TaskError(f"{where}: missing column(s) {missing}; every row needs {', '.join(required)} "
                            f"(optional: {', '.join(c for c in valid if c not in required)})")


def pairs_columns(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """`PairsTask` keyword arguments from rows; ``corrupt_answer``/``group`` must be in all rows or none."""
    _check_columns(rows, PAIR_COLUMNS, PAIR_REQUIRED)
    out: dict[str, Any] = {"clean": [r["clean"] for _, r in rows], "corrupt": [r["corrupt"] for _, r in rows],
                           "answers": [r["answer"] for _, r in rows], "where": [w for w, _ in rows]}
    for col, key in (("corrupt_answer", "corrupt_answers"), ("group", "groups")):
        have = [w for w, r in rows if r.get(col) not in (None, "")]
        if have and len(have) != len(rows):
            lacking = next(w for w, r in rows if r.get(col) in (None, ""))
            raise TaskError(f"{lacking}: no {col!r} although other rows have one; give it in every row or none")
        if have:
            out[key] = [r[col] if col != "group" else str(r[col]) for _, r in rows]
    return out


def grid_rows(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """``{op: [row dicts]}`` for `OperandTask` from grid-file rows."""
    _check_columns(rows, GRID_COLUMNS, GRID_REQUIRED)
    out: dict[str, list[dict[str, Any]]] = {}
    for where, r in rows:
        toks = r.get("tokens", r.get("prompt"))
        if toks in (None, ""):
            raise TaskError(f"{where}: missing column 'tokens' (or 'prompt'): the prompt's token ids or text")
        for k in ("a", "b", "result"):
            if not isinstance(r[k], int) or isinstance(r[k], bool):
                raise TaskError(f"{where}: {k} must be an integer; got {r[k]!r}")
        out.setdefault(str(r.get("op") or "custom"), []).append(
            {"a": r["a"], "b": r["b"], "result": r["result"], "tokens": toks, "answer_token": r["answer"]})
    return out


def load_task_file(path: Any, **kwargs: Any) -> Any:
    """A `PairsTask` (pair columns) or `OperandTask` (grid columns ``a``, ``b``, ``result``) from a file."""
    from interp.tasks.custom import OperandTask, PairsTask

    rows = read_rows(path)
    kwargs.setdefault("name", f"file:{path}")
    if any("a" in r or "result" in r for _, r in rows):
        return OperandTask(grid_rows(rows), **kwargs)
    return PairsTask(**pairs_columns(rows), **kwargs)
