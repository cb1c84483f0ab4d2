"""Faster circuits (issue 17), side by side in one process: path patching, all-position head patching and the
circuit sweep, each against the implementation it replaces and a TransformerLens reference.

    python scripts/bench_patching.py --suite faster --json bench-faster.json     # the docs/benchmarks.md table
    python scripts/bench_faster.py --smol-pairs 8 --json bench-faster.json        # the same

Cases (every pair runs on the same model, prompts and metric; the table reports both times, the ratio, the largest
difference between the two results, and peak memory):

* path patching to the logits on SmolLM2 IOI: `path_patch(engine="cone")` vs today's hooked implementation
  (`engine="full"`, one full pass per sender) vs a TransformerLens-style reference written here with plain hooks;
  the hooked sides run on a subset of sender layers (the ``scope`` column), the cone on the same subset and on all
  270 senders;
* path patching through receiver heads (three late heads, and the three name movers: the heads with the largest
  direct effect on the logits; Wang et al.'s three steps): cone vs hooked (two passes per
  sender);
* all-position head patching (``positions="together"``) vs TransformerLens's `get_act_patch_attn_head_out_all_pos`
  (`generic_activation_patch` with the same setter, restricted to the same layers);
* the circuit sweep on toy-arith (`find_circuit`, pooled operators): batched circuit evaluation vs one circuit per
  forward pass (the old sweep, swapped in by monkeypatching), same circuit and curve.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_patching import PeakRSS, ioi_pairs  # noqa: E402


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    gc.collect()
    with PeakRSS() as mem:
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
    return out, dt, mem.peak


def tl_style_path_to_logits(model: Any, pairs: Any, layers: list[int], metric: Callable[[torch.Tensor], Any]
                            ) -> np.ndarray:
    """Path patching to the logits with plain TransformerLens hooks: every z frozen at the clean run's value except
    the sender head's, taken from the corrupt run; MLPs recompute. One hooked forward per sender."""
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    names = [f"blocks.{l}.attn.hook_z" for l in range(n_layers)]
    with torch.inference_mode():
        _, clean = model.run_with_cache(pairs.clean_tokens, names_filter=lambda n: n in names)
        _, corrupt = model.run_with_cache(pairs.corrupt_tokens, names_filter=lambda n: n in names)
        out = np.zeros((len(layers), n_heads))
        for i, ls in enumerate(layers):
            for hs in range(n_heads):
                def hook(z: torch.Tensor, hook: Any, ls: int = ls, hs: int = hs) -> torch.Tensor:
                    new = clean[hook.name].clone()
                    if hook.name == names[ls]:
                        new[:, :, hs] = corrupt[hook.name][:, :, hs]
                    return new

                logits = model.run_with_hooks(pairs.clean_tokens, fwd_hooks=[(n, hook) for n in names[ls:]])
                out[i, hs] = float(metric(logits))
    return out


def _row(name: str, scope: str, ref: str, t_ref: float, t_new: float, diff: float, scale: float, peak: float,
         extra: dict[str, Any] | None = None) -> dict[str, Any]:
    row = {"case": name, "scope": scope, "reference": ref, "ref_seconds": round(t_ref, 3),
           "new_seconds": round(t_new, 3), "speedup": round(t_ref / t_new, 1) if t_new else None,
           "max_abs_diff": diff, "effect_scale": scale, "peak_rss_mb": round(peak, 1), **(extra or {})}
    print(f"{name:<34} {scope:<34} {ref:<28} ref {t_ref:8.2f}s  new {t_new:7.3f}s  x{row['speedup']}  "
          f"diff {diff:.1e}", flush=True)
    return row


