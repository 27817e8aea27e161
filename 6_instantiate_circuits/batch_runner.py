"""Run many circuit instances: a local process pool, or a Dask distributed cluster.

One task is one (feeder, case) of a state, season and design: build the instance (deterministic,
cheap), then, unless its outputs are already complete, valid and made from the same inputs, solve
it and write ``timeseries.parquet`` and ``summary.json`` atomically (summary last: its presence
with status ``ok`` and the instance's ``inputs_digest`` marks a finished run). A failed run is
recorded with its message and the batch goes on; a re-run skips finished runs and redoes the
missing and failed ones. Each task keeps to a time limit (checked between solution steps).

Workers keep each feeder's shared context (customers, profiles, PV shape ...) in memory, so a
feeder's context is read once per worker, not once per case. Results are the same whichever
executor runs them: every input of a run is in its instance folder and the shared files.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable

import pyarrow.parquet as pq

import circuit_instance
import daily_power_flow
from common.io import atomic_path, dumps_json, read_json, write_parquet
from common.paths import INSTANCE_FILES, Workspace

logger = logging.getLogger(__name__)

#: per-process cache of feeder contexts: (data dir, state, season, feeder, ev stats) -> context
_CONTEXTS: dict[tuple, Any] = {}


def _context(task: dict[str, Any]) -> Any:
    key = (task["data_dir"], task["state"], task["season"], task["feeder"], task.get("ev_stats"))
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        ws = Workspace(Path(task["data_dir"]))
        ev_stats = Path(task["ev_stats"]) if task.get("ev_stats") else None
        if task.get("feeder_dir"):
            ctx = circuit_instance.load_generic_context(ws, task["state"], task["season"], Path(task["feeder_dir"]),
                                                        ev_stats)
        else:
            ctx = circuit_instance.load_context(ws, task["state"], task["season"], task["feeder"], ev_stats)
        circuit_instance.attach_shared(ctx, ws)
        if len(_CONTEXTS) > 8:
            _CONTEXTS.clear()
        _CONTEXTS[key] = ctx
    return ctx


def outputs_valid(instance_dir: Path, digest: str) -> dict[str, Any] | None:
    """The summary of a finished run made from the same inputs, or None."""
    summary_path = instance_dir / INSTANCE_FILES["summary"]
    ts_path = instance_dir / INSTANCE_FILES["timeseries"]
    if not (summary_path.is_file() and ts_path.is_file()):
        return None
    try:
        summary = read_json(summary_path)
        rows = pq.read_metadata(ts_path).num_rows
    except (OSError, ValueError):
        return None
    if summary.get("status") != "ok" or summary.get("inputs_digest") != digest or rows != 96:
        return None
    return summary


def _clean_stale_temporaries(folder: Path) -> None:
    """Remove temporary files an interrupted writer left (atomic writes never leave a final file half
    written, but a killed process leaves its ``.<name>.*.tmp``)."""
    if folder.is_dir():
        for path in folder.glob(".*.tmp"):
            path.unlink(missing_ok=True)


def _record(task: dict[str, Any], status: str, **extra: Any) -> dict[str, Any]:
    return {"state": task["state"], "season": task["season"], "design": task["design"], "feeder": task["feeder"],
            "case": task["case_key"], "status": status, **extra,
            "worker_pid": os.getpid(), "worker_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Build one instance and (with ``task["simulate"]``) solve it. Never raises for a run's failure."""
    started = time.perf_counter()
    ws = Workspace(Path(task["data_dir"]))
    instance_dir = ws.instance_dir(task["state"], task["season"], task["design"], task["feeder"], task["case_key"])
    try:
        _clean_stale_temporaries(instance_dir)
        ctx = _context(task)
        instance = circuit_instance.build_instance(ctx, ws, task["design"], task["case_key"], task["case"], instance_dir)
        digest = circuit_instance.write_instance(instance, ctx, instance_dir)
    except Exception as exc:  # noqa: BLE001 - one broken run must not stop the batch: record it whatever it is
        kind = "" if isinstance(exc, circuit_instance.InstanceError) else f"{type(exc).__name__}: "
        logger.debug("instance of %s case %s failed", task["feeder"], task["case_key"], exc_info=True)
        return _record(task, "failed", message=f"instance: {kind}{exc}", runtime_s=time.perf_counter() - started,
                       skipped=False)
    build_s = time.perf_counter() - started
    if not task.get("simulate"):
        return _record(task, "instantiated", message="", runtime_s=build_s, skipped=False, instance_s=build_s)
    if not task.get("force"):
        previous = outputs_valid(instance_dir, digest)
        if previous is not None:
            return _record(task, "ok", message="", runtime_s=time.perf_counter() - started, skipped=True,
                           peak_kw=previous["metrics"].get("peak_kw"))
    deadline = time.monotonic() + float(task.get("timeout_s", 300.0))
    table, summary = daily_power_flow.simulate(instance_dir, deadline=deadline)
    summary["instance_s"] = round(build_s, 4)
    if not table.empty:
        write_parquet(instance_dir / INSTANCE_FILES["timeseries"], table)
    else:
        (instance_dir / INSTANCE_FILES["timeseries"]).unlink(missing_ok=True)
    with atomic_path(instance_dir / INSTANCE_FILES["summary"]) as tmp:
        tmp.write_text(dumps_json(summary), encoding="utf-8")
    return _record(task, summary["status"], message=summary["message"], runtime_s=time.perf_counter() - started,
                   skipped=False, instance_s=build_s, simulate_s=summary["runtime_s"],
                   peak_kw=summary["metrics"].get("peak_kw"))


