"""Circuit search: add heads in order of their patching effect until the circuit is faithful enough.

The paper's procedure (Nikankin et al., ICLR 2025, methods.md §A.1, App. A): rank heads by their position-averaged
indirect effect on *discovery* prompts, keep every MLP, add heads one at a time in rank order and measure
faithfulness (Eq. 2, everything outside the circuit mean-ablated) on *held-out evaluation* prompts. The circuit is
the smallest prefix of the ranking whose faithfulness reaches the target (0.9 by default); the whole
faithfulness-versus-size curve is kept. Because faithfulness depends on what "ablated" means, the chosen circuit is
re-scored under every ablation (``sensitivity``).

Options: rank MLPs too (one joint ranking of heads and MLPs), rank with attribution patching (cheap) - verified by
exact patching, which rejects every ranked component whose exact effect is 0 and records the agreement
(`interp.patching.attribution.agreement`) - and sweep only up to ``max_heads``.

Undefined faithfulness (Eq. 2 divides by NL(M) - NL(∅), and NL(∅) has no value when zero ablation leaves all-zero
logits) is never silent: the search raises `CircuitError` when its ablation is undefined on every evaluation prompt,
and reports each sensitivity ablation's undefined count and reason in ``meta["undefined"]``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.circuits.ablation import CircuitError, mean_cache
from interp.circuits.batched import iter_scores
from interp.circuits.circuit import Circuit
from interp.circuits.effects import METHODS, ComponentEffects, check_operator, component_effects
from interp.circuits.faithfulness import FaithfulnessEvaluator
from interp.circuits.settings import SearchSettings, check_target
from interp.tasks.base import TASK_METHODS, PromptPairs, require

__all__ = ["find_circuit", "find_circuits", "evaluation_pairs", "sweep", "RANKS", "SearchSettings", "check_target",
           "exact_zero_components", "shared_operator_effects"]

log = logging.getLogger(__name__)

RANKS = METHODS


def evaluation_pairs(
    model: Any,
    task: Any,
    *,
    operator: str | None,
    n_eval: int,
    n_discovery: int,
    seed: int = 0,
    corrupt_from: str = "all",
) -> PromptPairs:
    """Held-out evaluation pairs, disjoint from the first ``n_discovery`` correct prompts used for discovery.

    The task's evaluation split of size ``m`` takes correct prompts ``m..2m`` of the seed-42 shuffle; with
    ``m = max(n_eval, n_discovery)`` it never overlaps the discovery prompts ``0..n_discovery``.
    """
    if n_eval < 1:
        raise CircuitError(f"the evaluation set is empty (n_eval={n_eval}); faithfulness needs held-out prompts")
    check_operator(task, operator)
    m = max(int(n_eval), int(n_discovery))
    pairs = task.pairs(model, n_per_op=m, seed=seed, corrupt_from=corrupt_from, split="evaluation")
    keep, count = [], {}
    for i, g in enumerate(pairs.groups):
        if (operator is None or g == operator) and count.get(g, 0) < n_eval:
            keep.append(i)
            count[g] = count.get(g, 0) + 1
    if not keep:
        scope = f"operator {operator!r} of " if operator is not None else ""
        raise CircuitError(
            f"the evaluation set for {scope}task {getattr(task, 'name', task)!r} is empty: pairs are built from the "
            f"prompts the model answers correctly, and none are left after the {n_discovery} discovery prompts; "
            f"check the task's accuracy on this model (is it a task the model can do?), or lower --n-per-op")
    out = pairs.select(keep)
    disc = task.pairs(model, n_per_op=n_discovery, seed=seed, corrupt_from=corrupt_from, split="discovery")
    overlap = {str(p) for p in disc.clean} & {str(p) for p in out.clean}
    if overlap:
        raise CircuitError(f"the task's evaluation prompts overlap its discovery prompts ({sorted(overlap)[:3]}); "
                           "faithfulness must be scored on held-out prompts: a task's pairs(split='evaluation') "
                           "must be disjoint from split='discovery' (PairsTask: give each clean prompt once)")
    return out


def _label(o: tuple[str, int, int | None]) -> str:
    return f"L{o[1]}H{o[2]}" if o[0] == "head" else f"MLP{o[1]}"


def exact_zero_components(exact: ComponentEffects, *, atol: float = 1e-5) -> set[tuple[str, int, int | None]]:
    """Components whose exact patching effect is 0 (``|effect| <= atol``) at every position and seed, as
    ``(kind, layer, head)``. A patch that changes nothing moves the metric only by float32 rounding of the
    recomputed logits (measured: up to ~1e-7 for a head with W_O = 0); ``atol`` absorbs that and is far below any
    effect that matters. It is absolute, never relative to the largest effect: IE effects span many orders of
    magnitude on a confident model (10⁶ on toy-arith)."""
    hs, ms = np.abs(exact.heads_per_seed), np.abs(exact.mlps_per_seed)  # [seed layer pos head], [seed layer pos]
    out: set[tuple[str, int, int | None]] = set()
    h_zero = np.all(np.nan_to_num(hs, nan=np.inf) <= atol, axis=(0, 2))  # [layer head]; NaN is never "zero"
    for i, lyr in enumerate(exact.heads.index["layer"]):
        for j, h in enumerate(exact.heads.index["head"]):
            if h_zero[i, j]:
                out.add(("head", int(lyr), int(h)))
    m_zero = np.all(np.nan_to_num(ms, nan=np.inf) <= atol, axis=(0, 2))
    for i, lyr in enumerate(exact.mlps.index["layer"]):
        if m_zero[i]:
            out.add(("mlp", int(lyr), None))
    return out


def sweep(
    evaluator: FaithfulnessEvaluator,
    order: Sequence[tuple[str, int, int | None]],
    *,
    base_mlps: Sequence[int] = (),
    target: float | None = None,
    max_steps: int | None = None,
    stop_at_target: bool = False,
    max_memory: int | str = "auto",
    stats: dict[str, Any] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Faithfulness after adding components in ``order`` one at a time (step 0 = ``base_mlps`` only).

    ``order`` holds ``(kind, layer, head)`` with kind ``"head"`` or ``"mlp"``. Each step's kept set contains the
    previous one. Returns ``[{"n_heads", "n_mlps", "faithfulness", "added"}]``. ``max_memory`` bounds a batch of
    candidates' working memory; ``stats`` (a dict), when given, receives the scorer's counters (passes, rows,
    ``peak_bytes_estimate``). ``progress`` shows a counter of the circuits scored.
    """
    from interp.progress import bar as progress_bar

    heads: list[tuple[int, int]] = []
    mlps: list[int] = list(base_mlps)
    steps = len(order) if max_steps is None else min(len(order), int(max_steps))
    curve = []
    prefixes = [(order[:s], list(base_mlps)) for s in range(steps + 1)]
    circuits = [([(l, int(h)) for k, l, h in o if k == "head"], m + [l for k, l, _ in o if k == "mlp"])  # type: ignore
                for o, m in prefixes]
    scores = iter_scores(evaluator, circuits, max_memory=max_memory, stats=stats)  # many per pass (batched)
    counter = progress_bar(len(circuits), desc="sweep circuits", enabled=progress)
    for step in range(steps + 1):
        added = None
        if step > 0:
            kind, layer, head = order[step - 1]
            if kind == "head":
                heads.append((layer, int(head)))  # type: ignore[arg-type]
                added = f"L{layer}H{head}"
            else:
                mlps.append(layer)
                added = f"MLP{layer}"
        f = next(scores).faithfulness
        counter.update(1)
        curve.append({"n_heads": len(heads), "n_mlps": len(mlps), "faithfulness": f, "added": added})
        if stop_at_target and target is not None and f >= target:
            break
    counter.close()
    return curve


