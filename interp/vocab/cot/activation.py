"""Concept-neuron activation during generation (Rai & Yao's Algorithm one, methods.md §B.1-B.2).

At every generated token and every layer, the neurons are ranked by the scaled coefficient ``|m_i| * ||v_i||`` and
the top ``K`` (20, the paper code's K) are the *dominant sub-updates*. A concept neuron is *activated* at a token
when it is among them. Per concept this module accumulates:

* ``hits_per_token``: activated concept neurons per generated token (how often);
* ``strength_per_token``: the summed scaled coefficient of the activated concept neurons per token (how strongly);
* ``activated``: how many distinct concept neurons were activated at least once (the paper's "number of activated
  neurons"), and ``fraction_activated`` of the concept's neurons.

Totals over concepts are reported as ``"all"``; concept names with a ``@group`` suffix (``"add@dominant"``) are
totalled separately as ``"all@group"``, so two neuron sets can be measured in one generation pass.

`DominantCollector` records the dominant neurons themselves (Algorithm one's output), which can be fed back to
`interp.vocab.concepts.find_concept_neurons(candidates=...)` to restrict the lexicon search as the paper does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from interp.vocab import value_norms
from interp.vocab.cot.data import CotError

__all__ = ["ConceptActivation", "DominantCollector"]


class ConceptActivation:
    """An observer for `interp.vocab.cot.generate.greedy_generate` that counts concept neurons among the top-K."""

    def __init__(self, model: Any, concept_neurons: Mapping[str, Mapping[int, Sequence[int]]], *, top_k: int = 20,
                 n_prompts: int) -> None:
        self.names = list(concept_neurons)
        self.top_k = int(top_k)
        d_mlp = int(model.cfg.d_mlp)
        if not 1 <= self.top_k <= d_mlp:
            raise CotError(f"top_k must lie in 1..d_mlp={d_mlp}; got {top_k}")
        self.norms = value_norms(model)
        n_layers = int(model.cfg.n_layers)
        # member[layer][c, i]: neuron i of layer belongs to concept c
        self.member = torch.zeros(n_layers, len(self.names), d_mlp, dtype=torch.bool)
        self.size = torch.zeros(len(self.names))
        for c, name in enumerate(self.names):
            for layer, idx in concept_neurons[name].items():
                self.member[int(layer), c, list(idx)] = True
            self.size[c] = float(self.member[:, c].sum())
        self.hits = torch.zeros(n_prompts, len(self.names))
        self.strength = torch.zeros(n_prompts, len(self.names))
        self.tokens = torch.zeros(n_prompts)
        self.ever = torch.zeros(n_layers, len(self.names), d_mlp, dtype=torch.bool)
        self._any_members = bool(self.member.any())

    def __call__(self, layer: int, act: Tensor, rows: Tensor) -> None:
        if layer == 0:
            self.tokens[rows] += 1
        if not self._any_members:
            return
        score = act.abs() * self.norms[layer]  # [n d_mlp]
        vals, idx = score.topk(self.top_k, dim=-1)  # [n K]
        mem = self.member[layer][:, idx]  # [C n K]
        self.hits[rows] += mem.sum(-1).T.float()
        self.strength[rows] += (mem * vals).sum(-1).T
        for c in range(len(self.names)):
            hit = idx[mem[c]]
            if hit.numel():
                self.ever[layer, c, hit] = True

    def summary(self, prompts: Sequence[int] | None = None) -> dict[str, dict[str, float]]:
        """Per concept (and ``"all"``): hits and strength per generated token, distinct activated neurons."""
        sel = slice(None) if prompts is None else torch.as_tensor(list(prompts), dtype=torch.long)
        n_tok = float(self.tokens[sel].sum()) or float("nan")
        out: dict[str, dict[str, float]] = {}
        for c, name in enumerate(self.names):
            act = float(self.ever[:, c].sum())
            out[name] = {
                "hits_per_token": float(self.hits[sel, c].sum()) / n_tok,
                "strength_per_token": float(self.strength[sel, c].sum()) / n_tok,
                "activated": act,
                "fraction_activated": act / float(self.size[c]) if self.size[c] else float("nan"),
                "n_neurons": float(self.size[c]),
            }
        groups: dict[str, list[int]] = {}
        for c, name in enumerate(self.names):  # "add@dominant" counts towards "all@dominant", "add" towards "all"
            groups.setdefault("all" + (name[name.index("@"):] if "@" in name else ""), []).append(c)
        for key, cs in groups.items():
            union_size = float(self.member[:, cs].any(1).sum())
            union_act = float(self.ever[:, cs].any(1).sum())
            out[key] = {
                "hits_per_token": float(self.hits[sel][:, cs].sum()) / n_tok,
                "strength_per_token": float(self.strength[sel][:, cs].sum()) / n_tok,
                "activated": union_act,
                "fraction_activated": union_act / union_size if union_size else float("nan"),
                "n_neurons": union_size,
            }
        return out


class DominantCollector:
    """An observer that counts how often each neuron is among the top-K sub-updates (Algorithm one).

    ``counts[(layer, neuron)]`` and ``strength[(layer, neuron)]`` (summed scaled coefficients) are totals;
    ``by_row=True`` also keeps them per prompt (``row_counts[row]``), e.g. to keep only correctly solved problems.
    `activation` turns the totals into the measures of `ConceptActivation` for any neuron set afterwards.
    """

    def __init__(self, model: Any, *, top_k: int = 20, by_row: bool = False) -> None:
        self.top_k = int(top_k)
        self.norms = value_norms(model)
        self.counts: Counter[tuple[int, int]] = Counter()
        self.strength: Counter[tuple[int, int]] = Counter()
        self.row_counts: dict[int, Counter[tuple[int, int]]] = {}
        self.row_tokens: Counter[int] = Counter()
        self.by_row = by_row
        self.n_tokens = 0

    def __call__(self, layer: int, act: Tensor, rows: Tensor) -> None:
        if layer == 0:
            self.n_tokens += len(rows)
            self.row_tokens.update(int(r) for r in rows)
        vals, idx = (act.abs() * self.norms[layer]).topk(self.top_k, dim=-1)
        for r, row_idx, row_vals in zip(rows.tolist(), idx.tolist(), vals.tolist()):
            keys = [(layer, i) for i in row_idx]
            self.counts.update(keys)
            for k, v in zip(keys, row_vals):
                self.strength[k] += v
            if self.by_row:
                self.row_counts.setdefault(r, Counter()).update(keys)

    def neurons(self, min_count: int = 1, rows: Sequence[int] | None = None) -> dict[int, list[int]]:
        """``{layer: [neuron...]}`` of neurons dominant at least ``min_count`` times (over ``rows`` if given)."""
        if rows is None:
            counts = self.counts
        else:
            if not self.by_row:
                raise CotError("per-row neurons need DominantCollector(by_row=True)")
            counts = Counter()
            for r in rows:
                counts.update(self.row_counts.get(int(r), Counter()))
        out: dict[int, list[int]] = {}
        for (layer, n), c in counts.items():
            if c >= min_count:
                out.setdefault(layer, []).append(n)
        return {layer: sorted(v) for layer, v in sorted(out.items())}

    def activation(self, neurons: Mapping[int, Sequence[int]]) -> dict[str, float]:
        """`ConceptActivation`'s measures for one neuron set, from the recorded totals."""
        keys = {(int(layer), int(n)) for layer, idx in neurons.items() for n in idx}
        n_tok = float(self.n_tokens) or float("nan")
        act = sum(1 for k in keys if self.counts.get(k, 0) > 0)
        return {"hits_per_token": sum(self.counts.get(k, 0) for k in keys) / n_tok,
                "strength_per_token": sum(self.strength.get(k, 0.0) for k in keys) / n_tok,
                "activated": float(act), "fraction_activated": act / len(keys) if keys else float("nan"),
                "n_neurons": float(len(keys))}
