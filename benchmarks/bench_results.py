"""Benchmark: phase 7's combining step on 10,000 synthetic runs (time and peak memory).

Generates ``--runs`` run folders (default 10,000: 1 state x 2 seasons x 2 designs x 50 feeders x 50
cases) in a temporary workspace, each with a ``summary.json`` and a 96-row ``timeseries.parquet``
in phase 6b's schema (``common.schema.SERIES_COLUMNS``: the head columns of the earlier workflow,
device and voltage columns, ``v_min_pu``/``v_max_pu`` as float32, ``converged``) and the
``scenario_assignments.json``, digests, mixes files and circuit filter that make every run current
(phase 7 checks each series' SHA-256 against its summary), then runs
``7_results_analysis/append_experiment_results.py`` on them in a fresh child process and prints the
wall time, the child's peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, read
in the child after the combine) and the sizes of the outputs. The run folders hold no OpenDSS
instance, so the circuit summary's feeder columns stay empty (one warning per feeder, counted).

Nothing is asserted about speed; the memory bound the combine must keep is ``LIMIT_MB`` (1 GB).

Usage
    python benchmarks/bench_results.py [--runs 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHASE7 = REPO / "7_results_analysis"
LIMIT_MB = 1024.0


def generate(data: Path, n_runs: int, seed: int = 11) -> int:
    """Synthetic phase 6 run folders in the real layout and schema; returns how many."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(PHASE7))
    from common import config, doe, schema
    from common.io import sha256_file, write_json
    from common.paths import Workspace

    ws = Workspace(data)
    rng = np.random.default_rng(seed)
    seasons, designs = config.SEASONS, config.DESIGNS
    per_design = len(seasons) * len(designs)
    n_feeders = max(1, int(round((n_runs / per_design) ** 0.5)))
    n_cases = -(-n_runs // (per_design * n_feeders))
    mixes_digest = {}
    for design in designs:  # the current designs: every generated case is in them
        mixes, _ = doe.build_mixes(design, max(1, n_cases - 1), seed)
        write_json(ws.mixes(design), mixes)
        mixes_digest[design] = sha256_file(ws.mixes(design))
    feeders = [f"sub{f // 10}_1247--fdr{f:03d}" for f in range(n_feeders)]
    ws.circuits_dir("NC").mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"state": "NC", "season": s, "feeder": f, "status": "pass", "reason": ""}
                  for s in seasons for f in feeders]).to_csv(ws.circuit_filter("NC"), index=False)
    n = config.INTERVALS_PER_DAY
    hours = np.arange(1, n + 1) * config.INTERVAL_H
    base = 500 + 300 * np.sin(np.linspace(0, 2 * np.pi, n)) ** 2
    made = 0
    for season in seasons:
        start = pd.Timestamp("2018-07-30" if season == "summer" else "2018-01-17")
        stamps = pd.date_range(start, periods=n, freq="15min").to_numpy().astype("datetime64[us]")
        for design in designs:
            for f in range(n_feeders):
                feeder = feeders[f]
                for case in range(n_cases):
                    if made >= n_runs:
                        return made
                    folder = ws.instance_dir("NC", season, design, feeder, str(case))
                    folder.mkdir(parents=True, exist_ok=True)
                    p = base * (1 + f / 10) * rng.uniform(0.8, 1.2) + rng.normal(0, 5, (3, n)).cumsum(axis=1) / 3
                    q = 0.3 * p
                    columns = {"hour": hours, "interval_start": stamps}
                    for i in range(3):
                        columns[f"S{i + 1} (kVA)"] = np.hypot(p[i], q[i])
                        columns[f"Ang{i + 1}"] = np.degrees(np.arctan2(q[i], p[i]))
                    for i in range(3):
                        columns[f"P{i + 1} (kW)"] = p[i]
                        columns[f"Q{i + 1} (kVAr)"] = q[i]
                    columns["P_3ph (kW)"] = p.sum(axis=0)
                    columns["Q_3ph (kVAr)"] = q.sum(axis=0)
                    columns["S_3ph (kVA)"] = np.hypot(p.sum(axis=0), q.sum(axis=0))
                    columns["S_sum_3ph (kVA)"] = columns["S1 (kVA)"] + columns["S2 (kVA)"] + columns["S3 (kVA)"]
                    columns.update({"ev_kw": rng.uniform(0, 50, n), "pv_kw": np.clip(rng.normal(10, 5, n), 0, None),
                                    "storage_kw": rng.normal(0, 5, n), "storage_soc": rng.uniform(0.2, 1, n),
                                    "losses_kw": 0.03 * p.sum(axis=0),
                                    "v_min_pu": rng.uniform(0.93, 1.0, n).astype(np.float32),
                                    "v_max_pu": rng.uniform(1.0, 1.04, n).astype(np.float32),
                                    "converged": np.ones(n, dtype=bool)})
                    pq.write_table(pa.table({c: columns[c] for c in schema.SERIES_COLUMNS}),
                                   folder / "timeseries.parquet", compression="zstd")
                    inputs = {par.name: float(rng.uniform(par.low, par.high)) for par in doe.PARAMETERS}
                    metrics = {}
                    for name, (unit, _) in schema.METRICS.items():
                        metrics[name] = ("17:45" if unit == "text" and name == "peak_time" else
                                         "Transformer.t1" if unit == "text" else
                                         int(rng.integers(0, 50)) if unit == "count" else float(rng.uniform(0, 100)))
                    metrics["peak_kw"] = float(columns["P_3ph (kW)"].max())
                    summary = {"state": "NC", "season": season, "design": design, "feeder": feeder, "case": str(case),
                               "design_day": str(start.date()), "inputs": {**inputs, "disjoint_sets": True},
                               "metric_settings_digest": schema.metric_settings_digest(),
                               "realised": {"n_customers": 500, "n_residential": 450, "n_three_phase": 20,
                                            "customers_per_variant": {"baseline": 300, "dm": 100, "un": 100},
                                            "n_evs": 120, "n_evs_level2": 100, "n_evs_controlled": 60,
                                            "ev_charger_kw_total": 900.0, "ev_need_kwh": 1200.0,
                                            "ev_scheduled_kwh": 1199.0, "ev_unserved_kwh": 1.0, "n_pv": 3,
                                            "pv_kw": 40.0, "n_storage": 2, "n_storage_wanted": 2, "storage_kw": 30.0,
                                            "storage_kwh": 120.0, "storage_shortfall": ""},
                               "inputs_digest": f"{made:064x}", "mixes_digest": mixes_digest[design],
                               "timeseries_sha256": sha256_file(folder / "timeseries.parquet"), "status": "ok",
                               "message": "", "metrics": metrics, "packages": {}}
                    (folder / "scenario_assignments.json").write_text(json.dumps({"inputs_digest": f"{made:064x}"}))
                    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
                    made += 1
    return made


