"""Phase 6b: daily power flows, planning metrics, batches on a process pool and on Dask, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import doe
from common.io import sha256_file, write_json
from common.paths import Workspace
from conftest import REPO, copy_workspace, load_script, requires_shared

APPLY = "6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py"
apply = load_script(APPLY)
single = load_script("6_instantiate_circuits/power_flow_sim_daily_EV_STO_DG_deploy.py")
import batch_runner  # noqa: E402
import daily_power_flow as pf  # noqa: E402

SMALL = "uhs0_1247--udt1021"
MEDIUM = "uhs0_1247--udt2473"
LARGE = "uhs1_1247--udt5219"


def _run(data: Path, *extra: str, season: str = "summer", design: str = "lhs") -> int:
    return apply.main(["--data-dir", str(data), "--state", "NC", "--season", season, "--design", design, "--run",
                       "-q", *extra])


@pytest.fixture(scope="module")
def batch(prepared_nc, tmp_path_factory) -> Path:
    data = copy_workspace(prepared_nc, tmp_path_factory.mktemp("p6b") / "data")
    assert _run(data, "--feeders", f"{SMALL},{MEDIUM}", "--workers", "2") == 0
    return data


def _outputs(design_dir: Path) -> dict[str, tuple[bytes, dict]]:
    out = {}
    for summary in sorted(design_dir.rglob("summary.json")):
        folder = summary.parent
        data = json.loads(summary.read_text())
        out[f"{folder.parent.name}/{folder.name}"] = ((folder / "timeseries.parquet").read_bytes(), data["metrics"])
    return out


# ------------------------------------------------------------------------------------------- outputs
def test_every_instance_is_solved_with_declared_outputs(batch):
    ws = Workspace(batch)
    index = pd.read_csv(ws.batch_index("NC", "summer", "lhs"))
    assert (index["status"] == "ok").all() and len(index) == 2 * 5
    folder = ws.instance_dir("NC", "summer", "lhs", MEDIUM, "2")
    table = pd.read_parquet(folder / "timeseries.parquet")
    assert len(table) == 96
    for column in pf.HEAD_COLUMNS + ["hour", "interval_start", "ev_kw", "pv_kw", "storage_kw", "storage_soc",
                                     "losses_kw", "v_min_pu", "v_max_pu", "converged"]:
        assert column in table.columns
    summary = json.loads((folder / "summary.json").read_text())
    for key in ("peak_kw", "peak_time", "energy_kwh", "losses_kwh", "losses_pct", "s_phase_sum_minus_total_max_kva",
                "vuf_max_pct", "vuf_over_2pct_bus_intervals", "vuf_over_3pct_bus_intervals",
                "head_current_unbalance_max_pct", "v_min_pu", "v_max_pu", "ansi_a_violation_node_intervals", "ansi_a_customers_affected",
                "ansi_b_violation_node_intervals", "ansi_b_customers_affected", "worst_line_loading_pct",
                "worst_transformer_loading_pct", "overloaded_transformer_intervals", "transformer_ma_overload_intervals",
                "line_ma_overload_intervals", "reverse_flow_intervals", "storage_peak_reduction_kw",
                "ev_energy_delivered_kwh", "ev_energy_unserved_kwh", "non_converged_steps"):
        assert key in summary["metrics"], key
    assert summary["status"] == "ok" and "opendssdirect.py" in summary["packages"]
    assert "runtime_s" not in summary and "instance_s" not in summary  # timings live in timings.csv
    assert summary["timeseries_sha256"] == sha256_file(folder / "timeseries.parquet")
    assert summary["mixes_digest"] == sha256_file(ws.mixes("lhs"))
    timings = pd.read_csv(ws.batch_timings("NC", "summer", "lhs"))
    assert len(timings) == 10 and (timings["runtime_s"] > 0).all()
    assert not {"runtime_s", "instance_s", "worker_pid"} & set(index.columns)
    assert summary["inputs"]["ev_perc"] == pytest.approx(doe.load_mixes(ws.mixes("lhs"))["2"]["ev_perc"])


def test_outputs_follow_the_schema_phase7_reads(batch):
    from common import schema

    folder = Workspace(batch).instance_dir("NC", "summer", "lhs", MEDIUM, "2")
    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary) == set(schema.SUMMARY_KEYS) | {"light_load"}  # summer: the light-load day too
    assert set(summary["metrics"]) == set(schema.METRICS) | set(schema.NOT_OUTCOMES) | set(schema.LIGHT_LOAD_METRICS)
    assert tuple(pd.read_parquet(folder / "timeseries.parquet").columns) == schema.SERIES_COLUMNS
    light = json.loads((folder / "light_load" / "summary.json").read_text())
    assert set(light) == set(schema.SUMMARY_KEYS)
    assert set(light["metrics"]) == set(schema.METRICS) | set(schema.NOT_OUTCOMES)


def test_head_series_is_consistent(batch):
    folder = Workspace(batch).instance_dir("NC", "summer", "lhs", MEDIUM, "1")
    t = pd.read_parquet(folder / "timeseries.parquet")
    np.testing.assert_allclose(t["P_3ph (kW)"], t["P1 (kW)"] + t["P2 (kW)"] + t["P3 (kW)"], rtol=1e-9)
    np.testing.assert_allclose(t["S1 (kVA)"], np.hypot(t["P1 (kW)"], t["Q1 (kVAr)"]), rtol=1e-9)
    assert (t["S_sum_3ph (kVA)"] >= t["S_3ph (kVA)"] - 1e-9).all()
    summary = json.loads((folder / "summary.json").read_text())["metrics"]
    assert summary["peak_kw"] == pytest.approx(t["P_3ph (kW)"].max())
    assert summary["energy_kwh"] == pytest.approx(t["P_3ph (kW)"].sum() * 0.25)


def test_simulated_day_follows_the_instance_forecast(batch):
    """The feeder-head power is the customers' load + EVs - PV - storage, plus the feeder's losses."""
    folder = Workspace(batch).instance_dir("NC", "summer", "lhs", MEDIUM, "3")
    a = json.loads((folder / "scenario_assignments.json").read_text())
    f = {k: np.asarray(v) for k, v in a["forecast_kw"].items()}
    # storage: the three-phase fleet and the home batteries (issue 14 item 8), both in the storage_kw series
    forecast = f["customers"] + f["ev"] - f["pv"] - f["storage"] - f["storage_res"]
    t = pd.read_parquet(folder / "timeseries.parquet")
    np.testing.assert_allclose(t["P_3ph (kW)"] - t["losses_kw"], forecast, rtol=0.01)
    np.testing.assert_allclose(t["storage_kw"], f["storage"] + f["storage_res"], atol=1e-3)


def test_rerun_skips_finished_runs_and_changes_nothing(batch):
    ws = Workspace(batch)
    before = _outputs(ws.design_dir("NC", "summer", "lhs"))
    assert _run(batch, "--feeders", f"{SMALL},{MEDIUM}", "--workers", "2") == 0
    index = pd.read_csv(ws.batch_index("NC", "summer", "lhs"))
    assert index["skipped"].all()
    assert _outputs(ws.design_dir("NC", "summer", "lhs")) == before


def test_single_run_script_writes_the_same_outputs(batch, tmp_path):
    folder = Workspace(batch).instance_dir("NC", "summer", "lhs", SMALL, "1")
    before = json.loads((folder / "summary.json").read_text())["metrics"]
    assert single.main(["--instance", str(folder), "-q"]) == 0
    # the folder's own day (the peak day); the light-load day's metrics are the batch's (light_load/)
    assert json.loads((folder / "summary.json").read_text())["metrics"] == \
        {k: v for k, v in before.items() if not k.startswith("light_load_")}


def test_a_summary_of_other_planning_limits_or_missing_metrics_is_solved_again(batch, tmp_path):
    """A run solved under other limits (or by an older phase 6 without the newer metrics) is not finished."""
    folder = Workspace(batch).instance_dir("NC", "summer", "lhs", SMALL, "1")
    summary = json.loads((folder / "summary.json").read_text())
    assert pf.outputs_valid(folder, summary["inputs_digest"]) is not None
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("summary.json", "timeseries.parquet"):
        (copy / name).write_bytes((folder / name).read_bytes())
    write_json(copy / "summary.json", {**summary, "metric_settings_digest": "0" * 64})
    assert pf.outputs_valid(copy, summary["inputs_digest"]) is None
    metrics = {k: v for k, v in summary["metrics"].items() if k != "transformer_emergency_intervals"}
    write_json(copy / "summary.json", {**summary, "metrics": metrics})
    assert pf.outputs_valid(copy, summary["inputs_digest"]) is None


def test_single_run_without_instance_exits_2(tmp_path, capsys):
    assert single.main(["--instance", str(tmp_path)]) == 2
    assert "instantiate_circuits_and_runs_APPLYFILTER.py" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- executors
def test_dask_local_cluster_gives_the_pool_results(prepared_nc, tmp_path):
    from distributed import LocalCluster

    pool_data = copy_workspace(prepared_nc, tmp_path / "pool")
    dask_data = copy_workspace(prepared_nc, tmp_path / "dask")
    args = ["--feeders", SMALL, "--cases", "0-3"]
    assert _run(pool_data, *args, "--workers", "2", season="winter") == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        assert _run(dask_data, *args, "--scheduler", cluster.scheduler_address, season="winter") == 0
    pool = _outputs(Workspace(pool_data).design_dir("NC", "winter", "lhs"))
    dask = _outputs(Workspace(dask_data).design_dir("NC", "winter", "lhs"))
    assert len(pool) == 4 and pool == dask


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_workers(address: str, n: int, timeout_s: float = 60.0) -> None:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(n, timeout=timeout_s)


def test_separately_started_dask_cluster_gives_the_pool_results(prepared_nc, tmp_path):
    """README's cluster route exactly: `dask scheduler` and `dask worker` started as their own processes,
    from another folder, with no phase folder on their path (a LocalCluster's workers would inherit it)."""
    pool_data = copy_workspace(prepared_nc, tmp_path / "pool")
    dask_data = copy_workspace(prepared_nc, tmp_path / "dask")
    args = ["--feeders", SMALL, "--cases", "0-3"]
    assert _run(pool_data, *args, "--workers", "2", season="winter") == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    address = f"tcp://127.0.0.1:{_free_port()}"
    port = address.rsplit(":", 1)[1]
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", port, "--no-dashboard"], cwd=elsewhere, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2",
                               "--nthreads", "1", "--no-dashboard"], cwd=elsewhere, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_workers(address, 2)
        assert _run(dask_data, *args, "--scheduler", address, season="winter") == 0
    finally:
        for process in (worker, scheduler):
            os.killpg(process.pid, signal.SIGTERM)
        for process in (worker, scheduler):
            process.wait(timeout=30)
    pool = _outputs(Workspace(pool_data).design_dir("NC", "winter", "lhs"))
    dask = _outputs(Workspace(dask_data).design_dir("NC", "winter", "lhs"))
    assert len(pool) == 4 and pool == dask


