"""Benchmark: phase 1b matching of 1,000 SMART-DS profiles against 20,000 EULP buildings.

Generates synthetic monthly profile statistics and ResStock/ComStock-style metadata (no files),
runs ``match_class`` of ``1b_smartds_eulp_match/match_smartds_parquets.py`` for both classes and
prints the wall time (median of --repeat runs) and the process's peak resident memory.

Usage
    python benchmarks/bench_matching.py [--profiles 1000] [--buildings 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def load_match():
    path = REPO / "1b_smartds_eulp_match" / "match_smartds_parquets.py"
    spec = importlib.util.spec_from_file_location("match_smartds_parquets", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def synthetic_stats(n: int, cls: str, rng: np.random.Generator) -> pd.DataFrame:
    months = np.arange(1, 13)
    base = rng.lognormal(1.8 if cls == "res" else 3.0, 0.4, n)
    season = 1 + 0.3 * np.cos(2 * np.pi * (months[None, :] - 1) / 12) * rng.uniform(-1, 1, (n, 1))
    peak = base[:, None] * season
    frame = pd.DataFrame({
        "subregion": "P1U", "shape": np.repeat([f"{cls}_kw_{i}_pu" for i in range(n)], 12),
        "month": np.tile(months, n), "peak_kw": peak.ravel(), "mean_kw": 0.35 * peak.ravel(),
        "n_points": 2920, "profile_points": 35040, "building_type": None,
    })
    frame["class"] = cls
    return frame


def synthetic_metadata(n: int, cls: str, rng: np.random.Generator, match) -> pd.DataFrame:
    base = rng.lognormal(1.8 if cls == "res" else 3.0, 0.45, n)
    meta = pd.DataFrame({"bldg_id": np.arange(1, n + 1), "in.state": "TX", "_building_type": None})
    if cls == "res":
        meta[match.RES_PEAK_COLUMNS[0]] = base * rng.uniform(0.8, 1.3, n)
        meta[match.RES_PEAK_COLUMNS[1]] = base * rng.uniform(0.7, 1.4, n)
        meta[match.RES_ENERGY_COLUMN] = base * 0.35 * 8760
    else:
        for i, col in enumerate(match.COM_PEAK_COLUMNS):
            meta[col] = base * (1 + 0.3 * np.cos(2 * np.pi * i / 12) * rng.uniform(-1, 1, n))
    return meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--buildings", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    match = load_match()
    rng = np.random.default_rng(1)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"matching {args.profiles} profiles x {args.buildings} buildings per class, {args.repeat} repeats")
    for cls in ("res", "com"):
        stats = synthetic_stats(args.profiles, cls, rng)
        meta = synthetic_metadata(args.buildings, cls, rng, match)
        keys, features = match.profile_features(stats, cls)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            candidates = match.match_class(keys, features, meta, cls, 25)
            times.append(time.perf_counter() - t0)
        print(f"  {cls}: median {statistics.median(times):.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)}), "
              f"{len(candidates)} candidate rows, {int(candidates[candidates['rank'] == 1]['within_tolerance'].sum())} "
              "profiles with a candidate within tolerance")
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {rss_after:.0f} MB (process, {rss_before:.0f} MB before matching)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
