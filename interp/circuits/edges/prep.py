"""Shared set-up of edge scoring and evaluation: prompt pairs, the metric, and each sender's ablation value.

Ablations (what an ablated edge carries instead of its sender's clean output):

* ``counterfactual`` - the sender's output on the corrupt prompt of the same pair (MIB's default, "patching");
* ``mean`` - the sender's position-wise mean output over ``mean_tokens`` (default: the task's own mean-ablation
  prompts if it defines them, else the clean prompts);
* ``zero`` - the sender's output with its own activation zeroed, as the node evaluator does: a head sends 0 (its
  ``z`` is zero), an MLP sends its output bias (its hidden activation is zero), the input sends 0.

Metrics: every name of `interp.metrics.METRICS` (base run = clean prompt, source run = corrupt prompt) and ``nl``,
the normalized logit of the node evaluator (Eq. 2 of Nikankin et al.). Default ``logit_diff``, as MIB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from interp.circuits.edges.forward import EdgeForward
from interp.circuits.edges.graph import EdgeError
from interp.errors import ShapeError, unknown
from interp.metrics import FALLING, METRICS, MetricContext, make_metric, normalized_logit

__all__ = ["EDGE_ABLATIONS", "EDGE_METRICS", "Batch", "resolve_pairs", "check_ablation", "check_metric",
           "helps_sign", "metric_fn", "prepare_batches", "sender_means"]

EDGE_ABLATIONS: tuple[str, ...] = ("counterfactual", "mean", "zero")
EDGE_METRICS: tuple[str, ...] = (*METRICS, "nl")


def helps_sign(metric: str) -> float:
    """-1 for metrics where an edge that helps the behaviour scores negative (``logit_diff``, ``prob``, ``nl``,
    ``logit_diff_change``), +1 for those where it scores positive (``ie``, ``ie_logits``, ``*_norm``).

    ``helps_sign(metric) * score`` is an edge's *helpfulness*: positive when ablating the edge moves the model
    toward the corrupt answer. It is the sign of MIB's own scores, whose attribution metric is the negated logit
    difference (``loss=True`` in MIB's ``run_attribution.py``), and the order of MIB's signed selection.
    """
    return -1.0 if check_metric(metric) in (*FALLING, "nl") else 1.0  # nl, like logit_diff, falls


def check_ablation(name: str) -> str:
    if name not in EDGE_ABLATIONS:
        raise unknown("edge ablation", name, EDGE_ABLATIONS)
    return name


def check_metric(name: str) -> str:
    if name not in EDGE_METRICS:
        raise unknown("metric", name, EDGE_METRICS)
    return name


def resolve_pairs(model: Any, pairs_or_task: Any, *, n: int | None = None, seed: int = 0,
                  split: str | None = None) -> Any:
    """`PromptPairs` from pairs, a task, or a task spec (``"arith:+"``, ``"ioi:32"``)."""
    from interp.tasks.base import PromptPairs

    if isinstance(pairs_or_task, PromptPairs):
        return pairs_or_task
    task = pairs_or_task
    if isinstance(task, str):
        from interp.tasks import parse_task

        task = parse_task(task)
    if not hasattr(task, "pairs"):
        raise EdgeError(f"expected PromptPairs, a task or a task spec; got {type(pairs_or_task).__name__}")
    kw: dict[str, Any] = {"seed": seed}
    if n is not None:
        kw["n_per_op"] = n
    if split is not None:
        kw["split"] = split
    return task.pairs(model, **kw)


def metric_fn(name: str, clean_logits: Tensor, corrupt_logits: Tensor, r: Tensor, r2: Tensor,
              reps: int = 1) -> Callable[[Tensor], Tensor]:
    """Per-prompt metric of last-position logits; ``reps`` tiles the prompts for stacked variants."""
    check_metric(name)
    if reps > 1:
        clean_logits, corrupt_logits = clean_logits.repeat(reps, 1), corrupt_logits.repeat(reps, 1)
        r, r2 = r.repeat(reps), r2.repeat(reps)
    if name == "nl":
        return lambda x: normalized_logit(x, r)
    return make_metric(name, MetricContext(clean_logits, corrupt_logits, r, r2))


def sender_means(ef: EdgeForward, tokens: Tensor, batch_size: int = 64) -> Tensor:
    """Position-wise mean output of every sender over ``tokens`` -> [S n_senders d]."""
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise ShapeError(f"mean tokens must be a non-empty [batch pos] tensor; got {tuple(tokens.shape)}")
    total = None
    for i in range(0, tokens.shape[0], batch_size):
        _, o = ef.sender_outputs(tokens[i : i + batch_size])
        s = o.double().sum(0)
        total = s if total is None else total + s
    assert total is not None
    return (total / tokens.shape[0]).float()


@dataclass
class Batch:
    """One chunk of prompts with everything scoring and evaluation need."""

    clean: Tensor
    corrupt: Tensor
    r: Tensor
    r2: Tensor
    clean_logits: Tensor
    corrupt_logits: Tensor
    outputs: Tensor  # [B S n_senders d] clean sender outputs
    values: Tensor  # [B S n_senders d] ablation values

    @property
    def n(self) -> int:
        return int(self.clean.shape[0])

    def metric(self, name: str, reps: int = 1) -> Callable[[Tensor], Tensor]:
        return metric_fn(name, self.clean_logits, self.corrupt_logits, self.r, self.r2, reps)


def prepare_batches(ef: EdgeForward, pairs: Any, *, ablation: str, batch_size: int = 16,
                    mean: Tensor | None = None, mean_tokens: Tensor | None = None) -> list[Batch]:
    """Split ``pairs`` into chunks and compute clean/corrupt sender outputs and ablation values for each."""
    check_ablation(ablation)
    if batch_size < 1:
        raise EdgeError(f"batch_size must be >= 1; got {batch_size}")
    clean, corrupt = pairs.clean_tokens, pairs.corrupt_tokens
    d_vocab = int(ef.model.cfg.d_vocab)
    if int(clean.max()) >= d_vocab or int(corrupt.max()) >= d_vocab or int(min(clean.min(), corrupt.min())) < 0:
        raise ShapeError(f"token ids must lie in [0, {d_vocab})")
    ef.verify(clean)
    if ablation == "mean" and mean is None:
        mean = sender_means(ef, clean if mean_tokens is None else mean_tokens)
    if ablation == "mean":
        assert mean is not None
        if mean.shape[0] != clean.shape[1]:
            raise ShapeError(f"the mean covers {mean.shape[0]} positions but the prompts have {clean.shape[1]} "
                             "tokens; mean tokens must have the prompts' length")
    out = []
    for i in range(0, clean.shape[0], batch_size):
        sl = slice(i, i + batch_size)
        cl, o = ef.sender_outputs(clean[sl])
        kl, ok = ef.sender_outputs(corrupt[sl])
        if ablation == "counterfactual":
            vals = ok
        elif ablation == "mean":
            vals = mean[None].expand_as(o).clone()  # type: ignore[index]
        else:
            vals = torch.zeros_like(o)
            g = ef.graph
            bias = ef.mlp_bias().to(o.dtype)
            for layer in range(g.n_layers):
                vals[:, :, g.sender_index(layer, None)] = bias[layer]
        out.append(Batch(clean[sl], corrupt[sl], pairs.clean_answers[sl], pairs.corrupt_answers[sl], cl, kl, o,
                         vals))
    return out
