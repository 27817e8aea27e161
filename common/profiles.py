"""Design-day daily profiles of one heat-pump variant: shared by phases 2 (baseline), 4 (demand-
managed) and 5 (uncontrolled), so that the three variants are cut the same way on the same day.

For every feeder, season and SMART-DS shape of the feeder, the matched building's kW in the
variant's upgrade (``common.eulp.variant_rule``) on the feeder's design day (phase 2), optionally
transformed (phase 4's load shift), is written per unit of the building's BASELINE annual peak kW,
so that a customer of annual peak ``P`` kW (Loads.dss) draws ``P * p_pu`` in the variant, and a
heat pump that raises the building's peak shows as ``p_pu > 1``. Reactive power follows phase 3's
kVAr/kW ratio at the same 96 intervals: ``q_pu = p_pu * ratio``.

Daily file (``Workspace.daily_profile``): header ``p_pu,q_pu,interval_start``, 96 rows, the
interval start in ISO format. OpenDSS reads it as
``mult=(file=<f>, column=1, header=yes) qmult=(file=<f>, column=2, header=yes)``.

Inputs of phases 2-5 are read here, checked: a missing, empty, truncated or malformed file, or one
without a column the phases use, is a ``common.io.InputError`` naming the file and the script that
remakes it. Every output of phases 2-5 keeps a record of the inputs it was made from
(:class:`Inputs`, ``common.paths.lineage_record``); the next step refuses an output whose inputs
have changed since (:func:`check_current`), e.g. the previous run's ``feeder_buildings.csv`` after
``scale_feeder_curves.py`` refused on a new ``customers.parquet``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from common import config, eulp
from common.io import InputError, read_csv, read_parquet, sha256_file, write_json, write_parquet, write_text
from common.paths import Workspace, lineage_record

logger = logging.getLogger(__name__)

STEPS = config.INTERVALS_PER_DAY
#: a variant transform: (total kW of the day, HVAC kW of the day, season, the building's row of
#: feeder_buildings.csv: class, release, bldg_id, feeder, shape...) -> new total kW
Transform = Callable[[np.ndarray, np.ndarray, str, pd.Series], np.ndarray]

#: the scripts that write each input of phases 2-5 (named in the one-line errors)
PRODUCERS = {
    "feeder_list": "1b_smartds_eulp_match/copy_circuits.py",
    "customers": "1b_smartds_eulp_match/circuit_make_daily_list_sets.py",
    "final_selection": "1b_smartds_eulp_match/select_rep_family.py",
    "eulp_building": "1c_eulp_downloads/download_parquets_homes.py (or _commercial.py)",
    "feeder_buildings": "2_profiles_heat_pumps/scale_feeder_curves.py",
    "variant_upgrades": "2_profiles_heat_pumps/scale_feeder_curves.py",
    "design_days": "2_profiles_heat_pumps/find_max_day_curve.py",
    "kvar_ratios": "3_kvar_kw_prep/rev_spec_kvar_kw_ratio.py",
    "baseline": "2_profiles_heat_pumps/get_scenario_csv_controls.py",
    "dm": "4_profiles_heat_pumps_dm/make_dm_profiles.py",
    "un": "5_profiles_heat_pumps_un/make_un_profiles.py",
}

#: columns of phase 1b's customer table (customers.parquet), which phases 1b, 2 and 6 read
CUSTOMER_COLUMNS = ("state", "subregion", "feeder", "customer", "loads", "n_loads", "bus", "nodes", "phases", "kv",
                    "peak_kw", "peak_kvar", "shape", "class", "three_phase", "service")
#: the columns of each input that phases 2-5 use
FINAL_SELECTION_COLUMNS = ("subregion", "shape", "release", "bldg_id", "building_type")
FEEDER_BUILDING_COLUMNS = ("feeder", "subregion", "shape", "class", "release", "bldg_id", "building_type",
                           "n_customers", "customers_peak_kw", "building_peak_kw", "scale")
DESIGN_DAY_COLUMNS = ("feeder", "season", "date", "day_of_year")
#: design_days.csv ``kind``: a peak day (ranks 1..K of --days) or the light-load day (LIGHT_LOAD_SEASONS)
DAY_KINDS = ("peak", "light_load")
KVAR_RATIO_COLUMNS = ("subregion", "shape", "day_of_year", "step", "ratio")
DAILY_TABLE_COLUMNS = ("feeder", "season", "shape", "step", "p_pu", "q_pu")
VARIANT_UPGRADE_COLUMNS = ("class", "release", "building_type", "variant", "upgrade", "upgrade_name", "load_shift",
                           "reason")


class ProfileError(ValueError):
    """A daily profile that cannot be made; the message names the building, feeder or file."""


# ------------------------------------------------------------------------------------------- lineage
def _relative(ws: Workspace, path: Path) -> str:
    return Path(path).resolve().relative_to(ws.root.resolve()).as_posix()


class Inputs:
    """The workspace files one step read, with their digests, recorded beside each of its outputs
    (``common.paths.lineage_record``), so that the next step can tell whether those outputs are
    still the ones made from the files now on disk (:func:`check_current`)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.digests: dict[str, str] = {}

    def add(self, path: Path, digest: str | None = None) -> Path:
        self.digests[_relative(self.ws, path)] = digest or sha256_file(path)
        return Path(path)

    def record(self, outputs: Iterable[Path], producer: str) -> None:
        """Write the record of every output; call it once the outputs are written."""
        for output in outputs:
            write_json(lineage_record(output), {"producer": producer, "file": _relative(self.ws, output),
                                                "sha256": sha256_file(output),
                                                "inputs": dict(sorted(self.digests.items()))})


