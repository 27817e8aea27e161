"""Phase 6: a feeder compiled once per worker (feeder_cache) gives the results of compiling every instance,
its cache is bounded, and feeder chunks on the pool change no result."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import config, doe
from common.paths import Workspace
from conftest import copy_workspace, load_script

APPLY = "6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py"
apply = load_script(APPLY)
import batch_runner  # noqa: E402  (the phase folder is on the path once its script is loaded)
import circuit_instance  # noqa: E402
import daily_power_flow as pf  # noqa: E402
import feeder_cache  # noqa: E402

#: the sample's three NC feeders that pass the filter (about 300, 900 and 2,000 customers)
FEEDERS = ("uhs0_1247--udt1021", "uhs0_1247--udt2473", "uhs1_1247--udt5219")
N_CASES = 12  # cases per design of the test's mixes file
N_COMPARED = 20


@pytest.fixture(scope="module")
def cases_ws(prepared_nc, tmp_path_factory) -> Path:
    """The prepared NC workspace with a mixes file of N_CASES cases per design, instantiated on the three
    feeders for both seasons (filter and shared files written, nothing solved)."""
    data = copy_workspace(prepared_nc, tmp_path_factory.mktemp("p6cache") / "data")
    assert load_script("0_code_xlrm/run_mix_generator.py").main(
        ["--data-dir", str(data), "--n-cases", str(N_CASES), "-q"]) == 0
    for season in config.SEASONS:
        assert apply.main(["--data-dir", str(data), "--state", "NC", "--season", season, "--design", "lhs",
                           "--feeders", ",".join(FEEDERS), "--workers", "1", "-q"]) == 0
    return data


def _context(ws: Workspace, season: str, feeder: str) -> circuit_instance.FeederContext:
    ctx = circuit_instance.load_context(ws, "NC", season, feeder)
    circuit_instance.attach_shared(ctx, ws)
    return ctx


def _instance(ws: Workspace, ctx, season: str, feeder: str, key: str, case: dict):
    folder = ws.instance_dir("NC", season, "lhs", feeder, key)
    instance = circuit_instance.build_instance(ctx, ws, "lhs", key, case, folder)
    circuit_instance.write_instance(instance, ctx, folder)
    return instance, folder


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.dss"))}


def _assert_same_metrics(compiled: dict, cached: dict, where: str) -> None:
    assert compiled.keys() == cached.keys(), where
    for name, a in compiled.items():
        b = cached[name]
        if isinstance(a, float) or isinstance(b, float):
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=0.0, err_msg=f"{where}: {name}")
        else:
            assert a == b, f"{where}: {name} {a!r} != {b!r}"


def test_cached_feeder_gives_the_compiled_instance_results(cases_ws):
    """20 random (season, feeder, case) runs, solved in a random order on one worker's cache, against a
    compile of each instance's own files: every metric and the head series to 1e-9 relative; the instance
    files on disk untouched by the cached path."""
    ws = Workspace(cases_ws)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    rng = np.random.default_rng(np.random.SeedSequence(16))
    pool = [(s, f, k) for s in config.SEASONS for f in FEEDERS for k in sorted(mixes, key=int)]
    picked = [pool[i] for i in rng.choice(len(pool), size=N_COMPARED, replace=False)]
    assert len({f for _, f, _ in picked}) == 3
    cache = feeder_cache.FeederCache(size=len(FEEDERS) * len(config.SEASONS))
    contexts = {}
    paths = []
    for season, feeder, key in picked:
        ctx = contexts.get((season, feeder)) or contexts.setdefault((season, feeder), _context(ws, season, feeder))
        instance, folder = _instance(ws, ctx, season, feeder, key, mixes[key])
        where = f"{season} {feeder} case {key}"
        before = _digest(folder)
        prepared, how = cache.prepare((season, feeder), ctx, instance.files, folder)
        assert how == "cached" and prepared is not None, f"{where}: {how}"
        table_b, summary_b, _ = pf.simulate(folder, prepared=prepared)
        cache.after_day((season, feeder))
        table_a, summary_a, _ = pf.simulate(folder)
        assert summary_a["status"] == summary_b["status"] == "ok", where
        _assert_same_metrics(summary_a["metrics"], summary_b["metrics"], where)
        numeric = [c for c in table_a.columns if pd.api.types.is_numeric_dtype(table_a[c])]
        np.testing.assert_allclose(table_b[numeric].to_numpy(float), table_a[numeric].to_numpy(float),
                                   rtol=1e-9, atol=1e-12, err_msg=where)
        assert table_b.columns.tolist() == table_a.columns.tolist()
        assert _digest(folder) == before
        paths.append(prepared is not None)
    assert all(paths) and cache.compiles == len({(s, f) for s, f, _ in picked})


def test_device_elements_are_the_devices_the_case_files_define(cases_ws):
    ws = Workspace(cases_ws)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    kinds = set()
    for feeder in FEEDERS:
        ctx = _context(ws, "winter", feeder)
        for key in sorted(mixes, key=int):
            instance, _ = _instance(ws, ctx, "winter", feeder, key, mixes[key])
            expected = feeder_cache.case_elements(instance.files)
            assert circuit_instance.device_elements(ctx, mixes[key]) == expected, f"{feeder} case {key}"
            kinds |= {name.split("_", 1)[0] for name in expected}
    assert kinds == {"load.ev", "pvsystem.pv", "pvsystem.pvres", "storage.sto", "storage.bat"}


def _solved(cache, key, ctx, instance, folder):
    prepared, how = cache.prepare(key, ctx, instance.files, folder)
    assert how == "cached", how
    table, summary, _ = pf.simulate(folder, prepared=prepared)
    cache.after_day(key)
    assert summary["status"] == "ok"
    return table, json.dumps(summary["metrics"], sort_keys=True)


def test_a_feeder_compiled_for_its_chunk_has_only_the_chunks_devices_and_the_same_results_bit_for_bit(cases_ws):
    ws = Workspace(cases_ws)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    feeder, keys = FEEDERS[2], ("1", "2", "3")
    ctx = _context(ws, "winter", feeder)
    built = {k: _instance(ws, ctx, "winter", feeder, k, mixes[k]) for k in keys}
    chunk = set().union(*(circuit_instance.device_elements(ctx, mixes[k]) for k in keys))
    every = feeder_cache.FeederCache(1)
    hinted = feeder_cache.FeederCache(1)
    hinted.hints[feeder] = chunk
    for k in keys:
        table_a, metrics_a = _solved(every, feeder, ctx, *built[k])
        table_b, metrics_b = _solved(hinted, feeder, ctx, *built[k])
        assert metrics_b == metrics_a and table_b.equals(table_a), f"case {k}"
    assert hinted.feeders[feeder].elements == chunk
    assert len(chunk) < len(every.feeders[feeder].elements)
    assert hinted.compiles == every.compiles == 1


def test_a_cached_feeders_equipment_and_day_are_what_the_compiled_instance_gives_the_upgrade_step(cases_ws):
    """What the upgrade step takes from a run on a cached feeder instead of compiling its instance: the read of
    lines, transformers and line codes (``upgrade_circuit.read_equipment``) after the case's day equals the read
    of that case's instance compiled from its files, field for field (read once per compile; None for a feeder
    that is not cached), and the run's kept circuit has the compiled instance's node order and branch layout
    (the voltage step indexes a compiled engine's nodes with it)."""
    import upgrade_circuit
    from common import dss

    ws = Workspace(cases_ws)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    feeder = FEEDERS[1]
    ctx = _context(ws, "winter", feeder)
    cache = feeder_cache.FeederCache(1)
    assert cache.equipment(feeder, upgrade_circuit.read_equipment) is None
    reads = []
    for key in ("1", "2"):
        instance, folder = _instance(ws, ctx, "winter", feeder, key, mixes[key])
        prepared, how = cache.prepare(feeder, ctx, instance.files, folder)
        assert how == "cached", how
        kept = {}
        _, summary, _ = pf.simulate(folder, prepared=prepared, keep=kept)
        cache.after_day(feeder)
        assert summary["status"] == "ok" and kept["circuit"] is not None
        cached = cache.equipment(feeder, lambda engine: reads.append(1) or upgrade_circuit.read_equipment(engine))
        engine = dss.engine()
        dss.compile_master(folder / "Master.dss", strip=False)
        compiled = upgrade_circuit.read_equipment(engine)
        assert all(part for part in compiled), "the feeder has transformers, lines and line codes"
        assert cached == compiled, f"case {key}"
        assert list(kept["circuit"].node_index) == [n.lower() for n in engine.Circuit.YNodeOrder()], f"case {key}"
        assert list(kept["circuit"].layout.names) == list(dss.pd_layout(engine).names), f"case {key}"
    assert len(reads) == 1


def test_a_case_with_a_device_the_hint_lacks_compiles_the_feeder_again_with_it(cases_ws):
    ws = Workspace(cases_ws)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    feeder = FEEDERS[1]
    ctx = _context(ws, "winter", feeder)
    first, second = (_instance(ws, ctx, "winter", feeder, k, mixes[k]) for k in ("1", "2"))
    devices = [feeder_cache.case_elements(i.files) for i, _ in (first, second)]
    assert devices[1] - devices[0]
    cache = feeder_cache.FeederCache(1)
    cache.hints[feeder] = devices[0]
    _solved(cache, feeder, ctx, *first)
    table, metrics = _solved(cache, feeder, ctx, *second)
    assert cache.compiles == 2 and cache.feeders[feeder].elements == devices[0] | devices[1]
    table_c, summary_c, _ = pf.simulate(second[1])
    _assert_same_metrics(summary_c["metrics"], json.loads(metrics), "case 2")


def test_storage_peak_without_batteries_by_bounds_is_the_peak_of_solving_every_active_interval(cases_ws, monkeypatch):
    """The sample's 900-customer feeder has fuses: its storage cases' peak without batteries, solved where the
    head-power and fuse bounds say an interval could top it, equals solving every interval a battery is active
    in, to the engine's convergence (each interval is solved from another starting point), with fewer solves."""
    from common import dss

    ws = Workspace(cases_ws)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    feeder = FEEDERS[1]
    solves = []
    real_interval = dss.solve_interval
    monkeypatch.setattr(dss, "solve_interval", lambda *a, **k: solves.append(1) or real_interval(*a, **k))
    compared = 0
    for key in sorted(mixes, key=int):
        folder = ws.instance_dir("NC", "winter", "lhs", feeder, key)
        if not json.loads((folder / "scenario_assignments.json").read_text())["hosts"]["storage_res"]:
            continue
        solves.clear()
        _, bounded, _ = pf.simulate(folder)
        n_bounded = len(solves)
        with monkeypatch.context() as m:
            m.setattr(pf, "fuse_must_solve", lambda *a: None)  # no bound: every active interval solved
            solves.clear()
            _, every, _ = pf.simulate(folder)
        assert bounded["status"] == every["status"] == "ok"
        np.testing.assert_allclose(bounded["metrics"]["peak_without_storage_kw"],
                                   every["metrics"]["peak_without_storage_kw"], rtol=1e-4)
        assert n_bounded < len(solves), key
        compared += 1
    assert compared >= 3


def test_run_chunk_compiles_the_feeder_with_the_devices_of_the_chunks_cases(cases_ws, tmp_path):
    data = copy_workspace(cases_ws, tmp_path / "data")
    ws = Workspace(data)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    feeder = FEEDERS[1]
    digest = ws.shared_digest("NC", "winter", feeder).read_text().strip()
    tasks = [{"data_dir": str(data), "state": "NC", "season": "winter", "design": "lhs", "feeder": feeder,
              "case_key": k, "case": mixes[k], "simulate": True, "force": True, "timeout_s": 600, "mixes_digest": "",
              "shared_digest": digest} for k in ("1", "2", "3")]
    batch_runner.FEEDERS.clear()
    compiles = batch_runner.FEEDERS.compiles  # the worker's count so far (this process ran other batches)
    records = batch_runner.run_chunk(tasks)
    assert [r["timings"]["engine_path"] for r in records] == ["cached"] * 3
    ctx = batch_runner._context(tasks[0])
    chunk = set().union(*(circuit_instance.device_elements(ctx, t["case"]) for t in tasks))
    assert batch_runner.FEEDERS.feeders[feeder_cache.cache_key(tasks[0], ctx)].elements == chunk
    assert batch_runner.FEEDERS.compiles == compiles + 1
    batch_runner.FEEDERS.clear()


def test_the_device_limit_counts_the_candidates_of_the_chunk(cases_ws, monkeypatch):
    ws = Workspace(cases_ws)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    ctx = _context(ws, "winter", FEEDERS[0])
    instance, folder = _instance(ws, ctx, "winter", FEEDERS[0], "1", mixes["1"])
    own = feeder_cache.case_elements(instance.files)
    every = feeder_cache.candidate_text(ctx)[1]
    monkeypatch.setattr(config, "FEEDER_CACHE_MAX_DEVICES", len(own))
    cache = feeder_cache.FeederCache(1)
    cache.hints[FEEDERS[0]] = set(every)
    prepared, how = cache.prepare(FEEDERS[0], ctx, instance.files, folder)
    assert prepared is None and f"{len(every)} candidate devices for its chunk" in how
    assert FEEDERS[0] not in cache.uncached  # another chunk may fit
    cache.hints[FEEDERS[0]] = own
    assert cache.prepare(FEEDERS[0], ctx, instance.files, folder)[1] == "cached"


def test_cache_keeps_at_most_its_size_dropping_the_least_recently_used(cases_ws):
    ws = Workspace(cases_ws)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    cache = feeder_cache.FeederCache(size=2)
    order = [FEEDERS[0], FEEDERS[1], FEEDERS[0], FEEDERS[2], FEEDERS[1]]
    sizes, kept = [], []
    for feeder in order:
        ctx = _context(ws, "winter", feeder)
        instance, folder = _instance(ws, ctx, "winter", feeder, "1", mixes["1"])
        prepared, how = cache.prepare(feeder, ctx, instance.files, folder)
        assert how == "cached"
        sizes.append(len(cache))
        kept.append(list(cache.feeders))
    assert max(sizes) == 2
    # FEEDERS[2] pushes out FEEDERS[1] (used before FEEDERS[0]'s second case), which then comes back
    assert kept[3] == [FEEDERS[0], FEEDERS[2]] and kept[4] == [FEEDERS[2], FEEDERS[1]]
    assert cache.compiles == 4


def test_a_volt_var_case_is_compiled_from_its_files_and_says_why(cases_ws, monkeypatch):
    ws = Workspace(cases_ws)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    key = next(k for k in sorted(mixes, key=int) if mixes[k]["pv_perc_res"] > 0.05)
    monkeypatch.setitem(config.ROOFTOP_PV, "inverter_control", "volt_var")
    ctx = _context(ws, "summer", FEEDERS[1])
    instance, folder = _instance(ws, ctx, "summer", FEEDERS[1], key, mixes[key])
    assert "InvControl" in instance.files["PV.dss"]
    prepared, how = feeder_cache.FeederCache(1).prepare(FEEDERS[1], ctx, instance.files, folder)
    assert prepared is None and how.startswith("compiled:") and "InvControl" in how


def test_chunk_tasks_groups_each_feeder_and_splits_it_over_the_workers():
    tasks = [{"state": "NC", "season": "winter", "feeder": f, "case_key": str(k)} for k in range(5) for f in "ab"]
    chunks = batch_runner.chunk_tasks(tasks, workers=2, max_runs=16)
    assert [[tasks[i]["feeder"] for i in c] for c in chunks] == [["a"] * 3, ["a"] * 2, ["b"] * 3, ["b"] * 2]
    assert sorted(i for c in chunks for i in c) == list(range(10))
    assert all(len(c) == 1 for c in batch_runner.chunk_tasks(tasks, workers=2, max_runs=1))


def _outputs(design_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(design_dir)): p.read_bytes()
            for p in sorted(design_dir.rglob("*")) if p.name in ("summary.json", "timeseries.parquet")}


