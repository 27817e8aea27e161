"""Where phase 1c objects come from: the OEDI bucket over HTTP(S), or a local folder with the same keys.

Description
    A *source* lists keys below a prefix and opens one object as a stream of byte chunks:

    * :class:`HttpSource`: an S3-compatible bucket (default ``common.config.OEDI_SOURCE``); an object
      is ``GET <base>/<key>``, a listing is ListObjectsV2 (``?list-type=2``), continuation tokens
      followed until the last page;
    * :class:`LocalSource`: a folder holding the same keys (the embedded sample, or a mirror);
      listing walks the folder, opening reads the file.

    Retries: exactly one layer is responsible for each failure.

    * No connection at all (refused, DNS, connect timeout): urllib3 retries the connect
      ``retries`` times with exponential backoff, and that is all; the object (or listing page)
      then fails without further attempts.
    * Anything once a server has answered or started answering (HTTP 429 and 5xx, read timeouts,
      connections reset or closed mid-body, short bodies, failed checks): urllib3 does not retry
      (no read or status retries, empty ``status_forcelist``, Retry-After not acted on); the caller's
      attempt loop does, ``retries + 1`` attempts in all, waiting :func:`retry_delay_s` between
      them (exponential backoff, at least the server's Retry-After). For objects that loop is
      the downloader's whole-file loop; for listings it is :meth:`HttpSource.list_objects`.

    So an object that always answers HTTP 500 is requested exactly ``retries + 1`` times.

Inputs
    the objects and listings of the source

Outputs
    none (the downloader writes the files)

Settings read
    common.config: OEDI_SOURCE (through the callers' defaults)
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import math
import os
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Protocol
from urllib.parse import quote

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from common import cli

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------- constants
#: HTTP statuses worth another attempt (by the caller's attempt loop, never by urllib3)
RETRY_STATUS_CODES = (429, 500, 502, 503, 504)
DEFAULT_WORKERS = 8
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 60.0
#: connect retries (urllib3), and extra attempts after the first (objects and listing pages)
DEFAULT_RETRIES = 5
#: backoff factor [s]: waits of about backoff x 2^(n-1) between attempts
DEFAULT_BACKOFF_S = 1.0
#: longest exponential-backoff wait between two attempts [s]
MAX_BACKOFF_S = 60.0
#: longest Retry-After wait honoured [s]; a longer one is cut to this
MAX_RETRY_AFTER_S = 300.0
CHUNK_BYTES = 1 << 20
USER_AGENT = f"dss-xlrm-phase1c python-requests/{requests.__version__}"

#: what a download leaves beside its files (partial objects, the manifest's journal, locks): never
#: listed as objects of a local source
PART_SUFFIX = ".part"
ARTEFACT_SUFFIXES = (PART_SUFFIX, ".journal", ".lock")

_HTTP_PREFIXES = ("http://", "https://")


# ------------------------------------------------------------------------------------------- errors
class SourceUnreachable(Exception):
    """The source cannot be reached at all (connection refused, DNS failure, connect timeout)."""


class ListingError(Exception):
    """A listing of the source failed after its attempts."""


class ObjectMissing(Exception):
    """The source has no object under this key (HTTP 404, or no such file)."""


class TransferError(Exception):
    """A failure worth another whole-file attempt (server error, broken body, failed verification)."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CorruptObject(TransferError):
    """The bytes arrived as announced but are not a usable file (e.g. a parquet without a footer)."""


class PermanentError(Exception):
    """A failure another attempt will not fix, or whose retries are spent: HTTP 403, an unsafe key,
    a local disk error, a connection that could not be made after urllib3's connect retries."""


# ------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class ObjectInfo:
    """One object of a listing: key, size [bytes] and ETag (as given, quotes removed)."""

    key: str
    size_bytes: int | None = None
    etag: str | None = None


@dataclass
class Body:
    """An open object: its chunks, and the size [bytes] and ETag the source announced."""

    chunks: Iterator[bytes]
    size_bytes: int | None
    etag: str | None


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
        """Attempts per object (and per listing page) once a server answers: retries + 1."""
        return self.retries + 1


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


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header [s]: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def retry_delay_s(attempt: int, backoff_s: float, retry_after_s: float | None = None) -> float:
    """The wait [s] after failed attempt ``attempt`` (1-based): ``backoff x 2^(attempt-1)`` capped at
    MAX_BACKOFF_S, and at least the server's Retry-After (capped at MAX_RETRY_AFTER_S)."""
    delay_s = min(MAX_BACKOFF_S, backoff_s * 2 ** (attempt - 1))
    if retry_after_s is not None and math.isfinite(retry_after_s):
        delay_s = max(delay_s, min(retry_after_s, MAX_RETRY_AFTER_S))
    return delay_s


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


