"""The whole neuron-level analysis in two calls: `classify_neurons` and `analyze_neurons` (what ``interp neurons``
runs): importance per operator -> top neurons per layer -> Algorithm 1 over the full legal grid -> knockouts."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interp.neurons._common import (
    NeuronError,
    check_arith_task,
    check_hook_post,
    check_neurons,
    check_operator,
    check_top,
)
from interp.neurons.heuristics import ClassifierConfig, HeuristicScorer
from interp.neurons.importance import importance_by_operator
from interp.neurons.knockout import DEFAULT_PER_LAYER, class_knockout, failure_analysis, prompt_knockout
from interp.neurons.maps import OperandGrid, iter_maps
from interp.neurons.results import (
    ClassifiedNeuron,
    NeuronAnalysis,
    NeuronClassification,
    NeuronImportance,
    OperatorClassification,
)
from interp.tasks.base import TASK_METHODS, require

__all__ = ["classify_neurons", "analyze_neurons", "default_top_k"]

log = logging.getLogger(__name__)


def default_top_k(d_mlp: int) -> int:
    """Neurons per layer when none is given: the paper's ≈1.5% of d_mlp (200 of 14,336), but at least 50 (or all of
    a smaller MLP): 1.5% of toy-arith's 512 would be 8 neurons, too few for the knockout curves."""
    return min(d_mlp, max(50, round(0.015 * d_mlp)))


def classify_neurons(
    model: Any,
    task: Any,
    neurons: Mapping[Any, Any],
    *,
    ops: Sequence[str] | None = None,
    config: ClassifierConfig | None = None,
    importance: Mapping[str, NeuronImportance] | None = None,
    budget_mb: float = 256.0,
    model_name: str = "",
) -> NeuronClassification:
    """Algorithm 1 for ``neurons`` over the full legal grid of each operator.

    ``neurons`` is ``{layer: indices}`` (the same neurons for every operator) or ``{op: {layer: indices}}``.
    K and KV maps are streamed in blocks of at most ``budget_mb`` (`interp.neurons.maps.iter_maps`). A neuron
    whose activation is exactly 0 on every prompt of the grid is not classified (nothing to rank) and is listed in
    the operator's ``inactive`` instead, outside the classified fraction.
    """
    check_hook_post(model)
    require(task, "classify_neurons", *TASK_METHODS["grid"])
    config = config or ClassifierConfig()
    per_op = bool(neurons) and all(isinstance(k, str) for k in neurons)
    ops = list(neurons if per_op else task.operators) if ops is None else list(ops)
    if not ops:
        raise NeuronError("no operators to classify")
    for op in ops:
        check_operator(task, op)
        if per_op and op not in neurons:
            raise NeuronError(f"no neurons given for operator {op!r} (given: {' '.join(neurons)})")
    bottom = config.resolve_bottom(model)
    t0 = time.time()
    out: dict[str, OperatorClassification] = {}
    for op in ops:
        t_op = time.time()
        chosen = check_neurons(model, neurons[op] if per_op else neurons)
        grid = OperandGrid.from_task(model, task, op)
        scorer = HeuristicScorer(grid, config, also_bottom=bottom)
        classified: list[ClassifiedNeuron] = []
        inactive: list[tuple[int, int]] = []
        imp = importance.get(op) if importance else None
        for block in iter_maps(model, grid, chosen, kv=config.maps != "k", budget_mb=budget_mb):
            scores = scorer.score(block.k, block.kv)
            found = scorer.matches(scores)
            extra = scorer.multi_values(block.k if config.maps == "k" else block.kv)
            dead = ~np.any(block.k != 0, axis=0)  # activation exactly 0 on every prompt of the grid
            for j, (layer, n) in enumerate(zip(block.layers.tolist(), block.neurons.tolist())):
                if dead[j]:
                    inactive.append((layer, n))
                    continue
                value = imp.importance_of(layer, n) if imp is not None and layer in imp.layers else None
                classified.append(ClassifiedNeuron(layer, n, value, tuple(found[j] + extra[j])))
        if inactive:
            log.info("%d of the chosen %r neurons never activate on the grid: not classified", len(inactive), op)
        out[op] = OperatorClassification(op, tuple(classified), grid.n, time.time() - t_op,
                                         dict(scorer.skipped_families), tuple(inactive))
        for fam, why in scorer.skipped_families.items():
            log.info("%r: heuristic family %s skipped: %s", op, fam, why)
        log.info("classified %d neurons of %r in %.1f s", len(classified), op, time.time() - t_op)
    return NeuronClassification(model=model_name or str(getattr(model.cfg, "model_name", "")), task=task.name,
                                config={**config.to_dict(), "also_bottom": bottom}, ops=out,
                                seconds=time.time() - t0)


