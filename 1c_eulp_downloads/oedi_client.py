"""Verified, resumable downloads from the OEDI bucket (or a local folder holding the same keys).

Description
    The one download client of phase 1c, shared by ``download_parquets_homes.py``,
    ``download_parquets_commercial.py`` and ``download_smartds.py``.

    A *source* is either an HTTP(S) base URL (default ``common.config.OEDI_SOURCE``; an object is
    ``<source>/<key>``; listings use the S3 ListObjectsV2 API and follow continuation tokens), or a
    local folder holding the same keys (the embedded sample: listing walks the folder, fetching
    copies the file). Both go through the same transfer, verification, manifest and summary code,
    so the offline sample exercises the real code path.

    Every object is streamed to ``<file>.part`` and checked before it is renamed to its final name
    with ``os.replace``:

    * byte count against the response's Content-Length (or the local file's size) and against the
      listing's Size when the object came from a listing;
    * MD5 against the ETag when the ETag is a single-part one (no ``-`` in it);
    * for ``.parquet`` files, the footer must read (``pyarrow.parquet.read_metadata``).

    HTTP requests retry inside urllib3 (connect, read and status errors; 429/500/502/503/504 with
    exponential backoff; Retry-After honoured). On top of that, a whole-file retry loop covers what
    urllib3 cannot retry once the body has started (truncated bodies, connections closed or timed
    out mid-body) and every failed verification. A file that fails is never left under its final
    name.

    ``manifest.csv`` at the dataset root records one row per key (columns ``key``, ``size`` [bytes],
    ``checksum`` [MD5 hex of the file], ``source``, ``time`` [UTC, ISO 8601], ``status``: ``ok``,
    ``missing`` or ``failed: <reason>``). Each finished file is appended at once to
    ``manifest.csv.journal`` so that a killed run loses nothing; the manifest is rewritten
    atomically (merged with the previous one, latest row per key wins, sorted by key) at the end
    of a run, every minute during it, and at the start of the next run if a journal was left.
    ``manifest.csv.lock`` keeps two runs from writing the same manifest.

    A re-run skips a file only when the manifest holds it as ``ok`` and the file on disk has the
    recorded size and MD5 (and, for parquet, a readable footer), and the listing, when there is
    one, still gives the same size and ETag. Anything else (a partial, ``.part`` or corrupt file, or
    a file the manifest does not vouch for) is fetched again.

Inputs
    objects of the source (the OEDI bucket over HTTPS by default, or a local folder)

Outputs (under the dataset root chosen by the caller)
    <key below the dataset prefix>   the objects, verified
    manifest.csv                     key, size, checksum, source, time, status (one row per key)

Settings read
    common.config: OEDI_SOURCE

Usage
    Imported by the phase 1c scripts; see :func:`add_transfer_arguments` for the shared flags.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import logging
import os
import posixpath
import re
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Protocol, Sequence
from urllib.parse import quote

import pandas as pd
import pyarrow
import pyarrow.parquet as pq
import requests
import urllib3
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm
from urllib3.util import Retry

from common import cli, config
from common.io import write_csv

try:  # POSIX advisory lock on the manifest; absent on Windows, where runs are not guarded
    import fcntl
except ImportError:  # pragma: no cover - not on the supported Linux/macOS hosts
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------- constants
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("key", "size", "checksum", "source", "time", "status")
JOURNAL_SUFFIX = ".journal"
LOCK_SUFFIX = ".lock"
PART_SUFFIX = ".part"
STATUS_OK = "ok"
STATUS_MISSING = "missing"
FAILED_PREFIX = "failed: "

#: HTTP statuses retried by urllib3 (and, once its retries are spent, by the whole-file loop)
RETRY_STATUS_CODES = (429, 500, 502, 503, 504)
DEFAULT_WORKERS = 8
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 60.0
#: urllib3 retries per request, and extra whole-file attempts after the first
DEFAULT_RETRIES = 5
#: backoff factor [s]: waits of about backoff x 2^(n-1) between retries
DEFAULT_BACKOFF_S = 1.0
#: longest wait between two whole-file attempts [s]
MAX_BACKOFF_S = 60.0
CHUNK_BYTES = 1 << 20
#: how often the manifest is rewritten during a run [s] (the journal holds every row meanwhile)
MANIFEST_SAVE_INTERVAL_S = 60.0
#: keys named in the one-line summary
SUMMARY_KEYS = 5
#: longest Retry-After wait honoured [s]; a longer one is cut to this
MAX_RETRY_AFTER_S = 300
USER_AGENT = f"dss-xlrm-phase1c python-requests/{requests.__version__}"

_HTTP_PREFIXES = ("http://", "https://")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:/")


# ------------------------------------------------------------------------------------------- errors
class SourceUnreachable(Exception):
    """The source cannot be reached at all (connection refused, DNS failure, connect timeout)."""


class ListingError(Exception):
    """A listing of the source failed after its retries."""


class ObjectMissing(Exception):
    """The source has no object under this key (HTTP 404, or no such file)."""


class TransferError(Exception):
    """A failure worth another whole-file attempt (network, server error, failed verification)."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentError(Exception):
    """A failure that another attempt will not fix (HTTP 403, an unsafe key, a local disk error)."""