def test_chunked_cached_pool_batch_is_byte_identical_to_compiling_every_run(cases_ws, tmp_path):
    """The same batch on 2 pool workers: in feeder chunks with the compiled-feeder cache, and one run per task
    with every instance compiled: the same summary.json and timeseries.parquet bytes."""
    mixes = doe.load_mixes(Workspace(cases_ws).mixes("lhs"))
    results = {}
    for label, chunk_runs, cache in (("chunked", None, True), ("unchunked", 1, False)):
        data = copy_workspace(cases_ws, tmp_path / label / "data")
        ws = Workspace(data)
        digests = {f: (ws.shared_digest("NC", "winter", f)).read_text().strip() for f in FEEDERS[:2]}
        tasks = [{"data_dir": str(data), "state": "NC", "season": "winter", "design": "lhs", "feeder": f,
                  "case_key": k, "case": mixes[k], "simulate": True, "force": True, "timeout_s": 600,
                  "mixes_digest": "", "shared_digest": digests[f], "cache": cache}
                 for f in FEEDERS[:2] for k in ("1", "2", "3", "4", "5", "6")]
        records = batch_runner.run_pool(tasks, 2, label, in_process=False, chunk_runs=chunk_runs)
        assert all(r["status"] == "ok" for r in records), [r["message"] for r in records]
        paths = {r["timings"]["engine_path"] for r in records}
        assert paths == ({"cached"} if cache else {"compiled: cache off"})
        results[label] = _outputs(ws.design_dir("NC", "winter", "lhs"))
    assert len(results["chunked"]) == 2 * 12
    assert results["chunked"] == results["unchunked"]
    summary = json.loads(next(v for k, v in results["chunked"].items() if k.endswith("summary.json")))
    assert summary["status"] == "ok"


