"""Exact patching, side by side: TransformerLens's `patching` functions vs interp's cone-aware engine.

Every case runs both on the same model, the same prompt pairs and the same metric (mean logit difference at the
last position, TransformerLens's convention: clean activations patched into the corrupted run, i.e. interp's
``direction="denoising"``), in one process, one after the other, and reports wall time, the largest difference
between the two effect tensors, forward passes, peak RSS, and the FLOPs interp spent against the FLOPs the affected
cone strictly needs (and a TransformerLens full pass per patch would need).

    python scripts/bench_patching.py --json bench.json            # toy-arith and smollm2-135m
    python scripts/bench_patching.py --models toy-arith --quick    # a smoke run (seconds)

TransformerLens baselines on smollm2-135m run one full forward per patched index (0.3-0.6 s each on one CPU
thread), so sweeps that would take more than about two minutes are restricted to a subset of layers (or neurons)
for *both* sides; the ``scope`` column says which.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

# ------------------------------------------------------------------------------------------ measurement helpers


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class PeakRSS:
    """Samples the process RSS every 2 ms while active; ``peak`` in MB, ``delta`` over the starting RSS."""

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.start = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss_mb())

    @property
    def delta(self) -> float:
        return self.peak - self.start


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, PeakRSS]:
    with PeakRSS() as mem:
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
    return out, dt, mem


# ------------------------------------------------------------------------------------------ prompt sets


def arith_pairs(model: Any, spec: str, n_per_op: int, prefix: str = "") -> Any:
    from interp.tasks import parse_task

    task = parse_task(spec, prefix=prefix) if prefix else parse_task(spec)
    return task.pairs(model, n_per_op=n_per_op, seed=0)


NAMES = [" Mary", " John", " Tom", " James", " Anna", " Paul", " Sarah", " David", " Lisa", " Mark"]
PLACES = [" store", " park", " school", " office", " beach", " river"]
OBJECTS = [" drink", " book", " ball", " gift", " letter", " key"]


def ioi_pairs(model: Any, n: int) -> Any:
    """IOI prompts of 15 tokens: clean "..., B gave a X to" -> A; corrupt repeats A instead (answer B)."""
    from interp.tasks.base import PromptPairs, encode

    tok = model.tokenizer
    clean, corrupt, r_clean, r_corrupt = [], [], [], []
    i = 0
    while len(clean) < n and i < 500:
        a, b = NAMES[i % len(NAMES)], NAMES[(i * 3 + 1) % len(NAMES)]
        place, obj = PLACES[i % len(PLACES)], OBJECTS[(i // 2) % len(OBJECTS)]
        i += 1
        if a == b:
            continue
        c = f"When{a} and{b} went to the{place},{b} gave a{obj} to"
        k = f"When{a} and{b} went to the{place},{a} gave a{obj} to"
        ids, _ = encode(tok, [c, k, a, b], prepend_bos=True)
        if len(ids[0]) != 15 or len(ids[1]) != 15 or len(ids[2]) != 2 or len(ids[3]) != 2:
            continue
        clean.append(ids[0])
        corrupt.append(ids[1])
        r_clean.append(ids[2][1])
        r_corrupt.append(ids[3][1])
    labels = ("BOS", "When", "A", "and", "B", "went", "to", "the", "place", ",", "S2", "gave", "a", "obj", "to")
    return PromptPairs(torch.tensor(clean), torch.tensor(corrupt), torch.tensor(r_clean), torch.tensor(r_corrupt),
                       labels, "ioi")


# ------------------------------------------------------------------------------------------ cases


@dataclass
class Case:
    model: str
    prompts: str
    site: str  # interp site name
    positions: str  # "all" | "last"
    layers: list[int] | None = None  # None = all layers
    neurons: list[int] | None = None
    scope: str = "full sweep"
    metric: str = "logit_diff"


TOY_CASES = [
    Case("toy-arith", "arith", "resid", "all"),
    Case("toy-arith", "arith", "mlp_out", "all"),
    Case("toy-arith", "arith", "heads", "all"),
    Case("toy-arith", "arith", "heads", "all", metric="ie"),
    Case("toy-arith", "arith", "resid", "last"),
    Case("toy-arith", "arith", "heads", "last"),
    Case("toy-arith", "arith", "neurons", "last"),
    Case("toy-arith", "arith", "neurons", "all", neurons=list(range(0, 512, 8)), scope="64 neurons/layer"),
]
SMOL_CASES = [
    Case("smollm2-135m", "ioi", "resid", "last"),
    Case("smollm2-135m", "ioi", "heads", "last", layers=list(range(0, 30, 3)), scope="layers 0,3,..,27"),
    Case("smollm2-135m", "ioi", "heads", "last", layers=list(range(0, 30, 3)), scope="layers 0,3,..,27",
         metric="ie"),
    Case("smollm2-135m", "ioi", "heads", "all", layers=[15], scope="layer 15"),
    Case("smollm2-135m", "ioi", "resid", "all", layers=[0, 15, 29], scope="layers 0,15,29"),
    Case("smollm2-135m", "ioi", "mlp_out", "all", layers=[0, 14, 28], scope="layers 0,14,28"),
    Case("smollm2-135m", "ioi", "neurons", "last", layers=[0, 15, 29], neurons=list(range(0, 1536, 48)),
         scope="layers 0,15,29 x 32 neurons"),
    Case("smollm2-135m", "arith", "resid", "last"),
    Case("smollm2-135m", "arith", "heads", "last", layers=list(range(0, 30, 3)), scope="layers 0,3,..,27"),
]
QUICK = {
    "toy-arith": [Case("toy-arith", "arith", "resid", "all"), Case("toy-arith", "arith", "heads", "last")],
    "smollm2-135m": [Case("smollm2-135m", "ioi", "resid", "last", layers=[0, 29], scope="layers 0,29")],
}

TL_ACT = {"resid": "resid_pre", "mlp_out": "mlp_out", "heads": "z", "neurons": "post", "attn_out": "attn_out"}


def _tl_run(model: Any, pairs: Any, case: Case, metric: Callable, cache: Any) -> tuple[np.ndarray, int]:
    """TransformerLens's sweep for ``case``: its named function for full sweeps, else generic + index_df."""
    import transformer_lens.patching as tlp

    corrupted = pairs.corrupt_tokens
    n_layers, seq = int(model.cfg.n_layers), pairs.seq_len
    layers = case.layers if case.layers is not None else list(range(n_layers))
    positions = list(range(seq)) if case.positions == "all" else [seq - 1]
    full = case.layers is None and case.positions == "all" and case.neurons is None
    if full and case.site == "resid":
        out = tlp.get_act_patch_resid_pre(model, corrupted, cache, metric)
        return out.numpy(), n_layers * seq
    if full and case.site == "mlp_out":
        out = tlp.get_act_patch_mlp_out(model, corrupted, cache, metric)
        return out.numpy(), n_layers * seq
    if full and case.site == "heads":
        out = tlp.get_act_patch_attn_head_out_by_pos(model, corrupted, cache, metric)
        return out.numpy(), n_layers * seq * int(model.cfg.n_heads)
    if case.site == "heads":
        rows = [(lyr, p, h) for lyr in layers for p in positions for h in range(int(model.cfg.n_heads))]
        cols, setter = ["layer", "pos", "head_index"], tlp.layer_pos_head_vector_patch_setter
    elif case.site == "neurons":
        neurons = case.neurons if case.neurons is not None else list(range(int(model.cfg.d_mlp)))
        rows = [(lyr, p, n) for lyr in layers for p in positions for n in neurons]
        cols, setter = ["layer", "pos", "neuron"], _neuron_setter
    else:
        rows = [(lyr, p) for lyr in layers for p in positions]
        cols, setter = ["layer", "pos"], tlp.layer_pos_patch_setter
    df = pd.DataFrame(rows, columns=cols)
    out = tlp.generic_activation_patch(model, corrupted, cache, metric, setter, TL_ACT[case.site], index_df=df)
    return out.numpy(), len(rows)


