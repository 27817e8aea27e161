"""Demand-managed heat pumps: daily profiles on the feeder's design day (phase 2's rule), with staggered load shifting.

Description
    The demand-managed variant of every building uses the upgrade its rule names
    (``common.config.HEAT_PUMP_VARIANT_RULES``, variant ``dm``). Where the release has a
    demand-flexibility upgrade acting on heat pumps, that upgrade's curve is used as is. Where it
    has none (both supported releases; see the rules' reasons), the heat pump's curve is managed by
    the load-shift model below, applied to the heating and cooling end uses only:

    * in each peak window of the season (``LOAD_SHIFT[season]["window_hours"]``, the utilities'
      winter-morning/evening and summer-afternoon peak periods), moved by the building's own
      offset (below), ``shed_fraction`` of the HVAC load is shed;
    * ``pre_share`` of the shed energy is put back before the window (pre-heating or pre-cooling
      over ``pre_hours``), the rest after it (rebound over ``rebound_hours``), each part
      water-filled into the building's lowest intervals of that period under a ceiling (the
      highest managed load outside the windows), so that the shift does not raise the building's
      peak; energy that does not fit goes to the lowest intervals of the rest of the day;
    * the day's energy is kept (times ``1 + energy_penalty`` on the moved energy, 0 by default).

    Staggering. With one clock for every building, every building pre-heats in the same hours
    just before the window, and the feeder gets a new peak there (sample feeder udt5219, winter:
    18,157 kW demand-managed against 18,637 kW uncontrolled). A utility runs a load-shift
    programme in enrolment groups whose events start and end at staggered times, so that the
    groups' pre-heat and rebound (snap-back) do not coincide. Here every building is its own
    group: its windows, with their pre-heat and rebound periods, move by an offset drawn
    uniformly on a ``LOAD_SHIFT_STAGGER["step_h"]`` grid in [-spread_h, +spread_h] (default
    +/- 2 h in 15-min steps), the same in every season and on every feeder. The offset's random
    stream is ``numpy.random.SeedSequence([seed, *w])``, ``w`` the eight 32-bit big-endian words
    of SHA-256("<class>/<release>/<bldg_id>"): it depends on the building alone, not on the
    order of the buildings or on which feeders are present. ``spread_h`` 0 gives one shared
    clock (the earlier behaviour). Source assumption: utility demand-response programmes stagger
    their groups to avoid the rebound peak of a synchronised event; the rebound (snap-back) of
    synchronised load shifting is discussed in the load-flexibility literature, e.g. Hledik et
    al., "The National Potential for Load Flexibility" (The Brattle Group, 2019) and Satchwell et
    al., "A National Roadmap for Grid-Interactive Efficient Buildings" (U.S. DOE / LBNL, 2021).
    Neither gives the spread: +/- 2 h uniform is this project's assumption (it keeps the moved
    windows within the wider winter-morning, winter-evening and summer-afternoon peak periods).

    The files, their format and their design day are exactly those of the baseline (phase 2);
    kVAr follows phase 3's ratio at the same intervals. The offset of every building and the
    windows it gives are written to ``dm_window_offsets.csv``.

Inputs
    <data>/2_profiles_heat_pumps/<STATE>/feeder_buildings.csv, design_days.csv   (phase 2)
    <data>/3_kvar_kw_prep/<STATE>/kvar_kw_ratio.parquet                         (phase 3)
    (each refused when its own inputs changed after it was made: common.profiles.check_current)
    EULP files of the heat-pump upgrades                                        (phase 1c)

Outputs
    <data>/4_profiles_heat_pumps_dm/<STATE>/daily/<feeder>/<season>/<shape>.csv  p_pu, q_pu, interval_start
    <data>/4_profiles_heat_pumps_dm/<STATE>/daily_profiles_<season>.parquet      the same, long format
    <data>/4_profiles_heat_pumps_dm/<STATE>/dm_window_offsets.csv   one row per load-shifted building:
        class, release, bldg_id, building_type, offset_h (its windows' shift [h], + later),
        windows_<season> (the shifted windows, "HH:MM-HH:MM" separated by ";")
    (each with its record of inputs, common.profiles.Inputs)

Settings read
    common.config: HEAT_PUMP_VARIANT_RULES, LOAD_SHIFT, LOAD_SHIFT_STAGGER, EULP_HVAC_KWH

Usage
    python 4_profiles_heat_pumps_dm/make_dm_profiles.py --state NC [--season summer winter]
        [--eulp-root DIR] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from common import cli, config, eulp, profiles
from common.io import exclusive_step, write_csv
from common.paths import Workspace
from common.waterfill import water_fill

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name

STEPS = config.INTERVALS_PER_DAY
DT_H = config.INTERVAL_H


def _steps(start_h: float, end_h: float) -> np.ndarray:
    """Interval indices of [start_h, end_h) on the 96-step day, wrapping around midnight."""
    first, last = int(round(start_h / DT_H)), int(round(end_h / DT_H))
    return np.arange(first, last) % STEPS


def load_shift(total_kw: np.ndarray, hvac_kw: np.ndarray, settings: dict) -> np.ndarray:
    """The day's total kW after shedding and shifting HVAC load around the peak windows.

    ``total_kw`` and ``hvac_kw``: 96 values [kW]; ``settings``: one season of LOAD_SHIFT.
    The shed energy goes back before (``pre_share``) and after each window, water-filled under a
    ceiling: the highest managed load outside the windows, so the shift never raises the
    building's peak where the energy fits below it; what does not fit is water-filled over all
    hours outside the windows. The moved energy is conserved (times 1 + energy_penalty).
    """
    total_kw = np.asarray(total_kw, dtype=float)
    hvac_kw = np.clip(np.asarray(hvac_kw, dtype=float), 0.0, None)
    window = np.zeros(STEPS, dtype=bool)
    for start, end in settings["window_hours"]:
        window[_steps(start, end)] = True
    shed = np.where(window, settings["shed_fraction"] * hvac_kw, 0.0)
    out = total_kw - shed
    outside = np.nonzero(~window)[0]
    ceiling = out[outside].max() if len(outside) else out.max()
    leftover_kwh = 0.0
    for start, end in settings["window_hours"]:
        steps = _steps(start, end)
        energy = shed[steps].sum() * DT_H * (1.0 + settings.get("energy_penalty", 0.0))
        if energy <= 0:
            continue
        for share, period in ((settings["pre_share"], _steps(start - settings["pre_hours"], start)),
                              (1.0 - settings["pre_share"], _steps(end, end + settings["rebound_hours"]))):
            period = np.unique(period[~window[period]])  # never put energy back into a peak window
            part = share * energy
            if len(period) == 0 or part <= 0:
                leftover_kwh += part
                continue
            room = np.clip(ceiling - out[period], 0.0, None)
            placed = min(part, room.sum() * DT_H)
            out[period] += water_fill(out[period], placed, room, DT_H)
            leftover_kwh += part - placed
    if leftover_kwh > 1e-12 and len(outside):
        out[outside] += water_fill(out[outside], leftover_kwh, np.inf, DT_H)
    return out


def stagger_steps(stagger: dict | None = None) -> tuple[int, float]:
    """(largest offset in grid steps, grid step [h]) of a LOAD_SHIFT_STAGGER setting, checked: its
    keys exactly spread_h, step_h, seed; the step a positive multiple of the 15-min interval, the
    spread a whole number of steps >= 0. Default: ``common.config.LOAD_SHIFT_STAGGER``."""
    stagger = config.LOAD_SHIFT_STAGGER if stagger is None else stagger
    fix = "set it in common/config.py LOAD_SHIFT_STAGGER"
    if set(stagger) != {"spread_h", "step_h", "seed"}:
        raise cli.UserError(f"LOAD_SHIFT_STAGGER keys {sorted(stagger)} are not spread_h, step_h, seed: {fix}")
    step_h, spread_h = float(stagger["step_h"]), float(stagger["spread_h"])
    if not (step_h > 0 and np.isclose(step_h / DT_H, round(step_h / DT_H))):
        raise cli.UserError(f"LOAD_SHIFT_STAGGER step_h {step_h!r} is not a positive multiple of {DT_H} h: {fix}")
    if not (spread_h >= 0 and np.isclose(spread_h / step_h, round(spread_h / step_h))):
        raise cli.UserError(f"LOAD_SHIFT_STAGGER spread_h {spread_h!r} is not a whole number >= 0 of "
                            f"step_h {step_h} h: {fix}")
    return round(spread_h / step_h), step_h


def building_key(cls: str, release: str, bldg_id: int) -> str:
    """The text a building's offset is seeded from (class, EULP release and building id)."""
    return f"{cls}/{release}/{int(bldg_id)}"