# ------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class ObjectInfo:
    """One object of a listing: key, size [bytes] and ETag (as given, quotes removed)."""

    key: str
    size_bytes: int | None = None
    etag: str | None = None


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


@dataclass(frozen=True)
class TransferSettings:
    """How objects are fetched: parallelism, timeouts [s], retries and backoff [s]."""

    workers: int = DEFAULT_WORKERS
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    backoff_s: float = DEFAULT_BACKOFF_S
    progress: bool = True

    @property
    def attempts(self) -> int:
        """Whole-file attempts per object."""
        return self.retries + 1


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


@dataclass
class Body:
    """An open object: its chunks, and the size [bytes] and ETag the source announced."""

    chunks: Iterator[bytes]
    size_bytes: int | None
    etag: str | None


# ------------------------------------------------------------------------------------------- pure functions
def is_http_source(source: str) -> bool:
    return source.lower().startswith(_HTTP_PREFIXES)


def normalise_source(source: str) -> str:
    """``s3://bucket`` -> its public HTTPS endpoint; an HTTP(S) URL loses its trailing slash."""
    text = source.strip()
    if text.lower().startswith("s3://"):
        bucket = text[5:].strip("/")
        return f"https://{bucket}.s3.amazonaws.com"
    return text.rstrip("/") if is_http_source(text) else text


def object_url(base_url: str, key: str) -> str:
    """``<base>/<key>`` with the key percent-encoded (slashes kept)."""
    return f"{base_url.rstrip('/')}/{quote(key, safe='/')}"


