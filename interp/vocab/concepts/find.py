"""Concept neurons: MLP neurons whose value vectors promote a concept's tokens (Rai & Yao, ACL 2024, §B.1).

Algorithm two of the paper projects each candidate neuron's value vector onto the vocabulary (raw ``W_out[n] @
W_U``, no final norm) and keeps its top-20 tokens; a neuron is a *candidate* for a concept when at least 2 of those
tokens (stripped, lower-cased) are in the concept's seed lexicon, and layers 0-5 of Llama2-7B's 32 are skipped.
A judge (GPT-4 in the paper) may then confirm each candidate. Here:

* every neuron of the non-skipped layers is scanned by default (`interp.vocab.scan_values`, under a minute for
  SmolLM2's 46,080 neurons); ``candidates=`` restricts the search to a set of neurons, e.g. the dominant
  sub-updates collected during chain-of-thought generation (the paper's Algorithm one, `interp.vocab.cot`);
* ``skip_layers=None`` skips the paper's share of early layers, ``round(6/32 * n_layers)`` (SmolLM2: 0-5);
* ``min_matches`` (2) and ``top_k`` (20) are the paper's rule; ``judge`` is optional (`interp.vocab.concepts.judge`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp.errors import InterpError, unknown
from interp.vocab.concepts.judge import Judge, call_judge
from interp.vocab.concepts.lexicon import ConceptError, Lexicon, load_lexicon, normalize_token

__all__ = ["ConceptNeuron", "ConceptNeurons", "find_concept_neurons", "default_skip_layers", "PAPER_SKIP_FRACTION"]

PAPER_SKIP_FRACTION = 6 / 32  # Rai & Yao skip layers 0-5 of Llama2-7B's 32


def default_skip_layers(n_layers: int) -> tuple[int, ...]:
    """The paper's share of early layers: ``range(round(6/32 * n_layers))``."""
    return tuple(range(round(PAPER_SKIP_FRACTION * n_layers)))


@dataclass(frozen=True)
class ConceptNeuron:
    """A neuron assigned to a concept, with the lexicon tokens among its top tokens and the judge's verdict."""

    concept: str
    layer: int
    neuron: int
    matches: tuple[str, ...]
    top_tokens: tuple[str, ...]
    judged: bool | None = None  # None: no judge was used

    @property
    def label(self) -> str:
        return f"L{self.layer}N{self.neuron}"

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "index": self.neuron, "matches": list(self.matches),
                "top_tokens": list(self.top_tokens), "judged": self.judged}


