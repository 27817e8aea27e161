"""Upgrade a run that violates a planning limit, thermal then voltage, and price the upgrades (issue 17).

Description
    Follows NREL DISCO's automated upgrade-cost analysis (its method and defaults, ``common.config.UPGRADES``)
    on one solved run of phase 6:

    * the run's ``summary.json`` says whether it violates a limit (:func:`violates`; ``UPGRADES["trigger"]``:
      by default the study's thermal planning criteria, a transformer's 2-h moving-average loading above
      100 % or any interval above 150 %, a line's 1-h moving average above 100 % (FAILURE_CRITERIA), so that
      every run failing a thermal criterion is priced; ``disco``: a transformer or line loaded above
      ``UPGRADES[*_upper_limit_pu]`` in any interval; either way a customer node outside ANSI C84.1 Range A
      in any interval). A run without a violation costs 0 and is not solved again;
    * otherwise the instance is compiled with opendssdirect and its day (96 x 15 min) solved with the same
      controls as the power flow (``daily_power_flow.solve_day``, the same instance files);
    * thermal: every transformer and line over that thermal limit gets the smallest catalogue
      size reaching the design loading (:func:`choose_size`; transformers: the cost table's sizes of the same
      phases, voltages, windings and connections plus the sizes of such transformers on the feeder; lines:
      the cost table's ampacities of the same phases, voltage and placement plus the feeder's line codes used
      by such lines), or parallel units of one size (at most ``parallel_*_limit``); the day is solved again
      and the round repeated until no thermal violation remains or ``thermal_iterations`` rounds are done;
    * voltage: while customers are outside Range A, the ON/OFF settings of existing voltage-controlled
      capacitors are swept, then the vreg and band of existing regulators and LTCs, then new regulators are
      placed (at most ``max_new_regulators``) at the deepest primary line common to the customers still in
      violation, each setting one solved day; what remains is reported;
    * each upgrade is priced from the unit-cost tables (:func:`load_cost_tables`): transformers per unit
      (plus misc.csv's fixed replace / add costs), lines per metre (reconductored for a replacement, new for
      a parallel circuit), regulators per unit plus a new controller, control changes per controller.

Inputs (an instance folder of phase 6 after its power flow)
    summary.json, Master.dss, scenario_assignments.json and the files they name (phase 6,
    instantiate_circuits_and_runs_APPLYFILTER.py --run); the unit-cost tables lines.csv,
    transformers.csv, voltage_regulators.csv, control_changes.csv, misc.csv in ``<data>/upgrade_costs/``
    (sample/build_sample.py copies NREL DISCO's from ../shared/data/upgrade_costs) or the folder of
    ``UPGRADES["cost_tables_dir"]`` / ``--cost-tables``

Outputs (in the instance folder, atomic)
    upgrades.json    every upgrade: element, kind, action, before / after (kVA or A, settings), reason, the
                     interval at which its limit first trips (``trigger_interval_start``: with the planning
                     criteria the start of the last interval of the first moving-average window above the limit; on the
                     periodic day it can be 00:00), its highest loading of the day (``trigger_loading_pct``, what
                     the size is chosen for: not the loading at that interval), cost [USD] and how it was
                     priced; what remains
                     unsolved; violations before and after; iterations; day solves
    upgraded/        the upgraded instance: Master.dss (redirects to ../Master.dss, then upgrades.dss) that
                     plain OpenDSS compiles and solves (``solve mode=daily stepsize=15m number=96``), and a
                     copy of scenario_assignments.json (so the power flow can solve it as an instance)
    summary.json     gains the key ``upgrades``: status, total cost and its split (``cost_usd``,
                     ``cost_transformers_usd``, ``cost_lines_usd``, ``cost_voltage_usd``), counts, whether all
                     violations were removed, the iterations and solves, the settings and upgrades digests

Settings read
    common.config: UPGRADES, UPGRADE_TRIGGERS, THERMAL (FAILURE_CRITERIA), ANSI_RANGE_A, ENERGISED_PU, RUN_TIMEOUT_S,
    INTERVAL_H

Usage
    python 6_instantiate_circuits/upgrade_circuit.py --instance DIR [--cost-tables DIR] [--timeout S] [--force]
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

import daily_power_flow
from common import cli, config, dss, schema
from common.io import InputError, atomic_path, dumps_json, exclusive_step, read_csv, read_json, sha256_bytes, \
    sha256_file, write_text
from common.paths import INSTANCE_FILES, UPGRADE_COST_FILES, UPGRADE_FILES, Workspace

logger = logging.getLogger(__name__)

UPGRADES = config.UPGRADES
RANGE_A = config.ANSI_RANGE_A
COST_PRODUCER = ("sample/build_sample.py (it copies NREL DISCO's tables from ../shared/data/upgrade_costs), or "
                 "point UPGRADES['cost_tables_dir'] / --cost-tables at a folder of tables with the same columns")

#: the columns the step reads of each unit-cost table, and which of them are numbers (non-negative)
COST_COLUMNS = {
    "lines": (("upgrade_type", "phases", "voltage_kV", "ampere_rating", "line_placement", "cost_per_m"),
              ("phases", "voltage_kV", "ampere_rating", "cost_per_m")),
    "transformers": (("phases", "primary_kV", "secondary_kV", "num_windings", "primary_connection_type",
                      "secondary_connection_type", "rated_kVA", "cost"),
                     ("phases", "primary_kV", "secondary_kV", "num_windings", "rated_kVA", "cost")),
    "voltage_regulators": (("type", "phases", "primary_kV", "rated_kVA", "cost"), ("phases", "primary_kV", "rated_kVA",
                                                                                   "cost")),
    "control_changes": (("type", "cost"), ("cost",)),
    "misc": (("description", "total_cost"), ("total_cost",)),
}
#: the rows of control_changes.csv (column ``type``) and misc.csv (``description``) the step prices with
CONTROL_ROWS = {"capacitor": "Change capacitor controller settings",
                "regulator": "Change voltage regulator controller settings",
                "ltc": "Change LTC settings",
                "new_regulator_controller": "Add new voltage regulator controller"}
MISC_ROWS = {"replace": "Replace transformer (fixed cost)", "parallel": "Add new transformer (fixed cost)"}
REGULATOR_ROW = "Add new voltage regulator transformer"
LINE_TYPES = {"replace": "reconductored_line", "parallel": "new_line"}
PLACEMENTS = ("overhead", "underground")
#: OpenDSS length units (Lines.Units codes) in metres; 0 ("none") is read as metres and recorded so
UNIT_M = {0: 1.0, 1: 1609.344, 2: 304.8, 3: 1000.0, 4: 1.0, 5: 0.3048, 6: 0.0254, 7: 0.01}
#: a feeder value and a table value of a voltage [kV] are the same class within this relative tolerance
KV_RTOL = 0.02
#: vreg values [V on 120 V] tried for a new regulator, in this order (the first clearing every violation is kept)
NEW_REGULATOR_VREG_V = (123.0, 124.0, 122.0, 125.0, 121.0, 120.0)
NEW_REGULATOR_BAND_V = 2.0


# ------------------------------------------------------------------------------------------- cost tables
@dataclass(frozen=True)
class CostTables:
    """NREL DISCO's unit-cost tables (USD), checked: one frame per table, the control and fixed costs by row."""

    folder: Path
    lines: pd.DataFrame
    transformers: pd.DataFrame
    regulators: pd.DataFrame
    controls: dict[str, float]
    misc: dict[str, float]
    digest: str