def measure(data: Path) -> None:
    """Child process: run the combine, print one JSON line with time and peak memory."""
    sys.path.insert(0, str(PHASE7))
    import importlib.util

    path = PHASE7 / "append_experiment_results.py"
    spec = importlib.util.spec_from_file_location("append_experiment_results", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    code = module.main(["--data-dir", str(data), "-q"])
    elapsed = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"exit": code, "seconds": elapsed, "peak_rss_mb": rss, "rss_before_mb": rss_before}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--keep", default=None, help="generate into this folder and keep it")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        measure(Path(args.measure))
        return 0
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_results_"))
    data = root / "data"
    try:
        t0 = time.perf_counter()
        made = generate(data, args.runs)
        print(f"generated {made} synthetic runs (summary.json + 96-row timeseries.parquet) in "
              f"{time.perf_counter() - t0:.1f} s under {data}")
        child = subprocess.run([sys.executable, __file__, "--measure", str(data)], capture_output=True, text=True,
                               cwd=REPO)
        if child.returncode != 0 or not child.stdout.strip():
            print(child.stderr[-3000:])
            return 1
        result = json.loads(child.stdout.strip().splitlines()[-1])
        warnings = sum(1 for line in child.stderr.splitlines() if " WARNING " in line)
        out = data / "7_results_analysis"
        print(f"append_experiment_results.py: exit {result['exit']}, {result['seconds']:.1f} s "
              f"({made / result['seconds']:.0f} runs/s)")
        print(f"peak resident memory of the combining process: {result['peak_rss_mb']:.0f} MB "
              f"(after imports: {result['rss_before_mb']:.0f} MB; limit {LIMIT_MB:.0f} MB: "
              f"{'within' if result['peak_rss_mb'] < LIMIT_MB else 'EXCEEDED'})")
        for path in sorted(out.glob("*")):
            if path.is_file():
                print(f"  {path.name:40s} {path.stat().st_size / 1e6:9.1f} MB")
        for line in child.stderr.splitlines():
            if "aggregate_m2_combined.csv" in line:
                print("  log:", line.split(": ", 1)[-1])
        print(f"  ({warnings} warning lines, e.g. feeders without OpenDSS instance files)")
        return 0 if result["exit"] == 0 and result["peak_rss_mb"] < LIMIT_MB else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
