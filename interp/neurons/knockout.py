"""Proving the heuristics matter: zero-ablation of neurons (Nikankin et al., ICLR 2025, §4, methods.md §A.5).

Every knockout here sets ``blocks.l.mlp.hook_post[..., n]`` to zero at **all** positions and measures greedy
accuracy (argmax at the last position equals the result token) on prompts the unablated model answers correctly,
so the baseline is 1.0.

* `class_knockout` (Fig. 7): for each heuristic class with at least ``min_neurons`` neurons, zero the class and
  compare accuracy on *related* prompts (the heuristic holds) with as many *unrelated* ones.
* `prompt_knockout` (Fig. 8): for each prompt, rank the neurons of the heuristics the prompt satisfies (by how many
  of them each neuron implements - the paper code; ``rank_by="score"`` uses the summed matching scores, the
  paper's wording), zero up to L per layer, and compare with zeroing as many random neurons drawn from the same
  layers' top neurons (minus the ablated ones). A curve over L.
* `failure_analysis` (Fig. 9): correct vs incorrect prompts - how many heuristic neurons are associated with each,
  and their summed direct contribution to the correct answer's logit (activation x value-vector logit).

Association is `Heuristic.holds` - the classifier's own half-open ranges; no ``region``/``range`` name mismatch.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import TaskError
from interp.neurons._common import NeuronError, check_hook_post, check_neurons, check_operator
from interp.neurons.heuristics import parse_heuristic
from interp.neurons.results import (
    ClassKnockout,
    ClassKnockoutRow,
    FailureAnalysis,
    NeuronClassification,
    OperatorClassification,
    PromptKnockout,
)
from interp.sites import hook_name
from interp.tasks.base import TASK_METHODS, require

__all__ = [
    "zero_hooks",
    "greedy_correct",
    "knockout_accuracy",
    "class_knockout",
    "prompt_knockout",
    "failure_analysis",
    "RANK_BY",
    "RANDOM_POOLS",
    "random_pools",
]

RANK_BY = ("count", "score")
# where the random control's neurons come from: the classified top neurons of the same layer (the paper's), every
# neuron of the same layer, or the neurons of the same layer active (post-activation > 0) on the knockout prompts
RANDOM_POOLS = ("top", "layer", "active")
DEFAULT_PER_LAYER = (0, 1, 2, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50)


def zero_hooks(model: Any, neurons: Mapping[int, Sequence[int]]) -> list[tuple[str, Any]]:
    """Forward hooks zeroing ``{layer: neuron indices}`` of ``mlp.hook_post`` at every position."""
    check_hook_post(model)
    hooks = []
    for layer, idx in check_neurons(model, neurons).items():
        index = torch.tensor(idx, dtype=torch.long)

        def hook(act: Tensor, hook: Any, index: Tensor = index) -> Tensor:
            act = act.clone()
            act[..., index.to(act.device)] = 0.0
            return act

        hooks.append((hook_name("neuron", layer), hook))
    return hooks


def _row_zero_hooks(model: Any, rows: Sequence[Mapping[int, Sequence[int]]]) -> list[tuple[str, Any]]:
    """Hooks zeroing a different neuron set in each batch row: ``rows[i] = {layer: indices}``."""
    d_mlp = int(model.cfg.d_mlp)
    coords: dict[int, tuple[list[int], list[int]]] = {}
    for i, row in enumerate(rows):
        for layer, idx in row.items():
            if len(idx):
                r, c = coords.setdefault(int(layer), ([], []))
                r.extend([i] * len(idx))
                c.extend(idx)
    hooks = []
    for layer, (r, c) in coords.items():
        mask = np.ones((len(rows), d_mlp), dtype=np.float32)
        mask[r, c] = 0.0
        keep = torch.from_numpy(mask)

        def hook(act: Tensor, hook: Any, keep: Tensor = keep) -> Tensor:
            return act * keep.to(act.device, act.dtype)[:, None, :]

        hooks.append((hook_name("neuron", layer), hook))
    return hooks


@torch.inference_mode()
def greedy_correct(
    model: Any,
    tokens: Tensor,
    answers: Tensor,
    *,
    zero: Mapping[int, Sequence[int]] | None = None,
    row_zero: Sequence[Mapping[int, Sequence[int]]] | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """Per prompt: is the argmax at the last position the answer token, with ``zero`` neurons (the same for every
    prompt) or ``row_zero[i]`` neurons (prompt ``i``'s own set) zeroed at all positions."""
    check_hook_post(model)
    if tokens.ndim != 2 or answers.shape != (tokens.shape[0],):
        raise NeuronError(f"tokens must be [batch pos] and answers [batch]; got {tuple(tokens.shape)} and "
                          f"{tuple(answers.shape)}")
    if row_zero is not None and len(row_zero) != tokens.shape[0]:
        raise NeuronError(f"row_zero needs one neuron set per prompt ({tokens.shape[0]}); got {len(row_zero)}")
    if row_zero is not None:
        for row in row_zero:
            check_neurons(model, row)
    device = next(iter(model.parameters())).device
    out = []
    for s in range(0, tokens.shape[0], batch_size):
        hooks = zero_hooks(model, zero) if zero else []
        if row_zero is not None:
            hooks += _row_zero_hooks(model, row_zero[s : s + batch_size])
        logits = model.run_with_hooks(tokens[s : s + batch_size].to(device), fwd_hooks=hooks)[:, -1, :]
        out.append((logits.argmax(-1).cpu() == answers[s : s + batch_size]).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)


def knockout_accuracy(model: Any, tokens: Tensor, answers: Tensor, neurons: Mapping[int, Sequence[int]]) -> float:
    """Greedy accuracy with ``neurons`` zeroed at all positions."""
    ok = greedy_correct(model, tokens, answers, zero=neurons)
    return float(ok.mean()) if len(ok) else float("nan")


def _arrays(prompts: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, Tensor, Tensor]:
    a = np.array([p.a for p in prompts], dtype=np.int64)
    b = np.array([p.b for p in prompts], dtype=np.int64)
    r = np.array([p.result for p in prompts], dtype=np.int64)
    toks = torch.tensor([p.tokens for p in prompts], dtype=torch.long)
    ans = torch.tensor([p.answer_token for p in prompts], dtype=torch.long)
    return a, b, r, toks, ans


def all_correct(model: Any, task: Any, op: str) -> list[Any]:
    """Every correct prompt of ``op`` (seed-42 order). An explicit limit makes the task rescan the whole grid even
    when an earlier call cached only the first few correct prompts."""
    return task.correct_prompts(model, op, limit=len(task.prompts(model, op)))


def _ops(classification: NeuronClassification, task: Any, ops: Sequence[str] | None) -> list[str]:
    require(task, "the neuron knockouts", *TASK_METHODS["knockout"])
    ops = list(classification.ops) if ops is None else list(ops)
    for op in ops:
        check_operator(task, op)
        if op not in classification.ops:
            raise NeuronError(f"operator {op!r} was not classified (classified: {' '.join(classification.ops)})")
    return ops


# --------------------------------------------------------------------------------------------- class knockout


def class_knockout(
    model: Any,
    task: Any,
    classification: NeuronClassification,
    *,
    ops: Sequence[str] | None = None,
    min_neurons: int = 10,
    max_prompts: int = 100,
    seed: int = 42,
) -> ClassKnockout:
    """Fig. 7: zero each heuristic class (>= ``min_neurons`` neurons), accuracy on related vs unrelated prompts.

    Related prompts: up to ``max_prompts`` correct legal prompts the heuristic holds on (seeded sample);
    unrelated: as many correct prompts it does not hold on.
    """
    if min_neurons < 1:
        raise NeuronError(f"min_neurons must be >= 1; got {min_neurons}")
    rows = []
    for op in _ops(classification, task, ops):
        correct = all_correct(model, task, op)
        a, b, r, toks, ans = _arrays(correct)
        rng = random.Random(seed)
        # every class's related and unrelated prompts, each row with its class zeroed, in one batched pass
        plans, sel, zeros = [], [], []
        for name, members in classification.ops[op].by_heuristic().items():
            if len(members) < min_neurons:
                continue
            holds = parse_heuristic(name).holds(a, b, r)
            rel, unrel = np.flatnonzero(holds).tolist(), np.flatnonzero(~holds).tolist()
            if not rel or not unrel:
                continue
            rel = rng.sample(rel, min(max_prompts, len(rel)))
            unrel = rng.sample(unrel, min(len(rel), len(unrel)))
            zero: dict[int, list[int]] = {}
            for layer, n, _ in members:
                zero.setdefault(layer, []).append(n)
            plans.append((name, members, len(sel), len(rel), len(unrel)))
            sel += rel + unrel
            zeros += [zero] * (len(rel) + len(unrel))
        if not plans:
            continue
        ok = greedy_correct(model, toks[sel], ans[sel], row_zero=zeros)
        for name, members, start, n_rel, n_unrel in plans:
            rows.append(ClassKnockoutRow(
                op=op, heuristic=name, n_neurons=len(members), n_prompts=n_rel,
                related_accuracy=float(ok[start : start + n_rel].mean()),
                unrelated_accuracy=float(ok[start + n_rel : start + n_rel + n_unrel].mean()),
                score_sum=float(sum(s for _, _, s in members)),
            ))
    return ClassKnockout(rows=tuple(rows), min_neurons=min_neurons)


# -------------------------------------------------------------------------------------------- prompt knockout


def _association(oc: OperatorClassification, a: np.ndarray, b: np.ndarray, r: np.ndarray, rank_by: str,
                 ) -> list[dict[int, list[int]]]:
    """Per prompt: ``{layer: associated heuristic neurons, best first}``."""
    classes = oc.by_heuristic()
    holds = {name: parse_heuristic(name).holds(a, b, r) for name in classes}
    out = []
    for i in range(len(a)):
        weight: dict[tuple[int, int], float] = {}
        for name, members in classes.items():
            if holds[name][i]:
                for layer, n, s in members:
                    weight[(layer, n)] = weight.get((layer, n), 0.0) + (1.0 if rank_by == "count" else s)
        ranked = sorted(weight.items(), key=lambda kv: (-kv[1], kv[0]))
        per_layer: dict[int, list[int]] = {}
        for (layer, n), _ in ranked:
            per_layer.setdefault(layer, []).append(n)
        out.append(per_layer)
    return out


def evaluation_prompts(model: Any, task: Any, op: str, n: int, *, skip: int | None = None) -> list[Any]:
    """Correct prompts held out from discovery: the seed-42 shuffle's prompts after the first ``skip`` (= n)."""
    correct = task.correct_prompts(model, op, limit=2 * n if skip is None else skip + n)
    skip = n if skip is None else skip
    held = correct[skip : skip + n]
    return held if held else correct[:n]


def prompt_knockout(
    model: Any,
    task: Any,
    classification: NeuronClassification,
    *,
    op: str,
    per_layer: Sequence[int] = DEFAULT_PER_LAYER,
    n_prompts: int = 50,
    prompts: Sequence[Any] | None = None,
    rank_by: str = "count",
    n_random: int = 3,
    random_pool: str | Mapping[int, Sequence[int]] = "top",
    seed: int = 0,
) -> PromptKnockout:
    """Fig. 8: accuracy after zeroing each prompt's top-L associated heuristic neurons per layer, and after zeroing
    as many random neurons from the same layers' classified top neurons, for each L in ``per_layer``.

    ``prompts`` default to ``n_prompts`` correct prompts held out from the discovery ones; the random control is
    averaged over ``n_random`` seeded draws from ``random_pool`` (`RANDOM_POOLS`): ``"top"`` the classified top
    neurons of the same layer (default, the paper's), ``"layer"`` every neuron of the same layer, ``"active"`` the
    same layer's neurons whose activation is > 0 at the last position of some knockout prompt; or an explicit
    ``{layer: neurons}``. The result records the pool (``random_pool``) and its size per layer (``pool_sizes``).
    When L approaches the pool size the pool minus the ablated neurons can hold fewer than L neurons;
    ``mean_random_ablated`` records how many were actually zeroed.
    """
    if rank_by not in RANK_BY:
        raise NeuronError(f"rank_by must be one of {RANK_BY}; got {rank_by!r}")
    _ops(classification, task, [op])
    per_layer = [int(x) for x in per_layer]
    if any(x < 0 for x in per_layer) or not per_layer:
        raise NeuronError(f"per_layer counts must be >= 0; got {per_layer}")
    oc = classification.ops[op]
    prompts = list(prompts) if prompts is not None else evaluation_prompts(model, task, op, n_prompts)
    if not prompts:
        raise TaskError(f"no correct {op!r} prompts to knock out")
    a, b, r, toks, ans = _arrays(prompts)
    assoc = _association(oc, a, b, r, rank_by)
    pools, pool_name = random_pools(model, oc, random_pool, toks)
    rng = random.Random(seed)
    draws = max(1, n_random)
    # one batched pass: for each L, the heuristic rows then ``draws`` random rows, each prompt with its own set
    row_sets: list[Mapping[int, Sequence[int]]] = []
    for L in per_layer:
        chosen = [{layer: ns[:L] for layer, ns in row.items()} for row in assoc]
        row_sets += chosen
        for _ in range(draws):
            for row in chosen:
                rr = {}
                for layer, ns in row.items():
                    taken = set(ns)
                    pool = [n for n in pools.get(layer, []) if n not in taken]
                    rr[layer] = rng.sample(pool, min(len(ns), len(pool)))
                row_sets.append(rr)
    n = len(prompts)
    reps = len(per_layer) * (1 + draws)
    ok = greedy_correct(model, toks.repeat(reps, 1), ans.repeat(reps), row_zero=row_sets)
    ok = ok.reshape(len(per_layer), 1 + draws, n)
    sizes = np.array([sum(len(v) for v in row.values()) for row in row_sets], dtype=float)
    sizes = sizes.reshape(len(per_layer), 1 + draws, n)
    heur_acc = ok[:, 0].mean(-1).tolist()
    rand_acc = ok[:, 1:].mean((-1, -2)).tolist()
    n_ablated = sizes[:, 0].mean(-1).tolist()
    n_random_ablated = sizes[:, 1:].mean((-1, -2)).tolist()
    return PromptKnockout(op=op, per_layer=per_layer, heuristic_accuracy=heur_acc, random_accuracy=rand_acc,
                          mean_ablated=n_ablated, mean_random_ablated=n_random_ablated, n_prompts=len(prompts),
                          rank_by=rank_by, random_pool=pool_name,
                          pool_sizes={str(k): len(v) for k, v in sorted(pools.items())})


def random_pools(model: Any, oc: OperatorClassification, pool: str | Mapping[int, Sequence[int]], tokens: Tensor,
                 ) -> tuple[dict[int, list[int]], str]:
    """``({layer: neurons the random control draws from}, pool name)`` for the layers of ``oc``'s top neurons."""
    layers = sorted(oc.top_neurons())
    if isinstance(pool, Mapping):
        return check_neurons(model, pool), "custom"
    if pool not in RANDOM_POOLS:
        raise NeuronError(f"random_pool must be one of {', '.join(RANDOM_POOLS)} or {{layer: neurons}}; got {pool!r}")
    if pool == "top":
        return oc.top_neurons(), pool
    d_mlp = int(model.cfg.d_mlp)
    if pool == "layer":
        return {layer: list(range(d_mlp)) for layer in layers}, pool
    names = {hook_name("neuron", layer): layer for layer in layers}
    device = next(iter(model.parameters())).device
    active: dict[int, list[int]] = {}
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens.to(device), names_filter=lambda n: n in names)
    for name, layer in names.items():
        act = cache[name][:, -1, :].float()  # [prompt neuron]
        active[layer] = torch.nonzero((act > 0).any(0)).flatten().tolist()
    return active, pool


