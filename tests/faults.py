"""Faults that tests inject into real runs (module-level, so that pool workers can import them).

``run_or_die`` runs a phase 6 task with :func:`batch_runner.run_task`, unless the task carries a
``fault``: ``"die"`` kills the worker process with SIGKILL every time (as the out-of-memory killer
would), ``"die_once"`` only the first time (a marker file records that it died once).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any


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
