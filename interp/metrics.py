"""Patching metrics, computed per prompt from last-position logits.

Conventions: the *base* run is the one being patched and ``r`` its answer token; the *source* run provides the
patched-in activations and ``r2`` is its answer token. With the default ``noising`` direction the base run is the
clean prompt and the source run the corrupt one, as in Nikankin et al. (methods.md §A.1).

========================= ====================================================================================
name                      per-prompt value of a patched run (logits ``L*``, probabilities ``P*``)
========================= ====================================================================================
``ie``                    Eq. 1: ½[(P*(r2) - P(r2)) / P(r2) + (P(r) - P*(r)) / P*(r)] (P = unpatched base run)
``ie_logits``             Eq. 1 on logits instead of probabilities (the paper code's ``IE-Logits``)
``logit_diff``            L*(r) - L*(r2)
``logit_diff_change``     [L*(r) - L*(r2)] - [L(r) - L(r2)]: change from the unpatched base run
``logit_diff_norm``       (LD* - LD_base) / (LD_source - LD_base): 0 = no effect, 1 = as in the source run
``prob``                  P*(r)
``prob_norm``             (P*(r) - P_base(r)) / (P_source(r) - P_base(r))
========================= ====================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import unknown

__all__ = ["METRICS", "MetricContext", "make_metric", "indirect_effect", "normalized_logit"]

METRICS: tuple[str, ...] = (
    "ie",
    "ie_logits",
    "logit_diff",
    "logit_diff_change",
    "logit_diff_norm",
    "prob",
    "prob_norm",
)

PerPrompt = Callable[[Float[Tensor, "batch d_vocab"]], Float[Tensor, " batch"]]


def _gather(x: Float[Tensor, "batch d_vocab"], idx: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
    return x.gather(-1, idx[:, None])[:, 0]


def indirect_effect(
    base: Float[Tensor, "batch d_vocab"],
    patched: Float[Tensor, "batch d_vocab"],
    r: Int[Tensor, " batch"],
    r2: Int[Tensor, " batch"],
    *,
    on_logits: bool = False,
) -> Float[Tensor, " batch"]:
    """Eq. 1 of Nikankin et al. with its asymmetric denominators (the second divides by the *patched* value)."""
    if on_logits:
        p, q = base, patched
    else:
        p, q = base.softmax(-1), patched.softmax(-1)
    p_r, p_r2, q_r, q_r2 = _gather(p, r), _gather(p, r2), _gather(q, r), _gather(q, r2)
    return 0.5 * ((q_r2 - p_r2) / p_r2 + (p_r - q_r) / q_r)


def normalized_logit(logits: Float[Tensor, "batch d_vocab"], r: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
    """NL of Eq. 2: the correct answer's logit divided by the top logit."""
    return _gather(logits, r) / logits.max(-1).values


@dataclass(frozen=True)
class MetricContext:
    """What a metric needs besides the patched logits: unpatched base and source logits and both answers."""

    base_logits: Float[Tensor, "batch d_vocab"]
    source_logits: Float[Tensor, "batch d_vocab"]
    r: Int[Tensor, " batch"]
    r2: Int[Tensor, " batch"]

    def repeat(self, k: int) -> MetricContext:
        """The context tiled ``k`` times along the batch (for ``k`` stacked patch variants)."""
        return MetricContext(
            self.base_logits.repeat(k, 1), self.source_logits.repeat(k, 1), self.r.repeat(k), self.r2.repeat(k)
        )


def make_metric(name: str, ctx: MetricContext) -> PerPrompt:
    """A function from patched last-position logits ``[batch d_vocab]`` to per-prompt metric values ``[batch]``."""
    if name not in METRICS:
        raise unknown("metric", name, METRICS)
    r, r2 = ctx.r, ctx.r2

    def ld(x: Tensor) -> Tensor:
        return _gather(x, r) - _gather(x, r2)

    if name == "ie":
        return lambda x: indirect_effect(ctx.base_logits, x, r, r2)
    if name == "ie_logits":
        return lambda x: indirect_effect(ctx.base_logits, x, r, r2, on_logits=True)
    if name == "logit_diff":
        return ld
    if name == "logit_diff_change":
        base = ld(ctx.base_logits)
        return lambda x: ld(x) - base
    if name == "logit_diff_norm":
        base, src = ld(ctx.base_logits), ld(ctx.source_logits)
        return lambda x: (ld(x) - base) / (src - base)
    if name == "prob":
        return lambda x: _gather(x.softmax(-1), r)
    # prob_norm
    pb, ps = _gather(ctx.base_logits.softmax(-1), r), _gather(ctx.source_logits.softmax(-1), r)
    return lambda x: (_gather(x.softmax(-1), r) - pb) / (ps - pb)


def metric_unpatched_values(name: str, ctx: MetricContext) -> dict[str, float]:
    """The metric on the unpatched base run and on the source run (the two ends of every effect)."""
    f = make_metric(name, ctx)
    return {"base": float(f(ctx.base_logits).mean()), "source": float(f(ctx.source_logits).mean())}


__all__ += ["metric_unpatched_values"]
