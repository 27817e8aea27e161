"""Combine every phase 6 run into the study's result tables: one row per run, the feeder-head series, failures.

Description
    Walks ``<data>/6_instantiate_circuits/<STATE>/<season>/<design>/<feeder>/<case>/`` for every
    state, season and design present (``--state`` narrows the states) in sorted order, and writes:

    * ``xlrm_results``: one row per current run (below): the run keys, the case's inputs (XLRM X
      and L, flattened names of ``common.doe.PARAMETERS``), the realised counts of the instance
      (``common.schema.REALISED``), every metric of phase 6b (``common.schema.METRICS``: the M of
      XLRM), status, message and the instance's inputs digest. A failed run keeps its inputs and
      realised counts; its metrics are empty. Timings are not results (phase 6 keeps them in
      ``timings.csv``): the table depends only on the inputs, so a rerun, with any number of phase 6
      workers, gives the same bytes.
    * ``aggregate_m2_combined``: the feeder-head series of every current ``ok`` run,
      in the earlier study's schema keyed by ``circuit_folder`` (the feeder folder), ``season``,
      ``design``, ``scenario`` (the case number), with ``state`` in front. ``row_type`` = ``data`` for
      the 96 rows of the day (``hour`` = end of the 15-min interval [h], ``interval_start``), then one
      ``summary`` row per run whose ``hour`` and ``interval_start`` are empty and whose columns hold
      the day's MAXIMUM of each column (``S1 (kVA)`` ... ``S_sum_3ph (kVA)``, ``Ang1..3``, ``ev_kw``,
      ``pv_kw``, ``storage_kw`` (largest discharge), ``storage_soc``, ``losses_kw``, ``v_max_pu``),
      except ``v_min_pu``, which holds the day's MINIMUM, and ``converged``, true when every step
      converged (table ``SUMMARY_ROW``). The series are read one file at a time and appended to the
      parquet file in row groups of ``ROW_GROUP_RUNS`` runs (``pyarrow.parquet.ParquetWriter`` on a
      temporary file, renamed at the end), so memory does not grow with the number of runs. The
      CSV twin is written alongside while its size stays under ``--csv-limit-mb``; when it would not,
      it is skipped (and a stale copy removed) with a log line saying so.
    * ``circuit_summary_combined.csv``: per run, ``n_loads`` (customer load elements of the compiled
      instance: every OpenDSS Load but the EV loads), ``n_customers``, ``n_evs`` (vehicles: the realised
      count, not the EV half-loads), ``n_storage``, ``n_pv``, installed kW and kWh, and the feeder-head
      capacity. ``substation_xfmr_kva`` is the kVA rating of a transformer connected to the source bus
      (or monitored as the head), when the circuit has one; SMART-DS feeders start at a stiff source
      with no substation transformer, so it is empty there, and ``head_capacity_kva`` = n_phases x
      kV(line-neutral) x NormAmps of the head line (= sqrt(3) x kV(line-line) x NormAmps for three
      phases) gives the feeder's thermal head capacity instead. Both are read once per feeder from
      the OpenDSS circuit of one of its instances.
    * ``failures.csv``: current runs whose status is not ``ok`` (with phase 6's message), current
      instances that were never solved (no ``summary.json``; message from the batch index ``runs.csv``
      when it has one), and feeders the circuit filter left out (``circuit_filter.csv``, status fail
      or skipped, with the reason and the OpenDSS message).
    * ``stale_runs.csv``: every instance folder that is not current, with the reason; none of them
      is merged. With ``--clean-stale`` these folders (and nothing else) are removed after the list
      is written, so that the next phase 6 run redoes them; the script then holds phase 6's lock of
      each state from the start (a phase 6 batch running on the state stops it with exit status 2
      before anything is judged or written).

    A run is current when it was made from the inputs as they are now (``stale_reason``, checked in
    this order): its summary carries the contract's digests (a summary of an older phase 6 does not);
    its case is in the current ``0_code_xlrm/mixes_<design>.json`` and its ``mixes_digest`` is the
    SHA-256 of that file; its feeder passes the current ``circuit_filter.csv`` for its season; its
    ``inputs_digest`` equals the one in the folder's ``scenario_assignments.json``; its
    ``shared_digest`` equals the feeder's current one (``Workspace.shared_digest``,
    rewritten by every batch of the feeder: a batch of some cases after the profiles changed makes
    the feeder's other runs stale); its ``metric_settings_digest`` is that of the current planning
    limits (``common.schema.metric_settings_digest``: a run solved under other ANSI ranges, thermal
    limits or failure criteria is redone); a run upgraded by phase 6's ``--upgrades`` was upgraded under the
    current upgrade settings (``common.schema.upgrade_settings_digest``: UPGRADES, its trigger, Range A);
    and an ``ok`` run has every metric of ``common.schema.METRICS``
    (a summary of an older phase 6 lacks the newer ones); every numeric
    metric is finite (``null`` marks an undefined one); an ``ok`` run of a feeder and season with a
    light-load day (design_days.csv ``kind`` light_load) has its ``light_load`` block, and its
    ``<case>/light_load/`` folder holds the ok summary, assignments and series that block names, on the
    feeder's current light-load shared inputs (``light_load_reason``); an ``ok`` run solved on several design
    days (phase 6 ``--days K``: a ``days`` block) has every day of that block still a peak day of the current
    design_days.csv, and each ``<case>/day<k>/`` folder holds the ok summary, assignments and series the block
    names, on that day's current shared inputs, its worst day the one the block and the run's metrics give
    (``days_reason``); and, for an ``ok`` run, its
    ``timeseries.parquet`` is the one it wrote (SHA-256 equal to ``timeseries_sha256``) with 96 rows
    of finite feeder-head values. An instance folder without a summary is current when its case is
    in the mixes file and its feeder passes the filter (then it is "never solved" in failures.csv).

    A corrupt ``summary.json`` or one that names another run than its folder, a missing or
    unreadable mixes file of a design that has runs, or a missing or unreadable
    ``circuit_filter.csv`` of a state that has runs stops the script with one line naming the file
    and exit status 2 before anything is written. So do current ok runs of one state and season solved on
    different numbers of design days (phase 6 ``--days K``, ``mixed_design_days``: a worst of three days and a
    single peak day are not the same metric); states or seasons that differ in it are merged with a warning.

Inputs (phase 6, ``6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py --run``)
    <data>/6_instantiate_circuits/<STATE>/<season>/<design>/<feeder>/<case>/summary.json,
        timeseries.parquet, scenario_assignments.json, Master.dss (and the files it redirects to)
    <data>/6_instantiate_circuits/<STATE>/<season>/<design>/runs.csv       batch index
    <data>/6_instantiate_circuits/<STATE>/circuit_filter.csv               circuit filter
    <data>/0_code_xlrm/mixes_<design>.json (phase 0)                         the current cases

Outputs (``<data>/7_results_analysis/``)
    xlrm_results.parquet, xlrm_results.csv      state, feeder, season, design, case, design_day,
                                                <inputs>, disjoint_sets, design_point, placement_replicate,
                                                (cross layout: scenario, policy, policy_name), <realised>, <metrics>, status,
                                                message, inputs_digest
    aggregate_m2_combined.parquet (.csv)        state, circuit_folder, season, design, scenario, row_type,
                                                hour [h], interval_start, S1 (kVA) ... S_sum_3ph (kVA),
                                                ev_kw, pv_kw, storage_kw, storage_soc [-], losses_kw,
                                                v_min_pu, v_max_pu, converged
    circuit_summary_combined.csv                state, circuit_folder, season, design, scenario, status,
                                                n_loads, n_customers, n_evs, n_storage, n_pv, pv_kw,
                                                storage_kw, storage_kwh, ev_charger_kw_total,
                                                n_pv_res, pv_res_kw, n_storage_res, storage_res_kw,
                                                storage_res_kwh (rooftop PV, home batteries),
                                                substation_xfmr_kva, head_capacity_kva, head_element,
                                                head_kv_ll, head_norm_amps
    failures.csv                                state, season, design, feeder, case, source
                                                (run / not_solved / circuit_filter), status, reason
    stale_runs.csv                              state, season, design, feeder, case, reason
    manifest_append_experiment_results.json

Settings read
    common.config: STATES, SEASONS, DESIGNS, INTERVALS_PER_DAY; common.doe.PARAMETERS; common.schema tables.

Usage
    python 7_results_analysis/append_experiment_results.py [--data-dir DATA] [--state NC TX]
        [--csv-limit-mb 200] [--clean-stale]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import results_io as rio
from common import cli, config, doe, dss, schema
from common.io import (InputError, atomic_path, folder_lock, read_csv, read_json, sha256_bytes, sha256_file,
                       write_csv, write_manifest, write_parquet)
from common.paths import INSTANCE_FILES, UPGRADE_FILES, Workspace

logger = logging.getLogger(__name__)

#: default size limit of the aggregate CSV [MB]; the parquet file is always written
CSV_LIMIT_MB = 200.0
#: runs per parquet row group of the aggregate (97 rows each): bounds the memory of the writer
ROW_GROUP_RUNS = 256
#: summary.json keys without which a summary cannot be read at all (one missing: exit 2)
SUMMARY_KEYS = ("state", "season", "design", "feeder", "case", "inputs", "realised", "status", "metrics")
#: summary.json keys that tie a run to its inputs and outputs; a summary of an older phase 6 lacks
#: them, and its run is stale
LINEAGE_KEYS = ("inputs_digest", "mixes_digest", "timeseries_sha256")
STATUSES = schema.STATUSES
#: the aggregate's summary row: how each column's 96 values are reduced (see the module docstring)
SUMMARY_ROW = {**{c: "max" for c in schema.HEAD_COLUMNS}, "ev_kw": "max", "pv_kw": "max", "storage_kw": "max",
               "storage_soc": "max", "losses_kw": "max", "v_min_pu": "min", "v_max_pu": "max", "converged": "all"}
#: series columns phase 6b writes besides the head columns (optional: empty when a file lacks them)
EXTRA_SERIES = tuple(schema.EXTRA_SERIES)
SERIES_KEYS = ("state", "circuit_folder", "season", "design", "scenario", "row_type")
#: the series columns that must be finite in every row of an ok run
FINITE_SERIES = ("hour", *schema.HEAD_COLUMNS)
STALE_COLUMNS = ("state", "season", "design", "feeder", "case", "reason")
PHASE0 = "0_code_xlrm/run_mix_generator.py"
PHASE6 = "6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py"
#: what phase 6 redoes when asked (the fix named in the stale reasons)
REDO = f"re-run phase 6 ({PHASE6} --run)"


# ------------------------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class RunFolder:
    """One instance folder of phase 6."""

    state: str
    season: str
    design: str
    feeder: str
    case: int
    folder: Path

    @property
    def sort_key(self) -> tuple:
        return (self.state, self.feeder, self.season, self.design, self.case)

    @property
    def label(self) -> str:
        return f"{self.state}/{self.season}/{self.design}/{self.feeder}/{self.case}"

    @property
    def summary(self) -> Path:
        return self.folder / INSTANCE_FILES["summary"]

    @property
    def series(self) -> Path:
        return self.folder / INSTANCE_FILES["timeseries"]


def discover_runs(ws: Workspace, states: Sequence[str]) -> list[RunFolder]:
    """Every instance folder (it holds a summary.json or a scenario_assignments.json), sorted."""
    found = []
    for state in states:
        for season in config.SEASONS:
            for design in config.DESIGNS:
                design_dir = ws.design_dir(state, season, design)
                if not design_dir.is_dir():
                    continue
                for feeder_dir in sorted(design_dir.iterdir()):
                    if not feeder_dir.is_dir() or feeder_dir.name.startswith(("_", ".")):
                        continue
                    for case_dir in feeder_dir.iterdir():
                        if not (case_dir.is_dir() and case_dir.name.isdigit()):
                            continue
                        if (case_dir / INSTANCE_FILES["summary"]).is_file() or \
                                (case_dir / INSTANCE_FILES["assignments"]).is_file():
                            found.append(RunFolder(state, season, design, feeder_dir.name, int(case_dir.name), case_dir))
    return sorted(found, key=lambda r: r.sort_key)


def read_summary(run: RunFolder) -> dict[str, Any]:
    """The run's summary.json, checked; UserError naming the file when it cannot be used."""
    path = run.summary
    redo = "re-run phase 6 for it (instantiate_circuits_and_runs_APPLYFILTER.py --run redoes bad runs) or remove the folder"
    try:
        data = read_json(path)
    except json.JSONDecodeError as exc:
        raise cli.UserError(f"{path}: corrupt summary.json ({exc.msg} at line {exc.lineno}): {redo}") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise cli.UserError(f"{path}: unreadable summary.json ({exc}): {redo}") from None
    if not isinstance(data, dict):
        raise cli.UserError(f"{path}: summary.json is not a JSON object: {redo}")
    missing = [k for k in SUMMARY_KEYS if k not in data]
    if missing:
        raise cli.UserError(f"{path}: summary.json has no {missing[0]!r}: {redo}")
    expected = {"state": run.state, "season": run.season, "design": run.design, "feeder": run.feeder,
                "case": str(run.case)}
    for key, value in expected.items():
        if str(data[key]) != value:
            raise cli.UserError(f"{path}: summary.json says {key} = {data[key]!r} but the folder is {value!r}: {redo}")
    if data["status"] not in STATUSES:
        raise cli.UserError(f"{path}: status {data['status']!r} is not one of {', '.join(STATUSES)}: {redo}")
    for key in ("inputs", "realised", "metrics"):
        if not isinstance(data[key], dict):
            raise cli.UserError(f"{path}: {key!r} is not a JSON object: {redo}")
    absent = [name for name in rio.INPUTS if not isinstance(data["inputs"].get(name), (int, float))]
    if absent:
        raise cli.UserError(f"{path}: input {absent[0]!r} missing or not a number: {redo}")
    return data