# ------------------------------------------------------------------------------------------- failure analysis


@torch.inference_mode()
def failure_analysis(
    model: Any,
    task: Any,
    classification: NeuronClassification,
    *,
    op: str,
    n: int = 50,
    seed: int = 0,
) -> FailureAnalysis:
    """Fig. 9: ``n`` correct and ``n`` incorrect prompts - associated heuristic neurons and their summed logit
    contribution to the correct answer, ``sum_n act_n(p) * (W_out[n] @ W_U)[answer(p)]``."""
    _ops(classification, task, [op])
    check_hook_post(model)
    oc = classification.ops[op]
    grid = task.prompts(model, op)
    correct = all_correct(model, task, op)
    correct_set = {p.tokens for p in correct}
    incorrect = [p for p in grid if p.tokens not in correct_set]
    rng = random.Random(seed)
    groups = {"correct": rng.sample(correct, min(n, len(correct))),
              "incorrect": rng.sample(incorrect, min(n, len(incorrect)))}
    top = oc.top_neurons()
    counts: dict[str, list[int]] = {}
    logits: dict[str, list[float]] = {}
    device = next(iter(model.parameters())).device
    for key, prompts in groups.items():
        if not prompts:
            counts[key], logits[key] = [], []
            continue
        a, b, r, toks, ans = _arrays(prompts)
        assoc = _association(oc, a, b, r, "count")
        acts: dict[int, Tensor] = {}

        def grab(act: Tensor, hook: Any, layer: int, acts: dict[int, Tensor] = acts) -> None:
            acts[layer] = act[:, -1, :].float().cpu()

        hooks = [(hook_name("neuron", layer), lambda act, hook, layer=layer: grab(act, hook, layer)) for layer in top]
        model.run_with_hooks(toks.to(device), fwd_hooks=hooks)
        w_u = model.W_U.detach().float().cpu()[:, ans]  # [d_model prompt]
        lens = {layer: (model.blocks[layer].mlp.W_out.detach().float().cpu() @ w_u) for layer in top}  # [d_mlp p]
        counts[key] = [sum(len(v) for v in row.values()) for row in assoc]
        logits[key] = [float(sum(float(acts[layer][i, ns].dot(lens[layer][ns, i])) for layer, ns in row.items()))
                       for i, row in enumerate(assoc)]
    return FailureAnalysis(op=op, correct_counts=counts["correct"], incorrect_counts=counts["incorrect"],
                           correct_logit=logits["correct"], incorrect_logit=logits["incorrect"])
