"""Arguments and helpers shared by subcommands."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_model_arg(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--model", "-m", default=default, required=default is None,
                   help="built-in name (toy-arith, smollm2-135m), local HF dir, .gguf file or hub id")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")


def add_task_args(p: argparse.ArgumentParser, default: str = "arith") -> None:
    p.add_argument("--task", "-t", default=default, help="task spec: arith, arith:+, arith:+-, arith:+:0-99, "
                   "ioi[:N[:abc|swap]], induction[:LEN[:N]]")
    p.add_argument("--n-per-op", type=int, default=50, help="clean prompts per operator (default 50, as the paper)")
    p.add_argument("--seed", type=int, default=0, help="seed of the corrupt sample (default 0)")
    p.add_argument("--corrupt-from", choices=("all", "same"), default="all",
                   help="corrupt prompts from all operators (paper) or the same operator")
    p.add_argument("--number-mode", choices=("auto", "single", "multi"), default="auto",
                   help="single-token numbers, multi-token numbers, or auto-detect (default)")
    p.add_argument("--prefix", default="", help="few-shot prefix placed before every prompt")


def load(args: Any) -> Any:
    from interp.models import load_model

    return load_model(args.model, device=args.device)


def task_from_args(args: Any) -> Any:
    from interp.tasks import parse_task

    return parse_task(args.task, number_mode=args.number_mode, prefix=args.prefix.replace("\\n", "\n"))


def progress_enabled() -> bool:
    return sys.stderr.isatty()
