"""Benchmark: phase 6b cost of one run against the bare engine, and batch throughput.

Part 1 (P1 of issue 16), on the ~2,000-customer NC sample feeder (5,357 nodes; with --large-feeder on an
8,500-node-class feeder the benchmark adds to the NC sample, 3,110 customers, in a workspace of its own):
for each case, the full cost of one
run of the batch path (instance build, files, the case applied to the feeder this worker compiled once, with
candidates for the devices of the measured cases, one chunk of the feeder as ``batch_runner.hint_chunk`` sets,
simulation with whole-array reads and metrics, outputs) is timed next to the same run with the cache
off (the instance compiled, as before issue 16) and the bare engine on the same instance (plain
opendssdirect compile of its Master.dss, then ``solve mode=daily stepsize=15m number=96``), side by
side, case after case; P1 = the median of batch / bare (goal <= 0.75). The feeder's shared context
(customers, profiles, PV shape) and its compile are the warm-up run's and are not counted. Beside it: the
bare compile and the bare solve apart, and their ratio solve / (compile + solve), the P1 of a run that cost
nothing but the engine's own solve of its day (no path that solves the 96 steps goes below it); and the
engine solves the batch path's run made (its 96 steps, and the intervals solved again without the batteries
for the storage peak reduction).

Part 2: throughput of the batch runner on the NC sample feeders: a process pool with 1 and with 2
workers, and a Dask LocalCluster (2 worker processes, 1 thread each, on loopback); runs per
second, their ratios, and the peak resident memory per worker. The pool starts its workers for the batch
(their start-up and imports counted); the Dask batch runs first on the fresh cluster (its workers import the
libraries and load the shipped code then: counted) and once more on the same cluster: its workers warm, with
the libraries, the code (the same payload: loaded once) and the feeders compiled in the first batch, as a
later batch of a cluster that serves a study finds them for the same feeders and season (the other design,
say); a pool starts afresh for every batch.

The workspace (phases 0, 1b, 2-5 for NC on the embedded sample) is prepared in --data-dir when
missing. Figures are printed; nothing is asserted about speed.

Usage
    python benchmarks/bench_power_flow.py [--data-dir DIR] [--cases 8] [--throughput-cases 16] [--part 1|2]
        [--throughput-feeder uhs1_1247--udt5219] [--large-feeder]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHASE6 = REPO / "6_instantiate_circuits"
sys.path.insert(0, str(PHASE6))
sys.path.insert(0, str(REPO / "tests"))

LARGE = "uhs1_1247--udt5219"
#: the 8,500-node-class feeder of --large-feeder: the sample builder's SMART-DS-like NC feeder with 3,110
#: customers (2,980 residential, 70 split-phase and 60 three-phase commercial) on a 30-segment Drake trunk
HUGE_ID = 9187
HUGE = f"uhs1_1247--udt{HUGE_ID}"


def add_large_feeder(build) -> None:
    """Add the 8,500-node-class feeder to the NC sample the builder module ``build`` makes."""
    nc = build.STATE_SAMPLES["NC"]
    if any(f.feeder_id == HUGE_ID for f in nc.feeders):
        return
    spec = build._spec("uhs1_1247", HUGE_ID, "u", 2980, 70, 60, 30, 200.0, build.DRAKE, 9)
    build.STATE_SAMPLES["NC"] = build.StateSample(nc.n_res_profiles, nc.n_com_small_profiles, nc.n_com_large_profiles,
                                                  nc.n_res_buildings, nc.n_com_buildings, nc.feeders + (spec,))


def load(relative: str):
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def prepare(data: Path, n_cases: int, large: bool = False) -> None:
    from common.paths import Workspace

    ws = Workspace(data)
    if ws.daily_profile_table("NC", "un", "winter").is_file() and ws.mixes("lhs").is_file():
        if large and not ws.feeder_dir("NC", HUGE).is_dir():
            raise SystemExit(f"{data}: a workspace without the large feeder {HUGE}: give --large-feeder a "
                             "--data-dir of its own (or a new one)")
        return
    if not ws.sample_manifest.is_file():
        build = load("sample/build_sample.py")
        if large:
            add_large_feeder(build)
        assert build.main(["--data-dir", str(data), "-q"]) == 0
    assert load("0_code_xlrm/run_mix_generator.py").main(["--data-dir", str(data), "--n-cases", str(n_cases), "-q"]) == 0
    import pipeline

    pipeline.load_script = lambda rel: load(rel)  # the tests' loader without pytest
    pipeline.run_phase1b(data, "NC")
    pipeline.run_profiles(data, "NC", eulp_root=pipeline.sample_eulp_root(data))


def single_run_cost(data: Path, cases: list[str], feeder: str = LARGE) -> None:
    """P1 of issue 16: the per-run cost of the batch path (``batch_runner.run_task``: instance, files, the case
    applied to the feeder compiled once by this worker, simulation, metrics, outputs) over a bare compile +
    solve of the same instance, case after case, side by side with the batch path with its cache off (every
    instance compiled, as before issue 16)."""
    import batch_runner
    import circuit_instance
    import feeder_cache
    from common import config, doe, dss
    from common.paths import Workspace

    ws = Workspace(data)
    ctx = circuit_instance.load_context(ws, "NC", "winter", feeder)
    circuit_instance.prepare_shared(ctx, ws)
    load("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py").filter_feeder(ctx, ws)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    cached, compiled, bare, floor = [], [], [], []
    engine = dss.engine()
    solves = [0]  # engine solves of the batch path's run: its 96 steps and the intervals solved without batteries
    real_step = dss._solve_step

    def counted_step(*args):
        solves[0] += 1
        return real_step(*args)
    dss.compile_master(ws.feeder_dir("NC", feeder) / "Master.dss")
    nodes = len(engine.Circuit.AllNodeNames())
    print(f"part 1: {feeder} ({len(ctx.customers)} customers, {nodes} nodes), winter, LHS cases {', '.join(cases)} "
          f"and the warm-up case 0, one chunk of {len(cases) + 1} runs (a batch's chunks hold up to "
          f"FEEDER_CHUNK_MAX_RUNS = {config.FEEDER_CHUNK_MAX_RUNS})")
    tasks = [{"data_dir": str(data), "state": "NC", "season": "winter", "design": "lhs", "feeder": feeder,
              "case_key": key, "case": mixes[key], "simulate": True, "force": True, "timeout_s": 600}
             for key in ["0"] + cases]
    batch_runner.hint_chunk(tasks)  # as the batch's run_chunk does: the cases are one chunk of the feeder
    for i, task in enumerate(tasks):
        key = task["case_key"]
        solves[0] = 0
        dss._solve_step = counted_step
        t0 = time.perf_counter()
        result = batch_runner.run_task(task)
        t_cached = time.perf_counter() - t0
        dss._solve_step = real_step
        n_solves = solves[0]
        t0 = time.perf_counter()
        result_compiled = batch_runner.run_task({**task, "cache": False})
        t_compiled = time.perf_counter() - t0
        master = ws.instance_dir("NC", "winter", "lhs", feeder, key) / "Master.dss"
        t0 = time.perf_counter()
        dss.compile_master(master, strip=False)
        t_compile = time.perf_counter() - t0
        engine.Text.Command("solve mode=daily stepsize=15m number=96")
        t_bare = time.perf_counter() - t0
        assert result["status"] == "ok" and result_compiled["status"] == "ok", (result, result_compiled)
        if i == 0:
            continue  # warm-up: the worker's first run loads the feeder context and compiles the feeder
        cached.append(t_cached)
        compiled.append(t_compiled)
        bare.append(t_bare)
        floor.append((t_bare - t_compile) / t_bare)
        print(f"  case {key:>2}: batch {t_cached:.3f} s ({result['timings'].get('engine_path')}: instance "
              f"{result['timings']['instance_s']:.3f}, case applied {result['timings'].get('prepare_s', 0):.3f}, "
              f"simulate {result['timings']['simulate_s']:.3f}, {n_solves} engine solves), batch compiling "
              f"{t_compiled:.3f} s, bare compile {t_compile:.3f} + solve {t_bare - t_compile:.3f} s: P1 "
              f"{t_cached / t_bare:.2f} (compiling {t_compiled / t_bare:.2f}; the bare solve alone {floor[-1]:.2f})")
    held = [len(f.elements) for f in batch_runner.FEEDERS.feeders.values()]
    print(f"  the cached feeder held {', '.join(map(str, held)) or 'no'} candidate devices for the chunk's cases (every "
          f"device the feeder can hold: {len(feeder_cache.candidate_text(ctx)[1])})")
    p1 = statistics.median(c / b for c, b in zip(cached, bare))
    p1_compiled = statistics.median(c / b for c, b in zip(compiled, bare))
    print(f"  median batch {statistics.median(cached):.3f} s, batch compiling every run "
          f"{statistics.median(compiled):.3f} s, bare compile + solve {statistics.median(bare):.3f} s (N = {len(bare)})")
    print(f"  P1 = median(batch / bare) = {p1:.2f} (goal <= 0.75); with the cache off {p1_compiled:.2f}; a run that "
          f"cost only the bare engine's own solve of its day would be {statistics.median(floor):.2f} (the floor of any "
          "path that solves the 96 steps, before reads, metrics, files and the intervals solved without batteries)")


def throughput(data: Path, cases: list[str], feeder: str = "uhs0_1247--udt2473") -> None:
    import batch_runner
    from common import doe
    from common.paths import Workspace

    ws = Workspace(data)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    feeders = [feeder]
    tasks = [{"data_dir": str(data), "state": "NC", "season": season, "design": "lhs", "feeder": f, "case_key": k,
              "case": mixes[k], "simulate": True, "force": True, "timeout_s": 600}
             for season in ("summer", "winter") for f in feeders for k in cases]
    # the shared files of each feeder, as the batch driver writes them before dispatching
    import circuit_instance

    for season in ("summer", "winter"):
        for f in feeders:
            ctx = circuit_instance.load_context(ws, "NC", season, f)
            circuit_instance.prepare_shared(ctx, ws)
            load("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py").filter_feeder(ctx, ws)
    print(f"part 2: {len(tasks)} runs ({', '.join(feeders)} x {len(cases)} cases x summer, winter); worker start-up "
          "included, the Dask cluster's own start-up not")
    rates, steady = {}, {}
    for label, workers, runner in (
            ("pool, 1 worker", 1, lambda cb: batch_runner.run_pool(tasks, 1, "1 worker", cb, in_process=False)),
            ("pool, 2 workers", 2, lambda cb: batch_runner.run_pool(tasks, 2, "2 workers", cb, in_process=False)),
            ("Dask LocalCluster, 2 workers", 2, lambda cb: dask_run(tasks, cb)),
            ("Dask, the same cluster again", 2, lambda cb: dask_run(tasks, cb))):
        done = []
        t0 = time.perf_counter()
        results = runner(lambda r: done.append(time.perf_counter()))
        elapsed = time.perf_counter() - t0
        assert all(r["status"] == "ok" for r in results)
        rates[label] = len(results) / elapsed
        # steady state: after every worker delivered its first run (start-up and context loading done)
        steady[label] = (len(done) - workers) / (done[-1] - done[workers - 1])
        memory = max(r["timings"]["worker_max_rss_mb"] for r in results)
        print(f"  {label:30s}: {elapsed:6.1f} s, {rates[label]:.2f} runs/s overall, {steady[label]:.2f} runs/s steady, "
              f"peak memory per worker {memory:.0f} MB")
    # the runs come back a chunk at a time (FEEDER_CHUNK_MAX_RUNS), so the steady rate, counted from each worker's
    # first result, overstates; the overall rate (start-up included) is the one the targets are read on
    print(f"  2 workers vs 1 (overall): x{rates['pool, 2 workers'] / rates['pool, 1 worker']:.2f} (target >= 1.8); "
          f"steady x{steady['pool, 2 workers'] / steady['pool, 1 worker']:.2f} (overstated by chunked delivery)")
    print(f"  Dask vs pool, 2 workers (overall): x{rates['Dask LocalCluster, 2 workers'] / rates['pool, 2 workers']:.2f}"
          f" (target >= 0.9); steady x{steady['Dask LocalCluster, 2 workers'] / steady['pool, 2 workers']:.2f}")
    print(f"  Dask again on the same cluster vs pool (overall): "
          f"x{rates['Dask, the same cluster again'] / rates['pool, 2 workers']:.2f}")


_CLUSTER = None


def dask_run(tasks, on_result):
    import batch_runner

    return batch_runner.run_dask(tasks, _CLUSTER.scheduler_address, "dask", on_result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="workspace to prepare or reuse (default: a temporary one)")
    parser.add_argument("--cases", type=int, default=8, help="cases of part 1")
    parser.add_argument("--throughput-cases", type=int, default=16, help="cases per feeder of part 2")
    parser.add_argument("--part", type=int, choices=(1, 2), default=None, help="only part 1 (P1) or part 2")
    parser.add_argument("--throughput-feeder", default="uhs0_1247--udt2473",
                        help=f"the NC sample feeder of part 2 (default: the medium one; {LARGE} for the large one)")
    parser.add_argument("--large-feeder", action="store_true",
                        help=f"part 1 on an 8,500-node-class feeder ({HUGE}, 3,110 customers) the benchmark adds to "
                             "the NC sample (a --data-dir of its own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data_dir).resolve() if args.data_dir else Path(tmp)
        prepare(data, max(args.cases, args.throughput_cases), large=args.large_feeder)
        if args.part in (None, 1):
            single_run_cost(data, [str(i) for i in range(1, args.cases + 1)], HUGE if args.large_feeder else LARGE)
        if args.part == 1:
            return 0
        from distributed import LocalCluster

        global _CLUSTER
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            _CLUSTER = cluster
            throughput(data, [str(i) for i in range(1, args.throughput_cases + 1)], args.throughput_feeder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