# ------------------------------------------------------------------------------------------- current inputs
@dataclass
class Current:
    """The inputs as they are now, which a run must match to be merged: per design the SHA-256 and
    the case keys of phase 0's mixes file, per state phase 6's circuit filter table."""

    mixes_digest: dict[str, str] = field(default_factory=dict)
    mixes_cases: dict[str, frozenset[str]] = field(default_factory=dict)
    mixes_name: dict[str, str] = field(default_factory=dict)
    #: per design, case -> (scenario, policy, policy_name) of a cross layout's mixes file (empty: joint)
    layout: dict[str, dict[int, tuple[int, int, str]]] = field(default_factory=dict)
    #: (state, season, feeder) -> (status, reason) of circuit_filter.csv
    filter: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    #: the workspace, for each feeder's current shared digest (phase 6's ``Workspace.shared_digest``)
    ws: Workspace | None = None
    #: (state, season, feeder) -> rank of the feeder's light-load day in the current design_days.csv (phase 2)
    light_days: dict[tuple[str, str, str], int] = field(default_factory=dict)
    #: the states whose current design_days.csv was read (their light_days are known, none included)
    design_days_read: set[str] = field(default_factory=set)
    #: (state, season, feeder) -> (rank, date) of each peak design day in the current design_days.csv (phase 2)
    peak_days: dict[tuple[str, str, str], dict[int, str]] = field(default_factory=dict)
    #: cost-table folder -> its current digest (``common.schema.cost_tables_digest``), read once per combine
    cost_table_digests: dict[str, str | None] = field(default_factory=dict)

    def case_reason(self, design: str, case: int) -> str:
        """Why the case is not one of the current design's ('' when it is)."""
        if str(case) not in self.mixes_cases[design]:
            return (f"case {case} is not in the current {self.mixes_name[design]} (a case of an earlier design): "
                    "not a run of this study")
        return ""

    def filter_reason(self, state: str, season: str, feeder: str) -> str:
        """Why the feeder does not pass the current circuit filter for the season ('' when it does)."""
        entry = self.filter.get((state, season, feeder))
        if entry is None:
            return (f"feeder {feeder} has no {season} row in the current {state} circuit_filter.csv: {REDO} for it "
                    "or remove the folder")
        status, reason = entry
        if status != "pass":
            why = f" ({reason})" if reason else ""
            return f"feeder {feeder} is '{status}' in the current {state} circuit_filter.csv for {season}{why}"
        return ""


