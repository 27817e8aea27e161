"""Run many circuit instances: a local process pool, or a Dask distributed cluster.

One task is one (feeder, case) of a state, season and design: build the instance (deterministic,
cheap), then, unless its outputs are already complete, valid and made from the same inputs, solve
it and commit ``timeseries.parquet`` and ``summary.json`` together
(``daily_power_flow.write_outputs``: the old summary removed first, the summary written last with
the series' SHA-256, the instance's ``inputs_digest`` and the mixes file's ``mixes_digest``). A
failed run, whatever failed (instance, OpenDSS, a diverged solution, a bug), is recorded in its
folder and in the batch index with its message, and the batch goes on; a re-run skips finished
runs and redoes the missing and failed ones. Each task keeps to a time limit (checked between
solution steps). A pool worker that dies (killed, out of memory) costs its runs one more try, then
they are recorded as failed; workers exit when the driver dies. Timings go to the batch's
``timings.csv``, never into results, so that results are byte-identical across reruns and worker
counts.

With ``task["upgrades"]`` (``--upgrades`` of the phase 6 driver; off by default) an ok run that violates a
planning limit is then upgraded (``upgrade_circuit.run_upgrade``: thermal and voltage upgrades and their cost,
``upgrades.json``, the ``upgraded/`` variant and the ``upgrades`` block of ``summary.json``); a run without a
violation gets cost 0 without another solve, and a run already upgraded from the same run, settings and cost
tables is left as it is. An upgrade that fails is recorded in that block (status ``failed``), never the run's
power-flow result.

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
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

import circuit_instance
import daily_power_flow
import feeder_cache
import light_load
import upgrade_circuit
import worst_day
from common import config, intake
from common.io import InputError, clean_temporaries
from common.paths import Workspace

logger = logging.getLogger(__name__)

#: per-process cache of feeder contexts: (data dir, state, season, feeder, ev stats) -> context
_CONTEXTS: dict[tuple, Any] = {}
#: per-process cache of the upgrade unit-cost tables: folder -> (its files' digest, tables)
_COST_TABLES: dict[str, Any] = {}
#: per-process compiled feeders (``feeder_cache``): a case is applied to its feeder compiled once
FEEDERS = feeder_cache.FeederCache(config.FEEDER_CACHE_SIZE)


def _cost_tables(folder: str) -> Any:
    """The unit-cost tables of ``folder``, read once per process (again when a file changed)."""
    tables = upgrade_circuit.load_cost_tables(Path(folder))
    cached = _COST_TABLES.get(folder)
    if cached is not None and cached.digest == tables.digest:
        return cached
    _COST_TABLES[folder] = tables
    return tables


def _context(task: dict[str, Any]) -> Any:
    """The feeder's shared context, from this process's cache when it was made from the same shared
    inputs as the driver's (``task["shared_digest"]``); a worker that outlives a batch (Dask, or
    one Python session running several batches) never runs on an older context."""
    key = (task["data_dir"], task["state"], task["season"], task["feeder"], task.get("ev_stats"), task.get("day_rank", 1))
    ctx = _CONTEXTS.get(key)
    wanted = task.get("shared_digest")
    if ctx is None or (wanted and ctx.shared_digest != wanted):
        ws = Workspace(Path(task["data_dir"]))
        ev_stats = Path(task["ev_stats"]) if task.get("ev_stats") else None
        if task.get("feeder_dir"):  # the intake's copy, read, never taken in again by a worker
            ctx = circuit_instance.load_generic_context(ws, task["state"], task["season"],
                                                        intake.read_intake(Path(task["feeder_dir"])), ev_stats)
        else:
            ctx = circuit_instance.load_context(ws, task["state"], task["season"], task["feeder"], ev_stats,
                                                rank=task.get("day_rank", 1))
        circuit_instance.attach_shared(ctx, ws)
        if wanted and ctx.shared_digest != wanted:
            raise circuit_instance.InstanceError(
                f"the shared inputs of {task['feeder']} (daily profiles, feeder files) changed while the batch ran: "
                "run the batch again")
        if len(_CONTEXTS) > 8:
            _CONTEXTS.clear()
        _CONTEXTS[key] = ctx
    return ctx


def _record(task: dict[str, Any], status: str, message: str = "", *, skipped: bool = False,
            peak_kw: float | None = None, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """A run's line of the batch index (inputs only: byte-identical across reruns and worker counts)
    and, apart, its timings (``timings.csv``, never part of the results)."""
    return {"state": task["state"], "season": task["season"], "design": task["design"], "feeder": task["feeder"],
            "case": task["case_key"], "status": status, "message": message, "skipped": skipped, "peak_kw": peak_kw,
            "timings": {"worker_pid": os.getpid(),
                        "worker_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                        **(timings or {})}}


def _fail_summary(instance_dir: Path, task: dict[str, Any], message: str) -> None:
    """Record a run that failed outside the power flow (instance, files, an internal error) in its own
    folder, replacing any older outputs, so that no earlier ``ok`` summary outlives it."""
    summary = {"state": task["state"], "season": task["season"], "design": task["design"], "feeder": task["feeder"],
               "case": task["case_key"], "inputs_digest": "", "mixes_digest": task.get("mixes_digest", ""),
               "shared_digest": task.get("shared_digest", ""),
               "status": "failed", "message": message, "metrics": {}}
    try:
        daily_power_flow.write_outputs(instance_dir, pd.DataFrame(), summary)
    except OSError:
        logger.debug("could not record the failure in %s", instance_dir, exc_info=True)


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Build one instance and (with ``task["simulate"]``) solve it. Never raises: whatever goes wrong
    in one run (a bad input, an OpenDSS error, a diverged solution, a bug) is that run's failure,
    recorded in its folder and in the returned record, and the batch goes on. A run of several design days
    (``task["days"]`` > 1) runs this once per day, in ``<case>/day<k>/`` (``worst_day.run_days``); a run with a
    light-load day (``task["light_load"]``: its rank, date and shared digest) once more on that day, in
    ``<case>/light_load/`` (``light_load.run_with_light_day``; upgrades stay on the peak day's instance)."""
    if task.get("light_load"):  # the peak day(s) as without it, then the light-load day (light_load.py)
        return light_load.run_with_light_day(task, run_task)
    if int(task.get("days", 1)) > 1:
        return worst_day.run_days(task, run_task)
    started = time.perf_counter()
    ws = Workspace(Path(task["data_dir"]))
    instance_dir = ws.instance_dir(task["state"], task["season"], task["design"], task["feeder"], task["case_key"])
    if task.get("light_day"):  # the run on its light-load day, <case>/light_load/
        instance_dir = ws.light_load_instance_dir(task["state"], task["season"], task["design"], task["feeder"],
                                                  task["case_key"])
    elif "day_rank" in task:  # one day of a run of several
        instance_dir = ws.day_instance_dir(task["state"], task["season"], task["design"], task["feeder"],
                                           task["case_key"], task["day_rank"])
    stage = "instance"
    try:
        clean_temporaries(instance_dir)
        if "day_rank" not in task and not task.get("with_light_day"):  # no light-load day: an earlier one's goes
            light_load.drop(instance_dir)
        ctx = _context(task)
        instance = circuit_instance.build_instance(ctx, ws, task["design"], task["case_key"], task["case"], instance_dir)
        digest = circuit_instance.write_instance(instance, ctx, instance_dir, mixes_digest=task.get("mixes_digest", ""))
        build_s = time.perf_counter() - started
        if not task.get("simulate"):
            return _record(task, "instantiated", timings={"instance_s": round(build_s, 4)})
        stage = "run"
        if not task.get("force") and not task.get("upgrades"):
            previous = daily_power_flow.outputs_valid(instance_dir, digest)
            if previous is not None:
                daily_power_flow.update_mixes_digest(instance_dir, previous, task.get("mixes_digest", ""))
                return _record(task, "ok", skipped=True, peak_kw=previous["metrics"].get("peak_kw"),
                               timings={"instance_s": round(build_s, 4),
                                        "runtime_s": round(time.perf_counter() - started, 4)})
        deadline = time.monotonic() + float(task.get("timeout_s", config.RUN_TIMEOUT_S))
        previous = None if task.get("force") else daily_power_flow.outputs_valid(instance_dir, digest)
        if previous is not None:  # solved already (only reached with upgrades to do: see above)
            daily_power_flow.update_mixes_digest(instance_dir, previous, task.get("mixes_digest", ""))
            summary, simulate_s, solved, kept = previous, 0.0, False, None
        else:
            prepare_started = time.perf_counter()
            prepared, engine_path = (FEEDERS.prepare(feeder_cache.cache_key(task, ctx), ctx, instance.files,
                                                     instance_dir)
                                     if task.get("cache", True) else (None, "compiled: cache off"))
            prepare_s = time.perf_counter() - prepare_started
            if prepared is None:
                logger.debug("%s case %s: %s", task["feeder"], task["case_key"], engine_path)
            kept = {} if task.get("upgrades") else None  # the run's day, for the upgrade step to start from
            table, summary, simulate_s = daily_power_flow.simulate(instance_dir, deadline=deadline, prepared=prepared,
                                                                   keep=kept)
            if prepared is not None:
                FEEDERS.after_day(feeder_cache.cache_key(task, ctx))
            upgrade_circuit.remove_outputs(instance_dir)  # an earlier solve's upgrades no longer apply
            summary = daily_power_flow.write_outputs(instance_dir, table, summary)
            solved = True
        upgrade_s = None
        if task.get("upgrades") and summary["status"] == "ok":
            started_upgrade = time.perf_counter()
            key = feeder_cache.cache_key(task, ctx)
            equipment = None if not kept or prepared is None else (
                lambda: FEEDERS.equipment(key, upgrade_circuit.read_equipment))  # the run's cached feeder's
            try:
                block, _, upgrade_skipped = upgrade_circuit.run_upgrade(
                    instance_dir, _cost_tables(task["cost_tables"]),
                    deadline=time.monotonic() + float(task.get("timeout_s", config.RUN_TIMEOUT_S)),
                    force=bool(task.get("force")), run_day=(kept["circuit"], kept["day"]) if kept else None,
                    equipment=equipment)
            except Exception as exc:  # noqa: BLE001 - a failed upgrade never undoes the run's power flow: recorded
                logger.debug("upgrade of %s case %s failed", task["feeder"], task["case_key"], exc_info=True)
                known = isinstance(exc, InputError)
                block = upgrade_circuit.record_failure(
                    instance_dir, f"upgrade: {'' if known else type(exc).__name__ + ': '}{exc}")
                upgrade_skipped = False
            upgrade_s = round(time.perf_counter() - started_upgrade, 4)
            level = logging.ERROR if block["status"] == "failed" else logging.DEBUG
            logger.log(level, "%s case %s: upgrades %s%s, cost %s USD%s", task["feeder"], task["case_key"],
                       block["status"], f" ({block['message']})" if block.get("message") else "", block["cost_usd"],
                       " (already done)" if upgrade_skipped else "")
            if not solved:
                return _record(task, "ok", skipped=True, peak_kw=summary["metrics"].get("peak_kw"),
                               timings={"instance_s": round(build_s, 4), "upgrade_s": upgrade_s,
                                        "runtime_s": round(time.perf_counter() - started, 4)})
    except Exception as exc:  # noqa: BLE001 - one broken run must not stop the batch: record it whatever it is
        known = isinstance(exc, (circuit_instance.InstanceError, InputError))
        message = f"{stage}: {'' if known else type(exc).__name__ + ': '}{exc}"
        logger.debug("%s of %s case %s failed", stage, task["feeder"], task["case_key"], exc_info=True)
        _fail_summary(instance_dir, task, message)
        return _record(task, "failed", message, timings={"runtime_s": round(time.perf_counter() - started, 4)})
    return _record(task, summary["status"], summary["message"], peak_kw=summary["metrics"].get("peak_kw"),
                   timings={"instance_s": round(build_s, 4), "simulate_s": simulate_s,
                            **({"prepare_s": round(prepare_s, 4), "engine_path": engine_path} if solved else {}),
                            **({"upgrade_s": upgrade_s} if upgrade_s is not None else {}),
                            "runtime_s": round(time.perf_counter() - started, 4)})


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