def _neuron_setter(corrupted: torch.Tensor, index: list[int], clean: torch.Tensor) -> torch.Tensor:
    _, pos, n = index
    corrupted[:, pos, n] = clean[:, pos, n]
    return corrupted


def tl_full_pass_flops(model: Any, batch: int, seq: int) -> int:
    """2 x multiply-adds of one full forward (all positions, logits everywhere), as TransformerLens runs it."""
    c = model.cfg
    d, h, dh = int(c.d_model), int(c.n_heads), int(c.d_head)
    kv = int(getattr(c, "n_key_value_heads", None) or h)
    m = int(c.d_mlp)
    mlp = d * m * (3 if getattr(c, "gated_mlp", False) else 2)
    per_token = int(c.n_layers) * (d * h * dh * 2 + 2 * d * kv * dh + 2 * h * dh * seq + mlp) + d * int(c.d_vocab)
    return 2 * batch * seq * per_token


def _best_of(fn: Callable[[], Any], n: int) -> tuple[Any, float, PeakRSS]:
    best = None
    for _ in range(n):
        out, dt, mem = _timed(fn)
        if best is None or dt < best[1]:
            best = (out, dt, mem)
    assert best is not None
    return best


def run_case(model: Any, pairs: Any, case: Case, *, max_memory: str) -> dict[str, Any]:
    from interp.metrics import MetricContext, make_metric
    from interp.patching import patch

    # TransformerLens's convention: run the corrupted prompt, patch clean activations in (interp: denoising); the
    # metric keeps its orientation (r = the clean answer)
    with torch.no_grad():
        base_logits = model(pairs.corrupt_tokens)[:, -1].float()
        src_logits = model(pairs.clean_tokens)[:, -1].float()
    f = make_metric(case.metric, MetricContext(base_logits, src_logits, pairs.clean_answers, pairs.corrupt_answers))

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return f(logits[:, -1].float()).mean()

    def tl() -> tuple[np.ndarray, int]:
        with torch.no_grad():
            _, cache = model.run_with_cache(pairs.clean_tokens)
        return _tl_run(model, pairs, case, metric, cache)

    def ours() -> Any:
        return patch(model, pairs, site=case.site, positions=case.positions, metric=case.metric,
                     direction="denoising", layers=case.layers, neurons=case.neurons, progress=False,
                     max_memory=max_memory)

    ours()  # warm-up (first-call allocations and the one-off check against the bridge), not timed
    (tl_out, tl_idx), tl_s, tl_mem = _timed(tl)
    repeats = 3 if tl_s < 2 else 2 if tl_s < 10 else 1  # best-of-n on a shared machine, same n for both sides
    if repeats > 1:
        (tl_out, tl_idx), tl_s, tl_mem = _best_of(tl, repeats)
    res, in_s, in_mem = _best_of(ours, repeats)
    ours_eff = res.effects.reshape(-1)
    diff = float(np.abs(tl_out.reshape(-1).astype(np.float64) - ours_eff).max())
    meta = res.meta
    tl_flops = tl_idx * tl_full_pass_flops(model, pairs.n, pairs.seq_len)
    return {
        "model": case.model,
        "prompts": f"{case.prompts} {pairs.n}x{pairs.seq_len}",
        "site": case.site,
        "positions": case.positions,
        "metric": case.metric,
        "scope": case.scope,
        "n_patches": int(res.effects.size),
        "tl_seconds": round(tl_s, 4),
        "interp_seconds": round(in_s, 4),
        "speedup": round(tl_s / in_s, 2),
        "max_abs_diff": diff,
        "effect_scale": float(np.abs(ours_eff).max()),
        "max_rel_diff": diff / max(float(np.abs(ours_eff).max()), 1e-12),
        "tl_forward_passes": tl_idx + 1,
        "interp_forward_passes": int(res.n_forward_passes),
        "peak_rss_mb": round(in_mem.peak, 1),
        "interp_rss_increase_mb": round(in_mem.delta, 1),
        "tl_peak_rss_mb": round(tl_mem.peak, 1),
        "max_memory": max_memory,
        "engine": meta.get("engine"),
        "skipped_noop_patches": meta.get("skipped_noop_patches", 0),
        "interp_gflops": round(meta.get("flops", 0) / 1e9, 4),
        "cone_gflops": round(meta.get("flops_cone", 0) / 1e9, 4),
        "overhead_gflops": round(meta.get("flops_overhead", 0) / 1e9, 4),
        "spent_over_cone": round(meta["flops"] / meta["flops_cone"], 3) if meta.get("flops_cone") else None,
        "tl_gflops": round(tl_flops / 1e9, 3),
        "repeats": repeats,
    }


