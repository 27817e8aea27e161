"""Circuit instances: one feeder, one season, one case of a design, as OpenDSS files.

A :class:`FeederContext` holds what every case of a feeder and season shares (customers and their
loads, the design day, the three variants' daily profiles, the PV shape, EV statistics, storage
settings) and writes the shared files once, under ``<data>/6_instantiate_circuits/<STATE>/<season>/
_shared/<feeder>/``: ``LoadShapes_daily.dss`` (one load shape per SMART-DS shape and heat-pump
variant, pointing at the daily files of phases 2, 4 and 5 by relative path) and ``pv_pu.csv``.

:func:`build_instance` turns a case of a mixes file into an instance folder holding
``Master.dss`` and only the case's own files (``Loads.dss`` with each customer's variant,
``EVs.dss``, ``PV.dss`` with the three-phase and rooftop arrays (and, with
``ROOFTOP_PV["inverter_control"] = "volt_var"``, their IEEE 1547 Category B InvControls), ``Storage.dss``
with the three-phase fleet and the home batteries, each on its own dispatch shape) plus ``scenario_assignments.json``; ``Master.dss``
redirects to the feeder's base files (the phase 1b copy) and to the shared files by relative path.
Compiled alone and solved with ``solve mode=daily stepsize=15m number=96`` it reproduces the day.

Randomness, common random numbers and nested placements: the case's seeds are its placement
replicate's (``common.doe.placement_seeds``: the same in every case of the replicate). Each seed and
the feeder's name give one random order of the feeder's (sorted) customers per purpose
(:func:`customer_order`): heat-pump adopters, the demand-managed ones among them, EV hosts, their
charger levels, managed-charging enrolment, Level-1 legs and sessions, PV hosts and storage hosts
(three-phase customers), rooftop PV hosts and home-battery hosts (residential customers that are not
three-phase: :func:`place_rooftop`).
A case takes its hosts from the head of the order, so within a replicate a higher share is a superset
of a lower one (more EVs add hosts, never reshuffle them; a customer keeps its EV session, charger
level, leg, PV and battery in every case that gives it one) and two cases differ only where their
inputs differ. An instance's bytes depend only on its inputs, in any process and with any
``PYTHONHASHSEED``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import ev_charging
import pv_generation
import storage_dispatch
from common import config, doe, dss, intake, profiles, smartds
from common.io import atomic_path, dumps_json_lines, read_csv, read_parquet, write_text
from common.paths import INSTANCE_FILES, Workspace

STEPS = config.INTERVALS_PER_DAY
DT_H = config.INTERVAL_H
SHARED_LOADSHAPES = "LoadShapes_daily.dss"
SHARED_PV = "pv_pu.csv"
#: lines of the feeder with no rating of their own (``common.dss.unrated_lines``), found by the filter
SHARED_UNRATED = "unrated_lines.txt"
#: load properties an instance sets itself (the rest of each base load is kept as written)
_REPLACED_LOAD_PROPS = {"yearly", "daily", "duty", "kvar", "pf", "kva", "growth"}
#: base files an instance never redirects to (their content is replaced by the instance's own)
_REPLACED_REDIRECTS = {"loadshapes.dss", "loads.dss", "pvsystems.dss", "pvshapes.dss", "storage.dss"}




#: what an instance does on each kind of feeder: SMART-DS (the phase 1b copy, customers matched to EULP
#: buildings) or generic (any OpenDSS feeder, its own loads kept)
KIND_RULES = {
    "smartds": {"applies_variants": True, "rewrites_loads": True, "notes": ()},
    "generic": {"applies_variants": False, "rewrites_loads": False,
                "notes": ("not a SMART-DS feeder: no EULP match, so the heat-pump shares are not applied (every "
                          "customer on baseline equipment); each load keeps its own daily or yearly shape, and a "
                          "load with no shape follows common.config.GENERIC_FEEDER",)},
}


class InstanceError(ValueError):
    """An instance that cannot be built; the message names the file and the field."""


# ------------------------------------------------------------------------------------------- helpers
def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def largest_remainder(shares: dict[str, float], n: int) -> dict[str, int]:
    """Integer counts summing to ``n`` in proportion to ``shares`` (largest-remainder method);
    every positive share gets at least one when ``n`` allows it."""
    names = list(shares)
    raw = np.array([max(0.0, float(shares[k])) for k in names])
    if raw.sum() <= 0 or n <= 0:
        return {k: 0 for k in names}
    quotas = raw / raw.sum() * n
    counts = np.floor(quotas).astype(int)
    order = sorted(range(len(names)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: n - counts.sum()]:
        counts[i] += 1
    positive = [i for i in range(len(names)) if raw[i] > 0]
    if n >= len(positive):
        for i in positive:
            if counts[i] == 0:
                donor = max(range(len(names)), key=lambda j: (counts[j], -j))
                counts[donor] -= 1
                counts[i] += 1
    return {k: int(c) for k, c in zip(names, counts)}


def _fmt(x: float) -> str:
    return f"{float(x):.6g}"


def _shape_values(values: np.ndarray) -> str:
    values = np.asarray(values, dtype=float).tolist()
    return "(" + " ".join(["%.6g"] * len(values)) % tuple(values) + ")"


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


#: sub-stream of each per-customer draw, after the seed and the feeder (one stream per purpose)
_STREAMS = {"order": 0, "rank": 1, "level": 2, "leg": 3, "session_L1": 4, "session_L2": 5, "pv_res": 6,
            "storage_res": 7}


def customer_rng(seed: int, feeder: str, stream: str) -> np.random.Generator:
    """The generator of one purpose's draw on one feeder: numpy's SeedSequence of the case's seed, the
    feeder's name (as SHA-256 words, never Python's salted ``hash()``) and the sub-stream."""
    words = np.frombuffer(hashlib.sha256(feeder.encode("utf-8")).digest()[:8], dtype="<u4")
    return np.random.default_rng([int(seed), *(int(w) for w in words), _STREAMS[stream]])


def customer_order(seed: int, feeder: str, population: list[str], stream: str = "order") -> list[str]:
    """A seeded random order of a population (sorted first, so the order depends only on its members):
    the order a case takes hosts from."""
    population = sorted(population)
    return [population[i] for i in customer_rng(seed, feeder, stream).permutation(len(population))]


def head_of(order: list[str], k: int, excluded: set[str] = frozenset()) -> list[str]:
    """The first ``k`` names of ``order`` not in ``excluded``, sorted (nested: a larger ``k`` gives a
    superset)."""
    if k <= 0:
        return []
    chosen = [name for name in order if name not in excluded][:k]
    return sorted(chosen)


# ------------------------------------------------------------------------------------------- base master
@dataclass
class BaseMaster:
    """What an instance keeps of a feeder's Master.dss."""

    circuit: str                 # the "New Circuit..." command
    redirects: list[Path]        # base files to redirect to (absolute)
    settings: list[str]          # Set Voltagebases, set maxcontroliter ...
    head_element: str            # feeder-head element of the monitors
    head_sign: float             # +1 for a line's terminal 1, -1 for the source (injection)
    solver: dict[str, int] = field(default_factory=dict)  # the master's own Set maxiterations/maxcontroliter

    def solver_command(self) -> str:
        """``Set maxiterations=... maxcontroliter=...``: the larger of config.SOLVER and the feeder's own."""
        values = {k: max(int(v), int(self.solver.get(k, 0))) for k, v in sorted(config.SOLVER.items())}
        return "Set " + " ".join(f"{k}={v}" for k, v in values.items())


def parse_base_master(master: Path) -> BaseMaster:
    folder = master.parent
    circuit, redirects, settings, head, solver = None, [], [], None, {}
    aliases = {"maxiterations": "maxiterations", "maxiter": "maxiterations", "maxcontroliter": "maxcontroliter"}
    for _, command in dss._logical_commands(master.read_text(encoding="utf-8", errors="replace")):
        word = command.split(None, 1)[0].lower()
        rest = command.split(None, 1)[1] if " " in command else ""
        if word == "set":
            for key, value in dss.tokenize(command)[1:]:
                if key and key.lower() in aliases:
                    try:
                        solver[aliases[key.lower()]] = int(float(value))
                    except ValueError:
                        raise InstanceError(f"{master}: Set {key}={value} is not a number") from None
        if word == "new" and dss.circuit_name_of(command) is not None:
            circuit = command
        elif word == "redirect":
            target = rest.strip().strip("\"'[]")
            if Path(target).name.lower() not in _REPLACED_REDIRECTS:
                redirects.append((folder / target.replace("\\", "/")).resolve())
        elif word == "set" and rest.lower().replace(" ", "").startswith(("voltagebases", "maxcontroliter",
                                                                         "defaultbasefrequency")):
            settings.append(command)
        elif word == "new" and rest.lower().startswith("monitor.") and head is None:
            for key, value in dss.tokenize(command)[2:]:
                if key == "element":
                    head = value
    if circuit is None:
        raise InstanceError(f"{master}: no 'New Circuit' command")
    if head is None:
        return BaseMaster(circuit, redirects, settings, "Vsource.source", -1.0, solver)
    return BaseMaster(circuit, redirects, settings, head, 1.0, solver)