def test_an_upgraded_batch_on_the_cache_writes_the_bytes_of_compiling_every_run(cases_ws, tmp_path):
    """With the upgrade step (``--upgrades``) on the medium feeder, whose winter runs overload service
    transformers: the batch on 2 pool workers in feeder chunks with the cache (the step takes the cached
    feeder's equipment and the run's day, compiling nothing before its first upgrade) and the batch with every
    instance compiled write the same summary.json, upgrades.json and upgraded/ instance bytes."""
    from conftest import SHARED_DATA

    costs = SHARED_DATA / "upgrade_costs"
    if not costs.is_dir():
        pytest.skip("../shared/data/upgrade_costs (NREL DISCO's cost tables) is not beside this checkout")
    mixes = doe.load_mixes(Workspace(cases_ws).mixes("lhs"))
    results = {}
    for label, chunk_runs, cache in (("chunked", None, True), ("unchunked", 1, False)):
        data = copy_workspace(cases_ws, tmp_path / label / "data")
        ws = Workspace(data)
        digest = ws.shared_digest("NC", "winter", FEEDERS[1]).read_text().strip()
        tasks = [{"data_dir": str(data), "state": "NC", "season": "winter", "design": "lhs", "feeder": FEEDERS[1],
                  "case_key": k, "case": mixes[k], "simulate": True, "force": True, "timeout_s": 600,
                  "mixes_digest": "", "shared_digest": digest, "cache": cache, "upgrades": True,
                  "cost_tables": str(costs)} for k in ("1", "2", "3", "4")]
        records = batch_runner.run_pool(tasks, 2, label, in_process=False, chunk_runs=chunk_runs)
        assert all(r["status"] == "ok" for r in records), [r["message"] for r in records]
        assert {r["timings"]["engine_path"] for r in records} == ({"cached"} if cache else {"compiled: cache off"})
        design_dir = ws.design_dir("NC", "winter", "lhs")
        results[label] = {str(p.relative_to(design_dir)): p.read_bytes() for p in sorted(design_dir.rglob("*"))
                          if p.name in ("summary.json", "upgrades.json") or p.parent.name == "upgraded"}
    upgraded = [k for k, v in results["chunked"].items() if k.endswith("upgrades.json")
                and json.loads(v)["status"] == "upgraded"]
    assert upgraded, "the medium feeder's winter runs are upgraded"
    assert results["chunked"] == results["unchunked"]