def load_cost_tables(folder: Path) -> CostTables:
    """Read and check the five tables of ``folder``; InputError naming the file, the column (and row) and the fix
    for a missing folder or file, a missing column, a value that is not a non-negative number, an unknown line
    type or placement, or a row the step prices with that is absent."""
    folder = Path(folder).resolve()  # upgrades.json names it: phase 7 finds it from any working directory
    if not folder.is_dir():
        raise InputError(f"no upgrade cost tables: folder {folder} not found: run {COST_PRODUCER}")
    frames = {}
    for key, (required, numeric) in COST_COLUMNS.items():
        path = folder / UPGRADE_COST_FILES[key]
        frame = read_csv(path, COST_PRODUCER, required=required)
        if frame.empty:
            raise InputError(f"{path}: no rows: run {COST_PRODUCER}")
        for column in numeric:
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = ~np.isfinite(values.to_numpy(dtype=float)) | (values.to_numpy(dtype=float) < 0)
            if bad.any():
                row = int(np.argmax(bad))
                raise InputError(f"{path}: column {column!r}, row {row + 2}: {frame[column].iloc[row]!r} is not a "
                                 f"non-negative number: fix the table or run {COST_PRODUCER}")
            frame[column] = values.astype(float)
        frames[key] = frame
    lines = frames["lines"].assign(upgrade_type=lambda f: f["upgrade_type"].astype(str).str.strip(),
                                   line_placement=lambda f: f["line_placement"].astype(str).str.strip().str.lower())
    for column, allowed in (("upgrade_type", tuple(LINE_TYPES.values())), ("line_placement", PLACEMENTS)):
        unknown = sorted(set(lines[column]) - set(allowed))
        if unknown:
            raise InputError(f"{folder / UPGRADE_COST_FILES['lines']}: column {column!r}: unknown value {unknown[0]!r} "
                             f"(allowed: {', '.join(allowed)}): fix the table or run {COST_PRODUCER}")
    xf = frames["transformers"]
    for column in ("primary_connection_type", "secondary_connection_type"):
        xf[column] = xf[column].astype(str).str.strip().str.lower()
    controls = {str(k).strip(): float(v) for k, v in zip(frames["control_changes"]["type"],
                                                         frames["control_changes"]["cost"])}
    misc = {str(k).strip(): float(v) for k, v in zip(frames["misc"]["description"], frames["misc"]["total_cost"])}
    for rows, table, column in ((CONTROL_ROWS, controls, "type"), (MISC_ROWS, misc, "description")):
        key = "control_changes" if table is controls else "misc"
        for wanted in rows.values():
            if wanted not in table:
                raise InputError(f"{folder / UPGRADE_COST_FILES[key]}: column {column!r} has no row {wanted!r}: add it "
                                 f"or run {COST_PRODUCER}")
    regulators = frames["voltage_regulators"]
    regulators = regulators[regulators["type"].astype(str).str.strip() == REGULATOR_ROW]
    if regulators.empty:
        raise InputError(f"{folder / UPGRADE_COST_FILES['voltage_regulators']}: column 'type' has no row "
                         f"{REGULATOR_ROW!r}: add one or run {COST_PRODUCER}")
    digest = schema.cost_tables_digest(folder)  # the digest phase 7 checks a run's cost against
    return CostTables(folder=folder, lines=lines, transformers=xf, regulators=regulators.reset_index(drop=True),
                      controls=controls, misc=misc, digest=digest)


def _close(values: pd.Series, target: float) -> np.ndarray:
    return np.isclose(values.to_numpy(dtype=float), target, rtol=KV_RTOL, atol=1e-6)


def _nearest(frame: pd.DataFrame, column: str, value: float) -> pd.Series:
    """The row of ``frame`` whose ``column`` is nearest ``value`` (the first, in table order, of ties)."""
    return frame.iloc[int(np.argmin(np.abs(frame[column].to_numpy(dtype=float) - value)))]


# ------------------------------------------------------------------------------------------- equipment
@dataclass(frozen=True)
class TransformerSpec:
    """A transformer of the feeder as the catalogue classes it: phases, windings, winding 1 and 2 kV (as
    OpenDSS rates them), connections, kVA of each winding."""

    name: str
    phases: int
    kv: tuple[float, ...]
    kva: tuple[float, ...]
    conns: tuple[str, ...]
    buses: tuple[str, ...] = ()  # each winding's bus with its nodes (a parallel unit connects to the same)

    @property
    def windings(self) -> int:
        return len(self.kva)

    def same_class(self, other: "TransformerSpec") -> bool:
        return (self.phases == other.phases and self.windings == other.windings and self.conns[:2] == other.conns[:2]
                and np.allclose(self.kv[:2], other.kv[:2], rtol=KV_RTOL))


@dataclass(frozen=True)
class LineSpec:
    """A line of the feeder: phases, line-to-neutral kV of its bus, placement (and where it was read from),
    length [m], NormAmps and EmergAmps [A], line code."""

    name: str
    phases: int
    kv_ln: float
    placement: str
    placement_source: str
    length_m: float
    amps: float
    emerg_amps: float
    linecode: str
    buses: tuple[str, ...] = ()  # bus1, bus2 with their nodes (a parallel circuit connects to the same)


def _placement(*names: str) -> tuple[str, str]:
    for name in names:
        tokens = set(re.split(r"[^a-z]+", name.lower()))
        if tokens & {"ug", "underground", "ugnd"}:
            return "underground", f"line code / geometry {name}"
        if tokens & {"oh", "overhead"}:
            return "overhead", f"line code / geometry {name}"
    return UPGRADES["line_placement_default"], "assumed: UPGRADES['line_placement_default'] (no placement named)"


#: what :func:`read_equipment` returns: transformers, lines, line codes
Equipment = tuple[dict[str, "TransformerSpec"], dict[str, "LineSpec"], dict[str, tuple[int, float]]]


def read_equipment(engine: Any) -> Equipment:
    """Transformers and lines of the compiled circuit (keys ``transformer.<name>`` / ``line.<name>``, lower
    case) and its line codes: name -> (phases, NormAmps [A])."""
    transformers, lines, codes = {}, {}, {}
    if engine.Transformers.First():
        while True:
            name = engine.Transformers.Name().lower()
            kv, kva, conns = [], [], []
            for w in range(1, engine.Transformers.NumWindings() + 1):
                engine.Transformers.Wdg(w)
                kv.append(float(engine.Transformers.kV()))
                kva.append(float(engine.Transformers.kVA()))
                conns.append("delta" if engine.Transformers.IsDelta() else "wye")
            transformers[f"transformer.{name}"] = TransformerSpec(name, int(engine.CktElement.NumPhases()), tuple(kv),
                                                                  tuple(kva), tuple(conns),
                                                                  tuple(engine.CktElement.BusNames()))
            if not engine.Transformers.Next():
                break
    if engine.LineCodes.First():
        while True:
            codes[engine.LineCodes.Name().lower()] = (int(engine.LineCodes.Phases()), float(engine.LineCodes.NormAmps()))
            if not engine.LineCodes.Next():
                break
    if engine.Lines.First():
        while True:
            name = engine.Lines.Name().lower()
            bus = dss.bus_name(engine.Lines.Bus1())
            engine.Circuit.SetActiveBus(bus)
            kv_ln = float(engine.Bus.kVBase())
            code, geometry = engine.Lines.LineCode(), engine.Lines.Geometry()
            placement, source = _placement(*(n for n in (code, geometry) if n))
            lines[f"line.{name}"] = LineSpec(name, int(engine.Lines.Phases()), kv_ln, placement, source,
                                             float(engine.Lines.Length()) * UNIT_M.get(int(engine.Lines.Units()), 1.0),
                                             float(engine.Lines.NormAmps()), float(engine.Lines.EmergAmps()),
                                             code.lower(), (engine.Lines.Bus1(), engine.Lines.Bus2()))
            if not engine.Lines.Next():
                break
    return transformers, lines, codes


# ------------------------------------------------------------------------------------------- pure choices
@dataclass(frozen=True)
class Choice:
    """An upgrade of one element: ``replace`` by one unit of ``size``, or ``parallel``: ``n`` new units of
    ``size`` beside the existing one. ``required``: the rating it had to reach."""

    action: str
    size: float
    n: int
    required: float


def required_rating(rating: float, peak_pu: float, design_pu: float, extreme_pu: float) -> float:
    """The rating [kVA or A] that carries the highest loading ``peak_pu`` x ``rating`` at ``design_pu``; above
    ``extreme_pu`` DISCO sizes for ``peak_pu`` x 0.5 times more (it avoids another round)."""
    required = rating * peak_pu / design_pu
    return required * peak_pu * 0.5 if peak_pu > extreme_pu else required


