"""Filter the feeders, instantiate every case of a design on them, and (with --run) solve them all.

Description
    For a state, season and design: every feeder with design-day profiles (phases 2-5) is first
    checked by the circuit filter: its baseline circuit (every customer on baseline equipment, no
    EV, PV or storage) must compile, have no isolated load (isolated branches alone, the far side of
    a normally-open tie or switch, are counted and allowed), solve at its design-day peak interval
    (a control-iteration warning at a converged solution is recorded, not fatal), and keep every
    energised node within ``FILTER_VOLTAGE_BAND``. Failures go to
    ``circuit_filter.csv`` with the OpenDSS message and the reason; ``SKIP_CIRCUITS`` in config
    excludes feeders by hand, with their reasons. Then every passing feeder x every case of the
    design's mixes file (``--feeders`` and ``--cases 1-8,12`` narrow the set) becomes an instance
    folder (``circuit_instance.py``): heat-pump variants per customer, EVs with uncontrolled or
    valley-filling charging, PV at the state's site, and a peak-shaving storage fleet.

    With ``--run``, each instance is solved (``daily_power_flow.py``) on a local process pool
    (``--workers``, default the core count) or on a Dask cluster (``--scheduler tcp://HOST:PORT``),
    with a time limit per run, a progress bar, a batch log and an index of the runs. A re-run skips
    finished runs (same inputs, complete outputs) and redoes missing and failed ones.

    With ``--days K`` (``DESIGN_DAYS``, default 1; phase 2 must have been run with ``--days`` K or more) each
    run is built and solved on each of its feeder's K highest distinct peak days (design_days.csv ranks
    1..K), one instance per day in ``<case>/day<k>/``, and the run folder reports the worst day
    (``WORST_DAY_METRIC``: the highest feeder-head peak) with ``worst_day`` and every day's peak in
    ``summary.json`` (``worst_day.py``). The circuit filter checks the design day (rank 1); the further
    days share its verdict and its unrated lines. Not with ``--upgrades`` nor ``--feeder-dir`` (one day).

    In a season whose feeders have a light-load day (design_days.csv ``kind`` light_load, phase 2's
    ``LIGHT_LOAD_SEASONS``, default summer: the day of the season's lowest daytime load, rooftop PV's worst)
    every run is also built and solved on that day, in ``<case>/light_load/`` (``light_load.py``: the same
    machinery as a day of ``--days``, its shared files in ``_shared/<feeder>__day<k>/`` of its rank); the
    case's summary stays the peak day's and gains the ``light_load`` block and ``light_load_<metric>``
    metrics. ``--upgrades`` works with it (the upgrades stay on the peak day's instance; the light-load day
    only measures). ``--feeder-dir`` feeders get no light-load day (a warning says so).

    With ``--upgrades`` (needs ``--run``; off by default), each ok run that violates a planning limit is then
    upgraded and priced (``upgrade_circuit.py``: thermal and voltage upgrades, NREL DISCO's method and unit
    costs, ``common.config.UPGRADES``); a run without a violation costs 0 and is not solved again. The cost
    tables are checked before anything is solved (one line naming the file and column when one is unusable).

Inputs
    <data>/0_code_xlrm/mixes_<design>.json                                      (phase 0)
    <data>/1b_smartds_eulp_match/<STATE>/feeders/, customers.parquet            (phase 1b)
    <data>/2_profiles_heat_pumps/<STATE>/feeder_buildings.csv, design_days.csv, storage_controls.csv
    <data>/{2,4,5}_*/<STATE>/daily/..., daily_profiles_<season>.parquet         (phases 2, 4, 5)
    <data>/sample/ev/ev_session_stats.csv (or --ev-stats)
    with --feeder-dir: any OpenDSS feeder (its own loads are the customers; see GENERIC_FEEDER); it
    needs only phase 0's mixes file and the EV statistics

Outputs (``<data>/6_instantiate_circuits/<STATE>/``)
    circuit_filter.csv                           state, season, feeder, status, reason, dss_message,
                                                 n_isolated_loads, n_isolated_branches, n_unrated_lines
                                                 (no NormAmps of their own: out of overload counts),
                                                 v_min_pu, v_max_pu, peak_kw
    <season>/_shared/<feeder>/                   LoadShapes_daily.dss, pv_pu.csv, filter/
    _feeders/<name>/                             with --feeder-dir: the feeder, its master stripped
    <season>/<design>/<feeder>/<case>/           Master.dss, Loads.dss, EVs.dss, PV.dss, Storage.dss,
                                                 scenario_assignments.json; with --run also
                                                 timeseries.parquet, summary.json; with --upgrades
                                                 also upgrades.json, upgraded/ and summary.json's upgrades
    <season>/<design>/<feeder>/<case>/day<k>/    with --days K > 1: each day's instance and outputs; the
                                                 case folder holds the worst day's summary (worst_day, days),
                                                 series and assignments, Master.dss redirecting to its day
    <season>/_shared/<feeder>__day<k>/           with --days K > 1: the shared files of day k (k >= 2), and
                                                 those of the light-load day (its rank k)
    <season>/<design>/<feeder>/<case>/light_load/ in a light-load season: the run's instance and outputs
                                                 on the light-load day; the case's summary.json has its
                                                 light_load block and light_load_* metrics
    <season>/<design>/runs.csv, batch.log        the batch's index and log

Settings read
    common.config: SKIP_CIRCUITS, FILTER_VOLTAGE_BAND, EV, PV, STORAGE, RUN_TIMEOUT_S, SITES, UPGRADES,
    DESIGN_DAYS, WORST_DAY_METRIC, LIGHT_LOAD_SEASONS (a warning for --feeder-dir)

Usage
    python 6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py --state NC --season winter
        --design lhs [--feeders F1,F2] [--cases 1-8,12] [--run [--upgrades]] [--days 2]
        [--workers 2 | --scheduler tcp://HOST:PORT]
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

import batch_runner
import circuit_instance
import ev_charging
import upgrade_circuit
from common import cli, config, doe, dss, intake, profiles
from common.io import exclusive_step, read_csv, sha256_file, write_csv
from common.paths import Workspace

logger = logging.getLogger(__name__)

FILTER_CASE = {"shares": {"baseline": 1.0, "dm": 0.0, "un": 0.0}, "ev_perc": 0.0, "ev_lvl2_perc": 0.5,
               "ev_split": {"controlled": 0.0, "uncontrolled": 1.0}, "storage_perc_3ph": 0.0, "pv_perc_3ph": 0.0,
               "pv_perc_res": 0.0, "storage_perc_res": 0.0,
               **{k: 0 for k in doe.SEED_KEYS.values()}, "disjoint_sets": True, "design_point": 0, "placement_replicate": 0}


# ------------------------------------------------------------------------------------------- filter
FILTER_COUNTS = ("n_isolated_loads", "n_isolated_branches", "n_unrated_lines")

def filter_feeder(ctx: circuit_instance.FeederContext, ws: Workspace) -> dict[str, Any]:
    """Check the feeder's baseline circuit at its design-day peak (see module docstring)."""
    row: dict[str, Any] = {"state": ctx.state, "season": ctx.season, "feeder": ctx.feeder, "status": "pass",
                           "reason": "", "dss_message": "", "n_isolated_loads": 0, "n_isolated_branches": 0,
                           "n_unrated_lines": 0,
                           "v_min_pu": np.nan,
                           "v_max_pu": np.nan, "peak_kw": np.nan}
    folder = ctx.shared_dir / "filter"
    instance = circuit_instance.build_instance(ctx, ws, "filter", "filter", FILTER_CASE, folder)
    circuit_instance.write_instance(instance, ctx, folder)
    forecast = np.asarray(instance.assignments["forecast_kw"]["customers"])
    peak_step = int(np.argmax(forecast))
    row["peak_kw"] = float(forecast[peak_step])
    engine = dss.engine()
    try:
        dss.compile_master(folder / "Master.dss", strip=False)
        unrated = dss.unrated_lines()
        circuit_instance.record_unrated_lines(ctx, unrated)
        row["n_unrated_lines"] = len(unrated)
        isolated = dss.isolated_elements()
        row["n_isolated_branches"] = len(isolated["branches"])
        if isolated["loads"]:  # branches alone (the far side of an open tie or switch) serve nobody: fine
            row.update(status="fail", n_isolated_loads=len(isolated["loads"]),
                       reason=f"isolated section: {len(isolated['loads'])} loads reach no source (first: "
                              f"{isolated['loads'][0]}; {len(isolated['branches'])} isolated branches)")
            return row
        warnings: list[tuple[int, str]] = []
        if not dss.solve_interval(peak_step, warnings=warnings):
            row.update(status="fail", reason=f"power flow did not converge at the design-day peak "
                                             f"(interval {peak_step + 1})")
            return row
        if warnings:
            row["dss_message"] = warnings[0][1]
        v = np.asarray(engine.Circuit.AllBusMagPu())
        energised = v > config.ENERGISED_PU
        row["v_min_pu"], row["v_max_pu"] = float(v[energised].min()), float(v[energised].max())
        names = [n.lower() for n in engine.Circuit.AllNodeNames()]
        index = {n: i for i, n in enumerate(names)}
        dead = [c for c, nodes in instance.assignments["service_nodes"]
                if any(v[index[n.lower()]] <= config.ENERGISED_PU for n in nodes if n.lower() in index)]
        if dead:
            row.update(status="fail", reason=f"{len(dead)} customers de-energised (first: {dead[0]})")
        elif not (config.FILTER_VOLTAGE_BAND[0] <= row["v_min_pu"] and row["v_max_pu"] <= config.FILTER_VOLTAGE_BAND[1]):
            row.update(status="fail", reason=f"voltages {row['v_min_pu']:.3f}-{row['v_max_pu']:.3f} pu outside the "
                                             f"sane band {config.FILTER_VOLTAGE_BAND} at the design-day peak")
    except dss.DSSError as exc:
        row.update(status="fail", reason="OpenDSS error", dss_message=exc.dss_message)
    return row


