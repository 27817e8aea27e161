"""Benchmark: phase 3 kVAr/kW ratios grow with distinct profiles, not with feeders x design days.

Writes P synthetic SMART-DS ``load_data`` files (35,040 rows; kW and kVAr columns) and times
``profile_ratios`` of ``3_kvar_kw_prep/rev_spec_kvar_kw_ratio.py`` for F feeders and for 2F
feeders that share the same profiles (each feeder with its own summer and winter design day), side
by side, median of --repeat runs. Also times the earlier approach (one full-year read per
feeder-day) on the same files for comparison, and extrapolates both to a full state.

Usage
    python benchmarks/bench_kvar_ratios.py [--profiles 200] [--feeders 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]


def load_phase3():
    path = REPO / "3_kvar_kw_prep" / "rev_spec_kvar_kw_ratio.py"
    spec = importlib.util.spec_from_file_location("rev_spec_kvar_kw_ratio", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_profiles(folder: Path, n: int, rng: np.random.Generator) -> list[str]:
    (folder / "load_data").mkdir(parents=True)
    shapes = []
    for i in range(n):
        kw = np.abs(rng.normal(2, 1, 35040)).astype(np.float32)
        kvar = (kw * rng.uniform(0.1, 0.4)).astype(np.float32)
        extra = {f"enduse_{j}_kw": kw * 0.1 for j in range(10)}  # real files carry many more columns
        pq.write_table(pa.table({"total_site_electricity_kw": kw, "total_site_electricity_kvar": kvar, **extra}),
                       folder / "load_data" / f"res_{i}.parquet")
        shapes.append(f"res_kw_{i}_pu")
    return shapes


def needed(phase3, shapes: list[str], n_feeders: int, folder: Path, rng: np.random.Generator) -> pd.DataFrame:
    buildings = pd.DataFrame([{"feeder": f"f{f}", "subregion": "s", "shape": s, "class": "res"}
                              for f in range(n_feeders) for s in shapes])
    days = pd.DataFrame([{"feeder": f"f{f}", "day_of_year": int(d)} for f in range(n_feeders)
                         for d in (rng.integers(152, 243), rng.integers(0, 59))])
    feeders = pd.DataFrame({"subregion": ["s"], "subregion_dir": [str(folder)]})
    return phase3.needed_days(buildings, days, feeders)


def run_once(phase3, table: pd.DataFrame) -> float:
    t0 = time.perf_counter()
    for _, row in table.iterrows():
        phase3.profile_ratios(row)
    return time.perf_counter() - t0


def run_prior(table: pd.DataFrame, folder: Path) -> float:
    """The earlier approach: the whole file read again for every profile-day."""
    t0 = time.perf_counter()
    for _, row in table.iterrows():
        for day in row["day_of_year"]:
            pid = row["shape"].split("_")[2]
            frame = pd.read_parquet(folder / "load_data" / f"res_{pid}.parquet")
            kw = frame["total_site_electricity_kw"].to_numpy()[day * 96:(day + 1) * 96]
            _ = frame["total_site_electricity_kvar"].to_numpy()[day * 96:(day + 1) * 96] / kw
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=200)
    parser.add_argument("--feeders", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    phase3 = load_phase3()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shapes = write_profiles(folder, args.profiles, rng)
        one = needed(phase3, shapes, args.feeders, folder, rng)
        two = needed(phase3, shapes, 2 * args.feeders, folder, rng)
        t1, t2 = [], []
        for _ in range(args.repeat):
            t1.append(run_once(phase3, one))
            t2.append(run_once(phase3, two))
        prior = run_prior(one, folder)
    m1, m2 = statistics.median(t1), statistics.median(t2)
    days1 = int(one["day_of_year"].map(len).sum())
    days2 = int(two["day_of_year"].map(len).sum())
    print(f"{args.profiles} profiles shared by {args.feeders} feeders ({days1} profile-days): median {m1:.2f} s")
    print(f"{args.profiles} profiles shared by {2 * args.feeders} feeders ({days2} profile-days): median {m2:.2f} s")
    print(f"doubling the feeders: x{m2 / m1:.2f} time ({100 * (m2 / m1 - 1):+.0f} %), profile-days x{days2 / days1:.2f}")
    print(f"earlier approach (a full read per profile-day) on the first case: {prior:.2f} s (x{prior / m1:.0f})")
    per_profile = m1 / args.profiles
    print(f"per distinct profile: {1000 * per_profile:.1f} ms -> a state with 10,000 distinct profiles: "
          f"{10000 * per_profile / 60:.1f} min (the earlier scripts: 579 min for one state)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