def choose_size(sizes: Sequence[float], rating: float, required: float, oversize_limit: float,
                parallel_limit: int) -> Choice | None:
    """DISCO's choice (thermal_upgrade_functions): the smallest catalogue size at least ``required`` when it is
    at most ``oversize_limit`` x ``required``; else the existing unit (``rating``) kept with the fewest new
    parallel units of one size that reach ``required``, the size whose count overshoots least (the smallest of
    ties), at most ``parallel_limit`` of them; None when no choice reaches it."""
    sizes = sorted({float(s) for s in sizes if s > 0})
    bigger = [s for s in sizes if s >= required * (1 - 1e-9)]
    if bigger and bigger[0] <= oversize_limit * required:
        return Choice("replace", bigger[0], 1, required)
    best: tuple[float, float, int] | None = None
    for s in sizes:
        raw = (required - rating) / s
        n = max(1, math.ceil(raw - 1e-9))
        if n <= parallel_limit and (best is None or n - raw < best[0] - 1e-12):
            best = (n - raw, s, n)
    return None if best is None else Choice("parallel", best[1], best[2], required)


def transformer_catalogue(spec: TransformerSpec, tables: CostTables, feeder: dict[str, TransformerSpec]) -> list[float]:
    """kVA sizes of the class of ``spec``: the cost table's rows of the same phases, windings, voltages and
    connections, and the transformers of that class on the feeder."""
    t = tables.transformers
    rows = t[(t["phases"] == spec.phases) & (t["num_windings"] == spec.windings) & _close(t["primary_kV"], spec.kv[0])
             & _close(t["secondary_kV"], spec.kv[1]) & (t["primary_connection_type"] == spec.conns[0])
             & (t["secondary_connection_type"] == spec.conns[1])]
    sizes = set(rows["rated_kVA"].tolist()) | {o.kva[0] for o in feeder.values() if o.same_class(spec)}
    return sorted(sizes)


def transformer_unit_cost(spec: TransformerSpec, kva: float, tables: CostTables) -> tuple[float, str]:
    """USD per unit of ``kva`` in the class of ``spec``, and how it was found: the exact row, else the nearest
    kVA of the class, else the nearest kVA of the same phases, else of any row (DISCO's fallback), recorded."""
    t = tables.transformers
    same = t[(t["phases"] == spec.phases) & (t["num_windings"] == spec.windings) & _close(t["primary_kV"], spec.kv[0])
             & _close(t["secondary_kV"], spec.kv[1]) & (t["primary_connection_type"] == spec.conns[0])
             & (t["secondary_connection_type"] == spec.conns[1])]
    return _priced(((same, "the same class"), (t[t["phases"] == spec.phases], f"{spec.phases}-phase rows"),
                    (t, "any row")), "rated_kVA", kva, "cost",
                   lambda row: f"{row['rated_kVA']:g} kVA, {row['primary_kV']:g}/{row['secondary_kV']:g} kV")


def _priced(frames: tuple[tuple[pd.DataFrame, str], ...], size_column: str, size: float, cost_column: str,
            describe: Any) -> tuple[float, str]:
    """The cost of ``size`` from the first of ``frames`` (the item's own class first): its exact row, else
    the row of the nearest size of the first non-empty frame, and how it was found."""
    own = frames[0][0]
    exact = own[np.isclose(own[size_column], size)]
    if len(exact):
        return float(exact[cost_column].iloc[0]), "exact row"
    for frame, what in frames:
        if len(frame):
            row = _nearest(frame, size_column, size)
            return float(row[cost_column]), f"nearest row of {what}: {describe(row)}"
    raise AssertionError("load_cost_tables keeps rows of every kind priced")


def line_rows(spec: LineSpec, tables: CostTables, upgrade_type: str) -> pd.DataFrame:
    t = tables.lines
    return t[(t["upgrade_type"] == upgrade_type) & (t["phases"] == spec.phases) & _close(t["voltage_kV"], spec.kv_ln)
             & (t["line_placement"] == spec.placement)]


def line_catalogue(spec: LineSpec, tables: CostTables, feeder: dict[str, LineSpec],
                   codes: dict[str, tuple[int, float]]) -> dict[float, str]:
    """Ampacities [A] of the class of ``spec`` -> the feeder line code of that rating ('' for a cost-table rating
    without one: the conductor's impedance is then kept, as DISCO does without a technical catalogue)."""
    catalogue = {float(a): "" for a in line_rows(spec, tables, LINE_TYPES["replace"])["ampere_rating"]}
    for other in feeder.values():
        if other.linecode and other.phases == spec.phases and math.isclose(other.kv_ln, spec.kv_ln, rel_tol=KV_RTOL) \
                and other.placement == spec.placement and codes.get(other.linecode, (0, 0.0))[1] > 0:
            amps = codes[other.linecode][1]
            if not catalogue.get(amps):
                catalogue[amps] = other.linecode
    return dict(sorted(catalogue.items()))


def line_cost_per_m(spec: LineSpec, amps: float, tables: CostTables, upgrade_type: str) -> tuple[float, str]:
    """USD per metre of a ``upgrade_type`` line of ``amps`` in the class of ``spec``, and how it was found (exact
    row, else the nearest ampacity of the class, else of the same phases and type, else of the type)."""
    t = tables.lines
    typed = t[t["upgrade_type"] == upgrade_type]
    return _priced(((line_rows(spec, tables, upgrade_type), "the same class"),
                    (typed[typed["phases"] == spec.phases], f"{spec.phases}-phase rows"), (typed, "any row")),
                   "ampere_rating", amps, "cost_per_m",
                   lambda row: f"{row['ampere_rating']:g} A, {row['voltage_kV']:g} kV, {row['line_placement']}")


def trigger() -> str:
    """``UPGRADES["trigger"]``, checked: ``planning_criteria`` or ``disco`` (``common.config.UPGRADE_TRIGGERS``)."""
    rule = UPGRADES.get("trigger", "planning_criteria")
    if rule not in config.UPGRADE_TRIGGERS:
        raise InputError(f"common/config.py: UPGRADES['trigger'] is {rule!r}: give one of "
                         f"{', '.join(config.UPGRADE_TRIGGERS)}")
    return rule


def violates(metrics: dict[str, Any]) -> list[str]:
    """The limits a run's metrics (``summary.json``) violate, by ``UPGRADES["trigger"]``: with
    ``planning_criteria`` a transformer 2-h moving average above 100 % or an interval above the emergency
    limit, a line 1-h moving average above 100 % (phase 6's ``transformer_ma_overload_intervals``,
    ``transformer_emergency_intervals``, ``line_ma_overload_intervals``: the counts phase 7's criteria read);
    with ``disco`` a transformer or line above its ``UPGRADES`` upper limit in any interval; either way
    customer node-intervals outside Range A. Empty: no upgrade."""
    found = []
    if trigger() == "planning_criteria":
        if int(metrics.get("transformer_ma_overload_intervals") or 0) + \
                int(metrics.get("transformer_emergency_intervals") or 0) > 0:
            found.append("transformer")
        if int(metrics.get("line_ma_overload_intervals") or 0) > 0:
            found.append("line")
    else:
        if float(metrics.get("worst_transformer_loading_pct") or 0.0) > 100.0 * UPGRADES["transformer_upper_limit_pu"]:
            found.append("transformer")
        if float(metrics.get("worst_line_loading_pct") or 0.0) > 100.0 * UPGRADES["line_upper_limit_pu"]:
            found.append("line")
    if int(metrics.get("ansi_a_violation_node_intervals") or 0) > 0:
        found.append("voltage")
    return found


def criterion_text(kind: str) -> str:
    """The thermal limit an element of ``kind`` (transformer | line) is upgraded against, in words."""
    if trigger() == "disco":
        return f"{100 * UPGRADES[f'{kind}_upper_limit_pu']:g} % in any interval (UPGRADES {kind}_upper_limit_pu)"
    c = config.THERMAL[kind]
    text = f"{c['window_h']:g}-h moving average above {c['threshold_pct']:g} %"
    if kind == "transformer":
        text += f" or any interval above {c['emergency_pct']:g} % (FAILURE_CRITERIA, IEEE C57.91)"
    else:
        text += " (FAILURE_CRITERIA, IEEE 738)"
    return text


