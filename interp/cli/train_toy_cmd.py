"""``interp train-toy``: train the toy arithmetic model deterministically (answer-only loss)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any, name: str) -> None:
    from interp.models.toy import ToyArithConfig

    d = ToyArithConfig()
    p = sub.add_parser(name, help="train toy-arith (seeded, answer-only loss); optional checkpoints")
    p.add_argument("--out", "-o", default=None, help="model directory to write (loadable with --model DIR)")
    p.add_argument("--install", action="store_true", help="write into the package as the built-in toy-arith")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps (default {d.steps})")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--n-layers", type=int, default=d.n_layers)
    p.add_argument("--d-model", type=int, default=d.d_model)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--checkpoint-every", type=int, default=0, help="save a checkpoint every N steps")
    p.add_argument("--checkpoint-dir", default=None, help="where checkpoints go (default OUT/checkpoints)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from interp.errors import InterpError
    from interp.models.toy import TOY_DIR, ToyArithConfig, save_toy, train_toy

    if not args.out and not args.install:
        raise InterpError("give --out DIR (a new model directory) or --install (replace the built-in toy-arith)")
    if args.steps < 1:
        raise InterpError(f"--steps must be >= 1; got {args.steps}")
    out = Path(TOY_DIR if args.install else args.out)
    cfg = replace(ToyArithConfig(), steps=args.steps, seed=args.seed, n_layers=args.n_layers,
                  d_model=args.d_model, batch_size=args.batch_size, lr=args.lr)
    ckpt_dir = args.checkpoint_dir or (out / "checkpoints" if args.checkpoint_every else None)
    res = train_toy(cfg, checkpoint_dir=ckpt_dir, checkpoint_every=args.checkpoint_every)
    meta = {"held_out_accuracy": res.held_out_accuracy, "train_accuracy": res.train_accuracy,
            "seconds": round(res.seconds, 1), "checkpoints": res.checkpoints}
    save_toy(cfg, res.state_dict, out, meta=meta)
    print(json.dumps({"out": str(out), **meta}, indent=1))
    return 0
