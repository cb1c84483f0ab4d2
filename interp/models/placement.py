"""Where a model's weights go: one device, or a model sharded across several (TransformerLens 4 / accelerate).

`load_model(spec, device=..., dtype=..., device_map=..., n_devices=..., max_memory=...)` hands these to
``TransformerBridge.boot_transformers``, which places the layers with accelerate's big-model dispatch (one process,
consecutive blocks on consecutive devices). `resolve_placement` checks them *before* anything is loaded, so a
device that does not exist, too many devices or a bad dtype fail in milliseconds with a message listing what is
valid, instead of minutes into a 70B download:

* ``device``: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` (must exist here); mutually exclusive with ``device_map``;
* ``device_map``: ``auto`` / ``balanced`` / ``balanced_low_0`` / ``sequential`` (accelerate's strategies), a dict
  ``{module name: device}`` or the path of a JSON file holding one; every device it names must exist; ``disk``
  and ``meta`` targets are refused (compatibility mode folds weights in memory);
* ``n_devices``: split across this many CUDA GPUs (``balanced`` placement); at most the number present;
* ``max_memory``: ``{device: size}`` per-device weight budget for the dispatcher (``{0: "70GiB", 1: "70GiB"}``);
* ``dtype``: ``float32`` (default), ``float16``, ``bfloat16``, ``float64`` (or the ``torch.dtype``).

The cone patching engine checks itself in float32/float64 only; a half-precision model runs its sweeps with full
hooked passes (see docs/scale.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from interp.errors import InterpError, close_matches_hint

__all__ = [
    "DEVICE_MAP_STRATEGIES",
    "DTYPES",
    "DeviceError",
    "Placement",
    "available_devices",
    "parse_dtype",
    "read_device_map",
    "resolve_placement",
]

DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64, "fp64": torch.float64, "double": torch.float64,
}


class DeviceError(InterpError, ValueError):
    """A device, device map, device count, memory budget or dtype that this machine cannot honour."""


def available_devices() -> list[str]:
    """The devices present: ``cpu``, then ``cuda:0 .. cuda:N-1``, then ``mps`` where available."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def _n_cuda() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _present() -> str:
    n = _n_cuda()
    return f"devices present: {', '.join(available_devices())} ({n} CUDA GPU{'s' if n != 1 else ''})"


def normalize_device(value: Any, *, what: str = "device") -> str:
    """``0`` / ``"0"`` / ``"cuda:0"`` / ``"cuda"`` / ``"cpu"`` / ``"mps"`` -> canonical name; raises `DeviceError`
    when the device does not exist on this machine."""
    if isinstance(value, torch.device):
        value = str(value)
    if isinstance(value, bool):
        raise DeviceError(f"{what} {value!r} is not a device; {_present()}")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        idx = int(value)
        name = f"cuda:{idx}"
    elif isinstance(value, str):
        name = value.strip().lower()
        if name == "cuda":
            name = "cuda:0"
    else:
        raise DeviceError(f"{what} {value!r} is not a device name; {_present()}")
    if name in ("disk", "meta"):
        raise DeviceError(
            f"{what} {name!r}: interp keeps every weight in memory (compatibility mode folds weights), so "
            f"'disk' and 'meta' targets are not supported; map the modules to GPUs or 'cpu'. {_present()}"
        )
    if name not in available_devices():
        kind = name.split(":")[0]
        if kind not in ("cpu", "cuda", "mps"):
            raise DeviceError(f"{what} {value!r} is not a device; {close_matches_hint(name, available_devices())}")
        raise DeviceError(f"{what} {value!r} does not exist on this machine; {_present()}")
    return name


def parse_dtype(value: Any) -> torch.dtype:
    """``"bf16"``, ``"float32"``, ``torch.float16`` ... -> the ``torch.dtype``; anything else raises `DeviceError`."""
    if isinstance(value, torch.dtype):
        if value not in DTYPES.values():
            raise DeviceError(f"dtype {value} is not supported; valid: {', '.join(sorted(set(DTYPES)))}")
        return value
    key = str(value).strip().lower().removeprefix("torch.")
    if key not in DTYPES:
        raise DeviceError(f"unknown dtype {value!r}; {close_matches_hint(key, DTYPES)}")
    return DTYPES[key]


