"""Task-independent pieces: the task protocol (`Task`, `GridTask`, `require`), tokenization helpers and
`PromptPairs`, the input of every patching method (built by hand with `PromptPairs.from_text` / `from_tokens`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from jaxtyping import Int
from torch import Tensor

from interp.errors import ShapeError, TaskError

__all__ = ["GridTask", "PromptPairs", "Task", "TASK_METHODS", "encode", "get_tokenizer", "require", "run_last_logits"]


@runtime_checkable
class Task(Protocol):
    """What every pipeline needs from a task (docs/tasks.md). `ArithTask`, `IOITask`, `InductionTask` and
    `interp.tasks.custom.PairsTask` implement it; any object with these members works.

    * ``name`` - a short string recorded in every result;
    * ``operators`` - the group names pipelines can select with ``operator=``/``op=`` (arithmetic: the operators;
      ``()`` when the task has no groups);
    * ``pairs(model, *, n_per_op, seed, corrupt_from, split)`` - `PromptPairs`; ``split="discovery"`` and
      ``"evaluation"`` must be disjoint (circuit search ranks on the first and scores faithfulness on the second);
      ``groups`` of the pairs name each pair's operator;
    * ``mean_ablation_tokens(model)`` - ``[n pos]`` reference prompts whose per-position mean activation is the
      mean-ablation value (same length as the pairs).
    """

    @property
    def name(self) -> str: ...

    @property
    def operators(self) -> tuple[str, ...]: ...

    def pairs(self, model: Any, *, n_per_op: int, seed: int = 0, corrupt_from: str = "all",
              split: str = "discovery") -> PromptPairs: ...

    def mean_ablation_tokens(self, model: Any) -> Tensor: ...


@runtime_checkable
class GridTask(Task, Protocol):
    """A `Task` with an operand grid: what the neuron heuristics (classifier, maps, knockouts) need on top.

    * ``lo``/``hi`` - the operand range (the grid's op1 x op2 square);
    * ``prompts(model, op)`` - every prompt of the grid of ``op``: objects with ``a``, ``b``, ``result`` (ints),
      ``tokens`` (tuple of ids), ``answer_tokens`` (tuple) and ``answer_token`` (the metric token);
    * ``correct_prompts(model, op, *, seed=42, limit=None)`` - the prompts the model answers correctly (greedy), in a
      seeded shuffled order.
    """

    lo: int
    hi: int

    def prompts(self, model: Any, op: str) -> list[Any]: ...

    def correct_prompts(self, model: Any, op: str, *, seed: int = 42, limit: int | None = None) -> list[Any]: ...


#: the members each pipeline reads from a task (`require` checks them and names the missing one)
TASK_METHODS: dict[str, tuple[str, ...]] = {
    "pairs": ("name", "pairs"),
    "mean ablation": ("mean_ablation_tokens",),
    "operators": ("name", "operators"),
    "grid": ("name", "operators", "lo", "hi", "prompts"),
    "knockout": ("name", "operators", "prompts", "correct_prompts"),
}


def require(task: Any, pipeline: str, *members: str) -> Any:
    """Raise `TaskError` naming the first member of ``members`` that ``task`` lacks (``pipeline`` needs it)."""
    missing = [m for m in members if not hasattr(task, m)]
    if isinstance(task, str):
        raise TaskError(f"{pipeline} needs a task object, not the string {task!r}; build one with "
                        f"interp.tasks.parse_task({task!r})")
    if missing:
        raise TaskError(
            f"{pipeline} needs the task method/attribute {missing[0]!r}, which {type(task).__name__} does not have"
            f"{' (also missing: ' + ', '.join(missing[1:]) + ')' if missing[1:] else ''}; a task provides name, "
            "operators, pairs(model, ...), mean_ablation_tokens(model) and, for the neuron heuristics, lo, hi, "
            "prompts(model, op), correct_prompts(model, op) - see interp.tasks.Task/GridTask and docs/tasks.md, or "
            "build one with interp.tasks.custom.PairsTask"
        )
    return task


def get_tokenizer(model: Any) -> Any:
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise TaskError(
            "this model has no tokenizer, so text prompts cannot be tokenized for it; give token ids instead "
            "(PromptPairs.from_tokens, PairsTask with id lists, OperandTask rows with id lists) or load it with a "
            "tokenizer (built-ins, HF directories and .gguf files all carry one)"
        )
    return tok


def _backend(tokenizer: Any) -> Any:
    """The `tokenizers.Tokenizer` behind a fast HF tokenizer when calling it directly gives what ``tokenizer(texts,
    add_special_tokens=False)`` gives (no padding or truncation set on it); else None. ~5x faster on 40,000 short
    strings: the wrapper's per-call conversion dominates there."""
    be = getattr(tokenizer, "backend_tokenizer", None)
    if be is None or not hasattr(be, "encode_batch"):
        return None
    try:
        if be.truncation is not None or be.padding is not None:
            return None
    except AttributeError:
        return None
    return be


def encode(tokenizer: Any, texts: Sequence[str], *, prepend_bos: bool,
           offsets: bool = True) -> tuple[list[list[int]], list[list[tuple]]]:
    """Token ids and character offsets of ``texts``, with BOS prepended explicitly (never implicitly).

    ``offsets=False`` skips the offsets (returned as empty lists): about 7x faster on a fast tokenizer, for callers
    that need the ids only."""
    texts = list(texts)
    backend = _backend(tokenizer)
    if backend is not None:  # the fast tokenizer's own batch encoder: what tokenizer(...) calls, without its wrapping
        if offsets or not hasattr(backend, "encode_batch_fast"):
            enc = backend.encode_batch(texts, add_special_tokens=False)
            ids = [e.ids for e in enc]
            offs = [e.offsets for e in enc] if offsets else [[] for _ in ids]
        else:
            ids = [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
            offs = [[] for _ in ids]
    else:
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=offsets)
        ids = enc["input_ids"]
        offs = enc["offset_mapping"] if offsets else [[] for _ in ids]
    if prepend_bos:
        bos = tokenizer.bos_token_id
        if bos is None:
            raise TaskError("prepend_bos=True but the tokenizer has no BOS token; pass prepend_bos=False")
        ids = [[bos, *x] for x in ids]
        offs = [[(0, 0), *o] for o in offs] if offsets else offs
    return ids, offs


@torch.inference_mode()
def run_last_logits(model: Any, tokens: Tensor, *, batch_size: int = 1024) -> Tensor:
    """Logits at the last position, ``[batch d_vocab]``, computed in chunks."""
    outs = []
    for i in range(0, tokens.shape[0], batch_size):
        outs.append(model(tokens[i : i + batch_size])[:, -1, :].float())
    return torch.cat(outs) if outs else torch.empty(0)


@dataclass(frozen=True)
class PromptPairs:
    """Clean/corrupt prompt pairs of equal token length: the input of patching, attribution and ablation.

    ``clean_answers``/``corrupt_answers`` are the first answer token of each prompt (the metric token).
    ``position_labels`` names each token position (``op1``, ``op``, ``op2``, ``=`` for arithmetic).
    ``groups`` tags each pair (the operator for arithmetic) so results can be split by group.
    """

    clean_tokens: Int[Tensor, "batch pos"]
    corrupt_tokens: Int[Tensor, "batch pos"]
    clean_answers: Int[Tensor, " batch"]
    corrupt_answers: Int[Tensor, " batch"]
    position_labels: tuple[str, ...]
    task: str
    clean: tuple[Any, ...] = ()
    corrupt: tuple[Any, ...] = ()
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("clean_tokens", "corrupt_tokens", "clean_answers", "corrupt_answers"):
            x = getattr(self, name)
            if not isinstance(x, Tensor):  # lists, tuples, numpy arrays of ids
                try:
                    x = torch.as_tensor(x)
                except (TypeError, ValueError, RuntimeError) as e:
                    raise ShapeError(f"{name} must be token ids (a tensor, array or list of ints); {e}") from None
            if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
                raise ShapeError(f"{name} must be integer token ids; got dtype {x.dtype}")
            object.__setattr__(self, name, x.long())
        object.__setattr__(self, "position_labels", tuple(self.position_labels))
        c, k = self.clean_tokens, self.corrupt_tokens
        if c.ndim != 2 or k.ndim != 2:
            raise ShapeError(f"clean/corrupt tokens must be [batch pos]; got {tuple(c.shape)} and {tuple(k.shape)}")
        if c.shape != k.shape:
            raise ShapeError(
                f"clean and corrupt tokens differ in shape: clean {tuple(c.shape)} vs corrupt {tuple(k.shape)}; "
                "patching needs pairs of equal token length"
            )
        if c.shape[0] == 0:
            raise ShapeError("no prompt pairs (batch size 0)")
        for name, a in (("clean_answers", self.clean_answers), ("corrupt_answers", self.corrupt_answers)):
            if a.shape != (c.shape[0],):
                raise ShapeError(f"{name} must have shape ({c.shape[0]},); got {tuple(a.shape)}")
        if len(self.position_labels) != c.shape[1]:
            raise ShapeError(f"{len(self.position_labels)} position labels for {c.shape[1]} positions")

    @classmethod
    def from_text(cls, model: Any, clean: Sequence[str], corrupt: Sequence[str], answers: Any,
                  corrupt_answers: Any = None, *, prepend_bos: bool | None = None,
                  position_labels: Sequence[str] | None = None, name: str = "custom",
                  groups: Sequence[str] | None = None, multi_token: str = "error") -> PromptPairs:
        """Pairs from prompt texts, tokenized with the model's tokenizer (see `interp.tasks.build.pairs_from_text`).

        ``answers``/``corrupt_answers``: strings (one token each, or ``multi_token="first"`` to use the first
        token) or token ids, as a list, tuple, numpy array or tensor. ``corrupt_answers=None`` takes the model's
        top-1 token on each corrupt prompt. ``prepend_bos=None`` follows the model (``cfg.default_prepend_bos``).
        """
        from interp.tasks.build import pairs_from_text

        return pairs_from_text(model, clean, corrupt, answers, corrupt_answers, prepend_bos=prepend_bos,
                               position_labels=position_labels, name=name, groups=groups, multi_token=multi_token)

    @classmethod
    def from_tokens(cls, model: Any, clean: Any, corrupt: Any, answers: Any, corrupt_answers: Any = None, *,
                    position_labels: Sequence[str] | None = None, name: str = "custom",
                    groups: Sequence[str] | None = None) -> PromptPairs:
        """Pairs from token ids (lists of lists, arrays or ``[batch pos]`` tensors); works without a tokenizer.
        Every id is checked against ``model.cfg.d_vocab`` before any forward pass."""
        from interp.tasks.build import pairs_from_tokens

        return pairs_from_tokens(model, clean, corrupt, answers, corrupt_answers, position_labels=position_labels,
                                 name=name, groups=groups)

    @property
    def n(self) -> int:
        return int(self.clean_tokens.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.clean_tokens.shape[1])

    def check_vocab(self, model: Any) -> None:
        d_vocab = int(model.cfg.d_vocab)
        for name, t in (("clean", self.clean_tokens), ("corrupt", self.corrupt_tokens)):
            if int(t.max()) >= d_vocab or int(t.min()) < 0:
                raise ShapeError(f"{name} token ids must lie in [0, {d_vocab}); got [{int(t.min())}, {int(t.max())}]")

    def select(self, idx: Sequence[int] | Tensor) -> PromptPairs:
        """The pairs at ``idx`` (a subset, same labels)."""
        idx_t = torch.as_tensor(list(idx) if not isinstance(idx, Tensor) else idx, dtype=torch.long)
        il = idx_t.tolist()
        return PromptPairs(
            clean_tokens=self.clean_tokens[idx_t],
            corrupt_tokens=self.corrupt_tokens[idx_t],
            clean_answers=self.clean_answers[idx_t],
            corrupt_answers=self.corrupt_answers[idx_t],
            position_labels=self.position_labels,
            task=self.task,
            clean=tuple(self.clean[i] for i in il) if self.clean else (),
            corrupt=tuple(self.corrupt[i] for i in il) if self.corrupt else (),
            groups=tuple(self.groups[i] for i in il) if self.groups else (),
        )

    def group_rows(self) -> dict[str, list[int]]:
        """Row indices of each group (e.g. per operator), in first-seen order; ``{"all": every row}`` without
        groups."""
        out: dict[str, list[int]] = {}
        for i, g in enumerate(self.groups or ("all",) * self.n):
            out.setdefault(g, []).append(i)
        return out

    def by_group(self) -> dict[str, PromptPairs]:
        """Split into one `PromptPairs` per group (e.g. per operator), in first-seen order."""
        return {g: self.select(ix) for g, ix in self.group_rows().items()}

    def swapped(self) -> PromptPairs:
        """Corrupt becomes clean and clean becomes corrupt (denoising instead of noising)."""
        return PromptPairs(
            clean_tokens=self.corrupt_tokens,
            corrupt_tokens=self.clean_tokens,
            clean_answers=self.corrupt_answers,
            corrupt_answers=self.clean_answers,
            position_labels=self.position_labels,
            task=self.task,
            clean=self.corrupt,
            corrupt=self.clean,
            groups=self.groups,
        )
