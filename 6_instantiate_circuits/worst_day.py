"""A run solved on several design days (``--days K``): one instance per day, the run's result its worst day.

Description
    With ``--days K`` > 1 (phase 2's ``find_max_day_curve.py --days K``: the K highest distinct peak days of
    each feeder and season, rank 1 the design day) a run (feeder, case) is built and solved once per day,
    each day exactly as a one-day run is (``batch_runner.run_task`` on that day's feeder context: the same
    hosts, seeds and settings; only the day's profiles, PV shape and device schedules differ), in its own
    instance folder ``<case>/day<k>/`` that plain OpenDSS compiles and solves
    (``solve mode=daily stepsize=15m number=96``), with its own ``summary.json`` and ``timeseries.parquet``.

    The run's worst day is the day with the highest ``WORST_DAY_METRIC`` (``peak_kw``, the feeder-head peak;
    a tie goes to the lower rank). The run folder ``<case>/`` then holds the run as phase 7 reads it:
    ``summary.json`` is the worst day's (its metrics, ``design_day``, ``inputs_digest``) plus ``worst_day``
    (its date) and ``days`` (the rule, the worst rank, and per day its rank, date, folder, status, the
    metric and the digests), ``timeseries.parquet`` the worst day's series, ``scenario_assignments.json`` a
    copy of the worst day's, and ``Master.dss`` one line, ``Redirect day<w>/Master.dss``, so that the run
    folder compiles to its worst day. ``shared_digest`` is the design day's (rank 1), the one phase 7
    compares with the feeder's ``_shared/<feeder>/shared_digest.txt``; every day's own is in ``days``.
    A run with a failed day is a failed run (the day and its message), never a worst day of the others.
    Day folders of ranks above K (an earlier, larger ``--days``) are removed.

Settings read
    common.config: WORST_DAY_METRIC
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

import pandas as pd

import daily_power_flow
from common import config
from common.io import read_json, write_text
from common.paths import INSTANCE_FILES, Workspace

#: instance files of a one-day run that a several-day run folder does not keep (they live in its day folders)
_DAY_FILES = ("Loads.dss", "EVs.dss", "PV.dss", "Storage.dss")


def worst_rank(values: dict[int, float]) -> int:
    """The rank whose value of ``WORST_DAY_METRIC`` is highest; a tie goes to the lower rank."""
    return min(values, key=lambda rank: (-float(values[rank]), rank))


def run_summary(days: dict[int, dict[str, Any]], metric: str = config.WORST_DAY_METRIC) -> dict[str, Any]:
    """The run's summary from its days' summaries ``{rank: summary.json}``: the worst day's, with
    ``worst_day`` and ``days`` (see the module docstring); a failed run when any day failed."""
    ranks = sorted(days)
    per_day = [{"rank": r, "date": days[r].get("design_day", ""), "folder": f"day{r}", "status": days[r]["status"],
                metric: days[r].get("metrics", {}).get(metric), "inputs_digest": days[r].get("inputs_digest", ""),
                "shared_digest": days[r].get("shared_digest", "")} for r in ranks]
    block = {"n_days": len(ranks), "worst_day_metric": metric, "worst_rank": None, "per_day": per_day}
    failed = [r for r in ranks if days[r]["status"] != "ok"]
    if failed:
        r = failed[0]
        summary = {**days[r], "status": "failed", "metrics": {},
                   "message": f"day {r} of {len(ranks)} ({days[r].get('design_day', '')}) failed: {days[r]['message']}"}
        worst = None
    else:
        r = worst_rank({k: days[k]["metrics"][metric] for k in ranks})
        summary = dict(days[r])
        worst = days[r].get("design_day", "")
        block["worst_rank"] = r
    summary["shared_digest"] = days[ranks[0]].get("shared_digest", "")  # the design day's: phase 7's check
    summary["worst_day"] = worst
    summary["days"] = block
    summary.pop("timeseries_sha256", None)
    return summary


def write_run(run_dir: Path, days: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Write the run folder's outputs from its days (already written in ``day<k>/``); returns the summary."""
    summary = run_summary(days)
    for name in _DAY_FILES:
        (run_dir / name).unlink(missing_ok=True)
    table = pd.DataFrame()
    if summary["status"] == "ok":
        worst = run_dir / f"day{summary['days']['worst_rank']}"
        table = pd.read_parquet(worst / INSTANCE_FILES["timeseries"])
        write_text(run_dir / INSTANCE_FILES["assignments"], (worst / INSTANCE_FILES["assignments"]).read_text())
        write_text(run_dir / INSTANCE_FILES["master"],
                   f"! the run's worst of {len(days)} design days ({summary['worst_day']}, "
                   f"highest {summary['days']['worst_day_metric']}): its own instance\n"
                   f"Redirect {worst.name}/{INSTANCE_FILES['master']}\n")
    else:
        for name in (INSTANCE_FILES["assignments"], INSTANCE_FILES["master"]):
            (run_dir / name).unlink(missing_ok=True)
    return daily_power_flow.write_outputs(run_dir, table, summary)


def run_days(task: dict[str, Any], one_day: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Solve one run on each of its ``task["days"]`` design days with ``one_day`` (``batch_runner.run_task``
    on a day task: ``day_rank`` k, that day's ``shared_digest``), then write the run (:func:`write_run`).
    Returns the run's batch-index record (status, message, the worst day's peak, skipped when every day
    was, timings summed over the days)."""
    n_days = int(task["days"])
    ws = Workspace(Path(task["data_dir"]))
    run_dir = ws.instance_dir(task["state"], task["season"], task["design"], task["feeder"], task["case_key"])
    records, summaries = {}, {}
    for rank in range(1, n_days + 1):
        day_task = {k: v for k, v in task.items() if k not in ("days", "shared_digests")}
        day_task.update(day_rank=rank, shared_digest=task["shared_digests"][rank - 1])
        records[rank] = one_day(day_task)
        if records[rank]["status"] == "instantiated":
            continue
        day_dir = ws.day_instance_dir(task["state"], task["season"], task["design"], task["feeder"], task["case_key"], rank)
        try:
            summaries[rank] = read_json(day_dir / INSTANCE_FILES["summary"])
        except (OSError, ValueError) as exc:  # the day could not even record its failure: the run records it
            summaries[rank] = {"state": task["state"], "season": task["season"], "design": task["design"],
                               "feeder": task["feeder"], "case": task["case_key"], "design_day": "",
                               "status": "failed", "metrics": {},
                               "message": records[rank].get("message") or f"no readable summary.json in {day_dir} ({exc})"}
    for extra in sorted(run_dir.glob("day*")):  # days of an earlier, larger --days
        if extra.is_dir() and extra.name[3:].isdigit() and int(extra.name[3:]) > n_days:
            shutil.rmtree(extra)
    record = dict(records[1])
    timings: dict[str, float] = {}
    for r in records.values():
        for key, value in r["timings"].items():
            if key.endswith("_s") and value is not None:
                timings[key] = round(timings.get(key, 0.0) + float(value), 4)
    record["timings"] = {**records[1]["timings"], **timings}
    if not summaries:  # instances only (no --run)
        return record
    summary = write_run(run_dir, summaries)
    record.update(status=summary["status"], message=summary["message"],
                  skipped=all(r.get("skipped") for r in records.values()),
                  peak_kw=summary["metrics"].get("peak_kw"))
    return record