def read_mixes(ws: Workspace, design: str, layout: dict[int, tuple[int, int, str]] | None = None
               ) -> tuple[str, frozenset[str]]:
    """SHA-256 of the bytes of the current mixes file of ``design`` and its case keys; a missing or
    unusable file is an InputError (runs cannot be judged without it). ``layout``, when given, receives
    the cross layout's scenario and policy of each case (``results_io.layout_of_mixes``)."""
    path = ws.mixes(design)
    if not path.is_file():
        raise InputError(f"missing input {path}: the phase 6 runs of design {design} are judged against it; run "
                         f"{PHASE0} (then phase 6) again")
    try:
        mixes = doe.load_mixes(path)
    except doe.MixesError as exc:
        raise InputError(str(exc)) from None
    if layout is not None:
        try:
            doe.validate_layout(mixes, str(path))
        except doe.MixesError as exc:
            raise InputError(str(exc)) from None
        layout.update(rio.layout_of_mixes(mixes))
    return sha256_file(path), frozenset(str(k) for k in mixes)


def read_filter(ws: Workspace, state: str, *, required: bool) -> pd.DataFrame | None:
    """A state's circuit_filter.csv (every column as text), or None when absent and not required."""
    path = ws.circuit_filter(state)
    if not path.exists() and not required:
        return None
    table = read_csv(path, PHASE6, required=("season", "feeder", "status"), dtype=str, keep_default_na=False)
    unknown = sorted(set(table["status"]) - set(schema.CIRCUIT_FILTER_STATUSES))
    if unknown:
        raise InputError(f"{path}: status {unknown[0]!r} is not one of {', '.join(schema.CIRCUIT_FILTER_STATUSES)}: "
                         f"run {PHASE6} again")
    return table


def current_inputs(ws: Workspace, runs: Sequence["RunFolder"], filters: dict[str, pd.DataFrame | None]) -> Current:
    """The current mixes files of the designs that have runs and the circuit filters of the states."""
    current = Current(ws=ws)
    for design in sorted({r.design for r in runs}):
        current.layout[design] = {}
        current.mixes_digest[design], current.mixes_cases[design] = read_mixes(ws, design, current.layout[design])
        current.mixes_name[design] = ws.mixes(design).name
    for state in sorted(filters):  # the light-load days phase 2 gives each feeder (none in an older file)
        path = ws.design_days(state)
        if path.is_file():
            days = read_csv(path, "2_profiles_heat_pumps/find_max_day_curve.py", dtype=str, keep_default_na=False)
            current.design_days_read.add(state)
            if {"rank", "season", "feeder"} <= set(days.columns):  # several days; kind only with a light-load day
                dates = days["date"] if "date" in days.columns else pd.Series("", index=days.index)
                kinds = days["kind"] if "kind" in days.columns else pd.Series("peak", index=days.index)
                for season, feeder, rank, kind, date in zip(days["season"], days["feeder"], days["rank"], kinds, dates):
                    if kind == "light_load" and rank.isdigit():
                        current.light_days[(state, season, feeder)] = int(rank)
                    elif kind == "peak" and rank.isdigit():
                        current.peak_days.setdefault((state, season, feeder), {})[int(rank)] = date
            elif {"season", "feeder", "date"} <= set(days.columns):  # one design day per feeder and season
                for season, feeder, date in zip(days["season"], days["feeder"], days["date"]):
                    current.peak_days[(state, season, feeder)] = {1: date}
    for state, table in sorted(filters.items()):
        if table is None:
            continue
        reasons = table["reason"] if "reason" in table.columns else pd.Series("", index=table.index)
        for season, feeder, status, reason in zip(table["season"], table["feeder"], table["status"], reasons):
            current.filter[(state, season, feeder)] = (status, reason)
    return current


def _not_finite(value: Any) -> bool:
    """A metric value that is neither null, text, nor a finite number."""
    if value is None or isinstance(value, str):
        return False
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return not math.isfinite(value)


def stale_reason(run: "RunFolder", summary: dict[str, Any], current: Current, assignments_digest: str | None,
                 series_present: bool) -> str:
    """Why a solved run is not current ('' when it is), the first failing check of the module docstring.

    ``assignments_digest``: the ``inputs_digest`` of the folder's scenario_assignments.json (None when
    the file is missing or unreadable); ``series_present``: whether timeseries.parquet exists. The
    series' bytes are checked while they are streamed (:func:`series_reason`).
    """
    absent = [k for k in LINEAGE_KEYS if not isinstance(summary.get(k), str)]
    if absent:
        return f"summary.json has no {absent[0]} (written by an older phase 6): {REDO}"
    reason = current.case_reason(run.design, run.case)
    if reason:
        return reason
    if summary["mixes_digest"] != current.mixes_digest[run.design]:
        return (f"built from an earlier {current.mixes_name[run.design]} (mixes_digest differs from the current "
                f"file's SHA-256): {REDO}")
    reason = current.filter_reason(run.state, run.season, run.feeder)
    if reason:
        return reason
    if assignments_digest is None:
        return f"{INSTANCE_FILES['assignments']} missing or unreadable: {REDO}"
    if summary["inputs_digest"] != assignments_digest:
        return (f"inputs changed since the run (inputs_digest differs from {INSTANCE_FILES['assignments']}'s): "
                f"{REDO}")
    shared = current.ws.shared_digest(run.state, run.season, run.feeder) if current.ws is not None else None
    if shared is not None and shared.is_file() and summary.get("shared_digest") != shared.read_text().strip():
        return (f"built on other shared inputs (daily profiles, feeder files) than the feeder's current ones "
                f"({shared}): {REDO}")
    if summary.get("metric_settings_digest") != schema.metric_settings_digest():
        return (f"its metrics were computed under other planning limits (common.config ANSI ranges, THERMAL, "
                f"FAILURE_CRITERIA: metric_settings_digest differs): {REDO}")
    reason = upgrades_reason(run, summary, current)
    if reason:
        return reason
    reason = light_load_reason(run, summary, current)
    if reason:
        return reason
    reason = days_reason(run, summary, current)
    if reason:
        return reason
    metrics = summary["metrics"]
    bad = sorted(name for name, value in metrics.items()
                 if _not_finite(value) or (isinstance(value, str) and name in rio.METRICS
                                           and not rio.is_text(rio.METRICS[name][0])))
    if bad:
        return f"metric {bad[0]} is {metrics[bad[0]]!r}, not a finite number: {REDO}"
    if summary["status"] == "ok":
        if not metrics:
            return f"status ok without metrics: {REDO}"
        if schema.missing_metrics(metrics):
            return (f"summary.json has no metric {schema.missing_metrics(metrics)[0]} (written by an older "
                    f"phase 6): {REDO}")
        if not series_present:
            return f"status ok but {INSTANCE_FILES['timeseries']} is missing: {REDO}"
        if not summary["timeseries_sha256"]:
            return f"status ok but timeseries_sha256 is empty: {REDO}"
    return ""


def upgrades_reason(run: "RunFolder", summary: dict[str, Any], current: Current) -> str:
    """Why the upgrade cost of a run is not current ('' when it is, or the run has none): its ``upgrades`` block
    must have been computed under the current upgrade settings (``common.schema.upgrade_settings_digest``), from
    the ``upgrades.json`` beside it (SHA-256 ``upgrades_sha256``) and from cost tables that are still those of
    ``cost_tables_digest`` (the folder upgrades.json names or, when it is gone (a moved workspace), the folder
    phase 6 prices with by default: ``UPGRADES["cost_tables_dir"]`` or the workspace's ``upgrade_costs/``;
    ``common.schema.cost_tables_digest``)."""
    block = summary.get("upgrades")
    if block is None:
        return ""
    again = f"{REDO.removesuffix(')')} --upgrades)"
    if not isinstance(block, dict):
        return f"its upgrades block is not a record: {again}"
    if block.get("settings_digest") != schema.upgrade_settings_digest():
        return (f"its upgrade cost was computed under other upgrade settings (common.config UPGRADES, ANSI Range "
                f"A, THERMAL: the upgrades block's settings_digest differs): {again}")
    if block.get("status") == "failed":
        return ""  # no cost to check: phase 7 reads it as a failed upgrade
    path = run.folder / UPGRADE_FILES["upgrades"]
    try:
        if sha256_file(path) != block.get("upgrades_sha256"):
            return f"{path} differs from the one its upgrade cost was computed with (upgrades_sha256): {again}"
        tables = str(read_json(path).get("cost_tables", ""))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return f"{path} is missing or unreadable: {again}"
    if not tables or not Path(tables).is_dir():  # a moved workspace: the tables phase 6 now prices with by default
        tables = str(Path(config.UPGRADES["cost_tables_dir"]) if config.UPGRADES.get("cost_tables_dir")
                     else Workspace(run.folder.parents[5]).upgrade_costs_dir)  # <data>/6_.../STATE/season/design/feeder/case
    if tables not in current.cost_table_digests:
        current.cost_table_digests[tables] = schema.cost_tables_digest(tables)
    if current.cost_table_digests[tables] != block.get("cost_tables_digest"):
        return (f"the unit-cost tables in {tables} changed since its upgrade cost was computed (cost_tables_digest "
                f"differs): {again}")
    return ""


