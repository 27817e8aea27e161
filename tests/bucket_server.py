"""A real S3-like HTTP server on 127.0.0.1 that serves a folder in the bucket layout, with faults.

Used by the phase 1c tests and by ``benchmarks/bench_downloads.py``. It answers

* ``GET /<key>`` (and ``HEAD``): the file's bytes with Content-Length and a single-part MD5 ETag;
  404 with an S3 ``NoSuchKey`` document when there is no such file;
* ``GET /?list-type=2&prefix=...&continuation-token=...&max-keys=...``: ListObjectsV2 XML in the S3
  namespace, ``page_size`` keys per page at most (small by default, so that clients must follow
  ``NextContinuationToken``).

It counts object requests per key (``request_counts``) and listing requests (``list_requests``), and
injects faults per key for the first N requests (:meth:`BucketServer.add_fault`), or for the first N
listing requests (:meth:`BucketServer.add_listing_fault`, ``http500`` and ``http429`` only):

``http500``   HTTP 500
``http429``   HTTP 429 with ``Retry-After: 1``
``reset``     headers and half the body, then the connection is reset (RST)
``truncate``  the full Content-Length header but half the body, then a normal close
``corrupt``   the full length with one byte changed, and the true ETag
``slow``      wait ``delay_s`` before answering (longer than the client's read timeout)
``stall``     headers and half the body, then wait ``delay_s`` and close (a hung transfer)
``missing``   HTTP 404 even though the file exists

``latency_s`` adds a wait before every object answer (a simulated time to first byte).

Usage::

    with BucketServer(folder) as server:
        server.add_fault(key, "http500", times=2)
        ...  # fetch from server.url
        assert server.request_counts[key] == 3

    python tests/bucket_server.py FOLDER [--page-size N] [--latency-ms MS]   # prints the URL, serves
                                                                           # until stdin closes
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import socket
import struct
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
FAULT_KINDS = ("http500", "http429", "reset", "truncate", "corrupt", "slow", "stall", "missing")
DEFAULT_PAGE_SIZE = 3
S3_MAX_KEYS = 1000


@dataclass
class Fault:
    kind: str
    remaining: int
    delay_s: float = 0.0


class BucketServer:
    """Serve ``root`` as a bucket on an ephemeral loopback port, in a daemon thread."""

    def __init__(self, root: Path, page_size: int = DEFAULT_PAGE_SIZE, latency_s: float = 0.0):
        self.root = Path(root).resolve()
        self.page_size = page_size
        self.latency_s = latency_s
        self.request_counts: Counter[str] = Counter()
        self.list_requests = 0
        self._faults: dict[str, Fault] = {}
        self._listing_fault: Fault | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._etags: dict[tuple[str, int, int], str] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- life cycle
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "BucketServer":
        handler = type("BoundHandler", (_Handler,), {"bucket": self})
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="bucket-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in slow or stall faults
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "BucketServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ---- faults and counts
    def add_fault(self, key: str, kind: str, times: int = 1, delay_s: float = 0.0) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults[key] = Fault(kind, times, delay_s)

    def add_listing_fault(self, kind: str, times: int = 1) -> None:
        if kind not in ("http500", "http429"):
            raise ValueError(f"listing faults are http500 or http429, not {kind!r}")
        with self._lock:
            self._listing_fault = Fault(kind, times)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._listing_fault = None

    def reset_counts(self) -> None:
        with self._lock:
            self.request_counts.clear()
            self.list_requests = 0

    def _take(self, key: str) -> Fault | None:
        """Count a request for ``key`` and return the fault it gets, if any."""
        with self._lock:
            self.request_counts[key] += 1
            fault = self._faults.get(key)
            if fault is None or fault.remaining <= 0:
                return None
            fault.remaining -= 1
            return Fault(fault.kind, 1, fault.delay_s)

    def _count_listing(self) -> Fault | None:
        """Count a listing request and return the fault it gets, if any."""
        with self._lock:
            self.list_requests += 1
            fault = self._listing_fault
            if fault is None or fault.remaining <= 0:
                return None
            fault.remaining -= 1
            return Fault(fault.kind, 1)

    # ---- bucket contents
    def path_of(self, key: str) -> Path | None:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            return None
        return path if path.is_file() else None

    def etag_of(self, path: Path) -> str:
        stat = path.stat()
        cache_key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            etag = self._etags.get(cache_key)
        if etag is None:
            etag = hashlib.md5(path.read_bytes()).hexdigest()
            with self._lock:
                self._etags[cache_key] = etag
        return etag

    def keys(self, prefix: str) -> list[str]:
        folder_key = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        folder = self.root / folder_key if folder_key else self.root
        found = []
        if folder.is_dir():
            for dirpath, _, filenames in os.walk(folder):
                for name in filenames:
                    key = (Path(dirpath) / name).relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        found.append(key)
        return sorted(found)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:  # noqa: D401 - socketserver API
        pass  # clients that give up (timeouts, retries) break pipes on purpose in these tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bucket: BucketServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - BaseHTTPRequestHandler API
        pass

    # ---- helpers
    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, *, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
               head: bool = False) -> None:
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{escape(message)}</Message></Error>").encode()
        self._send(status, body, {"Content-Type": "application/xml", **(headers or {})}, head=head)

    # ---- verbs
    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        if parts.path in ("", "/"):
            if query.get("list-type") == ["2"]:
                self._list(query, head)
            else:
                self._error(400, "InvalidRequest", "only ListObjectsV2 (list-type=2) is served", head=head)
            return
        key = unquote(parts.path.lstrip("/"))
        if self.bucket.latency_s > 0 and self.bucket._stopping.wait(self.bucket.latency_s):
            self.close_connection = True
            return
        fault = self.bucket._take(key)
        path = self.bucket.path_of(key)
        if path is None or (fault is not None and fault.kind == "missing"):
            self._error(404, "NoSuchKey", "The specified key does not exist.", head=head)
            return
        data = path.read_bytes()
        headers = {"ETag": f'"{self.bucket.etag_of(path)}"', "Content-Type": "application/octet-stream",
                   "Accept-Ranges": "bytes"}
        kind = fault.kind if fault is not None else None
        if kind == "http500":
            self._error(500, "InternalError", "We encountered an internal error. Please try again.", head=head)
        elif kind == "http429":
            self._error(429, "SlowDown", "Please reduce your request rate.", {"Retry-After": "1"}, head=head)
        elif kind == "slow":
            if self.bucket._stopping.wait(fault.delay_s):
                self.close_connection = True
                return
            self._send(200, data, headers, head=head)
        elif kind in ("reset", "truncate", "stall") and not head:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            if kind == "reset":
                # SO_LINGER 0: close() sends RST instead of FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif kind == "stall":
                self.bucket._stopping.wait(fault.delay_s)
        elif kind == "corrupt" and not head:
            broken = bytearray(data)
            broken[len(broken) // 2] ^= 0xFF
            self._send(200, bytes(broken), headers)
        else:
            self._send(200, data, headers, head=head)

    def _list(self, query: dict[str, list[str]], head: bool) -> None:
        fault = self.bucket._count_listing()
        if fault is not None and fault.kind == "http500":
            self._error(500, "InternalError", "We encountered an internal error. Please try again.", head=head)
            return
        if fault is not None and fault.kind == "http429":
            self._error(429, "SlowDown", "Please reduce your request rate.", {"Retry-After": "1"}, head=head)
            return
        prefix = query.get("prefix", [""])[0]
        token = query.get("continuation-token", [None])[0]
        start_after = query.get("start-after", [""])[0]
        try:
            max_keys = int(query.get("max-keys", [str(S3_MAX_KEYS)])[0])
        except ValueError:
            self._error(400, "InvalidArgument", "max-keys must be an integer", head=head)
            return
        if token:
            try:
                start_after = base64.urlsafe_b64decode(token.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                self._error(400, "InvalidArgument", "The continuation token provided is incorrect", head=head)
                return
        keys = [k for k in self.bucket.keys(prefix) if k > start_after]
        page_size = max(0, min(max_keys, self.bucket.page_size))
        page, rest = keys[:page_size], keys[page_size:]
        truncated = bool(rest) and bool(page)
        entries = []
        for key in page:
            path = self.bucket.root / key
            entries.append(f"<Contents><Key>{escape(key)}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
                           f"<ETag>&quot;{self.bucket.etag_of(path)}&quot;</ETag><Size>{path.stat().st_size}</Size>"
                           "<StorageClass>STANDARD</StorageClass></Contents>")
        token_xml = ""
        if truncated:
            next_token = base64.urlsafe_b64encode(page[-1].encode()).decode()
            token_xml = f"<NextContinuationToken>{next_token}</NextContinuationToken>"
        if token:
            token_xml = f"<ContinuationToken>{escape(token)}</ContinuationToken>" + token_xml
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{S3_NAMESPACE}">'
                f"<Name>loopback</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>"
                f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
                + "".join(entries) + token_xml + "</ListBucketResult>").encode()
        self._send(200, body, {"Content-Type": "application/xml"}, head=head)


def main(argv: list[str] | None = None) -> int:
    """Serve a folder until stdin closes (for benchmarks that keep the server in its own process)."""
    parser = argparse.ArgumentParser(description="Serve a folder as an S3-like bucket on 127.0.0.1.")
    parser.add_argument("root", type=Path)
    parser.add_argument("--page-size", type=int, default=S3_MAX_KEYS)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="wait before each object answer [ms]")
    args = parser.parse_args(argv)
    with BucketServer(args.root, page_size=args.page_size, latency_s=args.latency_ms / 1000.0) as server:
        sys.stdout.write(server.url + "\n")
        sys.stdout.flush()
        sys.stdin.read()  # returns when the parent closes our stdin (or exits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
