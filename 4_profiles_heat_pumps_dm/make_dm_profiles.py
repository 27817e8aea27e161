"""Demand-managed heat pumps: daily profiles on the baseline's design day, with load shifting.

Description
    The demand-managed variant of every building uses the upgrade its rule names
    (``common.config.HEAT_PUMP_VARIANT_RULES``, variant ``dm``). Where the release has a
    demand-flexibility upgrade acting on heat pumps, that upgrade's curve is used as is. Where it
    has none (both supported releases; see the rules' reasons), the heat pump's curve is managed by
    the load-shift model below, applied to the heating and cooling end uses only:

    * in each peak window of the season (``LOAD_SHIFT[season]["window_hours"]``, the utilities'
      winter-morning/evening and summer-afternoon peak periods), ``shed_fraction`` of the HVAC
      load is shed;
    * ``pre_share`` of the shed energy is put back before the window (pre-heating or pre-cooling
      over ``pre_hours``), the rest after it (rebound over ``rebound_hours``), each part
      water-filled into the building's lowest intervals of that period under a ceiling (the
      highest managed load outside the windows), so that the shift does not raise the building's
      peak; energy that does not fit goes to the lowest intervals of the rest of the day;
    * the day's energy is kept (times ``1 + energy_penalty`` on the moved energy, 0 by default).

    The files, their format and their design day are exactly those of the baseline (phase 2);
    kVAr follows phase 3's ratio at the same intervals.

Inputs
    <data>/2_profiles_heat_pumps/<STATE>/feeder_buildings.csv, design_days.csv   (phase 2)
    <data>/3_kvar_kw_prep/<STATE>/kvar_kw_ratio.parquet                         (phase 3)
    (each refused when its own inputs changed after it was made: common.profiles.check_current)
    EULP files of the heat-pump upgrades                                        (phase 1c)

Outputs
    <data>/4_profiles_heat_pumps_dm/<STATE>/daily/<feeder>/<season>/<shape>.csv  p_pu, q_pu, interval_start
    <data>/4_profiles_heat_pumps_dm/<STATE>/daily_profiles_<season>.parquet      the same, long format

Settings read
    common.config: HEAT_PUMP_VARIANT_RULES, LOAD_SHIFT, EULP_HVAC_KWH

Usage
    python 4_profiles_heat_pumps_dm/make_dm_profiles.py --state NC [--season summer winter]
        [--eulp-root DIR] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from common import cli, config, eulp, profiles
from common.io import exclusive_step
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


def transform(total_kw: np.ndarray, hvac_kw: np.ndarray, season: str) -> np.ndarray:
    return load_shift(total_kw, hvac_kw, config.LOAD_SHIFT[season])


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


def run(args: argparse.Namespace, ws: Workspace) -> int:
    state = args.state
    seasons = sorted(set(args.season), key=config.SEASONS.index)
    eulp_root = cli.eulp_root(args, ws)
    try:
        profiles.write_variant_profiles(ws, state, "dm", eulp_root, seasons, transform=transform)
    except (profiles.ProfileError, eulp.EULPError) as exc:
        raise cli.UserError(str(exc)) from None
    cli.record(__file__, ws.variant_dir(state, "dm"), args, load_shift=config.LOAD_SHIFT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
