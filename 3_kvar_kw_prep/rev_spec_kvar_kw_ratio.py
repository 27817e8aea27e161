"""kVAr/kW ratios of every SMART-DS profile at its feeders' design days.

Description
    For each SMART-DS profile used by a studied feeder, the ratio
    ``total_site_electricity_kvar / total_site_electricity_kw`` of its ``load_data`` file at the 96
    intervals of every design day (phase 2) of a feeder that uses it. Each parquet file is read
    ONCE, with only those two columns, and all its design days are cut from the year in one
    vectorised step: the work grows with the number of distinct profiles, not with feeders x days
    (the earlier script re-read every full-year file for every feeder-day: 579 minutes for one
    state). Where kW is about zero (below ``KW_NEAR_ZERO``) and where a profile has no
    ``load_data`` file, the ratio of the configured power factor (``DEFAULT_POWER_FACTOR`` of the
    class) is used, and the ``source`` column says so.

Inputs
    <data>/2_profiles_heat_pumps/<STATE>/feeder_buildings.csv, design_days.csv   (phase 2; refused when
                                                                                their inputs changed since)
    <data>/1b_smartds_eulp_match/<STATE>/feeders.csv (subregion folders)        (phase 1b)
    <subregion>/load_data/<cls>_<id>.parquet                                    (SMART-DS)

Outputs (``<data>/3_kvar_kw_prep/<STATE>/``; read by phases 2, 4, 5)
    kvar_kw_ratio.parquet   subregion, shape, day_of_year, step (0-95), ratio, source
                            (load_data / power_factor_default / near_zero_kw)

Settings read
    common.config: KW_NEAR_ZERO, DEFAULT_POWER_FACTOR

Usage
    python 3_kvar_kw_prep/rev_spec_kvar_kw_ratio.py --state NC [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from common import cli, config, profiles, smartds
from common.io import exclusive_step, read_csv, write_parquet
from common.paths import Workspace

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name

STEPS = config.INTERVALS_PER_DAY
KW, KVAR = "total_site_electricity_kw", "total_site_electricity_kvar"


def default_ratio(cls: str) -> float:
    """kVAr/kW of the class's configured power factor."""
    return math.tan(math.acos(config.DEFAULT_POWER_FACTOR[cls]))


def day_ratios(kw: np.ndarray, kvar: np.ndarray, days: np.ndarray, fallback: float) -> tuple[np.ndarray, np.ndarray]:
    """Ratios (len(days), 96) at the given days, and a mask of intervals where kW ~ 0."""
    n_days = len(kw) // STEPS
    if np.any(days >= n_days):
        raise ValueError(f"design day {int(days.max())} is beyond the profile's {n_days} days")
    kw_days = np.asarray(kw[: n_days * STEPS], dtype=float).reshape(n_days, STEPS)[days]
    kvar_days = np.asarray(kvar[: n_days * STEPS], dtype=float).reshape(n_days, STEPS)[days]
    near_zero = np.abs(kw_days) < config.KW_NEAR_ZERO
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(near_zero, fallback, kvar_days / np.where(near_zero, 1.0, kw_days))
    return ratio, near_zero


def needed_days(buildings: pd.DataFrame, days: pd.DataFrame, feeders: pd.DataFrame) -> pd.DataFrame:
    """One row per (subregion, shape, class, subregion_dir) with the sorted design days it needs."""
    used = buildings[["feeder", "subregion", "shape", "class"]].merge(days[["feeder", "day_of_year"]], on="feeder")
    sub_dirs = feeders.drop_duplicates("subregion").set_index("subregion")["subregion_dir"]
    grouped = (used.groupby(["subregion", "shape", "class"], sort=True)["day_of_year"]
               .apply(lambda s: np.array(sorted(set(int(d) for d in s)))).reset_index())
    grouped["subregion_dir"] = grouped["subregion"].map(sub_dirs)
    return grouped


def profile_ratios(row: pd.Series) -> pd.DataFrame:
    fallback = default_ratio(row["class"])
    days = row["day_of_year"]
    path = smartds.load_data_file(Path(row["subregion_dir"]), row["shape"])
    if path is not None and path.is_file():
        table = pq.read_table(path, columns=[KW, KVAR])
        ratio, near_zero = day_ratios(table.column(KW).to_numpy(), table.column(KVAR).to_numpy(), days, fallback)
        source = np.where(near_zero, "near_zero_kw", "load_data")
    else:
        ratio = np.full((len(days), STEPS), fallback)
        source = np.full((len(days), STEPS), "power_factor_default")
    return pd.DataFrame({"subregion": row["subregion"], "shape": row["shape"],
                         "day_of_year": np.repeat(days, STEPS), "step": np.tile(np.arange(STEPS), len(days)),
                         "ratio": ratio.ravel(), "source": source.ravel()})


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="rev_spec_kvar_kw_ratio.py")
    cli.add_state(parser)
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    out = ws.kvar_ratios(args.state).parent
    with exclusive_step(out, SCRIPT):
        return run(args, ws)


def run(args: argparse.Namespace, ws: Workspace) -> int:
    state = args.state
    started = time.perf_counter()
    inputs = profiles.Inputs(ws)
    buildings = profiles.read_feeder_buildings(ws, state, inputs)
    days = profiles.read_design_days(ws, state, inputs)
    feeders = read_csv(ws.feeder_list(state), profiles.PRODUCERS["feeder_list"], required=("subregion", "subregion_dir"))
    inputs.add(ws.feeder_list(state))
    needed = needed_days(buildings, days, feeders)
    frames = []
    for _, row in needed.iterrows():
        try:
            frames.append(profile_ratios(row))
        except (ValueError, OSError) as exc:
            raise cli.UserError(f"{row['shape']} ({row['subregion']}): {exc}") from None
    table = pd.concat(frames, ignore_index=True)
    if not np.isfinite(table["ratio"]).all():
        bad = table[~np.isfinite(table["ratio"])].iloc[0]
        raise cli.UserError(f"{bad['shape']}: non-finite kVAr/kW on day {bad['day_of_year']} step {bad['step']}")
    inputs.record([write_parquet(ws.kvar_ratios(state), table)], profiles.PRODUCERS["kvar_ratios"])
    counts = table.groupby("source").size().to_dict()
    logger.info("%s: ratios of %d profiles at %d profile-days in %.2f s (%s) -> %s", state, len(needed),
                int(needed["day_of_year"].map(len).sum()), time.perf_counter() - started,
                ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), ws.kvar_ratios(state))
    cli.record(__file__, ws.kvar_ratios(state).parent, args, kw_near_zero=config.KW_NEAR_ZERO, default_power_factor=config.DEFAULT_POWER_FACTOR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
