"""Faults that tests inject into real runs (module-level, so that pool workers can import them), and
the helpers the fault tests share to inject and check them.

``run_or_die`` runs a phase 6 task with :func:`batch_runner.run_task`, unless the task carries a
``fault``: ``"die"`` kills the worker process with SIGKILL every time (as the out-of-memory killer
would), ``"die_once"`` only the first time (a marker file records that it died once).
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path
from typing import Any


def truncate(path: Path) -> None:
    """Cut a file to half its bytes, as a killed copy or a full disk leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def folder_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below ``folder`` (step locks left out), to show that nothing was written."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def one_line(capsys: Any, path: Path) -> str:
    """The single stderr line a refused input gives; it names ``path`` and holds no traceback."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert str(path) in err[0] and "Traceback" not in err[0]
    return err[0]


def run_or_die(task: dict[str, Any]) -> dict[str, Any]:
    import batch_runner

    fault = task.get("fault")
    if fault == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "die_once":
        marker = Path(task["marker"])
        if not marker.exists():
            marker.write_text("died once\n")
            os.kill(os.getpid(), signal.SIGKILL)
    return batch_runner.run_task(task)