def light_load_day(ws: Workspace, ctx: circuit_instance.FeederContext, rank: int, ev_stats: Path | None) -> dict:
    """The shared files of a feeder's light-load day (design_days.csv rank ``rank``, kind light_load) in its own
    shared folder, with the design day's unrated lines, as :func:`further_days` makes a day's; the task's
    ``light_load`` entry (rank, date, shared digest)."""
    day = circuit_instance.load_context(ws, ctx.state, ctx.season, ctx.feeder, ev_stats, rank=rank)
    circuit_instance.prepare_shared(day, ws)
    circuit_instance.record_unrated_lines(day, ctx.unrated_lines)
    return {"rank": int(rank), "date": day.date, "shared_digest": day.shared_digest}


def further_days(ws: Workspace, ctx: circuit_instance.FeederContext, days: int, ev_stats: Path | None) -> list[str]:
    """The shared files of a feeder's design days of ranks 2..``days`` (``--days``), each in its own shared
    folder, with the design day's unrated lines (the filter's, on the same circuit); their shared digests."""
    out = []
    for rank in range(2, days + 1):
        day = circuit_instance.load_context(ws, ctx.state, ctx.season, ctx.feeder, ev_stats, rank=rank)
        circuit_instance.prepare_shared(day, ws)
        circuit_instance.record_unrated_lines(day, ctx.unrated_lines)
        out.append(day.shared_digest)
    return out


