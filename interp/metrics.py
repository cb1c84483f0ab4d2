"""Patching metrics, computed per prompt from last-position logits.

Conventions: the *base* run is the one being patched; the *source* run provides the patched-in activations. ``r``
is always the *clean* prompt's answer and ``r2`` the *corrupt* prompt's, in both directions: with the default
``noising`` direction the base run is the clean prompt and the source run the corrupt one (Nikankin et al.,
methods.md §A.1); with ``denoising`` the base run is the corrupt prompt and the source run the clean one, the
metric's orientation unchanged - TransformerLens's meaning (`transformer_lens.patching` with the same metric
function gives the same numbers). docs/metrics.md has the sign of every metric in both directions.

Every metric is computed in float64; probabilities come from a float64 log-softmax, and Eq. 1 is computed from
log-probabilities (each ratio is ``exp(Δ log p) - 1``), so it stays finite when a probability underflows in float32.

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

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import ShapeError, unknown

__all__ = ["METRICS", "MetricContext", "make_metric", "indirect_effect", "normalized_logit", "answer_log_probs",
           "count_undefined", "FALLING", "NORMALIZED", "RAW_METRICS", "UNPATCHED_ZERO"]

METRICS: tuple[str, ...] = (
    "ie",
    "ie_logits",
    "logit_diff",
    "logit_diff_change",
    "logit_diff_norm",
    "prob",
    "prob_norm",
)

# metrics whose value is the patched metric itself: their unpatched value is not 0, so an effect is the change from it
RAW_METRICS: tuple[str, ...] = ("logit_diff", "prob")
# metrics that are 0 on the unpatched base run by construction (the value *is* the change)
UNPATCHED_ZERO: tuple[str, ...] = tuple(m for m in METRICS if m not in RAW_METRICS)
# metrics scaled so that 1 = as in the source run
NORMALIZED: tuple[str, ...] = ("logit_diff_norm", "prob_norm")
# metrics whose value *falls* as the output moves toward the source (corrupt) prompt's answer; the others (ie,
# ie_logits, *_norm) rise toward it. Rankings of patching effects and edge helpfulness read directions from here.
FALLING: tuple[str, ...] = ("logit_diff", "logit_diff_change", "prob")

PerPrompt = Callable[[Float[Tensor, "batch d_vocab"]], Float[Tensor, " batch"]]


def _gather(x: Float[Tensor, "batch d_vocab"], idx: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
    return x.gather(-1, idx[:, None])[:, 0]


# rows per float64 log-softmax block: bounds the extra memory to _LSE_ROWS x d_vocab doubles
_LSE_ROWS = 256


def answer_log_probs(logits: Float[Tensor, "batch d_vocab"], *idx: Int[Tensor, " batch"]) -> list[Tensor]:
    """``log softmax(logits)`` at the columns ``idx`` (one ``[batch]`` tensor each), in float64.

    The log-sum-exp runs in float64 in blocks of rows, so a probability that underflows to 0 in float32 (or even in
    float64) keeps a finite log. Differentiable.
    """
    cols = [logits.gather(-1, i[:, None].to(logits.device))[:, 0].double() for i in idx]
    if logits.shape[0] <= _LSE_ROWS:
        lse = torch.logsumexp(logits.double(), dim=-1)
    else:
        lse = torch.cat([torch.logsumexp(logits[s : s + _LSE_ROWS].double(), dim=-1)
                         for s in range(0, logits.shape[0], _LSE_ROWS)])
    return [c - lse for c in cols]


def indirect_effect(
    base: Float[Tensor, "batch d_vocab"],
    patched: Float[Tensor, "batch d_vocab"],
    r: Int[Tensor, " batch"],
    r2: Int[Tensor, " batch"],
    *,
    on_logits: bool = False,
) -> Float[Tensor, " batch"]:
    """Eq. 1 of Nikankin et al. with its asymmetric denominators (the second divides by the *patched* value).

    On probabilities each ratio is ``exp(Δ log p) - 1`` with the log-probabilities from a float64 log-softmax
    (`answer_log_probs`), so the value is finite wherever it is mathematically finite - also when the patched
    answer's probability underflows to 0 in float32 (a confident model) - and it is ``+inf`` only where it exceeds
    the float64 range (``Δ log p > 709``). On logits (``ie_logits``) the ratios are taken in float64; a logit of
    exactly 0 in a denominator gives ``inf``/``NaN``. Returns float64; callers count non-finite values as
    undefined (`count_undefined`).
    """
    if on_logits:
        p_r, p_r2 = _gather(base, r).double(), _gather(base, r2).double()
        q_r, q_r2 = _gather(patched, r).double(), _gather(patched, r2).double()
        return 0.5 * ((q_r2 - p_r2) / p_r2 + (p_r - q_r) / q_r)
    lp_r, lp_r2 = answer_log_probs(base, r, r2)
    lq_r, lq_r2 = answer_log_probs(patched, r, r2)
    return 0.5 * (torch.expm1(lq_r2 - lp_r2) + torch.expm1(lp_r - lq_r))


def count_undefined(values: Tensor) -> int:
    """How many per-prompt metric values are not finite (NaN or ±inf): undefined, left out of every mean."""
    return int((~torch.isfinite(values)).sum())


def finite_moments(values: Float[Tensor, "rows n"]) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, standard error of the mean and count of the finite entries of each row, in float64, without overflow.

    Each row is scaled by its largest finite magnitude before the sums, and the spread is taken around the row's mean
    (two passes, not ``E[x²] - E[x]²``), so values near the float64 limit (an IE of ``1e300`` on a saturated model)
    keep a finite mean and standard error, and nearly equal large values do not lose their spread to cancellation.
    Non-finite entries (undefined metric values) are left out and not counted. A row with no finite entry has
    mean and standard error NaN; with one, its value as the mean and a NaN standard error (one value has no spread
    to estimate: never reported as 0).
    Returns ``(mean [rows], stderr [rows], n [rows] int64)``.
    """
    if not isinstance(values, Tensor) or values.ndim < 1 or values.is_complex() or values.dtype == torch.bool:
        raise ShapeError("finite_moments needs a real-valued tensor of at least one dimension (its last axis holds "
                         f"the values to reduce); got {type(values).__name__}"
                         + (f" of dtype {values.dtype}, shape {tuple(values.shape)}" if isinstance(values, Tensor)
                            else ""))
    v = values.double()
    ok = torch.isfinite(v)
    zero = torch.zeros((), dtype=v.dtype, device=v.device)
    v = torch.where(ok, v, zero)
    n = ok.sum(-1)
    nf = n.clamp(min=1).double()
    scale = v.abs().amax(-1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    s = scale[..., 0]
    m = (v / scale).sum(-1) / nf * s  # |m| <= the largest |value|
    # deviations from the unscaled mean (halves: the difference cannot overflow, and stays exact for close values)
    dev = torch.where(ok, (0.5 * v - 0.5 * m[..., None]) / scale, zero)  # in [-1, 1]
    var = 4.0 * (dev * dev).sum(-1) / (n - 1).clamp(min=1).double()
    nan = torch.full_like(m, float("nan"))
    mean = torch.where(n > 0, m, nan)
    stderr = torch.where(n > 1, torch.sqrt(var / nf) * s, nan)
    return mean, stderr, n


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
        return _gather(x, r).double() - _gather(x, r2).double()

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
        return lambda x: answer_log_probs(x, r)[0].exp()
    # prob_norm
    pb, ps = answer_log_probs(ctx.base_logits, r)[0].exp(), answer_log_probs(ctx.source_logits, r)[0].exp()
    return lambda x: (answer_log_probs(x, r)[0].exp() - pb) / (ps - pb)


def metric_unpatched_values(name: str, ctx: MetricContext) -> dict[str, float]:
    """The metric on the unpatched base run and on the source run (the two ends of every effect)."""
    f = make_metric(name, ctx)

    def mean(v: Tensor) -> float:  # divided before the sum: IE on the source run can be ~1e306 per prompt
        return float((v.double() / max(v.numel(), 1)).sum()) if v.numel() else float("nan")

    return {"base": mean(f(ctx.base_logits)), "source": mean(f(ctx.source_logits))}


__all__ += ["metric_unpatched_values", "finite_moments"]