def analyze_neurons(
    model: Any,
    task: Any,
    *,
    top_k: int | None = None,
    top_frac: float | None = None,
    config: ClassifierConfig | None = None,
    method: str = "atp",
    n_per_op: int = 50,
    seed: int = 0,
    layers: Sequence[int] | None = None,
    per_layer: Sequence[int] | None = None,
    min_neurons: int = 10,
    knockout_prompts: int = 50,
    n_random: int = 3,
    random_pool: str = "top",
    budget_mb: float = 256.0,
    model_name: str = "",
    progress: bool = False,
) -> NeuronAnalysis:
    """Importance (``method``) per operator -> top-k per layer -> classification -> class knockout (Fig. 7),
    prompt-guided vs random knockout (Fig. 8) and the correct/incorrect analysis (Fig. 9).

    ``random_pool`` is where the prompt knockout's random control draws from (`interp.neurons.knockout.RANDOM_POOLS`;
    default ``"top"``, the paper's). Neurons whose importance is exactly 0 are never top neurons
    (`NeuronImportance.top`) and neurons that never activate on an operator's grid are not classified
    (`OperatorClassification.inactive`): both are counted in ``settings["excluded"]`` and left out of the classified
    fraction. ``progress`` prints one line per stage (importance, classification, class knockout, prompt knockout,
    failure analysis) with its time to stderr (`interp.progress.Stages`)."""
    from interp.checks import check_float, check_int
    from interp.progress import Stages

    t0 = time.time()
    check_arith_task(task, "the neuron pipeline")
    for name, v in (("n_per_op", n_per_op), ("min_neurons", min_neurons), ("knockout_prompts", knockout_prompts),
                    ("n_random", n_random)):
        check_int(v, name, lo=1, error=NeuronError)
    check_float(budget_mb, "budget_mb", lo=0, lo_open=True, error=NeuronError)
    if per_layer is not None:
        for x in per_layer:
            check_int(x, "per_layer entry (neurons zeroed per layer)", lo=0, hi=int(model.cfg.d_mlp), error=NeuronError)
    if layers is not None:
        from interp.sites import resolve_layers

        resolve_layers(model, layers)
    check_hook_post(model)
    require(task, "analyze_neurons", *TASK_METHODS["grid"], "pairs", "correct_prompts")
    config = config or ClassifierConfig()
    d_mlp = int(model.cfg.d_mlp)
    k = default_top_k(d_mlp) if top_k is None and top_frac is None else check_top(d_mlp, k=top_k, frac=top_frac)
    for op in task.operators:  # fail fast (multi-token numbers) before the importance pass
        OperandGrid.from_task(model, task, op)
    stages = Stages(5, enabled=progress, prefix="  neurons ")
    n_ops = len(task.operators)
    with stages.stage(f"importance ({method}, {n_ops} ops)"):
        importance = importance_by_operator(model, task, n_per_op=n_per_op, seed=seed, method=method, layers=layers,
                                            model_name=model_name)
    top = {op: imp.top(k=k) for op, imp in importance.items()}  # never a zero-importance neuron
    with stages.stage(f"Algorithm 1 on the top {k} neurons per layer ({n_ops} ops)"):
        classification = classify_neurons(model, task, top, config=config, importance=importance,
                                          budget_mb=budget_mb, model_name=model_name)
    with stages.stage("class knockout"):
        ck = class_knockout(model, task, classification, min_neurons=min_neurons, seed=42)
    # by default the curve stops at k/2 so that the random control can draw as many neurons from the top-k pool
    curve = sorted(set(DEFAULT_PER_LAYER if per_layer is None else per_layer))
    if per_layer is None:
        curve = [x for x in curve if x <= max(1, k // 2)]
    with stages.stage(f"prompt knockout ({len(curve)} sizes x {n_random} random draws)"):
        pk = {op: prompt_knockout(model, task, classification, op=op, per_layer=curve, n_prompts=knockout_prompts,
                                  n_random=n_random, random_pool=random_pool, seed=seed)
              for op in task.operators}
    with stages.stage("failure analysis"):
        fa = {op: failure_analysis(model, task, classification, op=op, n=knockout_prompts, seed=seed)
              for op in task.operators}
    settings = {"top_k": k, "method": method, "n_per_op": n_per_op, "seed": seed, "min_neurons": min_neurons,
                "knockout_prompts": knockout_prompts, "n_random": n_random, "random_pool": random_pool,
                "excluded": {op: {"zero_importance": sum(len(v) for v in importance[op].zero_importance().values()),
                                  "never_active": len(classification.ops[op].inactive)} for op in importance},
                "classifier": classification.config,
                "importance_seconds": {op: round(imp.seconds, 2) for op, imp in importance.items()},
                "classification_seconds": round(classification.seconds, 2)}
    return NeuronAnalysis(model=classification.model, task=task.name, classification=classification,
                          class_knockout=ck, prompt_knockout=pk, failure=fa, settings=settings,
                          seconds=time.time() - t0)