# ------------------------------------------------------------------------------------------- helpers
def select_cases(mixes: dict[str, dict], spec: str | None) -> list[str]:
    if not spec:
        return list(mixes)
    wanted = cli.parse_int_list(spec, "--cases")
    missing = [str(c) for c in wanted if str(c) not in mixes]
    if missing:
        raise cli.UserError(f"--cases {spec}: case(s) {', '.join(missing)} not in the mixes file "
                            f"(it has 0..{max(int(k) for k in mixes)})")
    return [str(c) for c in wanted]


def check_profile_lineage(ws: Workspace, state: str, season: str, days: int = 1) -> dict[str, int]:
    """Refuse (one line) profiles of phases 2-5 that are not the ones made from the inputs now on disk:
    a profile step that refused on new inputs leaves its previous run's files behind, and instances
    built on them would mix two studies (``common.profiles.check_current``). Returns the rank of each
    feeder's light-load day of ``season`` (design_days.csv ``kind`` light_load; {} without one), whose
    profiles are checked too."""
    profiles.check_current(ws, ws.feeder_buildings(state), profiles.PRODUCERS["feeder_buildings"])
    profiles.check_current(ws, ws.design_days(state), profiles.PRODUCERS["design_days"])
    table = profiles.read_design_days(ws, state)
    light = {str(f): int(r) for f, r, s, k in zip(table["feeder"], table["rank"], table["season"], table["kind"])
             if s == season and k == "light_load"}
    if days > 1:  # --days K needs K peak design days of every feeder, and their profiles
        peaks = profiles.peak_days(table)
        have = peaks[peaks["season"] == season].groupby("feeder")["rank"].max()
        short = have[have < days]
        if have.empty or len(short):
            got = int(short.iloc[0]) if len(short) else 0
            raise cli.UserError(f"--days {days}: {ws.design_days(state)} has {got} {season} design day(s) for "
                                f"{short.index[0] if len(short) else state}: run {profiles.PRODUCERS['design_days']} "
                                f"--days {days}, then phases 3-5, again")
    for variant in config.VARIANTS:
        for rank in sorted(set(range(1, days + 1)) | set(light.values())):
            profiles.check_current(ws, ws.daily_profile_table(state, variant, season, rank), profiles.PRODUCERS[variant])
    return light


