"""Benchmark: phase 1c downloads with 1 and 8 workers from a loopback S3-like server.

Generates ``--files`` parquet files of about ``--size-kb`` KB each (random float64, so they do not
compress) in a temporary bucket folder, serves it with ``tests/bucket_server.py`` in its own process
(so that the server does not share the client's interpreter lock), and downloads everything with
the phase 1c client (``1c_eulp_downloads/oedi_client.py`` and the modules it gathers: listing,
``.part`` streaming, size, MD5 and parquet-footer checks, manifest) into a fresh folder per run. Worker counts are measured side
by side (1, 8, 1, 8, ...) ``--repeat`` times; it prints the median files/s and MB/s of each and the
8-vs-1 ratio, for each simulated time to first byte (``--latency-ms``; 0 = bare loopback). It
prints figures and asserts nothing about speed.

Usage
    python benchmarks/bench_downloads.py [--files 200] [--size-kb 200] [--repeat 3] [--workers 1,8]
                                         [--latency-ms 0,30]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "1c_eulp_downloads"))
import oedi_client  # noqa: E402

SEED = 1234
KEY_PREFIX = "bench/timeseries"


def make_bucket(root: Path, n_files: int, size_kb: float, seed: int) -> int:
    """Write ``n_files`` parquet files of about ``size_kb`` KB under ``root/bench/``; total bytes."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    n_values = max(1, int(size_kb * 1000 / 8))
    total = 0
    folder = root / KEY_PREFIX
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        path = folder / f"{100000 + i}-0.parquet"
        table = pa.table({"value": rng.standard_normal(n_values)})
        pq.write_table(table, path, compression="none", use_dictionary=False)
        total += path.stat().st_size
    return total


def start_server(root: Path, latency_ms: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, str(REPO / "tests" / "bucket_server.py"), str(root),
                                "--latency-ms", str(latency_ms)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise RuntimeError("the bucket server did not start")
    return process, url


def download_once(url: str, dest: Path, workers: int) -> tuple[float, int, int]:
    """One full download into an empty ``dest``: (seconds, files, bytes)."""
    settings = oedi_client.TransferSettings(workers=workers, connect_timeout_s=10, read_timeout_s=60, retries=2,
                                            backoff_s=0.1, progress=False)
    source = oedi_client.HttpSource(url, settings)
    started = time.perf_counter()
    with oedi_client.Downloader(source, dest, "bench", settings, label=f"bench {workers}w") as downloader:
        objects = downloader.list_objects(KEY_PREFIX + "/")
        results = downloader.fetch([downloader.target_for(o) for o in objects])
    elapsed = time.perf_counter() - started
    if not all(r.ok and r.fetched for r in results):
        raise RuntimeError("a benchmark download failed: " + ", ".join(r.status for r in results if not r.ok))
    return elapsed, len(results), sum(r.size_bytes or 0 for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size-kb", type=float, default=200.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", default="1,8", help="worker counts measured side by side")
    parser.add_argument("--latency-ms", default="0,30", help="simulated time to first byte per object [ms]")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    worker_counts = [int(w) for w in args.workers.split(",")]
    latencies = [float(x) for x in args.latency_ms.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench_downloads_") as tmp:
        tmp_path = Path(tmp)
        total_bytes = make_bucket(tmp_path / "bucket", args.files, args.size_kb, SEED)
        print(f"bucket: {args.files} parquet files, {total_bytes / 1e6:.1f} MB; python {platform.python_version()}, "
              f"{os.cpu_count()} cores; median of {args.repeat} side-by-side repetitions")
        for latency_ms in latencies:
            server, url = start_server(tmp_path / "bucket", latency_ms)
            try:
                times: dict[int, list[float]] = {w: [] for w in worker_counts}
                for rep in range(args.repeat):
                    for workers in worker_counts:
                        dest = tmp_path / f"dest_{workers}_{rep}"
                        elapsed, n_files, n_bytes = download_once(url, dest, workers)
                        times[workers].append(elapsed)
                        shutil.rmtree(dest)
            finally:
                server.stdin.close()
                server.wait(timeout=10)
            print(f"\ntime to first byte {latency_ms:g} ms:")
            print(f"  {'workers':>7} {'median s':>9} {'files/s':>9} {'MB/s':>8}   runs [s]")
            for workers in worker_counts:
                median_s = statistics.median(times[workers])
                print(f"  {workers:>7} {median_s:>9.2f} {n_files / median_s:>9.1f} {n_bytes / 1e6 / median_s:>8.1f}   "
                      + ", ".join(f"{t:.2f}" for t in times[workers]))
            if len(worker_counts) >= 2:
                low, high = worker_counts[0], worker_counts[-1]
                ratio = statistics.median(times[low]) / statistics.median(times[high])
                print(f"  {high} vs {low} workers: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