def test_batch_killed_midway_resumes_to_the_uninterrupted_result(prepared_nc, tmp_path):
    whole = copy_workspace(prepared_nc, tmp_path / "whole")
    killed = copy_workspace(prepared_nc, tmp_path / "killed")
    args = ["--feeders", MEDIUM, "--workers", "1"]
    assert _run(whole, *args, design="sobol") == 0
    command = [sys.executable, str(REPO / APPLY), "--data-dir", str(killed), "--state", "NC", "--season", "summer",
               "--design", "sobol", "--run", "-q", *args]
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    design_dir = Workspace(killed).design_dir("NC", "summer", "sobol")
    deadline = time.monotonic() + 120
    # a summer run is done when both its days are (the peak day's summary, then the light-load day's)
    while time.monotonic() < deadline and len(list(design_dir.rglob("light_load/summary.json"))) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list(design_dir.rglob("light_load/summary.json")))
    assert done_before >= 2
    assert _run(killed, *args, design="sobol") == 0
    index = pd.read_csv(Workspace(killed).batch_index("NC", "summer", "sobol"))
    assert int(index["skipped"].sum()) == done_before  # every run finished before the kill is kept, none redone
    assert _outputs(design_dir) == _outputs(Workspace(whole).design_dir("NC", "summer", "sobol"))
    leftovers = [p for p in Workspace(killed).phase("6").rglob("*") if p.name.endswith((".tmp", ".part"))]
    assert leftovers == []