def studied_feeders(ws: Workspace, state: str, spec: str | None) -> list[str]:
    path = ws.feeder_buildings(state)
    known = sorted(read_csv(path, profiles.PRODUCERS["feeder_buildings"], required=("feeder",))["feeder"].unique())
    if not spec:
        return known
    wanted = [f.strip() for f in spec.split(",") if f.strip()]
    resolved = []
    for name in wanted:
        hits = [k for k in known if k == name or k.split("--")[-1] == name]
        if not hits:
            raise cli.UserError(f"--feeders: unknown feeder {name!r}; {state} has {', '.join(known)}")
        resolved += hits
    return sorted(set(resolved))


def _log_to_file(path: Path) -> logging.Handler:
    """The batch log: everything this script logs, plus one line per run (those only in the file;
    the terminal shows the progress bar and the batch's summary)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    runs = logging.getLogger("batch")
    runs.propagate = False
    runs.addHandler(handler)
    runs.setLevel(logging.INFO)
    return handler


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="instantiate_circuits_and_runs_APPLYFILTER.py")
    cli.add_state(parser)
    cli.add_season(parser)
    cli.add_design(parser)
    parser.add_argument("--feeders", default=None, help="comma list of feeders (folder or feeder name); default all")
    parser.add_argument("--cases", default=None, help="cases of the mixes file, e.g. 0-8,12; default all")
    parser.add_argument("--run", action="store_true", help="also solve every instance (phase 6b)")
    parser.add_argument("--workers", type=cli.positive_int, default=os.cpu_count() or 1,
                        help="local worker processes (default: the core count)")
    parser.add_argument("--scheduler", default=None,
                        help="Dask scheduler address tcp://HOST:PORT: run on that cluster instead of locally")
    parser.add_argument("--timeout", type=cli.positive_float, default=config.RUN_TIMEOUT_S,
                        help=f"time limit per run [s] (default {config.RUN_TIMEOUT_S:g})")
    parser.add_argument("--force", action="store_true", help="solve again even where valid outputs exist")
    parser.add_argument("--upgrades", action="store_true",
                        help="with --run: upgrade and price every run that violates a planning limit "
                             "(upgrade_circuit.py, common.config.UPGRADES; off by default)")
    parser.add_argument("--days", type=cli.positive_int, default=config.DESIGN_DAYS,
                        help="solve every run on each of its feeder's K highest distinct peak days (phase 2 "
                             "--days K or more) and report its worst, the highest feeder-head peak "
                             f"(common.config.WORST_DAY_METRIC; default: common.config.DESIGN_DAYS, {config.DESIGN_DAYS})")
    parser.add_argument("--ev-stats", default=None, help="EV session statistics CSV (default: the sample's)")
    parser.add_argument("--feeder-dir", default=None,
                        help="study any OpenDSS feeder instead of the state's SMART-DS feeders: the master file itself "
                             "(e.g. ../shared/data/ieee13/IEEE13Nodeckt.dss; that file is studied), or a folder with a "
                             "Master.dss (or one circuit file)")
    parser.add_argument("--feeder-name", default=None,
                        help="the id of the --feeder-dir feeder in the workspace (default: derived from its path, "
                             "unique); a name another source already holds is an error")
    cli.add_standard(parser)
    return parser


def merge_index(previous: pd.DataFrame, current: pd.DataFrame, feeders: list[str], cases: list[str],
                mixes: dict[str, dict]) -> pd.DataFrame:
    """The batch index after this batch: its rows, and the earlier rows of runs it did not touch
    (another ``--feeders``/``--cases`` subset) whose case is still in the mixes file."""
    if not previous.empty and {"feeder", "case"} <= set(previous.columns):
        previous = previous.assign(case=previous["case"].astype(str))
        touched = previous["feeder"].isin(feeders) & previous["case"].isin(cases)
        previous = previous[~touched & previous["case"].isin(list(mixes))]
        frames = [previous, current.assign(case=current["case"].astype(str))] if len(previous) else [current]
    else:
        frames = [current]
    index = pd.concat(frames, ignore_index=True)
    index["case"] = index["case"].astype(int)
    return index.sort_values(["feeder", "case"], kind="stable").reset_index(drop=True)


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv, must_exist=True)
    state = args.state
    with exclusive_step(ws.circuits_dir(state), f"phase 6 {state}"):
        return _batch(args, ws)


def _batch(args: Any, ws: Workspace) -> int:
    state, season, design = args.state, args.season, args.design
    if args.scheduler:  # a malformed address fails before the filter rewrites anything
        try:
            batch_runner.check_scheduler_address(args.scheduler)
        except batch_runner.SchedulerError as exc:
            raise cli.UserError(str(exc)) from None
    cost_tables = None
    if args.upgrades:  # unusable cost tables fail before anything is solved
        if not args.run:
            raise cli.UserError("--upgrades upgrades solved runs: give --run as well")
        if args.days > 1:
            raise cli.UserError(f"--upgrades with --days {args.days}: the upgrade step works on one design day; "
                                "give --days 1 (or leave --upgrades out)")
        cost_tables = upgrade_circuit.cost_tables_dir(ws, None)
        upgrade_circuit.load_cost_tables(cost_tables)
    design_dir = ws.design_dir(state, season, design)
    if design_dir.is_dir() and not os.access(design_dir, os.W_OK):  # say so before solving, not after
        raise cli.UserError(f"{design_dir} is not writable: change its permissions or use another --data-dir")
    try:
        mixes = doe.load_mixes(ws.mixes(design))
    except doe.MixesError as exc:
        raise cli.UserError(str(exc)) from None
    mixes_digest = sha256_file(ws.mixes(design))
    provenance = doe.mixes_provenance(ws.mixes(design))
    if provenance != "phase 0":
        logger.warning("%s (the runs record its digest; phase 7 keeps only runs of the current file)", provenance)
    cases = select_cases(mixes, args.cases)
    ev_stats = Path(args.ev_stats).resolve() if args.ev_stats else None
    generic = None
    if args.feeder_dir and args.days > 1:
        raise cli.UserError(f"--feeder-dir with --days {args.days}: a feeder of --feeder-dir has one design day; "
                            "give --days 1")
    if args.feeder_dir:  # the feeder intake: every file the engine reads, copied and verified (one line if not)
        generic = intake.take_in(Path(args.feeder_dir), ws.generic_feeders_dir(state), name=args.feeder_name)
        logger.info("feeder %s: %s taken in (%d files, %s) -> %s", generic.feeder, generic.source, len(generic.files),
                    "updated" if generic.updated else "unchanged", generic.folder)
        feeders = [generic.feeder]
    elif args.feeder_name:
        raise cli.UserError("--feeder-name names a feeder of --feeder-dir: give both, or neither")
    else:
        light_ranks = check_profile_lineage(ws, state, season, args.days)
        feeders = studied_feeders(ws, state, args.feeders)
    if generic is not None:
        light_ranks = {}
        if season in config.LIGHT_LOAD_SEASONS:
            logger.warning("--feeder-dir %s: no light-load day (a feeder of --feeder-dir has one design day, from its "
                           "own yearly shapes): its %s runs are solved on the peak day only, without light_load_* "
                           "metrics", generic.feeder, season)
    handler = _log_to_file(ws.batch_log(state, season, design))
    try:
        skip = config.SKIP_CIRCUITS.get(state, {})
        rows, passing, digests, day_digests, light_days = [], [], {}, {}, {}
        for feeder in feeders:
            if feeder in skip:
                rows.append({"state": state, "season": season, "feeder": feeder, "status": "skipped",
                             "reason": f"SKIP_CIRCUITS: {skip[feeder]}"})
                continue
            try:
                if generic is not None:
                    ctx = circuit_instance.load_generic_context(ws, state, season, generic, ev_stats)
                else:
                    ctx = circuit_instance.load_context(ws, state, season, feeder, ev_stats)
                circuit_instance.prepare_shared(ctx, ws)
                digests[feeder] = ctx.shared_digest
                row = filter_feeder(ctx, ws)
                if args.days > 1 and row["status"] == "pass":
                    day_digests[feeder] = [ctx.shared_digest] + further_days(ws, ctx, args.days, ev_stats)
                if feeder in light_ranks and row["status"] == "pass":
                    light_days[feeder] = light_load_day(ws, ctx, light_ranks[feeder], ev_stats)
            except circuit_instance.InstanceError as exc:
                row = {"state": state, "season": season, "feeder": feeder, "status": "fail", "reason": str(exc)}
            except ev_charging.SessionStatsError as exc:
                raise cli.UserError(str(exc)) from None
            rows.append(row)
            if row["status"] == "pass":
                passing.append(feeder)
                logger.info("filter: %s %s passes (v %.3f-%.3f pu at its %.0f kW design-day peak)", feeder, season,
                            row["v_min_pu"], row["v_max_pu"], row["peak_kw"])
            else:
                logger.warning("filter: %s %s left out: %s %s", feeder, season, row["reason"], row.get("dss_message", ""))
        filt_path = ws.circuit_filter(state)
        previous = read_csv(filt_path, required=("season", "feeder")) if filt_path.is_file() else pd.DataFrame()
        if not previous.empty:
            previous = previous[~((previous["season"] == season) & previous["feeder"].isin(feeders))]
        table = pd.concat([previous, pd.DataFrame(rows)], ignore_index=True).sort_values(["season", "feeder"])
        for column in FILTER_COUNTS:  # counts stay integers (empty for a feeder left out before counting)
            if column in table.columns:
                table[column] = pd.to_numeric(table[column]).astype("Int64")
        write_csv(filt_path, table)
        if not passing:
            raise cli.UserError(f"no feeder of {state} passes the circuit filter for {season}: see {filt_path}")

        tasks = [{"data_dir": str(ws.root), "state": state, "season": season, "design": design, "feeder": feeder,
                  "case_key": key, "case": mixes[key], "simulate": args.run, "force": args.force,
                  "timeout_s": args.timeout, "ev_stats": str(ev_stats) if ev_stats else None,
                  "mixes_digest": mixes_digest, "shared_digest": digests[feeder],
                  "feeder_dir": str(generic.folder) if generic is not None else None,
                  **({"days": args.days, "shared_digests": day_digests[feeder]} if args.days > 1 else {}),
                  **({"light_load": light_days[feeder]} if feeder in light_days else {}),
                  **({"upgrades": True, "cost_tables": str(cost_tables)} if cost_tables is not None else {})}
                 for feeder in passing for key in cases]
        what = "runs" if args.run else "instances"
        logger.info("%s %s %s: %d %s (%d feeders x %d cases) on %s", state, season, design, len(tasks), what,
                    len(passing), len(cases), args.scheduler or f"{args.workers} local worker(s)")
        started = time.perf_counter()

        def report(result: dict[str, Any]) -> None:
            level = logging.INFO if result["status"] in ("ok", "instantiated") else logging.ERROR
            logging.getLogger("batch").log(level, "%s case %s: %s%s %s (%.2f s)", result["feeder"], result["case"],
                                           result["status"], " (already done)" if result.get("skipped") else "",
                                           result.get("message", ""), result.get("runtime_s", 0.0))

        desc = f"{state} {season} {design}"
        if args.scheduler:
            try:
                results = batch_runner.run_dask(tasks, args.scheduler, desc, on_result=report)
            except batch_runner.SchedulerError as exc:
                raise cli.UserError(str(exc)) from None
        else:
            results = batch_runner.run_pool(tasks, args.workers, desc, on_result=report)
        timings = pd.DataFrame([{"feeder": r["feeder"], "case": int(r["case"]), "status": r["status"],
                                 "skipped": r["skipped"], **r["timings"]} for r in results])
        current = pd.DataFrame([{k: v for k, v in r.items() if k != "timings"} for r in results])
        index_path = ws.batch_index(state, season, design)
        previous = read_csv(index_path, dtype={"case": str}) if index_path.is_file() else pd.DataFrame()
        index = merge_index(previous, current, feeders, cases, mixes)
        write_csv(index_path, index)
        write_csv(ws.batch_timings(state, season, design), timings.sort_values(["feeder", "case"]))
        elapsed = time.perf_counter() - started
        failed = current[~current["status"].isin(["ok", "instantiated"])]
        skipped = int(current["skipped"].sum())
        logger.info("%s %s %s: %d %s in %.1f s (%.2f per s), %d already done, %d failed -> %s", state, season, design,
                    len(current), what, elapsed, len(current) / elapsed if elapsed > 0 else float("nan"), skipped,
                    len(failed), index_path)
        for _, row in failed.head(5).iterrows():
            logger.error("failed: %s case %s: %s", row["feeder"], row["case"], row.get("message", ""))
        cli.record(__file__, ws.design_dir(state, season, design), args, cases=cases, feeders=passing,
                   mixes_sha256=mixes_digest, mixes_provenance=provenance,
                   ev=config.EV, pv=config.PV, storage=config.STORAGE, ansi_range_a=config.ANSI_RANGE_A,
                   ansi_range_b=config.ANSI_RANGE_B, thermal=config.THERMAL,
                   **({"upgrades": config.UPGRADES, "cost_tables": str(cost_tables)} if cost_tables is not None else {}))
        return 1 if len(failed) == len(current) else 0
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger("batch").removeHandler(handler)
        handler.close()


if __name__ == "__main__":
    sys.exit(main())