# ------------------------------------------------------------------------------------------- executors
def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="run", mininterval=1.0, smoothing=0.1, dynamic_ncols=True)


def _mp_context():
    """A fork server that has imported the heavy modules once: workers start in a fraction of a
    second, without inheriting the driver's threads or OpenDSS state (as plain fork would)."""
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(["numpy", "pandas", "pyarrow.parquet", "scipy.optimize", "opendssdirect", "pvlib",
                                "batch_runner"])
    return ctx


def run_pool(tasks: list[dict[str, Any]], workers: int, desc: str,
             on_result: Callable[[dict[str, Any]], None] | None = None,
             in_process: bool | None = None) -> list[dict[str, Any]]:
    """Run tasks on a local process pool of ``workers`` processes (by default one worker runs the
    tasks in this process instead)."""
    results = []
    bar = _progress(len(tasks), desc)
    if in_process is None:
        in_process = workers <= 1
    try:
        if in_process:
            for task in tasks:
                results.append(run_task(task))
                if on_result:
                    on_result(results[-1])
                bar.update(1)
            return results
        with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=_mp_context()) as pool:
            futures = [pool.submit(run_task, task) for task in tasks]
            for future in as_completed(futures):
                results.append(future.result())
                if on_result:
                    on_result(results[-1])
                bar.update(1)
    finally:
        bar.close()
    return results


def _by_value_modules() -> Iterable[Any]:
    import ev_charging
    import pv_generation
    import storage_dispatch

    return (sys.modules[__name__], circuit_instance, daily_power_flow, ev_charging, pv_generation, storage_dispatch)


def run_dask(tasks: list[dict[str, Any]], scheduler: str, desc: str,
             on_result: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run tasks on a Dask distributed cluster at ``scheduler`` (``tcp://host:port``).

    The phase's own modules are shipped to the workers by value, so a worker needs only this
    project's environment (its ``common`` package and requirements), not the phase folder on its path;
    the data folder must be visible to the workers at the same path (a shared file system).
    """
    import cloudpickle
    from distributed import Client, as_completed as dask_completed

    for module in _by_value_modules():
        cloudpickle.register_pickle_by_value(module)
    results = []
    bar = _progress(len(tasks), desc)
    try:
        with Client(scheduler, timeout="30s") as client:
            futures = client.map(run_task, tasks, pure=False)
            for future in dask_completed(futures):
                results.append(future.result())
                if on_result:
                    on_result(results[-1])
                bar.update(1)
    finally:
        bar.close()
        for module in _by_value_modules():
            try:
                cloudpickle.unregister_pickle_by_value(module)
            except ValueError:
                pass
    return results
