"""Monthly statistics of every SMART-DS profile the state's feeders use.

Description
    For each SMART-DS profile (a subregion's ``res_kw_<id>_pu`` / ``com_kw_<id>_pu``) used by a
    parsed feeder: per calendar month the mean, peak, valley, 25th and 75th percentile of the
    customer's kW. The source is the profile's ``load_data/<cls>_<id>.parquet`` (each file read once,
    the kW column only); where it is absent, the per-unit ``profiles/`` CSV scaled by the mean
    annual peak kW of the customers using the shape.

    A profile shorter than a year (the reference SMART-DS feeder's profiles are one day) gets
    statistics only for the months it covers; the log says which, and phase 1b's matching then
    uses only the seasons those months belong to.

Inputs (``<data>/1b_smartds_eulp_match/<STATE>/``)
    feeders.csv (subregion_dir), customers.parquet, shape_counts.csv (mult_file)
    SMART-DS load_data/ parquet or profiles/ CSV in the source tree

Outputs (same folder; read by match_smartds_parquets.py)
    profile_monthly_stats.parquet   state, subregion, shape, class, profile_id, month, mean_kw,
                                    peak_kw, valley_kw, p25_kw, p75_kw, n_points (of the month),
                                    profile_points, source (load_data / profile_csv), building_type

Settings read
    common.config: SMARTDS (the dataset year, for the calendar)

Usage
    python 1b_smartds_eulp_match/review_parquet_matches.py --state NC [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from common import cli, config, smartds
from common.io import exclusive_step, read_csv, write_parquet
from common.paths import Workspace
from common.profiles import PRODUCERS, read_customers

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name

KW_COLUMN = "total_site_electricity_kw"
STAT_COLUMNS = ["state", "subregion", "shape", "class", "profile_id", "month", "mean_kw", "peak_kw", "valley_kw",
                "p25_kw", "p75_kw", "n_points", "profile_points", "source", "building_type"]


def months_of(n_points: int, year: int, interval_h: float = 0.25) -> np.ndarray:
    """Calendar month of each interval of a series starting on 1 January of ``year``."""
    index = pd.date_range(f"{year}-01-01", periods=n_points, freq=pd.Timedelta(hours=interval_h))
    return index.month.to_numpy()


def monthly_stats(kw: np.ndarray, months: np.ndarray) -> pd.DataFrame:
    """Mean, peak, valley, p25, p75 and point count per month present in ``months``."""
    kw = np.asarray(kw, dtype=float)
    rows = []
    for month in np.unique(months):
        values = kw[months == month]
        p25, p75 = np.percentile(values, [25, 75])
        rows.append({"month": int(month), "mean_kw": float(values.mean()), "peak_kw": float(values.max()),
                     "valley_kw": float(values.min()), "p25_kw": float(p25), "p75_kw": float(p75),
                     "n_points": int(len(values))})
    return pd.DataFrame(rows)


def read_load_data_kw(path: Path) -> tuple[np.ndarray, str | None]:
    """The kW column of a load_data file, and its building type when the file names one."""
    schema = pq.read_schema(path)
    if KW_COLUMN not in schema.names:
        raise ValueError(f"{path}: column {KW_COLUMN!r} missing")
    columns = [KW_COLUMN] + (["building"] if "building" in schema.names else [])
    table = pq.read_table(path, columns=columns)
    building = None
    if "building" in columns and table.num_rows:
        value = table.column("building")[0].as_py()
        building = str(value) if value not in (None, "") else None
    return table.column(KW_COLUMN).to_numpy().astype(float), building


def read_profile_csv(path: Path) -> np.ndarray:
    values = pd.read_csv(path, header=None, usecols=[0]).iloc[:, 0].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: non-numeric values")
    return values


def profile_table(customers: pd.DataFrame, counts: pd.DataFrame, feeders: pd.DataFrame) -> pd.DataFrame:
    """One row per (subregion, shape): class, subregion folder, profile CSV, customers' mean peak."""
    sub_dirs = feeders.drop_duplicates("subregion").set_index("subregion")["subregion_dir"]
    mean_peak = customers.groupby(["subregion", "shape"])["peak_kw"].mean().rename("mean_peak_kw")
    files = counts.drop_duplicates(["subregion", "shape"]).set_index(["subregion", "shape"])[
        ["class", "mult_file", "npts", "interval_h"]]
    table = files.join(mean_peak).reset_index()
    table["subregion_dir"] = table["subregion"].map(sub_dirs)
    return table.sort_values(["subregion", "shape"]).reset_index(drop=True)


