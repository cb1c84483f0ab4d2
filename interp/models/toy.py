"""`toy-arith`: a small transformer the project trains on ``BOS a op b =`` -> result, every number one token.

This is the faithful setting for the arithmetic-heuristics method (Nikankin et al., ICLR 2025, methods.md §A):
like Llama-3, whose tokenizer has every integer 0-999 as one token, the toy vocabulary holds the numbers
``0 .. n_numbers-1`` as single tokens, the four operators, ``=``, a BOS and a pad token. Prompts follow the paper's
template ``"{a}{op}{b}="`` with BOS prepended, so the positions are 0 BOS, 1 op1, 2 operator, 3 op2, 4 ``=``.

The module holds the vocabulary/tokenizer, the legal-pair grid (results restricted to single tokens as in the
paper's ``_get_operand_range``), the deterministic train/held-out split, the answer-only training loop used by
``interp train-toy`` and the loader of the shipped weights.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from interp._io import atomic_path, write_json_atomic
from interp.errors import InterpError, ModelLoadError, unknown

__all__ = [
    "OPERATORS",
    "ToyArithConfig",
    "ToyTrainResult",
    "apply_op",
    "legal_pairs",
    "split_pairs",
    "build_toy_tokenizer",
    "train_toy",
    "load_toy",
    "save_toy",
    "evaluate_toy",
    "TOY_DIR",
]

log = logging.getLogger(__name__)

OPERATORS: tuple[str, ...] = ("+", "-", "*", "/")
SPECIALS: tuple[str, ...] = ("+", "-", "*", "/", "=", "<bos>", "<pad>", "<unk>")
TOY_DIR = Path(__file__).resolve().parent / "data" / "toy-arith"


def apply_op(a: int, op: str, b: int) -> int:
    """The ground-truth result; ``/`` is integer division as in the paper (45/4 = 11)."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a // b
    raise unknown("operator", op, OPERATORS)


def legal_pairs(op: str, lo: int, hi: int, max_result: int) -> list[tuple[int, int]]:
    """Every (a, b) with lo <= a, b <= hi whose result is a non-negative single token (<= max_result).

    The paper's rule (App. G): ``-`` needs b <= a, ``/`` needs b >= 1, and the result must be one token.
    """
    out = []
    for a in range(lo, hi + 1):
        for b in range(lo, hi + 1):
            if op == "/" and b == 0:
                continue
            r = apply_op(a, op, b)
            if 0 <= r <= max_result:
                out.append((a, b))
    return out


