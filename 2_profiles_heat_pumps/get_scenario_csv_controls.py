"""Baseline daily profiles, the shape-to-file table of every variant, and the storage-control table.

Description
    1. Writes the BASELINE variant's daily files: for each feeder, season and shape, the matched
       building's baseline kW on the feeder's design day, per unit of its baseline annual peak,
       with kVAr from phase 3's ratios (``common.profiles``). Phases 4 and 5 write the
       demand-managed and uncontrolled files the same way.
    2. Writes, per season, the table phase 6 uses to point each customer at its variant's profile:
       one row per feeder, shape and variant, with the daily file's path (relative to the data
       folder), the building, the upgrade, whether the load shift applies, and the rule's reason.
       Customers of one shape that get different variants point at different files.
    3. Writes the storage-control defaults that phase 6 reads (``common.config.STORAGE``: sizing
       0.75 x host peak, 4 h, peak target factor 0.8, 20 % reserve, 95 % efficiencies), with units.

Inputs
    <data>/2_profiles_heat_pumps/<STATE>/feeder_buildings.csv, design_days.csv   (this phase)
    <data>/3_kvar_kw_prep/<STATE>/kvar_kw_ratio.parquet                         (phase 3)
    EULP baseline files                                                         (phase 1c)

Outputs
    <data>/2_profiles_heat_pumps/<STATE>/daily/<feeder>/<season>/<shape>.csv    p_pu, q_pu, interval_start
    <data>/2_profiles_heat_pumps/<STATE>/daily_profiles_<season>.parquet        the same, long format
    <data>/2_profiles_heat_pumps/<STATE>/scenario_profiles_<season>.csv         feeder, season, shape,
        class, bldg_id, building_type, variant, upgrade, load_shift, reason, file
    <data>/2_profiles_heat_pumps/storage_controls.csv                          parameter, value, unit, meaning

Settings read
    common.config: HEAT_PUMP_VARIANT_RULES, VARIANTS, STORAGE

Usage
    python 2_profiles_heat_pumps/get_scenario_csv_controls.py --state NC [--season summer winter]
        [--eulp-root DIR] [--data-dir DIR]
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

import pandas as pd

from common import cli, config, eulp, profiles
from common.io import write_csv

logger = logging.getLogger(__name__)

STORAGE_MEANING = {
    "size_factor": ("x host annual peak kW", "battery kW rating per kW of the host's annual peak"),
    "min_kw": ("kW", "smallest battery rating"),
    "duration_h": ("h", "energy rating / power rating"),
    "kva_factor": ("kVA per kW", "inverter kVA per kW of rating (kVA = kW / 0.9)"),
    "eff_charge": ("fraction", "charging efficiency"),
    "eff_discharge": ("fraction", "discharging efficiency"),
    "reserve": ("fraction of kWh rating", "lowest state of charge"),
    "peak_target_factor": ("x day's peak", "the fleet never shaves below this fraction of the day's peak"),
}


def storage_table() -> pd.DataFrame:
    return pd.DataFrame([{"parameter": k, "value": float(v), "unit": STORAGE_MEANING[k][0],
                          "meaning": STORAGE_MEANING[k][1]} for k, v in config.STORAGE.items()])


def scenario_table(ws, state: str, buildings: pd.DataFrame, season: str) -> pd.DataFrame:
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
    state = args.state
    seasons = sorted(set(args.season), key=config.SEASONS.index)
    eulp_root = cli.eulp_root(args, ws)
    buildings = pd.read_csv(cli.require(ws.feeder_buildings(state), "2_profiles_heat_pumps/scale_feeder_curves.py"))
    cli.require(ws.design_days(state), "2_profiles_heat_pumps/find_max_day_curve.py")
    cli.require(ws.kvar_ratios(state), "3_kvar_kw_prep/rev_spec_kvar_kw_ratio.py")
    try:
        profiles.write_variant_profiles(ws, state, "baseline", eulp_root, seasons)
    except (profiles.ProfileError, eulp.EULPError) as exc:
        raise cli.UserError(str(exc)) from None
    for season in seasons:
        write_csv(ws.scenario_controls(state, season), scenario_table(ws, state, buildings, season))
    write_csv(ws.storage_controls, storage_table())
    logger.info("%s: baseline daily profiles, scenario tables (%s) and %s written", state, ", ".join(seasons),
                ws.storage_controls.name)
    cli.record(__file__, ws.profiles_dir(state), args, storage=config.STORAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