def test_a_failing_run_is_recorded_and_the_batch_goes_on(prepared_nc, tmp_path):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    ws = Workspace(data)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    broken = {k: v for k, v in mixes["2"].items() if k != "ev_seed"}
    tasks = [{"data_dir": str(data), "state": "NC", "season": "summer", "design": "lhs", "feeder": SMALL,
              "case_key": key, "case": case, "simulate": True, "timeout_s": 60}
             for key, case in (("1", mixes["1"]), ("2", broken), ("3", mixes["3"]))]
    import circuit_instance

    ctx = circuit_instance.load_context(ws, "NC", "summer", SMALL)
    circuit_instance.prepare_shared(ctx, ws)
    assert apply.filter_feeder(ctx, ws)["status"] == "pass"  # as the batch driver does before dispatching
    results = {r["case"]: r for r in batch_runner.run_pool(tasks, 1, "test")}
    assert results["1"]["status"] == "ok" and results["3"]["status"] == "ok"
    assert results["2"]["status"] == "failed" and "ev_seed" in results["2"]["message"]


# ------------------------------------------------------------------------------------------- metrics
def _tiny_instance(folder: Path, load_kw: float, extra: str = "") -> Path:
    """A 12.47 kV source, a 100 kVA 12.47/0.48 kV transformer and an LV line to one 480 V customer,
    loaded at half its kW for 12 hours, then full."""
    folder.mkdir(parents=True, exist_ok=True)
    shape = " ".join(["0.5"] * 48 + ["1.0"] * 48)
    (folder / "Master.dss").write_text(f"""Clear
New Circuit.tiny basekV=12.47 pu=1.0 bus1=src R1=1e-5 X1=1e-5 R0=1e-5 X0=1e-5
New Linecode.mv nphases=3 r1=0.2 x1=0.4 r0=0.6 x0=1.2 units=km normamps=400
New Linecode.lv nphases=3 r1=0.5 x1=0.05 r0=0.5 x0=0.05 units=km normamps=150
New Line.head bus1=src bus2=mv linecode=mv length=0.1 units=km
New Transformer.tx phases=3 windings=2 buses=[mv lv] conns=[wye wye] kVs=[12.47 0.48] kVAs=[100 100] %rs=[0.5 0.5] xhl=2
New Line.service bus1=lv bus2=cust linecode=lv length=0.16 units=km
New Loadshape.day npts=96 interval=0.25 mult=({shape})
New Load.load_cust bus1=cust.1.2.3 phases=3 kV=0.48 kW={load_kw} pf=1 model=1 vminpu=0.7 daily=day
{extra}
New Monitor.m2 element=Line.head terminal=1 mode=1 ppolar=no
Set voltagebases=[12.47, 0.48]
Calcvoltagebases
""")
    write_json(folder / "scenario_assignments.json", {
        "state": "NC", "season": "summer", "design": "test", "feeder": "tiny", "case": "0", "design_day": "2018-07-01",
        "head_element": "Line.head", "head_sign": 1.0, "inputs": {}, "realised": {"ev_need_kwh": 0.0},
        "service_nodes": [["load_cust", ["cust.1", "cust.2", "cust.3"]]],
        "hosts": {"ev": [], "pv": [], "storage": [], "variants": {}}, "forecast_kw": {"ev": [0.0] * 96}})
    return folder


