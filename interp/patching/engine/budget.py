"""Memory budgets of the cone engine: ``max_memory`` sizes (``"2GB"``, ``"auto"``) and the memory free on a device."""

from __future__ import annotations

import math
import os
import re
from typing import Any

import torch

from interp.errors import ShapeError

__all__ = ["AUTO_FRACTION", "AUTO_MIN_BYTES", "auto_budget", "available_bytes", "format_bytes", "parse_bytes"]

MAX_BYTES = 10**15  # 1 PB: a larger budget is a typo (1e999, inf), not a machine
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


AUTO_MIN_BYTES = 10**9
AUTO_FRACTION = 0.4


def available_bytes(device: Any = "cpu") -> int | None:
    """Memory free now on ``device`` (CUDA: ``mem_get_info``; CPU: ``MemAvailable``), or None if unknown."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(dev)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def auto_budget(device: Any = "cpu") -> int:
    """``max_memory="auto"``: 40% of the memory free now on ``device``, at least 1 GB."""
    free = available_bytes(device)
    return AUTO_MIN_BYTES if free is None else max(AUTO_MIN_BYTES, int(free * AUTO_FRACTION))


def parse_bytes(value: int | float | str, device: Any = "cpu") -> int:
    """``2_000_000``, ``"2GB"``, ``"512 MiB"``, ``"1.5e9"`` -> bytes; ``"auto"`` -> `auto_budget` of ``device``."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return auto_budget(device)
    valid = "use a positive number of bytes, 'auto' or a size like '512MB', '2GB', '1GiB'"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 1 or value > MAX_BYTES:
            raise ShapeError(f"max_memory {value!r} is not a usable size; {valid} (at most 1 PB)")
        return int(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value), flags=re.IGNORECASE)
    if not m or m.group(2).lower() not in _UNITS:
        raise ShapeError(f"max_memory {value!r} is not a size; {valid}")
    size = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not math.isfinite(size) or size < 1 or size > MAX_BYTES:
        raise ShapeError(f"max_memory {value!r} is not a usable size (at least 1 byte, at most 1 PB); {valid}")
    return int(size)


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover
