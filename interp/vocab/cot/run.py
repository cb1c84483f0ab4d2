"""Chain-of-thought variants: accuracy and concept-neuron activation per variant, their correlation, and corruption.

`run_cot` generates greedily for every word problem under every exemplar variant, extracts the answer, and (given
concept neurons) measures how often and how strongly they are among the top-K sub-updates of the generated tokens
(`interp.vocab.cot.activation`). Across variants it reports the Pearson and Spearman correlation between accuracy and
activation (Rai & Yao report a positive one). `corruption_experiment` compares accuracy with the concept neurons
corrupted against the same number of random neurons from the same layers (`interp.vocab.cot.corrupt`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp.errors import unknown
from interp.tasks.base import get_tokenizer
from interp.vocab.cot.activation import ConceptActivation
from interp.vocab.cot.corrupt import CORRUPTIONS, corrupt_neurons, random_like
from interp.vocab.cot.data import (
    CotError,
    Variant,
    WordProblem,
    answer_complete,
    build_prefix,
    build_query,
    extract_answer,
    load_problems,
    load_variants,
)
from interp.vocab.cot.generate import greedy_generate

__all__ = [
    "ProblemOutcome",
    "VariantResult",
    "CotResult",
    "CorruptionResult",
    "evaluate_variant",
    "run_cot",
    "corruption_experiment",
    "correlation",
    "concept_neuron_sets",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProblemOutcome:
    id: str
    gold: float
    predicted: float | None
    correct: bool
    text: str
    n_tokens: int


@dataclass(frozen=True)
class VariantResult:
    """Accuracy of one exemplar variant and, with concept neurons, their activation during generation."""

    name: str
    description: str
    accuracy: float
    n_correct: int
    n_problems: int
    n_tokens: int
    activation: dict[str, dict[str, float]]
    outcomes: tuple[ProblemOutcome, ...]
    seconds: float = 0.0

    def to_dict(self, *, outcomes: bool = True) -> dict[str, Any]:
        d = {"name": self.name, "description": self.description, "accuracy": self.accuracy,
             "n_correct": self.n_correct, "n_problems": self.n_problems, "n_tokens": self.n_tokens,
             "concept_activation": self.activation, "seconds": self.seconds}
        if outcomes:
            d["outcomes"] = [o.__dict__ for o in self.outcomes]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VariantResult:
        return cls(d["name"], d.get("description", ""), float(d["accuracy"]), int(d["n_correct"]),
                   int(d["n_problems"]), int(d.get("n_tokens", 0)), d.get("concept_activation", {}),
                   tuple(ProblemOutcome(**o) for o in d.get("outcomes", ())), float(d.get("seconds", 0.0)))


def concept_neuron_sets(concept_neurons: Any) -> dict[str, dict[int, list[int]]]:
    """``{concept: {layer: [neuron...]}}`` from a `ConceptNeurons` result or such a mapping."""
    if concept_neurons is None:
        return {}
    if hasattr(concept_neurons, "concepts") and hasattr(concept_neurons, "neurons"):
        return {c: concept_neurons.neurons(c) for c in concept_neurons.concepts}
    if isinstance(concept_neurons, Mapping):
        return {str(c): {int(k): [int(i) for i in v] for k, v in m.items()} for c, m in concept_neurons.items()}
    raise CotError(f"concept_neurons must be a ConceptNeurons result or {{concept: {{layer: [neuron...]}}}}; "
                   f"got {type(concept_neurons).__name__}")


def _tokenize(model: Any, variant: Variant, problems: Sequence[WordProblem], prepend_bos: bool
              ) -> tuple[list[int], list[list[int]]]:
    """Shared prefix ids and per-problem continuation ids, cut where the joint tokenizations agree."""
    tok = get_tokenizer(model)
    prefix_text = build_prefix(variant)
    fulls = tok([prefix_text + build_query(variant, p.question) for p in problems], add_special_tokens=False)
    fulls = fulls["input_ids"]
    if prepend_bos:
        if tok.bos_token_id is None:
            raise CotError("prepend_bos=True but the tokenizer has no BOS token; pass prepend_bos=False")
        fulls = [[tok.bos_token_id, *f] for f in fulls]
    n = len(tok(prefix_text, add_special_tokens=False)["input_ids"]) + int(prepend_bos)
    for f in fulls:  # the boundary token may merge with the query's first characters
        while n > 0 and f[:n] != fulls[0][:n]:
            n -= 1
    n = min(n, min(len(f) for f in fulls) - 1)
    return fulls[0][:n], [f[n:] for f in fulls]


def evaluate_variant(
    model: Any,
    variant: Variant | str,
    problems: Sequence[WordProblem],
    *,
    concept_neurons: Any = None,
    top_k: int = 20,
    max_new_tokens: int = 80,
    batch_size: int = 1,
    fallback: str = "none",
    prepend_bos: bool = True,
    observer: Any = None,
) -> VariantResult:
    """Greedy accuracy of one variant on ``problems`` and concept-neuron activation over the generated tokens.

    ``observer`` (e.g. a `DominantCollector`) also sees every step. ``batch_size=1`` is the default because each
    row of a batch carries its own copy of the long exemplar KV cache, which on CPUs costs more than it saves.
    """
    t0 = time.perf_counter()
    if isinstance(variant, str):
        variant = load_variants(names=[variant])[variant]
    if not problems:
        raise CotError("no word problems to evaluate")
    sets = concept_neuron_sets(concept_neurons)
    concept_obs = ConceptActivation(model, sets, top_k=top_k, n_prompts=len(problems)) if sets else None
    prefix, queries = _tokenize(model, variant, problems, prepend_bos)
    observers = [o for o in (concept_obs, observer) if o is not None]

    def observe(layer: int, act: Any, rows: Any) -> None:
        for o in observers:
            o(layer, act, rows)

    gens = greedy_generate(model, queries, prefix=prefix, max_new_tokens=max_new_tokens, stop=answer_complete,
                           batch_size=batch_size, observe=observe if observers else None)
    outcomes = []
    for p, g in zip(problems, gens):
        pred = extract_answer(g.text, fallback=fallback)
        ok = pred is not None and abs(pred - p.answer) < 1e-6
        outcomes.append(ProblemOutcome(p.id, p.answer, pred, ok, g.text, len(g.tokens)))
    n_ok = sum(o.correct for o in outcomes)
    return VariantResult(variant.name, variant.description, n_ok / len(outcomes), n_ok, len(outcomes),
                         sum(o.n_tokens for o in outcomes), concept_obs.summary() if concept_obs else {},
                         tuple(outcomes), time.perf_counter() - t0)


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):  # average ties
        ranks[x == v] = ranks[x == v].mean()
    return ranks


def correlation(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Pearson r and Spearman rho of two sequences (nan when undefined)."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return {"pearson": float("nan"), "spearman": float("nan"), "n": int(len(a))}
    ra, rb = _ranks(a), _ranks(b)
    return {"pearson": float(np.corrcoef(a, b)[0, 1]), "spearman": float(np.corrcoef(ra, rb)[0, 1]),
            "n": int(len(a))}


@dataclass(frozen=True)
class CotResult:
    """Per-variant results and the accuracy-activation correlation across variants."""

    variants: dict[str, VariantResult]
    correlation: dict[str, dict[str, float]]
    model: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> VariantResult:
        if name not in self.variants:
            raise unknown("CoT variant", name, self.variants)
        return self.variants[name]

    def to_frame(self) -> Any:
        import pandas as pd

        rows = []
        for v in self.variants.values():
            row: dict[str, Any] = {"variant": v.name, "accuracy": v.accuracy, "n_problems": v.n_problems,
                                   "tokens_per_problem": v.n_tokens / max(v.n_problems, 1)}
            for c, a in v.activation.items():
                row[f"{c}_hits_per_token"] = a["hits_per_token"]
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self, *, outcomes: bool = True) -> dict[str, Any]:
        return {"model": self.model, "settings": self.settings, "correlation": self.correlation,
                "variants": {n: v.to_dict(outcomes=outcomes) for n, v in self.variants.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CotResult:
        return cls({n: VariantResult.from_dict(v) for n, v in d["variants"].items()}, d.get("correlation", {}),
                   d.get("model", ""), d.get("settings", {}))

    def save(self, path: str | os.PathLike[str], *, outcomes: bool = True) -> Path:
        from interp._io import write_json_atomic

        return write_json_atomic(path, self.to_dict(outcomes=outcomes))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CotResult:
        from interp._io import read_json

        try:
            return cls.from_dict(read_json(path))
        except (KeyError, TypeError, ValueError) as e:
            raise CotError(f"{path} is not a CoT result file: {e}") from e

    def plot(self, *, title: str | None = None) -> Any:
        """Accuracy per variant (bars) and concept-neuron hits per generated token (heatmap, concept x variant)."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        names = list(self.variants)
        concepts = [c for c in next(iter(self.variants.values())).activation if c != "all"]
        fig = make_subplots(rows=2, cols=1, row_heights=[0.4, 0.6], vertical_spacing=0.12,
                            subplot_titles=["accuracy", "concept neurons among the top-K sub-updates, per token"])
        fig.add_trace(go.Bar(x=names, y=[self.variants[n].accuracy for n in names], name="accuracy"), row=1, col=1)
        if concepts:
            z = [[self.variants[n].activation[c]["hits_per_token"] for n in names] for c in concepts]
            fig.add_trace(go.Heatmap(z=z, x=names, y=concepts, colorscale="Viridis", colorbar=dict(title="hits/token",
                                     y=0.3, len=0.6)), row=2, col=1)
        r = self.correlation.get("all", {})
        pearson, spearman = r.get("pearson", float("nan")), r.get("spearman", float("nan"))
        fig.update_layout(title=title or f"CoT variants on {self.model}: accuracy vs concept activation "
                          f"(Pearson {pearson:.2f}, Spearman {spearman:.2f})",
                          showlegend=False)
        return fig


