"""Verified, resumable, parallel fetching of bucket objects into a dataset root, recorded in its manifest.

Description
    :class:`Downloader` fetches targets (a key and where it lands) from a source
    (``oedi_sources``) with a bounded pool of worker threads. Every object is streamed to
    ``<file>.part`` and checked before it is renamed to its final name with ``os.replace``:

    * byte count against the response's Content-Length (or the local file's size) and against the
      listing's Size when the object came from a listing;
    * MD5 against the ETag when the ETag is a single-part one (no ``-`` in it);
    * for ``.parquet`` files, the footer must read (``pyarrow.parquet.read_metadata``).

    The whole-file loop is the only layer that retries once a server has answered (HTTP 429/5xx,
    bodies broken off, short bodies, failed checks): ``retries + 1`` attempts, waits from
    ``oedi_sources.retry_delay_s`` (exponential backoff, at least the server's Retry-After). A 404
    is an answer (``missing``), a 403 or an unsafe key fails at once, and so does a connection that
    could not be made after urllib3's connect retries. A file from a *local* source that fails its
    checks (e.g. a 0-byte or truncated parquet) is the user's input, not a transfer fault: it is
    not retried, and the run ends with one line naming the file (``common.io.InputError``, exit 2).
    A file that fails is never left under its final name.

    A re-run skips a file only when the manifest holds it as ``ok`` and the file on disk has the
    recorded size and MD5 (and, for parquet, a readable footer), and the listing, when there is
    one, still gives the same size and ETag. Anything else (a partial, ``.part`` or corrupt file, or
    a file the manifest does not vouch for) is fetched again. When it starts (holding the folder
    lock) it removes what killed runs left in the dataset root: ``*.part`` files and the
    ``.<name>.*.tmp`` temporaries of atomic writes.

Inputs
    objects of the source

Outputs (under the dataset root chosen by the caller)
    <key below the dataset prefix>   the objects, verified
    manifest.csv                     see ``download_manifest``

Settings read
    none (the caller passes ``oedi_sources.TransferSettings``)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pyarrow
import pyarrow.parquet as pq
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from common import cli, config
from common.io import InputError, clean_temporaries
from download_manifest import (FAILED_PREFIX, MANIFEST_NAME, STATUS_MISSING, STATUS_OK, Manifest, failed_status,
                               utc_now_iso)
from oedi_sources import (CHUNK_BYTES, PART_SUFFIX, Body, CorruptObject, HttpSource, LocalSource, ObjectInfo,
                          ObjectMissing, PermanentError, TransferError, TransferSettings, check_key, retry_delay_s,
                          single_part_md5)

logger = logging.getLogger(__name__)

#: keys named in the one-line summary
SUMMARY_KEYS = 5


# ------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Target:
    """One object to fetch: its key, where it lands, and what the listing said about it."""

    key: str
    path: Path
    size_bytes: int | None = None
    etag: str | None = None

    @property
    def part_path(self) -> Path:
        return self.path.with_name(self.path.name + PART_SUFFIX)


@dataclass
class FileResult:
    """What happened to one target: ``status`` is ``ok``, ``missing`` or ``failed: <reason>``."""

    key: str
    status: str
    size_bytes: int | None = None
    md5: str | None = None
    fetched: bool = False
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


def local_path(dataset_root: Path, key: str, key_prefix: str) -> Path:
    """Where ``key`` lands: ``<dataset_root>/<key below key_prefix>``."""
    check_key(key)
    head = key_prefix.rstrip("/") + "/"
    if not key.startswith(head):
        raise ValueError(f"key {key!r} is not below {key_prefix!r}")
    return Path(dataset_root, *key[len(head):].split("/"))


# ------------------------------------------------------------------------------------------- verification
def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def parquet_problem(path: Path) -> str | None:
    """None when the parquet footer reads, else why not."""
    try:
        pq.read_metadata(path)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        return f"not a readable parquet file ({' '.join(str(exc).split())[:200]})"
    return None


def _needs_parquet_check(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def verified_on_disk(target: Target, row: dict[str, str] | None) -> tuple[bool, str]:
    """Whether the final file can be trusted without fetching it again, and why not."""
    if row is None:
        return False, "not in the manifest"
    if row.get("status") != STATUS_OK:
        return False, f"manifest status {row.get('status')!r}"
    try:
        size = target.path.stat().st_size
    except FileNotFoundError:
        return False, "no file on disk"
    if str(size) != row.get("size"):
        return False, f"size on disk {size} B, manifest {row.get('size')} B"
    if target.size_bytes is not None and size != target.size_bytes:
        return False, f"source now has {target.size_bytes} B, file has {size} B"
    listed_md5 = single_part_md5(target.etag)
    if listed_md5 is not None and listed_md5 != row.get("checksum"):
        return False, "source ETag differs from the manifest checksum"
    if file_md5(target.path) != row.get("checksum"):
        return False, "MD5 on disk differs from the manifest"
    if _needs_parquet_check(target.path):
        problem = parquet_problem(target.path)
        if problem:
            return False, problem
    return True, "verified"


def check_download(target: Target, body: Body, n_bytes: int, md5_hex: str) -> None:
    """Raise :class:`TransferError` when a downloaded ``.part`` does not match what was announced
    (:class:`CorruptObject` when the bytes are as announced but the file is unusable)."""
    if body.size_bytes is not None and n_bytes != body.size_bytes:
        raise TransferError(f"got {n_bytes} B of {body.size_bytes} B (Content-Length)")
    if target.size_bytes is not None and n_bytes != target.size_bytes:
        raise TransferError(f"got {n_bytes} B, listing says {target.size_bytes} B")
    for origin, etag in (("ETag", body.etag), ("listing ETag", target.etag)):
        expected = single_part_md5(etag)
        if expected is not None and expected != md5_hex:
            raise TransferError(f"MD5 {md5_hex} differs from the {origin} {expected}")
    if _needs_parquet_check(target.path):
        if n_bytes == 0:
            raise CorruptObject("not a readable parquet file (0 bytes)")
        problem = parquet_problem(target.part_path)
        if problem:
            raise CorruptObject(problem)


def clean_leftovers(dataset_root: Path) -> int:
    """Remove the ``*.part`` files and ``.<name>.*.tmp`` temporaries that killed runs left anywhere
    below ``dataset_root``; how many. Call it only while holding the dataset root's folder lock."""
    root = Path(dataset_root)
    if not root.is_dir():
        return 0
    removed = clean_temporaries(root, recursive=True)
    for dirpath, _, filenames in os.walk(root):
        for name in sorted(filenames):
            if name.endswith(PART_SUFFIX):
                Path(dirpath, name).unlink(missing_ok=True)
                removed += 1
    return removed


