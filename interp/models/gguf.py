"""Any ``.gguf`` file -> a Hugging Face model directory (the conversion step of `interp.models.smollm`).

De-quantize with transformers' GGUF support, copy the state dict into a fresh model built from a cleaned config,
check the tokenizer round-trip, save into a temporary directory and rename it into place atomically. Plus the
context managers that keep the hub offline and its progress bars quiet while doing so.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.errors import ModelLoadError

if TYPE_CHECKING:  # pragma: no cover
    pass

log = logging.getLogger(__name__)

_PROVENANCE = "interp_source.json"
_GGUF_MAGIC = b"GGUF"


def _has_complete_model(d: Path) -> bool:
    """A directory holding config, weights and tokenizer (what `_save_hf_dir` writes)."""
    if not d.is_dir():
        return False
    weights = (d / "model.safetensors").is_file() or (d / "model.safetensors.index.json").is_file()
    tokenizer = (d / "tokenizer.json").is_file() and (d / "tokenizer_config.json").is_file()
    return weights and tokenizer and (d / "config.json").is_file() and (d / _PROVENANCE).is_file()


def _check_gguf_file(path: Path) -> None:
    """Raise `ModelLoadError` unless ``path`` is an existing file starting with the GGUF magic bytes."""
    if not path.exists():
        raise ModelLoadError(f"GGUF file not found: {str(path)!r} does not exist")
    if not path.is_file():
        raise ModelLoadError(f"GGUF path {str(path)!r} is not a file")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelLoadError(f"cannot read GGUF file {str(path)!r}: {e}") from e
    if magic != _GGUF_MAGIC:
        raise ModelLoadError(
            f"{str(path)!r} is not a GGUF file: it starts with {magic!r}, expected the magic bytes {_GGUF_MAGIC!r} "
            "(corrupt or truncated download, or a different format such as safetensors)"
        )


def _require_gguf_package() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError(
            "reading .gguf files needs the 'gguf' package, which is not installed: "
            "run `pip install 'interp[gguf]'` (or `pip install gguf`)"
        )


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Make transformers / huggingface_hub refuse network access for the duration (local loads only).

    ``huggingface_hub`` reads ``HF_HUB_OFFLINE`` once at import, so the module constant is patched too.
    """
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved_env = {k: os.environ.get(k) for k in keys}
    constants: Any = None
    saved_const = None
    try:
        import huggingface_hub.constants as constants  # type: ignore[no-redef]

        saved_const = constants.HF_HUB_OFFLINE
    except Exception:  # pragma: no cover - huggingface_hub always ships with transformers
        constants = None
    for k in keys:
        os.environ[k] = "1"
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if constants is not None:
            constants.HF_HUB_OFFLINE = saved_const


@contextlib.contextmanager
def _hf_progress_bars(enabled: bool) -> Iterator[None]:
    """Switch transformers' own tqdm bars (de-quantizing, loading, writing shards) off when ``enabled`` is false."""
    if enabled:
        yield
        return
    import functools

    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    # The GGUF de-quantizer calls tqdm directly, ignoring the switch above.
    gguf_utils: Any = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    if gguf_utils is None:
        with contextlib.suppress(Exception):
            import transformers.modeling_gguf_pytorch_utils as gguf_utils  # type: ignore[no-redef]
    saved_tqdm = getattr(gguf_utils, "tqdm", None)
    if saved_tqdm is not None:
        gguf_utils.tqdm = functools.partial(saved_tqdm, disable=True)
    try:
        yield
    finally:
        if saved_tqdm is not None:
            gguf_utils.tqdm = saved_tqdm
        if was_enabled:
            hf_logging.enable_progress_bar()


def _clean_config(config: Any, expected: dict[str, Any] | None, rope_theta: float | None) -> Any:
    """A config without the GGUF quantization entry; with ``expected`` values enforced (logged when changed)."""
    cfg = config.__class__.from_dict(config.to_dict())
    for attr in ("quantization_config", "_pre_quantization_dtype", "_model_name_or_path"):
        if hasattr(cfg, attr):
            with contextlib.suppress(AttributeError):
                delattr(cfg, attr)
    cfg.name_or_path = ""
    cfg.dtype = "float32"
    for key, want in (expected or {}).items():
        have = getattr(cfg, key, None)
        same = (
            abs(float(have) - float(want)) <= 1e-6 * abs(float(want))
            if isinstance(want, float) and isinstance(have, (int, float))
            else have == want
        )
        if not same:
            log.warning("GGUF-derived config has %s=%r; setting the published value %r", key, have, want)
        setattr(cfg, key, want)  # also normalises float32 round-off (9.99999974e-06 -> 1e-05)
    if rope_theta is not None:
        rope = dict(getattr(cfg, "rope_parameters", None) or {})
        if rope.get("rope_theta") != rope_theta or rope.get("rope_type", "default") != "default":
            log.warning("GGUF-derived config has rope_parameters=%r; setting rope_theta=%r", rope, rope_theta)
        cfg.rope_parameters = {"rope_theta": float(rope_theta), "rope_type": "default"}
    return cfg


