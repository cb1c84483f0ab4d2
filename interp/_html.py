"""Small HTML helpers shared by the report sections (escaping and plain tables)."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["esc", "table"]


def esc(s: Any) -> str:
    """``str(s)`` with HTML special characters escaped."""
    return html.escape(str(s))


def table(rows: list[list[Any]], header: list[str], *, caption: str | None = None) -> str:
    """A ``<table>`` with one header row; every cell is escaped. ``caption`` (HTML, not escaped: callers pass
    trusted text with markup) says what the numbers are."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    cap = f"<caption>{caption}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