def run_cot(
    model: Any,
    *,
    variants: Sequence[str] | None = None,
    problems: Sequence[WordProblem] | None = None,
    n_problems: int | None = None,
    concept_neurons: Any = None,
    top_k: int = 20,
    max_new_tokens: int = 80,
    batch_size: int = 1,
    fallback: str = "none",
    prepend_bos: bool = True,
    progress: bool = False,
) -> CotResult:
    """Evaluate every variant (default: all eight) on the word problems (default: all 64, or the first ``n``)."""
    from interp.models import model_name
    from interp.progress import iterate

    chosen = load_variants(names=variants)
    probs = list(problems) if problems is not None else load_problems(n=n_problems)
    if problems is not None and n_problems is not None:
        probs = probs[:n_problems]
    results = {}
    for name in iterate(list(chosen), desc="CoT variants", enabled=progress):
        results[name] = evaluate_variant(model, chosen[name], probs, concept_neurons=concept_neurons, top_k=top_k,
                                         max_new_tokens=max_new_tokens, batch_size=batch_size, fallback=fallback,
                                         prepend_bos=prepend_bos)
        log.info("%s: accuracy %.3f (%.0f s)", name, results[name].accuracy, results[name].seconds)
    corr: dict[str, dict[str, float]] = {}
    acc = [r.accuracy for r in results.values()]
    first = next(iter(results.values()))
    for c in first.activation:
        for measure in ("hits_per_token", "strength_per_token", "activated"):
            key = c if measure == "hits_per_token" else f"{c}:{measure}"
            corr[key] = correlation(acc, [r.activation[c][measure] for r in results.values()])
    settings = {"top_k": top_k, "max_new_tokens": max_new_tokens, "n_problems": len(probs), "fallback": fallback,
                "prepend_bos": prepend_bos, "problem_ids": [p.id for p in probs],
                "n_concept_neurons": {c: sum(map(len, m.values())) for c, m in
                                      concept_neuron_sets(concept_neurons).items()}}
    return CotResult(results, corr, model_name(model), settings)