def smol_cases(n_pairs: int, layers: list[int], recv_layers: list[int], receivers: str, max_memory: str,
               name_movers: int = 3, hooked_all: bool = False) -> list[dict[str, Any]]:
    import transformer_lens.patching as tlp

    from interp.metrics import MetricContext, make_metric
    from interp.models import load_model
    from interp.patching import patch
    from interp.patching.path import path_patch

    model = load_model("smollm2-135m")
    pairs = ioi_pairs(model, n_pairs)
    rows: list[dict[str, Any]] = []
    kw = dict(metric="logit_diff", progress=False, max_memory=max_memory)
    n_heads = int(model.cfg.n_heads)
    scope = f"{len(layers) * n_heads} senders (layers {','.join(map(str, layers))})"
    # -- path patching to the logits
    path_patch(model, pairs, layers=[layers[-1]], engine="cone", **kw)  # warm-up (engine verification)
    cone_all, t_all, peak_all = _timed(lambda: path_patch(model, pairs, engine="cone", **kw))
    cone, t_cone, peak_cone = _timed(lambda: path_patch(model, pairs, layers=layers, engine="cone", **kw))
    full, t_full, _ = _timed(lambda: path_patch(model, pairs, layers=layers, engine="full", **kw))
    with torch.inference_mode():
        lb, ls_ = model(pairs.clean_tokens)[:, -1].float(), model(pairs.corrupt_tokens)[:, -1].float()
    f = make_metric("logit_diff", MetricContext(lb, ls_, pairs.clean_answers, pairs.corrupt_answers))
    tl, t_tl, _ = _timed(lambda: tl_style_path_to_logits(model, pairs, layers, lambda lg: f(lg[:, -1].float()).mean()))
    scale = float(np.abs(full.effects).max())
    extra = {"prompts": pairs.n, "cone_all_270_seconds": round(t_all, 3),
             "full_270_extrapolated_seconds": round(t_full * 270 / (len(layers) * n_heads), 1),
             "peak_bytes_estimate": cone_all.meta.get("peak_bytes_estimate"), "max_memory": max_memory}
    rows.append(_row("path -> logits (SmolLM2 IOI)", scope, "today's path_patch (hooks)", t_full, t_cone,
                     float(np.abs(cone.effects - full.effects).max()), scale, peak_cone, extra))
    rows.append(_row("path -> logits (SmolLM2 IOI)", scope, "TL-style plain hooks", t_tl, t_cone,
                     float(np.abs(cone.effects - tl).max()), scale, peak_cone, {"prompts": pairs.n}))
    if hooked_all:  # the hooked implementation on every sender too: a measured ratio, not an extrapolation
        full_all, t_full_all, _ = _timed(lambda: path_patch(model, pairs, engine="full", **kw))
        rows.append(_row("path -> logits, all 270 senders", "270 senders, both measured", "today's path_patch (hooks)",
                         t_full_all, t_all, float(np.abs(cone_all.effects - full_all.effects).max()), scale, peak_all,
                         {"prompts": pairs.n}))
    else:
        rows.append(_row("path -> logits, all 270 senders", "270 senders (cone) vs extrapolated",
                         "today's (extrapolated)", extra["full_270_extrapolated_seconds"], t_all, float("nan"), scale,
                         peak_all, {"prompts": pairs.n}))
    # -- path patching through receiver heads
    cases = [("path -> receiver heads (SmolLM2 IOI)", receivers)]
    if name_movers:  # Wang et al.'s name movers: the heads with the largest direct effect on the logits
        eff = np.abs(cone_all.effects)  # [layer head], path patching of every head to the logits
        top = np.argsort(-eff.ravel())[:name_movers]
        movers = ",".join(f"L{i // n_heads}H{i % n_heads}" for i in sorted(top))
        cases.append((f"path -> name movers (top {name_movers} direct effects, SmolLM2 IOI)", movers))
    for label, recv in cases:
        first = min(int(r[1:].split("H")[0]) for r in recv.split(","))
        senders = [l for l in recv_layers if l < first]
        rscope = f"{len(senders) * n_heads} senders (layers {','.join(map(str, senders))}) -> {recv}"
        rc, t_rc, peak_rc = _timed(lambda r=recv, s=senders: path_patch(model, pairs, receivers=r, layers=s,
                                                                       engine="cone", **kw))
        rf, t_rf, _ = _timed(lambda r=recv, s=senders: path_patch(model, pairs, receivers=r, layers=s,
                                                                 engine="full", **kw))
        rows.append(_row(label, rscope, "today's path_patch (hooks)", t_rf, t_rc,
                         float(np.abs(rc.effects - rf.effects).max()), float(np.abs(rf.effects).max()), peak_rc,
                         {"prompts": pairs.n, "peak_bytes_estimate": rc.meta.get("peak_bytes_estimate")}))
    # -- all-position head patching vs TL (denoising = TL's convention)
    with torch.inference_mode():
        _, cache = model.run_with_cache(pairs.clean_tokens)
        lc, lk = model(pairs.clean_tokens)[:, -1].float(), model(pairs.corrupt_tokens)[:, -1].float()
    g = make_metric("logit_diff", MetricContext(lk, lc, pairs.clean_answers, pairs.corrupt_answers))  # r = clean answer
    import pandas as pd

    df = pd.DataFrame([(l, h) for l in layers for h in range(n_heads)], columns=["layer", "head"])
    patch(model, pairs, site="heads", positions="together", layers=[layers[-1]], direction="denoising", **kw)
    ours, t_ours, peak_ours = _timed(lambda: patch(model, pairs, site="heads", positions="together", layers=layers,
                                                   direction="denoising", **kw))

    def tl_run() -> torch.Tensor:
        with torch.inference_mode():
            return tlp.generic_activation_patch(model, pairs.corrupt_tokens, cache,
                                                lambda lg: g(lg[:, -1].float()).mean(),
                                                tlp.layer_head_vector_patch_setter, "z", index_df=df)

    tl_all, t_tla, _ = _timed(tl_run)
    hscope = scope.replace("senders", "heads")
    rows.append(_row("all-position heads (SmolLM2 IOI)", hscope, "TL get_act_patch_attn_head_out_all_pos", t_tla,
                     t_ours, float(np.abs(ours.effects.reshape(-1) - tl_all.double().numpy()).max()),
                     float(np.abs(ours.effects).max()), peak_ours,
                     {"prompts": pairs.n, "peak_bytes_estimate": ours.meta.get("peak_bytes_estimate")}))
    return rows