def check_current(ws: Workspace, path: Path, producer: str) -> str:
    """Refuse (InputError) an output of phases 2-5 that is not the one ``producer`` last made from
    the files now on disk: no record, changed since, or made from an input that has changed or
    gone since (e.g. ``producer`` refused on new inputs and left its previous run's file).
    Returns the file's digest."""
    path = Path(path)
    record_path = lineage_record(path)
    fix = f"run {producer} again"
    if not record_path.is_file():
        raise InputError(f"{path} has no record of the inputs it was made from ({record_path.name}): {fix}")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        inputs = dict(record["inputs"])
        recorded = str(record["sha256"])
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{record_path} is not a readable record of {path.name}'s inputs: {fix}") from None
    digest = sha256_file(path)
    if digest != recorded:
        raise InputError(f"{path} is not the file {producer} last wrote (it changed since): {fix}")
    for rel, expected in sorted(inputs.items()):
        source = ws.root / rel
        if not source.is_file():
            raise InputError(f"{path} is out of date: it was made from {source}, which no longer exists: {fix}")
        if sha256_file(source) != expected:
            raise InputError(f"{path} is out of date: {source} changed after it was made: {fix}")
    return digest


# ------------------------------------------------------------------------------------------- design day
def design_day(curve_kw: np.ndarray, interval_start: pd.DatetimeIndex, months: tuple[int, ...]) -> dict:
    """The design day of a load curve: the day (of its interval START) of the highest value of
    ``curve_kw`` among intervals starting in ``months`` (phase 2's rule, also used by phase 6 on
    feeders that bring their own yearly shapes). ``day_of_year`` counts from the curve's first day."""
    curve_kw = np.asarray(curve_kw, dtype=float)
    in_season = np.isin(interval_start.month, months)
    if not in_season.any():
        raise ValueError(f"the curve has no interval in months {months}")
    masked = np.where(in_season, curve_kw, -np.inf)
    peak_index = int(np.argmax(masked))
    start = interval_start[peak_index]
    first = interval_start[0].normalize()
    return {"date": start.date().isoformat(), "day_of_year": int((start.normalize() - first).days),
            "peak_kw": float(curve_kw[peak_index]), "peak_interval_start": start.isoformat(),
            "peak_index": peak_index}


# ------------------------------------------------------------------------------------------- readers
def read_customers(ws: Workspace, state: str, inputs: Inputs | None = None) -> pd.DataFrame:
    """Phase 1b's customer table, with every declared column (InputError otherwise)."""
    path = ws.customers(state)
    frame = read_parquet(path, PRODUCERS["customers"], required=CUSTOMER_COLUMNS)
    if inputs is not None:
        inputs.add(path)
    return frame


def read_final_selection(ws: Workspace, state: str, inputs: Inputs | None = None) -> pd.DataFrame:
    """Both classes' chosen buildings of phase 1b, in one table."""
    frames = []
    for cls in config.CLASSES:
        path = ws.final_selection(state, cls)
        frames.append(read_csv(path, PRODUCERS["final_selection"], required=FINAL_SELECTION_COLUMNS))
        if inputs is not None:
            inputs.add(path)
    return pd.concat(frames, ignore_index=True)