@dataclass(frozen=True)
class CorruptionResult:
    """Accuracy with the concept neurons corrupted vs the same number of random neurons from the same layers."""

    variant: str
    mode: str
    n_neurons: int
    n_problems: int
    baseline: float
    concept: float
    random: tuple[float, ...]
    neurons: dict[int, list[int]]
    random_neurons: tuple[dict[int, list[int]], ...]
    model: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def random_mean(self) -> float:
        return float(np.mean(self.random)) if self.random else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "variant": self.variant, "mode": self.mode, "n_neurons": self.n_neurons,
                "n_problems": self.n_problems, "baseline": self.baseline, "concept": self.concept,
                "random": list(self.random), "random_mean": self.random_mean,
                "neurons": {str(k): v for k, v in self.neurons.items()},
                "random_neurons": [{str(k): v for k, v in r.items()} for r in self.random_neurons],
                "settings": self.settings}

    def save(self, path: str | os.PathLike[str]) -> Path:
        from interp._io import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    def plot(self) -> Any:
        import plotly.graph_objects as go

        fig = go.Figure(go.Bar(x=["no corruption", "concept neurons", "random neurons"],
                               y=[self.baseline, self.concept, self.random_mean]))
        fig.update_layout(title=f"{self.variant}: accuracy with {self.n_neurons} neurons corrupted ({self.mode})",
                          yaxis_title="accuracy")
        return fig


