"""Contrastive demonstrations for in-context learning (Li et al. 2023) and the flipped-label test (Wei et al. 2023).

Few-shot prompts are built from a labelled set (the built-in sentiment set or a user's JSONL of text/label)::

    Review: The soup was warm and delicious.
    Sentiment: positive

    Review: {query}
    Sentiment:

and the demonstrations are varied: ``gold`` (true labels), ``flipped`` (every demonstration label swapped),
``perturbed`` (the words of each demonstration text shuffled, labels kept) and ``explained`` (a one-line explanation
naming the cue word added to each demonstration). Demonstrations are drawn balanced from the training split for each
query (seeded), queries from the test split. Per variant and shot count: accuracy (the larger of the two label-word
logits), mean probability of the gold label word (raw, and as a share of the two label words), and for ``flipped``
the share of predictions that **follow the flipped labels** rather than the semantic prior. Integrated-gradients
saliency of the gold-vs-other logit difference is aggregated per demonstration and for the query.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.errors import unknown
from interp.explain._common import ExplainError, check_context, single_token
from interp.explain.data import Labelled, check_two_classes, load_sentiment, split

__all__ = ["VARIANTS", "ICLResult", "build_prompt", "icl_experiment"]

VARIANTS: tuple[str, ...] = ("gold", "flipped", "perturbed", "explained")


def _demo(row: Labelled, word: str, variant: str, rng: random.Random) -> str:
    text = row.text
    if variant == "perturbed":
        words = text.split()
        rng.shuffle(words)
        text = " ".join(words)
    s = f"Review: {text}\n"
    if variant == "explained":
        cue = row.cue or text.split()[-1]
        s += f"Explanation: the word \"{cue.strip('.')}\" sounds{word}.\n"
    return s + f"Sentiment:{word}\n\n"


def build_prompt(demos: Sequence[Labelled], query: str, words: dict[Any, str], *, variant: str = "gold",
                 seed: int = 0) -> list[str]:
    """Segments ``[demo_1, ..., demo_k, query]`` of one few-shot prompt (``words``: label -> label word)."""
    if variant not in VARIANTS:
        raise unknown("ICL variant", variant, VARIANTS)
    labels = list(words)
    rng = random.Random(seed)
    segs = []
    for d in demos:
        lab = d.label
        if variant == "flipped":
            lab = labels[1] if lab == labels[0] else labels[0]
        segs.append(_demo(d, words[lab], variant, rng))
    return segs + [f"Review: {query}\nSentiment:"]


@dataclass(frozen=True)
class ICLResult:
    """Accuracy and label-word probability per (variant, shots); per-demonstration saliency per variant."""

    rows: tuple[dict[str, Any], ...]
    saliency: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def get(self, variant: str, shots: int) -> dict[str, Any]:
        for r in self.rows:
            if r["variant"] == variant and r["shots"] == shots:
                return r
        raise unknown("(variant, shots) in this result", f"{variant}/{shots}",
                      [f"{r['variant']}/{r['shots']}" for r in self.rows])

    def __repr__(self) -> str:
        k = max(r["shots"] for r in self.rows)
        acc = ", ".join(f"{r['variant']} {r['accuracy']:.2f}" for r in self.rows if r["shots"] == k)
        return f"ICLResult({k}-shot accuracy: {acc})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "icl", "settings": self.settings, "rows": list(self.rows), "saliency": self.saliency}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ICLResult:
        return cls(tuple(d["rows"]), d.get("saliency", {}), d.get("settings", {}))

    def save(self, path: str | os.PathLike[str]) -> Path:
        from interp._io import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ICLResult:
        from interp._io import read_json

        try:
            return cls.from_dict(read_json(path))
        except (KeyError, TypeError, ValueError) as e:
            raise ExplainError(f"{path} is not an ICL result file: {e}") from e

    def plot(self) -> Any:
        """Accuracy and gold-label probability against the number of shots, one line per variant; the mean
        per-demonstration saliency of each variant as bars."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=3, subplot_titles=["accuracy", "P(gold label word)",
                                                            "IG saliency per demonstration"])
        for v in dict.fromkeys(r["variant"] for r in self.rows):
            rs = sorted((r for r in self.rows if r["variant"] == v), key=lambda r: r["shots"])
            x = [r["shots"] for r in rs]
            fig.add_trace(go.Scatter(x=x, y=[r["accuracy"] for r in rs], name=v, legendgroup=v), row=1, col=1)
            fig.add_trace(go.Scatter(x=x, y=[r["p_gold"] for r in rs], name=v, legendgroup=v, showlegend=False),
                          row=1, col=2)
        for v, s in self.saliency.items():
            fig.add_trace(go.Bar(x=list(s["mean_by_segment"]), y=list(s["mean_by_segment"].values()), name=v,
                                 legendgroup=v, showlegend=False), row=1, col=3)
        fig.update_xaxes(title_text="shots", row=1, col=1)
        fig.update_xaxes(title_text="shots", row=1, col=2)
        return fig


def _balanced(pool: dict[Any, list[Labelled]], k: int, rng: random.Random) -> list[Labelled]:
    labels = list(pool)
    out = []
    for i in range(k):
        out.append(rng.choice(pool[labels[i % 2]]))
    rng.shuffle(out)
    return out