def _current(ws: Workspace, path: Path, key: str, frame: pd.DataFrame, inputs: Inputs | None) -> pd.DataFrame:
    digest = check_current(ws, path, PRODUCERS[key])
    if inputs is not None:
        inputs.add(path, digest)
    return frame


def read_feeder_buildings(ws: Workspace, state: str, inputs: Inputs | None = None) -> pd.DataFrame:
    path = ws.feeder_buildings(state)
    frame = read_csv(path, PRODUCERS["feeder_buildings"], required=FEEDER_BUILDING_COLUMNS)
    if frame.empty:
        raise InputError(f"{path} lists no feeder: run {PRODUCERS['feeder_buildings']} again")
    return _current(ws, path, "feeder_buildings", frame, inputs)


def read_variant_upgrades(ws: Workspace, state: str, inputs: Inputs | None = None) -> pd.DataFrame:
    path = ws.variant_upgrades(state)
    frame = read_csv(path, PRODUCERS["variant_upgrades"], required=VARIANT_UPGRADE_COLUMNS)
    return _current(ws, path, "variant_upgrades", frame, inputs)


def read_design_days(ws: Workspace, state: str, inputs: Inputs | None = None) -> pd.DataFrame:
    """The design days of phase 2, checked: known seasons, whole days of the year 0-365."""
    path = ws.design_days(state)
    fix = f"run {PRODUCERS['design_days']} again"
    frame = read_csv(path, PRODUCERS["design_days"], required=DESIGN_DAY_COLUMNS)
    day = pd.to_numeric(frame["day_of_year"], errors="coerce")
    bad = ~(day.notna() & (day == day.round()) & day.between(0, 365))
    if frame.empty or bad.any():
        what = "no row" if frame.empty else f"day_of_year {frame['day_of_year'][bad].iloc[0]!r} is not a day 0-365"
        raise InputError(f"{path}: {what}: {fix}")
    unknown = sorted(set(frame["season"].astype(str)) - set(config.SEASONS))
    if unknown:
        raise InputError(f"{path}: season {unknown[0]!r} is not one of {', '.join(config.SEASONS)}: {fix}")
    frame["day_of_year"] = day.astype(int)
    if "rank" in frame.columns:  # --days K > 1: K rows per feeder and season, ranks 1..K
        rank = pd.to_numeric(frame["rank"], errors="coerce")
        if not (rank.notna() & (rank == rank.round()) & (rank >= 1)).all():
            raise InputError(f"{path}: rank {frame['rank'][~(rank >= 1)].iloc[0]!r} is not a whole number >= 1: {fix}")
        frame["rank"] = rank.astype(int)
    else:  # a one-day file (--days 1, and every file written before the option): each row is rank 1
        frame["rank"] = 1
    twice = frame.duplicated(["feeder", "season", "rank"])
    if twice.any():
        row = frame[twice].iloc[0]
        raise InputError(f"{path}: {row['feeder']} {row['season']} has rank {row['rank']} twice: {fix}")
    if "kind" in frame.columns:  # the light-load day (LIGHT_LOAD_SEASONS): one more row, after the peak days
        kind = frame["kind"].fillna("peak").astype(str)
        unknown = sorted(set(kind) - set(DAY_KINDS))
        if unknown:
            raise InputError(f"{path}: kind {unknown[0]!r} is not one of {', '.join(DAY_KINDS)}: {fix}")
        frame["kind"] = kind
        light = frame[kind == "light_load"]
        twice = light.duplicated(["feeder", "season"])
        if twice.any():
            row = light[twice].iloc[0]
            raise InputError(f"{path}: {row['feeder']} {row['season']} has two light-load days: {fix}")
        last_peak = frame[kind == "peak"].groupby(["feeder", "season"])["rank"].max()
        for _, row in light.iterrows():
            if row["rank"] <= last_peak.get((row["feeder"], row["season"]), 0):
                raise InputError(f"{path}: the light-load day of {row['feeder']} {row['season']} has rank "
                                 f"{row['rank']}, not after its peak days: {fix}")
    else:  # a file without the column (every file written before the light-load day): all peak days
        frame["kind"] = "peak"
    return _current(ws, path, "design_days", frame, inputs)