def corruption_experiment(
    model: Any,
    neurons: Any,
    *,
    variant: str = "full_cot",
    problems: Sequence[WordProblem] | None = None,
    n_problems: int | None = None,
    mode: str = "noise",
    n_random: int = 1,
    seed: int = 0,
    noise_seed: int = 1,
    baseline: float | None = None,
    max_new_tokens: int = 80,
    batch_size: int = 1,
    prepend_bos: bool = True,
) -> CorruptionResult:
    """Accuracy of ``variant`` with ``neurons`` corrupted, with ``n_random`` random controls, and without.

    ``neurons`` is ``{layer: [neuron...]}`` or a `ConceptNeurons` result (the union of its concepts).
    ``baseline`` skips the uncorrupted run when already known.
    """
    from interp.models import model_name
    from interp.vocab import normalize_neurons

    if mode not in CORRUPTIONS:
        raise unknown("corruption", mode, CORRUPTIONS)
    if n_random < 0:
        raise CotError(f"n_random must be >= 0; got {n_random}")
    if hasattr(neurons, "all_neurons"):
        neurons = neurons.all_neurons()
    chosen = normalize_neurons(model, neurons)
    probs = list(problems) if problems is not None else load_problems(n=n_problems)
    if problems is not None and n_problems is not None:
        probs = probs[:n_problems]
    var = load_variants(names=[variant])[variant]
    kw = dict(max_new_tokens=max_new_tokens, batch_size=batch_size, prepend_bos=prepend_bos)
    if baseline is None:
        baseline = evaluate_variant(model, var, probs, **kw).accuracy
    with corrupt_neurons(model, chosen, mode=mode, seed=noise_seed):
        concept = evaluate_variant(model, var, probs, **kw).accuracy
    randoms, rand_sets = [], []
    for i in range(n_random):
        rnd = random_like(model, chosen, seed=seed + i)
        with corrupt_neurons(model, rnd, mode=mode, seed=noise_seed):
            randoms.append(evaluate_variant(model, var, probs, **kw).accuracy)
        rand_sets.append(rnd)
    return CorruptionResult(variant, mode, sum(map(len, chosen.values())), len(probs), float(baseline), concept,
                            tuple(randoms), chosen, tuple(rand_sets), model_name(model),
                            {"noise": "N(-1, 1) added once" if mode == "noise" else "coefficient set to 0",
                             "noise_seed": noise_seed, "seed": seed, "max_new_tokens": max_new_tokens})