# ------------------------------------------------------------------------------------------- context
@dataclass
class FeederContext:
    """Everything the cases of one feeder and season share."""

    state: str
    season: str
    feeder: str
    date: str
    day_of_year: int
    base: BaseMaster
    customers: pd.DataFrame          # sorted by customer
    loads: dict[str, list[dss.DssObject]]  # customer -> its load definitions
    shapes: list[str]
    p_pu: dict[str, np.ndarray]      # variant -> (n_shapes, 96)
    pv_pu: np.ndarray
    ev_stats: dict
    storage: dict[str, float]
    shared_dir: Path
    shared_digest: str = ""
    shape_index: dict[str, int] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # customer -> its row as a dict
    load_prefix: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # customer -> (definition, kW)
    #: "smartds" (the phase 1b copy, customers rewritten per case) or "generic" (any OpenDSS feeder,
    #: its own loads kept; heat-pump variants not applied)
    kind: str = "smartds"
    pv_source: str = "pvlib clear sky (Ineichen) + PVWatts"
    base_master: Path | None = None          # the feeder's master: phase 1b's copy, or the stripped generic copy
    generic_edits: list[tuple[str, str]] = field(default_factory=list)  # generic: (load, the daily shape it takes)
    generic_shapes: dict[str, np.ndarray] = field(default_factory=dict)  # generic: shapes the instance defines
    extra_notes: list[str] = field(default_factory=list)  # how the design day and shapes were chosen
    generic_files: list[Path] = field(default_factory=list)  # generic: every file of the feeder's copy
    monitors: tuple[str, str] = ("m1", "m2")  # the instance's head monitors (renamed where the feeder has its own)
    unrated_lines: list[str] = field(default_factory=list)  # lines without a rating of their own
    #: the design day's rank in design_days.csv (``--days``: 1 the design day, 2.. the further days)
    rank: int = 1

    @property
    def instance_root(self) -> Path:
        return self.shared_dir.parents[1]

    # what differs between the two kinds of feeder, in one place (KIND_RULES)
    @property
    def applies_variants(self) -> bool:
        """Heat-pump variants need EULP-matched customers (SMART-DS): any other feeder stays on baseline."""
        return KIND_RULES[self.kind]["applies_variants"]

    @property
    def rewrites_loads(self) -> bool:
        """An instance writes its own Loads.dss (SMART-DS customers on variant shapes), or keeps the feeder's."""
        return KIND_RULES[self.kind]["rewrites_loads"]

    @property
    def base_dir(self) -> Path:
        """The folder of the feeder's base files that instances redirect to."""
        return self.base_master.parent

    def notes(self) -> list[str]:
        return list(KIND_RULES[self.kind]["notes"]) + list(self.extra_notes)

    def master_head(self) -> list[tuple[str, Path | None]]:
        """Master.dss lines before the shared shapes: (line, path to make relative as {rel}, or None)."""
        if self.kind == "generic":  # the feeder's own (stripped) master defines circuit, loads and voltage bases
            return [("Redirect {rel}", self.base_master)]
        return [("Clear", None), (self.base.circuit, None)] + [("Redirect {rel}", p) for p in self.base.redirects]

    def master_tail(self) -> list[str]:
        """Master.dss lines after the monitors (a generic master sets its own voltage bases), then the
        solver limits (``BaseMaster.solver_command``)."""
        settings = [] if self.kind == "generic" else self.base.settings + ["Calcvoltagebases"]
        return settings + [self.base.solver_command()]

    def shape_name(self, shape: str, variant: str) -> str:
        return f"{shape}__{variant}"


#: intervals of a whole (non-leap) year of 15-min values: a profile with fewer gives no annual energy
YEAR_STEPS = 365 * STEPS


def customer_annual_kwh(customers: pd.DataFrame, stats: pd.DataFrame) -> np.ndarray:
    """Each customer's annual energy [kWh/yr] from its own SMART-DS yearly profile: the profile's annual
    energy over its annual peak (phase 1b's monthly statistics: sum of mean kW x points x 15 min, over the
    highest monthly peak) times the customer's annual peak kW (Loads.dss). NaN where the profile covers
    less than a whole year (no annual energy to size from)."""
    stats = stats.copy()
    stats["kwh"] = stats["mean_kw"].astype(float) * stats["n_points"].astype(float) * DT_H
    by_shape = stats.groupby(["subregion", "shape"]).agg(kwh=("kwh", "sum"), peak_kw=("peak_kw", "max"),
                                                         points=("n_points", "sum"),
                                                         profile_points=("profile_points", "max"))
    whole = (by_shape["points"] >= YEAR_STEPS) & (by_shape["points"] == by_shape["profile_points"]) & \
        (by_shape["peak_kw"] > 0)
    hours_at_peak = (by_shape["kwh"] / by_shape["peak_kw"]).where(whole)  # annual kWh per kW of annual peak
    keys = pd.MultiIndex.from_arrays([customers["subregion"], customers["shape"]])
    return customers["peak_kw"].to_numpy(dtype=float) * hours_at_peak.reindex(keys).to_numpy(dtype=float)


def load_context(ws: Workspace, state: str, season: str, feeder: str, ev_stats_path: Path | None = None,
                 rank: int = 1) -> FeederContext:
    """Read the feeder's shared inputs (phases 1b, 2, 4, 5) on its design day of ``rank`` (design_days.csv,
    ``--days``; 1 the design day) and check every daily file exists."""
    feeder_dir = ws.feeder_dir(state, feeder)
    if not (feeder_dir / "Master.dss").is_file():
        raise InstanceError(f"unknown feeder {feeder!r}: {feeder_dir}/Master.dss not found (phase 1b copy_circuits.py)")
    customers = profiles.read_customers(ws, state)
    customers = customers[customers["feeder"] == feeder].sort_values("customer").reset_index(drop=True)
    if customers.empty:
        raise InstanceError(f"feeder {feeder!r} has no customer in {ws.customers(state)}")
    stats = read_parquet(ws.profile_stats(state), "1b_smartds_eulp_match/review_parquet_matches.py",
                         required=("subregion", "shape", "mean_kw", "peak_kw", "n_points", "profile_points"))
    customers["annual_kwh"] = customer_annual_kwh(customers, stats)
    days = read_csv(ws.design_days(state), profiles.PRODUCERS["design_days"], required=profiles.DESIGN_DAY_COLUMNS)
    ranks = pd.to_numeric(days["rank"], errors="coerce") if "rank" in days.columns else pd.Series(1, days.index)
    day = days[(days["feeder"] == feeder) & (days["season"] == season) & (ranks == rank)]
    if day.empty:
        what = "" if rank == 1 else f" of rank {rank}"
        raise InstanceError(f"{ws.design_days(state)}: no {season} design day{what} for {feeder}"
                            + ("" if rank == 1 else f" (run 2_profiles_heat_pumps/find_max_day_curve.py --days {rank} "
                                                    "or more, then phases 3-5)"))
    shapes = sorted(customers["shape"].unique())
    p_pu = {}
    for variant in config.VARIANTS:
        table_path = ws.daily_profile_table(state, variant, season, rank)
        table = read_parquet(table_path, profiles.PRODUCERS[variant], required=("feeder", "shape", "step", "p_pu"),
                             filters=[("feeder", "==", feeder)])
        matrix = np.zeros((len(shapes), STEPS))
        for i, shape in enumerate(shapes):
            part = table[table["shape"] == shape].sort_values("step")
            csv = ws.daily_profile(state, variant, feeder, season, shape, rank)
            if len(part) != STEPS or not csv.is_file():
                raise InstanceError(f"missing daily profile {csv} for shape {shape} ({variant}) of {feeder}")
            matrix[i] = part["p_pu"].to_numpy()
        if not np.isfinite(matrix).all() or (matrix < 0).any():
            raise InstanceError(f"{table_path}: p_pu of {feeder} has NaN, inf or negative values: run "
                                f"{profiles.PRODUCERS[variant]} again")
        p_pu[variant] = matrix
    loads: dict[str, list[dss.DssObject]] = {}
    by_name = {obj.name: obj for obj in dss.read_dss_objects(feeder_dir / "Loads.dss", ("load",))}
    for customer, names in zip(customers["customer"], customers["loads"]):
        try:
            loads[customer] = [by_name[n] for n in names.split(";")]
        except KeyError as exc:
            raise InstanceError(f"{feeder_dir}/Loads.dss: load {exc.args[0]} of customer {customer} not found") from None
    date = str(day["date"].iloc[0])
    try:
        day_of_year = int(day["day_of_year"].iloc[0])
        pd.Timestamp(date)
    except (TypeError, ValueError):
        raise InstanceError(f"{ws.design_days(state)}: {season} design day of {feeder} is {date!r}, day "
                            f"{day['day_of_year'].iloc[0]!r}: not a date and a day number (run "
                            "2_profiles_heat_pumps/find_max_day_curve.py again)") from None
    solar = None
    if config.PV["use_smartds_solar"]:
        try:
            solar = pv_generation.smartds_solar_shape(feeder_dir, day_of_year)
        except (OSError, ValueError) as exc:
            raise InstanceError(str(exc)) from None
    ctx = FeederContext(
        state=state, season=season, feeder=feeder, date=date, day_of_year=day_of_year,
        base=parse_base_master(feeder_dir / "Master.dss"), base_master=feeder_dir / "Master.dss",
        customers=customers, loads=loads, shapes=shapes,
        p_pu=p_pu, pv_pu=solar[0] if solar else pv_generation.pv_shape_pu(state, date, season),
        pv_source=f"SMART-DS solar shape {solar[1]}" if solar else "pvlib clear sky (Ineichen) + PVWatts",
        ev_stats=ev_charging.load_session_stats(ev_stats_path or ws.ev_session_stats),
        storage={k: float(v) for k, v in config.STORAGE.items()},
        shared_dir=ws.season_shared(state, season, feeder, rank), rank=rank,
        shape_index={s: i for i, s in enumerate(shapes)},
        records={r["customer"]: r for r in customers.to_dict("records")},
        load_prefix={c: [(f"New Load.{o.name} " + " ".join(f"{k}={v}" for k, v in o.props.items()
                                                             if k not in _REPLACED_LOAD_PROPS), o.get("kw"))
                         for o in objs] for c, objs in loads.items()})
    return ctx