def window_offset_h(key: str, stagger: dict | None = None) -> float:
    """The shift [h] of one building's load-shift windows: uniform on the ``step_h`` grid in
    [-spread_h, +spread_h], from SeedSequence([seed, *SHA-256 words of ``key``]) (default
    setting: ``common.config.LOAD_SHIFT_STAGGER``)."""
    stagger = config.LOAD_SHIFT_STAGGER if stagger is None else stagger
    steps, step_h = stagger_steps(stagger)
    return _offset_h(key, steps, step_h, int(stagger["seed"]))


@functools.lru_cache(maxsize=65536)
def _offset_h(key: str, steps: int, step_h: float, seed: int) -> float:
    # cached: the design-day search of phase 2 shifts every day of a season with the same offset
    if steps == 0:
        return 0.0
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i:i + 4], "big") for i in range(0, len(digest), 4)]
    rng = np.random.default_rng(np.random.SeedSequence([seed, *words]))
    return float(rng.integers(-steps, steps + 1)) * step_h


def shifted(settings: dict, offset_h: float) -> dict:
    """One season of LOAD_SHIFT with its windows (and so their pre-heat and rebound) moved by
    ``offset_h``; a window may cross midnight (the design day is treated as periodic)."""
    windows = tuple((start + offset_h, end + offset_h) for start, end in settings["window_hours"])
    return {**settings, "window_hours": windows}


