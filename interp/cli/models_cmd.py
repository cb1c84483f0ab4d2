"""``interp models``: list the built-in models and whether each can be loaded now."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any, name: str) -> None:
    p = sub.add_parser(name, help="list built-in models and whether each is available now")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp.models import list_models

    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    w = max(len(r["name"]) for r in rows)
    for r in rows:
        mark = "yes" if r["available"] else "no "
        print(f"{r['name']:<{w}}  available: {mark}  {r['status']}\n{'':<{w}}  {r['description']}")
    print("Also accepted: a local HF model directory, a local .gguf file, or a Hugging Face hub id (online only).")
    return 0