def test_metrics_match_hand_computed_values_on_a_tiny_feeder(tmp_path):
    table, summary, _ = pf.simulate(_tiny_instance(tmp_path / "tiny", 150.0))
    m = summary["metrics"]
    assert summary["status"] == "ok"
    # 150 kW at 480 V: about 190 A on the 150 A service line, 160 kVA through the 100 kVA transformer
    v = table["v_min_pu"].to_numpy()
    assert v[:48].min() > 0.95 and v[48:].max() < 0.95 and v.min() > 0.90  # full load: below Range A only
    assert m["ansi_a_under_node_intervals"] == 48 * 3
    assert m["ansi_a_customers_affected"] == 1
    assert m["ansi_b_violation_node_intervals"] == 0
    assert m["overloaded_line_intervals"] == 48 and m["overloaded_lines"] == 1
    assert m["worst_line"] == "Line.service" and 115 < m["worst_line_loading_pct"] < 140
    assert m["overloaded_transformer_intervals"] == 48 and m["worst_transformer"] == "Transformer.tx"
    assert 150 < m["worst_transformer_loading_pct"] < 175
    # energy: 12 h at half load and 12 h at full load, plus losses
    assert m["energy_kwh"] == pytest.approx(12 * 75 + 12 * 150 + m["losses_kwh"], rel=1e-5)
    assert m["peak_kw"] == pytest.approx(150 + table["losses_kw"].max(), rel=1e-5)
    assert m["reverse_flow_intervals"] == 0 and m["non_converged_steps"] == 0


