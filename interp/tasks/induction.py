"""Induction on repeated random tokens: ``[BOS] A A`` where ``A`` is a random token sequence.

After the first copy of ``A``, a model with induction heads predicts the second copy: at position ``t`` of the
second copy it looks back to the token after the previous occurrence of the current token. `InductionTask` needs no
tokenizer (token ids are drawn from the vocabulary, special tokens excluded when a tokenizer is known):

* `tokens` - the repeated sequences, input of `interp.circuits.heads` (previous-, duplicate-token, induction);
* `loss` - per-position loss on the first and second copy (the "induction bump": much lower loss on the second);
* `pairs` - clean/corrupt pairs for patching: clean ``[BOS] A A[:m]`` (answer ``A[m]``), corrupt ``[BOS] A' A[:m]``
  where ``A'`` differs from ``A`` only at position ``m`` (answer ``A'[m]``), so the two prompts differ only in what
  the induction mechanism should copy. The metric ``logit_diff`` is ``logit(A[m]) - logit(A'[m])``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from interp.errors import TaskError
from interp.tasks.base import PromptPairs

__all__ = ["InductionTask"]


@dataclass(frozen=True)
class InductionTask:
    """Repeated random token sequences (``seq_len`` random tokens, repeated once), ``n_prompts`` of them."""

    seq_len: int = 20
    n_prompts: int = 16
    seed: int = 0
    prepend_bos: bool = True
    token_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.seq_len, bool) or int(self.seq_len) < 2:
            raise TaskError(f"seq_len must be >= 2 random tokens; got {self.seq_len!r}")
        if isinstance(self.n_prompts, bool) or int(self.n_prompts) < 1:
            raise TaskError(f"n_prompts must be >= 1; got {self.n_prompts!r}")

    @classmethod
    def from_spec(cls, spec: str, **overrides: Any) -> InductionTask:
        """``induction``, ``induction:20`` (random tokens per copy), ``induction:20:64`` (and number of prompts)."""
        parts = spec.split(":")
        if parts[0] != "induction" or len(parts) > 3 or not all(p.isdigit() for p in parts[1:] if p):
            raise TaskError(f"task spec {spec!r} is not of the form induction[:SEQ_LEN[:N]] (e.g. induction:20)")
        kwargs: dict[str, Any] = {}
        if len(parts) >= 2 and parts[1]:
            kwargs["seq_len"] = int(parts[1])
        if len(parts) == 3 and parts[2]:
            kwargs["n_prompts"] = int(parts[2])
        for key, default in (("number_mode", "auto"), ("prefix", "")):
            if key in overrides and overrides.pop(key) != default:
                raise TaskError(f"{key!r} applies to arithmetic tasks only, not to {spec!r}")
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def name(self) -> str:
        return f"induction:{self.seq_len}:{self.n_prompts}"

    @property
    def operators(self) -> tuple[str, ...]:
        """No operators (the task protocol's groups; `interp.tasks.Task`): pipelines pool every pair."""
        return ()

    def _pool(self, model: Any) -> Tensor:
        n_ctx = int(getattr(model.cfg, "n_ctx", 0) or 0)
        length = int(self.prepend_bos) + 2 * self.seq_len
        if n_ctx and length > n_ctx:
            raise TaskError(
                f"induction sequences of {length} tokens (BOS + 2 x seq_len={self.seq_len}) exceed the model's "
                f"context of {n_ctx} tokens; use seq_len <= {(n_ctx - int(self.prepend_bos)) // 2} "
                f"(e.g. induction:{max(2, (n_ctx - int(self.prepend_bos)) // 2)})"
            )
        d_vocab = int(model.cfg.d_vocab)
        lo, hi = self.token_range or (0, d_vocab)
        if not 0 <= lo < hi <= d_vocab:
            raise TaskError(f"token_range {self.token_range} must lie within [0, {d_vocab})")
        ids = torch.arange(lo, hi)
        tok = getattr(model, "tokenizer", None)
        special = set(getattr(tok, "all_special_ids", []) or []) if tok is not None else set()
        if tok is not None:
            ids = ids[ids < len(tok)]
        if special:
            ids = ids[~torch.isin(ids, torch.tensor(sorted(special)))]
        if len(ids) < self.seq_len + 1:
            raise TaskError(f"only {len(ids)} usable token ids; seq_len={self.seq_len} needs more")
        return ids

    def _bos(self, model: Any) -> list[int]:
        if not self.prepend_bos:
            return []
        tok = getattr(model, "tokenizer", None)
        bos = getattr(tok, "bos_token_id", None) if tok is not None else None
        if bos is None:
            raise TaskError("prepend_bos=True needs a tokenizer with a BOS token; pass prepend_bos=False")
        return [int(bos)]

    def random_segments(self, model: Any, *, seed: int | None = None) -> Tensor:
        """``[n_prompts seq_len]`` random token ids without repeats inside a sequence (seeded)."""
        pool = self._pool(model)
        g = torch.Generator().manual_seed(self.seed if seed is None else seed)
        return torch.stack([pool[torch.randperm(len(pool), generator=g)[: self.seq_len]]
                            for _ in range(self.n_prompts)])

    def tokens(self, model: Any) -> Tensor:
        """``[n_prompts 1+2*seq_len]`` (or without BOS): each random segment repeated once."""
        seg = self.random_segments(model)
        bos = self._bos(model)
        parts = [torch.full((self.n_prompts, 1), bos[0])] if bos else []
        return torch.cat([*parts, seg, seg], dim=1)

    @torch.inference_mode()
    def loss(self, model: Any) -> dict[str, float]:
        """Mean next-token loss on the first copy and on the second copy (after its first token)."""
        toks = self.tokens(model)
        logp = model(toks).float().log_softmax(-1)
        nll = -logp[:, :-1].gather(-1, toks[:, 1:, None])[..., 0]  # [n pos-1]: loss of predicting token t+1
        off = 1 if self.prepend_bos else 0
        first = nll[:, off : off + self.seq_len - 1]
        second = nll[:, off + self.seq_len :]
        return {"first_copy": float(first.mean()), "second_copy": float(second.mean()),
                "induction_gain": float(first.mean() - second.mean())}

    def mean_ablation_tokens(self, model: Any) -> Tensor:
        """``[n pos]`` reference prompts of mean ablation: clean and corrupt prompts of both splits."""
        parts = [self.pairs(model, split=sp) for sp in ("discovery", "evaluation")]
        return torch.cat([t for p in parts for t in (p.clean_tokens, p.corrupt_tokens)])

    def pairs(self, model: Any, *, n_per_op: int | None = None, seed: int = 0, corrupt_from: str = "all",
              split: str = "discovery") -> PromptPairs:
        """Clean ``[BOS] A A[:m]`` vs corrupt ``[BOS] A' A[:m]`` (``A'[m] != A[m]``), ``m = seq_len // 2``.

        ``n_per_op`` caps the number of pairs; ``seed`` draws the replacement tokens; ``corrupt_from`` is
        accepted for signature compatibility; ``split="evaluation"`` uses fresh random segments.
        """
        seg = self.random_segments(model, seed=self.seed + (1_000_003 if split == "evaluation" else 0))
        if n_per_op is not None:
            seg = seg[: max(1, int(n_per_op))]
        n, m = seg.shape[0], self.seq_len // 2
        pool = self._pool(model)
        g = torch.Generator().manual_seed(seed)
        alt = seg.clone()
        for i in range(n):
            while True:
                t = pool[int(torch.randint(len(pool), (1,), generator=g))]
                if not bool((seg[i] == t).any()):
                    break
            alt[i, m] = t
        bos = self._bos(model)
        head = [torch.full((n, 1), bos[0])] if bos else []
        clean = torch.cat([*head, seg, seg[:, :m]], dim=1)
        corrupt = torch.cat([*head, alt, seg[:, :m]], dim=1)
        labels = (["BOS"] if bos else []) + [f"A{i}" for i in range(self.seq_len)] + [f"A{i}'" for i in range(m)]
        labels[-1] = "end"
        return PromptPairs(clean, corrupt, seg[:, m].clone(), alt[:, m].clone(), tuple(labels), self.name)