def generic_shape(season: str) -> str:
    return f"generic_daily_{season}"


def generic_daily_pu(season: str) -> np.ndarray:
    """The configured 24 hourly values held over each hour's four 15-min intervals."""
    return np.repeat(np.asarray(config.GENERIC_FEEDER["daily_shape_pu"][season], dtype=float), 4)


def shape_15min(mult: np.ndarray, interval_h: float) -> np.ndarray:
    """A load shape's multipliers as 15-min values: held over each interval when the shape is coarser
    (hourly -> 4 values each), averaged over each 15 min when it is finer (5-min -> means of 3)."""
    mult = np.asarray(mult, dtype=float)
    ratio = float(interval_h) / DT_H
    if ratio >= 1:
        return np.repeat(mult, int(round(ratio)))
    per = int(round(1.0 / ratio))
    n = len(mult) // per * per
    return mult[:n].reshape(-1, per).mean(axis=1)


def _read_loads(engine: Any) -> tuple[list[dict[str, Any]], dict[str, tuple[np.ndarray, str]]]:
    """Every load of the compiled feeder (name, bus, nodes, phases, kV, kW, kvar and its own daily or
    yearly shape), and each shape's 15-min multipliers with its kind (``daily``/``yearly``)."""
    loads, shapes = [], {}
    if not engine.Loads.First():
        return loads, shapes
    while True:
        name = engine.Loads.Name()
        bus1 = engine.CktElement.BusNames()[0]
        phases = int(engine.Loads.Phases())
        daily, yearly = engine.Loads.Daily(), engine.Loads.Yearly()
        # a load with only daily= reports it as its yearly shape too (OpenDSS falls back to it)
        shape, kind = (daily, "daily") if daily else ((yearly, "yearly") if yearly else ("", ""))
        loads.append({"load": name, "bus": dss.bus_name(bus1),
                      "nodes": tuple(n for n in dss.bus_nodes(bus1) if n > 0) or tuple(range(1, phases + 1)),
                      "phases": phases, "kv": float(engine.Loads.kV()), "kw": float(engine.Loads.kW()),
                      "kvar": float(engine.Loads.kvar()), "own_shape": shape, "shape_kind": kind})
        if shape and shape not in shapes:
            engine.LoadShape.Name(shape)
            shapes[shape] = (shape_15min(engine.LoadShape.PMult(), engine.LoadShape.HrInterval() or 1.0), kind)
            engine.Loads.Name(name)
        if not engine.Loads.Next():
            break
    return loads, shapes


def generic_design_day(loads: list[dict[str, Any]], shapes: dict[str, tuple[np.ndarray, str]], season: str,
                       feeder: str) -> tuple[str, int, str]:
    """(date, day of year, how it was chosen) of a generic feeder's design day: with yearly shapes of a
    whole year, the day of the highest 15-min feeder load (kW x multiplier summed over every load, the
    others on their daily or the configured shape) in the season's months; else the configured day."""
    year = config.GENERIC_FEEDER["shape_year"]
    index = pd.date_range(f"{year}-01-01", f"{year + 1}-01-01", freq="15min", inclusive="left")
    full = [s for s, (values, kind) in shapes.items() if kind == "yearly" and len(values) >= len(index)]
    if not full:
        date = config.GENERIC_FEEDER["design_days"][season]
        return date, int(pd.Timestamp(date).day_of_year) - 1, "common.config.GENERIC_FEEDER design_days"
    days = len(index) // STEPS
    curve = np.zeros(len(index))
    for load in loads:
        values, kind = shapes.get(load["own_shape"], (generic_daily_pu(season), "daily"))
        if kind == "yearly":
            curve += load["kw"] * np.resize(values, len(index))  # a shorter yearly shape repeats
        else:
            curve += load["kw"] * np.tile(np.resize(values[:STEPS], STEPS), days)
    day = profiles.design_day(curve, index, config.SEASON_MONTHS[season])
    return day["date"], day["day_of_year"], (f"the day of {feeder}'s highest 15-min load from its own yearly shapes "
                                             f"({len(full)} of a whole year; calendar {year})")


def generic_annual_kwh(members: list[dict[str, Any]], shapes: dict[str, tuple[np.ndarray, str]]) -> float:
    """A generic feeder's customer's annual energy [kWh/yr]: each of its loads' kW x the sum of its yearly
    shape's first year of 15-min values x 15 min; NaN unless every load has a yearly shape of a whole year
    (a daily shape says nothing of the year)."""
    total = 0.0
    for member in members:
        values, kind = shapes.get(member["own_shape"], (None, ""))
        if kind != "yearly" or values is None or len(values) < YEAR_STEPS:
            return math.nan
        total += float(member["kw"]) * float(np.sum(values[:YEAR_STEPS])) * DT_H
    return total


def cut_day(values: np.ndarray, kind: str, day_of_year: int) -> np.ndarray:
    """The 96 values of a shape on the design day: a daily shape's day, a yearly shape's day
    ``day_of_year`` (a shape shorter than a year repeats, as OpenDSS repeats it)."""
    values = np.asarray(values, dtype=float)
    if kind == "daily":
        return np.resize(values[:STEPS], STEPS)
    start = (day_of_year * STEPS) % len(values)
    return np.resize(np.roll(values, -start), STEPS)


def load_generic_context(ws: Workspace, state: str, season: str, taken: intake.Intake,
                         ev_stats_path: Path | None = None) -> FeederContext:
    """Context of any OpenDSS feeder (not SMART-DS): its own loads make the customers.

    ``taken``: the feeder as the intake took it into ``<data>/6_instantiate_circuits/<STATE>/_feeders/<id>/``
    (``common.intake.take_in``: every file the engine reads, verified to compile to the same circuit,
    the master stripped of solve, export, plot and show lines); every instance redirects to it. Each load
    keeps its own shape: a ``daily=`` shape as it is, a ``yearly=`` shape cut on the design day (the
    day of the feeder's highest load from its yearly shapes, :func:`generic_design_day`), and only a
    load with no shape takes the configured day (``GENERIC_FEEDER``). Loads become customers by the
    rule of phase 1b (``common.smartds.group_loads``: SMART-DS half loads ``x_1``/``x_2`` and two-phase
    loads are one split-phase customer), so a Level-2 charger spans both legs on either route.
    """
    master, name = taken.source, taken.feeder
    engine = dss.engine()
    try:
        dss.compile_master(taken.master, strip=False)
    except dss.DSSError as exc:
        raise InstanceError(f"{taken.master}: the feeder's copy does not compile: {exc.dss_message} (take it in "
                            "again)") from None
    taken_monitors = {n.lower() for n in engine.Monitors.AllNames() if n and n.lower() != "none"}
    monitors = ("m1", "m2") if not taken_monitors & {"m1", "m2"} else ("xlrm_m1", "xlrm_m2")
    loads, own = _read_loads(engine)
    if not loads:
        raise InstanceError(f"{master}: defines no load")
    date, day_of_year, how = generic_design_day(loads, own, season, name)
    edits, profiles_of, notes = [], {}, [f"design day {date}: {how}"]
    short = sorted(s for s, (values, kind) in own.items() if kind == "yearly" and len(values) < 365 * STEPS)
    if short:
        notes.append(f"{len(short)} yearly shapes are shorter than a year and repeat (first: {short[0]}, "
                     f"{len(own[short[0]][0]) * DT_H:g} h)")
    for load in loads:
        shape, kind = load["own_shape"], load["shape_kind"]
        if kind == "daily":
            key = shape
        elif kind == "yearly":
            key = f"{shape}__{season}_day"
            edits.append((load["load"], key))
        else:
            key = generic_shape(season)
            edits.append((load["load"], key))
        load["shape"] = key
        if key not in profiles_of:
            profiles_of[key] = (generic_daily_pu(season) if kind == "" else cut_day(own[shape][0], kind, day_of_year))
    limit = config.GENERIC_FEEDER["residential_max_kw"]
    rows = []
    customers = []
    for c in smartds.group_loads(loads):
        if len({m["shape"] for m in c["members"]}) == 1:
            customers.append(c)
        else:  # halves on different shapes stay two customers: each keeps its own day
            customers += [smartds.customer_record(m["load"], [m]) for m in c["members"]]
    for c in customers:
        rows.append({"feeder": name, **{k: c[k] for k in ("customer", "loads", "bus", "nodes", "kv", "peak_kw",
                                                        "peak_kvar", "three_phase", "service")},
                     "class": "res" if c["peak_kw"] <= limit else "com", "shape": c["members"][0]["shape"],
                     "annual_kwh": generic_annual_kwh(c["members"], own)})
    customers = pd.DataFrame(rows).sort_values("customer").reset_index(drop=True)
    shapes = sorted(customers["shape"].unique())
    matrix = np.array([profiles_of[s] for s in shapes])
    return FeederContext(
        state=state, season=season, feeder=name, date=date, day_of_year=day_of_year,
        base=parse_base_master(taken.master),
        customers=customers, loads={}, shapes=shapes, p_pu={v: matrix for v in config.VARIANTS},
        pv_pu=pv_generation.pv_shape_pu(state, date, season),
        ev_stats=ev_charging.load_session_stats(ev_stats_path or ws.ev_session_stats),
        storage={k: float(v) for k, v in config.STORAGE.items()}, shared_dir=ws.season_shared(state, season, name),
        shape_index={s: i for i, s in enumerate(shapes)}, records={r["customer"]: r for r in customers.to_dict("records")},
        kind="generic", base_master=taken.master, generic_edits=sorted(edits),
        generic_files=[taken.folder / f for f in taken.files] + sorted(taken.shared), monitors=monitors,
        generic_shapes={k: v for k, v in sorted(profiles_of.items()) if k not in own}, extra_notes=notes)