def test_light_load_has_no_violation(tmp_path):
    _, summary, _ = pf.simulate(_tiny_instance(tmp_path / "tiny", 40.0))
    m = summary["metrics"]
    assert m["ansi_a_violation_node_intervals"] == 0 and m["overloaded_transformer_intervals"] == 0
    assert m["worst_transformer_loading_pct"] < 60


def test_non_converging_run_is_failed_with_its_message(tmp_path):
    _, summary, _ = pf.simulate(_tiny_instance(tmp_path / "tiny", 4000.0))
    assert summary["status"] == "failed"
    assert "did not converge" in summary["message"] and summary["metrics"]["non_converged_steps"] > 0


def test_broken_master_is_failed_with_the_opendss_message(tmp_path):
    folder = _tiny_instance(tmp_path / "tiny", 40.0, extra="Redirect nothing_here.dss")
    table, summary, _ = pf.simulate(folder)
    assert summary["status"] == "failed" and "nothing_here.dss" in summary["message"] and table.empty


def test_loading_metrics_count_instantaneous_and_moving_average_overloads():
    pct = np.zeros((96, 2))
    pct[0:3, 0] = 120.0  # 45 min at 120 %: an instantaneous overload, not a 1-h moving-average one
    pct[0:6, 1] = 110.0  # 90 min at 110 %: the 1-h average is above 100 % at the 3 intervals ending 01:00-01:30
    m = pf.loading_metrics(pct, ["Line.a", "Line.b"], window_h=1.0, threshold_pct=100.0, overload_pct=100.0)
    assert m == {"worst_pct": 120.0, "worst_element": "Line.a", "overloaded_intervals": 9, "overloaded_elements": 2,
                 "ma_overload_intervals": 3}