def check_key(key: str) -> str:
    """A key must be relative and stay inside the dataset: no ``..``, no leading slash, no backslash."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise PermanentError(f"unsafe or malformed key {key!r}")
    return key


def local_path(dataset_root: Path, key: str, key_prefix: str) -> Path:
    """Where ``key`` lands: ``<dataset_root>/<key below key_prefix>``."""
    check_key(key)
    head = key_prefix.rstrip("/") + "/"
    if not key.startswith(head):
        raise ValueError(f"key {key!r} is not below {key_prefix!r}")
    return Path(dataset_root, *key[len(head):].split("/"))


def single_part_md5(etag: str | None) -> str | None:
    """The MD5 hex of an ETag that is a plain MD5 (single-part upload), else None.

    Multipart ETags (``"<hex>-<parts>"``) and anything that is not 32 hex digits are not MD5s.
    """
    if not etag:
        return None
    text = etag.strip().strip('"').lower()
    if text.startswith("w/"):
        return None  # a weak validator says nothing about the bytes
    return text if re.fullmatch(r"[0-9a-f]{32}", text) else None


def _local_tag(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_list_objects_v2(xml_bytes: bytes) -> tuple[list[ObjectInfo], bool, str | None]:
    """One ListObjectsV2 page -> (objects, is_truncated, next continuation token).

    Accepts the S3 namespace or none. An ``<Error>`` document raises :class:`ListingError`.
    """
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as exc:
        raise ListingError(f"listing is not valid XML ({exc})") from None
    if _local_tag(root.tag) == "Error":
        fields = {_local_tag(child.tag): (child.text or "") for child in root}
        raise ListingError(f"listing refused: {fields.get('Code', '?')}: {fields.get('Message', '')}".strip())
    if _local_tag(root.tag) != "ListBucketResult":
        raise ListingError(f"listing answer is a <{_local_tag(root.tag)}>, not a ListBucketResult")
    objects: list[ObjectInfo] = []
    truncated, token = False, None
    for child in root:
        name = _local_tag(child.tag)
        if name == "Contents":
            fields = {_local_tag(item.tag): (item.text or "") for item in child}
            if not fields.get("Key"):
                raise ListingError("listing entry without a Key")
            size = fields.get("Size")
            etag = fields.get("ETag")
            objects.append(ObjectInfo(fields["Key"], int(size) if size not in (None, "") else None,
                                      etag.strip('"') if etag else None))
        elif name == "IsTruncated":
            truncated = (child.text or "").strip().lower() == "true"
        elif name == "NextContinuationToken":
            token = (child.text or "").strip() or None
    return objects, truncated, token


def resolve_relative_key(folder_key: str, reference: str) -> str:
    """A relative path written inside an object, resolved against the object's folder key."""
    return posixpath.normpath(posixpath.join(folder_key, reference.replace("\\", "/")))


def is_absolute_reference(reference: str) -> bool:
    text = reference.replace("\\", "/")
    return text.startswith("/") or bool(_WINDOWS_DRIVE.match(text))


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def failed_status(reason: str) -> str:
    return FAILED_PREFIX + " ".join(str(reason).split())


def add_transfer_arguments(parser: argparse.ArgumentParser, *, default_source: str = config.OEDI_SOURCE) -> None:
    """The source and transfer flags shared by the phase 1c scripts."""
    group = parser.add_argument_group("source and transfer")
    group.add_argument("--source", default=default_source,
                       help=f"HTTP(S) base URL of the bucket, s3://bucket, or a local folder holding the "
                            f"same keys, e.g. <data>/sample/oedi (default {default_source})")
    group.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                       help=f"parallel downloads (default {DEFAULT_WORKERS})")
    group.add_argument("--timeout", default=f"{DEFAULT_CONNECT_TIMEOUT_S:g},{DEFAULT_READ_TIMEOUT_S:g}",
                       metavar="CONNECT[,READ]",
                       help="connect and read timeouts [s] (default %(default)s; one number sets both)")
    group.add_argument("--retries", type=int, default=DEFAULT_RETRIES,
                       help=f"retries per request, and extra whole-file attempts (default {DEFAULT_RETRIES})")
    group.add_argument("--backoff", type=float, default=DEFAULT_BACKOFF_S, metavar="SECONDS",
                       help=f"exponential backoff factor [s] between retries (default {DEFAULT_BACKOFF_S:g})")