def find_circuit(
    model: Any,
    task: Any,
    *,
    operator: str | None = None,
    settings: SearchSettings | None = None,
    mean: Mapping[str, Tensor] | None = None,
    effects: ComponentEffects | None = None,
    progress: bool = False,
    model_name: str = "",
    **options: Any,
) -> Circuit:
    """The smallest head set (with every MLP) whose faithfulness reaches the target on held-out prompts.

    ``operator`` picks one operator's circuit (None pools every operator of the task). ``settings`` holds the
    ablation, ranking and evaluation options (`SearchSettings`; the paper's procedure by default); its fields may
    also be given as keyword ``options`` (``ablation="zero"``, ``target=0.8``, ``seeds=(42,)``, ...), which replace
    those of ``settings``. With ``rank="attribution"`` and ``verify`` (default), exact patching also runs: components
    whose exact effect is 0 are dropped from the ranking (``meta["n_rejected"]``, ``meta["rejected"]``) and the
    agreement is recorded in ``meta["agreement"]``. Raises `CircuitError` when faithfulness under ``ablation`` is
    undefined on every evaluation prompt; a sensitivity ablation that is undefined is NaN with its reason and count in
    ``meta["undefined"]``. ``mean`` reuses a mean cache (`mean_cache`); ``effects`` reuses component
    effects (then ``rank``, ``metric`` and ``seeds`` come from them).
    """
    t0 = time.time()
    st = SearchSettings.build(settings, **options)
    ablation, sensitivity, target, rank, rank_mlps = st.ablation, st.sensitivity, st.target, st.rank, st.rank_mlps
    n_per_op, n_eval, eval_seed, corrupt_from, max_heads = st.n_per_op, st.n_eval, st.eval_seed, st.corrupt_from, \
        st.max_heads
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    require(task, "find_circuit", *TASK_METHODS["pairs"])
    if mean is None and (ablation == "mean" or "mean" in sensitivity):
        require(task, "find_circuit (mean ablation; or pass ablation='zero'/'resample' and sensitivity=())",
                *TASK_METHODS["mean ablation"])

    # held-out evaluation prompts first: fails fast on an empty or impossible evaluation set
    ev_pairs = evaluation_pairs(model, task, operator=operator, n_eval=n_eval, n_discovery=n_per_op,
                                seed=eval_seed, corrupt_from=corrupt_from)
    if mean is None and (ablation == "mean" or "mean" in sensitivity):
        mean = mean_cache(model, task, operand_max=st.operand_max, seq_len=ev_pairs.seq_len)
    evaluators: dict[str, FaithfulnessEvaluator] = {}

    def evaluator(abl: str) -> FaithfulnessEvaluator:
        if abl not in evaluators:
            evaluators[abl] = FaithfulnessEvaluator(
                model, ev_pairs.clean_tokens, ev_pairs.clean_answers, ablation=abl, mean=mean,
                resample_tokens=ev_pairs.corrupt_tokens,
            )
        return evaluators[abl]

    evaluator(ablation).check_defined()  # fails fast, before any patching, when Eq. 2 has no value at all

    if effects is None:
        effects = component_effects(model, task, operator=operator, seeds=st.seeds, n_per_op=n_per_op, method=rank,
                                    metric=st.metric, corrupt_from=corrupt_from, progress=progress,
                                    model_name=model_name, max_memory=st.max_memory)
    elif effects.operator != operator:
        raise CircuitError(f"the effects were measured for operator {effects.operator!r}, not {operator!r}")
    rank = effects.method
    order = [(k, l, h) for k, l, h, _ in effects.ranking(include_mlps=rank_mlps)]
    if not rank_mlps:
        order = [o for o in order if o[0] == "head"]

    exact: ComponentEffects | None = None
    rejected: list[tuple[str, int, int | None]] = []
    if rank == "attribution" and st.verify:
        # AtP is a first-order estimate: it can rank a component whose exact effect is 0 (IE is far from linear,
        # a saturated softmax has ~0 gradient). Exact patching checks every ranked component; those whose exact
        # effect is 0 at every position and seed are never added to the circuit.
        exact = component_effects(model, task, operator=operator, seeds=effects.seeds, n_per_op=n_per_op,
                                  method="exact", metric=effects.heads.metric, corrupt_from=corrupt_from,
                                  progress=progress, model_name=model_name, max_memory=st.max_memory)
        zero = exact_zero_components(exact)
        rejected = [o for o in order if o in zero]
        if rejected:
            log.info("exact patching rejected %d of %d components ranked by attribution (exact effect 0): %s",
                     len(rejected), len(order), ", ".join(_label(o) for o in rejected[:10]))
        order = [o for o in order if o not in zero]
    elif rank == "attribution":
        log.warning("rank='attribution' with verify=False: the ranking is AtP's first-order estimate, unchecked by "
                    "exact patching; components with no exact effect may enter the circuit")
    if max_heads is not None:
        cut, n_h = [], 0
        for o in order:
            if o[0] == "head":
                if n_h >= max_heads:
                    continue
                n_h += 1
            cut.append(o)
        order = cut

    base_mlps = [] if rank_mlps else list(range(n_layers))
    sweep_stats: dict[str, Any] = {}
    curve = sweep(evaluator(ablation), order, base_mlps=base_mlps, target=target, stop_at_target=not st.full_curve,
                  max_memory=st.max_memory, stats=sweep_stats, progress=progress)
    values = [row["faithfulness"] for row in curve]
    chosen = next((i for i, v in enumerate(values) if v >= target), None)
    reached = chosen is not None
    if chosen is None:
        if all(np.isnan(v) for v in values):
            raise CircuitError(f"faithfulness with ablation={ablation!r} is undefined for every swept circuit: "
                               f"{evaluator(ablation).undefined_reason or 'NL(circuit) has no value'}")
        chosen = int(np.nanargmax(values))
        log.warning("no swept circuit reaches faithfulness %.2f; keeping the most faithful one (%.3f)", target,
                    curve[chosen]["faithfulness"])
    kept = order[:chosen]
    heads = tuple((l, int(h)) for k, l, h in kept if k == "head")  # type: ignore[arg-type]
    mlps = tuple(sorted(set(base_mlps) | {l for k, l, _ in kept if k == "mlp"}))
    result = evaluator(ablation).score(keep_heads=heads, keep_mlps=mlps)
    sens: dict[str, float] = {}
    undefined: dict[str, dict[str, Any]] = {}
    for a in sensitivity:
        r = result if a == ablation else evaluator(a).score(keep_heads=heads, keep_mlps=mlps)
        sens[a] = r.faithfulness
        if r.n_undefined:
            undefined[a] = {"n_undefined": r.n_undefined, "n_prompts": r.n_prompts, "reason": r.undefined_reason}
            log.warning("faithfulness with ablation=%r is undefined on %d of %d prompts%s: %s", a, r.n_undefined,
                        r.n_prompts, " (reported as NaN)" if r.n_undefined == r.n_prompts else " (left out)",
                        r.undefined_reason)
    sens[ablation] = result.faithfulness

    meta: dict[str, Any] = {
        "reached_target": reached,
        "rank": rank,
        "rank_mlps": rank_mlps,
        "metric": effects.heads.metric,
        "seeds": list(effects.seeds),
        "n_discovery_per_op": n_per_op,
        "n_eval": ev_pairs.n,
        "eval_seed": eval_seed,
        "faithfulness_stderr": result.stderr,
        "faithfulness_ratio_of_means": result.ratio_of_means,
        "n_undefined_prompts": result.n_undefined,
        "undefined": undefined,
        "ranking": [[k, l, h, s] for k, l, h, s in effects.ranking(include_mlps=True)],
        "head_scores": effects.head_scores().tolist(),
        "mlp_scores": effects.mlp_scores().tolist(),
        "rank_positions": list(effects.rank_positions),
        "memory": {"max_memory": st.max_memory,
                   "effects_peak_bytes_estimate": effects.meta.get("peak_bytes_estimate"),
                   "sweep_peak_bytes_estimate": sweep_stats.get("peak_bytes_estimate"),
                   "sweep_engine": sweep_stats.get("engine")},
    }
    if rank == "attribution":
        meta["verified"] = exact is not None
        meta["n_rejected"] = len(rejected) if exact is not None else None
        meta["rejected"] = [_label(o) for o in rejected]
    if exact is not None:
        from interp.patching.attribution import agreement

        k_h = max(1, min(len(heads) or 5, n_layers * n_heads))
        meta["agreement"] = {
            "heads": agreement(effects.heads, exact.heads, k=k_h).to_dict(),
            "mlps": agreement(effects.mlps, exact.mlps, k=max(1, min(3, n_layers))).to_dict(),
        }
        exact_order = [(l, h) for l, h in exact.head_ranking()]
        meta["exact_rank_of_circuit_heads"] = [exact_order.index(x) for x in heads]

    return Circuit(
        heads=heads,
        mlps=mlps,
        ablation=ablation,
        faithfulness=result.faithfulness,
        curve=tuple(curve),
        sensitivity=sens,
        model=model_name or str(getattr(model.cfg, "model_name", "")),
        task=task.name,
        operator=operator,
        target=target,
        n_layers=n_layers,
        n_heads_total=n_heads,
        seconds=time.time() - t0,
        meta=meta,
    )