def read_kvar_ratios(ws: Workspace, state: str, inputs: Inputs | None = None) -> pd.DataFrame:
    path = ws.kvar_ratios(state)
    frame = read_parquet(path, PRODUCERS["kvar_ratios"], required=KVAR_RATIO_COLUMNS)
    return _current(ws, path, "kvar_ratios", frame, inputs)


def read_daily_table(ws: Workspace, state: str, variant: str, season: str,
                     inputs: Inputs | None = None, rank: int = 1) -> pd.DataFrame:
    """All daily profiles of one variant, season and design-day rank (long format), as its phase wrote them."""
    path = ws.daily_profile_table(state, variant, season, rank)
    frame = read_parquet(path, PRODUCERS[variant], required=DAILY_TABLE_COLUMNS)
    return _current(ws, path, variant, frame, inputs)


def read_building_kw(path: Path, columns: tuple[str, ...] = (config.EULP_TOTAL_KWH,)) -> pd.DataFrame:
    """``common.eulp.read_building_kw``, with an unreadable file (empty, truncated, not parquet) an
    InputError naming it and the download step instead of pyarrow's traceback."""
    import pyarrow as pa

    path = Path(path)
    fix = f"run {PRODUCERS['eulp_building']} again"
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"EULP building file {path} is empty (0 bytes): {fix}")
    try:
        return eulp.read_building_kw(path, columns=columns)
    except pa.ArrowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"EULP building file {path} is not a readable parquet file ({first}): {fix}") from None


# ------------------------------------------------------------------------------------------- profiles
def building_file(eulp_root: Path, release: str, state: str, bldg_id: int, upgrade: int) -> Path:
    return Path(eulp_root) / release / eulp.timeseries_relpath(release, upgrade, state, bldg_id)


def day_slice(series: np.ndarray, day_of_year: int) -> np.ndarray:
    values = np.asarray(series[day_of_year * STEPS:(day_of_year + 1) * STEPS], dtype=float)
    if len(values) != STEPS:
        raise ProfileError(f"day {day_of_year} is outside the series ({len(series)} intervals)")
    return values


def format_daily(p_pu: np.ndarray, q_pu: np.ndarray, starts: pd.DatetimeIndex) -> str:
    lines = ["p_pu,q_pu,interval_start"]
    lines += [f"{p:.6f},{q:.6f},{t.isoformat()}" for p, q, t in zip(p_pu, q_pu, starts)]
    return "\n".join(lines) + "\n"