#: the feeder given regulators and a capacitor bank in :func:`regulated_ws`
REGULATED = FEEDERS[1]


@pytest.fixture(scope="module")
def regulated_ws(cases_ws, tmp_path_factory) -> Path:
    """``cases_ws`` with the medium NC feeder given the stateful controls of real SMART-DS feeders: two
    regulated service transformers (a RegControl on the 120-V winding with a 1-V band, so that their taps move
    as the day's load does) and a capacitor switched by a time CapControl (on at 07:00, off at 19:00, with the
    CapControl's dead time), appended to the feeder's Transformers.dss."""
    data = copy_workspace(cases_ws, tmp_path_factory.mktemp("p6regulated") / "data")
    path = Workspace(data).feeder_dir("NC", REGULATED) / "Transformers.dss"
    first = [line.split() for line in path.read_text().splitlines() if line.startswith("New Transformer.")][:2]
    names = [words[1].split(".", 1)[1] for words in first]
    bus = next(w.split("=", 1)[1] for w in first[0] if w.lower().startswith("bus="))
    controls = [f"New RegControl.rc{i} transformer={name} winding=2 vreg=120 band=1 ptratio=1"
                for i, name in enumerate(names)]
    controls += [f"New Capacitor.cap_t bus1={bus} phases=1 kvar=60 kV=7.19956",
                 f"New CapControl.cc_t element=Transformer.{names[0]} terminal=1 capacitor=cap_t type=time ON=7 "
                 "OFF=19"]
    path.write_text(path.read_text() + "\n" + "\n".join(controls) + "\n")
    return data