def find_circuits(
    model: Any,
    task: Any,
    *,
    operators: Sequence[str] | None = None,
    settings: SearchSettings | None = None,
    mean: Mapping[str, Tensor] | None = None,
    **kwargs: Any,
) -> dict[str, Circuit]:
    """One circuit per operator (the paper's setting), sharing one mean cache; kwargs go to `find_circuit`.

    With exact ranking over all of the task's operators, every operator's effects come from one pooled sweep per
    seed (`component_effects_by_operator`: each prompt patched once; equal to one sweep per operator up to float
    rounding)."""
    ops = list(getattr(task, "operators", ()) if operators is None else operators)
    fields = set(SearchSettings.fields())
    st = SearchSettings.build(settings, **{k: v for k, v in kwargs.items() if k in fields})
    rest = {k: v for k, v in kwargs.items() if k not in fields}
    if mean is None and "mean" in {st.ablation, *st.sensitivity}:
        with torch.inference_mode():
            mean = mean_cache(model, task, operand_max=st.operand_max)
    effects: dict[str | None, ComponentEffects] = {}
    if "effects" not in rest and set(ops) == set(getattr(task, "operators", ())):
        effects = shared_operator_effects(model, task, st, progress=rest.get("progress", False),
                                          model_name=rest.get("model_name", ""))
    return {op: find_circuit(model, task, operator=op, settings=st, mean=mean, effects=effects.get(op), **rest)
            for op in ops}


def shared_operator_effects(model: Any, task: Any, settings: SearchSettings, *, progress: bool = False,
                            model_name: str = "") -> dict[str | None, ComponentEffects]:
    """The pooled (key None) and every operator's exact effects from one sweep per seed
    (`component_effects_by_operator`), for `find_circuit(effects=...)`; ``{}`` (each circuit measures its own)
    unless the ranking is exact and the task has several operators."""
    if settings.rank != "exact" or len(getattr(task, "operators", ())) < 2:
        return {}
    from interp.circuits.effects import component_effects_by_operator

    return component_effects_by_operator(model, task, seeds=settings.seeds, n_per_op=settings.n_per_op,
                                         metric=settings.metric, corrupt_from=settings.corrupt_from,
                                         progress=progress, model_name=model_name, max_memory=settings.max_memory)