def settings_from_args(args: argparse.Namespace) -> TransferSettings:
    """Check the transfer flags and turn them into :class:`TransferSettings`."""
    if args.workers < 1:
        raise cli.UserError(f"--workers {args.workers}: need at least 1")
    if args.retries < 0:
        raise cli.UserError(f"--retries {args.retries}: need 0 or more")
    if not args.backoff >= 0:
        raise cli.UserError(f"--backoff {args.backoff}: need 0 or more seconds")
    parts = [p.strip() for p in str(args.timeout).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise cli.UserError(f"--timeout {args.timeout!r}: give seconds as CONNECT or CONNECT,READ, "
                            "e.g. 10,60") from None
    if len(values) not in (1, 2) or not all(v > 0 for v in values):
        raise cli.UserError(f"--timeout {args.timeout!r}: give one or two positive numbers of seconds, e.g. 10,60")
    connect_s, read_s = (values[0], values[0]) if len(values) == 1 else values
    quiet = bool(getattr(args, "quiet", False))
    return TransferSettings(workers=args.workers, connect_timeout_s=connect_s, read_timeout_s=read_s,
                            retries=args.retries, backoff_s=args.backoff, progress=not quiet)


# ------------------------------------------------------------------------------------------- sources
class Source(Protocol):
    label: str

    def probe(self, prefix: str) -> None: ...

    def list_objects(self, prefix: str) -> list[ObjectInfo]: ...

    def open(self, key: str) -> contextlib.AbstractContextManager[Body]: ...

    def close(self) -> None: ...


def _is_unreachable(exc: BaseException) -> bool:
    """True when an exception (or what it wraps) says no connection could be made at all."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError,
                                requests.exceptions.ConnectTimeout)):
            return True
        stack.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
    return False


def _short(exc: BaseException) -> str:
    """A one-line description of a network exception (urllib3 nests them deeply)."""
    reason = getattr(exc, "reason", None)
    if isinstance(exc, requests.RequestException) and exc.args and isinstance(exc.args[0], BaseException):
        return _short(exc.args[0])
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and reason is not None:
        return _short(reason)
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


class _Urllib3RetryFilter(logging.Filter):
    """urllib3 logs every retry as a WARNING; they show with ``-v`` only (the summary counts failures)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Retrying (") or logger.isEnabledFor(logging.DEBUG)


def _install_urllib3_filter() -> None:
    pool_logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _Urllib3RetryFilter) for f in pool_logger.filters):
        pool_logger.addFilter(_Urllib3RetryFilter())