def light_load_reason(run: "RunFolder", summary: dict[str, Any], current: Current) -> str:
    """Why the light-load day of an ok run is not current ('' when it is, or the run has none): its
    ``<case>/light_load/`` folder must hold the ok summary, scenario_assignments.json and timeseries.parquet the
    run's ``light_load`` block names (same digests), built on the feeder's current light-load shared inputs
    (``Workspace.shared_digest`` of its rank); the block's rank must be the light-load day the current
    design_days.csv gives the feeder (none: the run's light day is stale too) and the summary must have every
    ``light_load_*`` metric."""
    block = summary.get("light_load")
    if summary.get("status") != "ok":
        return ""
    if block is None:
        if (run.state, run.season, run.feeder) in current.light_days:
            return (f"no light-load day, though the current design_days.csv gives feeder {run.feeder} one for "
                    f"{run.season} (a run of an earlier phase 6): {REDO}")
        return ""
    folder = run.folder / str(block.get("folder", "light_load")) if isinstance(block, dict) else run.folder
    try:
        day = read_json(folder / INSTANCE_FILES["summary"])
        light_assignments = read_json(folder / INSTANCE_FILES["assignments"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError):
        return f"its light-load day's {folder / INSTANCE_FILES['summary']} or assignments are missing or unreadable: {REDO}"
    if not isinstance(block, dict) or not isinstance(day, dict) or not isinstance(light_assignments, dict):
        return f"its light-load day's summary.json ({folder}) is not a run's summary: {REDO}"
    if run.state in current.design_days_read:  # the light-load day phase 2 now gives the feeder, if any
        rank = current.light_days.get((run.state, run.season, run.feeder))
        if rank is None:
            return (f"it has a light-load day ({block.get('date', '')}), though the current design_days.csv gives "
                    f"feeder {run.feeder} none for {run.season} (phase 2 run again without it): {REDO}")
        if block.get("rank") != rank:
            return (f"its light-load day has rank {block.get('rank')}, the current design_days.csv's is {rank} "
                    f"(phase 2 run again with other --days): {REDO}")
    missing = [name for name in schema.LIGHT_LOAD_METRICS if name not in (summary.get("metrics") or {})]
    if missing:
        return f"summary.json has a light-load day but no metric {missing[0]}: {REDO}"
    if day.get("status") != "ok" or block.get("status") != "ok":
        return f"its light-load day ({folder}) is not ok: {REDO}"
    if (day.get("inputs_digest"), day.get("shared_digest")) != (block.get("inputs_digest"), block.get("shared_digest")) \
            or light_assignments.get("inputs_digest") != day.get("inputs_digest"):
        return f"its light-load day ({folder}) was solved from other inputs than the run records: {REDO}"
    series = folder / INSTANCE_FILES["timeseries"]
    if not series.is_file() or not block.get("timeseries_sha256") or sha256_file(series) != block["timeseries_sha256"]:
        return f"its light-load day's {series} is missing or not the series the run records: {REDO}"
    shared = current.ws.shared_digest(run.state, run.season, run.feeder, int(block.get("rank", 1))) \
        if current.ws is not None else None
    if shared is not None and shared.is_file() and block.get("shared_digest") != shared.read_text().strip():
        return (f"its light-load day was built on other shared inputs than the feeder's current ones ({shared}): "
                f"{REDO}")
    return ""


def days_reason(run: "RunFolder", summary: dict[str, Any], current: Current) -> str:
    """Why an ok run solved on several design days (``--days K``, phase 6 ``worst_day.py``) is not current ('' when
    it is, or the run has one day): every day of its ``days`` block must still be a peak day of the current
    design_days.csv (same rank and date); each ``<case>/day<k>/`` folder must hold the ok summary, assignments and
    series that day's entry names (same digests), built on the day's current shared inputs
    (``Workspace.shared_digest`` of its rank); and its worst day must be the block's (``WORST_DAY_METRIC``, a tie to
    the lower rank), whose metrics are the run's."""
    block = summary.get("days")
    if block is None or summary.get("status") != "ok":
        return ""
    if not isinstance(block, dict) or not isinstance(block.get("per_day"), list) or not block["per_day"]:
        return f"its days block (a run of several design days) is not a record of its days: {REDO}"
    peaks = current.peak_days.get((run.state, run.season, run.feeder), {}) if run.state in current.design_days_read \
        else None
    values: dict[int, float] = {}
    worst_metrics = None
    for entry in block["per_day"]:
        rank = entry.get("rank") if isinstance(entry, dict) else None
        if not isinstance(rank, int):
            return f"its days block has a day without a rank: {REDO}"
        if peaks is not None and peaks.get(rank) != entry.get("date"):
            now = f"{peaks[rank]}" if rank in peaks else "no such day"
            return (f"its design day {rank} ({entry.get('date', '')}) is not the current design_days.csv's ({now}: "
                    f"phase 2 run again): {REDO}")
        folder = run.folder / str(entry.get("folder", f"day{rank}"))
        try:
            day = read_json(folder / INSTANCE_FILES["summary"])
            day_assignments = read_json(folder / INSTANCE_FILES["assignments"])
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError):
            return f"its design day {rank}'s {folder / INSTANCE_FILES['summary']} or assignments are missing or " \
                   f"unreadable: {REDO}"
        if not isinstance(day, dict) or not isinstance(day_assignments, dict) or day.get("status") != "ok":
            return f"its design day {rank} ({folder}) is not an ok run: {REDO}"
        if (day.get("inputs_digest"), day.get("shared_digest")) != (entry.get("inputs_digest"),
                                                                   entry.get("shared_digest")) \
                or day_assignments.get("inputs_digest") != day.get("inputs_digest"):
            return f"its design day {rank} ({folder}) was solved from other inputs than the run records: {REDO}"
        series = folder / INSTANCE_FILES["timeseries"]
        if not series.is_file() or not day.get("timeseries_sha256") or sha256_file(series) != day["timeseries_sha256"]:
            return f"its design day {rank}'s {series} is missing or not the series that day recorded: {REDO}"
        shared = current.ws.shared_digest(run.state, run.season, run.feeder, rank) if current.ws is not None else None
        if shared is not None and shared.is_file() and entry.get("shared_digest") != shared.read_text().strip():
            return (f"its design day {rank} was built on other shared inputs than the feeder's current ones "
                    f"({shared}): {REDO}")
        value = (day.get("metrics") or {}).get(block.get("worst_day_metric", config.WORST_DAY_METRIC))
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"its design day {rank} has no {block.get('worst_day_metric')}: {REDO}"
        values[rank] = float(value)
        if rank == block.get("worst_rank"):
            worst_metrics = day.get("metrics")
    worst = min(values, key=lambda r: (-values[r], r))
    if worst != block.get("worst_rank") or worst_metrics != summary.get("metrics"):
        return (f"its worst design day is day {worst} by {block.get('worst_day_metric')}, not the day {block.get('worst_rank')} "
                f"its summary carries: {REDO}")
    return ""


def design_day_count(summary: dict[str, Any]) -> int:
    """How many design days an ok run was solved on: its ``days`` block's (phase 6 ``--days K``), 1 without one."""
    block = summary.get("days")
    return len(block["per_day"]) if isinstance(block, dict) and isinstance(block.get("per_day"), list) else 1


