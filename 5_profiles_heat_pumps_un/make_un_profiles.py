"""Uncontrolled heat pumps: daily profiles on the feeder's design day (phase 2's rule).

Description
    The uncontrolled variant of every building is the release's heat-pump upgrade that its rule
    names (``common.config.HEAT_PUMP_VARIANT_RULES``, variant ``un``: residential ENERGY STAR heat
    pump with electric backup, commercial heat-pump RTU or heat-pump boiler with electric backup),
    cut to the feeder's design day of phase 2 and written per unit of the building's BASELINE annual
    peak, with kVAr from phase 3's ratio at the same intervals (``common.profiles``). No control.

Inputs
    <data>/2_profiles_heat_pumps/<STATE>/feeder_buildings.csv, design_days.csv   (phase 2)
    <data>/3_kvar_kw_prep/<STATE>/kvar_kw_ratio.parquet                         (phase 3)
    (each refused when its own inputs changed after it was made: common.profiles.check_current)
    EULP files of the heat-pump upgrades                                        (phase 1c)

Outputs
    <data>/5_profiles_heat_pumps_un/<STATE>/daily/<feeder>/<season>/<shape>.csv  p_pu, q_pu, interval_start
    <data>/5_profiles_heat_pumps_un/<STATE>/daily_profiles_<season>.parquet      the same, long format

Settings read
    common.config: HEAT_PUMP_VARIANT_RULES

Usage
    python 5_profiles_heat_pumps_un/make_un_profiles.py --state NC [--season summer winter]
        [--eulp-root DIR] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from common import cli, config, eulp, profiles
from common.io import exclusive_step
from common.paths import Workspace

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name


def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="make_un_profiles.py")
    cli.add_state(parser)
    cli.add_season(parser, multiple=True)
    cli.add_eulp_root(parser)
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    out = ws.variant_dir(args.state, "un")
    with exclusive_step(out, SCRIPT, recursive=True):
        return run(args, ws)


def run(args: argparse.Namespace, ws: Workspace) -> int:
    state = args.state
    seasons = sorted(set(args.season), key=config.SEASONS.index)
    eulp_root = cli.eulp_root(args, ws)
    try:
        profiles.write_variant_profiles(ws, state, "un", eulp_root, seasons)
    except (profiles.ProfileError, eulp.EULPError) as exc:
        raise cli.UserError(str(exc)) from None
    cli.record(__file__, ws.variant_dir(state, "un"), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
