"""Saliency of the question under chain-of-thought prompting (Wu et al. 2023, "Analyzing Chain-of-Thought
Prompting in Large Language Models via Gradient-based Feature Attributions").

For each built-in word problem of `interp.cot` and each exemplar variant (``no_cot`` = answers only, ``full_cot`` and
the other variants), the model answers greedily; then, for each of the first ``max_steps`` generated tokens, the
gradient × input saliency of that token's logit is taken over the whole context and restricted to the **question
tokens** (the test question, not the exemplars). Each step's question saliency |s_t| is normalised to sum 1; the
paper's "more stable" claim is measured as the variance across steps of each question token's share, averaged over
the question tokens (lower = more stable), next to the share of all |saliency| that lands on the question.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.explain._common import ExplainError, encode_prompt
from interp.sites import EMBED

__all__ = ["CotSaliencyResult", "cot_saliency", "step_saliency"]


def step_saliency(model: Any, seq: Sequence[int], positions: Sequence[int], *, batch_size: int = 4) -> np.ndarray:
    """``[len(positions) len(seq)]`` |gradient × input| of the logit of token ``seq[p + 1]`` at position ``p``,
    one row per position (rows batched: each row of a batch differentiates its own target)."""
    seq_t = torch.tensor([list(seq)])
    got: dict[str, torch.Tensor] = {}

    def grab(act: torch.Tensor, hook: Any) -> None:
        got["e"] = act.detach().clone()

    with torch.inference_mode():
        model.run_with_hooks(seq_t, fwd_hooks=[(EMBED, grab)])
    x = got["e"].clone()
    out = np.zeros((len(positions), len(seq)))
    for s in range(0, len(positions), batch_size):
        pos = list(positions[s : s + batch_size])
        b = len(pos)
        emb = x.expand(b, -1, -1).clone().requires_grad_(True)

        def put(act: torch.Tensor, hook: Any, emb: torch.Tensor = emb) -> torch.Tensor:
            return emb.to(act.dtype)

        with torch.enable_grad():
            logits = model.run_with_hooks(seq_t.expand(b, -1), fwd_hooks=[(EMBED, put)])
            tgt = torch.tensor([seq[p + 1] for p in pos])
            score = logits[torch.arange(b), torch.tensor(pos), tgt].sum()
            g = torch.autograd.grad(score, emb)[0]
        out[s : s + b] = (g.double() * x.double()).sum(-1).abs().numpy()
    return out


@dataclass(frozen=True)
class CotSaliencyResult:
    """Per variant: mean question-saliency variance across steps, question share, accuracy; per-problem rows."""

    variants: dict[str, dict[str, Any]]
    problems: tuple[dict[str, Any], ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        s = ", ".join(f"{k} var {v['variance']:.2e}" for k, v in self.variants.items())
        return f"CotSaliencyResult({s})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "cot_saliency", "settings": self.settings, "variants": self.variants,
                "problems": list(self.problems)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        from interp._io import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CotSaliencyResult:
        from interp._io import read_json

        d = read_json(path)
        return cls(d["variants"], tuple(d.get("problems", ())), d.get("settings", {}))

    def plot(self) -> Any:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        names = list(self.variants)
        fig = make_subplots(rows=1, cols=2, subplot_titles=["variance of question-token saliency across steps",
                                                            "share of |saliency| on the question"])
        fig.add_trace(go.Bar(x=names, y=[self.variants[n]["variance"] for n in names], showlegend=False), 1, 1)
        fig.add_trace(go.Bar(x=names, y=[self.variants[n]["question_share"] for n in names], showlegend=False), 1, 2)
        return fig


def cot_saliency(model: Any, *, variants: Sequence[str] = ("no_cot", "full_cot"), n_problems: int = 4,
                 max_new_tokens: int = 48, max_steps: int = 16, batch_size: int = 4, progress: bool = False
                 ) -> CotSaliencyResult:
    """Question-token saliency stability under each exemplar variant on the first ``n_problems`` word problems."""
    from interp.vocab.cot import (
        answer_complete,
        build_prefix,
        build_query,
        extract_answer,
        greedy_generate,
        load_problems,
        load_variants,
    )

    if max_steps < 2:
        raise ExplainError(f"max_steps must be >= 2 (a variance across steps needs two); got {max_steps}")
    vs = load_variants(names=list(variants))
    probs = load_problems(n=n_problems)
    rows = []
    it = [(v, p) for v in vs.values() for p in probs]
    if progress:
        from interp.progress import iterate

        it = iterate(it, desc="cot saliency (problems)")
    for v, p in it:
        prefix_text = build_prefix(v)
        enc = encode_prompt(model, [prefix_text, build_query(v, p.question)], segment_names=["exemplars", "query"])
        gen = greedy_generate(model, [list(enc.ids)], max_new_tokens=max_new_tokens, stop=answer_complete)[0]
        toks = list(gen.tokens)
        pred = extract_answer(gen.text, fallback="last_number")
        seq = list(enc.ids) + toks
        n_steps = min(len(toks), max_steps)
        start = len(enc.ids) - 1
        q_idx = [i for i, s in enumerate(enc.segment_of) if s == 1]
        if n_steps < 2 or not q_idx:
            rows.append({"variant": v.name, "problem": p.id, "steps": n_steps, "variance": None,
                         "question_share": None, "correct": pred is not None and abs(pred - p.answer) < 1e-6})
            continue
        sal = step_saliency(model, seq, range(start, start + n_steps), batch_size=batch_size)
        q = sal[:, q_idx]
        share = q.sum(1) / sal.sum(1).clip(1e-12)
        dist = q / q.sum(1, keepdims=True).clip(1e-12)
        rows.append({"variant": v.name, "problem": p.id, "steps": n_steps, "variance": float(dist.var(0).mean()),
                     "question_share": float(share.mean()),
                     "correct": pred is not None and abs(pred - p.answer) < 1e-6, "text": gen.text})
    summary = {}
    for name in vs:
        rs = [r for r in rows if r["variant"] == name]
        ok = [r for r in rs if r["variance"] is not None]
        summary[name] = {"variance": float(np.mean([r["variance"] for r in ok])) if ok else float("nan"),
                         "question_share": float(np.mean([r["question_share"] for r in ok])) if ok else float("nan"),
                         "accuracy": float(np.mean([r["correct"] for r in rs])), "n": len(rs), "n_scored": len(ok),
                         "mean_steps": float(np.mean([r["steps"] for r in rs]))}
    settings = {"variants": list(vs), "n_problems": len(probs), "max_new_tokens": max_new_tokens,
                "max_steps": max_steps, "method": "|grad x input|"}
    return CotSaliencyResult(summary, tuple(rows), settings)