def mixed_design_days(runs: Sequence["RunFolder"], summaries: dict["RunFolder", dict[str, Any]]) -> str:
    """Why the current ok runs cannot be merged as one study ('' when they can): every ok run of a state and
    season must have been solved on the same number of design days (:func:`design_day_count`). A run of K days
    reports its worst day (``worst_day.py``: the highest ``WORST_DAY_METRIC`` of its K peak days), an extreme over
    K days; merged with runs of fewer days, a design's cases would differ by how many days each one saw, not
    only by its inputs, and every relationship and verdict of the state and season would carry that difference
    as if it were an input's."""
    groups: dict[tuple[str, str], dict[int, list[RunFolder]]] = {}
    for run in runs:
        if summaries[run].get("status") == "ok":
            groups.setdefault((run.state, run.season), {}).setdefault(design_day_count(summaries[run]), []).append(run)
    for (state, season), by_days in sorted(groups.items()):
        if len(by_days) > 1:
            counts = "; ".join(f"{len(found)} on {days} design day{'s' if days > 1 else ''} (e.g. "
                               f"{min(found, key=lambda r: r.sort_key).summary})" for days, found in sorted(by_days.items()))
            designs = sorted({r.design for found in by_days.values() for r in found})
            design = designs[0] if len(designs) == 1 else f"D (for each D of {', '.join(designs)})"
            return (f"{state} {season}: the ok runs were solved on different numbers of design days ({counts}; the "
                    f"days block of summary.json, phase 6 --days K), and a worst of K days is not comparable with "
                    f"fewer days: run phase 6 again with one K for every run of {state} {season} ({PHASE6} --state "
                    f"{state} --season {season} --design {design} --run --days {max(by_days)}: it solves only the "
                    f"days a run lacks; with --feeder-dir feeders, which take one day, --days 1 --force instead)")
    return ""


def assignments_digest(run: "RunFolder") -> str | None:
    """The ``inputs_digest`` of the folder's scenario_assignments.json, or None when it has none."""
    path = run.folder / INSTANCE_FILES["assignments"]
    try:
        data = read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    digest = data.get("inputs_digest") if isinstance(data, dict) else None
    return digest if isinstance(digest, str) else None


def stale_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """stale_runs.csv: one row per instance folder not merged, sorted by state, season, design, feeder, case."""
    table = pd.DataFrame(rows, columns=list(STALE_COLUMNS))
    table["case"] = table["case"].astype("int64")
    for c in STALE_COLUMNS:
        if c != "case":
            table[c] = table[c].astype("str")
    return table.sort_values(["state", "season", "design", "feeder", "case"], kind="stable").reset_index(drop=True)


def _stale_row(run: "RunFolder", reason: str) -> dict[str, Any]:
    return {"state": run.state, "season": run.season, "design": run.design, "feeder": run.feeder, "case": run.case,
            "reason": reason}


def phase6_locks(ws: Workspace, states: Sequence[str]) -> contextlib.ExitStack:
    """Phase 6's lock of each state (``folder_lock(<data>/6_instantiate_circuits/<STATE>, "phase 6
    <STATE>")``, the lock a phase 6 batch holds), all taken at once: while held no batch writes the
    instance folders, so runs judged stale stay stale until they are removed. A batch running now
    makes this raise LockHeld (one line, exit 2)."""
    stack = contextlib.ExitStack()
    try:
        for state in sorted(set(states)):
            stack.enter_context(folder_lock(ws.circuits_dir(state), f"phase 6 {state}"))
    except BaseException:
        stack.close()
        raise
    return stack


def clean_stale(ws: Workspace, stale: list["RunFolder"]) -> int:
    """Remove the instance folders of ``stale`` (and nothing else); returns how many were removed.
    Call it holding :func:`phase6_locks` since the runs were judged. A folder that is not where the
    workspace puts that run's instance is left alone (logged)."""
    root = ws.phase("6").resolve()
    removed = 0
    for run in sorted(stale, key=lambda r: r.sort_key):
        expected = ws.instance_dir(run.state, run.season, run.design, run.feeder, str(run.case))
        folder = run.folder
        if folder != expected or not folder.parent.resolve().is_relative_to(root):
            logger.warning("not removing %s: not the instance folder of %s", folder, run.label)
            continue
        if folder.is_symlink():
            folder.unlink()
        elif folder.is_dir():
            shutil.rmtree(folder)
        else:
            continue
        removed += 1
    return removed


# ------------------------------------------------------------------------------------------- pure: tables
def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        out[prefix] = value


def run_row(summary: dict[str, Any]) -> dict[str, Any]:
    """One flat row of xlrm_results from a summary.json (keys, inputs, realised, metrics, status); nothing
    else of the summary (packages, digests of the files) is a result."""
    row: dict[str, Any] = {"state": summary["state"], "feeder": summary["feeder"], "season": summary["season"],
                           "design": summary["design"], "case": int(summary["case"]),
                           "design_day": summary.get("design_day", "")}
    for name in rio.INPUTS:
        row[name] = float(summary["inputs"][name])
    row["disjoint_sets"] = bool(summary["inputs"].get("disjoint_sets", True))
    # phase 0's placement replicates (common.doe): a run of a mixes file without them is one replicate
    row["design_point"] = int(summary["inputs"].get("design_point", row["case"]))
    row["placement_replicate"] = int(summary["inputs"].get("placement_replicate", 0))
    realised: dict[str, Any] = {}
    _flatten("", summary["realised"], realised)
    row.update(realised)
    for name, value in summary["metrics"].items():
        if name not in rio.NOT_OUTCOMES and name not in realised:
            row[name] = value
    row.update(rio.upgrade_columns(summary.get("upgrades")))  # the upgrade step's cost, when it ran (issue 17)
    row.update({"status": summary["status"], "message": summary.get("message", "") or "",
                "inputs_digest": summary.get("inputs_digest", "")})
    return row


def _typed(column: pd.Series, unit: str) -> pd.Series:
    if rio.is_text(unit):
        return column.astype("str").where(column.notna(), "").astype("str")
    if unit == "count":
        return pd.to_numeric(column, errors="coerce").round().astype("Int64")
    return pd.to_numeric(column, errors="coerce").astype("float64")


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """xlrm_results from flat rows: columns in a fixed order, units' dtypes (counts Int64, text str).

    Column order: run keys, design_day, inputs, disjoint_sets, design_point, placement_replicate, realised (``REALISED`` order),
    metrics (``METRICS`` order; unknown names sorted at the end, logged), status, message, inputs digest.
    """
    frame = pd.DataFrame(rows)
    head = [*rio.RUN_KEYS, "design_day", *rio.INPUTS, "disjoint_sets", *rio.PLACEMENT_COLUMNS]
    tail = ["status", "message", "inputs_digest"]
    rest = [c for c in frame.columns if c not in head and c not in tail]
    realised = [c for c in rio.ordered(rest, rio.REALISED) if c in rio.REALISED]
    described = {**rio.METRICS, **rio.LIGHT_LOAD_METRICS, **rio.UPGRADE_METRICS}
    metrics = rio.ordered([c for c in rest if c not in rio.REALISED], described)
    unknown = [c for c in metrics if c not in described]
    if unknown:
        logger.warning("metrics without a unit in results_io.METRICS (kept, unit unknown): %s", ", ".join(unknown))
    frame = frame[head + realised + metrics + tail].copy()
    for name in realised:
        frame[name] = _typed(frame[name], rio.REALISED[name][0])
    for name in metrics:
        if name in described:
            frame[name] = _typed(frame[name], described[name][0])
    for name in rio.INPUTS:
        frame[name] = frame[name].astype("float64")
    for name in ("case", *rio.PLACEMENT_COLUMNS):
        frame[name] = frame[name].astype("int64")
    frame["disjoint_sets"] = frame["disjoint_sets"].astype(bool)
    for name in ("state", "feeder", "season", "design", "design_day", "status", "message", "inputs_digest"):
        frame[name] = frame[name].fillna("").astype("str")
    frame = rio.with_factors(frame)  # the independent heat-pump factors beside the shares
    return frame.sort_values(list(rio.RUN_KEYS), kind="stable").reset_index(drop=True)


FAILURE_COLUMNS = ("state", "season", "design", "feeder", "case", "source", "status", "reason")


def failures_frame(results: pd.DataFrame, unsolved: list[dict[str, Any]], filtered: pd.DataFrame) -> pd.DataFrame:
    """failures.csv: failed runs, never-solved instances and feeders the circuit filter left out."""
    parts = []
    bad = results[results["status"] != "ok"]
    if len(bad):
        parts.append(pd.DataFrame({"state": bad["state"], "season": bad["season"], "design": bad["design"],
                                   "feeder": bad["feeder"], "case": bad["case"], "source": "run",
                                   "status": bad["status"], "reason": bad["message"]}))
    if unsolved:
        parts.append(pd.DataFrame(unsolved))
    if len(filtered):
        parts.append(filtered)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="str" if c != "case" else "Int64") for c in FAILURE_COLUMNS})
    table = pd.concat(parts, ignore_index=True)[list(FAILURE_COLUMNS)]
    table["case"] = pd.to_numeric(table["case"], errors="coerce").astype("Int64")
    for c in FAILURE_COLUMNS:
        if c != "case":
            table[c] = table[c].fillna("").astype("str")
    order = {"circuit_filter": 0, "run": 1, "not_solved": 2}
    table["_o"] = table["source"].map(order)
    table = table.sort_values(["state", "season", "_o", "design", "feeder", "case"], kind="stable", na_position="first")
    return table.drop(columns="_o").reset_index(drop=True)


