"""A Hugging Face causal LM behind nnsight, shaped like the bridge where `interp` reads a model.

`load_nnsight(spec)` resolves ``spec`` the way `interp.models.load_model` does (``smollm2-135m``, a local HF
directory, a ``.gguf`` file, a hub id) and wraps nnsight's ``TransformersModel`` in an `NNsightModel` with what the
tasks and the patching front end read: ``cfg`` (``n_layers``, ``d_model``, ``n_heads``, ``d_head``, ``d_mlp``,
``d_vocab`` ...), ``tokenizer`` and ``model(tokens) -> logits [batch pos d_vocab]``.

Two conventions make its numbers line up with a compatibility-mode bridge:

* the weights are the raw Hugging Face weights (no LayerNorm folding or weight centring). Folding and centring do not
  change the function, so every patching effect, metric and probability is the same; raw activations are not (a
  bridge's ``hook_resid_pre`` is centred, a Hugging Face hidden state is not) and are never compared;
* logits are centred over the vocabulary (``logits - logits.mean(-1)``), which is what the bridge's
  ``center_unembed`` computes. Softmax and logit differences ignore the shift; ``ie_logits`` (Eq. 1 on raw logits)
  does not, and with centring it equals the bridge's value.

Attention runs in eager mode, as the bridge forces it (SDPA reorders the softmax and drifts by ~1e-3 in float32).

Remote execution (``remote=True``) sends the same traces to NDIF. The API key comes from ``$NDIF_API_KEY`` or
nnsight's own configuration (``nnsight.CONFIG.set_default_api_key(key)``, ``~/.config/nnsight/config.yaml``), the
host from ``$NDIF_HOST`` or that configuration. `check_remote` fails within seconds, naming the local options,
when there is no key or the host cannot be reached; nothing is loaded before it passes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import types
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor

from interp.backends import require_nnsight
from interp.errors import ModelLoadError

__all__ = ["NNsightModel", "RemoteUnavailable", "LOCAL_OPTIONS", "check_remote", "load_nnsight", "ndif_settings"]

log = logging.getLogger(__name__)

# Hugging Face model types whose module tree is model.layers[i].{self_attn.o_proj, mlp.down_proj}, lm_head
LLAMA_LAYOUT = ("llama", "mistral", "qwen2", "qwen3")
REMOTE_TIMEOUT_S = 5.0
LOCAL_OPTIONS = (
    "local options: run the same traces on this machine with --backend nnsight and no --remote "
    "(load_model(spec, backend='nnsight')); use the TransformerLens bridge and its cone engine with "
    "--backend bridge (the default); or shard the bridge across local GPUs with --device-map auto|balanced|FILE.json "
    "or --n-devices N"
)


class RemoteUnavailable(ModelLoadError):
    """NDIF cannot be used from here (no API key, host unreachable)."""


def ndif_settings() -> tuple[str, str | None]:
    """NDIF host and API key: ``$NDIF_HOST`` / ``$NDIF_API_KEY`` first, then nnsight's configuration."""
    host, key = os.environ.get("NDIF_HOST"), os.environ.get("NDIF_API_KEY")
    if not host or not key:
        from nnsight.schema.config import CONFIG

        host = host or CONFIG.API.HOST
        key = key or CONFIG.API.APIKEY
    return str(host), (str(key) if key else None)


def check_remote(timeout: float = REMOTE_TIMEOUT_S) -> str:
    """Raise `RemoteUnavailable` (naming the local options) unless NDIF is configured and answers a TCP connect
    within ``timeout`` seconds; returns the host."""
    require_nnsight("--remote (NDIF execution)")
    host, key = ndif_settings()
    if not key:
        raise RemoteUnavailable(
            "remote execution on NDIF needs an API key: set $NDIF_API_KEY or run "
            "`python -c \"import nnsight; nnsight.CONFIG.set_default_api_key('KEY')\"` (keys: https://login.ndif.us). "
            + LOCAL_OPTIONS
        )
    url = urlparse(host if "://" in host else f"https://{host}")
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            pass
    except OSError as e:
        raise RemoteUnavailable(f"NDIF at {host} is not reachable from this machine ({type(e).__name__}: {e}); "
                                f"{LOCAL_OPTIONS}") from None
    return host