def write_variant_profiles(ws: Workspace, state: str, variant: str, eulp_root: Path, seasons: list[str],
                           transform: Transform | None = None) -> pd.DataFrame:
    """Write the daily files of one variant for every feeder and season; returns the index table.

    ``transform`` is applied where the variant's rule asks for a load shift; a rule that asks for
    one with no transform given is an error (the load-shift model lives in phase 4). Every input
    is read and every profile computed before the first file is written, so that a bad input
    leaves the previous files as they were. Each season's long table records its inputs.
    """
    inputs = Inputs(ws)
    buildings = read_feeder_buildings(ws, state, inputs)
    days = read_design_days(ws, state, inputs)
    ratios = read_kvar_ratios(ws, state, inputs)
    ratio_lookup = {key: g.sort_values("step")["ratio"].to_numpy()
                    for key, g in ratios.groupby(["subregion", "shape", "day_of_year"], sort=False)}
    hvac_columns = list(config.EULP_HVAC_KWH)
    rows, table, files = [], [], []
    for (cls, bldg_id, building_type, release), group in buildings.groupby(
            ["class", "bldg_id", "building_type", "release"], sort=True, dropna=False):
        rule = eulp.variant_rule(cls, building_type if isinstance(building_type, str) else None, variant)
        upgrade, shift = int(rule["upgrade"]), bool(rule["load_shift"])
        if shift and transform is None:
            raise ProfileError(f"variant {variant} of building {bldg_id} needs the load-shift model of phase 4")
        # each building is read once (the groups are per building), one at a time: memory stays flat
        columns = (config.EULP_TOTAL_KWH, *hvac_columns) if shift else (config.EULP_TOTAL_KWH,)
        frame = read_building_kw(building_file(eulp_root, release, state, int(bldg_id), upgrade), columns=columns)
        total = frame[config.EULP_TOTAL_KWH].to_numpy()
        hvac = frame[hvac_columns].sum(axis=1).to_numpy() if shift else None
        for _, b in group.iterrows():
            ref_kw = float(b["building_peak_kw"])
            if not (ref_kw > 0):
                raise ProfileError(f"building {bldg_id}: baseline annual peak {ref_kw} kW is not positive")
            for season, (rank, d) in _feeder_days(days, b["feeder"], seasons, ws.design_days(state)):
                kw = day_slice(total, d)
                if shift:
                    kw = transform(kw, day_slice(hvac, d), season, b)
                ratio = ratio_lookup.get((b["subregion"], b["shape"], d))
                if ratio is None:
                    raise ProfileError(f"no kVAr/kW ratio for {b['shape']} on day {d} in {ws.kvar_ratios(state)}: "
                                       f"run {PRODUCERS['kvar_ratios']}")
                p_pu = kw / ref_kw
                q_pu = p_pu * ratio
                if not (np.isfinite(p_pu).all() and np.isfinite(q_pu).all()):
                    raise ProfileError(f"building {bldg_id} upgrade {upgrade}: NaN or inf on day {d}")
                starts = frame.index[d * STEPS:(d + 1) * STEPS]
                path = ws.daily_profile(state, variant, b["feeder"], season, b["shape"], rank)
                files.append((path, format_daily(p_pu, q_pu, starts)))
                rows.append({"feeder": b["feeder"], "season": season, "shape": b["shape"], "class": cls,
                             "bldg_id": int(bldg_id), "variant": variant, "upgrade": upgrade, "load_shift": shift,
                             "day_of_year": d, "file": str(path.relative_to(ws.root)), "rank": rank})
                table.append((rank, pd.DataFrame({"feeder": b["feeder"], "season": season, "shape": b["shape"],
                                                  "step": np.arange(STEPS), "interval_start": starts, "p_pu": p_pu,
                                                  "q_pu": q_pu})))
    index = pd.DataFrame(rows).sort_values(["feeder", "season", "rank", "shape"]).reset_index(drop=True)
    for path, text in files:
        write_text(path, text)
    written = []
    for season in seasons:  # one long table per season and design-day rank (rank 1: the table it always was)
        for rank in sorted({r for r, _ in table}) or [1]:
            frames = [f for r, f in table if r == rank]
            long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
            part = long[long["season"] == season].sort_values(["feeder", "shape", "step"]).reset_index(drop=True) \
                if len(long) else long
            written.append(write_parquet(ws.daily_profile_table(state, variant, season, rank), part))
    inputs.record(written, PRODUCERS[variant])
    logger.info("%s %s: %d daily files (%d buildings, %d feeders, seasons %s)", state, variant, len(index),
                index["bldg_id"].nunique() if len(index) else 0, index["feeder"].nunique() if len(index) else 0,
                ", ".join(seasons))
    return index


def _feeder_days(days: pd.DataFrame, feeder: str, seasons: list[str], source: Path):
    """(season, (rank, day_of_year)) of every design day of a feeder, by season then rank."""
    for season in seasons:
        rows = day_ranks(days, feeder, season)
        if rows.empty:
            raise ProfileError(f"no {season} design day for feeder {feeder} in {source}: run {PRODUCERS['design_days']}")
        for rank, d in zip(rows["rank"], rows["day_of_year"]):
            yield season, (int(rank), int(d))


# ------------------------------------------------------------------------------------------- design day of the variants
def season_days(interval_start: pd.DatetimeIndex, months: tuple[int, ...]) -> np.ndarray:
    """Day numbers (0-based from the series' first day) of the whole days whose intervals start in
    ``months``."""
    in_season = np.isin(interval_start.month, months)
    n_days = len(interval_start) // STEPS
    whole = in_season[:n_days * STEPS].reshape(n_days, STEPS).all(axis=1)
    return np.nonzero(whole)[0]