def shared_files(ctx: FeederContext, ws: Workspace) -> dict[str, str]:
    """Content of the shared files of a feeder and season."""
    if ctx.kind == "generic":
        lines = [f"! Daily shapes of {ctx.feeder}'s loads ({ctx.season}, design day {ctx.date}): a yearly shape cut on",
                 "! the design day, or common.config.GENERIC_FEEDER daily_shape_pu for a load with no shape. Written by",
                 "! 6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py; shared by every case."]
        lines += [f"New Loadshape.{key} npts={STEPS} interval={DT_H} mult={_shape_values(values)}"
                  for key, values in ctx.generic_shapes.items()]
        lines += [f"Edit Load.{load} daily={key}" for load, key in ctx.generic_edits]
        lines.append(f"New Loadshape.pv_{ctx.season} npts={STEPS} interval={DT_H} "
                     f"mult=(file={SHARED_PV}, column=1, header=yes)")
        pv = ["pv_pu"] + [f"{v:.6f}" for v in ctx.pv_pu]
        return {SHARED_LOADSHAPES: "\n".join(lines) + "\n", SHARED_PV: "\n".join(pv) + "\n"}
    lines = [f"! Daily load shapes of {ctx.feeder}, {ctx.season} design day {ctx.date}: one per SMART-DS shape and",
             "! heat-pump variant; p_pu and q_pu are per unit of the customer's annual peak kW (loads set kvar = kW).",
             "! Written by 6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py; shared by every case."]
    for shape in ctx.shapes:
        for variant in config.VARIANTS:
            rel = _rel(ws.daily_profile(ctx.state, variant, ctx.feeder, ctx.season, shape, ctx.rank), ctx.shared_dir)
            lines.append(f"New Loadshape.{ctx.shape_name(shape, variant)} npts={STEPS} interval={DT_H} "
                         f"mult=(file={rel}, column=1, header=yes) qmult=(file={rel}, column=2, header=yes)")
    lines.append(f"New Loadshape.pv_{ctx.season} npts={STEPS} interval={DT_H} "
                 f"mult=(file={SHARED_PV}, column=1, header=yes)")
    pv = ["pv_pu"] + [f"{v:.6f}" for v in ctx.pv_pu]
    return {SHARED_LOADSHAPES: "\n".join(lines) + "\n", SHARED_PV: "\n".join(pv) + "\n"}


def check_daily_profile(data: bytes, path: Path, expected_p_pu: np.ndarray | None) -> None:
    """Check a daily profile file as OpenDSS will read it (``mult=(file=..., column=1, header=yes)``):
    a ``p_pu,q_pu`` header, exactly 96 rows, finite numbers, ``p_pu`` non-negative (a building's
    consumption) and equal, to the file's 6 decimals, to the profile table of the same phase that the
    EV and storage schedules were planned on. Raises InstanceError naming the file and the row."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if not lines or [c.strip() for c in lines[0].split(",")[:2]] != ["p_pu", "q_pu"]:
        raise InstanceError(f"daily profile {path}: header is not p_pu,q_pu: write it again with its profile phase")
    rows = [line for line in lines[1:] if line.strip()]
    if len(rows) != STEPS:
        raise InstanceError(f"daily profile {path}: {len(rows)} rows, expected {STEPS} (one per 15 min): write it "
                            "again with its profile phase")
    values = np.empty((STEPS, 2))
    for k, line in enumerate(rows):
        parts = line.split(",")
        try:
            values[k] = (float(parts[0]), float(parts[1]))
        except (ValueError, IndexError):
            raise InstanceError(f"daily profile {path}: row {k + 2} ({line[:40]!r}) is not two numbers") from None
    bad = ~np.isfinite(values).all(axis=1) | (values[:, 0] < 0)
    if bad.any():
        k = int(np.argmax(bad))
        raise InstanceError(f"daily profile {path}: row {k + 2} has p_pu={values[k, 0]:g}, q_pu={values[k, 1]:g} "
                            "(NaN, inf or negative kW): write it again with its profile phase")
    if expected_p_pu is not None and not np.allclose(values[:, 0], expected_p_pu, rtol=0.0,
                                                     atol=1e-6 + 1e-6 * np.abs(expected_p_pu).max()):
        k = int(np.argmax(np.abs(values[:, 0] - expected_p_pu)))
        raise InstanceError(f"daily profile {path}: row {k + 2} p_pu={values[k, 0]:g} differs from the profile table "
                            f"({expected_p_pu[k]:g}): the file and the table come from different runs; run the "
                            "profile phase again")


def check_instance_profiles(instance_dir: Path) -> int:
    """Check every daily profile file an instance's shapes read (``mult=(file=...)`` of the shared
    ``LoadShapes_daily.dss`` it redirects to) as :func:`check_daily_profile` does, without the
    profile table (a single run re-solved by hand has no feeder context); returns how many were
    checked. InstanceError names the file and the row."""
    instance_dir = Path(instance_dir)
    checked = 0
    for _, command in dss._logical_commands((instance_dir / INSTANCE_FILES["master"]).read_text(encoding="utf-8")):
        parts = command.split(None, 1)
        if parts[0].lower() != "redirect" or len(parts) < 2 or Path(parts[1].strip()).name != SHARED_LOADSHAPES:
            continue
        shapes = (instance_dir / parts[1].strip().strip("\"'[]")).resolve()
        for obj in dss.read_dss_objects(shapes, ("loadshape",)):
            ref = dss.file_reference(obj.get("mult"))
            if not ref or not ref.lower().endswith(".csv") or ref == SHARED_PV:
                continue
            path = (shapes.parent / ref).resolve()
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InstanceError(f"daily profile {path}: cannot be read ({exc.strerror}): run its profile phase "
                                    "again") from None
            check_daily_profile(data, path, None)
            checked += 1
    return checked


def prepare_shared(ctx: FeederContext, ws: Workspace) -> None:
    """Write the shared files (when their content changed), check every daily profile the instances
    reference (:func:`check_daily_profile`) and compute the shared digest."""
    digest = hashlib.sha256()
    for name, text in sorted(shared_files(ctx, ws).items()):
        path = ctx.shared_dir / name
        if not path.is_file() or path.read_text() != text:
            write_text(path, text)
        digest.update(text.encode())
    for path in sorted(ctx.base.redirects):
        digest.update(path.read_bytes())
    if ctx.kind == "generic":
        for path in ctx.generic_files:  # the copy (with its subfolders) and the files it references in place
            digest.update(path.read_bytes())
    else:
        for variant in config.VARIANTS:
            for i, shape in enumerate(ctx.shapes):
                path = ws.daily_profile(ctx.state, variant, ctx.feeder, ctx.season, shape, ctx.rank)
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise InstanceError(f"daily profile {path}: cannot be read ({exc.strerror}): run "
                                        f"{profiles.PRODUCERS[variant]} again") from None
                check_daily_profile(data, path, ctx.p_pu[variant][i])
                digest.update(data)
    ctx.shared_digest = digest.hexdigest()
    record = ws.shared_digest(ctx.state, ctx.season, ctx.feeder, ctx.rank)  # phase 7 compares each run's with it
    if not record.is_file() or record.read_text() != ctx.shared_digest + "\n":
        write_text(record, ctx.shared_digest + "\n")


def record_unrated_lines(ctx: FeederContext, lines: list[str]) -> None:
    """Keep the feeder's unrated lines (found on its compiled circuit by the filter) for its instances."""
    text = "".join(f"{line}\n" for line in sorted(lines))
    path = ctx.shared_dir / SHARED_UNRATED
    if not path.is_file() or path.read_text() != text:
        write_text(path, text)
    ctx.unrated_lines = sorted(lines)