def review_profile(row: pd.Series, year: int, ws: Workspace | None = None) -> tuple[pd.DataFrame, str, str | None, int]:
    """Monthly statistics of one profile: (table, source, building type, number of points). Paths in
    the phase 1b tables are relative to the workspace ``ws`` when they lie inside it."""
    where = ws.resolve if ws is not None else Path
    load_data = smartds.load_data_file(where(row["subregion_dir"]), row["shape"])
    building = None
    if load_data is not None and load_data.is_file():
        kw, building = read_load_data_kw(load_data)
        source = "load_data"
    else:
        mult_file = row["mult_file"]
        if not isinstance(mult_file, str) or not mult_file or not where(mult_file).is_file():
            raise FileNotFoundError(f"{row['shape']}: neither {load_data} nor a profiles/ CSV exists")
        kw = read_profile_csv(where(mult_file)) * float(row["mean_peak_kw"])
        source = "profile_csv"
    interval = float(row["interval_h"]) if pd.notna(row["interval_h"]) and row["interval_h"] > 0 else 0.25
    stats = monthly_stats(kw, months_of(len(kw), year, interval))
    return stats, source, building, len(kw)


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="review_parquet_matches.py")
    cli.add_state(parser)
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    out = ws.match_dir(args.state)
    with exclusive_step(out, SCRIPT):
        return run(args, ws)


def run(args: argparse.Namespace, ws: Workspace) -> int:
    state = args.state
    customers = read_customers(ws, state)
    counts = read_csv(ws.shape_counts(state), PRODUCERS["customers"],
                      required=("subregion", "shape", "class", "mult_file", "npts", "interval_h"))
    feeders = read_csv(ws.feeder_list(state), PRODUCERS["feeder_list"], required=("subregion", "subregion_dir"))
    year = int(config.SMARTDS[state]["year"]) if config.SMARTDS[state]["year"].isdigit() else 2018
    profiles = profile_table(customers[customers["class"] != "unknown"], counts, feeders)
    frames, sources, short = [], {"load_data": 0, "profile_csv": 0}, []
    full_year = 366 * 96 if pd.Timestamp(f"{year}-12-31").day_of_year == 366 else 365 * 96
    for _, row in profiles.iterrows():
        try:
            stats, source, building, n_points = review_profile(row, year, ws)
        except (FileNotFoundError, ValueError) as exc:
            logger.error("profile left out: %s", exc)
            continue
        sources[source] += 1
        if n_points < full_year:
            short.append((row["shape"], n_points, sorted(stats["month"].tolist())))
        parsed = smartds.parse_shape(row["shape"])
        stats.insert(0, "state", state)
        stats.insert(1, "subregion", row["subregion"])
        stats.insert(2, "shape", row["shape"])
        stats.insert(3, "class", row["class"])
        stats.insert(4, "profile_id", parsed[1] if parsed else "")
        stats["profile_points"] = n_points
        stats["source"] = source
        stats["building_type"] = building
        frames.append(stats)
    if not frames:
        raise cli.UserError(f"no profile of {state} could be read: check load_data/ and profiles/ of the source tree")
    if short:
        shape, n, months = short[0]
        logger.warning("%d profile(s) shorter than a year (e.g. %s: %d points = %.1f days, months %s): monthly "
                       "statistics cover only those months, and matching uses only the seasons they cover",
                       len(short), shape, n, n / 96, months)
    table = pd.concat(frames, ignore_index=True)[STAT_COLUMNS]
    write_parquet(ws.profile_stats(state), table)
    logger.info("%s: monthly statistics of %d profiles (%d from load_data, %d from profile CSVs) -> %s", state,
                table.groupby(["subregion", "shape"]).ngroups, sources["load_data"], sources["profile_csv"],
                ws.profile_stats(state))
    cli.record(__file__, ws.match_dir(state), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