def test_reverse_flow_intervals_count_net_export_at_the_head(tmp_path):
    """A 100 kW generator on the 150 kW customer for the first 12 h (load at half, 75 kW): the feeder
    exports through the head for exactly those 48 intervals."""
    gen = ("New Loadshape.gen npts=96 interval=0.25 mult=(" + " ".join(["1"] * 48 + ["0"] * 48) + ")\n"
           "New Generator.g bus1=cust.1.2.3 phases=3 kV=0.48 kW=100 pf=1 model=1 daily=gen")
    table, summary, _ = pf.simulate(_tiny_instance(tmp_path / "tiny", 150.0, extra=gen))
    assert summary["status"] == "ok"
    assert summary["metrics"]["reverse_flow_intervals"] == 48
    assert (table["P_3ph (kW)"].to_numpy()[:48] < 0).all() and (table["P_3ph (kW)"].to_numpy()[48:] > 0).all()


def test_constant_power_factor_follows_opendss_load_model_1():
    """Hand values of OpenDSS's model: at 0.80 pu, the current interpolates between 0.5 pu (constant
    impedance at vlowpu 0.5) and 1/0.85 pu (constant power at vminpu 0.85)."""
    i_080 = 0.5 + (1 / 0.85 - 0.5) * (0.80 - 0.5) / (0.85 - 0.5)
    f = pf.constant_power_factor(np.array([1.02, 0.85, 0.80, 0.5, 0.4]), vminpu=0.85, vlowpu=0.5)
    np.testing.assert_allclose(f, [1.0, 1.0, 0.80 * i_080, 0.25, 0.16], rtol=1e-12)


def test_ev_delivery_adds_the_phases_of_a_three_phase_charger():
    v = np.array([[1.0, 0.80, 1.0]])
    expected = 9.0 * (2.0 + float(pf.constant_power_factor(np.array([0.80]))[0])) / 3.0
    np.testing.assert_allclose(pf.ev_delivery(np.array([9.0]), v), [expected], rtol=1e-12)


def test_ev_energy_delivered_under_sag_matches_the_engine(tmp_path):
    """A 10 kW charger at a customer whose voltage sags to about 0.84 pu in the afternoon: the EV energy
    the metrics report equals what the OpenDSS load element drew, step by step."""
    from common import dss

    ev = ("New Loadshape.ev_cust npts=96 interval=0.25 mult=(" + " ".join(["1"] * 96) + ")\n"
          "New Load.ev_cust bus1=cust.1.2.3 phases=3 conn=wye kV=0.48 kW=10 pf=1 model=1 vminpu=0.85 vlowpu=0.5 "
          "vmaxpu=1.2 daily=ev_cust")
    folder = _tiny_instance(tmp_path / "tiny", 300.0, extra=ev)
    assignments = json.loads((folder / "scenario_assignments.json").read_text())
    assignments["hosts"]["ev"] = [{"customer": "load_cust", "element": "Load.ev_cust", "charger_kw": 10.0,
                                   "nodes": ["cust.1", "cust.2", "cust.3"]}]
    assignments["realised"]["ev_need_kwh"] = 240.0
    assignments["forecast_kw"]["ev"] = [10.0] * 96
    write_json(folder / "scenario_assignments.json", assignments)
    table, summary, _ = pf.simulate(folder)
    m = summary["metrics"]
    assert summary["status"] == "ok" and table["v_min_pu"].min() < 0.85
    engine = dss.engine()
    dss.compile_master(folder / "Master.dss", strip=False)
    drawn = []

    def read(k: int) -> None:
        engine.Circuit.SetActiveElement("Load.ev_cust")
        drawn.append(float(np.asarray(engine.CktElement.Powers())[0:6:2].sum()))

    dss.solve_daily(read)
    assert m["ev_energy_delivered_kwh"] == pytest.approx(sum(drawn) * 0.25, rel=1e-5)
    assert m["ev_energy_delivered_kwh"] < 235.0  # the sag costs energy
    assert m["ev_energy_unserved_kwh"] == pytest.approx(240.0 - m["ev_energy_delivered_kwh"])