def over_limit(pct: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Which elements of ``pct`` (steps, elements) [% of rating] are over the thermal trigger of ``kind``, and
    the first step of each at which it trips (-1 where it does not): see :func:`violates`."""
    pct = np.where(np.isfinite(pct), pct, 0.0).astype(float)
    if trigger() == "disco":
        tripped = pct > 100.0 * UPGRADES[f"{kind}_upper_limit_pu"]
    else:
        c = config.THERMAL[kind]
        window = int(round(c["window_h"] / config.INTERVAL_H))
        tripped = daily_power_flow.moving_average_circular(pct, window) > c["threshold_pct"]
        if kind == "transformer":
            tripped = tripped | (pct > c["emergency_pct"])
    over = tripped.any(axis=0)
    return over, np.where(over, np.argmax(tripped, axis=0), -1)


def settings_digest() -> str:
    """SHA-256 of what the step's result depends on besides the run and the cost tables
    (``common.schema.upgrade_settings_digest``: UPGRADES, Range A and, with the planning-criteria trigger, the
    thermal criteria); phase 7 compares a run's with it."""
    trigger()  # an unknown trigger is refused before anything is recorded under it
    return schema.upgrade_settings_digest()


# ------------------------------------------------------------------------------------------- solving
@dataclass
class Solved:
    """One solved day of the instance with a set of upgrade commands."""

    circuit: Any
    day: Any
    xf_names: list[str]
    line_names: list[str]

    def customer_v(self) -> np.ndarray:
        return self.day.v[:, self.circuit.customer_nodes].astype(float)

    def range_a(self) -> dict[str, int]:
        return daily_power_flow.voltage_violations(self.customer_v(), self.circuit.node_customer, RANGE_A)

    def severity(self) -> tuple[int, float]:
        """Customer node-intervals outside Range A, then the summed deviation [pu] (ties)."""
        v = self.customer_v()
        energised = v > config.ENERGISED_PU
        dev = np.where(energised, np.clip(RANGE_A[0] - v, 0, None) + np.clip(v - RANGE_A[1], 0, None), 0.0)
        return int((dev > 0).sum()), float(dev.sum())

    def thermal_over(self) -> dict[str, tuple[float, int]]:
        """Elements over their thermal trigger (:func:`over_limit`): name -> (highest loading [pu], the first step
        at which the trigger trips)."""
        over = {}
        for names, pct, kind in ((self.xf_names, self.day.xf_pct, "transformer"),
                                 (self.line_names, self.day.line_pct, "line")):
            pct = np.where(np.isfinite(pct), pct, 0.0).astype(float)
            if pct.size == 0:
                continue
            worst = pct.max(axis=0)
            tripped, first = over_limit(pct, kind)
            for j in np.nonzero(tripped)[0]:
                over[names[j]] = (float(worst[j]) / 100.0, int(first[j]))
        return over

    def loading_pu(self, name: str) -> np.ndarray:
        if name in self.xf_names:
            return self.day.xf_pct[:, self.xf_names.index(name)].astype(float) / 100.0
        return np.nan_to_num(self.day.line_pct[:, self.line_names.index(name)].astype(float)) / 100.0

    def outcome(self) -> dict[str, Any]:
        over = self.thermal_over()
        a = self.range_a()
        xf = np.nan_to_num(self.day.xf_pct.astype(float))
        ln = np.nan_to_num(self.day.line_pct.astype(float))
        return {"worst_transformer_loading_pct": float(xf.max()) if xf.size else 0.0,
                "worst_line_loading_pct": float(ln.max()) if ln.size else 0.0,
                "transformers_over_limit": sum(n.startswith("transformer.") for n in over),
                "lines_over_limit": sum(n.startswith("line.") for n in over),
                "ansi_a_under_node_intervals": a["under_node_intervals"],
                "ansi_a_over_node_intervals": a["over_node_intervals"],
                "ansi_a_customers_affected": a["customers_affected"],
                "ansi_a_under_max_consecutive_intervals": daily_power_flow.max_consecutive_below(
                    self.customer_v(), self.circuit.node_customer, RANGE_A[0])}


class NotSolved(RuntimeError):
    """A day that did not converge with a set of upgrade commands."""


class Solver:
    """Compiles the instance, applies upgrade commands and solves its day (the power flow's own functions)."""

    def __init__(self, instance_dir: Path, assignments: dict[str, Any], deadline: float | None):
        self.master = Path(instance_dir) / INSTANCE_FILES["master"]
        self.assignments = assignments
        self.deadline = deadline
        self.solves = 0

    def compile(self, commands: Sequence[str] = ()) -> Any:
        engine = dss.engine()
        dss.compile_master(self.master, strip=False)
        if commands:
            dss.run_commands("\n".join(commands))
        return engine

    def solve(self, commands: Sequence[str] = (), compiled: Any = None) -> Solved:
        """The day with ``commands``; ``compiled``: the engine as :meth:`compile` left it with the same commands
        (only read since), solved without compiling it again."""
        engine = compiled if compiled is not None else self.compile(commands)
        circuit = daily_power_flow._Circuit(engine, self.assignments)
        self.solves += 1
        day = daily_power_flow.solve_day(engine, circuit, self.assignments, self.deadline)
        if not day.converged.all():
            raise NotSolved(f"{int((~day.converged).sum())} of {len(day.converged)} steps did not converge")
        return Solved(circuit, day, [n.lower() for n in circuit.xf_names], [n.lower() for n in circuit.line_names])

    def try_solve(self, commands: Sequence[str]) -> Solved | None:
        try:
            return self.solve(commands)
        except (NotSolved, daily_power_flow.DivergedSolution, dss.DSSError) as exc:
            logger.debug("setting not solvable: %s", exc)
            return None


# ------------------------------------------------------------------------------------------- thermal
@dataclass
class Decision:
    """The current upgrade of one original element, with what triggered it first."""

    kind: str           # transformer | line
    name: str           # original element, "transformer.x" / "line.x"
    choice: Choice
    linecode: str       # line: the feeder line code of the chosen rating, '' to keep the impedance
    trigger_pu: float
    trigger_step: int
    rounds: int = 1


def _parallel_name(element: str, k: int) -> str:
    return f"upg_{element.split('.', 1)[1]}_p{k}"


def thermal_commands(decisions: dict[str, Decision], transformers: dict[str, TransformerSpec],
                     lines: dict[str, LineSpec]) -> list[str]:
    """OpenDSS commands of the thermal decisions, in element order."""
    out = []
    for name in sorted(decisions):
        d = decisions[name]
        if d.kind == "transformer":
            spec = transformers[name]
            windings = " ".join(f"wdg={w + 1} kVA={d.choice.size * spec.kva[w] / spec.kva[0]:.6g}"
                                for w in range(spec.windings))
            rating = f"normhkVA={1.1 * d.choice.size:.6g} emerghkVA={1.5 * d.choice.size:.6g}"
            if d.choice.action == "replace":
                out.append(f"Edit Transformer.{spec.name} {windings} {rating}")
            else:
                # like= copies every property but the connections (OpenDSS gives the copy buses of its own): the
                # parallel unit is connected to the original's buses explicitly
                buses = f"buses=({', '.join(spec.buses)}) "
                out += [f"New Transformer.{_parallel_name(name, k)} like={spec.name} {buses}{windings} {rating}"
                        for k in range(1, d.choice.n + 1)]
        else:
            spec = lines[name]
            ratio = spec.emerg_amps / spec.amps if spec.amps > 0 else 1.5
            code = f"linecode={d.linecode} length={spec.length_m:.6g} units=m " if d.linecode else ""
            amps = f"normamps={d.choice.size:.6g} emergamps={ratio * d.choice.size:.6g}"
            if d.choice.action == "replace":
                out.append(f"Edit Line.{spec.name} {code}{amps}")
            else:
                buses = f"bus1={spec.buses[0]} bus2={spec.buses[1]} "  # like= does not copy the connections
                out += [f"New Line.{_parallel_name(name, k)} like={spec.name} {buses}{code}{amps}"
                        for k in range(1, d.choice.n + 1)]
    return out


def _group_load(solved: Solved, name: str, decision: Decision | None, rating: float) -> float:
    """Highest load [kVA or A] of an original element and its parallel units in any interval."""
    load = solved.loading_pu(name) * (decision.choice.size if decision and decision.choice.action == "replace"
                                      else rating)
    if decision and decision.choice.action == "parallel":
        kind = name.split(".", 1)[0]
        for k in range(1, decision.choice.n + 1):
            load = load + solved.loading_pu(f"{kind}.{_parallel_name(name, k)}") * decision.choice.size
    return float(load.max())


def _original(element: str) -> str:
    kind, _, rest = element.partition(".")
    match = re.fullmatch(r"upg_(.+)_p\d+", rest)
    return f"{kind}.{match.group(1)}" if match else element


def thermal_round(solved: Solved, decisions: dict[str, Decision], transformers: dict[str, TransformerSpec],
                  lines: dict[str, LineSpec], codes: dict[str, tuple[int, float]], tables: CostTables,
                  unsolved: dict[str, str]) -> bool:
    """Decide (again) every element above its limit in ``solved``; True when any decision changed."""
    changed = False
    for element, (peak_pu, step) in sorted(solved.thermal_over().items()):
        name = _original(element)
        if name in unsolved:
            continue
        kind = name.split(".", 1)[0]
        if kind not in ("transformer", "line") or (name not in transformers and name not in lines):
            continue
        previous = decisions.get(name)
        if kind == "transformer":
            spec = transformers[name]
            rating, sizes = spec.kva[0], transformer_catalogue(spec, tables, transformers)
            design, limit = UPGRADES["transformer_design_pu"], UPGRADES["parallel_transformers_limit"]
        else:
            spec = lines[name]
            catalogue = line_catalogue(spec, tables, lines, codes)
            rating, sizes = spec.amps, list(catalogue)
            design, limit = UPGRADES["line_design_pu"], UPGRADES["parallel_lines_limit"]
        load = _group_load(solved, name, previous, rating)
        required = required_rating(1.0, load / rating, design, UPGRADES["extreme_loading_pu"]) * rating
        if previous is not None:  # each round must add capacity
            had = previous.choice.size * (1 if previous.choice.action == "replace" else previous.choice.n) + \
                (0 if previous.choice.action == "replace" else rating)
            required = max(required, had * 1.0001)
        choice = choose_size(sizes, rating, required, UPGRADES["oversize_limit"], limit)
        if choice is None:
            unsolved[name] = (f"{kind} loaded {peak_pu:.2f} pu: no catalogue size or up to {limit} parallel units reach "
                              f"{required:.1f} {'kVA' if kind == 'transformer' else 'A'}")
            continue
        linecode = catalogue.get(choice.size, "") if kind == "line" else ""
        if previous is None:
            decisions[name] = Decision(kind, name, choice, linecode, peak_pu, step)
        else:
            previous.choice, previous.linecode, previous.rounds = choice, linecode, previous.rounds + 1
        changed = True
    return changed


def thermal_records(decisions: dict[str, Decision], transformers: dict[str, TransformerSpec],
                    lines: dict[str, LineSpec], tables: CostTables) -> list[dict[str, Any]]:
    """upgrades.json entries of the thermal decisions, priced (DISCO's cost_computation)."""
    records = []
    for name in sorted(decisions):
        d = decisions[name]
        c = d.choice
        record = {"element": name, "kind": d.kind, "action": c.action, "units": c.n,
                  "trigger_interval_start": daily_power_flow._clock(d.trigger_step),  # where the trigger first trips
                  "trigger_step": d.trigger_step + 1, "trigger_loading_pct": round(100.0 * d.trigger_pu, 3),
                  "rounds": d.rounds}
        if d.kind == "transformer":
            spec = transformers[name]
            unit, basis = transformer_unit_cost(spec, c.size, tables)
            fixed = tables.misc[MISC_ROWS[c.action]]
            record.update(reason=f"highest loading {100 * d.trigger_pu:.1f} % of nameplate; over the limit: "
                                 f"{criterion_text('transformer')}",
                          before={"kva": spec.kva[0], "phases": spec.phases, "kv": list(spec.kv), "conns": list(spec.conns)},
                          after={"kva": c.size, "parallel_units": c.n if c.action == "parallel" else 0,
                                 "total_kva": c.size if c.action == "replace" else spec.kva[0] + c.n * c.size},
                          required_kva=round(c.required, 3), unit_cost_usd=unit, fixed_cost_usd=fixed,
                          cost_usd=round(c.n * (unit + fixed), 2), cost_basis=basis)
        else:
            spec = lines[name]
            per_m, basis = line_cost_per_m(spec, c.size, tables, LINE_TYPES[c.action])
            record.update(reason=f"highest loading {100 * d.trigger_pu:.1f} % of NormAmps; over the limit: "
                                 f"{criterion_text('line')}",
                          before={"amps": spec.amps, "linecode": spec.linecode, "phases": spec.phases,
                                  "kv_ln": round(spec.kv_ln, 4), "placement": spec.placement,
                                  "placement_source": spec.placement_source},
                          after={"amps": c.size, "linecode": d.linecode or None,
                                 "impedance": "of the line code" if d.linecode else "kept (no line code of that rating)",
                                 "parallel_circuits": c.n if c.action == "parallel" else 0,
                                 "total_amps": c.size if c.action == "replace" else spec.amps + c.n * c.size},
                          required_amps=round(c.required, 3), length_m=round(spec.length_m, 3), cost_per_m_usd=per_m,
                          cost_usd=round(c.n * per_m * spec.length_m, 2), cost_basis=basis)
        records.append(record)
    return records


# ------------------------------------------------------------------------------------------- voltage
def _controls(engine: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Voltage-controlled capacitor controls (name, ON, OFF) and regulator controls (name, vreg, band, kind:
    ``ltc`` when its transformer changes voltage, ``regulator`` when it is 1:1)."""
    caps, regs = [], []
    if engine.CapControls.First():
        while True:
            if int(engine.CapControls.Mode()) == 1:  # voltage control
                caps.append({"name": engine.CapControls.Name(), "on_v": float(engine.CapControls.ONSetting()),
                             "off_v": float(engine.CapControls.OFFSetting())})
            if not engine.CapControls.Next():
                break
    if engine.RegControls.First():
        while True:
            regs.append({"name": engine.RegControls.Name(), "vreg_v": float(engine.RegControls.ForwardVreg()),
                         "band_v": float(engine.RegControls.ForwardBand()),
                         "transformer": engine.RegControls.Transformer()})
            if not engine.RegControls.Next():
                break
    for reg in regs:
        engine.Transformers.Name(reg["transformer"])
        kvs = []
        for w in range(1, engine.Transformers.NumWindings() + 1):
            engine.Transformers.Wdg(w)
            kvs.append(float(engine.Transformers.kV()))
        reg["kind"] = "regulator" if np.allclose(kvs, kvs[0], rtol=KV_RTOL) else "ltc"
    return caps, regs


def capacitor_settings() -> list[tuple[float, float]]:
    """DISCO's capacitor sweep: ON / OFF [V on 120 V] from ``capacitor_on_off_v``, widened by half the gap on each
    side per step until both reach Range A's limits."""
    on, off = UPGRADES["capacitor_on_off_v"]
    low, high = 120.0 * RANGE_A[0], 120.0 * RANGE_A[1]
    half = UPGRADES["capacitor_sweep_gap_v"] / 2.0
    out = []
    while True:
        out.append((round(on, 3), round(off, 3)))
        if on <= low and off >= high:
            return out
        on, off = max(low, on - half), min(high, off + half)


def regulator_settings(current_vreg_v: float) -> list[tuple[float, float]]:
    """(vreg, band) [V on 120 V] inside Range A for each band of ``regulator_bands_v``, in steps of
    ``regulator_vreg_step_v``, nearest the current vreg first."""
    step = UPGRADES["regulator_vreg_step_v"]
    out = []
    for band in UPGRADES["regulator_bands_v"]:
        low, high = 120.0 * RANGE_A[0] + band / 2.0, 120.0 * RANGE_A[1] - band / 2.0
        n = int(math.floor((high - low) / step + 1e-9))
        out += [(round(low + i * step, 3), float(band)) for i in range(n + 1)]
    return sorted(out, key=lambda s: (abs(s[0] - current_vreg_v), s[1], s[0]))


def sweep(solver: Solver, base: list[str], candidates: list[tuple[Any, list[str]]], best: Solved
          ) -> tuple[Any, list[str], Solved] | None:
    """Solve the day with ``base`` + each candidate's commands in turn; the first removing every Range A violation,
    else the one of least severity if it is less than ``best``'s; None when none improves."""
    chosen = None
    best_severity = best.severity()
    for setting, commands in candidates:
        solved = solver.try_solve(base + commands)
        if solved is None:
            continue
        severity = solved.severity()
        if severity < best_severity:
            chosen, best_severity = (setting, commands, solved), severity
        if severity[0] == 0:
            break
    return chosen


@dataclass
class Topology:
    """The circuit's radial tree: each bus's parent line (from the source outward) and line ends."""

    parent: dict[str, str] = field(default_factory=dict)
    line_bus2: dict[str, str] = field(default_factory=dict)
    primary: set[str] = field(default_factory=set)


def read_topology(engine: Any) -> Topology:
    """Breadth-first from the source bus over enabled lines and transformers (sorted, so reproducible)."""
    edges: dict[str, list[tuple[str, str]]] = {}
    top = Topology()
    if engine.Lines.First():
        while True:
            name = f"line.{engine.Lines.Name().lower()}"
            b1, b2 = dss.bus_name(engine.Lines.Bus1()).lower(), dss.bus_name(engine.Lines.Bus2()).lower()
            if engine.CktElement.Enabled() and b1 != b2:
                edges.setdefault(b1, []).append((b2, name))
                edges.setdefault(b2, []).append((b1, name))
                top.line_bus2[name] = engine.Lines.Bus2()
                engine.Circuit.SetActiveBus(b1)
                if float(engine.Bus.kVBase()) > 1.0:
                    top.primary.add(name)
            if not engine.Lines.Next():
                break
    if engine.Transformers.First():
        while True:
            buses = [dss.bus_name(b).lower() for b in engine.CktElement.BusNames()]
            name = f"transformer.{engine.Transformers.Name().lower()}"
            for b in buses[1:]:
                if b != buses[0]:
                    edges.setdefault(buses[0], []).append((b, name))
                    edges.setdefault(b, []).append((buses[0], name))
            if not engine.Transformers.Next():
                break
    engine.Vsources.First()
    source = dss.bus_name(engine.CktElement.BusNames()[0]).lower()
    seen, queue = {source}, [source]
    while queue:
        bus = queue.pop(0)
        for other, element in sorted(edges.get(bus, [])):
            if other not in seen:
                seen.add(other)
                top.parent[other] = f"{element}|{bus}"
                queue.append(other)
    return top


def path_lines(top: Topology, bus: str) -> list[str]:
    """Primary lines from the source to ``bus``, source first."""
    out = []
    while bus in top.parent:
        element, _, up = top.parent[bus].partition("|")
        if element in top.primary:
            out.append(element)
        bus = up
    return out[::-1]


def regulator_site(top: Topology, buses: list[str], taken: set[str]) -> str | None:
    """The deepest primary line common to the paths of ``buses`` (customer buses in violation); when a new
    regulator already sits there, the deepest common line of the largest group of them below it."""
    paths = [p for p in (path_lines(top, b) for b in buses) if p]
    while paths:
        common = []
        for level in zip(*paths):
            if len(set(level)) != 1:
                break
            common.append(level[0])
        free = [line for line in common if line not in taken]
        if free and free[-1] == (common[-1] if common else None):
            return free[-1]
        depth = len(common)
        groups: dict[str, list[list[str]]] = {}
        for p in paths:
            if len(p) > depth:
                groups.setdefault(p[depth], []).append(p)
        if not groups:
            return None
        paths = max(sorted(groups.items()), key=lambda kv: len(kv[1]))[1]
    return None


def new_regulator_commands(engine: Any, top: Topology, line: str, k: int, vreg_v: float) -> tuple[list[str], dict]:
    """Commands that cut ``line`` at its far end and put a new regulator (a 1:1 transformer and its RegControl)
    between the line and the bus it fed; with its description (phases, kV)."""
    bus2 = top.line_bus2[line]
    bus, _, nodes = bus2.partition(".")
    engine.Circuit.SetActiveBus(bus)
    kv_ln = float(engine.Bus.kVBase())
    engine.Lines.Name(line.split(".", 1)[1])
    phases = int(engine.Lines.Phases())
    kv = kv_ln * math.sqrt(3) if phases == 3 else kv_ln
    new_bus = f"upg_reg{k}_{bus}"
    suffix = f".{nodes}" if nodes else ""
    name = f"upg_reg{k}"
    kva = UPGRADES["new_regulator_kva"]
    commands = [f"Edit {line} bus2={new_bus}{suffix}",
                f"New Transformer.{name} phases={phases} windings=2 buses=({new_bus}{suffix}, {bus2}) "
                f"conns=(wye, wye) kvs=({kv:.6g}, {kv:.6g}) kvas=({kva:g}, {kva:g}) XHL=0.01 %loadloss=0.0001 "
                f"%noloadloss=0 ppm_antifloat=0",
                f"New RegControl.{name} transformer={name} winding=2 vreg={vreg_v:g} band={NEW_REGULATOR_BAND_V:g} "
                f"ptratio={kv_ln * 1000.0 / 120.0:.6g}",
                "CalcVoltagebases"]
    return commands, {"phases": phases, "kv": round(kv, 4), "kv_ln": round(kv_ln, 4), "bus": bus}


def regulator_cost(desc: dict[str, Any], tables: CostTables) -> tuple[float, str]:
    r = tables.regulators
    rows = r[(r["phases"] == desc["phases"]) & _close(r["primary_kV"], desc["kv"])]
    controller = tables.controls[CONTROL_ROWS["new_regulator_controller"]]
    if len(rows):
        return float(rows["cost"].iloc[0]) + controller, "exact row + new controller"
    pool = r[r["phases"] == desc["phases"]] if (r["phases"] == desc["phases"]).any() else r
    row = _nearest(pool.assign(kv_ll=np.where(pool["phases"] == 3, pool["primary_kV"], pool["primary_kV"])), "kv_ll",
                   desc["kv"] if desc["phases"] == 3 else desc["kv_ln"] * math.sqrt(3))
    return float(row["cost"]) + controller, (f"nearest row: {int(row['phases'])}-phase {row['primary_kV']:g} kV "
                                             f"+ new controller")


def voltage_upgrades(solver: Solver, solved: Solved, base: list[str], tables: CostTables
                     ) -> tuple[list[str], list[dict[str, Any]], Solved]:
    """Capacitor sweep, regulator sweep, new regulators (DISCO's voltage upgrades); returns the commands to add
    after ``base``, the upgrades.json entries and the last solved day."""
    records: list[dict[str, Any]] = []
    commands: list[str] = []
    if not solved.severity()[0]:  # every customer inside Range A: nothing to do (and nothing to compile)
        return commands, records, solved
    engine = solver.compile(base)
    caps, regs = _controls(engine)
    if caps and solved.severity()[0]:
        candidates = [((on, off), [f"Edit CapControl.{c['name']} ONsetting={on:g} OFFsetting={off:g}" for c in caps])
                      for on, off in capacitor_settings()]
        found = sweep(solver, base + commands, candidates, solved)
        if found:
            (on, off), extra, solved = found
            commands += extra
            cost = tables.controls[CONTROL_ROWS["capacitor"]]
            records += [{"element": f"capcontrol.{c['name']}", "kind": "capacitor_control", "action": "settings",
                         "before": {"on_v": c["on_v"], "off_v": c["off_v"]}, "after": {"on_v": on, "off_v": off},
                         "reason": "customers outside ANSI C84.1 Range A", "cost_usd": cost,
                         "cost_basis": CONTROL_ROWS["capacitor"]} for c in caps]
    if regs and solved.severity()[0]:
        candidates = [((vreg, band), [f"Edit RegControl.{r['name']} vreg={vreg:g} band={band:g}" for r in regs])
                      for vreg, band in regulator_settings(regs[0]["vreg_v"])]
        found = sweep(solver, base + commands, candidates, solved)
        if found:
            (vreg, band), extra, solved = found
            commands += extra
            for r in regs:
                row = CONTROL_ROWS[r["kind"]]
                records.append({"element": f"regcontrol.{r['name']}", "kind": f"{r['kind']}_control",
                                "action": "settings", "before": {"vreg_v": r["vreg_v"], "band_v": r["band_v"]},
                                "after": {"vreg_v": vreg, "band_v": band},
                                "reason": "customers outside ANSI C84.1 Range A", "cost_usd": tables.controls[row],
                                "cost_basis": row})
    taken: set[str] = set()
    for k in range(1, int(UPGRADES["max_new_regulators"]) + 1):
        if not solved.severity()[0]:
            break
        engine = solver.compile(base + commands)
        top = read_topology(engine)
        v = solved.customer_v()
        bad_nodes = np.nonzero(((v > config.ENERGISED_PU) & ((v < RANGE_A[0]) | (v > RANGE_A[1]))).any(axis=0))[0]
        node_names = [n.lower() for n in engine.Circuit.YNodeOrder()]
        buses = sorted({node_names[solved.circuit.customer_nodes[j]].rpartition(".")[0] for j in bad_nodes})
        site = regulator_site(top, buses, taken)
        if site is None:
            break
        taken.add(site)
        candidates = []
        for vreg in NEW_REGULATOR_VREG_V:
            extra, desc = new_regulator_commands(engine, top, site, k, vreg)
            candidates.append(((vreg, desc), extra))
        found = sweep(solver, base + commands, candidates, solved)
        if not found:
            logger.info("a new regulator at %s does not reduce the Range A violations: not placed", site)
            continue
        (vreg, desc), extra, solved = found
        commands += extra
        cost, basis = regulator_cost(desc, tables)
        records.append({"element": f"transformer.upg_reg{k}", "kind": "new_regulator", "action": "new",
                        "before": None, "after": {"line": site, "vreg_v": vreg, "band_v": NEW_REGULATOR_BAND_V, **desc},
                        "reason": "customers outside ANSI C84.1 Range A after the control sweeps",
                        "cost_usd": cost, "cost_basis": basis})
    return commands, records, solved


# ------------------------------------------------------------------------------------------- the step
def run_solved(engine: Any, run_day: tuple[Any, Any] | None) -> Solved | None:
    """The run's own day (``run_day``: phase 6's (circuit index arrays, Day), ``daily_power_flow.simulate``'s
    ``keep``) as the day before upgrades, when its circuit has the node order and the transformers and lines of
    the instance ``engine`` just compiled (a cached feeder's always has: its candidates add no node and no
    branch); None otherwise, and the day is solved again."""
    if run_day is None:
        return None
    circuit, day = run_day
    if (list(circuit.node_index) != [n.lower() for n in engine.Circuit.YNodeOrder()]
            or list(circuit.layout.names) != list(dss.pd_layout(engine).names)):
        logger.debug("the run's circuit differs from its compiled instance: the day before upgrades is solved again")
        return None
    return Solved(circuit, day, [n.lower() for n in circuit.xf_names], [n.lower() for n in circuit.line_names])


def upgrade_run(instance_dir: Path, tables: CostTables, deadline: float | None = None,
                run_day: tuple[Any, Any] | None = None,
                equipment: Callable[[], Equipment | None] | None = None) -> tuple[dict, list[str], float]:
    """Upgrade one solved run; returns (upgrades.json content, the upgrade commands, runtime [s]). A run without
    a violation is not solved again (``day_solves`` 0). The day before upgrades is the run's own when the batch
    runner gives it (``run_day``, :func:`run_solved`: the arrays the run's metrics and its trigger came from;
    ``before_day`` "run"), else the instance compiled and solved (``before_day`` "solved": the standalone
    script; the same day to 1e-9 relative: ``tests/test_phase6_cache.py`` for the day,
    ``tests/test_phase6_upgrades.py`` for the upgrades and costs). ``equipment``: when the run's day was solved on
    a cached feeder, what :func:`read_equipment` reads of it (``feeder_cache.FeederCache.equipment``: its lines,
    transformers and line codes are the instance's, a candidate being a load, PV system or battery); with it and
    ``run_day`` the instance is not compiled before the first upgrade (one compile fewer per upgraded run; the
    same upgrades and costs: ``tests/test_phase6_upgrades.py``). OpenDSS
    failures and a time limit reached make the result's ``status`` ``failed`` with the reason."""
    started = time.perf_counter()
    instance_dir = Path(instance_dir)
    summary = read_json(instance_dir / INSTANCE_FILES["summary"])
    assignments = read_json(instance_dir / INSTANCE_FILES["assignments"])
    found = violates(summary.get("metrics") or {})
    result: dict[str, Any] = {key: summary.get(key) for key in ("state", "season", "design", "feeder", "case")}
    result.update(settings=dict(UPGRADES), settings_digest=settings_digest(), cost_tables=str(tables.folder),
                  cost_tables_digest=tables.digest, run_timeseries_sha256=summary.get("timeseries_sha256", ""),
                  violations=found, upgrades=[], unsolved=[], thermal_iterations=0, iteration_limit_reached=False,
                  day_solves=0)
    if not found:
        result.update(status="not needed", message="", before=None, after=None, all_violations_removed=True)
        return result, [], round(time.perf_counter() - started, 4)
    solver = Solver(instance_dir, assignments, deadline)
    commands: list[str] = []
    try:
        known = equipment() if equipment is not None and run_day is not None else None
        if known is not None:  # the run's cached feeder: its day and equipment, nothing compiled
            transformers, lines, codes = (dict(part) for part in known)
            circuit, day = run_day
            solved = Solved(circuit, day, [n.lower() for n in circuit.xf_names],
                            [n.lower() for n in circuit.line_names])
            result["before_day"] = "run"
        else:
            engine = solver.compile()
            transformers, lines, codes = read_equipment(engine)  # reads only: the compiled circuit is solved as is
            solved = run_solved(engine, run_day)
            result["before_day"] = "run" if solved is not None else "solved"
            if solved is None:
                solved = solver.solve(compiled=engine)
        result["before"] = solved.outcome()
        decisions: dict[str, Decision] = {}
        unsolved: dict[str, str] = {}
        rounds = 0
        while solved.thermal_over() and rounds < UPGRADES["thermal_iterations"]:
            if not thermal_round(solved, decisions, transformers, lines, codes, tables, unsolved):
                break
            rounds += 1
            commands = thermal_commands(decisions, transformers, lines)
            solved = solver.solve(commands)
        result["thermal_iterations"] = rounds
        result["iteration_limit_reached"] = bool(solved.thermal_over()) and rounds >= UPGRADES["thermal_iterations"]
        records = thermal_records(decisions, transformers, lines, tables)
        extra, voltage_records, solved = voltage_upgrades(solver, solved, commands, tables)
        commands = commands + extra
        records += voltage_records
        after = solved.outcome()
        remaining = sorted(solved.thermal_over())
        result["unsolved"] = ([{"element": n, "reason": unsolved.get(_original(n), "still over the thermal limit")}
                               for n in remaining] +
                              ([{"element": "customers", "reason": f"{after['ansi_a_under_node_intervals']} node-"
                                 f"intervals below and {after['ansi_a_over_node_intervals']} above Range A remain "
                                 f"({after['ansi_a_customers_affected']} customers)"}]
                               if after["ansi_a_under_node_intervals"] + after["ansi_a_over_node_intervals"] else []))
        result.update(status="upgraded", message="", upgrades=records, after=after,
                      all_violations_removed=not result["unsolved"])
    except (NotSolved, daily_power_flow.DivergedSolution, dss.DSSError, dss.DeadlineExceeded) as exc:
        result.update(status="failed", message=str(exc), upgrades=[], unsolved=[], after=None,
                      all_violations_removed=False)
        commands = []
    result["day_solves"] = solver.solves
    return result, commands, round(time.perf_counter() - started, 4)


def cost_summary(result: dict[str, Any], upgrades_sha256: str) -> dict[str, Any]:
    """The ``upgrades`` block of summary.json: status, total cost and split [USD], counts, whether every
    violation was removed, the work done and the digests the result depends on."""
    split = {"transformer": 0.0, "line": 0.0, "voltage": 0.0}
    counts = {"transformer": 0, "line": 0, "voltage": 0}
    for record in result["upgrades"]:
        group = record["kind"] if record["kind"] in ("transformer", "line") else "voltage"
        split[group] += float(record["cost_usd"])
        counts[group] += 1
    failed = result["status"] == "failed"
    return {"status": result["status"], "message": result.get("message", ""),
            "cost_usd": None if failed else round(sum(split.values()), 2),
            "cost_transformers_usd": None if failed else round(split["transformer"], 2),
            "cost_lines_usd": None if failed else round(split["line"], 2),
            "cost_voltage_usd": None if failed else round(split["voltage"], 2),
            "n_transformer_upgrades": counts["transformer"], "n_line_upgrades": counts["line"],
            "n_voltage_upgrades": counts["voltage"], "n_unsolved": len(result["unsolved"]),
            "all_violations_removed": bool(result["all_violations_removed"]),
            "violations": result["violations"], "thermal_iterations": result["thermal_iterations"],
            "iteration_limit_reached": result["iteration_limit_reached"], "day_solves": result["day_solves"],
            "settings_digest": result["settings_digest"], "cost_tables_digest": result["cost_tables_digest"],
            "run_timeseries_sha256": result["run_timeseries_sha256"], "upgrades_sha256": upgrades_sha256}


def write_upgrades(instance_dir: Path, result: dict[str, Any], commands: list[str]) -> dict[str, Any]:
    """Write upgrades.json, the upgraded variant (or remove an older one) and, last, summary.json with its
    ``upgrades`` block, each atomically; returns the block."""
    instance_dir = Path(instance_dir)
    variant = instance_dir / UPGRADE_FILES["variant"]
    if commands:
        staging = instance_dir / f".{UPGRADE_FILES['variant']}.tmp"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        header = (f"! Upgraded variant of instance {result['state']} / {result['season']} / {result['design']} / "
                  f"{result['feeder']} / case {result['case']} (6_instantiate_circuits/upgrade_circuit.py; "
                  f"{len(result['upgrades'])} upgrades, see ../{UPGRADE_FILES['upgrades']})\n"
                  "! compile, then: solve mode=daily stepsize=15m number=96\n")
        (staging / INSTANCE_FILES["master"]).write_text(
            header + f"Redirect ../{INSTANCE_FILES['master']}\nRedirect {UPGRADE_FILES['commands']}\n", encoding="utf-8")
        (staging / UPGRADE_FILES["commands"]).write_text("\n".join(commands) + "\n", encoding="utf-8")
        shutil.copyfile(instance_dir / INSTANCE_FILES["assignments"], staging / INSTANCE_FILES["assignments"])
        if variant.exists():
            shutil.rmtree(variant)
        staging.rename(variant)
    elif variant.exists():
        shutil.rmtree(variant)
    text = dumps_json(result)
    write_text(instance_dir / UPGRADE_FILES["upgrades"], text)
    block = cost_summary(result, sha256_bytes(text.encode("utf-8")))
    summary_path = instance_dir / INSTANCE_FILES["summary"]
    summary = read_json(summary_path)
    summary["upgrades"] = block
    with atomic_path(summary_path) as tmp:
        tmp.write_text(dumps_json(summary), encoding="utf-8")
    return block


def remove_outputs(instance_dir: Path) -> None:
    """Remove a run's upgrade outputs (``upgrades.json``, the ``upgraded/`` variant): after the run is solved
    again they describe a result that is gone."""
    instance_dir = Path(instance_dir)
    (instance_dir / UPGRADE_FILES["upgrades"]).unlink(missing_ok=True)
    if (instance_dir / UPGRADE_FILES["variant"]).exists():
        shutil.rmtree(instance_dir / UPGRADE_FILES["variant"])


def record_failure(instance_dir: Path, message: str) -> dict[str, Any]:
    """Record an upgrade that could not be done (an unusable cost table, an internal error) in the summary's
    ``upgrades`` block, the run's power-flow result untouched; removes older upgrade outputs. Returns the block."""
    instance_dir = Path(instance_dir)
    remove_outputs(instance_dir)
    summary_path = instance_dir / INSTANCE_FILES["summary"]
    summary = read_json(summary_path)
    block = {"status": "failed", "message": message, "cost_usd": None, "cost_transformers_usd": None,
             "cost_lines_usd": None, "cost_voltage_usd": None, "all_violations_removed": False,
             "settings_digest": settings_digest()}
    summary["upgrades"] = block
    with atomic_path(summary_path) as tmp:
        tmp.write_text(dumps_json(summary), encoding="utf-8")
    return block


def upgrades_current(instance_dir: Path, tables: CostTables) -> dict[str, Any] | None:
    """The ``upgrades`` block of a run already upgraded from the same run, settings and cost tables, or None."""
    try:
        summary = read_json(Path(instance_dir) / INSTANCE_FILES["summary"])
    except (OSError, ValueError):
        return None
    block = summary.get("upgrades") if isinstance(summary, dict) else None
    path = Path(instance_dir) / UPGRADE_FILES["upgrades"]
    if not isinstance(block, dict) or block.get("status") == "failed" or not path.is_file():
        return None
    if (block.get("settings_digest"), block.get("cost_tables_digest"), block.get("run_timeseries_sha256"),
            block.get("upgrades_sha256")) != (settings_digest(), tables.digest, summary.get("timeseries_sha256", ""),
                                              sha256_file(path)):
        return None
    return block


def cost_tables_dir(ws: Workspace, flag: str | None) -> Path:
    """``--cost-tables``, else ``UPGRADES['cost_tables_dir']``, else the workspace copy."""
    if flag:
        return Path(flag).expanduser().resolve()
    if UPGRADES.get("cost_tables_dir"):
        return Path(UPGRADES["cost_tables_dir"]).expanduser().resolve()
    return ws.upgrade_costs_dir


def run_upgrade(instance_dir: Path, tables: CostTables, deadline: float | None = None, force: bool = False,
                run_day: tuple[Any, Any] | None = None,
                equipment: Callable[[], Equipment | None] | None = None) -> tuple[dict[str, Any], float, bool]:
    """The batch runner's entry: upgrade one ok run unless it is already upgraded from the same inputs; returns
    (the summary's ``upgrades`` block, runtime [s], skipped). ``run_day``, ``equipment``: the run's own solved day
    and its cached feeder's equipment, as :func:`upgrade_run` takes them."""
    if not force:
        block = upgrades_current(instance_dir, tables)
        if block is not None:
            return block, 0.0, True
    result, commands, runtime_s = upgrade_run(instance_dir, tables, deadline, run_day=run_day,
                                               equipment=equipment)
    return write_upgrades(instance_dir, result, commands), runtime_s, False


# ------------------------------------------------------------------------------------------- command line
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="upgrade_circuit.py")
    parser.add_argument("--instance", required=True, help="a solved instance folder (summary.json, Master.dss)")
    parser.add_argument("--cost-tables", default=None,
                        help="folder of the unit-cost tables (default: UPGRADES['cost_tables_dir'], else "
                             "<data>/upgrade_costs, copied by sample/build_sample.py)")
    parser.add_argument("--timeout", type=cli.positive_float, default=config.RUN_TIMEOUT_S,
                        help=f"time limit of the step [s] (default {config.RUN_TIMEOUT_S:g})")
    parser.add_argument("--force", action="store_true", help="upgrade again even where a current result exists")
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    folder = Path(args.instance).expanduser().resolve()
    for name in ("master", "assignments"):
        if not (folder / INSTANCE_FILES[name]).is_file():
            raise cli.UserError(f"--instance {folder}: {INSTANCE_FILES[name]} not found (make instances with "
                                "6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py)")
    summary_path = folder / INSTANCE_FILES["summary"]
    if not summary_path.is_file():
        raise InputError(f"missing input {summary_path}: solve the run first "
                         "(6_instantiate_circuits/power_flow_sim_daily_EV_STO_DG_deploy.py --instance DIR)")
    try:
        summary = read_json(summary_path)
        read_json(folder / INSTANCE_FILES["assignments"])
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{summary_path} or {INSTANCE_FILES['assignments']}: not valid JSON ({exc}): solve the run "
                         "again") from None
    if not isinstance(summary, dict) or summary.get("status") != "ok" or not isinstance(summary.get("metrics"), dict):
        raise cli.UserError(f"{summary_path}: the run is not ok ({summary.get('message', '') if isinstance(summary, dict) else ''}): "
                            "nothing to upgrade; solve it again first")
    tables = load_cost_tables(cost_tables_dir(ws, args.cost_tables))
    with exclusive_step(folder, "phase 6 run"):
        block, runtime_s, skipped = run_upgrade(folder, tables, time.monotonic() + args.timeout, force=args.force)
    if block["status"] == "failed":
        logger.error("%s: upgrade failed: %s", folder, block["message"])
        return 1
    logger.info("%s: %s%s, cost %.0f USD (transformers %.0f, lines %.0f, voltage %.0f), %d unsolved, %d day solves "
                "(%.2f s) -> %s", folder, block["status"], " (already done)" if skipped else "", block["cost_usd"],
                block["cost_transformers_usd"], block["cost_lines_usd"], block["cost_voltage_usd"], block["n_unsolved"],
                block["day_solves"], runtime_s, folder / UPGRADE_FILES["upgrades"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