def variant_design_day(curves_kw: dict[str, np.ndarray], interval_start: pd.DatetimeIndex, months: tuple[int, ...],
                       rule: str = config.DESIGN_DAY_RULE) -> dict:
    """The design day of one feeder and season from its all-variant feeder curves.

    ``curves_kw``: {variant: the feeder's curve [kW] with every building in that variant}, each
    valid on the days of ``months`` (values outside them are not read). Each variant's peak day is
    :func:`design_day` of its curve. ``rule`` (``config.DESIGN_DAY_RULES``): ``highest_variant``
    takes the day of the highest of those peaks (a tie goes to the variant first in
    ``config.VARIANTS``), ``baseline`` the baseline curve's day. Returns the chosen ``date``,
    ``day_of_year``, ``peak_variant`` (whose peak day it is), ``peak_kw`` and
    ``peak_interval_start`` (that variant's peak), ``rule``, per variant ``<v>_date`` and
    ``<v>_peak_kw``, and ``baseline_day_peak_kw``: the highest of the variants' peaks on the
    baseline curve's day, with ``baseline_day_error_pct`` = 100 (baseline_day_peak_kw / highest
    variant peak - 1), what studying the baseline's day misses of the worst peak (0 or negative).
    """
    if rule not in config.DESIGN_DAY_RULES:
        raise ValueError(f"design-day rule {rule!r} is not one of {', '.join(config.DESIGN_DAY_RULES)} "
                         "(common/config.py DESIGN_DAY_RULE)")
    variants = [v for v in config.VARIANTS if v in curves_kw] + sorted(set(curves_kw) - set(config.VARIANTS))
    if "baseline" not in curves_kw:
        raise ValueError("the variant curves have no baseline curve")
    peaks = {v: design_day(curves_kw[v], interval_start, months) for v in variants}
    if rule == "baseline":
        chosen = "baseline"
    else:
        chosen = max(variants, key=lambda v: (peaks[v]["peak_kw"], -variants.index(v)))
    highest = max(p["peak_kw"] for p in peaks.values())
    base_day = peaks["baseline"]["day_of_year"]
    on_base_day = max(float(day_slice(curves_kw[v], base_day).max()) for v in variants)
    result = {"date": peaks[chosen]["date"], "day_of_year": peaks[chosen]["day_of_year"], "rule": rule,
              "peak_variant": chosen, "peak_kw": peaks[chosen]["peak_kw"],
              "peak_interval_start": peaks[chosen]["peak_interval_start"]}
    for v in variants:
        result[f"{v}_date"] = peaks[v]["date"]
        result[f"{v}_peak_kw"] = peaks[v]["peak_kw"]
    result["baseline_day_peak_kw"] = on_base_day
    result["baseline_day_error_pct"] = 100.0 * (on_base_day / highest - 1.0) if highest > 0 else 0.0
    return result


def ranked_design_days(curves_kw: dict[str, np.ndarray], interval_start: pd.DatetimeIndex, months: tuple[int, ...],
                       n_days: int, rule: str = config.DESIGN_DAY_RULE) -> list[dict]:
    """The ``n_days`` highest DISTINCT peak days of one feeder and season (``--days``), best first.

    Rank 1 is :func:`variant_design_day` (the design day of ``rule``, every key it returns). Ranks 2..n
    are the other whole days of ``months`` (:func:`season_days`) in decreasing order of the day's
    highest 15-min value over the rule's curves (every variant for ``highest_variant``, the baseline
    curve for ``baseline``; a tie goes to the earlier day); each repeats rank 1's per-feeder columns
    (every variant's own peak day and peak, the baseline-day error) with its own ``date``,
    ``day_of_year``, ``peak_kw`` (that day's highest value), ``peak_variant`` (whose curve it is; a tie
    goes to the variant first in ``config.VARIANTS``) and ``peak_interval_start``. Every row has its
    ``rank``. ValueError when the season has fewer than ``n_days`` whole days."""
    first = variant_design_day(curves_kw, interval_start, months, rule)
    rows = [{**first, "rank": 1}]
    if n_days <= 1:
        return rows
    ranked_by = ["baseline"] if rule == "baseline" else \
        [v for v in config.VARIANTS if v in curves_kw] + sorted(set(curves_kw) - set(config.VARIANTS))
    days = season_days(interval_start, months)
    if len(days) < n_days:
        raise ValueError(f"--days {n_days}: the season has only {len(days)} whole days in months {months}")
    # (variant, day, interval) -> kW on the season's whole days
    stack = np.stack([np.asarray(curves_kw[v], dtype=float)[:(days.max() + 1) * STEPS]
                      .reshape(-1, STEPS)[days] for v in ranked_by])
    day_peak = stack.max(axis=2)                       # (variant, day)
    best_variant = day_peak.argmax(axis=0)            # the first variant on a tie
    peak_kw = day_peak.max(axis=0)
    order = sorted((d for d in range(len(days)) if int(days[d]) != first["day_of_year"]),
                   key=lambda d: (-peak_kw[d], int(days[d])))
    origin = interval_start[0].normalize()
    for rank, d in enumerate(order[:n_days - 1], start=2):
        v = int(best_variant[d])
        step = int(np.argmax(stack[v, d]))
        start = interval_start[int(days[d]) * STEPS + step]
        rows.append({**first, "date": start.date().isoformat(), "day_of_year": int((start.normalize() - origin).days),
                     "peak_variant": ranked_by[v], "peak_kw": float(peak_kw[d]), "peak_interval_start": start.isoformat(),
                     "rank": rank})
    return rows


