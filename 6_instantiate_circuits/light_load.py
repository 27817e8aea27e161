"""A run also solved on its feeder's light-load day (rooftop PV's worst day): ``<case>/light_load/``.

Description
    Phase 2 records, per feeder and season of ``LIGHT_LOAD_SEASONS`` (default summer), the light-load day:
    the day of the season's lowest daytime (``LIGHT_LOAD_DAY_WINDOW_H``, 10-16 h) 15-min value of any variant
    feeder curve, one more row of design_days.csv (rank K+1 after the K peak days of ``--days``, ``kind``
    light_load). Rooftop PV's reverse flow and voltage rise are worst on that day, not on the peak day
    (FERC Order 792 SGIP screen 2.4.4.1.1, "daytime minimum load"; EPRI hosting capacity).

    Each run of such a season is first solved on its peak day(s) exactly as without a light-load day (the
    one-day run in ``<case>/``, or ``--days K``'s ``<case>/day<k>/`` and its worst day; ``--upgrades`` then
    upgrades the worst peak day's instance in ``<case>/``: the light-load day only measures), then once more on
    the light-load day, by the same machinery a day of ``--days`` uses (``batch_runner.run_task`` with that
    day's ``day_rank`` and shared digest: the same hosts, seeds and settings, only the day's profiles, PV shape
    and device schedules differ), in ``<case>/light_load/``: its own instance, ``summary.json`` and
    ``timeseries.parquet``, which plain OpenDSS compiles and solves (``solve mode=daily stepsize=15m number=96``).

    The run's ``summary.json`` stays the peak day's (its metrics, ``design_day``, ``worst_day`` among the peak
    ranks only, digests, ``timeseries_sha256``) and gains ``light_load`` (date, rank, folder, status, window,
    the light day's ``inputs_digest``, ``shared_digest`` and ``timeseries_sha256``) and, in ``metrics``, the
    light day's PV-relevant metrics under ``light_load_<metric>`` (``common.schema.LIGHT_LOAD_METRICS``,
    with ``light_load_head_min_kw``, the head's lowest three-phase kW of that day, from its series). A run whose
    light-load day failed is a failed run (no metrics, its peak-day series and upgrades removed), with a
    message naming the light-load day, as a failed day of ``--days`` fails its run.

Settings read
    common.config: LIGHT_LOAD_SEASONS, LIGHT_LOAD_DAY_WINDOW_H (through phase 2's design_days.csv)
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

import pandas as pd

import daily_power_flow
import upgrade_circuit
from common import config, schema
from common.io import atomic_path, dumps_json, read_json
from common.paths import INSTANCE_FILES, LIGHT_LOAD_FOLDER, Workspace


def light_metrics(summary: dict[str, Any], series: pd.DataFrame) -> dict[str, Any]:
    """The ``light_load_<metric>`` metrics of the light-load day's ``summary`` and head ``series``."""
    metrics = summary.get("metrics", {})
    out = {f"light_load_{name}": metrics.get(name) for name in schema.LIGHT_LOAD_SOURCE_METRICS}
    p3 = pd.to_numeric(series["P_3ph (kW)"], errors="coerce") if "P_3ph (kW)" in series.columns else pd.Series(dtype=float)
    out["light_load_head_min_kw"] = float(p3.min()) if len(p3) and p3.notna().all() else None
    return out


def light_block(light: dict[str, Any], rank: int) -> dict[str, Any]:
    """The ``light_load`` block of the run's summary from the light-load day's summary."""
    return {"date": light.get("design_day", ""), "rank": int(rank), "folder": LIGHT_LOAD_FOLDER,
            "status": light.get("status", "failed"), "message": light.get("message", ""),
            "window_h": list(config.LIGHT_LOAD_DAY_WINDOW_H), "inputs_digest": light.get("inputs_digest", ""),
            "shared_digest": light.get("shared_digest", ""), "timeseries_sha256": light.get("timeseries_sha256", "")}


