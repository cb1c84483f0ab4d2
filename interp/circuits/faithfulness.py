"""The faithfulness score of Nikankin et al. (ICLR 2025, Eq. 2): how much of the model a circuit recovers.

Faithfulness uses the normalized logit ``NL = logit(correct) / max logit`` at the last position::

    F(c) = mean over prompts of (NL(c) - NL(∅)) / (NL(M) - NL(∅))

where ``NL(M)`` is the unablated model and ``NL(∅)`` ablates every head and every MLP (`interp.circuits.ablation`).
So F(full model) = 1 and F(empty circuit) = 0 by construction; values above 1 (a circuit better than the model) and
below 0 are possible. Evaluate on held-out prompts (``task.pairs(..., split="evaluation")``), never the ones used to
find the circuit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.circuits.ablation import CircuitError, Hook, ablation_hooks, check_ablation
from interp.errors import ShapeError
from interp.metrics import normalized_logit

__all__ = ["FaithfulnessEvaluator", "FaithfulnessResult", "faithfulness", "faithfulness_score", "undefined_reason"]


# ------------------------------------------------------------------------------------------------ faithfulness


def faithfulness_score(
    nl_circuit: Float[Tensor, " batch"] | np.ndarray,
    nl_empty: Float[Tensor, " batch"] | np.ndarray,
    nl_full: Float[Tensor, " batch"] | np.ndarray,
) -> np.ndarray:
    """Per-prompt faithfulness ratios ``(NL(c) - NL(∅)) / (NL(M) - NL(∅))``: NaN (undefined) where NL(M) == NL(∅)
    or where any of the three NL values is not finite (a largest logit of 0 makes NL 0/0)."""
    c, e, f = (np.asarray(torch.as_tensor(x).double().cpu(), dtype=np.float64) for x in (nl_circuit, nl_empty, nl_full))
    den = f - e
    ok = (den != 0) & np.isfinite(c) & np.isfinite(e) & np.isfinite(f)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.where(ok, (c - e) / np.where(ok, den, 1.0), np.nan)
    return np.where(np.isfinite(out), out, np.nan)


def undefined_reason(nl_circuit: np.ndarray, nl_empty: np.ndarray, nl_full: np.ndarray, ablation: str) -> str:
    """Why per-prompt faithfulness is undefined, with counts ('' when it is defined on every prompt)."""
    c, e, f = (np.asarray(x, dtype=np.float64) for x in (nl_circuit, nl_empty, nl_full))
    n = len(e)
    parts = []
    bad_e, bad_f, bad_c = ~np.isfinite(e), ~np.isfinite(f), ~np.isfinite(c)
    if bad_e.any():
        parts.append(f"NL(∅) is undefined on {int(bad_e.sum())} of {n} prompts (with every head and MLP "
                     f"{ablation}-ablated the largest logit is 0 or not finite, so logit(r) / max logit has no value)")
    if bad_f.any():
        parts.append(f"NL(M) is undefined on {int(bad_f.sum())} of {n} prompts (the model's largest logit is 0)")
    same = np.isfinite(e) & np.isfinite(f) & (f == e)
    if same.any():
        parts.append(f"NL(M) == NL(∅) on {int(same.sum())} of {n} prompts (ablating everything changes nothing, "
                     "so Eq. 2 divides by 0)")
    if (bad_c & ~bad_e & ~bad_f).any():
        parts.append(f"NL(circuit) is undefined on {int((bad_c & ~bad_e & ~bad_f).sum())} of {n} prompts")
    return "; ".join(parts)


@dataclass(frozen=True)
class FaithfulnessResult:
    """Faithfulness of one circuit: the paper's mean of per-prompt ratios, with the per-prompt values kept.

    ``per_prompt`` holds the ratios; ``nl_circuit``/``nl_empty``/``nl_full`` the normalized logits they come from.
    Prompts where the full and the fully-ablated model have the same NL, or where an NL has no value (a largest
    logit of 0, e.g. every logit 0 under zero ablation), have an undefined ratio (NaN) and are left out of the mean;
    ``n_undefined`` counts them and ``undefined_reason`` says why. With no defined prompt ``faithfulness`` is NaN.
    ``ratio_of_means`` is a robust alternative, (mean NL(c) - mean NL(∅)) / (mean NL(M) - mean NL(∅)).
    """

    faithfulness: float
    per_prompt: np.ndarray
    nl_circuit: np.ndarray
    nl_empty: np.ndarray
    nl_full: np.ndarray
    ablation: str
    n_heads: int
    n_mlps: int
    n_neurons: int | None = None

    @property
    def undefined_reason(self) -> str:
        """Why some per-prompt ratios are undefined, with counts ('' when every prompt is defined)."""
        return undefined_reason(self.nl_circuit, self.nl_empty, self.nl_full, self.ablation)

    @property
    def n_prompts(self) -> int:
        return int(self.per_prompt.shape[0])

    @property
    def n_undefined(self) -> int:
        return int(np.isnan(self.per_prompt).sum())

    @property
    def stderr(self) -> float:
        v = self.per_prompt[~np.isnan(self.per_prompt)]
        return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")

    @property
    def ratio_of_means(self) -> float:
        den = float(self.nl_full.mean() - self.nl_empty.mean())
        return float(self.nl_circuit.mean() - self.nl_empty.mean()) / den if den else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "faithfulness": self.faithfulness,
            "stderr": self.stderr,
            "ratio_of_means": self.ratio_of_means,
            "ablation": self.ablation,
            "n_prompts": self.n_prompts,
            "n_undefined": self.n_undefined,
            "undefined_reason": self.undefined_reason,
            "n_heads": self.n_heads,
            "n_mlps": self.n_mlps,
            "n_neurons": self.n_neurons,
            "per_prompt": [None if math.isnan(x) else float(x) for x in self.per_prompt],
        }


class FaithfulnessEvaluator:
    """Faithfulness of many circuits on one evaluation set: NL(M) and NL(∅) are computed once.

    ``evaluator.score(keep_heads=..., keep_mlps=..., keep_neurons=...)`` -> `FaithfulnessResult`. Used by the
    circuit sweep and by neuron-level sweeps (top-k neurons per layer).
    """

    def __init__(
        self,
        model: Any,
        tokens: Int[Tensor, "batch pos"],
        answers: Int[Tensor, " batch"],
        *,
        ablation: str = "mean",
        mean: Mapping[str, Tensor] | None = None,
        resample_tokens: Tensor | None = None,
        batch_size: int = 512,
    ) -> None:
        check_ablation(ablation)
        if not isinstance(tokens, Tensor) or tokens.ndim != 2:
            raise ShapeError(f"tokens must be a [batch pos] tensor; got {getattr(tokens, 'shape', type(tokens))}")
        if tokens.shape[0] == 0:
            raise ShapeError("the evaluation set is empty (0 prompts); faithfulness needs at least one prompt")
        if answers.shape != (tokens.shape[0],):
            raise ShapeError(f"answers must be [batch] = ({tokens.shape[0]},); got {tuple(answers.shape)}")
        d_vocab = int(model.cfg.d_vocab)
        if int(tokens.max()) >= d_vocab or int(answers.max()) >= d_vocab or int(tokens.min()) < 0:
            raise ShapeError(f"token ids must lie in [0, {d_vocab})")
        seq = int(tokens.shape[1])
        if ablation == "mean":
            if mean is None:
                raise CircuitError("ablation='mean' needs the mean cache: pass mean=mean_cache(model, task)")
            for n, v in mean.items():
                if v.shape[0] != seq:
                    raise ShapeError(
                        f"the mean cache ({n}) covers {v.shape[0]} positions but the prompts have {seq} tokens; "
                        "build it from strings of the evaluated length (mean_cache(..., seq_len=...))"
                    )
        if ablation == "resample":
            if resample_tokens is None:
                raise CircuitError(
                    "ablation='resample' needs resample_tokens (e.g. the corrupt prompts), one per prompt"
                )
            if tuple(resample_tokens.shape) != tuple(tokens.shape):
                raise ShapeError(
                    f"resample_tokens must match the evaluated tokens' shape {tuple(tokens.shape)}; "
                    f"got {tuple(resample_tokens.shape)}"
                )
        self.model, self.tokens, self.answers = model, tokens, answers
        self.ablation, self.mean, self.resample_tokens = ablation, mean, resample_tokens
        self.batch_size = batch_size
        n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
        self.all_heads = [(l, h) for l in range(n_layers) for h in range(n_heads)]
        self.all_mlps = list(range(n_layers))
        self.nl_full = self._nl([])
        self.nl_empty = self.nl(keep_heads=(), keep_mlps=())

    @property
    def n_undefined(self) -> int:
        """Prompts whose faithfulness is undefined for every circuit (NL(∅) or NL(M) without a value, or equal)."""
        e, f = self.nl_empty.numpy(), self.nl_full.numpy()
        return int((~np.isfinite(e) | ~np.isfinite(f) | (e == f)).sum())

    @property
    def undefined_reason(self) -> str:
        """Why faithfulness is undefined on some prompts for every circuit ('' when defined on all)."""
        e = self.nl_empty.numpy()
        return undefined_reason(np.zeros_like(e), e, self.nl_full.numpy(), self.ablation)

    def check_defined(self) -> None:
        """Raise `CircuitError` when faithfulness is undefined on every evaluation prompt under this ablation."""
        n = int(self.tokens.shape[0])
        if self.n_undefined == n:
            alt = " or ".join(repr(a) for a in ("mean", "resample") if a != self.ablation)
            raise CircuitError(
                f"faithfulness (Eq. 2) is undefined on all {n} evaluation prompts with ablation={self.ablation!r}: "
                f"{self.undefined_reason}; use ablation={alt}"
            )

    @torch.inference_mode()
    def _nl(self, hooks_for: Callable[[slice], list[Hook]] | list) -> Tensor:
        outs = []
        for i in range(0, self.tokens.shape[0], self.batch_size):
            sl = slice(i, i + self.batch_size)
            hooks = hooks_for(sl) if callable(hooks_for) else hooks_for
            logits = self.model.run_with_hooks(self.tokens[sl], fwd_hooks=hooks)[:, -1, :].float()
            outs.append(normalized_logit(logits, self.answers[sl]).double())
        return torch.cat(outs)

    def nl(
        self,
        *,
        keep_heads: Iterable[tuple[int, int]],
        keep_mlps: Iterable[int],
        keep_neurons: Mapping[int, Sequence[int]] | None = None,
    ) -> Tensor:
        """Per-prompt NL ``[batch]`` with everything outside the circuit ablated."""
        abl = self.ablation
        heads, mlps = list(keep_heads), list(keep_mlps)

        def hooks_for(sl: slice) -> list[Hook]:
            return ablation_hooks(
                self.model, keep_heads=heads, keep_mlps=mlps, keep_neurons=keep_neurons, ablation=abl,
                mean=self.mean, resample_tokens=None if self.resample_tokens is None else self.resample_tokens[sl],
            )

        return self._nl(hooks_for)

    def score(
        self,
        *,
        keep_heads: Iterable[tuple[int, int]],
        keep_mlps: Iterable[int],
        keep_neurons: Mapping[int, Sequence[int]] | None = None,
    ) -> FaithfulnessResult:
        heads, mlps = list(keep_heads), list(keep_mlps)
        nl_c = self.nl(keep_heads=heads, keep_mlps=mlps, keep_neurons=keep_neurons)
        ratios = faithfulness_score(nl_c, self.nl_empty, self.nl_full)
        defined = ratios[~np.isnan(ratios)]
        return FaithfulnessResult(
            faithfulness=float(defined.mean()) if len(defined) else float("nan"),
            per_prompt=ratios,
            nl_circuit=nl_c.numpy(),
            nl_empty=self.nl_empty.numpy(),
            nl_full=self.nl_full.numpy(),
            ablation=self.ablation,
            n_heads=len(set(map(tuple, heads))),
            n_mlps=len(set(mlps)),
            n_neurons=None if keep_neurons is None else sum(len(set(v)) for v in keep_neurons.values()),
        )


def faithfulness(
    model: Any,
    tokens: Int[Tensor, "batch pos"],
    answers: Int[Tensor, " batch"],
    *,
    keep_heads: Iterable[tuple[int, int]],
    keep_mlps: Iterable[int],
    keep_neurons: Mapping[int, Sequence[int]] | None = None,
    ablation: str = "mean",
    mean: Mapping[str, Tensor] | None = None,
    resample_tokens: Tensor | None = None,
) -> FaithfulnessResult:
    """Eq. 2: ``F = mean_p (NL(c) - NL(∅)) / (NL(M) - NL(∅))`` with everything outside the circuit ablated.

    ``answers`` are the correct answer tokens. Three forward passes (full, empty, circuit); to score many
    circuits on one evaluation set use `FaithfulnessEvaluator`.
    """
    from interp.backends import is_nnsight_model

    cls: type[FaithfulnessEvaluator] = FaithfulnessEvaluator
    if is_nnsight_model(model):  # the same ablations as nnsight traces (interp.backends.nnsight_ablation)
        from interp.backends.nnsight_ablation import NNsightFaithfulnessEvaluator

        cls = NNsightFaithfulnessEvaluator
    ev = cls(model, tokens, answers, ablation=ablation, mean=mean, resample_tokens=resample_tokens)
    return ev.score(keep_heads=keep_heads, keep_mlps=keep_mlps, keep_neurons=keep_neurons)
