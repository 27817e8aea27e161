"""Phase 6 under faults: diverged power flows, malformed profiles and inputs, lost workers, a dead driver,
concurrent batches, partial reruns. Every fault is injected by the test into a real run."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import doe
from common.io import folder_lock, sha256_file, write_json
from common.paths import Workspace, lineage_record
from conftest import REPO, copy_workspace, load_script
from faults import truncate as _truncate

APPLY = "6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py"
apply = load_script(APPLY)
import batch_runner  # noqa: E402
import circuit_instance  # noqa: E402

SMALL = "uhs0_1247--udt1021"
MEDIUM = "uhs0_1247--udt2473"
LARGE = "uhs1_1247--udt5219"


def _run(data: Path, *extra: str, season: str = "winter", design: str = "lhs") -> int:
    return apply.main(["--data-dir", str(data), "--state", "NC", "--season", season, "--design", design, "--run",
                       "-q", *extra])


def _instance(data: Path, feeder: str, case: str, season: str = "winter", design: str = "lhs") -> Path:
    return Workspace(data).instance_dir("NC", season, design, feeder, case)


def _outputs(folder: Path) -> tuple[bytes, bytes]:
    return (folder / "summary.json").read_bytes(), (folder / "timeseries.parquet").read_bytes()


def _scale_profiles(ws: Workspace, variant: str, feeder: str, season: str, factor: float) -> None:
    """Multiply a feeder's daily profiles of one variant by ``factor``: the files OpenDSS reads and the
    profile table, consistently (as a profile phase that went wrong would write them)."""
    folder = ws.daily_profile("NC", variant, feeder, season, "x").parent
    table_path = ws.daily_profile_table("NC", variant, season)
    table = pd.read_parquet(table_path)
    for path in sorted(folder.glob("*.csv")):
        daily = pd.read_csv(path)
        daily[["p_pu", "q_pu"]] = (daily[["p_pu", "q_pu"]] * factor).round(6)
        daily.to_csv(path, index=False, float_format="%.6f")
        rows = (table["feeder"] == feeder) & (table["shape"] == path.stem)
        table.loc[rows, "p_pu"] = daily["p_pu"].to_numpy()
    table.to_parquet(table_path, index=False)
    record_path = lineage_record(table_path)  # as the phase would record the table it wrote
    record = json.loads(record_path.read_text())
    record["sha256"] = sha256_file(table_path)
    write_json(record_path, record)


@pytest.fixture(scope="module")
def un_workspace(prepared_nc, tmp_path_factory) -> Path:
    """NC with an LHS design of two cases: the reference case and every customer on uncontrolled heat pumps."""
    data = copy_workspace(prepared_nc, tmp_path_factory.mktemp("p6-faults") / "data")
    ws = Workspace(data)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    write_json(ws.mixes("lhs"), {"0": mixes["0"], "1": {**mixes["1"], "shares": {"baseline": 0.0, "dm": 0.0, "un": 1.0}}})
    return data


# ------------------------------------------------------------------------------------------- divergence
def test_diverged_run_is_failed_without_a_series_and_a_rerun_recovers(un_workspace, tmp_path):
    data = copy_workspace(un_workspace, tmp_path / "data")
    ws = Workspace(data)
    assert _run(data, "--feeders", MEDIUM, "--workers", "1") == 0
    folder = _instance(data, MEDIUM, "1")
    clean = _outputs(folder)
    saved = tmp_path / "saved"
    shutil.copytree(ws.phase("5"), saved)

    _scale_profiles(ws, "un", MEDIUM, "winter", 3000.0)
    assert _run(data, "--feeders", MEDIUM, "--workers", "1") == 0  # case 0 (baseline) still solves
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "failed" and "diverged" in summary["message"]
    assert summary["metrics"] == {} and summary["timeseries_sha256"] == ""
    assert not (folder / "timeseries.parquet").exists()
    index = pd.read_csv(ws.batch_index("NC", "winter", "lhs"))
    assert index.set_index("case").loc[1, "status"] == "failed"

    shutil.rmtree(ws.phase("5"))
    shutil.copytree(saved, ws.phase("5"))
    assert _run(data, "--feeders", MEDIUM, "--workers", "1") == 0
    assert _outputs(folder) == clean


def test_nonfinite_steps_names_every_array_and_step():
    v = np.ones((4, 3))
    v[2, 1] = np.nan
    head = np.ones((4, 3), dtype=complex)
    head[3, 0] = complex(np.inf, 0)
    bad = load_script("6_instantiate_circuits/daily_power_flow.py").nonfinite_steps(
        {"node voltages": v, "feeder-head power": head, "losses": np.zeros(4)})
    assert {k: x.tolist() for k, x in bad.items()} == {"node voltages": [2], "feeder-head power": [3]}


def test_series_replaced_after_a_run_is_solved_again(un_workspace, tmp_path):
    data = copy_workspace(un_workspace, tmp_path / "data")
    assert _run(data, "--feeders", SMALL, "--workers", "1") == 0
    folder = _instance(data, SMALL, "1")
    clean = _outputs(folder)
    shutil.copy(_instance(data, SMALL, "0") / "timeseries.parquet", folder / "timeseries.parquet")
    assert _run(data, "--feeders", SMALL, "--workers", "1") == 0
    index = pd.read_csv(Workspace(data).batch_index("NC", "winter", "lhs")).set_index("case")
    assert not index.loc[1, "skipped"] and index.loc[0, "skipped"]
    assert _outputs(folder) == clean


# ------------------------------------------------------------------------------------------- malformed inputs
@pytest.mark.parametrize("fault, words", [("cut", "49 rows"), ("nan", "NaN, inf or negative")])
def test_malformed_daily_profile_leaves_its_feeder_out(un_workspace, tmp_path, fault, words):
    data = copy_workspace(un_workspace, tmp_path / "data")
    ws = Workspace(data)
    path = sorted(ws.daily_profile("NC", "un", SMALL, "winter", "x").parent.glob("*.csv"))[0]
    lines = path.read_text().splitlines()
    if fault == "cut":
        path.write_text("\n".join(lines[:50]) + "\n")
    else:
        parts = lines[30].split(",")
        lines[30] = ",".join(["nan"] + parts[1:])
        path.write_text("\n".join(lines) + "\n")
    assert _run(data, "--feeders", f"{SMALL},{MEDIUM}", "--workers", "1") == 0
    filt = pd.read_csv(ws.circuit_filter("NC")).set_index("feeder")
    assert filt.loc[SMALL, "status"] == "fail" and words in filt.loc[SMALL, "reason"] and path.name in filt.loc[SMALL, "reason"]
    assert filt.loc[MEDIUM, "status"] == "pass"
    index = pd.read_csv(ws.batch_index("NC", "winter", "lhs"))
    assert set(index["feeder"]) == {MEDIUM} and (index["status"] == "ok").all()


def test_check_daily_profile_refuses_a_file_that_differs_from_its_table(tmp_path):
    text = "p_pu,q_pu,interval_start\n" + "".join(f"0.500000,0.100000,t{k}\n" for k in range(96))
    expected = np.full(96, 0.5)
    circuit_instance.check_daily_profile(text.encode(), tmp_path / "a.csv", expected)  # consistent: no error
    expected[10] = 0.51
    with pytest.raises(circuit_instance.InstanceError, match="row 12 .*differs from the profile table"):
        circuit_instance.check_daily_profile(text.encode(), tmp_path / "a.csv", expected)


@pytest.mark.parametrize("which", ["customers", "daily_table"])
def test_truncated_parquet_input_is_one_line(prepared_nc, tmp_path, capsys, which):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    ws = Workspace(data)
    path = ws.customers("NC") if which == "customers" else ws.daily_profile_table("NC", "dm", "winter")
    _truncate(path)
    assert _run(data, "--feeders", SMALL, "--workers", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "Traceback" not in err[0]


def test_customers_changed_after_the_profiles_is_one_line(prepared_nc, tmp_path, capsys):
    """customers.parquet rewritten (here without its bus column) after phases 2-5 used it: the profiles
    are out of date, and phase 6 says so before it builds anything on them."""
    data = copy_workspace(prepared_nc, tmp_path / "data")
    path = Workspace(data).customers("NC")
    pd.read_parquet(path).drop(columns=["bus"]).to_parquet(path, index=False)
    assert _run(data, "--feeders", SMALL, "--workers", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "changed after it was made" in err[0]
    assert not Workspace(data).design_dir("NC", "winter", "lhs").exists()


def test_non_utf8_mixes_file_is_one_line(prepared_nc, tmp_path, capsys):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    path = Workspace(data).mixes("lhs")
    path.write_bytes(b"\xff\xfe{\x00" + path.read_bytes())
    assert _run(data, "--feeders", SMALL) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "UTF-8" in err


@pytest.mark.parametrize("flag", [["--timeout", "nan"], ["--timeout", "-3"], ["--workers", "0"], ["--workers", "two"]])
def test_bad_numbers_are_rejected(prepared_nc, capsys, flag):
    assert _run(prepared_nc, *flag) == 2
    assert flag[0] in capsys.readouterr().err


@pytest.mark.parametrize("address", ["not-an-address", "tcp://127.0.0.1:99999"])
def test_malformed_scheduler_address_is_one_line_before_any_work(prepared_nc, tmp_path, capsys, address):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    assert _run(data, "--feeders", SMALL, "--cases", "0", "--scheduler", address) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--scheduler {address}" in err[0]
    assert not Workspace(data).circuit_filter("NC").exists()  # refused before the filter wrote anything


def test_closed_scheduler_port_is_a_scheduler_error():
    with pytest.raises(batch_runner.SchedulerError, match="cannot reach a Dask scheduler"):
        batch_runner.run_dask([], "tcp://127.0.0.1:9", "test", connect_timeout_s=1.0)


# ------------------------------------------------------------------------------------------- lost workers
def test_lost_worker_costs_one_retry_then_the_run_is_failed(un_workspace, tmp_path):
    import faults

    data = copy_workspace(un_workspace, tmp_path / "data")
    ws = Workspace(data)
    ctx = circuit_instance.load_context(ws, "NC", "winter", SMALL)
    circuit_instance.prepare_shared(ctx, ws)
    assert apply.filter_feeder(ctx, ws)["status"] == "pass"  # as the batch driver does before dispatching
    mixes = doe.load_mixes(ws.mixes("lhs"))
    base = {"data_dir": str(data), "state": "NC", "season": "winter", "design": "lhs", "feeder": SMALL,
            "simulate": True, "timeout_s": 60}
    tasks = [{**base, "case_key": "0", "case": mixes["0"], "fault": "die"},
             {**base, "case_key": "1", "case": mixes["1"], "fault": "die_once", "marker": str(tmp_path / "died")}]
    results = {r["case"]: r for r in batch_runner.run_pool(tasks, 2, "test", fn=faults.run_or_die)}
    assert results["1"]["status"] == "ok" and (tmp_path / "died").exists()
    assert results["0"]["status"] == "failed" and "worker process died" in results["0"]["message"]
    summary = json.loads((_instance(data, SMALL, "0") / "summary.json").read_text())
    assert summary["status"] == "failed" and "2 times" in summary["message"]


def test_workers_exit_when_the_driver_is_killed(prepared_nc, tmp_path):
    import psutil

    data = copy_workspace(prepared_nc, tmp_path / "data")
    command = [sys.executable, str(REPO / APPLY), "--data-dir", str(data), "--state", "NC", "--season", "winter",
               "--design", "lhs", "--run", "-q", "--feeders", f"{MEDIUM},{LARGE}", "--workers", "2"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = psutil.Process(process.pid)
    design_dir = Workspace(data).design_dir("NC", "winter", "lhs")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(design_dir.rglob("summary.json")):
        time.sleep(0.05)
    children = driver.children(recursive=True)
    assert children, "the batch had no worker processes"
    process.send_signal(signal.SIGKILL)
    process.wait()
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert alive == []


# ------------------------------------------------------------------------------------------- concurrency, reruns
def test_second_batch_on_the_same_state_is_refused_while_one_runs(prepared_nc, tmp_path, capsys):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    with folder_lock(Workspace(data).circuits_dir("NC"), "phase 6 NC"):
        assert _run(data, "--feeders", SMALL) == 2
    err = capsys.readouterr().err
    assert "already running" in err and "phase 6 NC" in err
    assert _run(data, "--feeders", SMALL, "--cases", "0") == 0  # free again


def test_a_subset_rerun_keeps_the_other_runs_in_the_index(prepared_nc, tmp_path):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    assert _run(data, "--feeders", SMALL, "--cases", "0-1", "--workers", "1") == 0
    assert _run(data, "--feeders", SMALL, "--cases", "2-3", "--workers", "1") == 0
    index = pd.read_csv(Workspace(data).batch_index("NC", "winter", "lhs"))
    assert index["case"].tolist() == [0, 1, 2, 3] and (index["status"] == "ok").all()


def test_outputs_are_byte_identical_across_worker_counts(prepared_nc, tmp_path):
    one = copy_workspace(prepared_nc, tmp_path / "one")
    two = copy_workspace(prepared_nc, tmp_path / "two")
    assert _run(one, "--feeders", SMALL, "--workers", "1") == 0
    assert _run(two, "--feeders", SMALL, "--workers", "2") == 0
    a, b = Workspace(one).design_dir("NC", "winter", "lhs"), Workspace(two).design_dir("NC", "winter", "lhs")
    assert (a / "runs.csv").read_bytes() == (b / "runs.csv").read_bytes()
    for summary in sorted(a.rglob("summary.json")):
        twin = b / summary.relative_to(a)
        assert summary.read_bytes() == twin.read_bytes()
        assert sha256_file(summary.parent / "timeseries.parquet") == sha256_file(twin.parent / "timeseries.parquet")
    text = "".join(p.read_text() for p in sorted(a.rglob("*.json")) + [a / "runs.csv"])
    assert str(one) not in text  # no absolute paths in outputs


def test_stale_temporaries_are_removed_by_the_next_batch(prepared_nc, tmp_path):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    assert _run(data, "--feeders", SMALL, "--cases", "0", "--workers", "1") == 0
    leftovers = [_instance(data, SMALL, "0") / ".summary.json.abc123.tmp",
                 Workspace(data).circuits_dir("NC") / ".circuit_filter.csv.x1.tmp"]
    for path in leftovers:
        path.write_text("half")
    assert _run(data, "--feeders", SMALL, "--cases", "0", "--workers", "1") == 0
    assert not any(p.exists() for p in leftovers)


# ------------------------------------------------------------------------------------------- review findings
def test_runs_built_on_older_profiles_are_stale_after_a_partial_rerun(un_workspace, tmp_path):
    """Profiles remade after a batch, then only case 1 run again: case 0 was built on the old profiles,
    and phase 7 must not merge it as current."""
    data = copy_workspace(un_workspace, tmp_path / "data")
    ws = Workspace(data)
    assert _run(data, "--feeders", SMALL, "--workers", "1") == 0
    _scale_profiles(ws, "un", SMALL, "winter", 1.01)  # as a profile phase run again would write them
    assert _run(data, "--feeders", SMALL, "--cases", "1", "--workers", "1") == 0
    combine = load_script("7_results_analysis/append_experiment_results.py")
    assert combine.main(["--data-dir", str(data), "-q"]) == 0
    stale = pd.read_csv(ws.result("stale_runs")).set_index("case")
    assert list(stale.index) == [0] and "shared inputs" in stale.loc[0, "reason"]


def test_single_run_refuses_a_cut_profile(un_workspace, tmp_path, capsys):
    data = copy_workspace(un_workspace, tmp_path / "data")
    ws = Workspace(data)
    assert _run(data, "--feeders", SMALL, "--cases", "1", "--workers", "1") == 0
    folder = _instance(data, SMALL, "1")
    before = (folder / "summary.json").read_bytes()
    path = sorted(ws.daily_profile("NC", "baseline", SMALL, "winter", "x").parent.glob("*.csv"))[0]
    path.write_text("\n".join(path.read_text().splitlines()[:49]) + "\n")
    single = load_script("6_instantiate_circuits/power_flow_sim_daily_EV_STO_DG_deploy.py")
    assert single.main(["--instance", str(folder), "-q"]) == 2
    err = capsys.readouterr().err
    assert path.name in err and "48 rows" in err
    assert (folder / "summary.json").read_bytes() == before  # nothing written


def test_filter_counts_stay_integers_across_reruns(un_workspace, tmp_path):
    data = copy_workspace(un_workspace, tmp_path / "data")
    ws = Workspace(data)
    path = sorted(ws.daily_profile("NC", "un", SMALL, "winter", "x").parent.glob("*.csv"))[0]
    original = path.read_text()
    path.write_text("\n".join(original.splitlines()[:50]) + "\n")
    assert _run(data, "--feeders", f"{SMALL},{MEDIUM}", "--cases", "0", "--workers", "1") == 0
    path.write_text(original)
    assert _run(data, "--feeders", f"{SMALL},{MEDIUM}", "--cases", "0", "--workers", "1") == 0
    assert _run(data, "--feeders", f"{SMALL},{MEDIUM}", "--cases", "0", "--workers", "1") == 0
    table = pd.read_csv(ws.circuit_filter("NC"))
    for column in ("n_isolated_loads", "n_isolated_branches", "n_unrated_lines"):
        assert table[column].dtype == "int64", column  # written as 0, never drifting to 0.0
