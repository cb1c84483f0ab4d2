"""The ``interp`` command line. One module per subcommand, each with ``register(subparsers)`` and ``run(args)``.

Level 8 (cli): may import every other level; nothing imports it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from interp.errors import InterpError

__all__ = ["main", "COMMANDS"]

# subcommand name -> module under interp.cli
COMMANDS: dict[str, str] = {
    "models": "interp.cli.models_cmd",
    "train-toy": "interp.cli.train_toy_cmd",
    "patch": "interp.cli.patch_cmd",
    "report": "interp.cli.report_cmd",
    "circuit": "interp.cli.circuit_cmd",
    "neurons": "interp.cli.neurons_cmd",
    "dynamics": "interp.cli.dynamics_cmd",
    "concepts": "interp.cli.concepts_cmd",
    "cot": "interp.cli.cot_cmd",
    "edges": "interp.cli.edges_cmd",
    "explain": "interp.cli.explain_cmd",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interp",
        description="Mechanistic interpretability on TransformerLens 4: patching, circuits, neuron heuristics.",
    )
    _add_global_args(parser, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, mod in COMMANDS.items():
        importlib.import_module(mod).register(sub, name)
    for p in sub.choices.values():  # -v/-q/--threads also after the subcommand (``interp report -v``)
        _add_global_args(p, argparse.SUPPRESS)
    return parser


def _add_global_args(p: argparse.ArgumentParser, default: object) -> None:
    """-v/--verbose, -q/--quiet, --threads, accepted before and after the subcommand; absent ones are not set on
    the namespace (``default=SUPPRESS``) so a subcommand's parser never overwrites a value given before it."""
    g = p.add_argument_group("output and CPU")
    g.add_argument("-v", "--verbose", action="store_true", default=default,
                   help="log details (INFO messages) besides the stage lines")
    g.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="no progress lines on stderr (errors and results only)")
    g.add_argument("--threads", type=int, default=default, metavar="N",
                   help="torch CPU threads (default: OMP_NUM_THREADS when set, else the cores no other process is "
                        "running on now, at least 1)")


def main(argv: Sequence[str] | None = None) -> int:
    from interp.cli import common

    parser = build_parser()
    args = parser.parse_args(argv)
    verbose, quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    if verbose and quiet:
        parser.error("-v/--verbose and -q/--quiet exclude each other")
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        parser.error(f"--threads must be >= 1; got {threads}")
    common.QUIET = bool(quiet)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    try:
        if args.command != "models":
            common.choose_threads(threads)
        return int(args.func(args) or 0)
    except InterpError as e:
        sys.stderr.write(f"interp {args.command}: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