def reduce_column(values: np.ndarray, how: str) -> Any:
    """One column's summary-row value: max / min ignoring NaN (NaN when all are), or all()."""
    values = np.asarray(values)
    if how == "all":
        return bool(values.all())
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return np.nan
    return float(finite.max() if how == "max" else finite.min())


def series_schema() -> pa.Schema:
    fields = [pa.field("state", pa.string()), pa.field("circuit_folder", pa.string()), pa.field("season", pa.string()),
              pa.field("design", pa.string()), pa.field("scenario", pa.int64()), pa.field("row_type", pa.string()),
              pa.field("hour", pa.float64()), pa.field("interval_start", pa.timestamp("us"))]
    fields += [pa.field(c, pa.float64()) for c in schema.HEAD_COLUMNS]
    fields += [pa.field(c, pa.bool_() if c == "converged" else pa.float64()) for c in EXTRA_SERIES]
    return pa.schema(fields)


def series_block(run: RunFolder, table: pa.Table) -> dict[str, np.ndarray]:
    """The 96 data rows of one run plus its summary row, as column arrays (null = NaN / NaT / None)."""
    n = table.num_rows
    block: dict[str, np.ndarray] = {
        "state": np.full(n + 1, run.state, dtype=object), "circuit_folder": np.full(n + 1, run.feeder, dtype=object),
        "season": np.full(n + 1, run.season, dtype=object), "design": np.full(n + 1, run.design, dtype=object),
        "scenario": np.full(n + 1, run.case, dtype=np.int64),
        "row_type": np.array(["data"] * n + ["summary"], dtype=object),
        "hour": np.append(table["hour"].to_numpy().astype(float), np.nan),
        "interval_start": np.append(table["interval_start"].to_numpy().astype("datetime64[us]"),
                                    np.datetime64("NaT", "us")),
    }
    present = set(table.column_names)
    for column in (*schema.HEAD_COLUMNS, *EXTRA_SERIES):
        how = SUMMARY_ROW[column]
        if column in present:
            values = table[column].to_numpy(zero_copy_only=False)
            values = values.astype(bool) if how == "all" else values.astype(float)
        else:
            values = np.ones(n, dtype=bool) if how == "all" else np.full(n, np.nan)
        block[column] = np.append(values, reduce_column(values, how))
    return block


def _arrow_batch(blocks: list[dict[str, np.ndarray]], schema: pa.Schema) -> pa.Table:
    arrays = []
    for field in schema:
        values = np.concatenate([b[field.name] for b in blocks])
        if pa.types.is_floating(field.type):
            arrays.append(pa.array(values, type=field.type, mask=np.isnan(values)))
        elif pa.types.is_timestamp(field.type):
            arrays.append(pa.array(values, type=field.type, mask=np.isnat(values)))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


# ------------------------------------------------------------------------------------------- load: series
def series_reason(table: pa.Table) -> str:
    """Why a run's series cannot be merged ('' when it can): the time and head columns present,
    ``INTERVALS_PER_DAY`` rows, finite ``FINITE_SERIES`` values and interval starts in every row."""
    present = set(table.column_names)
    missing = [c for c in (*schema.TIME_COLUMNS, *schema.HEAD_COLUMNS) if c not in present]
    if missing:
        return f"{INSTANCE_FILES['timeseries']} has no column {missing[0]!r}: {REDO}"
    if table.num_rows != config.INTERVALS_PER_DAY:
        return f"{INSTANCE_FILES['timeseries']} has {table.num_rows} rows, not {config.INTERVALS_PER_DAY}: {REDO}"
    for column in FINITE_SERIES:
        values = table[column].to_numpy(zero_copy_only=False)
        try:
            finite = np.isfinite(values.astype(float))
        except (TypeError, ValueError):
            return f"{INSTANCE_FILES['timeseries']} column {column!r} is not numeric: {REDO}"
        if not finite.all():
            return (f"{INSTANCE_FILES['timeseries']} column {column!r} is not finite in {int((~finite).sum())} of "
                    f"{table.num_rows} rows: {REDO}")
    if table["interval_start"].null_count:
        return f"{INSTANCE_FILES['timeseries']} has empty interval_start values: {REDO}"
    return ""