@dataclass(frozen=True)
class ConceptNeurons:
    """Concept neurons per concept (every concept of the lexicon is a key, possibly with no neurons)."""

    concepts: dict[str, tuple[ConceptNeuron, ...]]
    model: str = ""
    top_k: int = 20
    min_matches: int = 2
    skip_layers: tuple[int, ...] = ()
    layers: tuple[int, ...] = ()
    n_scanned: int = 0
    norm: str = "raw"
    judge: str | None = None
    n_candidates: dict[str, int] = field(default_factory=dict)
    lexicon: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def __getitem__(self, concept: str) -> tuple[ConceptNeuron, ...]:
        if concept not in self.concepts:
            raise unknown("concept", concept, self.concepts)
        return self.concepts[concept]

    def counts(self) -> dict[str, int]:
        """Number of neurons per concept."""
        return {c: len(v) for c, v in self.concepts.items()}

    def neurons(self, concept: str) -> dict[int, list[int]]:
        """``{layer: [neuron, ...]}`` of one concept."""
        out: dict[int, list[int]] = {}
        for n in self[concept]:
            out.setdefault(n.layer, []).append(n.neuron)
        return {layer: sorted(v) for layer, v in sorted(out.items())}

    def all_neurons(self, concepts: Iterable[str] | None = None) -> dict[int, list[int]]:
        """``{layer: [neuron, ...]}`` of the union over ``concepts`` (all by default)."""
        out: dict[int, set[int]] = {}
        for c in self.concepts if concepts is None else concepts:
            for n in self[c]:
                out.setdefault(n.layer, set()).add(n.neuron)
        return {layer: sorted(v) for layer, v in sorted(out.items())}

    def n_neurons(self, concepts: Iterable[str] | None = None) -> int:
        return sum(len(v) for v in self.all_neurons(concepts).values())

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([{"concept": c, **n.to_dict(), "matches": "|".join(n.matches),
                              "top_tokens": "|".join(n.top_tokens)} for c, v in self.concepts.items() for n in v])

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "top_k": self.top_k, "min_matches": self.min_matches,
            "skip_layers": list(self.skip_layers), "layers": list(self.layers), "n_scanned": self.n_scanned,
            "norm": self.norm, "judge": self.judge, "n_candidates": self.n_candidates, "seconds": self.seconds,
            "counts": self.counts(), "lexicon": self.lexicon,
            "concepts": {c: {"count": len(v), "neurons": [n.to_dict() for n in v]} for c, v in self.concepts.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConceptNeurons:
        concepts = {
            c: tuple(ConceptNeuron(c, int(n["layer"]), int(n["index"]), tuple(n["matches"]), tuple(n["top_tokens"]),
                                   n.get("judged")) for n in entry["neurons"])
            for c, entry in d["concepts"].items()
        }
        return cls(concepts=concepts, model=d.get("model", ""), top_k=int(d.get("top_k", 20)),
                   min_matches=int(d.get("min_matches", 2)), skip_layers=tuple(d.get("skip_layers", ())),
                   layers=tuple(d.get("layers", ())), n_scanned=int(d.get("n_scanned", 0)), norm=d.get("norm", "raw"),
                   judge=d.get("judge"), n_candidates=dict(d.get("n_candidates", {})), lexicon=d.get("lexicon", {}),
                   seconds=float(d.get("seconds", 0.0)))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write JSON atomically (per concept: count and neurons with layer, index and top tokens)."""
        from interp._io import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ConceptNeurons:
        from interp._io import read_json

        try:
            return cls.from_dict(read_json(path))
        except (KeyError, TypeError, ValueError) as e:
            raise ConceptError(f"{path} is not a concept-neuron file: {e}") from e

    def plot(self, *, title: str | None = None) -> Any:
        """Heatmap of neuron counts, concept x layer."""
        from interp.plotting import heatmap

        layers = list(self.layers) or sorted({n.layer for v in self.concepts.values() for n in v})
        z = np.zeros((len(self.concepts), len(layers)))
        for i, v in enumerate(self.concepts.values()):
            for n in v:
                if n.layer in layers:
                    z[i, layers.index(n.layer)] += 1
        return heatmap(z, x=[f"L{x}" for x in layers], y=[f"{c} ({len(v)})" for c, v in self.concepts.items()],
                       title=title or f"Concept neurons per layer ({self.model}, >= {self.min_matches} of top "
                                      f"{self.top_k} tokens in the lexicon)", zlabel="neurons", symmetric=False)


def _check_int(name: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
        raise ConceptError(f"{name} must be an integer in {lo}..{hi}; got {v!r}")
    return int(v)


def find_concept_neurons(
    model: Any,
    *,
    lexicon: Lexicon | None = None,
    concepts: Sequence[str] | None = None,
    top_k: int = 20,
    min_matches: int = 2,
    skip_layers: Sequence[int] | None = None,
    candidates: Any = None,
    judge: Judge | None = None,
    projection: Any = None,
    norm: str = "raw",
    token_strings: Sequence[str] | None = None,
    progress: bool = False,
) -> ConceptNeurons:
    """Neurons with at least ``min_matches`` of their ``top_k`` projected tokens in a concept's lexicon.

    ``candidates`` (``{layer: [neuron...]}`` or (layer, neuron) pairs) restricts the search; ``projection`` reuses
    a `interp.vocab.ValueProjection` (its ``k`` must be >= ``top_k``). With a ``judge``, only candidates it
    answers "yes" for are kept. A model without a tokenizer needs ``token_strings``.
    """
    from interp.vocab import ValueProjection, normalize_neurons, scan_values, vocab_strings

    t0 = time.perf_counter()
    lex = (lexicon if lexicon is not None else load_lexicon()).select(concepts)
    n_layers, d_vocab = int(model.cfg.n_layers), int(model.cfg.d_vocab)
    top_k = _check_int("top_k", top_k, 1, d_vocab)
    min_matches = _check_int("min_matches", min_matches, 1, top_k)
    if judge is not None and not callable(judge):
        raise ConceptError(f"judge must be a callable (tokens, question) -> 'yes'/'no'; got {judge!r}")
    if skip_layers is None:
        skip = default_skip_layers(n_layers)
    else:
        from interp.sites import check_layers

        try:
            skip = tuple(check_layers(model, skip_layers, what="skip_layers", allow_empty=True))
        except InterpError as e:
            raise ConceptError(str(e)) from None
    layers = [x for x in range(n_layers) if x not in skip]
    if not layers:
        raise ConceptError(f"skip_layers={list(skip)} skips every layer of this {n_layers}-layer model")
    allowed = normalize_neurons(model, candidates) if candidates is not None else None
    if allowed is not None:
        layers = [x for x in layers if x in allowed]
    strings = vocab_strings(model, token_strings)  # fails early and clearly without a tokenizer
    if projection is None:
        projection = scan_values(model, layers=layers or [0], k=top_k, norm=norm, bottom=False,
                                 token_strings=strings, progress=progress)
    elif not isinstance(projection, ValueProjection):
        raise ConceptError(
            f"projection must be a ValueProjection from interp.vocab.scan_values; got {type(projection).__name__}")
    else:
        if projection.k < top_k:
            raise ConceptError(f"the given projection holds top-{projection.k} tokens; top_k={top_k} needs more")
        if projection.norm != norm:
            raise ConceptError(f"the given projection uses norm={projection.norm!r}, not {norm!r}")
        missing = [x for x in layers if x not in projection.layers]
        if missing:
            raise ConceptError(f"the given projection lacks layers {missing}; scan them or skip them")

    normalized = np.array([normalize_token(s) for s in strings], dtype=object)
    found: dict[str, list] = {c: [] for c in lex}
    n_candidates: dict[str, int] = dict.fromkeys(lex, 0)
    in_lex = {name: np.fromiter((t in c.tokens for t in normalized), dtype=bool, count=len(normalized))
              for name, c in lex.items()}
    n_scanned = 0
    for layer in layers:
        j = projection.layers.index(layer)
        ids = projection.top_ids[j, :, :top_k]  # [d_mlp top_k]
        rows = np.arange(ids.shape[0]) if allowed is None else np.asarray(allowed[layer], dtype=np.int64)
        n_scanned += len(rows)
        for name, concept in lex.items():
            hits = in_lex[name][ids[rows]].sum(-1)
            for n in rows[hits >= min_matches]:
                toks = tuple(strings[int(i)] for i in ids[n])
                matches = tuple(concept.matches(toks))
                verdict = None
                if judge is not None:
                    verdict = call_judge(judge, toks, concept.question, where=f"neuron L{layer}N{int(n)} ({name})")
                n_candidates[name] += 1
                if verdict is not False:
                    found[name].append(ConceptNeuron(name, layer, int(n), matches, toks, verdict))
    return ConceptNeurons(
        concepts={c: tuple(v) for c, v in found.items()},
        model=projection.model or "", top_k=top_k, min_matches=min_matches, skip_layers=skip, layers=tuple(layers),
        n_scanned=n_scanned, norm=norm, judge=None if judge is None else getattr(judge, "__name__", repr(judge)),
        n_candidates=n_candidates, lexicon=lex.to_dict()["concepts"], seconds=time.perf_counter() - t0,
    )