class NNsightModel:
    """nnsight's ``TransformersModel`` with the attributes `interp` reads (see the module docstring).

    ``nn`` is the nnsight model; ``remote`` whether its traces go to NDIF; ``layout`` the module layout family.
    """

    training = False

    def __init__(self, nn: Any, *, name: str, remote: bool | str = False) -> None:
        hf = nn.config
        model_type = str(getattr(hf, "model_type", ""))
        if model_type not in LLAMA_LAYOUT:
            raise ModelLoadError(
                f"the nnsight backend handles Llama-layout models ({', '.join(LLAMA_LAYOUT)}), not {model_type!r}; "
                "load it as a TransformerLens bridge (backend='bridge')"
            )
        n_heads = int(hf.num_attention_heads)
        d_model = int(hf.hidden_size)
        self.nn = nn
        self.remote = remote
        self.layout = "llama"
        self.tokenizer = nn.tokenizer
        self.interp_name = name
        self.cfg = types.SimpleNamespace(
            model_name=name,
            architecture=type(nn._module).__name__ if hasattr(nn, "_module") else "",
            n_layers=int(hf.num_hidden_layers),
            d_model=d_model,
            n_heads=n_heads,
            d_head=int(getattr(hf, "head_dim", None) or d_model // n_heads),
            n_key_value_heads=int(getattr(hf, "num_key_value_heads", None) or n_heads),
            d_mlp=int(hf.intermediate_size),
            d_vocab=int(hf.vocab_size),
            d_vocab_out=int(hf.vocab_size),
            n_ctx=int(getattr(hf, "max_position_embeddings", 0) or 0),
            gated_mlp=True,
            device=str(self.device),
            dtype=self.dtype,
        )

    @property
    def device(self) -> torch.device:
        if self.remote:
            return torch.device("cpu")
        try:
            return next(self.nn._module.parameters()).device
        except (StopIteration, AttributeError):
            return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        try:
            return next(self.nn._module.parameters()).dtype
        except (StopIteration, AttributeError):
            return torch.float32

    def eval(self) -> NNsightModel:
        return self

    def __repr__(self) -> str:
        where = "NDIF" if self.remote is True else ("local simulation of NDIF" if self.remote else str(self.device))
        return f"NNsightModel({self.interp_name!r}, {self.cfg.n_layers} layers, on {where})"

    @torch.inference_mode()
    def __call__(self, tokens: Tensor) -> Tensor:
        """Logits ``[batch pos d_vocab]`` of every position, centred over the vocabulary (one trace)."""
        with self.nn.trace(tokens, remote=self.remote):
            logits = self.nn.lm_head.output
            out = (logits - logits.mean(-1, keepdim=True)).save()
        return out.float()


def _hf_dir(spec: str) -> str:
    """The Hugging Face directory (or hub id) behind ``spec``, as `interp.models.load_model` resolves it."""
    from interp.models import BUILTINS

    if spec == "smollm2-135m":
        from interp.models.smollm import ensure_smollm2_hf_dir

        return str(ensure_smollm2_hf_dir())
    if spec in BUILTINS:
        raise ModelLoadError(f"{spec!r} is a TransformerLens-native model, not a Hugging Face model; the nnsight "
                             "backend needs a Hugging Face causal LM (use backend='bridge' for it)")
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        from interp.models.smollm import ensure_gguf_hf_dir

        if not path.exists():
            raise ModelLoadError(f"GGUF file {path} does not exist")
        return str(ensure_gguf_hf_dir(path))
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{path} has no config.json; it is not a Hugging Face model directory")
        from interp._io import read_json

        if "interp_toy_arith" in read_json(path / "config.json"):
            raise ModelLoadError(f"{path} is a toy-arith model (TransformerLens-native); use backend='bridge'")
        return str(path)
    return spec


def load_nnsight(spec: str, *, remote: bool | str = False, device: Any = None, dtype: Any = "float32",
                 device_map: Any = None, n_devices: int | None = None, max_memory: Any = None) -> NNsightModel:
    """``spec`` as an `NNsightModel`: loaded here (``device``/``device_map``, as `load_model` checks them), or,
    with ``remote=True``, a weightless shell whose traces run on NDIF (checked first by `check_remote`).
    ``remote="local"`` runs nnsight's serialise-and-execute simulation of the remote path on this machine."""
    from interp.models.placement import resolve_placement

    require_nnsight()
    if remote is True:
        check_remote()
    elif remote not in (False, "local"):
        raise ModelLoadError(f"remote must be True, False or 'local', got {remote!r}")
    placement = resolve_placement(device=device, dtype=dtype, device_map=device_map, n_devices=n_devices,
                                  max_memory=max_memory)
    source = _hf_dir(spec) if remote is not True else spec
    from interp.models.smollm import _hub_offline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from nnsight import TransformersModel

        kw: dict[str, Any] = {"task": "text-generation", "attn_implementation": "eager", "dtype": placement.dtype}
        offline = contextlib.nullcontext() if remote is True or not Path(source).is_dir() else _hub_offline()
        try:
            with offline:
                if remote is True:  # NDIF runs its deployment (dtype, attention kernel); only the task is ours
                    nn = TransformersModel(source, task="text-generation")
                else:
                    if placement.sharded:
                        kw["device_map"] = placement.device_map or "balanced"
                        if placement.max_memory is not None:
                            kw["max_memory"] = placement.max_memory
                        elif placement.n_devices:  # exactly n GPUs, as TransformerLens does for n_devices
                            kw["max_memory"] = {i: torch.cuda.mem_get_info(i)[0] for i in range(placement.n_devices)}
                    else:
                        kw["device_map"] = placement.device
                    nn = TransformersModel(source, dispatch=True, **kw)
        except Exception as e:  # transformers/nnsight raise many types; name the model
            raise ModelLoadError(f"nnsight could not load {spec!r} ({source}): {type(e).__name__}: {e}") from e
    model = NNsightModel(nn, name=spec, remote=remote)
    log.info("loaded %r", model)
    return model
