"""Input saliency for one prediction: gradient, gradient × input, integrated gradients and attention weights.

All gradient methods differentiate a scalar *score* of the last-position logits with respect to the token
embeddings (the output of ``hook_embed``; positional embeddings, where a model has them, are left alone):

* ``gradient``: ‖∂score/∂e_t‖₂ per token (unsigned, Simonyan et al. 2014);
* ``grad_x_input``: Σ_d e_t,d · ∂score/∂e_t,d (signed, Shrikumar et al. 2016);
* ``integrated_gradients``: (e − e′)·∫₀¹ ∂score(e′ + α(e − e′))/∂e dα (Sundararajan et al. 2017), integrated with
  ``steps`` Gauss–Legendre (default) or Riemann points. Completeness says Σ_t IG_t = score(e) − score(e′); the
  **completeness error** |Σ IG − (score(e) − score(e′))| is reported for every prompt (it shrinks with ``steps``).
  Baselines: ``"mean"`` (the mean token embedding, default), ``"zero"`` embeddings, ``"pad"`` (the pad/EOS
  token's embedding) or a token id. In a model whose first block normalises the token embedding alone (RMSNorm or
  LayerNorm and no learned positional embedding, like SmolLM2) the first layer sees the same input for every
  α > 0, so ``score(α·e)`` changes abruptly near α = 0: with the zero baseline the completeness error stays large
  at practical step counts (measured in docs/explain.md).
  The BOS position is kept at its real embedding by default (it is an attention sink,
  not content).
* ``attention``: the attention the last position pays to each token, averaged over heads and layers - a cheap
  contrast, not an attribution (Jain & Wallace 2019).

The score (``metric``) is the logit of ``target`` (default), its log-probability, or a metric of `interp.metrics`
evaluated on the unperturbed logits as base: ``prob``, or with a contrast token (``target=(" yes", " no")``)
``logit_diff`` (the default for pairs) and the other contrastive metrics.

Aggregation: per token (``scores``), per word (`PromptSaliency.by_word`, summed over a word's tokens) and per
segment (`PromptSaliency.by_segment`: pass a prompt as a list of strings, e.g. one per in-context demonstration
and the query).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import unknown
from interp.explain._common import Encoded, ExplainError, check_context, encode_prompt, single_token
from interp.metrics import METRICS, MetricContext, make_metric
from interp.sites import EMBED, pattern_hook

__all__ = ["METHODS", "BASELINES", "INTEGRATION", "SCORES", "PromptSaliency", "SaliencyResult", "saliency",
           "resolve_target", "score_fn"]

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("gradient", "grad_x_input", "integrated_gradients", "attention")
BASELINES: tuple[str, ...] = ("zero", "pad", "mean")
INTEGRATION: tuple[str, ...] = ("gausslegendre", "riemann_trapezoid", "riemann_middle")
SCORES: tuple[str, ...] = ("logit", "logprob", *METRICS)


def resolve_target(model: Any, target: Any) -> tuple[int, int | None]:
    """``(r, r2)``: the target token and the contrast token (None) from an id, a single-token string or a pair."""
    if isinstance(target, (tuple, list)):
        if len(target) != 2:
            raise ExplainError(f"a contrastive target is a pair (token, contrast token); got {len(target)} items")
        r, r2 = single_token(model, target[0]), single_token(model, target[1], what="contrast target")
        if r == r2:
            raise ExplainError(f"target and contrast are the same token ({r})")
        return r, r2
    return single_token(model, target), None


def score_fn(metric: str, r: int, r2: int | None, base_logits: Tensor) -> Callable[[Tensor], Tensor]:
    """Per-row score of last-position logits ``[batch d_vocab]``."""
    if metric not in SCORES:
        raise unknown("saliency metric", metric, SCORES)
    if metric == "logit":
        return lambda x: x[:, r]
    if metric == "logprob":
        return lambda x: x.log_softmax(-1)[:, r]
    if r2 is None and metric != "prob":
        raise ExplainError(f"metric {metric!r} compares two tokens; pass target=(token, contrast token)")
    base = base_logits.reshape(1, -1)

    def f(x: Tensor) -> Tensor:
        b = x.shape[0]
        ctx = MetricContext(base.expand(b, -1), base.expand(b, -1), torch.full((b,), r),
                            torch.full((b,), r if r2 is None else r2))
        return make_metric(metric, ctx)(x)

    return f


@dataclass(frozen=True)
class PromptSaliency:
    """Saliency of one prompt: per-token scores per method, with word and segment aggregation."""

    encoded: Encoded
    target: tuple[int, int | None]
    scores: dict[str, tuple[float, ...]]
    score_x: float
    score_baseline: float | None = None
    completeness_error: float | None = None

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.encoded.tokens

    def values(self, method: str) -> np.ndarray:
        if method not in self.scores:
            raise unknown("saliency method in this result", method, self.scores)
        return np.asarray(self.scores[method], dtype=np.float64)

    def _group(self, method: str, owner: Sequence[int], names: Sequence[str]) -> dict[str, float]:
        v = self.values(method)
        out = {n: 0.0 for n in names}
        keys = list(names)
        for i, o in enumerate(owner):
            if o >= 0:
                out[keys[o]] += float(v[i])
        return out

    def by_word(self, method: str) -> list[tuple[str, float]]:
        """(word, summed score) per whitespace-separated word, in order (BOS excluded)."""
        v = self.values(method)
        sums = [0.0] * len(self.encoded.words)
        for i, o in enumerate(self.encoded.word_of):
            if o >= 0:
                sums[o] += float(v[i])
        return list(zip(self.encoded.words, sums))

    def by_segment(self, method: str) -> dict[str, float]:
        """Summed score per segment (e.g. per in-context demonstration and the query)."""
        return self._group(method, self.encoded.segment_of, self.encoded.segments)

    @property
    def relative_completeness_error(self) -> float | None:
        if self.completeness_error is None or self.score_baseline is None:
            return None
        return self.completeness_error / max(abs(self.score_x - self.score_baseline), 1e-12)

    def to_dict(self) -> dict[str, Any]:
        e = self.encoded
        return {"ids": list(e.ids), "tokens": list(e.tokens), "words": list(e.words), "word_of": list(e.word_of),
                "segments": list(e.segments), "segment_of": list(e.segment_of), "target": list(self.target),
                "scores": {k: list(v) for k, v in self.scores.items()}, "score_x": self.score_x,
                "score_baseline": self.score_baseline, "completeness_error": self.completeness_error}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PromptSaliency:
        e = Encoded(tuple(d["ids"]), tuple(d["tokens"]), tuple(d["words"]), tuple(d["word_of"]),
                    tuple(d["segments"]), tuple(d["segment_of"]))
        t = d["target"]
        return cls(e, (int(t[0]), None if t[1] is None else int(t[1])),
                   {k: tuple(v) for k, v in d["scores"].items()}, float(d["score_x"]), d.get("score_baseline"),
                   d.get("completeness_error"))


@dataclass(frozen=True)
class SaliencyResult:
    """Saliency of several prompts (`PromptSaliency` each) and the settings that produced them."""

    items: tuple[PromptSaliency, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    model: str = ""

    def __repr__(self) -> str:
        err = self.max_completeness_error
        extra = "" if err is None else f", max IG completeness error {err:.2g}"
        return f"SaliencyResult({len(self.items)} prompts, methods {self.settings.get('methods')}{extra})"

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> PromptSaliency:
        return self.items[i]

    @property
    def max_completeness_error(self) -> float | None:
        errs = [it.completeness_error for it in self.items if it.completeness_error is not None]
        return max(errs) if errs else None

    def completeness(self) -> dict[str, float]:
        """Mean/max absolute and mean relative completeness error of integrated gradients."""
        abs_e = [it.completeness_error for it in self.items if it.completeness_error is not None]
        rel = [it.relative_completeness_error for it in self.items if it.relative_completeness_error is not None]
        if not abs_e:
            return {}
        return {"mean_abs": float(np.mean(abs_e)), "max_abs": float(np.max(abs_e)),
                "mean_relative": float(np.mean(rel)), "n": len(abs_e)}

    def to_frame(self) -> list[dict[str, Any]]:
        """Tidy rows: prompt, position, token, method, score."""
        return [{"prompt": i, "pos": p, "token": it.tokens[p], "method": m, "score": float(v[p])}
                for i, it in enumerate(self.items) for m, v in it.scores.items() for p in range(len(v))]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "saliency", "model": self.model, "settings": self.settings,
                "completeness": self.completeness(), "items": [it.to_dict() for it in self.items]}

    def save(self, path: str | os.PathLike[str]) -> Path:
        from interp._io import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SaliencyResult:
        from interp._io import read_json

        try:
            d = read_json(path)
            return cls(tuple(PromptSaliency.from_dict(x) for x in d["items"]), d.get("settings", {}),
                       d.get("model", ""))
        except (KeyError, TypeError, ValueError) as e:
            raise ExplainError(f"{path} is not a saliency result file: {e}") from e

    def plot(self, *, prompt: int = 0) -> Any:
        """Heatmap of one prompt: method x token, each method's scores scaled to max |score| = 1."""
        from interp.plotting import heatmap

        it = self.items[prompt]
        methods = list(it.scores)
        z = np.stack([it.values(m) / max(np.abs(it.values(m)).max(), 1e-12) for m in methods])
        x = [f"{i}:{t!r}" for i, t in enumerate(it.tokens)]
        return heatmap(z, x=x, y=methods, title=f"saliency of prompt {prompt} (scaled per method)",
                       zlabel="score / max|score|")


