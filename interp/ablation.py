"""Ablating everything outside a circuit, and the faithfulness score of Nikankin et al. (ICLR 2025, Eq. 2).

A *circuit* is a set of attention heads (``hook_z`` of one head) and MLP layers (the whole ``hook_post`` vector), or
single neurons of an MLP layer. Everything outside it is *ablated*: its activation is replaced, at every position,
by an ablation value. Three ablations are offered (`ABLATIONS`), because faithfulness depends on the choice:

* ``mean`` - the per-position mean of the activation over every string ``"x op y="`` with x, y in the operand range
  and all four operators, illegal ones included, so the operators are balanced (the paper's ``calc_mean_cache``;
  see `mean_cache`);
* ``zero`` - zero (takes the model far off its training distribution; usually much harsher);
* ``resample`` - the activation of another prompt (row ``i`` of ``resample_tokens``, e.g. the corrupt prompts).

Faithfulness (Eq. 2) uses the normalized logit ``NL = logit(correct) / max logit`` at the last position::

    F(c) = mean over prompts of (NL(c) - NL(∅)) / (NL(M) - NL(∅))

where ``NL(M)`` is the unablated model and ``NL(∅)`` ablates every head and every MLP. So F(full model) = 1 and
F(empty circuit) = 0 by construction; values above 1 (a circuit better than the model) and below 0 are possible.
Evaluate on held-out prompts (``task.pairs(..., split="evaluation")``), never the ones used to find the circuit.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp._io import read_json, write_json_atomic
from interp.errors import InterpError, ShapeError, unknown
from interp.metrics import normalized_logit
from interp.sites import check_site_exists, hook_name, site_kind

__all__ = [
    "ABLATIONS",
    "Circuit",
    "CircuitError",
    "FaithfulnessEvaluator",
    "FaithfulnessResult",
    "ablation_hooks",
    "faithfulness",
    "faithfulness_score",
    "mean_cache",
    "mean_cache_tokens",
]

ABLATIONS: tuple[str, ...] = ("mean", "zero", "resample")

Hook = tuple[str, Callable[..., Tensor]]


class CircuitError(InterpError, ValueError):
    """Bad circuit-discovery input: ablation settings that do not fit, a target outside (0, 1], ..."""


def check_ablation(name: str) -> str:
    if name not in ABLATIONS:
        raise unknown("ablation", name, ABLATIONS)
    return name


# ---------------------------------------------------------------------------------------------------- mean cache


def mean_cache_tokens(task: Any, model: Any, *, operand_max: int | None = None, seq_len: int | None = None) -> Tensor:
    """Token ids of every string ``"x op y="`` (x, y in ``task.lo..operand_max``, all four operators).

    Illegal prompts (``5-7=``, ``3/0=``) are included, as in the paper, so every operator contributes the same number
    of strings. With multi-token numbers, strings tokenize to different lengths; only those of length ``seq_len``
    (default: the most common length of the task's legal prompts) are kept, so positions line up with the
    evaluated prompts (position-wise means of multi-token strings mix digits of different place values).
    """
    from interp.tasks.arith import OPERATORS
    from interp.tasks.base import encode, get_tokenizer

    hi = task.hi if operand_max is None else int(operand_max)
    if hi < task.lo:
        raise CircuitError(f"operand_max={operand_max} is below the task's lowest operand {task.lo}")
    grid = range(task.lo, hi + 1)
    texts = [task._render(a, op, b)[0] for op in OPERATORS for a in grid for b in grid]
    ids, _ = encode(get_tokenizer(model), texts, prepend_bos=task.prepend_bos)
    if seq_len is None:  # the most common length of the task's legal prompts (all of them with single tokens)
        lengths = Counter(len(p.tokens) for op in task.operators for p in task.prompts(model, op))
        seq_len = lengths.most_common(1)[0][0]
    kept = [x for x in ids if len(x) == seq_len]
    if not kept:
        raise CircuitError(f"no string 'x op y=' tokenizes to {seq_len} tokens; pass another seq_len")
    return torch.tensor(kept, dtype=torch.long)


@torch.inference_mode()
def mean_cache(
    model: Any,
    task: Any,
    *,
    kinds: Sequence[str] = ("head", "mlp"),
    operand_max: int | None = None,
    batch_size: int = 512,
    seq_len: int | None = None,
    tokens: Tensor | None = None,
) -> dict[str, Tensor]:
    """Per-position mean of each hook of ``kinds`` over the balanced grid of all operators (``calc_mean_cache``).

    Returns ``{hook_name: mean}`` with ``mean`` of shape ``[pos, ...]`` (``[pos head_index d_head]`` for heads,
    ``[pos d_mlp]`` for MLPs and neurons). ``operand_max`` shrinks the grid for large models (the paper uses
    operands 0-299, 360k strings). ``tokens`` overrides the grid with any ``[batch pos]`` token set. Tasks with a
    ``mean_ablation_tokens(model)`` method (IOI: the ABC prompts; induction: fresh random sequences) supply their own.
    """
    names = sorted({hook_name(k, layer) for k in kinds for layer in range(int(model.cfg.n_layers))})
    for k in kinds:
        check_site_exists(model, site_kind(k))
    if tokens is None:
        own = getattr(task, "mean_ablation_tokens", None)  # tasks other than arithmetic define their reference set
        tokens = own(model) if own is not None else mean_cache_tokens(task, model, operand_max=operand_max,
                                                                      seq_len=seq_len)
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise ShapeError(f"mean-cache tokens must be a non-empty [batch pos] tensor; got {tuple(tokens.shape)}")
    from interp.backends import is_nnsight_model

    if is_nnsight_model(model):  # the same means from nnsight traces (interp.backends.nnsight_ablation)
        from interp.backends.nnsight_ablation import nnsight_mean_cache

        return nnsight_mean_cache(model, tokens, kinds=kinds, batch_size=batch_size)
    sums: dict[str, Tensor] = {}
    for i in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[i : i + batch_size], names_filter=lambda n: n in names)
        for n in names:
            s = cache[n].double().sum(0)
            sums[n] = s if n not in sums else sums[n] + s
    return {n: (s / tokens.shape[0]).float() for n, s in sums.items()}


# ------------------------------------------------------------------------------------------------------ hooks


def _check_components(
    model: Any,
    keep_heads: Iterable[tuple[int, int]],
    keep_mlps: Iterable[int],
    keep_neurons: Mapping[int, Sequence[int]] | None,
) -> tuple[set[tuple[int, int]], set[int], dict[int, list[int]]]:
    n_layers, n_heads, d_mlp = int(model.cfg.n_layers), int(model.cfg.n_heads), int(model.cfg.d_mlp)
    heads = {(int(l), int(h)) for l, h in keep_heads}
    mlps = {int(l) for l in keep_mlps}
    bad_h = sorted(x for x in heads if not (0 <= x[0] < n_layers and 0 <= x[1] < n_heads))
    if bad_h:
        raise ShapeError(
            f"heads {bad_h[:5]} do not exist; the model has layers 0..{n_layers - 1}, heads 0..{n_heads - 1}"
        )
    bad_m = sorted(x for x in mlps if not 0 <= x < n_layers)
    if bad_m:
        raise ShapeError(f"MLP layers {bad_m[:5]} do not exist; the model has layers 0..{n_layers - 1}")
    neurons: dict[int, list[int]] = {}
    for layer, idx in (keep_neurons or {}).items():
        if not 0 <= int(layer) < n_layers:
            raise ShapeError(f"keep_neurons layer {layer} does not exist; the model has layers 0..{n_layers - 1}")
        idx = sorted({int(n) for n in idx})
        bad = [n for n in idx if not 0 <= n < d_mlp]
        if bad:
            raise ShapeError(f"neurons {bad[:5]} of layer {layer} are out of range; d_mlp is {d_mlp}")
        neurons[int(layer)] = idx
    return heads, mlps, neurons


def _replace_hook(keep: Tensor, value: Tensor | None) -> Callable[..., Tensor]:
    """Replace the units where ``keep`` is False by ``value`` (None = zero), at every position."""

    def hook(act: Tensor, hook: Any) -> Tensor:
        if value is None:
            return torch.where(keep, act, torch.zeros((), dtype=act.dtype, device=act.device))
        v = value.to(act.dtype)
        if v.shape[-act.ndim + 1 :] != act.shape[1:] or (v.ndim == act.ndim and v.shape[0] != act.shape[0]):
            want = "[batch " + " ".join(map(str, act.shape[1:])) + "]"
            raise ShapeError(
                f"{hook.name}: the ablation value has shape {tuple(v.shape)} but the activation is "
                f"{tuple(act.shape)}; the mean cache must have the evaluated prompts' length and resample tokens "
                f"one row per prompt ({want})"
            )
        return torch.where(keep, act, v)

    return hook


def ablation_hooks(
    model: Any,
    *,
    keep_heads: Iterable[tuple[int, int]],
    keep_mlps: Iterable[int],
    keep_neurons: Mapping[int, Sequence[int]] | None = None,
    ablation: str,
    mean: Mapping[str, Tensor] | None = None,
    resample_tokens: Tensor | None = None,
) -> list[Hook]:
    """Forward hooks that ablate every head ``z`` and MLP ``hook_post`` outside the kept set, at every position.

    ``keep_neurons[layer]`` keeps only those neurons of that MLP layer (the rest are ablated) and overrides
    ``keep_mlps`` for that layer. ``mean`` comes from `mean_cache` (``ablation="mean"``); ``resample_tokens``
    ``[batch pos]`` are run once and row ``i`` replaces prompt ``i`` (``ablation="resample"``).
    Returns ``[(hook_name, fn)]`` for ``model.run_with_hooks`` / ``model.hooks``; empty when nothing is ablated.
    """
    check_ablation(ablation)
    heads, mlps, neurons = _check_components(model, keep_heads, keep_mlps, keep_neurons)
    n_layers, n_heads, d_mlp = int(model.cfg.n_layers), int(model.cfg.n_heads), int(model.cfg.d_mlp)
    device = next(iter(model.parameters())).device
    plan: list[tuple[str, Tensor]] = []  # (hook name, keep mask broadcastable to the activation)
    for layer in range(n_layers):
        kept = [h for h in range(n_heads) if (layer, h) in heads]
        if len(kept) < n_heads:
            mask = torch.zeros(n_heads, dtype=torch.bool, device=device)
            mask[kept] = True
            plan.append((hook_name("head", layer), mask[:, None]))  # [head 1] vs [batch pos head d_head]
        if layer in neurons:
            mask = torch.zeros(d_mlp, dtype=torch.bool, device=device)
            mask[neurons[layer]] = True
            if not bool(mask.all()):
                plan.append((hook_name("mlp", layer), mask))
        elif layer not in mlps:
            plan.append((hook_name("mlp", layer), torch.zeros(d_mlp, dtype=torch.bool, device=device)))
    if not plan:
        return []
    values: dict[str, Tensor | None] = {}
    if ablation == "mean":
        if mean is None:
            raise CircuitError("ablation='mean' needs the mean cache: pass mean=mean_cache(model, task)")
        missing = [n for n, _ in plan if n not in mean]
        if missing:
            raise CircuitError(f"the mean cache has no entry for {missing[:3]}; build it with kinds=('head', 'mlp')")
        values = {n: mean[n].to(device) for n, _ in plan}
    elif ablation == "resample":
        if resample_tokens is None:
            raise CircuitError("ablation='resample' needs resample_tokens (e.g. the corrupt prompts), one per prompt")
        if resample_tokens.ndim != 2:
            raise ShapeError(f"resample_tokens must be [batch pos]; got {tuple(resample_tokens.shape)}")
        need = {n for n, _ in plan}
        with torch.inference_mode():
            _, cache = model.run_with_cache(resample_tokens.to(device), names_filter=lambda n: n in need)
        values = {n: cache[n].clone() for n in need}
    else:
        values = {n: None for n, _ in plan}
    return [(n, _replace_hook(mask, values[n])) for n, mask in plan]


# ------------------------------------------------------------------------------------------------ faithfulness


def faithfulness_score(
    nl_circuit: Float[Tensor, " batch"] | np.ndarray,
    nl_empty: Float[Tensor, " batch"] | np.ndarray,
    nl_full: Float[Tensor, " batch"] | np.ndarray,
) -> np.ndarray:
    """Per-prompt faithfulness ratios ``(NL(c) - NL(∅)) / (NL(M) - NL(∅))`` (NaN where NL(M) == NL(∅))."""
    c, e, f = (np.asarray(torch.as_tensor(x).double().cpu(), dtype=np.float64) for x in (nl_circuit, nl_empty, nl_full))
    den = f - e
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, (c - e) / np.where(den != 0, den, 1.0), np.nan)


@dataclass(frozen=True)
class FaithfulnessResult:
    """Faithfulness of one circuit: the paper's mean of per-prompt ratios, with the per-prompt values kept.

    ``per_prompt`` holds the ratios; ``nl_circuit``/``nl_empty``/``nl_full`` the normalized logits they come from.
    Prompts where the full and the fully-ablated model have the same NL have an undefined ratio (NaN) and are left
    out of the mean (``n_undefined``). ``ratio_of_means`` is a robust alternative, (mean NL(c) - mean NL(∅)) /
    (mean NL(M) - mean NL(∅)).
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


# ---------------------------------------------------------------------------------------------------- Circuit


@dataclass(frozen=True)
class Circuit:
    """A circuit found by `interp.circuits.find_circuit` (or written by hand) and how faithful it is.

    ``heads`` are ``(layer, head)``, ``mlps`` MLP layers kept whole, ``neurons`` optional per-layer neuron lists
    (overriding ``mlps`` for their layer). ``faithfulness`` is Eq. 2 under ``ablation`` on held-out prompts;
    ``curve`` is the sweep it was chosen from (``{"n_heads", "n_mlps", "faithfulness"}`` per step) and
    ``sensitivity`` the same circuit's faithfulness under every ablation.
    """

    heads: tuple[tuple[int, int], ...]
    mlps: tuple[int, ...]
    ablation: str = "mean"
    faithfulness: float = float("nan")
    curve: tuple[dict[str, Any], ...] = ()
    sensitivity: dict[str, float] = field(default_factory=dict)
    model: str = ""
    task: str = ""
    operator: str | None = None
    target: float | None = None
    n_layers: int = 0
    n_heads_total: int = 0
    neurons: dict[int, tuple[int, ...]] | None = None
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", tuple((int(l), int(h)) for l, h in self.heads))
        object.__setattr__(self, "mlps", tuple(int(l) for l in self.mlps))
        if self.neurons is not None:
            object.__setattr__(self, "neurons", {int(k): tuple(int(n) for n in v) for k, v in self.neurons.items()})
        check_ablation(self.ablation)

    @property
    def labels(self) -> list[str]:
        return [f"L{l}H{h}" for l, h in self.heads] + [f"MLP{l}" for l in self.mlps]

    def keep(self) -> dict[str, Any]:
        """Keyword arguments for `faithfulness` / `ablation_hooks`: ``keep_heads``, ``keep_mlps``, ``keep_neurons``."""
        return {"keep_heads": set(self.heads), "keep_mlps": set(self.mlps), "keep_neurons": self.neurons}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "task": self.task,
            "operator": self.operator,
            "heads": [list(x) for x in self.heads],
            "mlps": list(self.mlps),
            "neurons": None if self.neurons is None else {str(k): list(v) for k, v in self.neurons.items()},
            "ablation": self.ablation,
            "faithfulness": _num(self.faithfulness),
            "target": self.target,
            "curve": _jsonable([dict(row) for row in self.curve]),
            "sensitivity": _jsonable(dict(self.sensitivity)),
            "n_layers": self.n_layers,
            "n_heads_total": self.n_heads_total,
            "seconds": self.seconds,
            "meta": _jsonable(self.meta),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Circuit:
        nan = float("nan")
        neurons = d.get("neurons")
        return cls(
            heads=tuple(tuple(x) for x in d["heads"]),  # type: ignore[misc]
            mlps=tuple(d["mlps"]),
            ablation=d.get("ablation", "mean"),
            faithfulness=nan if d.get("faithfulness") is None else float(d["faithfulness"]),
            curve=tuple(
                {k: nan if (v is None and k == "faithfulness") else v for k, v in row.items()}
                for row in d.get("curve", ())
            ),
            sensitivity={k: nan if v is None else float(v) for k, v in d.get("sensitivity", {}).items()},
            model=d.get("model", ""),
            task=d.get("task", ""),
            operator=d.get("operator"),
            target=d.get("target"),
            n_layers=int(d.get("n_layers", 0)),
            n_heads_total=int(d.get("n_heads_total", 0)),
            neurons=None if neurons is None else {int(k): tuple(v) for k, v in neurons.items()},
            seconds=float(d.get("seconds", 0.0)),
            meta=dict(d.get("meta", {})),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write JSON atomically (NaN written as null)."""
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Circuit:
        return cls.from_dict(read_json(path))

    def plot(self, *, title: str | None = None) -> Any:
        """Faithfulness against circuit size (the sweep), the chosen circuit and the target marked."""
        from interp.circuits.plots import plot_curve

        return plot_curve(self, title=title)

    def diagram(self, *, title: str | None = None) -> Any:
        """A plotly circuit diagram: layers as rows, heads and MLPs as nodes, kept ones highlighted."""
        from interp.circuits.plots import plot_diagram

        return plot_diagram(self, title=title)


def _num(x: Any) -> Any:
    if isinstance(x, float | np.floating) and not math.isfinite(float(x)):
        return None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


def _jsonable(x: Any) -> Any:
    """Plain JSON types, NaN and infinities as null (strict JSON)."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return _num(x)
