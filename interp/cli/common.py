"""Arguments and helpers shared by subcommands."""

from __future__ import annotations

import argparse
import gc
from typing import Any

from interp.cli.types import positive_int


def add_model_arg(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--model", "-m", default=default, required=default is None,
                   help="built-in name (toy-arith, smollm2-135m), local HF dir, .gguf file or hub id")
    p.add_argument("--device", default=None, help="torch device (default cpu; see --device-map to shard)")


def add_scale_args(p: argparse.ArgumentParser, *, nnsight: bool = False) -> None:
    """``--backend``, ``--remote``, ``--device-map``, ``--n-devices``, ``--dtype`` (docs/scale.md).

    ``nnsight`` says whether the command runs on the nnsight backend; where it does not, `load` refuses
    ``--backend nnsight``/``--remote`` with a message naming what does.
    """
    g = p.add_argument_group("scale (docs/scale.md)")
    g.add_argument("--backend", default="bridge",
                   help="bridge: TransformerLens 4 bridge, cone engine (default); nnsight: the same Hugging Face "
                        "weights behind nnsight" + ("" if nnsight else " (not for this command)"))
    g.add_argument("--remote", action="store_true",
                   help="with --backend nnsight: run the traces on NDIF (needs $NDIF_API_KEY and the network)")
    g.add_argument("--device-map", default=None,
                   help="shard the model across devices: auto, balanced, or FILE.json {module: device}")
    g.add_argument("--n-devices", type=int, default=None, help="shard the model across this many CUDA GPUs")
    g.add_argument("--dtype", default="float32", help="float32 (default), bfloat16, float16, float64")
    p.set_defaults(nnsight_ok=nnsight)


def add_task_args(p: argparse.ArgumentParser, default: str = "arith") -> None:
    p.add_argument("--task", "-t", default=default, help="task spec: arith, arith:+, arith:+-, arith:+:0-99, "
                   "ioi[:N[:abc|swap]], induction[:LEN[:N]], file:PATH.jsonl|.csv (your own pairs; docs/tasks.md)")
    p.add_argument("--n-per-op", type=positive_int, default=50,
                   help="clean prompts per operator (default 50, as the paper)")
    p.add_argument("--seed", type=int, default=0, help="seed of the corrupt sample (default 0)")
    p.add_argument("--corrupt-from", choices=("all", "same"), default="all",
                   help="corrupt prompts from all operators (paper) or the same operator")
    p.add_argument("--number-mode", choices=("auto", "single", "multi"), default="auto",
                   help="single-token numbers, multi-token numbers, or auto-detect (default)")
    p.add_argument("--prefix", default="", help="few-shot prefix placed before every prompt")


def load(args: Any) -> Any:
    """The model of ``args`` (``--model``, ``--device`` and, where the command has them, the scale options)."""
    from interp.models import load_model

    backend = getattr(args, "backend", "bridge")
    remote = bool(getattr(args, "remote", False))
    check_scale_args(args)
    # In the `interp` process itself (FREEZE_GC, set by `main()` called without arguments; never for in-process
    # callers or the library) the libraries and the model load with the cyclic garbage collector paused, then are
    # frozen out of its scans (`freeze_long_lived`).
    if FREEZE_GC:
        gc.disable()
    try:
        model = load_model(args.model, device=args.device, dtype=getattr(args, "dtype", "float32"),
                           device_map=getattr(args, "device_map", None), n_devices=getattr(args, "n_devices", None),
                           backend=backend, remote=remote)
    finally:
        if FREEZE_GC:
            freeze_long_lived()
            gc.enable()
    return model


def freeze_long_lived() -> None:
    """Leave every object alive now out of the cyclic garbage collector's later scans and make full scans rarer.

    Imported torch, TransformerLens and transformers plus a loaded model are ~400k objects that live as long as the
    process; each full scan walked all of them. `interp report` on toy-arith spent 2.3-12 s per run in the collector
    before, 0.3-1.0 s after (young generations are still collected as usual; `scripts/bench_report.py` reports the
    collector's seconds). For a process's own start-up only: the CLI (`load`) and the test processes
    (tests/conftest.py)."""
    gc.freeze()
    gc.set_threshold(700, 10, 1000)


def check_scale_args(args: Any) -> None:
    """Refuse combinations of scale options that the command cannot run (exit 2 through `InterpError`)."""
    from interp.backends import NNSIGHT_EXTRA, check_backend, nnsight_available
    from interp.errors import InterpError

    backend = check_backend(getattr(args, "backend", "bridge"))
    remote = bool(getattr(args, "remote", False))
    command = getattr(args, "command", "this command")
    if remote and backend != "nnsight":
        raise InterpError("--remote runs nnsight traces on NDIF: add --backend nnsight (the TransformerLens bridge "
                          "runs in this process only; shard it over local GPUs with --device-map or --n-devices)")
    if remote and not nnsight_available():
        raise InterpError(f"--remote needs the optional package nnsight, which is not installed: {NNSIGHT_EXTRA}")
    if backend == "nnsight" and not getattr(args, "nnsight_ok", False):
        raise InterpError(
            f"interp {command} --backend nnsight is not supported: {command} runs on the TransformerLens bridge "
            "(hooks, ablations, the cone engine). Use --backend bridge, optionally sharded with --device-map "
            "auto|balanced|FILE.json or --n-devices N; `interp patch --backend nnsight [--remote]` runs exact "
            "patching sweeps on nnsight"
        )
    if remote and (getattr(args, "device_map", None) or getattr(args, "n_devices", None)):
        raise InterpError("--remote runs on NDIF's machines: --device-map and --n-devices place a local model and "
                          "do not apply")


def task_from_args(args: Any) -> Any:
    from interp.tasks import parse_task

    return parse_task(args.task, number_mode=args.number_mode, prefix=args.prefix.replace("\\n", "\n"))


# set by `interp.cli.main` from -q/--quiet
QUIET = False
FREEZE_GC = False  # set by main() when it runs as the `interp` command (no argv given): see load()


def progress_enabled() -> bool:
    """Whether to print progress: stage lines always (terminal or log file), unless -q/--quiet was given."""
    return not QUIET


# ---------------------------------------------------------------------------------------------------- threads


def choose_threads(requested: int | None = None) -> int:
    """Set and return torch's intra-op thread count for this process.

    ``requested`` (``--threads N``) wins. Otherwise ``OMP_NUM_THREADS``, when set, is left as it is. Otherwise the
    cores that no other process is running on right now (``/proc/loadavg``), at least 1. Together with
    ``OMP_WAIT_POLICY=PASSIVE`` (set by ``import interp``) this keeps a shared machine from collapsing: with spinning
    OpenMP waits and more threads than free cores, a toy-arith forward pass ran 8x slower with 2 threads than with 1
    on a 2-core machine with 3 other busy processes (`interp circuit` 5x slower in an earlier measurement).
    """
    import os

    import torch

    if requested is not None:
        n = int(requested)
    elif os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    else:
        cores = os.cpu_count() or 1
        others = 0
        try:
            with open("/proc/loadavg") as f:
                others = int(f.read().split()[3].split("/")[0]) - 1  # processes running now, minus this one
        except (OSError, ValueError, IndexError):
            pass
        n = max(1, cores - max(0, others))
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()
