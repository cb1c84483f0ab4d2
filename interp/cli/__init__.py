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
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, mod in COMMANDS.items():
        importlib.import_module(mod).register(sub, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except InterpError as e:
        sys.stderr.write(f"interp {args.command}: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
