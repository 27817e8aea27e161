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
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from common import config, eulp
from common.io import atomic_path, write_parquet
from common.paths import Workspace

logger = logging.getLogger(__name__)

STEPS = config.INTERVALS_PER_DAY
#: a variant transform: (total kW of the day, HVAC kW of the day, season) -> new total kW
Transform = Callable[[np.ndarray, np.ndarray, str], np.ndarray]


class ProfileError(ValueError):
    """A daily profile that cannot be made; the message names the building, feeder or file."""


def require_inputs(ws: Workspace, state: str) -> None:
    """Fail clearly, naming the producing script, when an input of a variant's profiles is missing."""
    from common.cli import require

    require(ws.feeder_buildings(state), "2_profiles_heat_pumps/scale_feeder_curves.py")
    require(ws.design_days(state), "2_profiles_heat_pumps/find_max_day_curve.py")
    require(ws.kvar_ratios(state), "3_kvar_kw_prep/rev_spec_kvar_kw_ratio.py")


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


def read_daily(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    if list(frame.columns[:2]) != ["p_pu", "q_pu"] or len(frame) != STEPS:
        raise ProfileError(f"{path}: expected 96 rows with columns p_pu,q_pu")
    return frame


def write_variant_profiles(ws: Workspace, state: str, variant: str, eulp_root: Path, seasons: list[str],
                           transform: Transform | None = None) -> pd.DataFrame:
    """Write the daily files of one variant for every feeder and season; returns the index table.

    ``transform`` is applied where the variant's rule asks for a load shift; a rule that asks for
    one with no transform given is an error (the load-shift model lives in phase 4).
    """
    buildings = pd.read_csv(ws.feeder_buildings(state))
    days = pd.read_csv(ws.design_days(state))
    ratios = pd.read_parquet(ws.kvar_ratios(state))
    ratio_lookup = {key: g.sort_values("step")["ratio"].to_numpy()
                    for key, g in ratios.groupby(["subregion", "shape", "day_of_year"], sort=False)}
    hvac_columns = list(config.EULP_HVAC_KWH)
    rows, table = [], []
    for (cls, bldg_id, building_type, release), group in buildings.groupby(
            ["class", "bldg_id", "building_type", "release"], sort=True, dropna=False):
        rule = eulp.variant_rule(cls, building_type if isinstance(building_type, str) else None, variant)
        upgrade, shift = int(rule["upgrade"]), bool(rule["load_shift"])
        if shift and transform is None:
            raise ProfileError(f"variant {variant} of building {bldg_id} needs the load-shift model of phase 4")
        # each building is read once (the groups are per building), one at a time: memory stays flat
        columns = (config.EULP_TOTAL_KWH, *hvac_columns) if shift else (config.EULP_TOTAL_KWH,)
        frame = eulp.read_building_kw(building_file(eulp_root, release, state, int(bldg_id), upgrade), columns=columns)
        total = frame[config.EULP_TOTAL_KWH].to_numpy()
        hvac = frame[hvac_columns].sum(axis=1).to_numpy() if shift else None
        for _, b in group.iterrows():
            ref_kw = float(b["building_peak_kw"])
            if not (ref_kw > 0):
                raise ProfileError(f"building {bldg_id}: baseline annual peak {ref_kw} kW is not positive")
            for season in seasons:
                day = days[(days["feeder"] == b["feeder"]) & (days["season"] == season)]
                if day.empty:
                    raise ProfileError(f"no {season} design day for feeder {b['feeder']}: run find_max_day_curve.py")
                d = int(day["day_of_year"].iloc[0])
                kw = day_slice(total, d)
                if shift:
                    kw = transform(kw, day_slice(hvac, d), season)
                ratio = ratio_lookup.get((b["subregion"], b["shape"], d))
                if ratio is None:
                    raise ProfileError(f"no kVAr/kW ratio for {b['shape']} on day {d}: run "
                                       "3_kvar_kw_prep/rev_spec_kvar_kw_ratio.py")
                p_pu = kw / ref_kw
                q_pu = p_pu * ratio
                if not (np.isfinite(p_pu).all() and np.isfinite(q_pu).all()):
                    raise ProfileError(f"building {bldg_id} upgrade {upgrade}: NaN or inf on day {d}")
                starts = frame.index[d * STEPS:(d + 1) * STEPS]
                path = ws.daily_profile(state, variant, b["feeder"], season, b["shape"])
                with atomic_path(path) as tmp:
                    tmp.write_text(format_daily(p_pu, q_pu, starts))
                rows.append({"feeder": b["feeder"], "season": season, "shape": b["shape"], "class": cls,
                             "bldg_id": int(bldg_id), "variant": variant, "upgrade": upgrade, "load_shift": shift,
                             "day_of_year": d, "file": str(path.relative_to(ws.root))})
                table.append(pd.DataFrame({"feeder": b["feeder"], "season": season, "shape": b["shape"],
                                           "step": np.arange(STEPS), "interval_start": starts, "p_pu": p_pu,
                                           "q_pu": q_pu}))
    index = pd.DataFrame(rows).sort_values(["feeder", "season", "shape"]).reset_index(drop=True)
    long = pd.concat(table, ignore_index=True) if table else pd.DataFrame()
    for season in seasons:
        part = long[long["season"] == season].sort_values(["feeder", "shape", "step"]).reset_index(drop=True)
        write_parquet(ws.daily_profile_table(state, variant, season), part)
    logger.info("%s %s: %d daily files (%d buildings, %d feeders, seasons %s)", state, variant, len(index),
                index["bldg_id"].nunique() if len(index) else 0, index["feeder"].nunique() if len(index) else 0,
                ", ".join(seasons))
    return index