def read_series(run: RunFolder, sha256: str) -> tuple[pa.Table | None, str]:
    """A run's timeseries.parquet when it is the file the run wrote (its SHA-256 is ``sha256``) and
    usable (:func:`series_reason`): (table, ''), else (None, why). The file is read once."""
    path = run.series
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"{INSTANCE_FILES['timeseries']} unreadable ({exc.strerror or exc}): {REDO}"
    if sha256_bytes(data) != sha256:
        return None, (f"{INSTANCE_FILES['timeseries']} is not the series of this summary (its SHA-256 differs from "
                      f"timeseries_sha256; replaced or truncated after the run): {REDO}")
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (OSError, pa.ArrowException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"{INSTANCE_FILES['timeseries']} is not a readable parquet file ({first}): {REDO}"
    reason = series_reason(table)
    return (None, reason) if reason else (table, "")


class _TempFile:
    """A temporary file beside ``path``, renamed over it by :meth:`keep` or removed by :meth:`drop`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(name)
        os.chmod(self.tmp, 0o644)
        self.handle = open(self.tmp, "w", encoding="utf-8", newline="\n")

    def keep(self) -> None:
        self.handle.close()
        os.replace(self.tmp, self.path)

    def drop(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        self.tmp.unlink(missing_ok=True)


def write_series(runs: list[RunFolder], sha256: dict[RunFolder, str], parquet_path: Path, csv_path: Path,
                 csv_limit_mb: float, progress: bool = True) -> tuple[dict[str, Any], dict[RunFolder, str]]:
    """Stream every run's series into the aggregate parquet (and CSV while it stays under the limit).

    Files are read one at a time (:func:`read_series`, against the run's ``timeseries_sha256`` in
    ``sha256``); ``ROW_GROUP_RUNS`` runs are held at most. A series that cannot be merged is left
    out and returned with the reason. Returns (what was written, {run: reason} of the runs left out).
    """
    from tqdm import tqdm

    schema_ = series_schema()
    limit = csv_limit_mb * 1e6
    total_rows = len(runs) * (config.INTERVALS_PER_DAY + 1)
    csv: _TempFile | None = _TempFile(csv_path)
    csv_note = "written"
    rows = 0
    rejected: dict[RunFolder, str] = {}
    try:
        with atomic_path(parquet_path) as tmp:
            with pq.ParquetWriter(tmp, schema_, compression="zstd") as writer:
                blocks: list[dict[str, np.ndarray]] = []

                def flush() -> None:
                    nonlocal csv, csv_note, rows
                    if not blocks:
                        return
                    batch = _arrow_batch(blocks, schema_)
                    writer.write_table(batch)
                    rows += batch.num_rows
                    blocks.clear()
                    if csv is not None:
                        batch.to_pandas().to_csv(csv.handle, header=csv.handle.tell() == 0, index=False,
                                                 lineterminator="\n")
                        size = csv.handle.tell()
                        estimate = size / rows * total_rows
                        if size > limit or estimate > limit:
                            csv.drop()
                            csv = None
                            csv_note = (f"skipped: about {estimate / 1e6:.0f} MB, above --csv-limit-mb "
                                        f"{csv_limit_mb:g} (the parquet file holds the same rows)")

                for run in tqdm(runs, desc="feeder-head series", unit="run", disable=None if progress else True):
                    table, reason = read_series(run, sha256[run])
                    if table is None:
                        rejected[run] = reason
                        continue
                    blocks.append(series_block(run, table))
                    if len(blocks) >= ROW_GROUP_RUNS:
                        flush()
                flush()
        if csv is not None:
            csv.keep()
    finally:
        if csv is not None and csv.tmp.exists():
            csv.drop()
    if csv_note != "written":
        if csv_path.exists():
            csv_path.unlink()
            logger.info("removed the stale %s of an earlier run", csv_path.name)
        logger.warning("%s %s", csv_path.name, csv_note)
    return {"rows": rows, "runs": len(runs) - len(rejected), "csv": csv_note}, rejected


# ------------------------------------------------------------------------------------------- load: circuits
def feeder_circuit(master: Path, ev_elements: set[str], head_element: str) -> dict[str, Any]:
    """Customer load count and feeder-head ratings of a compiled instance (see the module docstring)."""
    engine = dss.compile_master(master, strip=True)
    out: dict[str, Any] = {"n_loads": np.nan, "substation_xfmr_kva": np.nan, "head_capacity_kva": np.nan,
                           "head_element": head_element, "head_kv_ll": np.nan, "head_norm_amps": np.nan}
    loads = [n.lower() for n in engine.Loads.AllNames()] if engine.Loads.Count() else []
    out["n_loads"] = sum(1 for n in loads if n not in ev_elements)
    source_bus = None
    if engine.Vsources.First():
        engine.Circuit.SetActiveElement(f"Vsource.{engine.Vsources.Name()}")
        source_bus = dss.bus_name(engine.CktElement.BusNames()[0]).lower()
    head_class = head_element.split(".", 1)[0].lower()
    xfmr_kva = []
    if engine.Transformers.First():
        while True:
            name = f"transformer.{engine.Transformers.Name().lower()}"
            buses = {dss.bus_name(b).lower() for b in engine.CktElement.BusNames()}
            if source_bus in buses or name == head_element.lower():
                engine.Transformers.Wdg(1)
                xfmr_kva.append(float(engine.Transformers.kVA()))
            if not engine.Transformers.Next():
                break
    if xfmr_kva:
        out["substation_xfmr_kva"] = float(sum(xfmr_kva))
    if head_class == "line":
        engine.Circuit.SetActiveElement(head_element)
        amps = float(engine.CktElement.NormalAmps())
        phases = int(engine.CktElement.NumPhases())
        engine.Circuit.SetActiveBus(dss.bus_name(engine.CktElement.BusNames()[0]))
        kv_ln = float(engine.Bus.kVBase())
        if amps > 0 and kv_ln > 0:
            out.update(head_norm_amps=amps, head_kv_ll=kv_ln * math.sqrt(3), head_capacity_kva=phases * kv_ln * amps)
    return out


def circuit_table(runs: list[RunFolder], summaries: dict[RunFolder, dict[str, Any]]) -> pd.DataFrame:
    """circuit_summary_combined: realised counts per run and each feeder's circuit, read once per feeder."""
    circuits: dict[tuple[str, str], dict[str, Any]] = {}
    rows = []
    for run in runs:
        summary = summaries[run]
        key = (run.state, run.feeder)
        if key not in circuits:
            circuits[key] = _feeder_circuit_once(run)
        realised = summary["realised"]
        rows.append({rio.PRIOR_KEYS[k]: getattr(run, k) for k in ("state", "feeder", "season", "design", "case")} |
                    {"status": summary["status"], "n_loads": circuits[key]["n_loads"],
                     "n_customers": realised.get("n_customers"), "n_evs": realised.get("n_evs"),
                     "n_storage": realised.get("n_storage"), "n_pv": realised.get("n_pv"),
                     "pv_kw": realised.get("pv_kw"), "storage_kw": realised.get("storage_kw"),
                     "storage_kwh": realised.get("storage_kwh"),
                     "ev_charger_kw_total": realised.get("ev_charger_kw_total"),
                     "n_pv_res": realised.get("n_pv_res"), "pv_res_kw": realised.get("pv_res_kw"),
                     "n_storage_res": realised.get("n_storage_res"), "storage_res_kw": realised.get("storage_res_kw"),
                     "storage_res_kwh": realised.get("storage_res_kwh")} |
                    {k: circuits[key][k] for k in ("substation_xfmr_kva", "head_capacity_kva", "head_element",
                                                   "head_kv_ll", "head_norm_amps")})
    columns = ["state", "circuit_folder", "season", "design", "scenario", "status", "n_loads", "n_customers", "n_evs",
               "n_storage", "n_pv", "pv_kw", "storage_kw", "storage_kwh", "ev_charger_kw_total",
               "n_pv_res", "pv_res_kw", "n_storage_res", "storage_res_kw", "storage_res_kwh",
               "substation_xfmr_kva", "head_capacity_kva", "head_element", "head_kv_ll", "head_norm_amps"]
    table = pd.DataFrame(rows, columns=columns)
    for c in ("n_loads", "n_customers", "n_evs", "n_storage", "n_pv", "n_pv_res", "n_storage_res"):
        table[c] = pd.to_numeric(table[c], errors="coerce").astype("Int64")
    for c in ("pv_kw", "storage_kw", "storage_kwh", "ev_charger_kw_total", "pv_res_kw", "storage_res_kw",
              "storage_res_kwh", "substation_xfmr_kva", "head_capacity_kva",
              "head_kv_ll", "head_norm_amps"):
        table[c] = pd.to_numeric(table[c], errors="coerce").astype("float64")
    return table


def _feeder_circuit_once(run: RunFolder) -> dict[str, Any]:
    empty = {"n_loads": np.nan, "substation_xfmr_kva": np.nan, "head_capacity_kva": np.nan, "head_element": "",
             "head_kv_ll": np.nan, "head_norm_amps": np.nan}
    assignments_path = run.folder / INSTANCE_FILES["assignments"]
    master = run.folder / INSTANCE_FILES["master"]
    if not (assignments_path.is_file() and master.is_file()):
        logger.warning("%s %s: no instance files in %s: n_loads and the head capacity are left empty", run.state,
                       run.feeder, run.folder)
        return empty
    try:
        assignments = read_json(assignments_path)
        ev = {e["element"].split(".", 1)[1].lower() for e in assignments.get("hosts", {}).get("ev", [])}
        return feeder_circuit(master, ev, str(assignments.get("head_element", "")))
    except (json.JSONDecodeError, KeyError, OSError, dss.DSSError) as exc:
        logger.warning("%s %s: could not read its circuit from %s (%s): n_loads and the head capacity are left "
                       "empty", run.state, run.feeder, master, exc)
        return empty


# ------------------------------------------------------------------------------------------- load: indexes
def unsolved_runs(ws: Workspace, runs: list[RunFolder], solved: set[tuple], current: Current) -> list[dict[str, Any]]:
    """Current instances without a summary.json, and batch-index failures of current runs whose folder
    has none (``solved``: the keys of every run with a summary, merged or stale)."""
    out: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        if run.sort_key not in solved:
            out[run.sort_key] = {"state": run.state, "season": run.season, "design": run.design, "feeder": run.feeder,
                                 "case": run.case, "source": "not_solved", "status": "not_solved",
                                 "reason": "no summary.json: the instance was never solved (run phase 6 with --run)"}
    designs = sorted({(r.state, r.season, r.design) for r in runs})
    for state, season, design in designs:
        path = ws.batch_index(state, season, design)
        if not path.is_file():
            continue
        index = read_csv(path, PHASE6, required=("feeder", "case", "status"),
                         dtype={"feeder": str, "status": str, "message": str})
        for record in index.to_dict("records"):
            try:
                case = int(record["case"])
            except (TypeError, ValueError):
                raise InputError(f"{path}: case {record['case']!r} is not a number: run {PHASE6} again") from None
            key = (state, str(record["feeder"]), season, design, case)
            if key in solved or current.case_reason(design, case) or current.filter_reason(state, season, key[1]):
                continue
            message = record.get("message")
            message = "" if message is None or (isinstance(message, float) and math.isnan(message)) else str(message)
            if key in out:
                if message:
                    out[key]["reason"] = message
                    out[key]["status"] = str(record["status"])
            elif record["status"] not in ("ok", "instantiated"):
                out[key] = {"state": state, "season": season, "design": design, "feeder": key[1], "case": key[4],
                            "source": "not_solved", "status": str(record["status"]), "reason": message}
    return [out[k] for k in sorted(out)]


def filtered_feeders(filters: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
    """Feeders the circuit filter left out (status fail or skipped), as failures.csv rows."""
    parts = []
    for state, table in sorted(filters.items()):
        if table is None:
            continue
        out = table[table["status"] != "pass"]
        if out.empty:
            continue
        reason = out.get("reason", pd.Series("", index=out.index)).fillna("")
        message = out.get("dss_message", pd.Series("", index=out.index)).fillna("")
        reason = np.where(message != "", reason + " (OpenDSS: " + message + ")", reason)
        parts.append(pd.DataFrame({"state": state, "season": out["season"], "design": "", "feeder": out["feeder"],
                                   "case": pd.NA, "source": "circuit_filter", "status": out["status"],
                                   "reason": reason}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(FAILURE_COLUMNS))


def shortfall_feeders(results: pd.DataFrame) -> list[str]:
    """The feeders (state/feeder) with an ok run whose rooftop PV fell short of its share (``pv_res_shortfall``)."""
    if "pv_res_shortfall" not in results.columns or results.empty:
        return []
    short = results[(results["status"] == "ok") & results["pv_res_shortfall"].fillna("").astype(str).ne("")]
    return sorted({f"{state}/{feeder}" for state, feeder in zip(short["state"], short["feeder"])})


def present_states(ws: Workspace, wanted: Sequence[str] | None) -> list[str]:
    states = sorted(wanted) if wanted else [s for s in config.STATES if ws.circuits_dir(s).is_dir()]
    return sorted(states)


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="append_experiment_results.py")
    rio.add_state_filter(parser)
    parser.add_argument("--csv-limit-mb", type=cli.positive_float, default=CSV_LIMIT_MB,
                        help=f"write aggregate_m2_combined.csv only while it stays under this size [MB] "
                             f"(default {CSV_LIMIT_MB:g}); the parquet file is always written")
    parser.add_argument("--clean-stale", action="store_true",
                        help="after listing them in stale_runs.csv, remove the instance folders of the runs that "
                             "are not current (and nothing else), so that phase 6 redoes them")
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv, must_exist=True)
    with rio.phase_lock(ws, Path(__file__).name):
        rio.results_folder(ws)
        states = present_states(ws, args.state)
        logger.info("combining phase 6 runs of %s from %s", ", ".join(states) or "(no state)", ws.phase("6"))
        runs = discover_runs(ws, states)
        if not runs:
            raise cli.UserError(f"no phase 6 runs found under {ws.phase('6')} for {', '.join(states) or 'any state'}: run "
                                f"{PHASE6} --run first (or change --data-dir / --state)")
        locks = phase6_locks(ws, [r.state for r in runs]) if args.clean_stale else contextlib.ExitStack()
        with locks:
            return combine(args, ws, states, runs)


def combine(args: argparse.Namespace, ws: Workspace, states: list[str], runs: list[RunFolder]) -> int:
    """The body of :func:`main` once the runs are found (and, with --clean-stale, phase 6 locked)."""

    # pass 1: every summary, checked before anything is written; then which runs are current
    summaries: dict[RunFolder, dict[str, Any]] = {}
    for run in runs:
        if run.summary.is_file():
            summaries[run] = read_summary(run)
    if not summaries:
        raise cli.UserError(f"no solved run (summary.json) under {ws.phase('6')}: run phase 6 with --run first")
    with_runs = {r.state for r in runs}
    filters = {state: read_filter(ws, state, required=state in with_runs) for state in states}
    current = current_inputs(ws, runs, filters)
    stale: dict[RunFolder, str] = {}
    merged: list[RunFolder] = []
    unsolved: list[RunFolder] = []
    for run in runs:
        if run in summaries:
            reason = stale_reason(run, summaries[run], current, assignments_digest(run), run.series.is_file())
            if reason:
                stale[run] = reason
            else:
                merged.append(run)
        else:
            reason = current.case_reason(run.design, run.case) or current.filter_reason(run.state, run.season,
                                                                                        run.feeder)
            if reason:
                stale[run] = reason
            else:
                unsolved.append(run)

    mixed = mixed_design_days(merged, summaries)
    if mixed:  # refused before anything is written
        raise cli.UserError(mixed)
    days = sorted({(r.state, r.season, design_day_count(summaries[r])) for r in merged
                   if summaries[r].get("status") == "ok"})
    if len({k for _, _, k in days}) > 1:
        logger.warning("the states and seasons were solved on different numbers of design days (%s; phase 6 --days "
                       "K): a worst of K days grows with K, so compare their metrics with that in mind",
                       ", ".join(f"{state} {season} {k}" for state, season, k in days))

    # pass 2: the series of the ok runs, streamed and checked; a run whose series cannot be merged is stale
    out = ws.results_dir
    series: dict[str, Any] = {"rows": 0, "runs": 0, "csv": "not written"}
    if merged:
        with_series = [r for r in merged if summaries[r]["status"] == "ok"]
        series, rejected = write_series(with_series, {r: summaries[r]["timeseries_sha256"] for r in with_series},
                                        rio.results_path(ws, "aggregate"), rio.results_path(ws, "aggregate_csv"),
                                        args.csv_limit_mb, progress=not args.quiet)
        stale.update(rejected)
        merged = [r for r in merged if r not in rejected]
    solved = {r.sort_key for r in summaries}
    stale_table = stale_frame([_stale_row(r, stale[r]) for r in sorted(stale, key=lambda r: r.sort_key)])
    if not merged:
        write_csv(rio.results_path(ws, "stale_runs"), stale_table)
        removed = clean_stale(ws, list(stale)) if args.clean_stale else 0
        raise cli.UserError(f"no current run under {ws.phase('6')}: all {len(stale)} runs there are stale (listed in "
                            f"{rio.results_path(ws, 'stale_runs')}"
                            f"{f'; {removed} folders removed' if args.clean_stale else ''}): {REDO}")
    results = results_frame([run_row(summaries[r]) for r in merged])
    results = rio.with_layout(results, current.layout)  # scenario and policy ids of a cross layout
    failures = failures_frame(results, unsolved_runs(ws, merged + unsolved, solved, current), filtered_feeders(filters))
    circuits = circuit_table(merged, summaries)

    write_parquet(rio.results_path(ws, "xlrm_results"), results)
    write_csv(rio.results_path(ws, "xlrm_results_csv"), results)
    write_csv(rio.results_path(ws, "circuit_summary"), circuits)
    write_csv(rio.results_path(ws, "failures"), failures)
    write_csv(rio.results_path(ws, "stale_runs"), stale_table)
    write_manifest(out, "7_results_analysis/append_experiment_results.py", {
        "states": states, "runs": len(results), "runs_ok": int((results["status"] == "ok").sum()),
        "runs_failed": int((results["status"] != "ok").sum()), "not_solved": int((failures["source"] == "not_solved").sum()),
        "feeders_filtered_out": int((failures["source"] == "circuit_filter").sum()), "stale_runs": len(stale_table),
        "mixes_sha256": dict(sorted(current.mixes_digest.items())),
        "series_rows": series["rows"], "aggregate_csv": series["csv"], "csv_limit_mb": args.csv_limit_mb,
        "row_group_runs": ROW_GROUP_RUNS,
    }, name="manifest_append_experiment_results.json")
    if len(results):
        counts = results.groupby(["state", "season", "design"])["status"].value_counts().unstack(fill_value=0)
        for (state, season, design), row in counts.iterrows():
            logger.info("%s %s %s: %s", state, season, design, ", ".join(f"{int(v)} {k}" for k, v in row.items() if v))
    short = shortfall_feeders(results)
    if short:
        logger.warning("rooftop PV fell short of pv_perc_res on %d feeder(s) (%s): their customers' profiles cover less "
                       "than a year, so no array could be sized; pv_perc_res does not act there (column "
                       "pv_res_shortfall of xlrm_results says which runs)", len(short), ", ".join(short))
    if len(stale_table):
        first = stale_table.iloc[0]
        logger.warning("%d stale run(s) left out, listed in %s (first: %s %s %s %s case %d: %s)", len(stale_table),
                       rio.results_path(ws, "stale_runs"), first["state"], first["season"], first["design"],
                       first["feeder"], first["case"], first["reason"])
    if args.clean_stale and stale:
        removed = clean_stale(ws, list(stale))
        logger.info("--clean-stale: removed %d stale instance folder(s) under %s", removed, ws.phase("6"))
    logger.info("%d runs merged (%d failed, %d never solved, %d stale, %d feeder-season(s) left out by the filter) -> %s",
                len(results), int((results["status"] != "ok").sum()), int((failures["source"] == "not_solved").sum()),
                len(stale_table), int((failures["source"] == "circuit_filter").sum()), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