def _watch_driver(driver_pid: int, interval_s: float = 0.5) -> None:
    """Pool-worker initializer: exit when the driver process is gone (killed, crashed), so that no
    orphaned worker keeps solving and writing. Under the fork server a worker's parent is the
    server, not the driver, so the driver's pid is watched directly."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            try:
                os.kill(driver_pid, 0)
            except ProcessLookupError:
                os._exit(3)
            except PermissionError:  # the pid was reused by another user's process: the driver is gone
                os._exit(3)

    threading.Thread(target=watch, name="driver-watch", daemon=True).start()


def _lost_worker(task: dict[str, Any], attempts: int) -> dict[str, Any]:
    message = (f"run: the worker process died while running it (killed, or out of memory), {attempts} "
               f"time{'s' if attempts > 1 else ''}; see batch.log")
    ws = Workspace(Path(task["data_dir"]))
    _fail_summary(ws.instance_dir(task["state"], task["season"], task["design"], task["feeder"], task["case_key"]),
                  task, message)
    return _record(task, "failed", message)


def chunk_tasks(tasks: list[dict[str, Any]], workers: int,
                max_runs: int | None = None) -> list[list[int]]:
    """Indices of ``tasks`` in chunks of one feeder (state, season, feeder), so that a worker solves a
    feeder's cases one after another on the feeder it compiled (``feeder_cache``). A feeder's runs are
    split evenly over the ``workers`` (every worker gets work), each chunk at most ``max_runs`` long;
    feeders in the order of their first task, each chunk in task order. ``max_runs`` defaults to
    ``common.config.FEEDER_CHUNK_MAX_RUNS``; 1 gives one task per chunk."""
    max_runs = config.FEEDER_CHUNK_MAX_RUNS if max_runs is None else max_runs
    groups: dict[tuple, list[int]] = {}
    for i, task in enumerate(tasks):
        groups.setdefault((task["state"], task["season"], task["feeder"]), []).append(i)
    chunks = []
    for indices in groups.values():
        size = max(1, min(max_runs, -(-len(indices) // max(1, workers))))
        chunks += [indices[j:j + size] for j in range(0, len(indices), size)]
    return chunks


def run_chunk(tasks: list[dict[str, Any]], fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None
              ) -> list[dict[str, Any]]:
    """Run a chunk of tasks one after the other in this process (default :func:`run_task` for each), the
    feeder cache told first which devices the chunk's cases have (:func:`hint_chunk`)."""
    fn = fn or run_task
    hint_chunk(tasks)
    return [fn(task) for task in tasks]