def read_device_map(value: str | Mapping[str, Any]) -> str | dict[str, Any]:
    """A strategy name, a dict, or a JSON file path -> a strategy name or ``{module: device}`` dict (unchecked)."""
    if isinstance(value, Mapping):
        return dict(value)
    text = str(value).strip()
    if text in DEVICE_MAP_STRATEGIES:
        return text
    path = Path(text).expanduser()
    if path.suffix.lower() == ".json" or path.exists():
        if not path.is_file():
            raise DeviceError(f"device map file {path} does not exist; pass {', '.join(DEVICE_MAP_STRATEGIES)} "
                              "or a JSON file {\"module.name\": device}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise DeviceError(f"device map file {path} is not valid JSON: {e}") from e
        if not isinstance(data, dict) or not data:
            raise DeviceError(f"device map file {path} must hold a non-empty JSON object "
                              "{\"module.name\": device}, e.g. {\"model.layers.0\": 0, \"lm_head\": 1}")
        return data
    raise DeviceError(f"device map {text!r} is neither a strategy ({', '.join(DEVICE_MAP_STRATEGIES)}) nor an "
                      "existing .json file")


def _check_size(value: Any, device: str) -> int | str:
    from accelerate.utils import convert_file_size_to_int

    try:
        size = convert_file_size_to_int(value)
    except (ValueError, AttributeError, TypeError):
        raise DeviceError(f"max_memory for {device}: {value!r} is not a size; use bytes or e.g. '20GiB', "
                          "'500MB'") from None
    if size <= 0:
        raise DeviceError(f"max_memory for {device} must be positive, got {value!r}")
    return value


@dataclass(frozen=True)
class Placement:
    """Checked placement arguments: the keyword arguments for ``boot_transformers``."""

    device: str | None = "cpu"
    dtype: torch.dtype = torch.float32
    device_map: str | dict[str, Any] | None = None
    n_devices: int | None = None
    max_memory: dict[Any, Any] | None = field(default=None)

    @property
    def sharded(self) -> bool:
        return self.device_map is not None or (self.n_devices or 1) > 1

    def boot_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"dtype": self.dtype}
        if self.sharded:
            if self.device_map is not None:
                kw["device_map"] = self.device_map
            if self.n_devices is not None:
                kw["n_devices"] = self.n_devices
            if self.max_memory is not None:
                kw["max_memory"] = self.max_memory
        else:
            kw["device"] = self.device
        return kw


def resolve_placement(
    *,
    device: Any = None,
    dtype: Any = "float32",
    device_map: str | Mapping[str, Any] | None = None,
    n_devices: int | None = None,
    max_memory: Mapping[Any, Any] | None = None,
) -> Placement:
    """Check placement arguments against the devices present (nothing is loaded); raises `DeviceError`."""
    dt = parse_dtype(dtype)
    if device_map is not None and device is not None:
        raise DeviceError(f"device={device!r} and device_map are mutually exclusive: the map places every module; "
                          "pass one of them")
    if n_devices is not None:
        if isinstance(n_devices, bool) or not isinstance(n_devices, int) or n_devices < 1:
            raise DeviceError(f"n_devices must be a positive integer, got {n_devices!r}")
        if n_devices > 1 and n_devices > _n_cuda():
            raise DeviceError(f"n_devices={n_devices} but this machine has {_n_cuda()} CUDA GPU(s): n_devices counts "
                              f"GPUs (use at most {_n_cuda()}, or device_map for CPU placement); {_present()}")
        if n_devices > 1 and device is not None:
            raise DeviceError(f"device={device!r} and n_devices={n_devices} are mutually exclusive")
    dmap: str | dict[str, Any] | None = None
    if device_map is not None:
        dmap = read_device_map(device_map)
        if isinstance(dmap, dict):
            checked = {}
            for module, dev in dmap.items():
                name = normalize_device(dev, what=f"device map entry {module!r} ->")
                checked[str(module)] = int(name.split(":")[1]) if name.startswith("cuda:") else name
            on = {("gpu" if isinstance(v, int) else v) for v in checked.values()}
            if "gpu" in on and "cpu" in on:
                raise DeviceError("the device map mixes 'cpu' and GPU targets, which TransformerLens 4 refuses "
                                  "(CPU-offloaded modules are unverified with GPUs); map every module to a GPU, or "
                                  "every module to 'cpu'")
            dmap = checked
        if n_devices is not None and n_devices > 1:
            raise DeviceError("pass either device_map or n_devices, not both (n_devices builds a balanced map)")
    mm: dict[Any, Any] | None = None
    if max_memory is not None:
        if not isinstance(max_memory, Mapping) or not max_memory:
            raise DeviceError(f"max_memory must be a non-empty {{device: size}} dict, got {max_memory!r}")
        if dmap is None and (n_devices or 1) <= 1:
            raise DeviceError("max_memory budgets the dispatcher of a sharded model: pass it with device_map or "
                              "n_devices > 1")
        mm = {}
        for dev, size in max_memory.items():
            name = normalize_device(dev, what="max_memory key")
            key = int(name.split(":")[1]) if name.startswith("cuda:") else name
            mm[key] = _check_size(size, name)
    if dmap is None and (n_devices or 1) <= 1:
        return Placement(device=normalize_device(device if device is not None else "cpu"), dtype=dt)
    return Placement(device=None, dtype=dt, device_map=dmap, n_devices=n_devices, max_memory=mm)
