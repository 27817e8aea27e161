"""Atomic, deterministic file writers shared by every phase.

Every output goes through :func:`atomic_path`: the data is written to a temporary file in the same
folder and renamed over the target with ``os.replace``, so an interrupted run leaves either the
complete old file, the complete new one, or nothing; never half a file. Writers are deterministic:
the same data gives the same bytes (no timestamps, sorted JSON where order does not matter,
matplotlib's PNG metadata removed).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from common.paths import REPO_ROOT

TMP_SUFFIX = ".tmp"
LOCK_NAME = ".lock"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class InputError(ValueError):
    """An input file that cannot be used (missing, empty, truncated, not of its format, a needed
    column absent). The message names the file, what is wrong and the step that remakes it; the
    scripts' entry point turns it into one line and exit status 2."""


class LockHeld(RuntimeError):
    """Another process holds the lock of a data folder's step (see :func:`folder_lock`)."""


def _producer_hint(producer: str | None) -> str:
    return f": run {producer} again" if producer else ""


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _with_columns(frame: pd.DataFrame, path: Path, producer: str | None, required: tuple[str, ...] | list[str]
                  ) -> pd.DataFrame:
    """``frame``, or InputError naming the first ``required`` column it lacks."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: column {missing[0]!r} missing (it has {', '.join(map(str, frame.columns[:12]))})"
                         f"{_producer_hint(producer)}")
    return frame


def read_parquet(path: Path, producer: str | None = None, *, columns: list[str] | None = None,
                 required: tuple[str, ...] | list[str] = (), **kwargs: Any) -> pd.DataFrame:
    """Read a parquet file, or raise :class:`InputError` naming the file, the fault and ``producer``
    (the script that writes it): missing, empty, truncated or corrupt, or without a ``required`` column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"missing input {path}{_producer_hint(producer)}")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes){_producer_hint(producer)}")
    import pyarrow as pa

    try:
        frame = pd.read_parquet(path, engine="pyarrow", columns=columns, **kwargs)
    except (pa.ArrowException, OSError, ValueError) as exc:
        if isinstance(exc, KeyError) or "No match for FieldRef" in str(exc):
            raise InputError(f"{path}: {exc}{_producer_hint(producer)}") from None
        raise InputError(f"{path} is not a readable parquet file ({_first_line(exc)}){_producer_hint(producer)}") \
            from None
    return _with_columns(frame, path, producer, required)


def read_csv(path: Path, producer: str | None = None, *, required: tuple[str, ...] | list[str] = (),
             **kwargs: Any) -> pd.DataFrame:
    """Read a CSV file, or raise :class:`InputError` naming the file, the fault and ``producer``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"missing input {path}{_producer_hint(producer)}")
    try:
        frame = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty{_producer_hint(producer)}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path} is not a readable CSV file ({_first_line(exc)}){_producer_hint(producer)}") from None
    return _with_columns(frame, path, producer, required)


@contextlib.contextmanager
def folder_lock(folder: Path, what: str) -> Iterator[Path]:
    """Hold the exclusive lock of a data folder for one step (``what``, e.g. "phase 6 NC").

    One lock per folder, whichever step takes it: steps that write the same folder (and clean its
    temporaries) never run at once. The lock is an ``flock`` on ``<folder>/.lock``: the kernel
    releases it when the process dies, so a killed run never leaves a stale lock. A second process
    gets :class:`LockHeld` at once (no waiting) naming the holder's step and pid, which the file holds
    while the lock is held (it is emptied on release, so a folder at rest is the same after every run).
    """
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            handle.seek(0)
            holder, _, pid = handle.read().strip().partition("\n")
            holder = holder or "another step"
            raise LockHeld(f"{holder} is already running on {folder}{f' (pid {pid})' if pid else ''}, so {what} cannot "
                           "start: wait for it to finish, or use another --data-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{what}\n{os.getpid()}")
        handle.flush()
        try:
            yield path
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
    finally:
        handle.close()


@contextlib.contextmanager
def exclusive_step(folder: Path, what: str, *, recursive: bool = False) -> Iterator[Path]:
    """The start of a step that writes ``folder``: its lock held (:func:`folder_lock`) and the
    temporaries a killed writer left in it removed (:func:`clean_temporaries`) while it is held."""
    with folder_lock(folder, what) as lock:
        clean_temporaries(folder, recursive=recursive)
        yield lock


def clean_temporaries(folder: Path, *, recursive: bool = False) -> int:
    """Remove the ``.<name>.*.tmp`` files that a killed writer left in ``folder`` (atomic writes
    never leave a final file half written, but a killed process leaves its temporary); returns how
    many were removed. Call it only while holding the folder's step lock."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    pattern = f"**/.*{TMP_SUFFIX}" if recursive else f".*{TMP_SUFFIX}"
    removed = 0
    for path in sorted(folder.glob(pattern)):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the user's usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
    return Path(path)


def write_bytes(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return obj.as_posix()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_json(obj: Any, *, sort_keys: bool = False) -> str:
    return json.dumps(obj, indent=1, sort_keys=sort_keys, default=_json_default, allow_nan=False) + "\n"


def dumps_json_lines(obj: dict[str, Any]) -> str:
    """A JSON object with one top-level key per line, each value compact: readable, and written by
    the C encoder (``indent`` forces the slow pure-Python one), for large records."""
    parts = [f"{json.dumps(key)}: {json.dumps(value, default=_json_default, allow_nan=False, separators=(',', ':'))}"
             for key, value in obj.items()]
    return "{\n" + ",\n".join(parts) + "\n}\n"


def write_json(path: Path, obj: Any, *, sort_keys: bool = False) -> Path:
    return write_text(path, dumps_json(obj, sort_keys=sort_keys))


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_csv(path: Path, frame: pd.DataFrame, **kwargs: Any) -> Path:
    kwargs.setdefault("index", False)
    kwargs.setdefault("lineterminator", "\n")
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(path)


def write_parquet(path: Path, frame: pd.DataFrame, **kwargs: Any) -> Path:
    kwargs.setdefault("index", False)
    kwargs.setdefault("compression", "zstd")
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, engine="pyarrow", **kwargs)
    return Path(path)


def save_figure(fig: Any, path: Path, *, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG with no time-dependent metadata, then close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return Path(path)


def git_revision() -> str:
    """The repository's commit (with ``-dirty`` when files differ), or ``unknown``."""
    try:
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


@functools.lru_cache(maxsize=8)
def package_versions(names: tuple[str, ...] = ("numpy", "pandas", "pyarrow", "scipy", "opendssdirect.py",
                                               "dss-python", "matplotlib", "pvlib")) -> dict[str, str]:
    from importlib import metadata

    versions = {"python": sys.version.split()[0]}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return dict(versions)


def write_manifest(folder: Path, script: str, settings: dict[str, Any], *, name: str = "manifest.json") -> Path:
    """A small record beside a phase's outputs: script, settings, package versions, git revision.

    It holds no time, so that a re-run with the same inputs rewrites the same bytes.
    """
    record = {
        "script": script,
        "settings": settings,
        "packages": package_versions(),
        "git_revision": git_revision(),
    }
    return write_json(Path(folder) / name, record)
