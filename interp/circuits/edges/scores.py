"""Edge scores: EAP, EAP-IG (inputs, activations) and exact edge patching.

All methods score an edge ``s -> r`` by the change of the metric when the edge is ablated (its receiver gets the
sender's ablation value ``A_s`` instead of its clean output ``O_s``), averaged over prompts, MIB's sign convention
(noising: negative = the edge helps the metric):

* ``eap`` (Syed et al. 2023): ``(A_s - O_s) . d metric / d input_r``, the gradient taken on the clean run, summed
  over positions - one forward and one backward pass per chunk of prompts;
* ``eap-ig-inputs`` (Hanna et al. 2024): the gradient averaged over ``ig_steps`` runs whose input embeddings are
  interpolated from the ablated input to the clean one, ``alpha = k / ig_steps``. Paper and code differ on the
  points: the paper's Eq. sums ``k = 1..ig_steps`` (a right Riemann sum: ``ig_steps=1`` is exactly ``eap``), the
  EAP-IG/MIB code ``k = 0..ig_steps-1`` (a left sum: it includes the fully ablated input, never the clean one).
  ``ig_rule="right"`` (default, the paper) or ``"left"`` (the code) chooses;
* ``eap-ig-activations``: for the senders of one group (the input, the heads of one layer, one MLP) the gradient
  is averaged over ``ig_steps`` runs in which that group's outputs are interpolated (same ``alpha``) and everything
  else is clean; ``(2 n_layers + 1) ig_steps`` runs, each starting at its group's layer from the clean residual
  (about half a forward and backward on average). (MIB's code averages the
  gradients of all groups' runs for every edge; here an edge integrates along its own sender's path, which is what
  the method describes.)
* ``exact``: patch each edge alone and measure (`interp.circuits.edges.exact`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.circuits.edges.exact import exact_edge_effects
from interp.circuits.edges.forward import EdgeForward
from interp.circuits.edges.graph import EdgeError
from interp.circuits.edges.prep import Batch, check_ablation, check_metric, prepare_batches, resolve_pairs
from interp.circuits.edges.result import EdgeScores
from interp.errors import unknown

__all__ = ["METHODS", "IG_RULES", "edge_scores", "gradient_scores", "ig_alphas"]

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("eap", "eap-ig-inputs", "eap-ig-activations", "exact")
IG_RULES: tuple[str, ...] = ("right", "left")


def check_method(method: str, ig_steps: int, ig_rule: str = "right") -> None:
    if method not in METHODS:
        raise unknown("edge method", method, METHODS)
    if not isinstance(ig_steps, int | np.integer) or isinstance(ig_steps, bool) or ig_steps < 1:
        raise EdgeError(f"ig_steps must be an integer >= 1 (the number of interpolation steps); got {ig_steps!r}")
    if ig_rule not in IG_RULES:
        raise unknown("ig_rule (interpolation points: right = k/m for k=1..m as the paper, left = k=0..m-1 as "
                      "the EAP-IG/MIB code)", ig_rule, IG_RULES)


def ig_alphas(steps: int, rule: str = "right") -> list[float]:
    """Interpolation points ``alpha`` (0 = ablated, 1 = clean) of ``steps`` integrated-gradient runs."""
    ks = range(1, steps + 1) if rule == "right" else range(0, steps)
    return [k / steps for k in ks]


def _accumulate(ef: EdgeForward, out: Tensor, run: Any, metric: Any, delta: Tensor, rows: slice | None) -> None:
    """out[senders, receivers] += delta . d metric / d receiver input (only sender ``rows`` when given)."""
    g = ef.graph
    probes = run.probes
    keys = list(probes)
    grads = torch.autograd.grad(metric(run.logits).sum(), [probes[k] for k in keys], allow_unused=True)
    lo, hi = (0, len(g.senders)) if rows is None else (rows.start, rows.stop)
    h = ef.n_heads
    for k, gr in zip(keys, grads):
        if gr is None:  # the receiver's node was overridden in this pass (IG over activations)
            continue
        kind, layer = k
        if kind == "qkv":
            n = min(hi, g.sender_index(layer, 0))
            r0 = g.receiver_index(layer, "q", 0)
            if n > lo:
                out[lo:n, r0 : r0 + 3 * h] += torch.einsum("bsnd,bsrd->nr", delta[:, :, lo:n].double(), gr.double())
        elif kind == "mlp":
            n = min(hi, g.sender_index(layer, 0) + h)
            if n > lo:
                out[lo:n, g.receiver_index(layer, "mlp")] += torch.einsum(
                    "bsnd,bsd->n", delta[:, :, lo:n].double(), gr.double())
        else:
            out[lo:hi, g.receiver_index(0, "logits")] += torch.einsum(
                "bnd,bd->n", delta[:, -1, lo:hi].double(), gr[:, 0].double())


def _activation_ig(ef: EdgeForward, out: Tensor, b: Batch, delta: Tensor, alphas: list[float], metric: str,
                   ig_rows: int) -> None:
    """EAP-IG over activations for one batch: per sender group (the input, one layer's heads, one MLP), the runs
    that interpolate that group's outputs, accumulated into the group's rows of ``out``.

    Everything before the group's layer is clean, and the group's edges all read at or after it, so each run starts
    at that layer from the clean residual (a head group's attention is replaced by the interpolation, an MLP
    group's layer takes the clean head outputs). ``ig_rows`` larger than the batch stacks interpolation steps on the
    batch axis (at most ``ig_rows`` rows per pass, at least one step): on SmolLM2 stacking all five steps of 4
    prompts was 8% faster and doubled the peak memory, so the default runs one step per pass."""
    g = ef.graph
    with torch.no_grad():
        resid = ef.run(b.clean, keep_outputs=True).resid  # the clean residual entering each layer
    per = max(1, ig_rows // b.n)
    groups: list[tuple[tuple[str, int], slice]] = [(("input", 0), slice(0, 1))]
    for layer in range(g.n_layers):
        s0 = g.sender_index(layer, 0)
        groups += [(("attn", layer), slice(s0, s0 + ef.n_heads)),
                   (("mlp", layer), slice(s0 + ef.n_heads, s0 + ef.n_heads + 1))]
    for c0 in range(0, len(alphas), per):
        chunk = alphas[c0 : c0 + per]
        k = len(chunk)
        mk = b.metric(metric, reps=k)
        dk = delta if k == 1 else delta.repeat(k, 1, 1, 1)
        for key, rows in groups:
            v, o = b.values[:, :, rows], b.outputs[:, :, rows]
            val = torch.cat([o if a == 1.0 else v + a * (o - v) for a in chunk])  # step-major [k*B S group d]
            over = {key: val if key[0] == "attn" else val[:, :, 0]}
            kind, layer = key
            if kind == "input":
                run = ef.run(b.clean.repeat(k, 1), probes=True, override=over)
            else:
                if kind == "mlp":
                    s0 = g.sender_index(layer, 0)
                    over[("attn", layer)] = b.outputs[:, :, s0 : s0 + ef.n_heads].repeat(k, 1, 1, 1)
                run = ef.run(probes=True, override=over, start=(layer, resid[layer].repeat(k, 1, 1)))
            _accumulate(ef, out, run, mk, dk, rows)


def gradient_scores(ef: EdgeForward, batches: list[Batch], metric: str, method: str, ig_steps: int,
                    ig_rule: str = "right", ig_rows: int = 1) -> Tensor:
    """[n_senders n_receivers] float64 scores of a gradient method, averaged over prompts (and steps).

    ``ig_rows`` > batch stacks ``eap-ig-activations`` interpolation steps, at most that many rows per pass."""
    if not isinstance(ig_rows, int | np.integer) or isinstance(ig_rows, bool) or ig_rows < 1:
        raise EdgeError(f"ig_rows must be an integer >= 1 (rows per eap-ig-activations pass; 1 = one interpolation "
                        f"step per pass); got {ig_rows!r}")
    g = ef.graph
    out = torch.zeros(len(g.senders), len(g.receivers), dtype=torch.float64)
    steps = 1 if method == "eap" else ig_steps
    alphas = [1.0] if method == "eap" else ig_alphas(steps, ig_rule)
    for b in batches:
        delta = (b.values - b.outputs).detach()
        m = b.metric(metric)
        with torch.enable_grad():
            if method in ("eap", "eap-ig-inputs"):
                for a in alphas:
                    over = {}
                    if a != 1.0:
                        over[("input", 0)] = b.values[:, :, 0] + a * (b.outputs[:, :, 0] - b.values[:, :, 0])
                    _accumulate(ef, out, ef.run(b.clean, probes=True, override=over), m, delta, None)
            else:
                _activation_ig(ef, out, b, delta, alphas, metric, ig_rows)
    n = sum(b.n for b in batches)
    return out / (n * steps)


def edge_scores(
    model: Any,
    pairs_or_task: Any,
    method: str = "eap-ig-inputs",
    *,
    ig_steps: int = 5,
    ig_rule: str = "right",
    ablation: str = "counterfactual",
    metric: str = "logit_diff",
    n: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
    mean_tokens: Tensor | None = None,
    max_rows: int = 2048,
    task_name: str = "",
) -> EdgeScores:
    """Score every edge of ``model``'s graph on prompt pairs (or a task / task spec, ``n`` pairs per group).

    ``method`` in `METHODS`, ``ablation`` in counterfactual/mean/zero, ``metric`` a name of
    `interp.circuits.edges.prep.EDGE_METRICS`. ``ig_rule`` picks the interpolation points of ``eap-ig-*``
    (`ig_alphas`: ``"right"`` the paper's, ``"left"`` the EAP-IG/MIB code's). Returns `EdgeScores` (one float per
    edge, MIB's order and names).
    """
    check_method(method, ig_steps, ig_rule)
    check_ablation(ablation)
    check_metric(metric)
    t0 = time.perf_counter()
    ef = EdgeForward(model)
    pairs = resolve_pairs(model, pairs_or_task, n=n, seed=seed)
    if ablation == "mean" and mean_tokens is None:
        own = getattr(pairs_or_task, "mean_ablation_tokens", None)
        if own is not None:
            cand = own(model)
            if cand.shape[1] == pairs.clean_tokens.shape[1]:
                mean_tokens = cand
    with torch.inference_mode():
        batches = prepare_batches(ef, pairs, ablation=ablation, batch_size=batch_size, mean_tokens=mean_tokens)
    p0 = ef.passes
    g = ef.graph
    cost: dict[str, Any]
    if method == "exact":
        values, cost = exact_edge_effects(ef, batches, metric, max_rows=max_rows)
    else:
        mat = gradient_scores(ef, batches, metric, method, ig_steps, ig_rule)
        s, r = g.edge_index
        values = mat.numpy()[s, r]
        cost = {"passes": ef.passes - p0}
    bad = int(np.sum(~np.isfinite(values)))
    if bad:
        log.warning("%d of %d edge scores are not finite (NaN/inf metric values)", bad, len(values))
    return EdgeScores(
        graph=g, scores=np.asarray(values, dtype=np.float64), method=method, ablation=ablation, metric=metric,
        ig_steps=ig_steps if method.startswith("eap-ig") else 1, model=g.model or str(model.cfg.model_name),
        task=task_name or str(getattr(pairs, "task", "")), n_prompts=pairs.n,
        seconds=time.perf_counter() - t0,
        meta={"passes": int(cost.get("passes", 0)), "setup_passes": int(p0), "n_nonfinite": bad,
              **({"ig_rule": ig_rule} if method.startswith("eap-ig") else {}),
              **{k: v for k, v in cost.items() if k != "passes"}},
    )