def load_unrated_lines(ctx: FeederContext) -> None:
    path = ctx.shared_dir / SHARED_UNRATED
    if not path.is_file():
        raise InstanceError(f"{path} not found: run the circuit filter (instantiate_circuits_and_runs_APPLYFILTER.py) "
                            "for this feeder and season again")
    ctx.unrated_lines = [line for line in path.read_text().splitlines() if line]


def attach_shared(ctx: FeederContext, ws: Workspace) -> None:
    """In a worker: check the shared files the driver wrote and compute the same digest."""
    for name, text in sorted(shared_files(ctx, ws).items()):
        path = ctx.shared_dir / name
        if not path.is_file() or path.read_text() != text:
            raise InstanceError(f"shared file {path} is missing or stale: instantiate the feeder again")
    prepare_shared(ctx, ws)
    load_unrated_lines(ctx)


# ------------------------------------------------------------------------------------------- instance
@dataclass
class Instance:
    files: dict[str, str]
    assignments: dict[str, Any]


def service_nodes(customer: dict[str, Any]) -> list[str]:
    """Node names (``bus.n``) of a customer's service point."""
    return [f"{customer['bus']}.{n}" for n in str(customer["nodes"]).split(".") if n]


def _connection(customer: dict[str, Any], level: str | None = None, leg: int = 0) -> tuple[str, int, float]:
    """(bus1, phases, kV) of a device at a customer: a split-phase host gets a Level-2 charger
    across both legs (240 V) and a Level-1 one on one leg (120 V: ``leg`` 0 or 1, drawn per EV from the
    case's seed); three-phase hosts all three."""
    nodes = [int(n) for n in str(customer["nodes"]).split(".") if n]
    bus = customer["bus"]
    if customer["three_phase"]:
        return f"{bus}.1.2.3", 3, float(customer["kv"])
    if customer["service"] == "split_phase" and len(nodes) >= 2:
        if level == "L1":
            return f"{bus}.{nodes[leg % 2]}", 1, config.EV["level1_kv"]
        return f"{bus}.{nodes[0]}.{nodes[1]}", 1, config.EV["level2_kv"]
    return f"{bus}.{'.'.join(map(str, nodes))}", max(1, len(nodes)), float(customer["kv"])


# ------------------------------------------------------------------------------------------- pure steps
@dataclass
class Plan:
    """What one case puts on a feeder: every device, its size and its day (no files)."""

    variant_of: np.ndarray               # customer index -> variant
    counts: dict[str, int]               # customers per variant
    base_kw: np.ndarray                  # (96,) customers' load [kW]
    ev_hosts: list[str]
    levels: np.ndarray                   # "L1" / "L2" per EV
    legs: np.ndarray                     # the leg (0/1) of a Level-1 charger on a split-phase service
    controlled: np.ndarray               # managed charging per EV
    sessions: Any                        # ev_charging.Sessions
    ev_power: np.ndarray                 # (n_ev, 96) charging schedule [kW]
    pv_kw: dict[str, float]              # host -> Pmpp [kW]
    pv_total: np.ndarray                 # (96,) [kW]
    sto_kw: dict[str, float]             # host -> kW rating
    n_sto_wanted: int
    n_three_phase: int
    fleet: Any                           # storage_dispatch.Fleet
    dispatch: Any                        # storage_dispatch.Dispatch
    lp_peak_kw: float
    rooftop: Any = None                  # Rooftop: residential rooftop PV and home batteries


@dataclass
class Rooftop:
    """Residential rooftop PV and home batteries of a case (hosts sorted; no files)."""

    pv_kw: dict[str, float]              # host -> array [kW DC]
    pv_annual_kwh: dict[str, float]      # host -> the home's annual energy it is sized from [kWh/yr]
    n_pv_wanted: int                     # hosts the share asks for (the head of the order)
    pv_unsized: list[str]                # hosts without a whole year of profile: no array (recorded)
    sto_hosts: list[str]
    unit: Any                            # storage_dispatch.Fleet of one home battery
    dispatch: Any                        # storage_dispatch.HomeDispatch, rows in sto_hosts order
    pv_total: np.ndarray                 # (96,) rooftop PV output [kW]
    sto_total: np.ndarray                # (96,) home batteries' power [kW], + discharge


def assign_variants(customers: list[str], shares: dict[str, float], seed: int, feeder: str
                    ) -> tuple[np.ndarray, dict[str, int]]:
    """Heat-pump variant of each customer (in ``customers``' order): largest-remainder counts of
    ``shares``; the adopters (demand-managed or uncontrolled) are the head of the feeder's adoption order
    and the demand-managed ones the adopters first in a second order (nested: more adoption adds
    adopters, a higher demand-managed fraction turns more of the same adopters into demand-managed).

    The counts come in two steps, adopters first (``dm + un`` against ``baseline``), then the demand-managed
    among them: the number of adopters depends on the adoption share alone, so two cases of one scenario
    under different demand-management levers (the cross layout) have the same adopters."""
    adopt = largest_remainder({"baseline": shares["baseline"], "adopt": shares["dm"] + shares["un"]},
                              len(customers))["adopt"]
    split = largest_remainder({"dm": shares["dm"], "un": shares["un"]}, adopt)
    counts = {"baseline": len(customers) - adopt, "dm": split["dm"], "un": split["un"]}
    adopting = set(head_of(customer_order(seed, feeder, customers), counts["dm"] + counts["un"]))
    managed = set(head_of([c for c in customer_order(seed, feeder, customers, "rank") if c in adopting],
                          counts["dm"]))
    variant_of = np.array(["dm" if c in managed else "un" if c in adopting else "baseline" for c in customers],
                          dtype=object)
    return variant_of, counts


def customer_load_kw(ctx: FeederContext, variant_of: np.ndarray) -> np.ndarray:
    """The customers' design-day load [kW]: annual peak x the variant's per-unit profile, summed."""
    shape_idx = ctx.customers["shape"].map(ctx.shape_index).to_numpy()
    peak_kw = ctx.customers["peak_kw"].to_numpy(dtype=float)
    base_kw = np.zeros(STEPS)
    for variant in config.VARIANTS:
        mask = variant_of == variant
        if mask.any():
            weights = np.bincount(shape_idx[mask], weights=peak_kw[mask], minlength=len(ctx.shapes))
            base_kw += weights @ ctx.p_pu[variant]
    return base_kw


def ev_pool(ctx: FeederContext) -> list[str]:
    """The customers that may host an EV (residential, and commercial ones with ``EV["commercial_hosts"]``),
    sorted."""
    cust = ctx.customers
    return sorted(cust["customer"][(cust["class"] == "res") | (config.EV["commercial_hosts"] & (cust["class"] == "com"))])


def ev_hosts(ctx: FeederContext, case: dict[str, Any], pool: list[str] | None = None) -> list[str]:
    """The EV hosts of a case: the head of the EV pool's order, ``ev_perc`` of the pool long."""
    pool = ev_pool(ctx) if pool is None else pool
    return head_of(customer_order(case["ev_seed"], ctx.feeder, pool), round_half_up(case["ev_perc"] * len(pool)))


def draw_evs(ctx: FeederContext, case: dict[str, Any]):
    """EV hosts (sorted), charger levels, Level-1 legs, managed-charging flags and sessions of a case,
    and the uncontrolled schedule of every EV (managed ones are rescheduled by :func:`plan_case`).

    Every draw is per customer of the EV pool and independent of the case's shares (common random
    numbers): hosts are the head of the pool's order; a host charges at Level 2 when its level draw is
    below ``ev_lvl2_perc``; the managed ones are the hosts first in the enrolment order; each customer has
    one Level-1 and one Level-2 session and one leg, and its EV takes the session of its level."""
    pool = ev_pool(ctx)
    at = {c: i for i, c in enumerate(pool)}
    hosts = ev_hosts(ctx, case, pool)
    idx = np.array([at[c] for c in hosts], dtype=int)
    level_draw = customer_rng(case["ev_seed"], ctx.feeder, "level").random(len(pool))
    levels = np.where(level_draw[idx] < case["ev_lvl2_perc"], "L2", "L1") if len(idx) else np.array([], dtype="<U2")
    hosting = set(hosts)
    enrolled = set(head_of([c for c in customer_order(case["ev_seed"], ctx.feeder, pool, "rank") if c in hosting],
                           round_half_up(case["ev_split"]["controlled"] * len(hosts))))
    controlled = np.array([c in enrolled for c in hosts], dtype=bool)
    legs = customer_rng(case["ev_seed"], ctx.feeder, "leg").integers(0, 2, size=len(pool))[idx]
    by_level = {level: ev_charging.draw_sessions(np.full(len(pool), level), ctx.ev_stats,
                                                 customer_rng(case["ev_session_seed"], ctx.feeder, f"session_{level}"))
                for level in ev_charging.LEVELS}
    sessions = ev_charging.pick_sessions(by_level, levels, idx)
    return hosts, levels, legs, controlled, sessions, ev_charging.uncontrolled_schedule(sessions)