class HttpSource:
    """An S3-compatible bucket over HTTP(S): GET objects, ListObjectsV2 listings."""

    def __init__(self, base_url: str, settings: TransferSettings):
        _install_urllib3_filter()
        self.base_url = base_url.rstrip("/")
        self.label = self.base_url
        self.timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self.listing_attempts = settings.attempts
        retry = Retry(
            total=settings.retries, connect=settings.retries, read=settings.retries, status=settings.retries,
            other=0, redirect=5, backoff_factor=settings.backoff_s, backoff_max=MAX_BACKOFF_S,
            status_forcelist=RETRY_STATUS_CODES, allowed_methods=frozenset({"GET", "HEAD"}),
            respect_retry_after_header=True, retry_after_max=MAX_RETRY_AFTER_S, raise_on_status=False,
            raise_on_redirect=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=max(1, settings.workers),
                              pool_block=True)
        self.session = requests.Session()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # the bytes as stored: what the ETag and the listing's Size describe
        self.session.headers.update({"Accept-Encoding": "identity", "User-Agent": USER_AGENT})

    def close(self) -> None:
        self.session.close()

    def _get(self, url: str, **kwargs):
        try:
            return self.session.get(url, timeout=self.timeout, **kwargs)
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            raise SourceUnreachable(f"not a usable URL ({_short(exc)})") from None
        except requests.RequestException as exc:
            if _is_unreachable(exc):
                raise SourceUnreachable(_short(exc)) from None
            raise

    def probe(self, prefix: str) -> None:
        """Raise :class:`SourceUnreachable` when the server cannot be reached at all.

        Any HTTP answer counts as reachable (a mirror may refuse listings); a read timeout does too.
        """
        try:
            with self._get(self.base_url + "/", params={"list-type": "2", "max-keys": "1", "prefix": prefix},
                           stream=True) as response:
                logger.debug("probe %s: HTTP %d", self.base_url, response.status_code)
        except requests.RequestException as exc:
            logger.warning("source %s answered the probe with an error (%s); trying anyway", self.label, _short(exc))

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix``, following continuation tokens."""
        objects: list[ObjectInfo] = []
        token: str | None = None
        seen_tokens: set[str] = set()
        page = 0
        while True:
            params = {"list-type": "2", "prefix": prefix}
            if token:
                params["continuation-token"] = token
            page_objects, truncated, token = self._list_page(params, prefix, page)
            objects.extend(page_objects)
            page += 1
            if not truncated:
                break
            if not token:
                raise ListingError(f"listing of {prefix!r} is truncated but gives no NextContinuationToken")
            if token in seen_tokens:
                raise ListingError(f"listing of {prefix!r} repeats continuation token {token!r}")
            seen_tokens.add(token)
        logger.debug("listed %d objects under %s in %d page(s)", len(objects), prefix, page)
        return objects

    def _list_page(self, params: dict[str, str], prefix: str, page: int) -> tuple[list[ObjectInfo], bool, str | None]:
        last = "no attempt"
        for attempt in range(1, self.listing_attempts + 1):
            try:
                response = self._get(self.base_url + "/", params=params)
                if response.status_code != 200:
                    last = f"HTTP {response.status_code}: {' '.join(response.text[:200].split())}"
                    if response.status_code not in RETRY_STATUS_CODES:
                        break
                else:
                    return parse_list_objects_v2(response.content)
            except requests.RequestException as exc:
                last = _short(exc)
            except ListingError as exc:
                last = str(exc)
            logger.debug("listing %s page %d attempt %d failed: %s", prefix, page + 1, attempt, last)
        raise ListingError(f"cannot list {self.base_url}/?prefix={prefix} (page {page + 1}): {last}")

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[Body]:
        url = object_url(self.base_url, key)
        try:
            response = self._get(url, stream=True)
        except SourceUnreachable as exc:
            raise TransferError(f"cannot connect: {exc}") from None
        except requests.RequestException as exc:
            raise TransferError(_short(exc)) from None
        with response:
            status = response.status_code
            if status == 404:
                raise ObjectMissing(f"HTTP 404 for {url}")
            if status != 200:
                retry_after = response.headers.get("Retry-After")
                retry_after_s = float(retry_after) if retry_after and retry_after.strip().isdigit() else None
                message = f"HTTP {status} for {url}"
                if status in RETRY_STATUS_CODES or status >= 500:
                    raise TransferError(message, retry_after_s)
                raise PermanentError(message)
            length = response.headers.get("Content-Length")
            size = int(length) if length and length.strip().isdigit() else None
            yield Body(self._chunks(response), size, response.headers.get("ETag"))

    @staticmethod
    def _chunks(response: requests.Response) -> Iterator[bytes]:
        try:
            # raw bytes as stored (no content decoding); urllib3 enforces Content-Length
            yield from response.raw.stream(CHUNK_BYTES, decode_content=False)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise TransferError(f"body broken off: {_short(exc)}") from None


class LocalSource:
    """A local folder holding bucket keys (e.g. the embedded sample): same interface as HTTP."""

    def __init__(self, root: Path):
        self.root = Path(root).expanduser().resolve()
        self.label = str(self.root)

    def close(self) -> None:
        pass

    def probe(self, prefix: str) -> None:
        if not self.root.is_dir():
            raise SourceUnreachable(f"{self.root} is not a folder")
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if head and not (self.root / head).is_dir():
            logger.warning("source %s has no folder %s", self.root, head)

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root.joinpath(*key.split("/"))

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        folder_key = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        folder = self.root.joinpath(*folder_key.split("/")) if folder_key else self.root
        objects = []
        if folder.is_dir():
            for dirpath, dirnames, filenames in os.walk(folder):
                dirnames.sort()
                for name in sorted(filenames):
                    path = Path(dirpath) / name
                    key = path.relative_to(self.root).as_posix()
                    if key.startswith(prefix) and not name.endswith((PART_SUFFIX, JOURNAL_SUFFIX, LOCK_SUFFIX)):
                        objects.append(ObjectInfo(key, path.stat().st_size, None))
        return sorted(objects, key=lambda o: o.key)

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[Body]:
        path = self._path(key)
        try:
            handle = open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectMissing(f"no file {path}") from None
        except OSError as exc:
            raise TransferError(f"cannot read {path}: {exc}") from None
        with handle:
            size = os.fstat(handle.fileno()).st_size

            def chunks() -> Iterator[bytes]:
                try:
                    while True:
                        block = handle.read(CHUNK_BYTES)
                        if not block:
                            return
                        yield block
                except OSError as exc:
                    raise TransferError(f"cannot read {path}: {exc}") from None

            yield Body(chunks(), size, None)


def open_source(source: str, settings: TransferSettings) -> HttpSource | LocalSource:
    """An HTTP(S) URL, ``s3://bucket`` or an existing local folder; anything else is a UserError."""
    text = normalise_source(source)
    if is_http_source(text):
        return HttpSource(text, settings)
    if text.lower().startswith("file://"):
        text = text[7:]
    path = Path(text).expanduser()
    if not path.is_dir():
        raise cli.UserError(f"--source {source!r}: not an http(s):// or s3:// URL and not an existing folder")
    return LocalSource(path)