def test_cached_feeder_with_regulators_and_a_switched_capacitor_gives_the_compiled_results(regulated_ws):
    """Cases solved one after another on one cached feeder whose regulators tap and whose capacitor switches
    during every day (each day ends with taps moved and the capacitor open): each equals a compile of its own
    files, every metric and the head series to 1e-9 relative, storage cases (a whole day re-solved without the
    batteries on the same cached feeder) included."""
    ws = Workspace(regulated_ws)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    keys = [k for k in sorted(mixes, key=int) if k != "0"][:6]
    assert any(mixes[k]["storage_perc_res"] > 0 or mixes[k]["storage_perc_3ph"] > 0 for k in keys)
    ctx = _context(ws, "winter", REGULATED)
    cache = feeder_cache.FeederCache(size=1)
    moved = []
    for key in keys:
        instance, folder = _instance(ws, ctx, "winter", REGULATED, key, mixes[key])
        prepared, how = cache.prepare(REGULATED, ctx, instance.files, folder)
        assert how == "cached" and prepared is not None, how
        table_b, summary_b, _ = pf.simulate(folder, prepared=prepared)
        feeder = cache.feeders[REGULATED]
        moved.append(feeder_cache.ControlState.read(feeder.engine) != feeder.controls)
        cache.after_day(REGULATED)
        table_a, summary_a, _ = pf.simulate(folder)
        assert summary_a["status"] == summary_b["status"] == "ok", key
        _assert_same_metrics(summary_a["metrics"], summary_b["metrics"], f"case {key}")
        numeric = [c for c in table_a.columns if pd.api.types.is_numeric_dtype(table_a[c])]
        np.testing.assert_allclose(table_b[numeric].to_numpy(float), table_a[numeric].to_numpy(float),
                                   rtol=1e-9, atol=1e-12, err_msg=f"case {key}")
    assert all(moved)  # every day left the controls elsewhere than the compile: the restart had work to do
    assert cache.compiles == 1


