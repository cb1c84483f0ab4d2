"""Uncertainty of generated answers and how well it predicts correctness (survey §4.2.3).

For every question the model answers greedily (`interp.cot.greedy_generate`, KV-cached); one teacher-forced pass
over prompt + answer then gives, per generated token, the probability of the chosen token, the entropy and the
margin (top-1 − top-2 probability), and the logit lens at the position that predicts the answer's first token.
Sequence confidences (all in [0, 1], higher = more confident):

========== ==========================================================================================
prob_mean  mean probability of the generated tokens
prob_min   the least probable generated token
prob_geo   exp(mean log p): the length-normalised sequence likelihood
entropy    1 − mean entropy / log(d_vocab)
margin     mean (p_top1 − p_top2)
relevance  exp(−Σ r_t·NLL_t / Σ r_t), relevance-weighted as in Duan et al. 2023 (SAR); the relevance r_t of a
           token is 1 − cos(h(answer), h(answer without token t)), h = mean final-layer residual of the answer
           text run alone - the model itself stands in for SAR's sentence-similarity model
consistency share of ``k`` temperature samples whose extracted answer equals the greedy one (needs k >= 2)
========== ==========================================================================================

AUROC and ECE of each confidence for predicting correctness are in `UncertaintyResult.summary`. Logit lens: the
first layer from which the final top token stays the top token of ``unembed(ln_final(resid_pre))`` up to the
output (``n_layers`` = only at the output), compared between correct and wrong answers.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import unknown
from interp.explain._common import ExplainError, check_finite
from interp.explain.calibration import auroc, ece, reliability
from interp.sites import UNEMBED, hook_name

__all__ = ["toy_held_out_pairs", "Question", "ItemUncertainty", "UncertaintyResult", "MEASURES", "token_uncertainty",
           "arith_questions",
           "word_problem_questions", "uncertainty", "sample_answers", "relevance_weights"]

MEASURES: tuple[str, ...] = ("prob_mean", "prob_min", "prob_geo", "entropy", "margin", "relevance", "consistency")
_INT_RE = re.compile(r"^\s*(-?\d+)")


@dataclass(frozen=True)
class Question:
    """A prompt (token ids after the shared ``prefix``), its gold answer, and how to read and end an answer."""

    ids: tuple[int, ...]
    gold: float
    label: str
    extract: Callable[[str], float | None]
    stop: Callable[[str], bool]
    answer_span: Callable[[str], tuple[int, int] | None]  # character span of the answer number in the text
    max_new_tokens: int | None = None  # 1 where every number is one token (toy-arith): the answer is one token


def _int_extract(text: str) -> float | None:
    m = _INT_RE.match(text)
    return float(m.group(1)) if m else None


def _int_stop(text: str) -> bool:
    return re.search(r"\d\D", text) is not None or (text.strip() == "" and len(text) > 3)


def _int_span(text: str) -> tuple[int, int] | None:
    m = _INT_RE.match(text)
    return (m.start(1), m.end(1)) if m else None


def arith_questions(model: Any, spec: str = "arith:+:0-9", *, n: int = 60, prefix: str = "", seed: int = 0,
                    only_pairs: Sequence[tuple[int, int]] | None = None) -> list[Question]:
    """``n`` prompts of an arithmetic task (all prompts of the grid, or those whose operands are in ``only_pairs``;
    seeded sample), answers read as integers."""
    from interp.tasks import parse_task

    task = parse_task(spec, prefix=prefix)
    prompts = [p for op in task.operators for p in task.prompts(model, op)]
    if only_pairs is not None:
        keep = {(int(a), int(b)) for a, b in only_pairs}
        prompts = [p for p in prompts if (p.a, p.b) in keep]
    if not prompts:
        raise ExplainError(f"task {spec!r} has no prompts for this model")
    mode, _ = task._mode_and_limit(model.tokenizer)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(prompts))[: max(1, int(n))]
    return [Question(tuple(prompts[i].tokens), float(prompts[i].result), str(prompts[i]), _int_extract, _int_stop,
                     _int_span, 1 if mode == "single" else None) for i in sorted(pick)]


def toy_held_out_pairs(op: str) -> list[tuple[int, int]]:
    """The operand pairs of operator ``op`` that the built-in toy-arith model never saw in training."""
    from interp.models.toy import TOY_DIR, read_toy_config

    return list(read_toy_config(TOY_DIR)[0].split(op)[1])


def word_problem_questions(model: Any, *, variant: str = "full_cot", n: int = 16) -> tuple[list[int], list[Question]]:
    """The shared exemplar prefix of ``variant`` and the first ``n`` built-in word problems as questions."""
    from interp.vocab.cot import answer_complete, extract_answer, load_problems, load_variants
    from interp.vocab.cot.run import _tokenize

    v = load_variants(names=[variant])[variant]
    probs = load_problems(n=n)
    prefix, conts = _tokenize(model, v, probs, True)

    def extract(text: str) -> float | None:
        return extract_answer(text, fallback="last_number")

    def span(text: str) -> tuple[int, int] | None:
        m = re.search(r"The answer is\s*\$?\s*(-?\d[\d,]*)", text)
        if m:
            return m.start(1), m.end(1)
        nums = list(re.finditer(r"-?\d[\d,]*", text.split("\n\n")[0]))
        return (nums[-1].start(), nums[-1].end()) if nums else None

    return prefix, [Question(tuple(c), p.answer, p.id, extract, answer_complete, span) for c, p in zip(conts, probs)]


def token_uncertainty(logits: Tensor, chosen: Tensor) -> dict[str, Tensor]:
    """Per row of ``logits [n d_vocab]``: probability of ``chosen``, entropy (nats), margin, top-1 id (float64)."""
    lp = logits.double().log_softmax(-1)
    p = lp.exp()
    top2 = p.topk(2, dim=-1).values
    ent = -(p * lp).nan_to_num(0.0).sum(-1)
    return {"logprob": lp.gather(-1, chosen[:, None])[:, 0], "entropy": ent, "margin": top2[:, 0] - top2[:, 1],
            "top": lp.argmax(-1).double()}


@dataclass(frozen=True)
class ItemUncertainty:
    label: str
    gold: float
    predicted: float | None
    correct: bool
    text: str
    n_tokens: int
    confidence: dict[str, float]
    lens_layer: int | None
    samples: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class UncertaintyResult:
    """Per-question confidences and correctness; `summary` gives AUROC/ECE per measure and the logit-lens view."""

    items: tuple[ItemUncertainty, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    n_layers: int = 0

    @property
    def accuracy(self) -> float:
        return float(np.mean([it.correct for it in self.items])) if self.items else float("nan")

    def measures(self) -> list[str]:
        return [m for m in MEASURES if self.items and m in self.items[0].confidence]

    def summary(self, *, bins: int = 10) -> dict[str, Any]:
        y = [it.correct for it in self.items]
        out: dict[str, Any] = {"n": len(self.items), "accuracy": self.accuracy, "n_correct": int(sum(y)),
                               "n_no_answer": sum(it.predicted is None for it in self.items), "measures": {}}
        for m in self.measures():
            c = [it.confidence[m] for it in self.items]
            out["measures"][m] = {"auroc": auroc(c, y), "ece": ece(c, y, bins=bins), "mean": float(np.mean(c))}
        lens = {"correct": [it.lens_layer for it in self.items if it.correct and it.lens_layer is not None],
                "wrong": [it.lens_layer for it in self.items if not it.correct and it.lens_layer is not None]}
        out["logit_lens"] = {k: {"mean_layer": float(np.mean(v)) if v else float("nan"), "n": len(v)}
                             for k, v in lens.items()}
        out["logit_lens"]["n_layers"] = self.n_layers
        if not any(y) or all(y):
            out["note"] = "AUROC is undefined (NaN): every answer is " + ("right" if all(y) else "wrong")
        return out

    def __repr__(self) -> str:
        s = self.summary()
        best = max(s["measures"].items(), key=lambda kv: -1 if math.isnan(kv[1]["auroc"]) else kv[1]["auroc"],
                   default=None)
        b = f"; best AUROC {best[0]} {best[1]['auroc']:.2f}" if best else ""
        return f"UncertaintyResult({s['n']} questions, accuracy {s['accuracy']:.2f}{b})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "uncertainty", "settings": self.settings, "n_layers": self.n_layers,
                "summary": self.summary(), "items": [it.__dict__ | {"samples": list(it.samples)} for it in self.items]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UncertaintyResult:
        items = tuple(ItemUncertainty(**(x | {"samples": tuple(x.get("samples", ()))})) for x in d["items"])
        return cls(items, d.get("settings", {}), int(d.get("n_layers", 0)))

    def save(self, path: str | os.PathLike[str]) -> Path:
        from interp._io import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> UncertaintyResult:
        from interp._io import read_json

        try:
            return cls.from_dict(read_json(path))
        except (KeyError, TypeError, ValueError) as e:
            raise ExplainError(f"{path} is not an uncertainty result file: {e}") from e

    def plot(self, *, bins: int = 10) -> Any:
        """Reliability diagram: accuracy per confidence bin for each measure, with the diagonal."""
        import plotly.graph_objects as go

        y = [it.correct for it in self.items]
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="grey", dash="dot"),
                                 name="perfect calibration"))
        for m in self.measures():
            r = reliability([it.confidence[m] for it in self.items], y, bins=bins)
            pts = [(c, a, n) for c, a, n in zip(r["confidence"], r["accuracy"], r["count"]) if n]
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=m,
                                     text=[f"n={p[2]}" for p in pts]))
        fig.update_layout(title=f"reliability diagram ({self.settings.get('source', '')}, accuracy "
                                f"{self.accuracy:.2f}, n={len(self.items)})", xaxis_title="confidence",
                          yaxis_title="accuracy", xaxis=dict(range=[0, 1]), yaxis=dict(range=[0, 1]))
        return fig


# ---------------------------------------------------------------------------------------------------- compute


def _strings(model: Any) -> list[str]:
    from interp.vocab.cot.generate import _strings

    return _strings(model)


@torch.inference_mode()
def relevance_weights(model: Any, gen: Sequence[int]) -> np.ndarray:
    """SAR-style relevance of each generated token: 1 − cos(h(all), h(all but token t)), h = mean of the final
    normalised residual over the answer run alone (after BOS where the tokenizer has one)."""
    gen = list(gen)
    if len(gen) == 1:
        return np.ones(1)
    tok = getattr(model, "tokenizer", None)
    bos = [] if tok is None or tok.bos_token_id is None else [int(tok.bos_token_id)]
    rows = [bos + gen] + [bos + gen[:t] + gen[t + 1 :] for t in range(len(gen))]

    def emb(seqs: list[list[int]]) -> Tensor:
        _, cache = model.run_with_cache(torch.tensor(seqs), names_filter=lambda n: n == UNEMBED)
        return cache[UNEMBED][:, len(bos):].double().mean(1)

    full = emb(rows[:1])
    loo = emb(rows[1:])
    cos = torch.nn.functional.cosine_similarity(loo, full.expand_as(loo), dim=-1)
    return (1 - cos).clamp_min(0).numpy() + 1e-9


@torch.inference_mode()
def sample_answers(model: Any, prefix: Sequence[int], prompt: Sequence[int], *, k: int, temperature: float,
                   max_new_tokens: int, stop: Callable[[str], bool], seed: int = 0) -> list[str]:
    """``k`` continuations sampled at ``temperature`` (KV-cached where the model supports it)."""
    from interp.vocab.cot.generate import _eos, _supports_cache

    if isinstance(k, bool) or int(k) < 2:
        raise ExplainError(f"consistency needs k >= 2 samples; got k={k!r}")
    t = check_finite("temperature", temperature)
    if t <= 0:
        raise ExplainError(f"temperature must be > 0 for sampling; got {temperature}")
    strings, eos = _strings(model), _eos(model)
    g = torch.Generator().manual_seed(seed)
    seq = torch.tensor([list(prefix) + list(prompt)])
    cached = _supports_cache(model)
    if cached:
        logits, cache = model(seq, return_type="logits_and_cache")
        cache.batch_repeat_interleave(int(k))
        logits = logits[:, -1].expand(int(k), -1)
    else:
        rows = seq.expand(int(k), -1).clone()
        logits = model(rows)[:, -1]
    gens: list[list[int]] = [[] for _ in range(int(k))]
    done = [False] * int(k)
    n = seq.shape[1]
    for step in range(max_new_tokens):
        probs = (logits.float() / t).softmax(-1)
        nxt = torch.multinomial(probs, 1, generator=g)[:, 0]
        for r in range(int(k)):
            if not done[r]:
                gens[r].append(int(nxt[r]))
                text = "".join(strings[i] for i in gens[r])
                done[r] = (eos is not None and int(nxt[r]) == eos) or stop(text)
        if all(done) or step == max_new_tokens - 1:
            break
        if cached:
            mask = torch.ones((int(k), n + step + 1), dtype=torch.long)
            out, cache = model(nxt[:, None], return_type="logits_and_cache", past_key_values=cache,
                               attention_mask=mask, position_ids=torch.full((int(k), 1), n + step))
            logits = out[:, -1]
        else:
            rows = torch.cat([rows, nxt[:, None]], dim=1)
            logits = model(rows)[:, -1]
    return ["".join(strings[i] for i in gen) for gen in gens]


def _token_index(strings: list[str], gen: Sequence[int], char: int) -> int:
    """Index of the generated token that holds character ``char`` of the generated text."""
    c = 0
    for i, t in enumerate(gen):
        c += len(strings[t])
        if c > char:
            return i
    return len(gen) - 1


@torch.inference_mode()
def _lens_layer(model: Any, seq: list[int], pos: int, top: int) -> int:
    """First layer from which ``top`` is the logit-lens top token at every later layer and at the output."""
    n_layers = int(model.cfg.n_layers)
    names = [hook_name("resid_pre", lyr) for lyr in range(n_layers)]
    _, cache = model.run_with_cache(torch.tensor([seq[: pos + 1]]), names_filter=lambda n: n in names)
    resid = torch.stack([cache[nm][0, pos] for nm in names])  # [layer d_model]
    tops = model.unembed(model.ln_final(resid[:, None, :]))[:, 0].argmax(-1).tolist()
    first = n_layers
    for lyr in range(n_layers - 1, -1, -1):
        if tops[lyr] != top:
            break
        first = lyr
    return first


def uncertainty(model: Any, questions: Sequence[Question], *, prefix: Sequence[int] = (), max_new_tokens: int = 6,
                k: int = 0, temperature: float = 0.7, measures: Sequence[str] | None = None, seed: int = 0,
                logit_lens: bool = True, source: str = "", progress: bool = False) -> UncertaintyResult:
    """Answer each question greedily and compute its token, sequence and (``k >= 2``) consistency confidences."""
    from interp.vocab.cot import greedy_generate

    if not questions:
        raise ExplainError("no questions given")
    if k and (isinstance(k, bool) or int(k) < 2):
        raise ExplainError(f"consistency needs k >= 2 samples (or k=0 to skip it); got k={k!r}")
    check_finite("temperature", temperature)
    measures = list(measures or [m for m in MEASURES if k or m != "consistency"])
    for m in measures:
        if m not in MEASURES:
            raise unknown("uncertainty measure", m, MEASURES)
    if "consistency" in measures and not k:
        raise ExplainError("the consistency measure needs k >= 2 samples; pass k")
    prefix = [int(t) for t in prefix]
    strings = _strings(model)
    log_v = math.log(int(model.cfg.d_vocab))
    items = []
    it = list(zip(range(len(questions)), questions))
    if progress:
        from interp.progress import iterate

        it = iterate(it, desc="uncertainty (questions)")
    for i, q in it:
        n_new = max_new_tokens if q.max_new_tokens is None else min(q.max_new_tokens, max_new_tokens)
        gen = greedy_generate(model, [list(q.ids)], prefix=prefix, max_new_tokens=n_new, stop=q.stop)[0]
        toks = list(gen.tokens)
        text = "".join(strings[t] for t in toks)
        pred = q.extract(text)
        correct = pred is not None and abs(pred - q.gold) < 1e-6
        seq = prefix + list(q.ids) + toks
        start = len(prefix) + len(q.ids)
        with torch.inference_mode():
            logits = model(torch.tensor([seq]))[0, start - 1 : len(seq) - 1]
        span = q.answer_span(text)
        # tokens scored: all generated tokens up to the end of the answer number (the whole chain of thought for word
        # problems; the digits for arithmetic)
        n_sc = len(toks) if span is None else _token_index(strings, toks, span[1] - 1) + 1
        tu = token_uncertainty(logits[:n_sc], torch.tensor(toks[:n_sc]))
        lp = tu["logprob"].numpy()
        conf: dict[str, float] = {}
        if "prob_mean" in measures:
            conf["prob_mean"] = float(np.exp(lp).mean())
        if "prob_min" in measures:
            conf["prob_min"] = float(np.exp(lp).min())
        if "prob_geo" in measures:
            conf["prob_geo"] = float(np.exp(lp.mean()))
        if "entropy" in measures:
            conf["entropy"] = float(1 - tu["entropy"].numpy().mean() / log_v)
        if "margin" in measures:
            conf["margin"] = float(tu["margin"].numpy().mean())
        if "relevance" in measures:
            w = relevance_weights(model, toks[:n_sc])
            conf["relevance"] = float(np.exp((w * lp).sum() / w.sum()))
        samples: tuple[float | None, ...] = ()
        if "consistency" in measures:
            outs = sample_answers(model, prefix, q.ids, k=int(k), temperature=temperature,
                                  max_new_tokens=n_new, stop=q.stop, seed=seed + i)
            samples = tuple(q.extract(o) for o in outs)
            conf["consistency"] = float(np.mean([s is not None and pred is not None and abs(s - pred) < 1e-6
                                                 for s in samples]))
        lens = None
        if logit_lens and span is not None:
            j = _token_index(strings, toks, span[0])
            lens = _lens_layer(model, seq, start - 1 + j, toks[j])
        items.append(ItemUncertainty(q.label, q.gold, pred, bool(correct), text, n_sc, conf, lens, samples))
    settings = {"source": source, "n": len(items), "max_new_tokens": max_new_tokens, "k": int(k),
                "temperature": temperature, "measures": measures, "seed": seed, "prefix_tokens": len(prefix)}
    return UncertaintyResult(tuple(items), settings, int(model.cfg.n_layers))