def test_moving_average_is_circular():
    x = np.zeros(96)
    x[0] = 8.0
    ma = pf.moving_average_circular(x, 8)
    assert ma[0] == 1.0 and ma[7] == 1.0 and ma[8] == 0.0 and ma[95] == 0.0


def test_voltage_violations_count_nodes_and_customers():
    v = np.array([[1.0, 0.94, 0.96], [0.93, 0.94, 1.06], [0.0, 1.0, 1.0]])
    result = pf.voltage_violations(v, np.array([0, 0, 1]), (0.95, 1.05))
    assert result == {"under_node_intervals": 3, "over_node_intervals": 1, "node_intervals": 4, "customers_affected": 2}


def test_peak_without_storage_resolves_every_discharge_and_only_charges_that_can_top_the_peak():
    p = np.array([100.0, 120.0, 90.0, 95.0, 200.0, 80.0])
    storage = np.array([0.0, 30.0, -10.0, 5.0, -20.0, -5.0])
    solved = []

    def solve(k):
        solved.append(k)
        return p[k] + storage[k] * 1.5  # a lossy feeder: the battery saves more than 10 % in losses

    assert pf.peak_without_storage(p, storage, solve) == pytest.approx(200 - 30.0)
    assert solved == [1, 3, 4]  # both discharges; of the charges only the one above the best so far


def _bounded_day():
    """Head power [kW] with the batteries, their mode and their discharge [kVA] over eight intervals."""
    p = np.array([100.0, 150.0, 90.0, 140.0, 200.0, 80.0, 120.0, 60.0])
    mode = np.array([0.0, 1.0, -1.0, 1.0, 1.0, -1.0, 1.0, 0.0])
    discharge = np.array([0.0, 20.0, 0.0, 10.0, 6.0, 0.0, 2.0, 0.0])
    return p, mode, discharge


def test_peak_without_storage_with_bounds_solves_only_intervals_whose_bound_tops_the_best():
    p, mode, discharge = _bounded_day()
    solved = []

    def solve(k):  # the batteries' discharge comes back at the head with 5 % losses
        solved.append(k)
        return p[k] + 1.05 * discharge[k]

    best = pf.peak_without_storage(p, mode, solve, discharge_kva=discharge)
    assert best == pytest.approx(200 + 1.05 * 6)
    assert solved == [4]  # bounds p + 2 x discharge: 212 (4), then 190 (1), not above 206.3 once 4 is solved


def test_peak_without_storage_solves_the_must_solve_intervals_whatever_their_bound():
    p, mode, discharge = _bounded_day()
    solved = []
    must = np.zeros(len(p), dtype=bool)
    must[[5, 7]] = True  # 7 is idle: nothing to solve there

    def solve(k):
        solved.append(k)
        return p[k] + 1.05 * discharge[k]

    pf.peak_without_storage(p, mode, solve, discharge_kva=discharge, must_solve=must)
    assert solved == [5, 4]


def test_peak_without_storage_solves_every_active_interval_when_losses_exceed_the_margin():
    p, mode, discharge = _bounded_day()
    solved = []

    def solve(k):  # a feeder whose losses grow by 1.8 kW per kVA of discharge taken away: beyond 1 + 0.5
        solved.append(k)
        return p[k] + 2.8 * discharge[k]

    best = pf.peak_without_storage(p, mode, solve, discharge_kva=discharge)
    assert sorted(solved) == [1, 2, 3, 4, 5, 6]
    assert best == pytest.approx(max(p[k] + 2.8 * discharge[k] for k in range(len(p))))