def light_load_day(curves_kw: dict[str, np.ndarray], interval_start: pd.DatetimeIndex, months: tuple[int, ...],
                   window_h: tuple[float, float] = config.LIGHT_LOAD_DAY_WINDOW_H) -> dict:
    """The light-load day of one feeder and season (``config.LIGHT_LOAD_DAY_WINDOW_H``): the whole day of
    ``months`` (:func:`season_days`) holding the lowest 15-min value, among the intervals STARTING at
    ``window_h[0]`` h up to (not at) ``window_h[1]`` h, of every curve of ``curves_kw`` (all variants: the
    lightest the feeder gets in any of them; a tie goes to the earlier day, then the variant first in
    ``config.VARIANTS``). Night-time minima do not count. Returns its ``date``, ``day_of_year``,
    ``min_daytime_kw``, ``min_daytime_interval_start`` and ``min_daytime_variant``, and the day's own
    ``peak_kw`` / ``peak_variant`` / ``peak_interval_start`` (its highest 15-min value of any variant, as
    ranks 2..K of :func:`ranked_design_days` have). ValueError when the season has no whole day or the
    window no interval."""
    start_h, end_h = float(window_h[0]), float(window_h[1])
    if not 0.0 <= start_h < end_h <= 24.0:
        raise ValueError(f"light-load window {window_h} is not (start, end) hours with 0 <= start < end <= 24 "
                         "(common/config.py LIGHT_LOAD_DAY_WINDOW_H)")
    variants = [v for v in config.VARIANTS if v in curves_kw] + sorted(set(curves_kw) - set(config.VARIANTS))
    days = season_days(interval_start, months)
    if not len(days):
        raise ValueError(f"the curve has no whole day in months {months}")
    hours = np.arange(STEPS) * 24.0 / STEPS
    window = (hours >= start_h) & (hours < end_h)
    if not window.any():
        raise ValueError(f"light-load window {window_h} holds no 15-min interval start")
    stack = np.stack([np.asarray(curves_kw[v], dtype=float)[:(days.max() + 1) * STEPS].reshape(-1, STEPS)[days]
                      for v in variants])                                   # (variant, day, interval)
    daytime = np.where(window[None, None, :], stack, np.inf)
    low = daytime.min(axis=2)                                               # (variant, day)
    day_low = low.min(axis=0)
    d = int(np.argmin(day_low))                                             # the first (earliest) day on a tie
    v = int(np.argmin(low[:, d]))                                           # the first variant on a tie
    step = int(np.argmin(daytime[v, d]))
    day_peak = stack[:, d, :].max(axis=1)
    pv_ = int(np.argmax(day_peak))
    peak_step = int(np.argmax(stack[pv_, d]))
    origin = interval_start[0].normalize()
    start = interval_start[int(days[d]) * STEPS + step]
    peak_start = interval_start[int(days[d]) * STEPS + peak_step]
    return {"date": start.date().isoformat(), "day_of_year": int((start.normalize() - origin).days),
            "peak_variant": variants[pv_], "peak_kw": float(day_peak[pv_]), "peak_interval_start": peak_start.isoformat(),
            "min_daytime_kw": float(daytime[v, d, step]), "min_daytime_interval_start": start.isoformat(),
            "min_daytime_variant": variants[v]}


def peak_days(days: pd.DataFrame) -> pd.DataFrame:
    """The peak design days (``kind`` peak, ranks 1..K) of :func:`read_design_days`' table."""
    return days[days["kind"] == "peak"]


def light_load_rank(days: pd.DataFrame, feeder: str, season: str) -> int | None:
    """The rank of the feeder's light-load day of ``season`` in :func:`read_design_days`' table, or None."""
    rows = days[(days["feeder"] == feeder) & (days["season"] == season) & (days["kind"] == "light_load")]
    return int(rows["rank"].iloc[0]) if len(rows) else None


