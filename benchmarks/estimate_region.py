"""Estimate: what a study of a whole SMART-DS region costs, from a measured batch and the region's own tree.

Reads the region's OpenDSS tree (SMART-DS ``.../scenarios/<scenario>/opendss/``: one folder per substation,
one per feeder with its ``Master.dss`` and ``Loads.dss``; any tree of ``<substation>/<feeder>/Master.dss``
works) and counts each feeder's customers the way phase 1b does (``common.smartds.customer_of``: the half
loads ``x_1``/``x_2`` of a centre-tap service are one customer) and the bytes of its folder.

The cost model comes from a measured phase 6 batch (``--data-dir``: every ``timings.csv`` under
``<data>/6_instantiate_circuits/``, the worker seconds of each run: ``runtime_s``, with ``upgrade_s``
inside it where the upgrade step ran): per measured feeder the median seconds per run, against the
feeder's customers (``n_customers`` of its runs' ``summary.json``), fitted by least squares as
``seconds per run = a + b x customers`` (at least two feeders of different sizes). Each region feeder then
costs its runs (``--scenarios`` x ``--policies`` + 1 reference case, x ``--designs`` x ``--seasons`` x
``--replicates``) x its predicted seconds per run; the total in core-hours, and the wall time on N cores
at a parallel efficiency ``--efficiency`` (the share of each core spent solving runs: 1.0 ideal; the
default 0.9 is the 2-worker / 1-worker throughput goal of issue 16, 1.8 of 2, an assumption until
``bench_power_flow.py --part 2`` measures it on the machine at hand).

What each worker needs: with a shared file system at the same path (the README's Dask route), nothing is
shipped; without one, a per-feeder bundle: the feeder's folder (printed: median and largest), its daily
profiles and shared files (phases 2-5, ``<data>``: printed when ``--data-dir`` holds them), and the code
(phase 6 ships its modules with each batch).

Nothing is asserted; the figures are printed. A model fitted on small feeders is extrapolated to larger
ones with care: the fit's feeder sizes are printed beside the region's.

Usage
    python benchmarks/estimate_region.py --opendss-dir DIR --data-dir DIR [--scenarios 64] [--policies 4]
        [--replicates 2] [--designs 2] [--seasons 2] [--cores 2,64,256,1024] [--efficiency 0.9]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import smartds  # noqa: E402

_LOAD = re.compile(r"^\s*new\s+load\.(?P<name>\S+)(?P<rest>.*)$", re.IGNORECASE)
_BUS1 = re.compile(r"\bbus1\s*=\s*(?P<bus>\S+)", re.IGNORECASE)


def feeder_customers(loads_dss: Path) -> int:
    """Customers of one feeder's ``Loads.dss``: each ``New Load`` is one, but the two half loads of a
    centre-tap service (single-node loads ``x_1``, ``x_2``) are one customer."""
    customers = set()
    for line in loads_dss.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _LOAD.match(line)
        if not match:
            continue
        bus = _BUS1.search(match.group("rest"))
        nodes = [n for n in bus.group("bus").split(".")[1:] if n not in ("", "0")] if bus else []
        customers.add(smartds.customer_of(match.group("name").lower(), len(nodes))[0])
    return len(customers)


def region_feeders(opendss_dir: Path) -> list[dict]:
    """Every feeder folder (a ``Master.dss`` beside a ``Loads.dss``) under ``opendss_dir``, sorted."""
    rows = []
    for master in sorted(Path(opendss_dir).rglob("Master.dss")):
        folder = master.parent
        if not (folder / "Loads.dss").is_file():
            continue  # a substation's own master (SMART-DS ships one per substation), not a feeder
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        rows.append({"feeder": folder.name, "customers": feeder_customers(folder / "Loads.dss"), "bytes": size})
    return rows


def measured_feeders(data: Path) -> list[dict]:
    """Per feeder of a measured batch: its customers and the median worker seconds per run that solved."""
    import pandas as pd

    root = data / "6_instantiate_circuits"
    frames = [pd.read_csv(p).assign(folder=str(p.parent)) for p in sorted(root.glob("*/*/*/timings.csv"))]
    if not frames:
        raise SystemExit(f"{root}: no timings.csv (run phase 6 with --run on this workspace first)")
    timings = pd.concat(frames, ignore_index=True)
    timings = timings[(timings["status"] == "ok") & ~timings["skipped"].astype(bool)]
    rows = []
    for feeder, group in timings.groupby("feeder", sort=True):
        customers = None
        for folder in sorted(set(group["folder"])):
            for summary in sorted((Path(folder) / feeder).glob("*/summary.json"))[:1]:
                customers = json.loads(summary.read_text())["metrics"].get("n_customers")
        if customers:
            rows.append({"feeder": feeder, "customers": int(customers), "runs": len(group),
                         "s_per_run": float(group["runtime_s"].median()),
                         "upgrade_s": float(group["upgrade_s"].median()) if "upgrade_s" in group else None})
    return rows


def fit(rows: list[dict]) -> tuple[float, float]:
    """Least-squares ``s_per_run = a + b x customers`` over the measured feeders."""
    xs, ys = [r["customers"] for r in rows], [r["s_per_run"] for r in rows]
    if len(set(xs)) < 2:
        raise SystemExit("the measured batch needs feeders of at least two sizes to fit the cost per customer")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds / 60:,.1f} min"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opendss-dir", type=Path, required=True, help="the region's opendss/ tree")
    parser.add_argument("--data-dir", type=Path, required=True, help="workspace of a measured phase 6 batch")
    parser.add_argument("--scenarios", type=int, default=64)
    parser.add_argument("--policies", type=int, default=4)
    parser.add_argument("--replicates", type=int, default=2)
    parser.add_argument("--designs", type=int, default=2)
    parser.add_argument("--seasons", type=int, default=2)
    parser.add_argument("--cores", default="2,64,256,1024")
    parser.add_argument("--efficiency", type=float, default=0.9)
    args = parser.parse_args(argv)

    region = region_feeders(args.opendss_dir)
    if not region:
        raise SystemExit(f"{args.opendss_dir}: no feeder folder (Master.dss beside Loads.dss)")
    measured = measured_feeders(args.data_dir)
    a, b = fit(measured)
    runs_per_feeder = (args.scenarios * args.policies + 1) * args.designs * args.seasons * args.replicates
    print(f"measured batch ({args.data_dir}): {sum(r['runs'] for r in measured)} solved runs on {len(measured)} feeders")
    for r in measured:
        print(f"  {r['feeder']:28s} {r['customers']:6d} customers  {r['runs']:5d} runs  median {r['s_per_run']:.2f} "
              f"worker-s per run ({1.0 / r['s_per_run']:.2f} runs/s per core)"
              + (f", upgrade step median {r['upgrade_s']:.2f} s" if r.get("upgrade_s") is not None else ""))
    print(f"  fit: seconds per run = {a:.3f} + {1000 * b:.3f} x customers / 1000 "
          f"(fitted on {min(r['customers'] for r in measured)}-{max(r['customers'] for r in measured)} customers)")
    sizes = sorted(r["customers"] for r in region)
    print(f"region ({args.opendss_dir}): {len(region)} feeders, {sum(sizes):,} customers; customers per feeder "
          f"min {sizes[0]}, median {statistics.median(sizes):g}, max {sizes[-1]}")
    beyond = sum(1 for s in sizes if s > max(r["customers"] for r in measured))
    if beyond:
        print(f"  {beyond} feeder(s) larger than any measured one: their cost is extrapolated")
    seconds = sum(max(a + b * r["customers"], 0.0) for r in region) * runs_per_feeder
    print(f"study: {runs_per_feeder} runs per feeder ({args.scenarios} scenarios x {args.policies} policies + 1, "
          f"x {args.designs} designs x {args.seasons} seasons x {args.replicates} replicates) = "
          f"{runs_per_feeder * len(region):,} runs, {seconds / 3600:,.1f} core-hours")
    for n in (int(c) for c in args.cores.split(",")):
        print(f"  on {n:5d} cores at efficiency {args.efficiency:g}: {_hours(seconds / (n * args.efficiency))}")
    folder_bytes = sorted(r["bytes"] for r in region)
    print(f"data per worker without a shared file system: a feeder's folder, median "
          f"{statistics.median(folder_bytes) / 1e6:.1f} MB, largest {folder_bytes[-1] / 1e6:.1f} MB, region "
          f"{sum(folder_bytes) / 1e6:,.1f} MB")
    shared = args.data_dir / "6_instantiate_circuits"
    shared_sizes = [sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
                    for d in sorted(shared.glob("*/*/_shared/*")) if d.is_dir()]
    if shared_sizes:
        print(f"  plus its shared day files (profiles, PV shape, EV statistics: <data>/6_instantiate_circuits/"
              f"<STATE>/<season>/_shared/<feeder>/), median {statistics.median(shared_sizes) / 1e6:.1f} MB, largest "
              f"{max(shared_sizes) / 1e6:.1f} MB per feeder and season")
    return 0


if __name__ == "__main__":
    sys.exit(main())
