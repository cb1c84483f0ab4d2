"""Held-out and training accuracy per operator of a toy-arith model, evaluated through the loaded bridge.

Usage: python scripts/eval_toy.py [MODEL_DIR]   (default: the shipped toy-arith)
Held-out pairs are the 20% of each operator's legal pairs never trained on (seeded split in interp.models.toy).
"""

from __future__ import annotations

import json
import sys

import torch

from interp.models import load_model
from interp.models.toy import OPERATORS, TOY_DIR, _prompt_tensor, read_toy_config


def main() -> int:
    directory = sys.argv[1] if len(sys.argv) > 1 else str(TOY_DIR)
    cfg, meta = read_toy_config(directory)
    model = load_model(directory)
    out = {}
    with torch.inference_mode():
        for op in OPERATORS:
            train, held = cfg.split(op)
            row = {}
            for name, pairs in (("held_out", held), ("train", train)):
                toks, ans = _prompt_tensor(cfg, op, pairs)
                pred = torch.cat([model(toks[i:i + 2048])[:, -1].argmax(-1) for i in range(0, len(toks), 2048)])
                row[name] = {"n": len(pairs), "accuracy": round(float((pred == ans).float().mean()), 4)}
            out[op] = row
    print(json.dumps({"model": directory, "per_operator": out, "training_meta": meta}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
