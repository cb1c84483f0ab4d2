"""Heuristic neurons across training (Nikankin et al., ICLR 2025, §5, Fig. 10; methods.md §A.6), on toy checkpoints.

Train with checkpoints (``interp train-toy --out DIR --checkpoint-every N`` writes loadable ``DIR/checkpoints/step_N``
model directories), then re-run the whole pipeline at every checkpoint: importance per operator, top-k neurons per
layer, Algorithm 1, prompt-guided vs random knockout. Reported per step:

* **intersection ratio** (Fig. 10a): the final model's ``(operator, heuristic, layer, neuron)`` matches, restricted to
  the final model's top ``intersection_top`` neurons per layer (the paper: top 50 of 200) and to heuristic names that
  occur at every step, and the share of them also present at step s - rising toward 1 means the final mechanism is
  assembled gradually;
* **mutual-neuron faithfulness** (Fig. 10b): Eq. 2 faithfulness (mean ablation) of the circuit that keeps every
  head, whole MLPs outside ``faithfulness_layers`` and, inside them, only (1) every heuristic neuron of step s or
  (2) only those step-s neurons classified into the *same* heuristic in the final model; (2) / (1) is the share of
  the heuristics' contribution carried by neurons that keep their role (the paper: 79% on average);
* **knockout** (Fig. 10c): accuracy after zeroing L associated heuristic neurons per layer vs L random top neurons;
* accuracy and the classified fraction of the top neurons.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from interp.errors import ModelLoadError, TaskError
from interp.neurons._common import NeuronError, check_top
from interp.neurons.heuristics import ClassifierConfig
from interp.neurons.importance import importance_by_operator
from interp.neurons.knockout import prompt_knockout
from interp.neurons.pipeline import classify_neurons
from interp.neurons.results import DynamicsResult
from interp.sites import resolve_layers

__all__ = ["list_checkpoints", "training_dynamics", "mutual_faithfulness"]

log = logging.getLogger(__name__)
_STEP = re.compile(r"^step_(\d+)$")


def list_checkpoints(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``[(step, path)]`` of the ``step_N`` model directories in ``directory`` or ``directory/checkpoints``."""
    d = Path(directory)
    if not d.is_dir():
        raise ModelLoadError(f"checkpoint directory {d} does not exist")
    for cand in (d, d / "checkpoints"):
        found = sorted((int(m.group(1)), p) for p in cand.iterdir() if p.is_dir() and (m := _STEP.match(p.name))) \
            if cand.is_dir() else []
        if found:
            broken = [p.name for _, p in found if not (p / "config.json").is_file()
                      or not (p / "model.safetensors").is_file()]
            if broken:
                raise ModelLoadError(
                    f"checkpoint folder(s) {', '.join(broken)} in {cand} lack config.json or model.safetensors "
                    "(an interrupted training run?); delete them or train again with `interp train-toy --out DIR "
                    "--checkpoint-every N`"
                )
            return found
    raise ModelLoadError(
        f"no step_N checkpoint directories in {d} or {d / 'checkpoints'}; write them with "
        "`interp train-toy --out DIR --checkpoint-every N`"
    )


def _load(path: Path) -> Any:
    from interp.models import load_model

    return load_model(str(path))