# ------------------------------------------------------------------------------------------- sources
class Source(Protocol):
    label: str
    #: whether another attempt can give other bytes (False for a local folder: same file each time)
    remote: bool

    def probe(self, prefix: str) -> None: ...

    def list_objects(self, prefix: str) -> list[ObjectInfo]: ...

    def open(self, key: str) -> contextlib.AbstractContextManager[Body]: ...

    def describe(self, key: str) -> str: ...

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
    """urllib3 logs every connect retry as a WARNING; they show with ``-v`` only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Retrying (") or logger.isEnabledFor(logging.DEBUG)


def _install_urllib3_filter() -> None:
    pool_logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _Urllib3RetryFilter) for f in pool_logger.filters):
        pool_logger.addFilter(_Urllib3RetryFilter())


def connect_only_retry(settings: TransferSettings) -> Retry:
    """urllib3's part of the retry policy: connection attempts only (see the module docstring)."""
    return Retry(
        total=settings.retries, connect=settings.retries, read=False, status=0, other=0, redirect=False,
        status_forcelist=(), respect_retry_after_header=False, allowed_methods=frozenset({"GET", "HEAD"}),
        backoff_factor=settings.backoff_s, backoff_max=MAX_BACKOFF_S, raise_on_status=False,
        raise_on_redirect=False,
    )


class HttpSource:
    """An S3-compatible bucket over HTTP(S): GET objects, ListObjectsV2 listings."""

    remote = True

    def __init__(self, base_url: str, settings: TransferSettings):
        _install_urllib3_filter()
        self.base_url = base_url.rstrip("/")
        self.label = self.base_url
        self.timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self.attempts = settings.attempts
        self.backoff_s = settings.backoff_s
        adapter = HTTPAdapter(max_retries=connect_only_retry(settings), pool_connections=1,
                              pool_maxsize=max(1, settings.workers), pool_block=True)
        self.session = requests.Session()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # the bytes as stored: what the ETag and the listing's Size describe
        self.session.headers.update({"Accept-Encoding": "identity", "User-Agent": USER_AGENT})

    def close(self) -> None:
        self.session.close()

    def describe(self, key: str) -> str:
        return object_url(self.base_url, key)

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
        """One listing page, with up to ``attempts`` attempts for server errors and broken answers."""
        where = f"{self.base_url}/?prefix={prefix} (page {page + 1})"
        last = "no attempt"
        for attempt in range(1, self.attempts + 1):
            retry_after_s = None
            try:
                response = self._get(self.base_url + "/", params=params)
                if response.status_code == 200:
                    return parse_list_objects_v2(response.content)
                last = f"HTTP {response.status_code}: {' '.join(response.text[:200].split())}"
                if response.status_code not in RETRY_STATUS_CODES and response.status_code < 500:
                    break
                retry_after_s = parse_retry_after(response.headers.get("Retry-After"))
            except SourceUnreachable as exc:  # urllib3 has spent the connect retries
                raise ListingError(f"cannot list {where}: cannot connect ({exc})") from None
            except requests.RequestException as exc:
                last = _short(exc)
            except ListingError as exc:
                last = str(exc)
            if attempt < self.attempts:
                delay_s = retry_delay_s(attempt, self.backoff_s, retry_after_s)
                logger.debug("listing %s attempt %d of %d failed (%s); retrying in %.2f s", where, attempt,
                             self.attempts, last, delay_s)
                time.sleep(delay_s)
        raise ListingError(f"cannot list {where}: {last}")

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[Body]:
        """One GET of ``key``: exactly one request (connect retries aside), never retried here."""
        url = object_url(self.base_url, key)
        try:
            response = self._get(url, stream=True)
        except SourceUnreachable as exc:  # urllib3 has spent the connect retries
            raise PermanentError(f"cannot connect: {exc}") from None
        except requests.RequestException as exc:
            raise TransferError(_short(exc)) from None
        with response:
            status = response.status_code
            if status == 404:
                raise ObjectMissing(f"HTTP 404 for {url}")
            if status != 200:
                message = f"HTTP {status} for {url}"
                if status in RETRY_STATUS_CODES or status >= 500:
                    raise TransferError(message, parse_retry_after(response.headers.get("Retry-After")))
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

    remote = False

    def __init__(self, root: Path):
        self.root = Path(root).expanduser().resolve()
        self.label = str(self.root)

    def close(self) -> None:
        pass

    def describe(self, key: str) -> str:
        return str(self._path(key))

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
                    if key.startswith(prefix) and not name.endswith(ARTEFACT_SUFFIXES):
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