def test_a_reversible_regulator_makes_the_cache_compile_every_case(regulated_ws, tmp_path):
    data = copy_workspace(regulated_ws, tmp_path / "data")
    path = Workspace(data).feeder_dir("NC", REGULATED) / "Transformers.dss"
    path.write_text(path.read_text().replace("ptratio=1\n", "ptratio=1 reversible=yes\n", 1))
    ws = Workspace(data)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    ctx = _context(ws, "winter", REGULATED)
    instance, folder = _instance(ws, ctx, "winter", REGULATED, "1", mixes["1"])
    prepared, how = feeder_cache.FeederCache(1).prepare(REGULATED, ctx, instance.files, folder)
    assert prepared is None and "reversible" in how and "RegControl.rc0" in how


def test_a_feeder_with_more_candidate_devices_than_the_limit_is_compiled_and_says_why(cases_ws, monkeypatch):
    ws = Workspace(cases_ws)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    ctx = _context(ws, "winter", FEEDERS[0])
    n_devices = len(feeder_cache.candidate_text(ctx)[1])
    instance, folder = _instance(ws, ctx, "winter", FEEDERS[0], "1", mixes["1"])
    monkeypatch.setattr(config, "FEEDER_CACHE_MAX_DEVICES", n_devices - 1)
    cache = feeder_cache.FeederCache(1)
    prepared, how = cache.prepare(FEEDERS[0], ctx, instance.files, folder)
    assert prepared is None and f"{n_devices} candidate devices" in how and "FEEDER_CACHE_MAX_DEVICES" in how
    assert cache.compiles == 0 and len(cache) == 0 and cache.prepare(FEEDERS[0], ctx, instance.files, folder)[1] == how
    monkeypatch.setattr(config, "FEEDER_CACHE_MAX_DEVICES", n_devices)
    assert feeder_cache.FeederCache(1).prepare(FEEDERS[0], ctx, instance.files, folder)[1] == "cached"