def place_pv_and_storage(ctx: FeederContext, case: dict[str, Any]) -> tuple[dict[str, float], dict[str, float], int, int]:
    """PV hosts with their Pmpp and storage hosts with their kW (three-phase customers; disjoint sets when
    the case asks), the storage hosts wanted and the three-phase count.

    PV hosts are the head of the PV pool's order and storage hosts the head of the three-phase customers'
    storage order (skipping PV hosts when the sets are disjoint): nested in each share."""
    cust = ctx.customers
    peak_of = dict(zip(cust["customer"], cust["peak_kw"].astype(float)))
    three = sorted(cust["customer"][cust["three_phase"]].tolist())
    pv_hosts = head_of(customer_order(case["pv_seed"], ctx.feeder, three),
                       round_half_up(case["pv_perc_3ph"] * len(three)))
    taken = set(pv_hosts) if case["disjoint_sets"] else set()
    n_sto_wanted = round_half_up(case["storage_perc_3ph"] * len(three))
    sto_hosts = head_of(customer_order(case["storage_seed"], ctx.feeder, three), n_sto_wanted, taken)
    st = ctx.storage
    pv_kw = {c: max(config.PV["size_factor"] * peak_of[c], config.PV["min_kw"]) for c in pv_hosts}
    sto_kw = {c: max(st["size_factor"] * peak_of[c], st["min_kw"]) for c in sto_hosts}
    return pv_kw, sto_kw, n_sto_wanted, len(three)


def rooftop_pool(ctx: FeederContext) -> list[str]:
    """Customers that can host rooftop PV and home batteries: residential and not three-phase (the
    three-phase customers are the pool of the three-phase PV and storage), sorted."""
    cust = ctx.customers
    return sorted(cust["customer"][(cust["class"] == "res") & ~cust["three_phase"].astype(bool)].tolist())


def place_rooftop(ctx: FeederContext, case: dict[str, Any]) -> tuple[dict[str, float], dict[str, float], int,
                                                                        list[str], list[str]]:
    """Rooftop PV hosts with their arrays [kW DC] and annual energies, the hosts wanted, those without an
    annual energy (no array), and the home-battery hosts.

    PV hosts are the head of the pool's own order (the PV seed's ``pv_res`` stream) and battery hosts the
    head of another (the storage seed's ``storage_res`` stream), each ``round(share x pool)`` long: nested
    in each share and independent of the other (a home may have both). Arrays:
    ``pv_generation.rooftop_pv_kw`` of the home's annual energy."""
    pool = rooftop_pool(ctx)
    n_pv = round_half_up(case["pv_perc_res"] * len(pool))
    pv_hosts = head_of(customer_order(case["pv_seed"], ctx.feeder, pool, "pv_res"), n_pv)
    annual_of = dict(zip(ctx.customers["customer"], ctx.customers["annual_kwh"].astype(float)))
    annual = np.array([annual_of[c] for c in pv_hosts], dtype=float)
    sizes = pv_generation.rooftop_pv_kw(annual, ctx.state)
    pv_kw = {c: float(kw) for c, kw in zip(pv_hosts, sizes) if math.isfinite(kw) and kw > 0}
    unsized = [c for c in pv_hosts if c not in pv_kw]
    sto_hosts = head_of(customer_order(case["storage_seed"], ctx.feeder, pool, "storage_res"),
                        round_half_up(case["storage_perc_res"] * len(pool)))
    return pv_kw, {c: annual_of[c] for c in pv_kw}, n_pv, unsized, sto_hosts


def device_elements(ctx: FeederContext, case: dict[str, Any]) -> set[str]:
    """The circuit elements (``class.name``, lower case) the device files of ``case`` define, from the hosts
    alone (the placement of :func:`plan_case`, without planning the day): the EV loads, three-phase and rooftop
    PV and storage. The feeder cache compiles the candidates of a chunk's cases from it
    (``feeder_cache.FeederCache.prepare``)."""
    pv_kw, sto_kw, _, _ = place_pv_and_storage(ctx, case)
    pv_res_kw, _, _, _, bat_hosts = place_rooftop(ctx, case)
    names = ([f"load.ev_{h}" for h in ev_hosts(ctx, case)] + [f"pvsystem.pv_{h}" for h in pv_kw]
             + [f"pvsystem.pvres_{h}" for h in pv_res_kw] + [f"storage.sto_{h}" for h in sto_kw]
             + [f"storage.bat_{h}" for h in bat_hosts])
    return {name.lower() for name in names}


def customer_day_kw(ctx: FeederContext, variant_of: np.ndarray, names: list[str]) -> np.ndarray:
    """(len(names), 96) design-day load [kW] of the customers ``names``: annual peak x their variant's
    per-unit profile."""
    row = {c: i for i, c in enumerate(ctx.customers["customer"])}
    idx = np.array([row[c] for c in names], dtype=int)
    if not len(idx):
        return np.zeros((0, STEPS))
    shape_idx = ctx.customers["shape"].map(ctx.shape_index).to_numpy()[idx]
    peak_kw = ctx.customers["peak_kw"].to_numpy(dtype=float)[idx]
    return np.array([peak_kw[k] * ctx.p_pu[variant_of[i]][shape_idx[k]] for k, i in enumerate(idx)])


def plan_rooftop(ctx: FeederContext, case: dict[str, Any], variant_of: np.ndarray, ev_hosts: list[str],
                 ev_power: np.ndarray) -> Rooftop:
    """Rooftop PV and home batteries of a case: the arrays (:func:`place_rooftop`) on the PV shape, and each
    battery dispatched on its home's own net load (its load in its variant, its EV's schedule, minus its
    own array) by ``common.config.HOME_STORAGE["dispatch"]`` (``storage_dispatch.home_dispatch``)."""
    pv_kw, annual, n_wanted, unsized, sto_hosts = place_rooftop(ctx, case)
    pv_total = sum(pv_kw.values()) * ctx.pv_pu if pv_kw else np.zeros(STEPS)
    ev_of = {h: ev_power[j] for j, h in enumerate(ev_hosts)}
    net = customer_day_kw(ctx, variant_of, sto_hosts)
    for k, host in enumerate(sto_hosts):
        net[k] += ev_of.get(host, 0.0) - pv_kw.get(host, 0.0) * ctx.pv_pu
    try:
        unit, dispatch = storage_dispatch.home_dispatch(net, config.HOME_STORAGE)
    except ValueError as exc:
        raise InstanceError(str(exc)) from None
    sto_total = dispatch.power_kw.sum(axis=0) if sto_hosts else np.zeros(STEPS)
    return Rooftop(pv_kw=pv_kw, pv_annual_kwh=annual, n_pv_wanted=n_wanted, pv_unsized=unsized, sto_hosts=sto_hosts,
                   unit=unit, dispatch=dispatch, pv_total=pv_total, sto_total=sto_total)


