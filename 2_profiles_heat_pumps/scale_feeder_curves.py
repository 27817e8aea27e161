"""Map every feeder's customers to their EULP buildings, with counts, scales and variant upgrades.

Description
    Joins phase 1b's customer table to the representative family: for each feeder and SMART-DS
    shape, the chosen EULP building, how many customers use the shape and the sum of their annual
    peaks (Loads.dss ``kW``). Each building's baseline annual peak is read from its 15-min file, so
    that ``scale = customers' peak sum / building peak`` turns the building's curve into the
    customers' curve (the feeder keeps the customer sizes SMART-DS designed it for; EULP gives
    the shape and the heat-pump change). A feeder with a customer whose shape has no building is
    left out, with the shapes named.

    Also writes the record of which upgrade each building type uses for each heat-pump variant,
    by the rule in ``common.config.HEAT_PUMP_VARIANT_RULES`` (building type first, not annual
    energy), with its reason.

Inputs
    <data>/1b_smartds_eulp_match/<STATE>/customers.parquet (circuit_make_daily_list_sets.py),
        <STATE>_final_{residential,commercial}.csv (select_rep_family.py)
    <eulp-root>/<release>/timeseries_individual_buildings/... baseline files    (phase 1c)

Outputs (``<data>/2_profiles_heat_pumps/<STATE>/``; read by the rest of phases 2-5 and phase 6)
    feeder_buildings.csv   state, feeder, subregion, shape, class, release, bldg_id, building_type,
                           n_customers, customers_peak_kw, building_peak_kw, scale
    feeder_status.csv      feeder, status (ok / excluded), reason, n_customers, n_shapes
    variant_upgrades.csv   class, release, building_type, variant, upgrade, upgrade_name,
                           load_shift, reason, n_buildings

Settings read
    common.config: EULP_RELEASES, HEAT_PUMP_VARIANT_RULES, VARIANTS

    Each output keeps a record of the inputs it was made from (``common.profiles.Inputs``); the
    later phase 2-5 scripts refuse outputs whose inputs changed since, so that a refusal here
    (exit 2) is never followed by steps that run on the previous run's feeders.

Usage
    python 2_profiles_heat_pumps/scale_feeder_curves.py --state NC [--eulp-root DIR] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from common import cli, config, eulp, profiles
from common.io import exclusive_step, write_csv
from common.paths import Workspace
from common.profiles import building_file

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name


def feeder_building_table(customers: pd.DataFrame, chosen: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(feeder x shape rows with their building, per-feeder status)."""
    per_shape = (customers.groupby(["state", "feeder", "subregion", "shape", "class"], sort=True)
                 .agg(n_customers=("customer", "size"), customers_peak_kw=("peak_kw", "sum")).reset_index())
    merged = per_shape.merge(chosen[["subregion", "shape", "release", "bldg_id", "building_type"]],
                             on=["subregion", "shape"], how="left")
    status = []
    for feeder, group in merged.groupby("feeder", sort=True):
        missing = sorted(group.loc[group["bldg_id"].isna(), "shape"])
        reason = f"no EULP building for shape(s) {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "") \
            if missing else ""
        status.append({"feeder": feeder, "status": "excluded" if missing else "ok", "reason": reason,
                       "n_customers": int(group["n_customers"].sum()), "n_shapes": len(group)})
    status_df = pd.DataFrame(status)
    good = status_df.loc[status_df["status"] == "ok", "feeder"]
    table = merged[merged["feeder"].isin(good)].copy()
    table["bldg_id"] = table["bldg_id"].astype(int)
    return table.reset_index(drop=True), status_df


def variant_record(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (cls, release, btype), group in table.groupby(["class", "release", "building_type"], sort=True, dropna=False):
        names = eulp.release_layout(release)["upgrades"]
        for variant in config.VARIANTS:
            rule = eulp.variant_rule(cls, btype if isinstance(btype, str) else None, variant)
            rows.append({"class": cls, "release": release, "building_type": btype, "variant": variant,
                         "upgrade": int(rule["upgrade"]), "upgrade_name": names.get(int(rule["upgrade"]), "?"),
                         "load_shift": bool(rule["load_shift"]), "reason": rule["reason"],
                         "n_buildings": int(group["bldg_id"].nunique())})
    return pd.DataFrame(rows)


def building_peaks(table: pd.DataFrame, eulp_root: Path, state: str) -> dict[int, float]:
    """Baseline annual peak kW of every building (each file read once)."""
    peaks = {}
    for (release, bldg_id), _ in table.groupby(["release", "bldg_id"], sort=True):
        kw = profiles.read_building_kw(building_file(eulp_root, release, state, int(bldg_id), 0))
        peaks[int(bldg_id)] = float(kw[config.EULP_TOTAL_KWH].max())
    return peaks


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="scale_feeder_curves.py")
    cli.add_state(parser)
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
    customers = profiles.read_customers(ws, state, inputs)
    chosen = profiles.read_final_selection(ws, state, inputs)
    table, status = feeder_building_table(customers, chosen)
    for _, row in status[status["status"] != "ok"].iterrows():
        logger.warning("%s left out: %s", row["feeder"], row["reason"])
    if table.empty:
        raise cli.UserError(f"no feeder of {state} has a building for every shape: see {ws.unmatched(state)}")
    try:
        peaks = building_peaks(table, eulp_root, state)
    except eulp.EULPError as exc:
        raise cli.UserError(str(exc)) from None
    table["building_peak_kw"] = table["bldg_id"].map(peaks)
    table["scale"] = table["customers_peak_kw"] / table["building_peak_kw"]
    outputs = [write_csv(ws.feeder_buildings(state), table), write_csv(ws.feeder_status(state), status),
               write_csv(ws.variant_upgrades(state), variant_record(table))]
    inputs.record(outputs, profiles.PRODUCERS["feeder_buildings"])
    logger.info("%s: %d feeders, %d shapes, %d buildings -> %s", state, table["feeder"].nunique(), len(table),
                table["bldg_id"].nunique(), ws.feeder_buildings(state))
    cli.record(__file__, ws.profiles_dir(state), args, eulp_root=str(eulp_root), rules=config.HEAT_PUMP_VARIANT_RULES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
