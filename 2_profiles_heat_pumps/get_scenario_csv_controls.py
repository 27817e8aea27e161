"""Baseline daily profiles and the shape-to-file table of every heat-pump variant.

Description
    1. Writes the BASELINE variant's daily files: for each feeder, season and shape, the matched
       building's baseline kW on the feeder's design day, per unit of its baseline annual peak,
       with kVAr from phase 3's ratios (``common.profiles``). Phases 4 and 5 write the
       demand-managed and uncontrolled files the same way.
    2. Writes, per season, the table phase 6 uses to point each customer at its variant's profile:
       one row per feeder, shape and variant, with the daily file's path (relative to the data
       folder), the building, the upgrade, whether the load shift applies, and the rule's reason.
       Customers of one shape that get different variants point at different files.

    The storage-control settings are not copied here: phase 6 reads ``common.config.STORAGE``.

Inputs
    <data>/2_profiles_heat_pumps/<STATE>/feeder_buildings.csv, design_days.csv   (this phase)
    <data>/3_kvar_kw_prep/<STATE>/kvar_kw_ratio.parquet                         (phase 3)
    EULP baseline files                                                         (phase 1c)
    Each is refused when its own inputs changed after it was made (``common.profiles.check_current``).

Outputs
    <data>/2_profiles_heat_pumps/<STATE>/daily/<feeder>/<season>/<shape>.csv    p_pu, q_pu, interval_start
    <data>/2_profiles_heat_pumps/<STATE>/daily_profiles_<season>.parquet        the same, long format
    <data>/2_profiles_heat_pumps/<STATE>/scenario_profiles_<season>.csv         feeder, season, shape,
        class, bldg_id, building_type, variant, upgrade, load_shift, reason, file

Settings read
    common.config: HEAT_PUMP_VARIANT_RULES, VARIANTS

Usage
    python 2_profiles_heat_pumps/get_scenario_csv_controls.py --state NC [--season summer winter]
        [--eulp-root DIR] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from common import cli, config, eulp, profiles
from common.io import exclusive_step, clean_temporaries, write_csv
from common.paths import Workspace

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name


def scenario_table(ws: Workspace, state: str, buildings: pd.DataFrame, season: str) -> pd.DataFrame:
    rows = []
    for _, b in buildings.sort_values(["feeder", "shape"]).iterrows():
        btype = b["building_type"] if isinstance(b["building_type"], str) else None
        for variant in config.VARIANTS:
            rule = eulp.variant_rule(b["class"], btype, variant)
            path = ws.daily_profile(state, variant, b["feeder"], season, b["shape"])
            rows.append({"feeder": b["feeder"], "season": season, "shape": b["shape"], "class": b["class"],
                         "bldg_id": int(b["bldg_id"]), "building_type": btype, "variant": variant,
                         "upgrade": int(rule["upgrade"]), "load_shift": bool(rule["load_shift"]),
                         "reason": rule["reason"], "file": str(path.relative_to(ws.root))})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="get_scenario_csv_controls.py")
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
        clean_temporaries(ws.daily_profiles_dir(args.state, "baseline"), recursive=True)
        return run(args, ws)


def run(args: argparse.Namespace, ws: Workspace) -> int:
    state = args.state
    seasons = sorted(set(args.season), key=config.SEASONS.index)
    eulp_root = cli.eulp_root(args, ws)
    inputs = profiles.Inputs(ws)
    buildings = profiles.read_feeder_buildings(ws, state, inputs)
    try:
        tables = {season: scenario_table(ws, state, buildings, season) for season in seasons}
        profiles.write_variant_profiles(ws, state, "baseline", eulp_root, seasons)
    except (profiles.ProfileError, eulp.EULPError) as exc:
        raise cli.UserError(str(exc)) from None
    written = [write_csv(ws.scenario_controls(state, season), tables[season]) for season in seasons]
    inputs.record(written, profiles.PRODUCERS["baseline"])
    logger.info("%s: baseline daily profiles and scenario tables (%s) written", state, ", ".join(seasons))
    cli.record(__file__, ws.profiles_dir(state), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