def hint_chunk(tasks: list[dict[str, Any]]) -> None:
    """Set this worker's feeder-cache hints (``feeder_cache.FeederCache.hints``) to the devices of the cases of
    ``tasks`` that will be solved, per feeder (``circuit_instance.device_elements``: the hosts alone), so that a
    feeder is compiled with candidates for those devices and not for every device it could hold: a disabled
    device still costs the engine time at every step. The results are the same with any hint or none; a task
    whose devices cannot be placed is left out (its run records why)."""
    hints: dict[tuple, set[str]] = {}
    for task in tasks:
        if not task.get("simulate") or not task.get("cache", True):
            continue
        try:
            devices = circuit_instance.device_elements(_context(task), task["case"])
        except Exception:  # noqa: BLE001 - only a hint: the run itself fails on the same input and records it
            logger.debug("no device hint for %s case %s", task["feeder"], task["case_key"], exc_info=True)
            continue
        hints.setdefault((task["data_dir"], task["state"], task["season"], task["feeder"]), set()).update(devices)
    FEEDERS.hints = hints


def run_pool(tasks: list[dict[str, Any]], workers: int, desc: str,
             on_result: Callable[[dict[str, Any]], None] | None = None,
             in_process: bool | None = None, retries: int = config.RUN_RETRIES_LOST_WORKER,
             fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
             chunk_runs: int | None = None) -> list[dict[str, Any]]:
    """Run tasks on a local process pool of ``workers`` processes (by default one worker runs the
    tasks in this process instead), in chunks of one feeder (:func:`chunk_tasks`, at most ``chunk_runs``).

    At most ``workers`` chunks are in the pool at once, so when a worker dies (SIGKILL, the
    out-of-memory killer) the runs it may have been running are known. The pool is started again
    and each of them runs again on its own: one whose worker dies while it runs alone is the cause,
    and it is tried up to ``retries`` more times, then recorded as failed; the others finish, and the
    batch goes on. Workers exit by themselves when this process dies. ``fn`` runs one task
    (default :func:`run_task`; a module-level function of the same contract).
    """
    import functools
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    fn = fn or run_task
    results: list[dict[str, Any]] = []
    bar = _progress(len(tasks), desc)
    if in_process is None:
        in_process = workers <= 1
    units = chunk_tasks(tasks, workers, chunk_runs)  # a unit: task indices run together by one worker
    run_unit = functools.partial(run_chunk, fn=fn)

    def done(result: dict[str, Any]) -> None:
        results.append(result)
        if on_result:
            on_result(result)
        bar.update(1)

    try:
        if in_process:
            for unit in units:
                hint_chunk([tasks[i] for i in unit])
                for i in unit:
                    done(fn(tasks[i]))
            return results
        pending = list(range(len(units)))[::-1]  # a stack: pop() takes units in order
        suspects: list[int] = []  # single-task units running when a worker died: each runs alone until cleared
        deaths: dict[int, int] = {}  # times a single-task unit died while running alone (it killed its worker)

        def suspect(u: int) -> None:
            """A unit whose worker died: each of its tasks becomes a unit of its own, run alone."""
            if len(units[u]) == 1:
                suspects.append(u)
                return
            for i in units[u][::-1]:
                units.append([i])
                suspects.append(len(units) - 1)

        while pending or suspects:
            with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=_mp_context(),
                                     initializer=_watch_driver, initargs=(os.getpid(),)) as pool:
                running: dict[Any, int] = {}
                broken = False
                while (pending or suspects or running) and not broken:
                    if suspects:
                        if not running:  # a suspect runs alone: if the pool breaks now, it is the cause
                            u = suspects.pop()
                            running[pool.submit(run_unit, [tasks[i] for i in units[u]])] = u
                    else:
                        while pending and len(running) < workers:
                            u = pending.pop()
                            running[pool.submit(run_unit, [tasks[i] for i in units[u]])] = u
                    finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    alone = len(running) == 1
                    for future in finished:
                        u = running.pop(future)
                        try:
                            for result in future.result():
                                done(result)
                            continue
                        except BrokenProcessPool:
                            broken = True
                        first = tasks[units[u][0]]
                        if not alone or len(units[u]) > 1:
                            logger.warning("%s cases %s: a worker died while they ran; each runs again on its own",
                                           first["feeder"], ",".join(tasks[i]["case_key"] for i in units[u]))
                            suspect(u)
                            continue
                        deaths[u] = deaths.get(u, 0) + 1
                        if deaths[u] > retries:
                            logger.error("%s case %s: its worker died %d times: recorded as failed",
                                         first["feeder"], first["case_key"], deaths[u])
                            done(_lost_worker(first, deaths[u]))
                        else:
                            logger.warning("%s case %s: its worker died; trying it again", first["feeder"],
                                           first["case_key"])
                            suspects.append(u)
                    if broken:  # every future of a broken pool fails: collect them, then start a new pool
                        for future in list(running):
                            suspect(running.pop(future))
    finally:
        bar.close()
    return results


