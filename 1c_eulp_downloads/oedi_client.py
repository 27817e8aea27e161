"""The phase 1c download client: verified, resumable downloads from the OEDI bucket (or a local folder).

Description
    The public face of the one download client shared by ``download_parquets_homes.py``,
    ``download_parquets_commercial.py`` and ``download_smartds.py``. It gathers the pieces that live
    in three modules beside it, and adds the shared command-line flags:

    * ``oedi_sources.py``: the sources (the bucket over HTTP(S) with ListObjectsV2 listings, or a
      local folder holding the same keys) and the retry policy: urllib3 retries connections only,
      everything after a server answered is retried by the caller's attempt loop, ``--retries``
      + 1 attempts in all;
    * ``download_manifest.py``: ``manifest.csv`` (one row per key: size, MD5, source, time,
      status), its journal and its folder lock;
    * ``oedi_downloader.py``: the bounded thread pool that streams each object to ``.part``,
      checks it (size, MD5 against a single-part ETag, parquet footer), renames it into place, and
      skips on a re-run what the manifest and the disk both vouch for.

    Both kinds of source go through the same transfer, verification, manifest and summary code,
    so the offline sample exercises the real code path.

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
import math

from common import cli, config
from download_manifest import (FAILED_PREFIX, MANIFEST_COLUMNS, MANIFEST_NAME, STATUS_MISSING, STATUS_OK, Manifest,
                               failed_status, read_manifest, utc_now_iso)
from oedi_downloader import (Downloader, FileResult, Summary, Target, check_download, clean_leftovers, file_md5,
                             local_path, parquet_problem, verified_on_disk)
from oedi_sources import (DEFAULT_BACKOFF_S, DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S, DEFAULT_RETRIES,
                          DEFAULT_WORKERS, PART_SUFFIX, RETRY_STATUS_CODES, Body, CorruptObject, HttpSource,
                          ListingError, LocalSource, ObjectInfo, ObjectMissing, PermanentError, SourceUnreachable,
                          TransferError, TransferSettings, check_key, normalise_source, object_url, open_source,
                          parse_list_objects_v2, parse_retry_after, probe_source, retry_delay_s, single_part_md5)

__all__ = [
    "Body", "CorruptObject", "Downloader", "FileResult", "HttpSource", "ListingError", "LocalSource", "Manifest",
    "ObjectInfo", "ObjectMissing", "PermanentError", "SourceUnreachable", "Summary", "Target", "TransferError",
    "TransferSettings", "FAILED_PREFIX", "MANIFEST_COLUMNS", "MANIFEST_NAME", "PART_SUFFIX", "RETRY_STATUS_CODES",
    "STATUS_MISSING", "STATUS_OK", "add_transfer_arguments", "check_download", "check_key", "clean_leftovers",
    "failed_status", "file_md5", "local_path", "normalise_source", "object_url", "open_source", "parquet_problem",
    "parse_list_objects_v2", "parse_retry_after", "probe_source", "read_manifest", "retry_delay_s",
    "settings_from_args", "single_part_md5", "timeout_pair", "nonnegative_seconds", "utc_now_iso",
    "verified_on_disk",
]


# ------------------------------------------------------------------------------------------- argparse types
def timeout_pair(text: str) -> tuple[float, float]:
    """argparse type of ``--timeout``: ``CONNECT[,READ]`` seconds, each finite and > 0 (one sets both)."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"{text!r}: give CONNECT or CONNECT,READ seconds, e.g. 10,60")
    try:
        values = [cli.positive_float(p) for p in parts]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; give CONNECT or CONNECT,READ seconds, e.g. 10,60") from None
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def nonnegative_seconds(text: str) -> float:
    """argparse type of ``--backoff``: a finite number of seconds >= 0 (0: retry at once)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: need a finite number of seconds, 0 or more")
    return value


# ------------------------------------------------------------------------------------------- flags
def add_transfer_arguments(parser: argparse.ArgumentParser, *, default_source: str = config.OEDI_SOURCE) -> None:
    """The source and transfer flags shared by the phase 1c scripts."""
    group = parser.add_argument_group("source and transfer")
    group.add_argument("--source", default=default_source,
                       help=f"HTTP(S) base URL of the bucket, s3://bucket, or a local folder holding the "
                            f"same keys, e.g. <data>/sample/oedi (default {default_source})")
    group.add_argument("--workers", type=cli.positive_int, default=DEFAULT_WORKERS,
                       help=f"parallel downloads (default {DEFAULT_WORKERS})")
    group.add_argument("--timeout", type=timeout_pair, default=(DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S),
                       metavar="CONNECT[,READ]",
                       help=f"connect and read timeouts [s] (default {DEFAULT_CONNECT_TIMEOUT_S:g},"
                            f"{DEFAULT_READ_TIMEOUT_S:g}; one number sets both)")
    group.add_argument("--retries", type=cli.nonnegative_int, default=DEFAULT_RETRIES,
                       help="extra attempts per file and listing page after a server error, a broken or "
                            "short body or a failed check, and connect retries when no connection can be "
                            f"made (default {DEFAULT_RETRIES}; 0: one attempt)")
    group.add_argument("--backoff", type=nonnegative_seconds, default=DEFAULT_BACKOFF_S, metavar="SECONDS",
                       help=f"exponential backoff factor [s] between attempts (default {DEFAULT_BACKOFF_S:g}); "
                            "a server's Retry-After is waited at least")


def settings_from_args(args: argparse.Namespace) -> TransferSettings:
    """The transfer flags (already checked by their argparse types) as :class:`TransferSettings`."""
    connect_s, read_s = args.timeout
    return TransferSettings(workers=args.workers, connect_timeout_s=connect_s, read_timeout_s=read_s,
                            retries=args.retries, backoff_s=args.backoff,
                            progress=not bool(getattr(args, "quiet", False)))