def plan_case(ctx: FeederContext, case: dict[str, Any]) -> Plan:
    """Every device of a case and its day: heat-pump variants, EVs (managed ones filling the valleys of
    everything else), three-phase and rooftop PV, home batteries on their homes' own net loads
    (:func:`plan_rooftop`), and the three-phase storage fleet's peak-shaving dispatch of the rest with its
    LP yardstick."""
    shares = case["shares"] if ctx.applies_variants else {"baseline": 1.0, "dm": 0.0, "un": 0.0}
    variant_of, counts = assign_variants(ctx.customers["customer"].tolist(), shares, case["heating_seed"], ctx.feeder)
    base_kw = customer_load_kw(ctx, variant_of)
    ev_hosts, levels, legs, controlled, sessions, ev_power = draw_evs(ctx, case)
    pv_kw, sto_kw, n_sto_wanted, n_three = place_pv_and_storage(ctx, case)
    pv_res_kw = sum(place_rooftop(ctx, case)[0].values())
    pv_total = (sum(pv_kw.values()) + pv_res_kw) * ctx.pv_pu if pv_kw or pv_res_kw else np.zeros(STEPS)
    ctrl_idx = np.nonzero(controlled)[0]
    if len(ctrl_idx):
        unc_total = ev_power[~controlled].sum(axis=0)
        sub = ev_charging.Sessions(*(getattr(sessions, f)[ctrl_idx] for f in
                                     ("level", "charger_kw", "arrival_step", "dwell_steps", "need_kwh", "energy_kwh")))
        ev_power[ctrl_idx] = ev_charging.controlled_schedule(sub, base_kw + unc_total - pv_total, start=ev_power[ctrl_idx])
    rooftop = plan_rooftop(ctx, case, variant_of, ev_hosts, ev_power)
    st = ctx.storage
    fleet = storage_dispatch.Fleet(power_kw=float(sum(sto_kw.values())),
                                   energy_kwh=float(sum(sto_kw.values())) * st["duration_h"],
                                   eff_charge=st["eff_charge"], eff_discharge=st["eff_discharge"], reserve=st["reserve"])
    forecast = base_kw + ev_power.sum(axis=0) - pv_total - rooftop.sto_total
    dispatch = storage_dispatch.peak_shaving(forecast, fleet, st["peak_target_factor"])
    lp_peak = (storage_dispatch.lp_min_peak(forecast, fleet, st["peak_target_factor"])[0] if sto_kw
               else float(forecast.max()))
    return Plan(variant_of=variant_of, counts=counts, base_kw=base_kw, ev_hosts=ev_hosts, levels=levels, legs=legs,
                controlled=controlled, sessions=sessions, ev_power=ev_power, pv_kw=pv_kw, pv_total=pv_total,
                sto_kw=sto_kw, n_sto_wanted=n_sto_wanted, n_three_phase=n_three, fleet=fleet, dispatch=dispatch,
                lp_peak_kw=lp_peak, rooftop=rooftop)


def render_files(ctx: FeederContext, plan: Plan, design: str, case_key: str, instance_dir: Path) -> dict[str, str]:
    """The case's OpenDSS files: Loads.dss (feeders whose customers an instance rewrites), EVs.dss,
    PV.dss, Storage.dss and the Master.dss that redirects to the feeder's base files and shared shapes."""
    files: dict[str, str] = {}
    names = ctx.customers["customer"].tolist()
    if ctx.rewrites_loads:
        lines = [f"! Customer loads of case {case_key}: kW = annual peak (Loads.dss); kvar = kW so that the",
                 "! shape's qmult (per unit of the annual peak kW) gives the kVAr; daily = the customer's variant."]
        for customer, shape, variant in zip(names, ctx.customers["shape"], plan.variant_of):
            for prefix, kw in ctx.load_prefix[customer]:
                lines.append(f"{prefix} kvar={kw} daily={ctx.shape_name(shape, variant)}")
        files["Loads.dss"] = "\n".join(lines) + "\n"
    rec = ctx.records
    ev_lines = []
    for j, host in enumerate(plan.ev_hosts):
        bus1, phases, kv = _connection(rec[host], str(plan.levels[j]), int(plan.legs[j]))
        name, kw = f"ev_{host}", float(plan.sessions.charger_kw[j])
        ev_lines.append(f"New Loadshape.{name} npts={STEPS} interval={DT_H} mult={_shape_values(plan.ev_power[j] / kw)}")
        ev_lines.append(f"New Load.{name} bus1={bus1} phases={phases} conn=wye kV={_fmt(kv)} kW={_fmt(kw)} pf=1 "
                        f"model=1 vminpu={_fmt(config.EV['vminpu'])} vlowpu={_fmt(config.EV['vlowpu'])} "
                        f"vmaxpu={_fmt(config.EV['vmaxpu'])} daily={name}")
    if ev_lines:
        files["EVs.dss"] = "\n".join(ev_lines) + "\n"
    pv_lines = []
    for host, kw in plan.pv_kw.items():
        bus1, phases, kv = _connection(rec[host])
        pv_lines.append(f"New PVSystem.pv_{host} bus1={bus1} phases={phases} kV={_fmt(kv)} "
                        f"kVA={_fmt(kw * config.PV['kva_factor'])} Pmpp={_fmt(kw)} irradiance=1 pf=1 "
                        f"%cutin=0.1 %cutout=0.1 daily=pv_{ctx.season}")
    roof = plan.rooftop
    rooftop_kva = config.ROOFTOP_PV["kva_factor"]
    arrays = []
    for host, kw in roof.pv_kw.items():
        bus1, phases, kv = _connection(rec[host], "L2")  # 240 V across both legs of a split-phase service
        arrays.append((f"PVSystem.pvres_{host}", bus1, phases, kv))
        pv_lines.append(f"New PVSystem.pvres_{host} bus1={bus1} phases={phases} kV={_fmt(kv)} "
                        f"kVA={_fmt(kw * rooftop_kva)} Pmpp={_fmt(kw)} irradiance=1 pf=1 "
                        f"%cutin=0.1 %cutout=0.1 daily=pv_{ctx.season}")
    control = config.ROOFTOP_PV["inverter_control"]
    if control not in config.PV_INVERTER_CONTROLS:
        raise InstanceError(f"common.config.ROOFTOP_PV inverter_control = {control!r}: use one of "
                            f"{', '.join(config.PV_INVERTER_CONTROLS)}")
    if control == "volt_var":
        pv_lines += pv_generation.volt_var_commands(arrays)
    if pv_lines:
        files["PV.dss"] = "\n".join(pv_lines) + "\n"
    sto_lines = []
    if plan.sto_kw:
        st, dispatch = ctx.storage, plan.dispatch
        lines = sto_lines
        lines.append(f"New Loadshape.storage_dispatch npts={STEPS} interval={DT_H} "
                     f"mult={_shape_values(dispatch.power_kw / plan.fleet.power_kw)}")
        for host, kw in plan.sto_kw.items():
            bus1, phases, kv = _connection(rec[host])
            lines.append(
                f"New Storage.sto_{host} bus1={bus1} phases={phases} kV={_fmt(kv)} kWrated={_fmt(kw)} "
                f"kWhrated={_fmt(kw * st['duration_h'])} kVA={_fmt(kw * st['kva_factor'])} "
                f"%stored={_fmt(100 * dispatch.soc_start)} %reserve={_fmt(100 * st['reserve'])} "
                f"%EffCharge={_fmt(100 * st['eff_charge'])} %EffDischarge={_fmt(100 * st['eff_discharge'])} "
                f"%IdlingkW=0 dispmode=follow daily=storage_dispatch")
    home, unit = config.HOME_STORAGE, roof.unit
    for k, host in enumerate(roof.sto_hosts):
        bus1, phases, kv = _connection(rec[host], "L2")
        name = f"bat_{host}"
        sto_lines.append(f"New Loadshape.{name} npts={STEPS} interval={DT_H} "
                         f"mult={_shape_values(roof.dispatch.power_kw[k] / unit.power_kw)}")
        sto_lines.append(
            f"New Storage.{name} bus1={bus1} phases={phases} kV={_fmt(kv)} kWrated={_fmt(unit.power_kw)} "
            f"kWhrated={_fmt(unit.energy_kwh)} kVA={_fmt(unit.power_kw * home['kva_factor'])} "
            f"%stored={_fmt(100 * roof.dispatch.soc_start[k])} %reserve={_fmt(100 * unit.reserve)} "
            f"%EffCharge={_fmt(100 * unit.eff_charge)} %EffDischarge={_fmt(100 * unit.eff_discharge)} "
            f"%IdlingkW=0 dispmode=follow daily={name}")
    if sto_lines:
        files["Storage.dss"] = "\n".join(sto_lines) + "\n"
    master = [f"! Circuit instance {ctx.state} / {ctx.season} / {design} / {ctx.feeder} / case {case_key}",
              f"! design day {ctx.date}; compile, then: solve mode=daily stepsize=15m number=96"]
    master += [line.format(rel=_rel(path, instance_dir)) if path is not None else line
               for line, path in ctx.master_head()]
    master.append(f"Redirect {_rel(ctx.shared_dir / SHARED_LOADSHAPES, instance_dir)}")
    master += [f"Redirect {name}" for name in ("Loads.dss", "EVs.dss", "PV.dss", "Storage.dss") if name in files]
    m_v, m_pq = ctx.monitors
    master += [f"New Monitor.{m_v} element={ctx.base.head_element} terminal=1 mode=0",
               f"New Monitor.{m_pq} element={ctx.base.head_element} terminal=1 mode=1 ppolar=no"]
    master += ctx.master_tail()
    files[INSTANCE_FILES["master"]] = "\n".join(master) + "\n"
    return files