def _check_tokenizer_roundtrip(saved_dir: Path, original: Any, expected_special: dict[str, str] | None) -> None:
    """Reload the saved tokenizer and compare its special tokens and a sample encoding with ``original``."""
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(str(saved_dir))
    problems = []
    for attr in ("bos_token", "eos_token", "unk_token", "pad_token", "bos_token_id", "eos_token_id"):
        if getattr(reloaded, attr, None) != getattr(original, attr, None):
            problems.append(f"{attr}: {getattr(original, attr, None)!r} -> {getattr(reloaded, attr, None)!r}")
    for attr, want in (expected_special or {}).items():
        if getattr(reloaded, attr, None) != want:
            problems.append(f"{attr} is {getattr(reloaded, attr, None)!r}, expected {want!r}")
    sample = "When Mary and John went to the store, 12+7=19 <|im_end|>"
    if reloaded(sample).input_ids != original(sample).input_ids:
        problems.append("a sample text encodes differently")
    if len(reloaded) != len(original):
        problems.append(f"vocabulary size {len(original)} -> {len(reloaded)}")
    if problems:
        raise ModelLoadError("the tokenizer did not survive saving: " + "; ".join(problems))


def _convert_gguf(
    gguf_path: Path,
    final_dir: Path,
    *,
    expected: dict[str, Any] | None = None,
    rope_theta: float | None = None,
    expected_special: dict[str, str] | None = None,
    name: str | None = None,
    origin: str | None = None,
    progress: bool = True,
) -> Path:
    """De-quantize ``gguf_path`` into an HF directory at ``final_dir``, built in a temp dir and renamed atomically."""
    _require_gguf_package()
    _check_gguf_file(gguf_path)
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    log.info("de-quantizing %s to float32 (about 15 s for 135M parameters)", gguf_path)
    gdir, gname = str(gguf_path.parent), gguf_path.name
    try:
        with _hub_offline(), _hf_progress_bars(progress):
            tokenizer = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
            gmodel = AutoModelForCausalLM.from_pretrained(
                gdir, gguf_file=gname, dtype=torch.float32, attn_implementation="eager"
            )
    except ModelLoadError:
        raise
    except Exception as e:  # corrupt file, unsupported architecture or quantization type...
        raise ModelLoadError(
            f"transformers could not load GGUF file {str(gguf_path)!r}: {type(e).__name__}: {e}"
        ) from e

    config = _clean_config(gmodel.config, expected, rope_theta)
    model_cls = type(gmodel)  # e.g. LlamaForCausalLM: a fresh, unquantized instance can be saved
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".tmp", dir=final_dir.parent))
    try:
        state = gmodel.state_dict()
        fresh = model_cls(config)
        missing, unexpected = fresh.load_state_dict(state, strict=False)
        missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
        if missing or unexpected:
            raise ModelLoadError(
                f"GGUF weights do not fit {model_cls.__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        fresh.generation_config = gmodel.generation_config
        del gmodel, state
        gc.collect()
        fresh.eval()
        with _hf_progress_bars(progress):
            fresh.save_pretrained(str(tmp_dir))
        if getattr(tokenizer, "model_max_length", 0) > 10**9 and getattr(config, "max_position_embeddings", None):
            tokenizer.model_max_length = int(config.max_position_embeddings)
        tokenizer.save_pretrained(str(tmp_dir))
        _tidy_tokenizer_config(tmp_dir / "tokenizer_config.json")
        _check_tokenizer_roundtrip(tmp_dir, tokenizer, expected_special)
        st = gguf_path.stat()
        provenance = {
            "name": name or gguf_path.stem,
            "source": "gguf",
            "gguf_file": str(gguf_path),
            "origin": origin or str(gguf_path),
            "gguf_size": st.st_size,
            "dequantized_to": "float32",
            "model_class": model_cls.__name__,
            "transformers_version": transformers.__version__,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp_dir / _PROVENANCE).write_text(json.dumps(provenance, indent=1) + "\n", encoding="utf-8")
        del fresh
        gc.collect()
        _fix_permissions(tmp_dir)
        _install_dir(tmp_dir, final_dir)
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(
            f"could not save the de-quantized model to {str(final_dir)!r}: {type(e).__name__}: {e}"
        ) from e
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)
    log.info("built %s in %.1f s", final_dir, time.perf_counter() - t0)
    return final_dir


def _tidy_tokenizer_config(path: Path) -> None:
    """Drop load-time flags the GGUF path leaves in ``tokenizer_config.json`` (``is_local``, ``local_files_only``)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("is_local", "local_files_only", "gguf_file"):
        data.pop(key, None)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _fix_permissions(d: Path) -> None:
    """``mkdtemp`` makes a 0700 directory; give the cache the usual umask-based modes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(d, 0o777 & ~umask)
    for f in d.iterdir():
        if f.is_file():
            os.chmod(f, 0o666 & ~umask)


def _install_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Rename ``tmp_dir`` to ``final_dir``; an incomplete leftover is moved aside first, a complete one wins."""
    if final_dir.exists():
        if _has_complete_model(final_dir):  # another process finished first
            log.info("%s was completed concurrently; keeping it", final_dir)
            return
        trash = final_dir.with_name(f".{final_dir.name}.stale-{os.getpid()}-{time.time_ns()}")
        os.replace(final_dir, trash)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.replace(tmp_dir, final_dir)
    except OSError:
        if not _has_complete_model(final_dir):  # lost a race to an incomplete dir: should not happen
            raise