def toy_circuit_case() -> list[dict[str, Any]]:
    import interp.circuits.search as search
    from interp.circuits.ablation import mean_cache
    from interp.circuits.search import find_circuit
    from interp.models import load_model
    from interp.tasks import parse_task

    model = load_model("toy-arith")
    task = parse_task("arith")
    seq = task.pairs(model, n_per_op=50, seed=0).seq_len
    with torch.inference_mode():
        mean = mean_cache(model, task, seq_len=seq)
    from interp.circuits.search import SearchSettings

    st = SearchSettings()
    effects = search.component_effects(model, task, operator=None, seeds=st.seeds, n_per_op=st.n_per_op)
    batched = search.iter_scores

    def one_per_pass(ev: Any, circuits: Any, **_: Any) -> Any:  # the old sweep: one circuit per forward pass
        for heads, mlps in circuits:
            yield ev.score(keep_heads=heads, keep_mlps=mlps)

    sweeps: dict[str, float] = {}
    orig_sweep = search.sweep

    def timed_sweep(label: str) -> Callable[..., Any]:
        def wrapped(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            out = orig_sweep(*a, **k)
            sweeps[label] = time.perf_counter() - t
            return out

        return wrapped

    try:
        search.iter_scores = one_per_pass  # type: ignore[assignment]
        search.sweep = timed_sweep("old")  # type: ignore[assignment]
        old, t_old, _ = _timed(lambda: find_circuit(model, task, mean=mean, effects=effects))
        search.sweep = timed_sweep("old_resample")  # type: ignore[assignment]
        old_r = find_circuit(model, task, mean=mean, effects=effects, ablation="resample", sensitivity=("resample",))
        search.iter_scores = batched
        search.sweep = timed_sweep("new")  # type: ignore[assignment]
        new, t_new, peak = _timed(lambda: find_circuit(model, task, mean=mean, effects=effects))
        search.sweep = timed_sweep("new_resample")  # type: ignore[assignment]
        new_r = find_circuit(model, task, mean=mean, effects=effects, ablation="resample", sensitivity=("resample",))
    finally:
        search.iter_scores, search.sweep = batched, orig_sweep
    assert old_r.heads == new_r.heads
    diff_r = max(abs(a["faithfulness"] - b["faithfulness"]) for a, b in zip(old_r.curve, new_r.curve, strict=True))
    assert old.heads == new.heads, (old.heads, new.heads)
    diff = max(abs(a["faithfulness"] - b["faithfulness"]) for a, b in zip(old.curve, new.curve, strict=True))
    rows = [_row("circuit sweep (toy-arith, pooled)", f"{len(old.curve)} circuits x 200 prompts",
                 "one circuit per pass", sweeps["old"], sweeps["new"], diff, 1.0, peak,
                 {"same_circuit": old.heads == new.heads})]
    rows.append(_row("circuit sweep, resample ablation", f"{len(old_r.curve)} circuits x 200 prompts",
                     "one circuit per pass", sweeps["old_resample"], sweeps["new_resample"], diff_r, 1.0, peak,
                     {"same_circuit": old_r.heads == new_r.heads}))
    rows.append(_row("find_circuit (toy-arith, pooled)", "sweep + sensitivity (effects, mean given)",
                     "one circuit per pass", t_old, t_new, abs(old.faithfulness - new.faithfulness), 1.0, peak,
                     {"same_circuit": old.heads == new.heads}))
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = "| case | scope | reference | reference s | new s | speedup | max abs diff (effect scale) | peak RSS MB |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r['case']} | {r['scope']} | {r['reference']} | {r['ref_seconds']:.2f} | "
                     f"{r['new_seconds']:.3f} | **{r['speedup']}x** | {r['max_abs_diff']:.1e} "
                     f"({r['effect_scale']:.2g}) | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smol-pairs", type=int, default=8, help="IOI prompt pairs on SmolLM2 (default 8)")
    ap.add_argument("--layers", default="0,10,20,29", help="sender layers of the hooked references")
    ap.add_argument("--recv-layers", default="0,8,16", help="sender layers for the receiver-head case")
    ap.add_argument("--receivers", default="L20H3,L22H1,L24H6", help="receiver heads")
    ap.add_argument("--name-movers", type=int, default=3,
                    help="also run the receiver case with the top-N heads by direct effect on the logits (Wang et "
                         "al.'s name movers, from the cone's path patching of all 270 heads) as receivers; 0 = skip")
    ap.add_argument("--max-memory", default="2GB")
    ap.add_argument("--hooked-all", action="store_true", help="also run the hooked path patching on all 270 senders "
                    "(minutes) for a measured all-sender ratio instead of one extrapolated from --layers")
    ap.add_argument("--skip", default="", help="comma-separated: smol, toy")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from interp._io import write_json_atomic

    skip = set(args.skip.split(","))
    rows: list[dict[str, Any]] = []
    if "toy" not in skip:
        rows += toy_circuit_case()
    if "smol" not in skip:
        rows += smol_cases(args.smol_pairs, [int(x) for x in args.layers.split(",")],
                           [int(x) for x in args.recv_layers.split(",")], args.receivers, args.max_memory,
                           args.name_movers, args.hooked_all)
    print()
    print(table(rows))
    if args.json:
        write_json_atomic(args.json, {"command": "python " + " ".join(sys.argv), "threads": args.threads,
                                      "device": "cpu", "torch": torch.__version__,
                                      "loadavg_at_end": os.getloadavg(), "cases": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
