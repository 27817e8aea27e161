"""Baseline feeder curves and each feeder's design day per season.

Description
    The baseline feeder curve is the sum over the feeder's shapes of the matched building's kW
    (4 x kWh per 15 min, from the EULP file) times the shape's scale (customers' annual peak sum /
    building's annual peak; ``scale_feeder_curves.py``). EULP timestamps label the END of each
    interval: they are turned into interval starts (``common.eulp.read_building_kw``), so that the
    day of an interval is the day it starts in and 00:00-00:15 belongs to the new day.

    A season's design day is the day holding the curve's highest 15-min value among the intervals
    of the season's months (``SEASON_MONTHS``: summer Jun-Aug, winter Dec-Feb). One design day per
    feeder and season, shared by every heat-pump variant; the day, its peak and the peak's time are
    written down.

Inputs (``<data>/2_profiles_heat_pumps/<STATE>/``)
    feeder_buildings.csv (scale_feeder_curves.py; refused when its inputs changed since it was made);
    EULP baseline files (phase 1c)

Outputs (same folder; read by phases 3, 4, 5 and 6)
    design_days.csv                  state, feeder, season, date, day_of_year (0-based), peak_kw,
                                     peak_interval_start, months
    feeder_curves_baseline.parquet   feeder, interval_start, kw (the whole year)

Settings read
    common.config: SEASON_MONTHS, SEASONS

Usage
    python 2_profiles_heat_pumps/find_max_day_curve.py --state NC [--eulp-root DIR] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from common import cli, config, eulp, profiles
from common.io import exclusive_step, write_csv, write_parquet
from common.paths import Workspace
from common.profiles import building_file

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name


#: the design-day rule, shared with phase 6's feeders that bring their own yearly shapes
design_day = profiles.design_day


def feeder_curves(table: pd.DataFrame, eulp_root: Path, state: str) -> tuple[dict[str, np.ndarray], pd.DatetimeIndex]:
    """Baseline curve [kW] of every feeder; each building file is read once."""
    curves: dict[str, np.ndarray] = {}
    index = None
    for (release, bldg_id), group in table.groupby(["release", "bldg_id"], sort=True):
        frame = profiles.read_building_kw(building_file(eulp_root, release, state, int(bldg_id), 0))
        if index is None:
            index = frame.index
        elif len(frame.index) != len(index) or not (frame.index == index).all():
            raise eulp.EULPError(f"building {bldg_id}: its timestamps differ from the other buildings'")
        kw = frame[config.EULP_TOTAL_KWH].to_numpy()
        for feeder, scale in zip(group["feeder"], group["scale"]):
            curves[feeder] = curves.get(feeder, 0.0) + scale * kw
    return curves, index


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="find_max_day_curve.py")
    cli.add_state(parser)
    cli.add_season(parser, multiple=True)
    cli.add_eulp_root(parser)
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    out = ws.profiles_dir(args.state)
    with exclusive_step(out, SCRIPT):
        return run(args, ws)


def run(args: argparse.Namespace, ws: Workspace) -> int:
    state = args.state
    eulp_root = cli.eulp_root(args, ws)
    inputs = profiles.Inputs(ws)
    table = profiles.read_feeder_buildings(ws, state, inputs)
    try:
        curves, index = feeder_curves(table, eulp_root, state)
    except eulp.EULPError as exc:
        raise cli.UserError(str(exc)) from None
    rows, frames = [], []
    for feeder in sorted(curves):
        for season in sorted(set(args.season), key=config.SEASONS.index):
            months = config.SEASON_MONTHS[season]
            try:
                day = design_day(curves[feeder], index, months)
            except ValueError as exc:
                raise cli.UserError(f"{feeder} {season}: {exc} (the EULP files' year)") from None
            day.pop("peak_index")
            rows.append({"state": state, "feeder": feeder, "season": season, **day,
                         "months": "-".join(str(m) for m in months)})
            logger.info("%s %s: design day %s, peak %.0f kW at %s", feeder, season, day["date"], day["peak_kw"],
                        day["peak_interval_start"][11:16])
        frames.append(pd.DataFrame({"feeder": feeder, "interval_start": index, "kw": curves[feeder]}))
    outputs = [write_csv(ws.design_days(state), pd.DataFrame(rows)),
               write_parquet(ws.feeder_curves(state), pd.concat(frames, ignore_index=True))]
    inputs.record(outputs, profiles.PRODUCERS["design_days"])
    cli.record(__file__, ws.profiles_dir(state), args, season_months=config.SEASON_MONTHS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