@torch.inference_mode()
def _label_logits(model: Any, prompts: list[list[int]], ids: list[int]) -> np.ndarray:
    """[n 2] label-word logits and [n] log-sum-exp of all logits, prompts grouped by length."""
    check_context(model, prompts, what="a few-shot prompt")
    out = np.zeros((len(prompts), 3))
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    for _, idx in by_len.items():
        for s in range(0, len(idx), 16):
            rows = idx[s : s + 16]
            lg = model(torch.tensor([prompts[i] for i in rows]))[:, -1].double()
            out[rows, :2] = lg[:, ids].numpy()
            out[rows, 2] = lg.logsumexp(-1).numpy()
    return out


def icl_experiment(model: Any, *, data: str | os.PathLike[str] | None = None, shots: Sequence[int] = (0, 2, 4, 8),
                   variants: Sequence[str] = VARIANTS, n_queries: int = 50, n_saliency: int = 8,
                   saliency_shots: int | None = None, ig_steps: int = 8, label_words: dict[Any, str] | None = None,
                   seed: int = 0, progress: bool = False) -> ICLResult:
    """Run every (variant, shots) on ``n_queries`` test queries; IG saliency per demonstration for ``n_saliency``
    queries at ``saliency_shots`` (default: the largest shot count)."""
    from interp.explain.saliency import saliency
    from interp.tasks.base import encode, get_tokenizer

    for v in variants:
        if v not in VARIANTS:
            raise unknown("ICL variant", v, VARIANTS)
    shots = sorted({int(s) for s in shots})
    if not shots or shots[0] < 0:
        raise ExplainError(f"shots must be non-negative shot counts; got {shots}")
    if any(s % 2 for s in shots):
        raise ExplainError(f"shot counts must be even (demonstrations are balanced over the two labels); got {shots}")
    rows_all = load_sentiment(data)
    classes = check_two_classes([r.label for r in rows_all], what="the labelled set")
    if label_words is None:
        label_words = {c: f" {c}" for c in classes}
    words = {c: label_words[c] for c in classes}
    word_ids = [single_token(model, words[c], what=f"label word for {c!r}") for c in classes]
    train, test = split(rows_all, "train"), split(rows_all, "test")
    if not test:  # a user file without splits: hold out every 4th row
        train, test = [r for i, r in enumerate(rows_all) if i % 4 != 3], rows_all[3::4]
    pool = {c: [r for r in train if r.label == c] for c in classes}
    if any(not v for v in pool.values()) and max(shots) > 0:
        raise ExplainError("the training split lacks one of the two labels; demonstrations need both")
    rng = random.Random(seed)
    queries = rng.sample(test, min(int(n_queries), len(test)))
    tok = get_tokenizer(model)
    bos = tok.bos_token_id is not None
    demos_for = {q.text: _balanced(pool, max(shots), random.Random(f"{seed}/{q.text}")) for q in queries}
    results, preds = [], {}
    combos = [(v, k) for k in shots for v in (variants if k else variants[:1])]
    it = combos
    if progress:
        from interp.progress import iterate

        it = iterate(combos, desc="icl (settings)")
    for v, k in it:
        texts = ["".join(build_prompt(demos_for[q.text][:k], q.text, words, variant=v, seed=seed)) for q in queries]
        ids = encode(tok, texts, prepend_bos=bos)[0]
        lg = _label_logits(model, ids, word_ids)
        gold = np.array([classes.index(q.label) for q in queries])
        pred = lg[:, :2].argmax(1)
        p = np.exp(lg[:, :2] - lg[:, 2:3])
        p_gold = p[np.arange(len(gold)), gold]
        preds[(v, k)] = pred
        row = {"variant": v, "shots": k, "n": len(queries), "accuracy": float((pred == gold).mean()),
               "p_gold": float(p_gold.mean()), "p_gold_share": float((p_gold / p.sum(1)).mean()),
               "follow_flipped": float((pred != gold).mean()) if v == "flipped" and k else None}
        if v == "flipped" and ("gold", k) in preds:
            row["changed_vs_gold"] = float((pred != preds[("gold", k)]).mean())
        results.append(row)
    if 0 in shots:  # with no demonstrations every variant is the same prompt: copy the 0-shot row
        zero = next(r for r in results if r["shots"] == 0)
        results += [dict(zero, variant=v) for v in variants if v != zero["variant"]]
    sal: dict[str, dict[str, Any]] = {}
    k = max(shots) if saliency_shots is None else int(saliency_shots)
    if n_saliency and k > 0:
        qs = queries[: int(n_saliency)]
        names = [f"demo{i + 1}" for i in range(k)] + ["query"]
        for v in variants:
            prompts = [build_prompt(demos_for[q.text][:k], q.text, words, variant=v, seed=seed) for q in qs]
            gold = [classes.index(q.label) for q in qs]
            targets = [(word_ids[g], word_ids[1 - g]) for g in gold]
            r = saliency(model, prompts, target=targets, method="integrated_gradients", steps=ig_steps,
                         segment_names=names)
            segs = np.array([[it.by_segment("integrated_gradients")[n] for n in names] for it in r.items])
            absd = np.abs(segs)
            sal[v] = {"shots": k, "n": len(qs), "mean_by_segment": dict(zip(names, segs.mean(0).tolist())),
                      "mean_abs_by_segment": dict(zip(names, absd.mean(0).tolist())),
                      "demo_share_of_abs": float((absd[:, :k].sum(1) / absd.sum(1).clip(1e-12)).mean()),
                      "completeness": r.completeness()}
    settings = {"shots": shots, "variants": list(variants), "n_queries": len(queries), "n_saliency": n_saliency,
                "ig_steps": ig_steps, "label_words": {str(c): w for c, w in words.items()}, "seed": seed,
                "data": str(data) if data else "built-in sentiment set"}
    return ICLResult(tuple(results), sal, settings)