def probe_source(source: HttpSource | LocalSource, prefix: str) -> None:
    """Fail with one clear line (a UserError) when the source cannot be reached at all."""
    try:
        source.probe(prefix)
    except SourceUnreachable as exc:
        raise cli.UserError(f"--source {source.label}: cannot reach it ({exc}); check the URL, the network "
                            "or use a local copy") from None


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
    """Raise :class:`TransferError` when a downloaded ``.part`` does not match what was announced."""
    if body.size_bytes is not None and n_bytes != body.size_bytes:
        raise TransferError(f"got {n_bytes} B of {body.size_bytes} B (Content-Length)")
    if target.size_bytes is not None and n_bytes != target.size_bytes:
        raise TransferError(f"got {n_bytes} B, listing says {target.size_bytes} B")
    for origin, etag in (("ETag", body.etag), ("listing ETag", target.etag)):
        expected = single_part_md5(etag)
        if expected is not None and expected != md5_hex:
            raise TransferError(f"MD5 {md5_hex} differs from the {origin} {expected}")
    if _needs_parquet_check(target.path):
        problem = parquet_problem(target.part_path)
        if problem:
            raise TransferError(problem)


# ------------------------------------------------------------------------------------------- manifest
class Manifest:
    """``manifest.csv`` of one dataset root, with its append-only journal and its lock."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + JOURNAL_SUFFIX)
        self.lock_path = self.path.with_name(self.path.name + LOCK_SUFFIX)
        self.rows: dict[str, dict[str, str]] = {}
        self._journal = None
        self._lock = None
        self._writer = None
        self._last_save = time.monotonic()

    # ---- life cycle
    def open(self) -> "Manifest":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self.rows = self._read_manifest()
            replayed = self._replay_journal()
            if replayed:
                logger.info("recovered %d row(s) of an interrupted run from %s", replayed, self.journal_path)
                self.save()
            self._journal = open(self.journal_path, "a", encoding="utf-8", newline="")
        except BaseException:
            self._release_lock()
            raise
        self._writer = csv.writer(self._journal, lineterminator="\n")
        return self

    def close(self) -> None:
        try:
            if self._journal is not None:
                self.save()
                self._journal.close()
                self._journal = None
                self.journal_path.unlink(missing_ok=True)
        finally:
            self._release_lock()

    def __enter__(self) -> "Manifest":
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- rows
    def get(self, key: str) -> dict[str, str] | None:
        return self.rows.get(key)

    def record(self, row: dict[str, str]) -> None:
        """Keep ``row`` (latest wins) and append it to the journal at once."""
        self.rows[row["key"]] = row
        if self._writer is not None:
            self._writer.writerow([row[c] for c in MANIFEST_COLUMNS])
            self._journal.flush()
        if time.monotonic() - self._last_save > MANIFEST_SAVE_INTERVAL_S:
            self.save()

    def save(self) -> None:
        """Rewrite ``manifest.csv`` atomically (sorted by key), then empty the journal."""
        frame = pd.DataFrame([self.rows[k] for k in sorted(self.rows)], columns=list(MANIFEST_COLUMNS), dtype=str)
        write_csv(self.path, frame)
        if self._journal is not None:
            self._journal.seek(0)
            self._journal.truncate()
        elif self.journal_path.exists():
            self.journal_path.unlink()
        self._last_save = time.monotonic()

    # ---- internals
    def _read_manifest(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        try:
            frame = pd.read_csv(self.path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise cli.UserError(f"manifest {self.path} is unreadable ({exc}): repair or delete it") from None
        missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
        if missing:
            raise cli.UserError(f"manifest {self.path} lacks column(s) {', '.join(missing)}: repair or delete it")
        return {row["key"]: {c: row[c] for c in MANIFEST_COLUMNS} for row in frame.to_dict("records")}

    def _replay_journal(self) -> int:
        if not self.journal_path.exists():
            return 0
        count = 0
        with open(self.journal_path, encoding="utf-8", newline="") as handle:
            for number, fields in enumerate(csv.reader(handle), start=1):
                if len(fields) != len(MANIFEST_COLUMNS) or not _valid_status(fields[-1]):
                    logger.warning("%s line %d is incomplete (a run was killed while writing it); ignored",
                                   self.journal_path, number)
                    continue
                row = dict(zip(MANIFEST_COLUMNS, fields))
                self.rows[row["key"]] = row
                count += 1
        return count

    def _acquire_lock(self) -> None:
        if fcntl is None:
            return
        handle = open(self.lock_path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise cli.UserError(f"another phase 1c download is writing {self.path} (lock {self.lock_path}): "
                                "wait for it to finish") from None
        self._lock = handle

    def _release_lock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def _valid_status(status: str) -> bool:
    return status in (STATUS_OK, STATUS_MISSING) or status.startswith(FAILED_PREFIX)


def read_manifest(path: Path) -> pd.DataFrame:
    """The manifest as a table of strings (for callers and tests)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


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

    Use as a context manager: it holds the manifest (and its lock) and closes the source.
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
        except BaseException:
            self.source.close()
            raise
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
            try:
                pending: set[Future] = {executor.submit(self._process, t, previous[t.key]) for t in ordered}
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        result = future.result()
                        results.append(result)
                        self._record(result)
                        if result.fetched:
                            fetched_bytes += result.size_bytes or 0
                        bar.update(1)
                        bar.set_postfix_str(f"{fetched_bytes / 1e6:.1f} MB", refresh=False)
            except BaseException:
                self._stop.set()
                executor.shutdown(wait=True, cancel_futures=True)
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
        last = "no attempt"
        for attempt in range(1, self.settings.attempts + 1):
            if self._stop.is_set():
                return FileResult(target.key, failed_status("interrupted"), attempts=attempt - 1)
            try:
                size, md5_hex = self._download_once(target)
                return FileResult(target.key, STATUS_OK, size, md5_hex, fetched=True, attempts=attempt)
            except ObjectMissing:
                return FileResult(target.key, STATUS_MISSING, attempts=attempt)
            except PermanentError as exc:
                return FileResult(target.key, failed_status(str(exc)), attempts=attempt)
            except TransferError as exc:
                last = str(exc)
                if attempt < self.settings.attempts:
                    delay_s = min(MAX_BACKOFF_S, self.settings.backoff_s * 2 ** (attempt - 1))
                    if exc.retry_after_s is not None:
                        delay_s = max(delay_s, min(exc.retry_after_s, MAX_BACKOFF_S))
                    logger.info("%s: attempt %d of %d failed (%s); retrying in %.2f s", target.key, attempt,
                                self.settings.attempts, last, delay_s)
                    self._stop.wait(delay_s)
        return FileResult(target.key, failed_status(f"{last} (after {self.settings.attempts} attempts)"),
                          attempts=self.settings.attempts)

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