# ------------------------------------------------------------------------------------------ main


def table(cases: list[dict[str, Any]]) -> str:
    """Markdown table. FLOP columns: interp's patched recomputation over the cone's minimum, and TransformerLens's
    FLOPs over interp's total (patched recomputation plus the base and source runs): the speedup that equal
    per-FLOP efficiency would give."""
    head = ("| model | prompts | site | positions | metric | scope | patches (no-op) | TL s | interp s | speedup | "
            "max abs diff (rel) | TL passes | interp passes | peak RSS MB | interp / cone FLOPs | TL / interp FLOPs |")
    lines = [head, "|" + "---|" * 16]
    for c in cases:
        total = c["interp_gflops"] + c["overhead_gflops"]
        tl_ratio = c["tl_gflops"] / total if total else float("nan")
        lines.append(
            f"| {c['model']} | {c['prompts']} | {c['site']} | {c['positions']} | {c['metric']} | {c['scope']} | "
            f"{c['n_patches']} ({c['skipped_noop_patches']}) | {c['tl_seconds']:.2f} | {c['interp_seconds']:.3f} | "
            f"**{c['speedup']:.1f}x** | {c['max_abs_diff']:.1e} ({c['max_rel_diff']:.0e}) | "
            f"{c['tl_forward_passes']} | {c['interp_forward_passes']} | {c['peak_rss_mb']:.0f} | "
            f"{c['spent_over_cone']} | {tl_ratio:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="toy-arith,smollm2-135m", help="comma-separated built-in models")
    ap.add_argument("--json", default=None, help="write the cases as JSON here")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--max-memory", default="1GB", help="interp's memory budget (default 1GB)")
    ap.add_argument("--toy-pairs", type=int, default=25, help="arithmetic pairs per operator on toy-arith")
    ap.add_argument("--smol-pairs", type=int, default=4, help="prompt pairs on smollm2-135m")
    ap.add_argument("--quick", action="store_true", help="a few small cases only (smoke test)")
    ap.add_argument("--only", default=None, help="run only cases whose 'site/positions' matches, e.g. heads/all")
    ap.add_argument("--suite", default="exact", choices=("exact", "faster"),
                    help="exact: single-site sweeps vs TransformerLens (default); faster: path patching, "
                         "all-position heads and the circuit sweep (scripts/bench_faster.py; other flags go there)")
    args, rest = ap.parse_known_args(argv)
    if args.suite == "faster":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_faster import main as faster_main

        return faster_main(rest + (["--json", args.json] if args.json else []) + ["--threads", str(args.threads)])
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")

    torch.set_num_threads(args.threads)
    from interp._io import write_json_atomic
    from interp.models import load_model

    out: list[dict[str, Any]] = []
    for name in args.models.split(","):
        model = load_model(name)
        if name == "toy-arith":
            sets = {"arith": arith_pairs(model, "arith:+-*/:0-99", args.toy_pairs)}
            cases = QUICK[name] if args.quick else TOY_CASES
        else:
            sets = {
                "ioi": ioi_pairs(model, args.smol_pairs),
                "arith": arith_pairs(model, "arith:+:0-9", args.smol_pairs, prefix="1+2=3\n4+4=8\n"),
            }
            cases = QUICK[name] if args.quick else SMOL_CASES
        for case in cases:
            if args.only and args.only != f"{case.site}/{case.positions}":
                continue
            pairs = sets[case.prompts]
            row = run_case(model, pairs, case, max_memory=args.max_memory)
            out.append(row)
            print(f"{row['model']:<13} {row['prompts']:<13} {row['site']:<8} {row['positions']:<5} {row['metric']:<10} "
                  f"{row['scope']:<28} TL {row['tl_seconds']:8.2f}s  interp {row['interp_seconds']:7.3f}s  "
                  f"x{row['speedup']:<7} diff {row['max_abs_diff']:.1e}  cone-ratio {row['spent_over_cone']}",
                  flush=True)
        del model
        gc.collect()
    print()
    print(table(out))
    if args.json:
        write_json_atomic(args.json, {"command": "python " + " ".join(sys.argv), "threads": args.threads,
                                      "torch": torch.__version__, "loadavg_at_end": os.getloadavg(),
                                      "cases": out})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