# ------------------------------------------------------------------------------------------- physics
def test_metrics_move_the_way_physics_says(prepared_nc, tmp_path):
    """More EVs and uncontrolled heat pumps: higher peak, more violations; storage: a lower peak."""
    data = copy_workspace(prepared_nc, tmp_path / "data")
    ws = Workspace(data)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    low = {**mixes["1"], "shares": {"baseline": 1.0, "dm": 0.0, "un": 0.0}, "ev_perc": 0.05, "pv_perc_3ph": 0.0,
           "storage_perc_3ph": 0.0, "pv_perc_res": 0.0, "storage_perc_res": 0.0}
    high = {**low, "shares": {"baseline": 0.0, "dm": 0.0, "un": 1.0}, "ev_perc": 0.8,
            "ev_split": {"controlled": 0.0, "uncontrolled": 1.0}}
    stored = {**high, "storage_perc_3ph": 0.2}
    write_json(ws.mixes("lhs"), {"0": mixes["0"], "1": low, "2": high, "3": stored})
    assert _run(data, "--feeders", LARGE, "--workers", "2", season="winter") == 0
    m = {k: json.loads((ws.instance_dir("NC", "winter", "lhs", LARGE, k) / "summary.json").read_text())["metrics"]
         for k in ("1", "2", "3")}
    assert m["2"]["peak_kw"] > 1.2 * m["1"]["peak_kw"]
    assert m["2"]["ansi_a_violation_node_intervals"] > m["1"]["ansi_a_violation_node_intervals"]
    assert m["2"]["ansi_a_customers_affected"] > m["1"]["ansi_a_customers_affected"]
    assert m["2"]["overloaded_transformer_intervals"] > m["1"]["overloaded_transformer_intervals"]
    assert m["2"]["v_min_pu"] < m["1"]["v_min_pu"]
    assert m["3"]["peak_kw"] < m["2"]["peak_kw"]
    assert m["3"]["storage_peak_reduction_kw"] > 0
    assert m["3"]["storage_peak_reduction_kw"] == pytest.approx(m["3"]["peak_without_storage_kw"] - m["3"]["peak_kw"])


# ------------------------------------------------------------------------------------------- any feeder
@requires_shared
def test_any_opendss_feeder_is_studied_with_feeder_dir(tmp_path, sample_root):
    from conftest import IEEE13, make_workspace

    data = make_workspace(tmp_path / "data", sample_root)
    assert load_script("0_code_xlrm/run_mix_generator.py").main(["--data-dir", str(data), "--n-cases", "2", "-q"]) == 0
    assert _run(data, "--feeder-dir", str(IEEE13), "--workers", "1", season="winter") == 0
    ws = Workspace(data)
    index = pd.read_csv(ws.batch_index("NC", "winter", "lhs"))
    assert (index["status"] == "ok").all() and set(index["feeder"]) == {"IEEE13Nodeckt"}
    reference = json.loads((ws.instance_dir("NC", "winter", "lhs", "IEEE13Nodeckt", "0") / "summary.json").read_text())
    # the configured day peaks at 1.0 per unit: the feeder's published full load, about 3.57 MW
    assert reference["metrics"]["peak_kw"] == pytest.approx(3567, rel=0.02)
    assert reference["realised"]["customers_per_variant"]["baseline"] == reference["realised"]["n_customers"] == 15
    from common import intake

    copy = intake.read_intake(ws.generic_feeders_dir("NC") / "IEEE13Nodeckt").master
    commands = [line.strip().lower() for line in copy.read_text().splitlines()]
    assert not [c for c in commands if c.startswith(("solve", "show", "export", "plot"))]
    assert (copy.parent / "IEEELineCodes.DSS").is_file()


def test_feeder_dir_without_a_master_is_a_clear_error(prepared_nc, tmp_path, capsys):
    (tmp_path / "feeder").mkdir()
    (tmp_path / "feeder" / "Lines.dss").write_text("! nothing\n")
    assert apply.main(["--data-dir", str(prepared_nc), "--season", "winter", "--feeder-dir",
                       str(tmp_path / "feeder")]) == 2
    err = capsys.readouterr().err
    assert "no Master.dss" in err and "Lines.dss" in err