# ------------------------------------------------------------------------------------------- summary
@dataclass
class Summary:
    """Counts of one run; ``line()`` is the one summary line a script ends with."""

    label: str
    n_fetched: int = 0
    n_skipped: int = 0
    bytes_fetched: int = 0
    missing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    manifest_path: Path | None = None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.failed or self.problems)

    @property
    def n_files(self) -> int:
        return self.n_fetched + self.n_skipped + len(self.missing) + len(self.failed)

    def line(self, max_keys: int = SUMMARY_KEYS) -> str:
        text = (f"{self.label}: {self.n_files} files: {self.n_fetched} fetched "
                f"({self.bytes_fetched / 1e6:.1f} MB in {self.elapsed_s:.1f} s), {self.n_skipped} already verified, "
                f"{len(self.missing)} missing, {len(self.failed)} failed")
        if self.problems:
            text += f", {len(self.problems)} other problem(s)"
        if self.missing:
            text += f"; missing: {_first(sorted(self.missing), max_keys)}"
        if self.failed:
            reasons = [f"{k} ({self.failed[k].removeprefix(FAILED_PREFIX)})" for k in sorted(self.failed)]
            text += "; failed: " + _first(reasons, max_keys)
        if self.problems:
            text += f"; {_first(self.problems, max_keys)}"
        if not self.ok and self.manifest_path is not None:
            text += f" (see {self.manifest_path})"
        return text


def _first(items: Sequence[str], n: int) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