def day_ranks(days: pd.DataFrame, feeder: str, season: str) -> pd.DataFrame:
    """The design-day rows of one feeder and season (:func:`read_design_days`), by rank (1 first)."""
    return days[(days["feeder"] == feeder) & (days["season"] == season)].sort_values("rank", kind="stable")


def variant_feeder_curves(buildings: pd.DataFrame, eulp_root: Path, state: str, seasons: list[str],
                          transform: Transform | None = None,
                          variants: tuple[str, ...] = config.VARIANTS
                          ) -> tuple[dict[str, dict[str, dict[str, np.ndarray]]], pd.DatetimeIndex]:
    """Every feeder's curve [kW] with all its buildings in one variant: ``{season: {variant: {feeder:
    curve}}}`` and the interval starts.

    A feeder's curve sums, over its rows of ``feeder_buildings.csv``, ``scale`` x the building's kW
    in the variant's upgrade (``common.eulp.variant_rule``), the sum phase 2 makes of the baseline
    and phase 6 of the daily profiles (``scale`` x ``p_pu`` x the building's baseline annual peak).
    Where the rule asks for a load shift (the demand-managed variant), ``transform`` (phase 4's
    model, the one ``write_variant_profiles`` applies) is applied to every day of the season's months
    (``SEASON_MONTHS``), each day on its own as phase 4 applies it to the design day; the other days
    of that season's curve keep the upgrade's kW unshifted (they are not searched). Each building
    file is read once, and its load shift computed once (with its first row: phase 4's model
    depends on the building, not on the feeder or shape it serves).
    """
    hvac_columns = list(config.EULP_HVAC_KWH)
    curves: dict[str, dict[str, dict[str, np.ndarray]]] = {s: {v: {} for v in variants} for s in seasons}
    index: pd.DatetimeIndex | None = None
    days: dict[str, np.ndarray] = {}
    for (cls, bldg_id, building_type, release), group in buildings.groupby(
            ["class", "bldg_id", "building_type", "release"], sort=True, dropna=False):
        btype = building_type if isinstance(building_type, str) else None
        rules = {v: eulp.variant_rule(cls, btype, v) for v in variants}
        shifted_upgrades = {int(r["upgrade"]) for r in rules.values() if r["load_shift"]}
        if shifted_upgrades and transform is None:
            raise ProfileError(f"building {bldg_id} has a load-shifted variant: give phase 4's load-shift model")
        frames: dict[int, pd.DataFrame] = {}
        for upgrade in sorted({int(r["upgrade"]) for r in rules.values()}):
            columns = (config.EULP_TOTAL_KWH, *hvac_columns) if upgrade in shifted_upgrades else (config.EULP_TOTAL_KWH,)
            path = building_file(eulp_root, release, state, int(bldg_id), upgrade)
            frame = read_building_kw(path, columns=columns)
            if index is None:
                index = frame.index
                days = {s: season_days(index, config.SEASON_MONTHS[s]) for s in seasons}
            elif len(frame.index) != len(index) or not (frame.index == index).all():
                raise eulp.EULPError(f"{path}: its timestamps differ from the other buildings'")
            frames[upgrade] = frame
        # the building's kW per variant and season; a load shift is computed once per building, with
        # its first row: phase 4's model depends on the building (class, release, bldg_id), not on the
        # feeder or shape it serves (tests/test_design_day.py checks that it still does not)
        first = group.iloc[0]
        kw_of: dict[tuple[str, str], np.ndarray] = {}
        for v, rule in rules.items():
            frame = frames[int(rule["upgrade"])]
            total = frame[config.EULP_TOTAL_KWH].to_numpy()
            hvac = frame[hvac_columns].sum(axis=1).to_numpy() if rule["load_shift"] else None
            for s in seasons:
                if hvac is None:
                    kw_of[(v, s)] = total
                    continue
                kw = total.copy()
                for d in days[s]:
                    kw[d * STEPS:(d + 1) * STEPS] = transform(day_slice(total, d), day_slice(hvac, d), s, first)
                kw_of[(v, s)] = kw
        for feeder, scale in zip(group["feeder"], group["scale"].astype(float)):
            for (v, s), kw in kw_of.items():
                curves[s][v][feeder] = curves[s][v].get(feeder, 0.0) + scale * kw
    if index is None:
        raise ProfileError("no building to sum: feeder_buildings.csv lists none")
    return curves, index