def assignments_record(ctx: FeederContext, plan: Plan, design: str, case_key: str, case: dict[str, Any],
                       files: dict[str, str], instance_dir: Path) -> dict[str, Any]:
    """``scenario_assignments.json``: the case's inputs, seeds, realised counts, hosts and forecasts."""
    cust, rec = ctx.customers, ctx.records
    names = cust["customer"].tolist()
    sessions, levels, dispatch = plan.sessions, plan.levels, plan.dispatch
    ev_records = []
    for j, host in enumerate(plan.ev_hosts):
        bus1, _, _ = _connection(rec[host], str(levels[j]), int(plan.legs[j]))
        arrival = int(sessions.arrival_step[j])
        ev_records.append({"customer": host, "element": f"Load.ev_{host}", "bus1": bus1,
                           "nodes": [f"{dss.bus_name(bus1)}.{k}" for k in dss.bus_nodes(bus1)], "level": str(levels[j]),
                           "charger_kw": round(float(sessions.charger_kw[j]), 4), "controlled": bool(plan.controlled[j]),
                           "plug_in": f"{arrival * 15 // 60:02d}:{arrival * 15 % 60:02d}",
                           "dwell_h": float(sessions.dwell_steps[j]) * DT_H, "need_kwh": round(float(sessions.need_kwh[j]), 4),
                           "scheduled_kwh": round(float(plan.ev_power[j].sum() * DT_H), 4)})
    pv_records = [{"customer": host, "element": f"PVSystem.pv_{host}", "bus1": _connection(rec[host])[0],
                   "pmpp_kw": round(kw, 4)} for host, kw in plan.pv_kw.items()]
    sto_records = [{"customer": host, "element": f"Storage.sto_{host}", "bus1": _connection(rec[host])[0],
                    "kw": round(kw, 4), "kwh": round(kw * ctx.storage["duration_h"], 4)} for host, kw in plan.sto_kw.items()]
    roof = plan.rooftop
    pv_res_records = [{"customer": host, "element": f"PVSystem.pvres_{host}", "bus1": _connection(rec[host], "L2")[0],
                       "annual_kwh": round(roof.pv_annual_kwh[host], 2), "pmpp_kw": round(kw, 4)}
                      for host, kw in roof.pv_kw.items()]
    sto_res_records = [{"customer": host, "element": f"Storage.bat_{host}", "bus1": _connection(rec[host], "L2")[0],
                        "kw": round(roof.unit.power_kw, 4), "kwh": round(roof.unit.energy_kwh, 4),
                        "soc_start": round(float(roof.dispatch.soc_start[k]), 6),
                        "discharged_kwh": round(float(np.clip(roof.dispatch.power_kw[k], 0, None).sum() * DT_H), 4),
                        "charged_kwh": round(float(np.clip(-roof.dispatch.power_kw[k], 0, None).sum() * DT_H), 4)}
                       for k, host in enumerate(roof.sto_hosts)]
    n_sto = len(plan.sto_kw)
    headroom = dispatch.peak_before_kw - plan.lp_peak_kw
    return {
        "state": ctx.state, "season": ctx.season, "design": design, "feeder": ctx.feeder, "case": case_key,
        "design_day": ctx.date, "head_element": ctx.base.head_element, "head_sign": ctx.base.head_sign,
        "feeder_kind": ctx.kind, "pv_source": ctx.pv_source, "notes": ctx.notes(),
        "inputs": {**doe.flatten_case(case), "disjoint_sets": bool(case["disjoint_sets"]),
                   "design_point": int(case["design_point"]), "placement_replicate": int(case["placement_replicate"])},
        "seeds": {k: int(case[k]) for k in doe.SEED_KEYS.values()},
        "realised": {
            "n_customers": len(cust), "n_residential": int((cust["class"] == "res").sum()),
            "n_three_phase": plan.n_three_phase,
            "customers_per_variant": {v: int(plan.counts[v]) for v in config.VARIANTS},
            "n_evs": len(plan.ev_hosts), "n_evs_level2": int((levels == "L2").sum()),
            "n_evs_controlled": int(plan.controlled.sum()),
            "ev_charger_kw_total": round(float(sessions.charger_kw.sum()), 4),
            "ev_need_kwh": round(float(sessions.need_kwh.sum()), 4),
            "ev_scheduled_kwh": round(float(plan.ev_power.sum() * DT_H), 4),
            "ev_unserved_kwh": round(float(sessions.unserved_kwh.sum()), 4),
            "n_pv": len(plan.pv_kw), "pv_kw": round(float(sum(plan.pv_kw.values())), 4),
            "n_storage": n_sto, "n_storage_wanted": plan.n_sto_wanted, "storage_kw": round(plan.fleet.power_kw, 4),
            "storage_kwh": round(plan.fleet.energy_kwh, 4),
            "storage_shortfall": f"{plan.n_sto_wanted - n_sto} hosts short: too few three-phase customers "
                                 "left after PV" if n_sto < plan.n_sto_wanted else "",
            "n_rooftop_pool": len(rooftop_pool(ctx)),
            "n_pv_res": len(roof.pv_kw), "n_pv_res_wanted": roof.n_pv_wanted,
            "pv_res_kw": round(float(sum(roof.pv_kw.values())), 4),
            "pv_res_shortfall": (f"{len(roof.pv_unsized)} hosts without rooftop PV: their profile covers less than "
                                 f"a whole year, so their annual energy is unknown (first: {roof.pv_unsized[0]})"
                                 if roof.pv_unsized else ""),
            "pv_res_inverter_control": config.ROOFTOP_PV["inverter_control"],
            "n_storage_res": len(roof.sto_hosts),
            "storage_res_kw": round(len(roof.sto_hosts) * roof.unit.power_kw, 4),
            "storage_res_kwh": round(len(roof.sto_hosts) * roof.unit.energy_kwh, 4),
            "storage_res_dispatch": config.HOME_STORAGE["dispatch"],
        },
        "storage_plan": {
            "forecast_peak_kw": round(dispatch.peak_before_kw, 4), "planned_peak_kw": round(dispatch.peak_after_kw, 4),
            "threshold_kw": round(dispatch.threshold_kw, 4), "lp_min_peak_kw": round(plan.lp_peak_kw, 4),
            "soc_start": round(float(dispatch.soc_start), 6),
            "reduction_vs_lp": round((dispatch.peak_before_kw - dispatch.peak_after_kw) / headroom, 6)
            if headroom > 1e-6 else 1.0,
        },
        "forecast_kw": {"customers": [round(float(x), 3) for x in plan.base_kw],
                        "ev": [round(float(x), 3) for x in plan.ev_power.sum(axis=0)],
                        "pv": [round(float(x), 3) for x in plan.pv_total],
                        "storage": [round(float(x), 3) for x in dispatch.power_kw],
                        "storage_res": [round(float(x), 3) for x in roof.sto_total]},
        "hosts": {
            "variants": {v: [c for c, var in zip(names, plan.variant_of) if var == v] for v in config.VARIANTS},
            "ev": ev_records, "pv": pv_records, "storage": sto_records,
            "pv_res": pv_res_records, "storage_res": sto_res_records,
        },
        "service_nodes": [[c, service_nodes(rec[c])] for c in names],
        "unrated_lines": ctx.unrated_lines,
        "shared_digest": ctx.shared_digest,
        "files": sorted(files),
        "base_feeder": _rel(ctx.base_dir, instance_dir),
    }


def build_instance(ctx: FeederContext, ws: Workspace, design: str, case_key: str, case: dict[str, Any],
                   instance_dir: Path) -> Instance:
    """The files of one case (nothing written here): :func:`plan_case`, :func:`render_files`,
    :func:`assignments_record`."""
    plan = plan_case(ctx, case)
    files = render_files(ctx, plan, design, case_key, instance_dir)
    return Instance(files=files, assignments=assignments_record(ctx, plan, design, case_key, case, files, instance_dir))


def instance_digest(instance: Instance, ctx: FeederContext, assignments_text: str) -> str:
    """Digest of everything a run depends on: the shared files, the case's files and assignments."""
    h = hashlib.sha256(ctx.shared_digest.encode())
    for name in sorted(instance.files):
        h.update(name.encode())
        h.update(instance.files[name].encode())
    h.update(assignments_text.encode())
    return h.hexdigest()


def write_instance(instance: Instance, ctx: FeederContext, instance_dir: Path, mixes_digest: str = "") -> str:
    """Write the instance's files (atomically; unchanged files are left alone); returns its digest.

    ``inputs_digest`` (everything the run depends on) and ``mixes_digest`` (the SHA-256 of the mixes
    file the case came from, which phase 7 compares with the current one) are appended to the
    assignments after the digest is taken, so a mixes file rewritten with the same case keeps the run."""
    instance_dir.mkdir(parents=True, exist_ok=True)
    body = dumps_json_lines(instance.assignments)  # encoded once: the digest covers it, the file extends it
    digest = instance_digest(instance, ctx, body)
    instance.assignments["inputs_digest"] = digest
    instance.assignments["mixes_digest"] = mixes_digest
    text = (body[: -len("\n}\n")] + f',\n"inputs_digest": {json.dumps(digest)},\n'
            f'"mixes_digest": {json.dumps(mixes_digest)}\n}}\n')
    contents = {**instance.files, INSTANCE_FILES["assignments"]: text}
    for stale in ("EVs.dss", "PV.dss", "Storage.dss"):
        if stale not in contents and (instance_dir / stale).exists():
            (instance_dir / stale).unlink()
    for name, text in sorted(contents.items()):
        path = instance_dir / name
        if path.is_file() and path.read_text() == text:
            continue
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8", newline="\n")
    return digest