def merge(run_dir: Path, light: dict[str, Any], rank: int) -> dict[str, Any]:
    """Write the light-load day into the run's summary.json (see the module docstring); returns it."""
    summary_path = run_dir / INSTANCE_FILES["summary"]
    summary = read_json(summary_path)
    block = light_block(light, rank)
    if summary.get("status") != "ok":
        return summary
    if light.get("status") != "ok":
        failed = {**summary, "status": "failed", "metrics": {}, "light_load": block,
                  "message": f"light-load day {block['date']} (rank {rank}) failed: {light.get('message', '')}"}
        failed.pop("upgrades", None)
        upgrade_circuit.remove_outputs(run_dir)
        return daily_power_flow.write_outputs(run_dir, pd.DataFrame(), failed)
    series = pd.read_parquet(run_dir / LIGHT_LOAD_FOLDER / INSTANCE_FILES["timeseries"])
    metrics = {k: v for k, v in summary["metrics"].items() if k not in schema.LIGHT_LOAD_METRICS}
    merged = {**summary, "metrics": {**metrics, **light_metrics(light, series)}, "light_load": block}
    text = dumps_json(merged)
    if summary_path.read_text(encoding="utf-8") != text:  # a rerun of unchanged days leaves the file as it was
        with atomic_path(summary_path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return merged


def drop(run_dir: Path) -> None:
    """Remove an earlier light-load day from a run that now has none (phase 2 run again without a light-load
    season, a ``--feeder-dir`` run): the summary's ``light_load`` block and ``light_load_*`` metrics, and
    ``<case>/light_load/``; the run's other outputs stay as they are (a valid run is still skipped)."""
    summary_path = run_dir / INSTANCE_FILES["summary"]
    try:
        summary = read_json(summary_path)
    except (OSError, ValueError):
        summary = None
    if isinstance(summary, dict) and "light_load" in summary:
        metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
        summary = {**{k: v for k, v in summary.items() if k != "light_load"},
                   "metrics": {k: v for k, v in metrics.items() if k not in schema.LIGHT_LOAD_METRICS}}
        with atomic_path(summary_path) as tmp:
            tmp.write_text(dumps_json(summary), encoding="utf-8")
    if (run_dir / LIGHT_LOAD_FOLDER).is_dir():
        shutil.rmtree(run_dir / LIGHT_LOAD_FOLDER)


def run_with_light_day(task: dict[str, Any], one_run: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Solve one run on its peak day(s) (``one_run`` on the task without its light-load day: the one-day run or
    ``--days K``, with ``--upgrades`` if asked), then on its light-load day (``one_run`` on a day task:
    ``day_rank`` the light day's, ``light_day`` set, no upgrades) and merge it (:func:`merge`). Returns the
    run's batch-index record (the peak day's, failed when the light day failed; timings summed)."""
    light = task["light_load"]
    peak_task = {**{k: v for k, v in task.items() if k != "light_load"}, "with_light_day": True}
    record = one_run(peak_task)
    if record["status"] == "failed":  # a failed run stays the peak day's failure: no light-load solve to waste
        return record
    day_task = {k: v for k, v in peak_task.items() if k not in ("days", "shared_digests", "upgrades", "cost_tables")}
    day_task.update(day_rank=int(light["rank"]), shared_digest=light["shared_digest"], light_day=True)
    light_record = one_run(day_task)
    timings = dict(record["timings"])
    for key, value in light_record["timings"].items():
        if key.endswith("_s") and value is not None:
            timings[key] = round(float(timings.get(key) or 0.0) + float(value), 4)
    record = {**record, "timings": timings}
    if record["status"] == "instantiated" or light_record["status"] == "instantiated":
        return record
    ws = Workspace(Path(task["data_dir"]))
    run_dir = ws.instance_dir(task["state"], task["season"], task["design"], task["feeder"], task["case_key"])
    day_dir = ws.light_load_instance_dir(task["state"], task["season"], task["design"], task["feeder"], task["case_key"])
    try:
        day = read_json(day_dir / INSTANCE_FILES["summary"])
    except (OSError, ValueError) as exc:
        day = {"design_day": light.get("date", ""), "status": "failed",
               "message": light_record.get("message") or f"no readable summary.json in {day_dir} ({exc})"}
    if not day.get("design_day"):
        day["design_day"] = light.get("date", "")
    try:
        summary = merge(run_dir, day, int(light["rank"]))
    except (OSError, ValueError) as exc:  # the run's own summary unreadable: the peak day's record says why
        return {**record, "status": "failed", "message": f"light-load day: {type(exc).__name__}: {exc}"}
    return {**record, "status": summary["status"], "message": summary.get("message", ""),
            "skipped": bool(record.get("skipped")) and bool(light_record.get("skipped")),
            "peak_kw": summary.get("metrics", {}).get("peak_kw")}