def _by_value_modules() -> Iterable[Any]:
    import ev_charging
    import pv_generation
    import storage_dispatch

    return (sys.modules[__name__], circuit_instance, daily_power_flow, ev_charging, feeder_cache, pv_generation,
            storage_dispatch, upgrade_circuit, worst_day, light_load)


class SchedulerError(RuntimeError):
    """The Dask scheduler named by ``--scheduler`` cannot be reached."""


def check_scheduler_address(scheduler: str) -> str:
    """``scheduler`` checked as a Dask address (``tcp://HOST:PORT``, port 1-65535) before any work is
    done; SchedulerError naming the flag otherwise. Whether a scheduler answers there is known only
    when :func:`run_dask` connects."""
    from distributed.comm import parse_address, parse_host_port

    try:
        _, location = parse_address(scheduler)
        _, port = parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise SchedulerError(f"--scheduler {scheduler}: not a Dask scheduler address ({exc}): give tcp://HOST:PORT") \
            from None
    if not 0 < int(port) < 65536:
        raise SchedulerError(f"--scheduler {scheduler}: port {port} is not 1-65535: give tcp://HOST:PORT")
    return scheduler


def run_dask(tasks: list[dict[str, Any]], scheduler: str, desc: str,
             on_result: Callable[[dict[str, Any]], None] | None = None,
             connect_timeout_s: float = config.DASK_CONNECT_TIMEOUT_S, workers: int | None = None,
             chunk_runs: int | None = None) -> list[dict[str, Any]]:
    """Run tasks on a Dask distributed cluster at ``scheduler`` (``tcp://host:port``), in chunks of one
    feeder (:func:`chunk_tasks`: ``workers``, default the cluster's worker threads, and ``chunk_runs``).

    The phase's own modules are shipped to the scheduler and workers by value (``common.remote``: the
    graph names only the installed ``common.remote.call``), so a cluster started on its own needs only
    this project's environment (its ``common`` package and requirements), not the phase folder on its
    path; the data folder must be visible to the workers at the same path (a shared file system).
    """
    from distributed import Client, as_completed as dask_completed

    from common import remote

    payload = remote.ship(run_chunk, _by_value_modules())
    results = []
    bar = _progress(len(tasks), desc)
    try:
        try:
            client = Client(scheduler, timeout=f"{connect_timeout_s:g}s")
        except (OSError, ValueError, TypeError) as exc:
            raise SchedulerError(f"--scheduler {scheduler}: cannot reach a Dask scheduler there "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                                 "start one (dask scheduler) or fix the address tcp://HOST:PORT") from None
        with client:
            if workers is None:
                workers = max(1, sum(client.nthreads().values()))
            chunks = [[tasks[i] for i in unit] for unit in chunk_tasks(tasks, workers, chunk_runs)]
            [shipped] = client.scatter([payload], broadcast=True)
            futures = client.map(remote.call, [shipped] * len(chunks), chunks, pure=False)
            index = {future.key: i for i, future in enumerate(futures)}
            for future in dask_completed(futures):
                try:
                    chunk_results = future.result()
                except Exception as exc:  # noqa: BLE001 - a lost worker (KilledWorker) or a cancelled task
                    message = f"run: Dask could not run it ({type(exc).__name__}: {exc})"
                    chunk_results = []
                    for task in chunks[index[future.key]]:
                        ws = Workspace(Path(task["data_dir"]))
                        _fail_summary(ws.instance_dir(task["state"], task["season"], task["design"], task["feeder"],
                                                      task["case_key"]), task, message)
                        chunk_results.append(_record(task, "failed", message))
                for result in chunk_results:
                    results.append(result)
                    if on_result:
                        on_result(results[-1])
                    bar.update(1)
    finally:
        bar.close()
    return results
