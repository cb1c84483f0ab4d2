"""``interp train-toy``: train the toy arithmetic model deterministically (answer-only loss)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

from interp.cli.choices import TOY_DEFAULTS as D
from interp.cli.types import nonneg_int, positive_float, positive_int


def register(sub: Any, name: str) -> None:
    p = sub.add_parser(name, help="train toy-arith (seeded, answer-only loss); optional checkpoints")
    p.add_argument("--out", "-o", default=None,
                   help="model directory to write (created; loadable with --model DIR); it must not be a file")
    p.add_argument("--install", action="store_true",
                   help="write into the package as the built-in toy-arith (replaces the shipped model)")
    p.add_argument("--steps", type=positive_int, default=D["steps"],
                   help="optimiser steps, >= 1 (one-cycle learning-rate schedule over all of them)")
    p.add_argument("--seed", type=int, default=D["seed"], help="seed of the initialisation, data split and batches")
    p.add_argument("--n-layers", type=positive_int, default=D["n_layers"], help="transformer blocks, >= 1")
    p.add_argument("--d-model", type=positive_int, default=D["d_model"],
                   help=f"residual width, >= 1 and divisible by the {D['n_heads']} heads")
    p.add_argument("--batch-size", type=positive_int, default=D["batch_size"], help="prompts per optimiser step, >= 1")
    p.add_argument("--lr", type=positive_float, default=D["lr"],
                   help="peak learning rate of AdamW, a finite number > 0")
    p.add_argument("--checkpoint-every", type=nonneg_int, default=0,
                   help="save a loadable checkpoint step_N every N steps for `interp dynamics` (default 0: none)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="where checkpoints go (default OUT/checkpoints); written as a whole at the end: an "
                        "interrupted run leaves none")
    p.add_argument("--device", default="cpu",
                   help="where the model trains: cpu (default), cuda, cuda:N or mps (must exist on this machine); "
                        "the batches are the same on every device")
    p.set_defaults(func=run, output_dirs=("out", "checkpoint_dir"))


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from interp.errors import InterpError
    from interp.models.toy import TOY_DIR, ToyArithConfig

    if not args.out and not args.install:
        raise InterpError("give --out DIR (a new model directory) or --install (replace the built-in toy-arith)")
    if args.checkpoint_every < 0:
        raise InterpError(f"--checkpoint-every must be >= 0 (0: no checkpoints); got {args.checkpoint_every}")
    if args.checkpoint_every > args.steps:
        raise InterpError(f"--checkpoint-every {args.checkpoint_every} is larger than --steps {args.steps}: no "
                          "checkpoint would be saved; give a value in 1..steps, or 0 for none")
    if args.checkpoint_dir and not args.checkpoint_every:
        raise InterpError("--checkpoint-dir needs --checkpoint-every N (N >= 1)")
    from interp.models.placement import normalize_device

    device = normalize_device(args.device, what="--device")  # an absent device fails before any work
    out = Path(TOY_DIR if args.install else args.out)
    cfg = replace(ToyArithConfig(), steps=args.steps, seed=args.seed, n_layers=args.n_layers,
                  d_model=args.d_model, batch_size=args.batch_size, lr=args.lr)  # checks every value
    ckpt_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else (out / "checkpoints" if args.checkpoint_every
                                                                      else None)
    return _train(cfg, out, ckpt_dir, args.checkpoint_every, device)


def _train(cfg: Any, out: Path, ckpt_dir: Path | None, every: int, device: str = "cpu") -> int:
    """Train; checkpoints go to a staging folder renamed to ``ckpt_dir`` only when training finished, and whatever
    this run created is removed when it fails or is interrupted."""
    from interp.errors import FileError
    from interp.models.toy import save_toy, train_toy

    created = [p for p in (out, ckpt_dir) if p is not None and not p.exists()]
    staging = None if ckpt_dir is None else ckpt_dir.with_name(f".{ckpt_dir.name}.partial-{os.getpid()}")
    try:
        res = train_toy(cfg, checkpoint_dir=staging, checkpoint_every=every, device=device)
        meta = {"held_out_accuracy": res.held_out_accuracy, "train_accuracy": res.train_accuracy,
                "seconds": round(res.seconds, 1),
                "checkpoints": [str(ckpt_dir / Path(c).name) for c in res.checkpoints] if ckpt_dir else []}
        save_toy(cfg, res.state_dict, out, meta=meta)
        if staging is not None:
            try:
                if ckpt_dir.exists():
                    shutil.rmtree(ckpt_dir)
                os.replace(staging, ckpt_dir)
            except OSError as e:
                raise FileError(f"cannot move the checkpoints to {str(ckpt_dir)!r}: {e.strerror}") from e
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for p in created:
            shutil.rmtree(p, ignore_errors=True)
        raise
    print(json.dumps({"out": str(out), **meta}, indent=1))
    return 0