def training_dynamics(
    checkpoints: str | os.PathLike[str],
    task: Any,
    *,
    top_k: int = 50,
    intersection_top: int | None = None,
    config: ClassifierConfig | None = None,
    method: str = "atp",
    n_per_op: int = 50,
    knockout_per_layer: Sequence[int] = (5, 10, 25),
    knockout_prompts: int = 50,
    n_random: int = 1,
    max_accuracy_prompts: int | None = 1000,
    steps: Sequence[int] | None = None,
    faithfulness: bool = True,
    faithfulness_layers: Sequence[int] | None = None,
    loader: Callable[[Path], Any] = _load,
    progress: bool = False,
) -> DynamicsResult:
    """The neuron pipeline at every checkpoint of ``checkpoints`` (the last one is the final model).

    ``intersection_top`` defaults to ``top_k // 4`` (the paper's 50 of 200). Operators a checkpoint answers no
    prompt of correctly get NaN for that step. ``steps`` selects a subset of checkpoint steps.
    ``faithfulness`` adds Fig. 10b (a mean cache and two faithfulness scores per operator and checkpoint);
    ``faithfulness_layers`` are the layers whose MLPs are reduced to heuristic neurons (default: every layer; the
    paper keeps Pythia's layers < 14 whole).
    """
    from interp.neurons._common import check_arith_task
    from interp.progress import iterate

    t0 = time.time()
    from interp.checks import check_int

    check_arith_task(task, "training_dynamics")
    check_int(top_k, "top_k (neurons per layer)", lo=1, error=NeuronError)
    check_int(n_per_op, "n_per_op", lo=1, error=NeuronError)
    if intersection_top is not None:
        check_int(intersection_top, "intersection_top", lo=1, hi=top_k, error=NeuronError)
    for x in knockout_per_layer:
        check_int(x, "knockout_per_layer count", lo=1, error=NeuronError)
    config = config or ClassifierConfig()
    found = list_checkpoints(checkpoints)
    if steps is not None:
        wanted = {int(s) for s in steps}
        found = [(s, p) for s, p in found if s in wanted]
        if not found:
            raise NeuronError(f"none of steps {sorted(wanted)} is a checkpoint in {checkpoints}")
    ks = sorted({int(x) for x in knockout_per_layer})
    if any(x < 1 for x in ks):
        raise NeuronError(f"knockout_per_layer counts must be >= 1; got {ks}")
    inter_top = max(1, top_k // 4) if intersection_top is None else int(intersection_top)
    n_steps = len(found)

    def nans() -> list[float]:
        return [math.nan] * n_steps

    acc: dict[str, list[float]] = {op: nans() for op in task.operators}
    frac = nans()
    heur: dict[str, list[float]] = {f"{op} L={x}": nans() for op in task.operators for x in ks}
    rand: dict[str, list[float]] = {key: nans() for key in heur}
    f_all: dict[str, list[float]] = {op: nans() for op in task.operators}
    f_mut: dict[str, list[float]] = {op: nans() for op in task.operators}
    matches: list[set[tuple[str, str, int, int]]] = [set() for _ in found]
    final_top: dict[str, dict[int, list[int]]] = {}
    last = n_steps - 1
    # the final checkpoint first: every other step's Fig. 10b compares against its classification, so each
    # checkpoint is loaded once
    for i in iterate([last, *range(last)], desc="checkpoints", enabled=progress):
        step, path = found[i]
        model = loader(path)
        k = check_top(int(model.cfg.d_mlp), k=top_k, frac=None)
        if i == last and faithfulness and faithfulness_layers is not None:
            resolve_layers(model, faithfulness_layers)  # fail before the expensive part
        report = task.accuracy(model, max_prompts=max_accuracy_prompts)
        for op in task.operators:
            acc[op][i] = report.accuracy[op]
        ops = []
        for op in task.operators:
            try:
                task.correct_prompts(model, op, limit=n_per_op + 1)
                ops.append(op)
            except TaskError:
                log.info("step %d: no correct %r prompts; skipped", step, op)
        if not ops:
            continue
        importance = importance_by_operator(model, task.with_operators(ops), n_per_op=n_per_op, method=method)
        top = {op: imp.top(k=k) for op, imp in importance.items()}
        cls = classify_neurons(model, task, top, config=config, importance=importance)
        frac[i] = cls.classified_fraction
        for op, oc in cls.ops.items():
            for n in oc.neurons:
                for h in n.heuristics:
                    matches[i].add((op, h.name, n.layer, n.index))
            pk = prompt_knockout(model, task, cls, op=op, per_layer=ks, n_prompts=knockout_prompts, n_random=n_random)
            for x, ha, ra in zip(pk.per_layer, pk.heuristic_accuracy, pk.random_accuracy):
                heur[f"{op} L={x}"][i] = ha
                rand[f"{op} L={x}"][i] = ra
        if i == last:
            final_top = {op: imp.top(k=min(inter_top, k)) for op, imp in importance.items()}
        if faithfulness and matches[i]:
            fa, fm = mutual_faithfulness(model, task, ops, matches[i], matches[last], layers=faithfulness_layers,
                                         n_per_op=n_per_op)
            for op in fa:
                f_all[op][i], f_mut[op][i] = fa[op], fm[op]
        log.info("step %d: classified %.2f in %.1f s", step, frac[i], time.time() - t0)
    # heuristic names present at every step that classified anything (early checkpoints may classify nothing)
    named = [{name for _, name, _, _ in m} for m in matches if m]
    names_everywhere = set.intersection(*named) if named else set()
    final = {t for t in matches[last] if t[1] in names_everywhere and t[3] in final_top.get(t[0], {}).get(t[2], [])}
    inter = [len(final & m) / len(final) if final else math.nan for m in matches]
    return DynamicsResult(
        steps=[s for s, _ in found], accuracy=acc, classified_fraction=frac, intersection=inter,
        knockout_per_layer=ks, heuristic_accuracy=heur, random_accuracy=rand, n_final_triples=len(final),
        faithfulness_heuristic=f_all if faithfulness else {}, faithfulness_mutual=f_mut if faithfulness else {},
        seconds=time.time() - t0,
        meta={"top_k": top_k, "intersection_top": inter_top, "method": method, "task": task.name,
              "checkpoints": [str(p) for _, p in found], "classifier": config.to_dict(),
              "faithfulness_layers": None if faithfulness_layers is None else sorted(map(int, faithfulness_layers)),
              "faithfulness_ablation": "mean"},
    )


def mutual_faithfulness(
    model: Any,
    task: Any,
    ops: Sequence[str],
    step_matches: set[tuple[str, str, int, int]],
    final_matches: set[tuple[str, str, int, int]],
    *,
    layers: Sequence[int] | None = None,
    n_per_op: int = 50,
) -> tuple[dict[str, float], dict[str, float]]:
    """Fig. 10b at one checkpoint: ``({op: F(all heuristic neurons)}, {op: F(mutual neurons)})``.

    ``step_matches`` / ``final_matches`` are ``(operator, heuristic, layer, neuron)`` classifications at this step
    and in the final model. Both circuits keep every head and the whole MLP of every layer outside ``layers``;
    inside ``layers`` they keep (1) every neuron classified at this step, or (2) only those classified into the same
    heuristic in the final model; every other neuron is mean-ablated (Eq. 2, on held-out correct
    prompts). Operators without enough correct evaluation prompts are left out of the result.
    """
    from interp.circuits.ablation import mean_cache
    from interp.circuits.faithfulness import FaithfulnessEvaluator

    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    layer_list = resolve_layers(model, layers)
    heads = [(lyr, h) for lyr in range(n_layers) for h in range(n_heads)]
    whole = [lyr for lyr in range(n_layers) if lyr not in layer_list]
    mean = mean_cache(model, task, kinds=("head", "mlp"))
    f_all: dict[str, float] = {}
    f_mut: dict[str, float] = {}
    mutual = step_matches & final_matches
    for op in ops:
        try:
            sub = task.with_operators([op]).pairs(model, n_per_op=n_per_op, split="evaluation",
                                                  corrupt_from="same")
        except TaskError as e:
            log.info("no faithfulness for %r at this checkpoint: %s", op, e)
            continue
        ev = FaithfulnessEvaluator(model, sub.clean_tokens, sub.clean_answers, ablation="mean", mean=mean)
        f_all[op] = ev.score(keep_heads=heads, keep_mlps=whole,
                             keep_neurons=_kept(step_matches, op, layer_list)).faithfulness
        f_mut[op] = ev.score(keep_heads=heads, keep_mlps=whole, keep_neurons=_kept(mutual, op, layer_list)).faithfulness
    return f_all, f_mut


def _kept(triples: set[tuple[str, str, int, int]], op: str, layers: list[int]) -> dict[int, list[int]]:
    """``{layer: neurons}`` of ``op``'s classified (operator, heuristic, layer, neuron) triples in ``layers``."""
    return {lyr: sorted({n for o, _, l2, n in triples if o == op and l2 == lyr}) for lyr in layers}
