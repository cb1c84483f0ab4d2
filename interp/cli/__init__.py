"""The ``interp`` command line. One module per subcommand, each with ``register(subparsers)`` and ``run(args)``.

Building the parser imports no torch (``interp --help`` and ``interp --version`` stay well under a second): command
modules import the library inside ``run``, option choices come from `interp.cli.choices`. Before a command runs,
`main` checks every output path it names (``--out``, ``--plot``, ``--mib``...; `interp._io.check_outputs`) so that
a bad path fails in milliseconds, before the model loads. Bad input exits with status 2 and one line naming what is
valid; Ctrl-C exits with 130 and no traceback.

Level 8 (cli): may import every other level; nothing imports it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["main", "COMMANDS", "build_parser"]

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

# argparse dests that are output files; `OUTPUT_DIRS` are output folders (a command lists its own in its defaults)
OUTPUT_FILES = ("out", "plot", "mib")


def _version() -> str:
    from importlib import metadata

    from interp import __version__

    deps = []
    for dist in ("torch", "transformer-lens", "transformers"):
        try:
            deps.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:  # pragma: no cover - a broken install
            deps.append(f"{dist} not installed")
    return f"interp {__version__} ({', '.join(deps)}; Python {sys.version.split()[0]})"


def _add_verbosity(p: argparse.ArgumentParser, *, top: bool) -> None:
    """-v/--verbose, -q/--quiet and --threads, accepted before and after the subcommand. On the subcommands the
    default is SUPPRESS, so a value given before the subcommand is not reset by the subparser."""
    from interp.cli.types import positive_int

    d = False if top else argparse.SUPPRESS
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true", default=d,
                   help="log details (INFO messages) besides the stage lines")
    g.add_argument("-q", "--quiet", action="store_true", default=d,
                   help="no progress lines on stderr; only warnings, errors and results")
    p.add_argument("--threads", type=positive_int, default=None if top else argparse.SUPPRESS, metavar="N",
                   help="torch CPU threads (default: OMP_NUM_THREADS when set, else the cores no other process is "
                        "running on now, at least 1)")


def build_parser() -> argparse.ArgumentParser:
    from interp.cli.helptext import HelpFormatter, apply_help

    parser = argparse.ArgumentParser(
        prog="interp",
        description="Mechanistic interpretability on TransformerLens 4: patching, circuits, neuron heuristics.",
        epilog="`interp COMMAND --help` describes a command, its defaults, examples and typical runtime.\n"
               "examples:\n  interp models\n  interp report --model toy-arith --out report.html",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    _add_verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, mod in COMMANDS.items():
        importlib.import_module(mod).register(sub, name)
        p = sub.choices[name]
        apply_help(p, name)
        _add_verbosity(p, top=False)
        for action in p._actions:  # subcommands of a subcommand (explain saliency ...) accept -v/-q too
            if isinstance(action, argparse._SubParsersAction):
                for q in action.choices.values():
                    _add_verbosity(q, top=False)
    return parser


_PARSERS: dict[str, argparse.ArgumentParser] = {}


def _parser() -> argparse.ArgumentParser:
    """`build_parser`, built once per process (defaults that depend on INTERP_FAST are keyed on it)."""
    import os

    key = os.environ.get("INTERP_FAST", "")
    if key not in _PARSERS:
        _PARSERS[key] = build_parser()
    return _PARSERS[key]


def check_output_args(args: argparse.Namespace) -> None:
    """Refuse unwritable output paths of ``args`` before anything runs (`interp._io.check_outputs`)."""
    from interp._io import check_outputs

    dirs = tuple(getattr(args, "output_dirs", ()))
    names = [d for d in OUTPUT_FILES if d not in dirs] + list(dirs)
    paths = {f"--{d.replace('_', '-')}": getattr(args, d, None) for d in names}
    check_outputs(paths, directories=tuple(f"--{d.replace('_', '-')}" for d in dirs))


def main(argv: Sequence[str] | None = None) -> int:
    command = "?"
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as e:  # --help, --version (0) and usage errors (2): a status, also for in-process callers
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        command = args.command
        level = logging.INFO if args.verbose else logging.ERROR if args.quiet else logging.WARNING
        logging.basicConfig(level=level, format="%(message)s")
        logging.getLogger().setLevel(level)
        from interp.cli import common
        from interp.errors import InterpError

        common.QUIET = bool(args.quiet)  # -q: no progress lines on stderr
        common.FREEZE_GC = argv is None  # the `interp` process itself, not an in-process caller
        try:
            check_output_args(args)
            if args.command != "models":
                common.choose_threads(getattr(args, "threads", None))
            return int(args.func(args) or 0)
        except InterpError as e:
            sys.stderr.write(f"interp {command}: error: {e}\n")
            return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"interp {command}: interrupted\n" if command != "?" else "interp: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