def _tiny_regulated(extra: str) -> str:
    """A 12.47 kV feeder with a regulating transformer and a load on a daily shape (dayA; dayB for another case)."""
    def shape(name: str, base: float, amp: float, phase: float) -> str:
        mult = " ".join(f"{base + amp * np.sin(2 * np.pi * k / 96 + phase):.4f}" for k in range(96))
        return f"New Loadshape.{name} npts=96 interval=0.25 mult=({mult})"

    return "\n".join([
        "Clear", "New Circuit.t basekv=12.47 pu=1.0 phases=3 bus1=src",
        "New Line.l0 bus1=src bus2=a phases=3 r1=0.3 x1=0.6 r0=0.6 x0=1.2 length=3 units=km",
        "New Transformer.reg phases=3 windings=2 buses=(a, b) conns=(wye, wye) kvs=(12.47, 12.47) "
        "kvas=(10000, 10000) XHL=0.01 %loadloss=0.0001",
        "New Line.l1 bus1=b bus2=c phases=3 r1=0.3 x1=0.6 r0=0.6 x0=1.2 length=4 units=km",
        shape("dayA", 0.9, 0.6, 0.0), shape("dayB", 0.5, 0.45, 2.0),
        "New Load.ld bus1=c phases=3 kV=12.47 kW=4500 kvar=2500 model=1 daily=dayA",
        "New RegControl.r transformer=reg winding=2 vreg=122 band=2 ptratio=60 delay=30 tapdelay=2 maxtapchange=1",
        extra, "New Monitor.head element=Line.l0 terminal=1 mode=1 ppolar=no",
        "Set VoltageBases=[12.47]", "CalcVoltageBases"]) + "\n"


def _day_voltages(engine) -> np.ndarray:
    from common import dss

    v = []
    dss.solve_daily(lambda k: v.append(np.abs(dss.complex_array(engine.Circuit.YNodeVArray()))), dss=engine, warnings=[])
    return np.array(v)


def test_restart_does_the_actions_a_day_left_queued_so_the_next_day_is_the_compiled_one():
    """A power-factor CapControl whose switching is still queued when the day ends (due after 24:00) stays armed
    through ``Reset Controls``; the cached feeder's restart does the queued actions and sets back what they
    change, so the next case's day equals a fresh compile of that case (node voltages to 1e-9)."""
    import opendssdirect

    text = _tiny_regulated("New Capacitor.c bus1=c phases=3 kvar=2400 kV=12.47 numsteps=1\n"
                           "New CapControl.cc element=Line.l1 terminal=1 capacitor=c type=pf ON=-0.97 OFF=0.99 "
                           "ptratio=60 ctratio=1 delay=60 delayoff=60 deadtime=300")
    fresh = opendssdirect.NewContext()
    fresh.Text.Commands(text)
    fresh.Text.Command("Edit Load.ld daily=dayB")
    expected = _day_voltages(fresh)
    cached = opendssdirect.NewContext()
    cached.Text.Commands(text)
    feeder = feeder_cache.CompiledFeeder(key=(), engine=cached, master_key=(), loads={}, elements=set(), circuit=None,
                                         stateful=[], controls=feeder_cache.ControlState.read(cached), resets=True)
    _day_voltages(cached)  # the previous case's day
    assert any("cc" in entry for entry in cached.CtrlQueue.Queue())  # its capacitor control armed at the end
    cached.Text.Command("Edit Load.ld daily=dayB")  # this case
    feeder.restart()
    np.testing.assert_allclose(_day_voltages(cached), expected, rtol=1e-9, atol=0.0)


def test_a_regulated_autotransformer_makes_the_cache_compile_every_case():
    import opendssdirect

    engine = opendssdirect.NewContext()
    engine.Text.Commands("\n".join([
        "Clear", "New Circuit.t basekv=12.47 pu=1.0 phases=3 bus1=src",
        "New AutoTrans.at phases=3 windings=2 buses=(src, b) conns=(series, wye) kVs=(12.47, 7.2) kVAs=(5000, 5000) "
        "XHX=1", "New Load.ld bus1=b phases=3 kV=7.2 kW=100",
        "New RegControl.r transformer=at winding=2 vreg=122 band=2 ptratio=60",
        "Set VoltageBases=[12.47 7.2]", "CalcVoltageBases"]) + "\n")
    with pytest.raises(feeder_cache.CaseNotApplicable, match="not a Transformer"):
        feeder_cache.ControlState.read(engine)