# ------------------------------------------------------------------------------------------- downloader
class Downloader:
    """Fetch targets of one dataset root in parallel, verified, recorded in its manifest.

    Use as a context manager: it holds the manifest (and the folder lock), cleans up what killed
    runs left, and closes the source.
    """

    def __init__(self, source: HttpSource | LocalSource, dataset_root: Path, key_prefix: str,
                 settings: TransferSettings, label: str = "download", manifest_path: Path | None = None):
        self.source = source
        self.dataset_root = Path(dataset_root)
        self.key_prefix = key_prefix.rstrip("/")
        self.settings = settings
        self.label = label
        self.manifest = Manifest(manifest_path or self.dataset_root / MANIFEST_NAME)
        self.results: dict[str, FileResult] = {}
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._started = time.monotonic()

    def __enter__(self) -> "Downloader":
        try:
            self.manifest.open()
            removed = clean_leftovers(self.dataset_root)
        except BaseException:
            self.manifest.close()
            self.source.close()
            raise
        if removed:
            logger.info("%s: removed %d partial or temporary file(s) left by an interrupted run", self.label, removed)
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        try:
            self.manifest.close()
        finally:
            self.source.close()

    # ---- targets
    def target(self, key: str, size_bytes: int | None = None, etag: str | None = None) -> Target:
        return Target(key, local_path(self.dataset_root, key, self.key_prefix), size_bytes, etag)

    def target_for(self, obj: ObjectInfo) -> Target:
        return self.target(obj.key, obj.size_bytes, obj.etag)

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        return self.source.list_objects(prefix)

    def add_problem(self, text: str) -> None:
        """Something required that has no key to fetch (e.g. an unresolvable file reference)."""
        logger.error("%s", text)
        self.problems.append(text)

    def invalidate(self, key: str, reason: str) -> None:
        """Record a fetched file as failed after all (e.g. its data does not read although its footer
        does), so that the next run fetches it again instead of trusting it."""
        self._record(FileResult(key, failed_status(reason), fetched=True))

    # ---- fetching
    def fetch(self, targets: Sequence[Target], what: str = "files") -> list[FileResult]:
        """Fetch (or verify) every target; return one result per distinct key, in key order."""
        unique: dict[str, Target] = {}
        for t in targets:
            if t.key in unique and unique[t.key].path != t.path:
                raise ValueError(f"key {t.key} targets two paths")
            unique.setdefault(t.key, t)
        ordered = [unique[k] for k in sorted(unique)]
        if not ordered:
            return []
        previous = {t.key: self.manifest.get(t.key) for t in ordered}
        started = time.monotonic()
        fetched_bytes = 0
        results: list[FileResult] = []
        redirect = logging_redirect_tqdm() if self.settings.progress else contextlib.nullcontext()
        with redirect, tqdm(total=len(ordered), unit="file", desc=f"{self.label} {what}", leave=False,
                            disable=None if self.settings.progress else True, mininterval=0.5,
                            dynamic_ncols=True) as bar:
            executor = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="fetch")
            futures = [executor.submit(self._process, t, previous[t.key]) for t in ordered]
            recorded: set[Future] = set()
            try:
                pending: set[Future] = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        result = future.result()
                        recorded.add(future)
                        results.append(result)
                        self._record(result)
                        if result.fetched:
                            fetched_bytes += result.size_bytes or 0
                        bar.update(1)
                        bar.set_postfix_str(f"{fetched_bytes / 1e6:.1f} MB", refresh=False)
            except BaseException:
                self._stop.set()
                executor.shutdown(wait=True, cancel_futures=True)
                for future in futures:  # what the other workers finished is kept in the manifest
                    if future not in recorded and future.done() and not future.cancelled() \
                            and future.exception() is None:
                        self._record(future.result())
                raise
            executor.shutdown(wait=True)
        elapsed = time.monotonic() - started
        n_fetched = sum(r.fetched and r.ok for r in results)
        n_skipped = sum((not r.fetched) and r.ok for r in results)
        n_bad = sum(not r.ok for r in results)
        logger.info("%s %s: %d fetched (%.1f MB in %.1f s, %.1f MB/s), %d already verified, %d missing or failed",
                    self.label, what, n_fetched, fetched_bytes / 1e6, elapsed,
                    fetched_bytes / 1e6 / elapsed if elapsed > 0 else 0.0, n_skipped, n_bad)
        return sorted(results, key=lambda r: r.key)

    def _record(self, result: FileResult) -> None:
        self.results[result.key] = result
        if result.ok and not result.fetched:
            return  # verified again: the manifest row (with its download time) stands
        self.manifest.record({
            "key": result.key,
            "size": "" if result.size_bytes is None else str(result.size_bytes),
            "checksum": result.md5 or "",
            "source": self.source.label,
            "time": utc_now_iso(),
            "status": result.status,
        })
        if result.status == STATUS_MISSING:
            logger.warning("missing at the source: %s", result.key)
        elif not result.ok:
            logger.error("%s: %s", result.key, result.status)

    def _process(self, target: Target, row: dict[str, str] | None) -> FileResult:
        """Skip a verified file, else fetch it with whole-file retries. Runs in a worker thread."""
        try:
            verified, why = verified_on_disk(target, row)
        except OSError as exc:
            verified, why = False, f"cannot read the file on disk ({exc})"
        if verified:
            return FileResult(target.key, STATUS_OK, int(row["size"]), row["checksum"], fetched=False)
        if target.path.exists():
            level = logging.WARNING if row is not None and row.get("status") == STATUS_OK else logging.DEBUG
            logger.log(level, "%s: %s; fetching it again", target.key, why)
        try:
            target.path.parent.mkdir(parents=True, exist_ok=True)
            # never trust a leftover: an unverified final file or .part is removed before fetching
            target.part_path.unlink(missing_ok=True)
            target.path.unlink(missing_ok=True)
        except OSError as exc:
            return FileResult(target.key, failed_status(f"local file error: {exc}"))
        attempts = self.settings.attempts
        last = "no attempt"
        for attempt in range(1, attempts + 1):
            if self._stop.is_set():
                return FileResult(target.key, failed_status("interrupted"), attempts=attempt - 1)
            try:
                size, md5_hex = self._download_once(target)
                return FileResult(target.key, STATUS_OK, size, md5_hex, fetched=True, attempts=attempt)
            except ObjectMissing:
                return FileResult(target.key, STATUS_MISSING, attempts=attempt)
            except PermanentError as exc:
                return FileResult(target.key, failed_status(str(exc)), attempts=attempt)
            except CorruptObject as exc:
                if not self.source.remote:  # a local file gives the same bytes every time: bad input
                    raise InputError(f"{self.source.describe(target.key)} is {exc}: replace it in the --source "
                                     f"folder, or download it from the bucket (--source {config.OEDI_SOURCE})"
                                     ) from None
                last, retry_after_s = str(exc), None
            except TransferError as exc:
                last, retry_after_s = str(exc), exc.retry_after_s
            if attempt < attempts:
                self._wait_before_retry(target, attempt, last, retry_after_s)
        return FileResult(target.key, failed_status(f"{last} (after {attempts} attempts)"), attempts=attempts)

    def _wait_before_retry(self, target: Target, attempt: int, why: str, retry_after_s: float | None) -> None:
        delay_s = retry_delay_s(attempt, self.settings.backoff_s, retry_after_s)
        logger.info("%s: attempt %d of %d failed (%s); retrying in %.2f s", target.key, attempt,
                    self.settings.attempts, why, delay_s)
        self._stop.wait(delay_s)

    def _download_once(self, target: Target) -> tuple[int, str]:
        """Stream one object to ``.part``, verify it, rename it into place."""
        part = target.part_path
        try:
            with self.source.open(target.key) as body:
                digest = hashlib.md5()
                n_bytes = 0
                try:
                    handle = open(part, "wb")
                except OSError as exc:
                    raise PermanentError(f"local file error: {exc}") from None
                with handle:
                    for chunk in body.chunks:
                        if self._stop.is_set():
                            raise TransferError("interrupted")
                        try:
                            handle.write(chunk)
                        except OSError as exc:
                            raise PermanentError(f"local file error: {exc}") from None
                        digest.update(chunk)
                        n_bytes += len(chunk)
                md5_hex = digest.hexdigest()
                check_download(target, body, n_bytes, md5_hex)
            os.replace(part, target.path)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return n_bytes, md5_hex

    # ---- report
    def summary(self) -> Summary:
        results = self.results.values()
        return Summary(
            label=self.label,
            n_fetched=sum(r.ok and r.fetched for r in results),
            n_skipped=sum(r.ok and not r.fetched for r in results),
            bytes_fetched=sum((r.size_bytes or 0) for r in results if r.ok and r.fetched),
            missing=sorted(r.key for r in results if r.status == STATUS_MISSING),
            failed={r.key: r.status for r in results if r.status.startswith(FAILED_PREFIX)},
            problems=list(self.problems),
            elapsed_s=time.monotonic() - self._started,
            manifest_path=self.manifest.path,
        )

    def finish(self) -> int:
        """Log the one summary line; exit status 0 when everything required is here, else 1."""
        summary = self.summary()
        if summary.ok:
            logger.info("%s", summary.line())
            return 0
        logger.error("%s", summary.line())
        return cli.EXIT_FAILED