def split_pairs(pairs: list[tuple[int, int]], held_out_frac: float, seed: int) -> tuple[list, list]:
    """Deterministic (train, held_out) split of a pair list."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(pairs), generator=g).tolist()
    n_held = int(round(len(pairs) * held_out_frac))
    held = sorted(pairs[i] for i in perm[:n_held])
    train = sorted(pairs[i] for i in perm[n_held:])
    return train, held


class ToyConfigError(InterpError, ValueError):
    """A toy-arith setting out of range (``interp train-toy --d-model 0``, a NaN learning rate...)."""


@dataclass(frozen=True)
class ToyArithConfig:
    """Architecture, data and optimisation settings of `toy-arith` (the defaults are the shipped model's)."""

    n_numbers: int = 1000  # numbers 0..n_numbers-1 are single tokens (Llama-3 style)
    operand_max: int = 99  # operands 0..operand_max
    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    act_fn: str = "gelu"
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    held_out_frac: float = 0.2
    seed: int = 0
    op_weights: tuple[float, ...] = (1.0, 1.0, 2.0, 1.0)  # sampling weight per operator (+ - * /)

    def __post_init__(self) -> None:
        bad = []
        for name in ("n_numbers", "n_layers", "d_model", "n_heads", "d_mlp", "steps", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad.append(f"{name} must be an integer >= 1 (got {v!r})")
        if not bad and self.d_model % self.n_heads:
            bad.append(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not (isinstance(self.operand_max, int) and 0 <= self.operand_max < self.n_numbers if isinstance(
                self.n_numbers, int) else False):
            bad.append(f"operand_max must be an integer in 0..n_numbers-1 (got {self.operand_max!r})")
        for name, lo, lo_open in (("lr", 0.0, True), ("weight_decay", 0.0, False), ("grad_clip", 0.0, True)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo or (lo_open and v == lo):
                bad.append(f"{name} must be a finite number {'>' if lo_open else '>='} {lo:g} (got {v!r})")
        if not isinstance(self.held_out_frac, (int, float)) or not 0 <= self.held_out_frac < 1:
            bad.append(f"held_out_frac must be in [0, 1) (got {self.held_out_frac!r})")
        if len(self.op_weights) != len(OPERATORS) or any(not math.isfinite(w) or w < 0 for w in self.op_weights) \
                or not any(w > 0 for w in self.op_weights):
            bad.append(f"op_weights must be {len(OPERATORS)} finite weights >= 0, not all 0 (got {self.op_weights!r})")
        if self.act_fn not in ("gelu", "relu", "silu", "gelu_new"):
            bad.append(f"act_fn must be one of gelu, gelu_new, relu, silu (got {self.act_fn!r})")
        if bad:
            raise ToyConfigError("invalid toy-arith config: " + "; ".join(bad))

    @property
    def d_vocab(self) -> int:
        return self.n_numbers + len(SPECIALS)

    def token_id(self, s: str) -> int:
        if s.isdigit() and int(s) < self.n_numbers:
            return int(s)
        return self.n_numbers + SPECIALS.index(s)

    def bridge_config(self) -> dict[str, Any]:
        return dict(
            d_model=self.d_model,
            d_head=self.d_model // self.n_heads,
            n_heads=self.n_heads,
            n_layers=self.n_layers,
            d_mlp=self.d_mlp,
            d_vocab=self.d_vocab,
            n_ctx=16,
            act_fn=self.act_fn,
            normalization_type="LN",
            positional_embedding_type="standard",
            seed=self.seed,
            default_prepend_bos=True,
        )

    def pairs(self, op: str) -> list[tuple[int, int]]:
        return legal_pairs(op, 0, self.operand_max, self.n_numbers - 1)

    def split(self, op: str) -> tuple[list, list]:
        return split_pairs(self.pairs(op), self.held_out_frac, self.seed + 1 + OPERATORS.index(op))


def build_toy_tokenizer(n_numbers: int, directory: str | os.PathLike[str], *, digits_per_token: int = 3) -> Any:
    """Write an HF fast tokenizer for the toy vocabulary to ``directory`` and load it back.

    Numbers ``0..n_numbers-1`` have token id == value; a digit run is split in chunks of three digits (as Llama-3
    does), so numbers >= n_numbers become several tokens and the single-token check of `interp.tasks` sees it.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {str(i): i for i in range(n_numbers)}
    for j, s in enumerate(SPECIALS):
        vocab[s] = n_numbers + j
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(rf"\d{{1,{digits_per_token}}}|[^\d]"), behavior="isolated"),
        ]
    )
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    tk.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<bos>", pad_token="<pad>", unk_token="<unk>"
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(directory))
    return AutoTokenizer.from_pretrained(str(directory))


# --------------------------------------------------------------------------------------------------------------
# training


def _native_model(cfg: ToyArithConfig) -> torch.nn.Module:
    from transformer_lens import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources.native import NativeModel, initialize_native_model

    bcfg = TransformerBridgeConfig(**cfg.bridge_config())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = NativeModel(bcfg)
        initialize_native_model(model, bcfg)
    return model


def _prompt_tensor(cfg: ToyArithConfig, op: str, pairs: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    bos, eq, op_id = cfg.token_id("<bos>"), cfg.token_id("="), cfg.token_id(op)
    p = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)
    n = p.shape[0]
    toks = torch.stack(
        [torch.full((n,), bos), p[:, 0], torch.full((n,), op_id), p[:, 1], torch.full((n,), eq)], dim=1
    )
    answers = torch.tensor([apply_op(a, op, b) for a, b in pairs], dtype=torch.long)
    return toks, answers


@dataclass
class ToyTrainResult:
    """What `train_toy` returns: the model's state, its config, the held-out accuracy and the loss curve."""

    config: ToyArithConfig
    state_dict: dict[str, torch.Tensor]
    held_out_accuracy: dict[str, float]
    train_accuracy: dict[str, float]
    losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    checkpoints: list[str] = field(default_factory=list)


@torch.no_grad()
def _accuracy(model: torch.nn.Module, toks: torch.Tensor, answers: torch.Tensor) -> float:
    if len(answers) == 0:
        return float("nan")
    correct = 0
    for i in range(0, len(answers), 4096):
        logits = model(toks[i : i + 4096])[:, -1, :]
        correct += int((logits.argmax(-1) == answers[i : i + 4096]).sum())
    return correct / len(answers)


def train_toy(
    cfg: ToyArithConfig = ToyArithConfig(),
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 0,
    progress: bool = True,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    device: str = "cpu",
) -> ToyTrainResult:
    """Train `toy-arith` deterministically with an answer-only loss (cross-entropy on the result token only).

    AdamW with a one-cycle learning-rate schedule and gradient clipping (Adam spikes otherwise, platform.md).
    Batches are drawn from the training pairs with operator weights ``cfg.op_weights`` (× has the fewest pairs).
    With ``checkpoint_dir`` and ``checkpoint_every``, intermediate models are saved as loadable model directories
    ``step_{N}`` (for training-dynamics studies). ``device`` (``cpu``, ``cuda``, ``cuda:N``, ``mps``; checked
    with `interp.models.placement.normalize_device`) is where the model and the data live during training; the
    batch sampling stays on the CPU generator, so the same batches are drawn on every device (the arithmetic of an
    accelerator may still differ in the last bits). Saved weights are always CPU tensors.
    """
    from interp.models.placement import normalize_device
    from interp.progress import bar as progress_bar

    device = normalize_device(device)
    t0 = time.time()
    model = _native_model(cfg).to(device)
    model.train()
    g = torch.Generator().manual_seed(cfg.seed)
    train_sets, held_sets = {}, {}
    for op in OPERATORS:
        tr, ho = cfg.split(op)
        train_sets[op] = tuple(t.to(device) for t in _prompt_tensor(cfg, op, tr))  # type: ignore[assignment]
        held_sets[op] = tuple(t.to(device) for t in _prompt_tensor(cfg, op, ho))  # type: ignore[assignment]
    all_toks = torch.cat([train_sets[op][0] for op in OPERATORS])
    all_ans = torch.cat([train_sets[op][1] for op in OPERATORS])
    weights = torch.cat(
        [torch.full((len(train_sets[op][1]),), w / len(train_sets[op][1])) for op, w in zip(OPERATORS, cfg.op_weights)]
    )  # on the CPU: torch.multinomial with the CPU generator draws the same batches on every device
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    losses: list[tuple[int, float]] = []
    checkpoints: list[str] = []
    bar = progress_bar(cfg.steps, desc="train toy-arith", enabled=progress)
    for step in range(cfg.steps):
        bar.update(1)
        idx = torch.multinomial(weights, cfg.batch_size, replacement=True, generator=g).to(device)
        logits = model(all_toks[idx])[:, -1, :]
        loss = torch.nn.functional.cross_entropy(logits, all_ans[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == cfg.steps - 1:
            losses.append((step, float(loss.detach())))
            bar.set_postfix_str(f"loss={losses[-1][1]:.3f}")
        if checkpoint_dir is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
            model.eval()
            path = Path(checkpoint_dir) / f"step_{step + 1}"
            save_toy(cfg, {k: v.detach().cpu() for k, v in model.state_dict().items()}, path, meta={"step": step + 1})
            checkpoints.append(str(path))
            if on_eval is not None:
                on_eval(step + 1, {op: _accuracy(model, *held_sets[op]) for op in OPERATORS})
            model.train()
    bar.close()
    model.eval()
    held = {op: _accuracy(model, *held_sets[op]) for op in OPERATORS}
    train = {op: _accuracy(model, *train_sets[op]) for op in OPERATORS}
    return ToyTrainResult(
        config=cfg,
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        held_out_accuracy=held,
        train_accuracy=train,
        losses=losses,
        seconds=time.time() - t0,
        checkpoints=checkpoints,
    )


# --------------------------------------------------------------------------------------------------------------
# saving and loading


def save_toy(
    cfg: ToyArithConfig,
    state_dict: dict[str, torch.Tensor],
    directory: str | os.PathLike[str],
    *,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a loadable toy model directory: ``model.safetensors``, ``config.json``, tokenizer files."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(tmp))
    conf = asdict(cfg)
    conf["op_weights"] = list(cfg.op_weights)
    write_json_atomic(directory / "config.json", {"interp_toy_arith": conf, "meta": meta or {}})
    build_toy_tokenizer(cfg.n_numbers, directory)
    return directory


def read_toy_config(directory: str | os.PathLike[str]) -> tuple[ToyArithConfig, dict[str, Any]]:
    path = Path(directory) / "config.json"
    if not path.exists():
        raise ModelLoadError(f"{directory} is not a toy-arith model directory (no config.json)")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:  # ValueError: invalid JSON or not UTF-8
        raise ModelLoadError(f"{path} cannot be read as a toy-arith config: {type(e).__name__}: {e}") from e
    if not isinstance(raw, dict) or not isinstance(raw.get("interp_toy_arith"), dict):
        raise ModelLoadError(f"{path} is not a toy-arith config (no 'interp_toy_arith' object)")
    conf = dict(raw["interp_toy_arith"])
    conf["op_weights"] = tuple(conf.get("op_weights", (1.0, 1.0, 1.0, 1.0)))
    try:
        return ToyArithConfig(**conf), raw.get("meta", {})
    except (TypeError, ToyConfigError) as e:
        raise ModelLoadError(f"{path} holds an invalid toy-arith config: {e}") from e


def load_toy(directory: str | os.PathLike[str] = TOY_DIR, *, device: str = "cpu") -> Any:
    """Load a toy model directory as a TransformerBridge in compatibility mode."""
    from safetensors.torch import load_file
    from transformer_lens import TransformerBridgeConfig
    from transformers import AutoTokenizer

    directory = Path(directory)
    cfg, _ = read_toy_config(directory)
    weights = directory / "model.safetensors"
    if not weights.exists():
        raise ModelLoadError(f"{directory} has no model.safetensors; run `interp train-toy --out {directory}`")
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module

    try:
        tok = AutoTokenizer.from_pretrained(str(directory))
    except Exception as e:  # missing or damaged tokenizer files
        raise ModelLoadError(f"cannot read the tokenizer files in {directory}: {type(e).__name__}: {e}") from e
    native = _native_model(cfg)
    try:
        native.load_state_dict(load_file(str(weights)))
    except Exception as e:  # truncated/damaged safetensors, or weights of another architecture
        raise ModelLoadError(f"{weights} cannot be loaded (damaged or truncated file, or weights that do not match "
                             f"its config.json): {type(e).__name__}: {str(e)[:300]}") from e
    bcfg = TransformerBridgeConfig(**cfg.bridge_config())
    native.to(device)
    bridge = build_bridge_from_module(
        native, architecture="TransformerLensNative", tl_config=bcfg, tokenizer=tok, device=device,
        model_name="toy-arith",
    )
    bridge.enable_compatibility_mode()
    bridge.eval()
    return bridge


def evaluate_toy(cfg: ToyArithConfig, state_dict: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Held-out and training accuracy per operator of a toy model state (greedy, last position)."""
    model = _native_model(cfg)
    model.load_state_dict(state_dict)
    model.eval()
    out: dict[str, dict[str, float]] = {"held_out": {}, "train": {}}
    for op in OPERATORS:
        tr, ho = cfg.split(op)
        out["held_out"][op] = _accuracy(model, *_prompt_tensor(cfg, op, ho))
        out["train"][op] = _accuracy(model, *_prompt_tensor(cfg, op, tr))
    return out


def _fmt_acc(acc: dict[str, float]) -> str:
    return ", ".join(f"{op} {100 * a:.1f}%" for op, a in acc.items() if not math.isnan(a))
