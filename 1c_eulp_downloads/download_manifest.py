"""``manifest.csv`` of a phase 1c dataset root: one row per bucket key, crash-safe, one writer at a time.

Description
    Columns: ``key``, ``size`` [bytes], ``checksum`` [MD5 hex of the file], ``source``, ``time``
    [UTC, ISO 8601], ``status`` (``ok``, ``missing`` or ``failed: <reason>``).

    Each recorded row is appended at once to ``manifest.csv.journal`` so that a killed run loses
    nothing; the manifest is rewritten atomically (merged with the previous one, latest row per key
    wins, sorted by key) at the end of a run, every minute during it, and at the start of the next
    run if a journal was left. ``common.io.folder_lock`` on the manifest's folder
    (``.lock``) keeps two runs from writing the same manifest, or from cleaning
    up each other's partial files.

Inputs / Outputs
    <dataset root>/manifest.csv, manifest.csv.journal (transient), .lock

Settings read
    none
"""

from __future__ import annotations

import contextlib
import csv
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from common import cli
from common.io import folder_lock, write_csv

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("key", "size", "checksum", "source", "time", "status")
JOURNAL_SUFFIX = ".journal"
#: the step named by the folder lock (its file is ``.lock``)
LOCK_WHAT = "phase 1c download"
STATUS_OK = "ok"
STATUS_MISSING = "missing"
FAILED_PREFIX = "failed: "
#: how often the manifest is rewritten during a run [s] (the journal holds every row meanwhile)
MANIFEST_SAVE_INTERVAL_S = 60.0


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def failed_status(reason: str) -> str:
    return FAILED_PREFIX + " ".join(str(reason).split())


def valid_status(status: str) -> bool:
    return status in (STATUS_OK, STATUS_MISSING) or status.startswith(FAILED_PREFIX)


class Manifest:
    """``manifest.csv`` of one dataset root, with its append-only journal and its folder lock."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + JOURNAL_SUFFIX)
        self.rows: dict[str, dict[str, str]] = {}
        self._journal = None
        self._writer = None
        self._lock = contextlib.ExitStack()
        self._last_save = time.monotonic()

    # ---- life cycle
    def open(self) -> "Manifest":
        """Take the folder lock (``common.io.LockHeld`` if another run holds it), read the manifest,
        replay a journal left by a killed run."""
        self._lock.enter_context(folder_lock(self.path.parent, LOCK_WHAT))
        try:
            self.rows = self._read_manifest()
            replayed = self._replay_journal()
            if replayed:
                logger.info("recovered %d row(s) of an interrupted run from %s", replayed, self.journal_path)
                self.save()
            self._journal = open(self.journal_path, "a", encoding="utf-8", newline="")
        except BaseException:
            self._lock.close()
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
            self._lock.close()

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
                if len(fields) != len(MANIFEST_COLUMNS) or not valid_status(fields[-1]):
                    logger.warning("%s line %d is incomplete (a run was killed while writing it); ignored",
                                   self.journal_path, number)
                    continue
                row = dict(zip(MANIFEST_COLUMNS, fields))
                self.rows[row["key"]] = row
                count += 1
        return count


def read_manifest(path: Path) -> pd.DataFrame:
    """The manifest as a table of strings (for callers and tests)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)