def _clock(hour: float) -> str:
    minutes = round(hour * 60) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def offsets_table(buildings: pd.DataFrame, seasons: list[str], variant: str = "dm") -> pd.DataFrame:
    """One row per building whose variant is load-shifted: its offset and shifted windows."""
    rows = []
    one = buildings.drop_duplicates(["class", "release", "bldg_id"]).sort_values(["class", "release", "bldg_id"])
    for _, b in one.iterrows():
        building_type = b["building_type"] if isinstance(b["building_type"], str) else None
        if not bool(eulp.variant_rule(b["class"], building_type, variant)["load_shift"]):
            continue
        offset = window_offset_h(building_key(b["class"], b["release"], b["bldg_id"]))
        row = {"class": b["class"], "release": b["release"], "bldg_id": int(b["bldg_id"]),
               "building_type": b["building_type"], "offset_h": offset}
        for season in seasons:
            windows = shifted(config.LOAD_SHIFT[season], offset)["window_hours"]
            row[f"windows_{season}"] = ";".join(f"{_clock(s)}-{_clock(e)}" for s, e in windows)
        rows.append(row)
    columns = ["class", "release", "bldg_id", "building_type", "offset_h", *[f"windows_{s}" for s in seasons]]
    return pd.DataFrame(rows, columns=columns)


def transform(total_kw: np.ndarray, hvac_kw: np.ndarray, season: str, building: pd.Series) -> np.ndarray:
    """The load shift of one building's day, its windows moved by the building's offset."""
    offset = window_offset_h(building_key(building["class"], building["release"], building["bldg_id"]))
    return load_shift(total_kw, hvac_kw, shifted(config.LOAD_SHIFT[season], offset))


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="make_dm_profiles.py")
    cli.add_state(parser)
    cli.add_season(parser, multiple=True)
    cli.add_eulp_root(parser)
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    out = ws.variant_dir(args.state, "dm")
    with exclusive_step(out, SCRIPT, recursive=True):
        return run(args, ws)


def offsets_path(ws: Workspace, state: str) -> Path:
    return ws.variant_dir(state, "dm") / "dm_window_offsets.csv"


def run(args: argparse.Namespace, ws: Workspace) -> int:
    state = args.state
    seasons = sorted(set(args.season), key=config.SEASONS.index)
    eulp_root = cli.eulp_root(args, ws)
    stagger_steps()  # a bad setting is refused before anything is read or written
    try:
        profiles.write_variant_profiles(ws, state, "dm", eulp_root, seasons, transform=transform)
    except (profiles.ProfileError, eulp.EULPError) as exc:
        raise cli.UserError(str(exc)) from None
    inputs = profiles.Inputs(ws)
    table = offsets_table(profiles.read_feeder_buildings(ws, state, inputs), seasons)
    inputs.record([write_csv(offsets_path(ws, state), table)], profiles.PRODUCERS["dm"])
    if len(table):
        logger.info("%s dm: window offsets of %d buildings from %+.2f h to %+.2f h (mean %+.2f h) -> %s", state,
                    len(table), table["offset_h"].min(), table["offset_h"].max(), table["offset_h"].mean(),
                    offsets_path(ws, state).name)
    cli.record(__file__, ws.variant_dir(state, "dm"), args, load_shift=config.LOAD_SHIFT,
               load_shift_stagger=config.LOAD_SHIFT_STAGGER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