# ---------------------------------------------------------------------------------------------------- compute


def _nodes(steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Points in [0, 1] and weights summing to 1."""
    if rule == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(steps)
        return (x + 1) / 2, w / 2
    if rule == "riemann_middle":
        return (np.arange(steps) + 0.5) / steps, np.full(steps, 1.0 / steps)
    if steps == 1:
        return np.array([0.5]), np.array([1.0])
    x = np.linspace(0, 1, steps)
    w = np.full(steps, 1.0 / (steps - 1))
    w[0] = w[-1] = 0.5 / (steps - 1)
    return x, w


def _embeddings(model: Any, ids: Tensor) -> Tensor:
    got: dict[str, Tensor] = {}

    def grab(act: Tensor, hook: Any) -> None:
        got["e"] = act.detach().clone()

    with torch.inference_mode():
        model.run_with_hooks(ids, fwd_hooks=[(EMBED, grab)])
    return got["e"].clone()


def _baseline(model: Any, ids: Tensor, x: Tensor, baseline: Any) -> Tensor:
    if isinstance(baseline, str):
        if baseline not in BASELINES:
            raise unknown("IG baseline", baseline, BASELINES)
        if baseline == "zero":
            return torch.zeros_like(x)
        if baseline == "mean":
            return model.W_E.detach().float().mean(0).to(x.dtype).expand_as(x).clone()
        tok = getattr(model, "tokenizer", None)
        pad = None if tok is None else (tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        if pad is None:
            raise ExplainError("baseline 'pad' needs a tokenizer with a pad or EOS token; use 'zero' or a token id")
        baseline = pad
    b = single_token(model, baseline, what="IG baseline token")
    return _embeddings(model, torch.full_like(ids, b))


def _run_scores(model: Any, ids: Tensor, emb: Tensor, f: Callable[[Tensor], Tensor], *, grad: bool
                ) -> tuple[Tensor, Tensor | None]:
    """Scores [rows] of the model with its token embeddings replaced by ``emb`` [rows pos d]; and d score/d emb."""
    emb = emb.detach().requires_grad_(grad)

    def put(act: Tensor, hook: Any) -> Tensor:
        return emb.to(act.dtype)

    rows = ids.expand(emb.shape[0], -1)
    with torch.enable_grad() if grad else torch.inference_mode():
        logits = model.run_with_hooks(rows, fwd_hooks=[(EMBED, put)])[:, -1, :].float()
        s = f(logits)
        g = torch.autograd.grad(s.sum(), emb)[0] if grad else None
    return s.detach(), g


def _attention(model: Any, ids: Tensor) -> np.ndarray:
    acc: list[Tensor] = []

    def grab(act: Tensor, hook: Any) -> None:
        acc.append(act[0, :, -1, :].float().mean(0))

    hooks = [(pattern_hook(layer), grab) for layer in range(int(model.cfg.n_layers))]
    with torch.inference_mode():
        model.run_with_hooks(ids, fwd_hooks=hooks)
    if not acc:
        raise ExplainError("this model exposes no attention patterns (hook_pattern); method 'attention' needs them")
    return torch.stack(acc).mean(0).double().numpy()


def _as_prompt_list(prompts: Any) -> list[Any]:
    """A list of prompts from a string, a tensor of ids, one list of ids, or a list of prompts (a prompt given as a
    list of strings is one prompt made of segments)."""
    if isinstance(prompts, str):
        return [prompts]
    if isinstance(prompts, Tensor):
        return prompts.tolist() if prompts.ndim == 2 else [prompts.tolist()]
    prompts = list(prompts)
    if prompts and all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in prompts):
        return [prompts]
    return [p.tolist() if isinstance(p, Tensor) else p for p in prompts]


def saliency(
    model: Any,
    prompts: Any,
    *,
    target: Any,
    method: str | Sequence[str] = "integrated_gradients",
    metric: str | None = None,
    steps: int = 32,
    baseline: Any = "mean",
    integration: str = "gausslegendre",
    keep_bos: bool = True,
    prepend_bos: bool = True,
    batch_size: int = 16,
    segment_names: Sequence[str] | None = None,
    progress: bool = False,
) -> SaliencyResult:
    """Saliency of each prompt's last-position prediction of ``target`` (one target for all prompts or one each).

    ``metric=None`` scores each prompt by its target's logit, or ``logit_diff`` where its target is a pair.
    ``prompts``: a string, token ids, or a list of prompts where each is a string, token ids, or a list of strings
    (one prompt made of segments, e.g. ``[[demo1, demo2, query]]``). ``method``: one of
    `METHODS` or several. ``metric``: one of `SCORES` (default ``logit``, or ``logit_diff`` for a pair target).
    """
    methods = [method] if isinstance(method, str) else list(method)
    if not methods:
        raise ExplainError(f"no saliency method given; valid: {', '.join(METHODS)}")
    for m in methods:
        if m not in METHODS:
            raise unknown("saliency method", m, METHODS)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ExplainError(f"IG steps must be an integer >= 1; got {steps!r}")
    if integration not in INTEGRATION:
        raise unknown("IG integration rule", integration, INTEGRATION)
    if isinstance(baseline, str) and baseline not in BASELINES:
        raise unknown("IG baseline", baseline, BASELINES)
    if batch_size < 1:
        raise ExplainError(f"batch_size must be >= 1; got {batch_size}")
    prompts = _as_prompt_list(prompts)
    if not prompts:
        raise ExplainError("no prompts given")
    targets = list(target) if isinstance(target, list) else [target] * len(prompts)
    if len(targets) != len(prompts):
        raise ExplainError(f"{len(targets)} targets for {len(prompts)} prompts; pass one target or one per prompt")
    resolved = [resolve_target(model, t) for t in targets]
    if metric is not None and metric not in SCORES:
        raise unknown("saliency metric", metric, SCORES)
    encoded = [encode_prompt(model, p, prepend_bos=prepend_bos, segment_names=segment_names) for p in prompts]
    check_context(model, [e.ids for e in encoded])
    nodes, weights = _nodes(int(steps), integration)
    tok = getattr(model, "tokenizer", None)
    bos_id = None if tok is None else tok.bos_token_id
    items = []
    it = encoded
    if progress:
        from interp.progress import iterate

        it = iterate(encoded, desc="saliency (prompts)")
    for enc, (r, r2) in zip(it, resolved):
        ids = torch.tensor([enc.ids])
        x = _embeddings(model, ids)  # [1 pos d]
        with torch.inference_mode():
            base_logits = model(ids)[0, -1].float()
        f = score_fn(metric or ("logit_diff" if r2 is not None else "logit"), r, r2, base_logits)
        scores: dict[str, tuple[float, ...]] = {}
        s_x, g_x = _run_scores(model, ids, x, f, grad=any(m in ("gradient", "grad_x_input") for m in methods))
        if g_x is not None:
            gx = g_x[0].double()
            if "gradient" in methods:
                scores["gradient"] = tuple(gx.norm(dim=-1).tolist())
            if "grad_x_input" in methods:
                scores["grad_x_input"] = tuple((gx * x[0].double()).sum(-1).tolist())
        s_base = err = None
        if "integrated_gradients" in methods:
            x0 = _baseline(model, ids, x, baseline)
            if keep_bos and bos_id is not None and enc.ids[0] == bos_id:
                x0[:, 0] = x[:, 0]
            delta = x - x0
            total = torch.zeros_like(x[0], dtype=torch.float64)
            for s in range(0, len(nodes), batch_size):
                a = torch.tensor(nodes[s : s + batch_size], dtype=x.dtype)[:, None, None]
                w = torch.tensor(weights[s : s + batch_size], dtype=torch.float64)[:, None, None]
                _, g = _run_scores(model, ids, x0 + a * delta, f, grad=True)
                total += (g.double() * w).sum(0)
            ig = (total * delta[0].double()).sum(-1)
            scores["integrated_gradients"] = tuple(ig.tolist())
            s_base = float(_run_scores(model, ids, x0, f, grad=False)[0][0])
            err = abs(float(ig.sum()) - (float(s_x[0]) - s_base))
        if "attention" in methods:
            scores["attention"] = tuple(_attention(model, ids).tolist())
        items.append(PromptSaliency(enc, (r, r2), {m: scores[m] for m in methods}, float(s_x[0]), s_base, err))
    settings = {"methods": methods, "metric": metric or "auto (logit; logit_diff for pairs)",
                "steps": int(steps), "baseline": baseline,
                "integration": integration, "keep_bos": keep_bos, "prepend_bos": prepend_bos,
                "n_prompts": len(items)}
    return SaliencyResult(tuple(items), settings, str(getattr(model.cfg, "model_name", "")))
