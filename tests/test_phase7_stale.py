"""Phase 7 merges only current runs: stale runs listed (stale_runs.csv), never merged, removed on request.

Every test builds a small workspace by hand that follows phase 6's contract exactly (a mixes file of
phase 0, ``circuit_filter.csv``, instance folders with ``scenario_assignments.json``,
``timeseries.parquet`` and ``summary.json`` written last with its ``inputs_digest``,
``mixes_digest`` and ``timeseries_sha256``), injects one fault, and runs the real
``append_experiment_results.py`` (and, where it matters, the later phase 7 scripts) on it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from common import config, doe, schema
from common.io import sha256_file, write_json, write_parquet
from common.paths import Workspace
from conftest import load_script

combine = load_script("7_results_analysis/append_experiment_results.py")
long_format = load_script("7_results_analysis/append_xlrm_long_format.py")
LATER = {name: load_script(f"7_results_analysis/{name}.py")
         for name in ("append_xlrm_long_format", "sensitivity_analysis", "scenario_discovery", "plot_results",
                      "make_report")}
import results_io as rio  # noqa: E402

STATE, SEASON, DESIGN = "NC", "winter", "lhs"
FEEDERS = ("sub1_1247--fdr1", "sub1_1247--fdr2")
REJECTED = "sub2_1247--fdr3"
N_CASES = 3  # cases "0".."3"


# ------------------------------------------------------------------------------------------- the workspace

def _no_outputs(folder: Path) -> bool:
    """Nothing written in phase 7's folder (it may exist, holding only its step lock)."""
    return not folder.exists() or [p.name for p in folder.rglob("*")] in ([], [".lock"])

def _series(case: int, feeder: int) -> pa.Table:
    n = config.INTERVALS_PER_DAY
    rng = np.random.default_rng(100 * feeder + case)
    p = 200.0 + 50.0 * np.sin(np.linspace(0, np.pi, n))[None, :] + rng.uniform(0, 5, (3, n))
    q = 0.3 * p
    columns: dict[str, np.ndarray] = {
        "hour": (np.arange(n) + 1) * config.INTERVAL_H,
        "interval_start": pd.date_range("2018-01-17", periods=n, freq="15min").to_numpy().astype("datetime64[us]")}
    s = np.hypot(p, q)
    for i in range(3):
        columns[f"S{i + 1} (kVA)"], columns[f"Ang{i + 1}"] = s[i], np.degrees(np.arctan2(q[i], p[i]))
    for i in range(3):
        columns[f"P{i + 1} (kW)"], columns[f"Q{i + 1} (kVAr)"] = p[i], q[i]
    columns.update({"P_3ph (kW)": p.sum(0), "Q_3ph (kVAr)": q.sum(0), "S_3ph (kVA)": np.hypot(p.sum(0), q.sum(0)),
                    "S_sum_3ph (kVA)": s.sum(0), "ev_kw": np.zeros(n), "pv_kw": np.zeros(n), "storage_kw": np.zeros(n),
                    "storage_soc": np.full(n, np.nan), "losses_kw": 0.02 * p.sum(0), "v_min_pu": np.full(n, 0.97),
                    "v_max_pu": np.full(n, 1.02), "converged": np.ones(n, dtype=bool)})
    return pa.table({c: columns[c] for c in schema.SERIES_COLUMNS})


def _metrics(table: pa.Table, case: int) -> dict:
    out = {}
    for name, (unit, _) in schema.METRICS.items():
        out[name] = {"text": "x", "count": case, "pu": 0.97}.get(unit, 10.0 + case)
    out.update(peak_kw=float(np.max(table["P_3ph (kW)"].to_numpy())), peak_time="17:45", worst_line="Line.l1",
               worst_transformer="Transformer.t1", n_customers=10)
    return out


def write_run(ws: Workspace, feeder: str, case: str, *, status: str = "ok", mixes_path: Path | None = None,
              season: str = SEASON) -> Path:
    """One instance folder as phase 6 leaves it after a run (summary.json last)."""
    mixes_path = mixes_path or ws.mixes(DESIGN)
    mixes = json.loads(mixes_path.read_text())
    folder = ws.instance_dir(STATE, season, DESIGN, feeder, case)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(f"{feeder}/{season}/{case}".encode()).hexdigest()
    write_json(folder / "scenario_assignments.json", {"state": STATE, "season": season, "design": DESIGN,
                                                      "feeder": feeder, "case": case, "inputs_digest": digest,
                                                      "mixes_digest": sha256_file(mixes_path)})
    table = _series(int(case), FEEDERS.index(feeder) if feeder in FEEDERS else 9)
    sha = ""
    if status == "ok":
        write_parquet(folder / "timeseries.parquet", table.to_pandas())
        sha = sha256_file(folder / "timeseries.parquet")
    summary = {"state": STATE, "season": season, "design": DESIGN, "feeder": feeder, "case": case,
               "design_day": "2018-01-17", "inputs": {**doe.flatten_case(mixes[case]), "disjoint_sets": True},
               "realised": {"n_customers": 10, "customers_per_variant": {"baseline": 5, "dm": 3, "un": 2}, "n_evs": 2},
               "inputs_digest": digest, "mixes_digest": sha256_file(mixes_path), "timeseries_sha256": sha,
               "metric_settings_digest": schema.metric_settings_digest(),
               "status": status, "message": "" if status == "ok" else "3 of 96 steps did not converge",
               "metrics": _metrics(table, int(case)) if status == "ok" else {}, "packages": {"numpy": "x"}}
    write_json(folder / "summary.json", summary)
    return folder


def build_workspace(root: Path) -> Path:
    data = root / "data"
    ws = Workspace(data)
    mixes, _ = doe.build_mixes(DESIGN, N_CASES, seed=5)
    write_json(ws.mixes(DESIGN), mixes)
    ws.circuits_dir(STATE).mkdir(parents=True)
    pd.DataFrame([{"state": STATE, "season": SEASON, "feeder": f, "status": "pass", "reason": ""} for f in FEEDERS] +
                 [{"state": STATE, "season": SEASON, "feeder": REJECTED, "status": "fail",
                   "reason": "isolated section: 3 loads reach no source"}]).to_csv(ws.circuit_filter(STATE), index=False)
    for feeder in FEEDERS:
        for case in mixes:
            write_run(ws, feeder, case)
    return data


@pytest.fixture
def data(tmp_path) -> Path:
    return build_workspace(tmp_path)


def run(data: Path, *extra: str) -> int:
    return combine.main(["--data-dir", str(data), "-q", *extra])


def _read(data: Path, key: str) -> pd.DataFrame:
    path = rio.results_path(Workspace(data), key)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, keep_default_na=False)


def _merged_keys(data: Path) -> set[tuple[str, int]]:
    results = _read(data, "xlrm_results")
    return set(zip(results["feeder"], results["case"]))


def _stale(data: Path) -> dict[tuple[str, int], str]:
    stale = _read(data, "stale_runs")
    assert list(stale.columns) == list(combine.STALE_COLUMNS)
    return {(f, int(c)): r for f, c, r in zip(stale["feeder"], stale["case"], stale["reason"])}


def _series_keys(data: Path) -> set[tuple[str, int]]:
    series = _read(data, "aggregate")
    return set(zip(series["circuit_folder"], series["scenario"]))


def _instance(data: Path, feeder: str = FEEDERS[0], case: str = "2") -> Path:
    return Workspace(data).instance_dir(STATE, SEASON, DESIGN, feeder, case)


def _edit_summary(folder: Path, **changes) -> None:
    summary = json.loads((folder / "summary.json").read_text())
    summary.update(changes)
    (folder / "summary.json").write_text(json.dumps(summary))


ALL = {(f, c) for f in FEEDERS for c in range(N_CASES + 1)}


# ------------------------------------------------------------------------------------------- current runs
def test_current_runs_are_all_merged_and_none_is_stale(data):
    assert run(data) == 0
    assert _merged_keys(data) == ALL and _series_keys(data) == ALL and _stale(data) == {}


def test_xlrm_results_hold_no_timings(data):
    assert run(data) == 0
    columns = set(_read(data, "xlrm_results").columns)
    assert not columns & {"runtime_s", "instance_s", "simulate_s", "worker_pid", "worker_max_rss_mb"}
    assert LATER["append_xlrm_long_format"].main(["--data-dir", str(data), "-q"]) == 0
    assert not set(_read(data, "variables")["variable"]) & {"runtime_s", "instance_s"}


def test_outputs_do_not_depend_on_anything_but_the_inputs(data, tmp_path):
    """Phase 6's package record, key order and a stray timing in a summary change no output byte."""
    assert run(data) == 0
    before = {k: rio.results_path(Workspace(data), k).read_bytes() for k in
              ("xlrm_results", "xlrm_results_csv", "aggregate", "circuit_summary", "failures", "stale_runs")}
    for path in sorted((data / "6_instantiate_circuits").rglob("summary.json")):
        summary = json.loads(path.read_text())
        summary = dict(reversed(list(summary.items())), packages={"numpy": "other"}, runtime_s=9.9, instance_s=1.2)
        path.write_text(json.dumps(summary))
    assert run(data) == 0
    after = {k: rio.results_path(Workspace(data), k).read_bytes() for k in before}
    assert after == before


def test_rerun_gives_byte_identical_outputs(data):
    assert run(data) == 0
    folder = Workspace(data).results_dir
    first = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    assert run(data) == 0
    assert {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()} == first


# ------------------------------------------------------------------------------------------- stale: inputs
def test_runs_of_an_earlier_design_are_stale(data, tmp_path):
    """Phase 0 draws a new design (other seed, fewer cases): the old runs are not merged."""
    ws = Workspace(data)
    old = tmp_path / "old_mixes.json"
    shutil.copy(ws.mixes(DESIGN), old)
    mixes, _ = doe.build_mixes(DESIGN, 2, seed=99)
    write_json(ws.mixes(DESIGN), mixes)
    for feeder in FEEDERS:
        for case in ("0", "1"):
            write_run(ws, feeder, case)  # phase 6 redid the current cases
    assert run(data) == 0
    assert _merged_keys(data) == {(f, c) for f in FEEDERS for c in (0, 1, 2)} - {(f, 2) for f in FEEDERS}
    stale = _stale(data)
    assert set(stale) == {(f, c) for f in FEEDERS for c in (2, 3)}
    assert all("not in the current mixes_lhs.json" in stale[(f, 3)] for f in FEEDERS)
    assert all("earlier mixes_lhs.json" in stale[(f, 2)] for f in FEEDERS)
    assert not _series_keys(data) & set(stale)


def test_runs_of_a_feeder_the_filter_now_rejects_are_stale(data):
    ws = Workspace(data)
    table = pd.read_csv(ws.circuit_filter(STATE))
    table.loc[table["feeder"] == FEEDERS[1], ["status", "reason"]] = ["fail", "implausible voltages"]
    table.to_csv(ws.circuit_filter(STATE), index=False)
    assert run(data) == 0
    assert _merged_keys(data) == {(FEEDERS[0], c) for c in range(N_CASES + 1)}
    stale = _stale(data)
    assert set(stale) == {(FEEDERS[1], c) for c in range(N_CASES + 1)}
    assert all("'fail' in the current NC circuit_filter.csv" in r and "implausible" in r for r in stale.values())
    failures = _read(data, "failures")
    assert set(failures[failures["source"] == "circuit_filter"]["feeder"]) == {FEEDERS[1], REJECTED}
    assert not (failures["source"] == "run").any()


def test_a_feeder_without_a_filter_row_for_its_season_is_stale(data):
    ws = Workspace(data)
    table = pd.read_csv(ws.circuit_filter(STATE))
    table[table["feeder"] != FEEDERS[0]].to_csv(ws.circuit_filter(STATE), index=False)
    assert run(data) == 0
    assert {f for f, _ in _stale(data)} == {FEEDERS[0]}
    assert all("has no winter row" in r for r in _stale(data).values())


def test_a_run_whose_instance_was_rebuilt_is_stale(data):
    folder = _instance(data)
    assignments = json.loads((folder / "scenario_assignments.json").read_text())
    assignments["inputs_digest"] = "f" * 64
    (folder / "scenario_assignments.json").write_text(json.dumps(assignments))
    assert run(data) == 0
    assert set(_stale(data)) == {(FEEDERS[0], 2)} and "inputs changed" in _stale(data)[(FEEDERS[0], 2)]
    assert (FEEDERS[0], 2) not in _merged_keys(data) | _series_keys(data)


def test_a_summary_of_an_older_phase6_is_stale(data):
    folder = _instance(data)
    summary = json.loads((folder / "summary.json").read_text())
    del summary["mixes_digest"], summary["timeseries_sha256"]
    (folder / "summary.json").write_text(json.dumps({**summary, "runtime_s": 1.0}))
    assert run(data) == 0
    assert "no mixes_digest" in _stale(data)[(FEEDERS[0], 2)]


# ------------------------------------------------------------------------------------------- stale: outputs
def test_a_truncated_timeseries_is_stale_not_merged(data):
    path = _instance(data) / "timeseries.parquet"
    path.write_bytes(path.read_bytes()[:-100])
    assert run(data) == 0
    assert "SHA-256 differs" in _stale(data)[(FEEDERS[0], 2)]
    assert (FEEDERS[0], 2) not in _merged_keys(data) | _series_keys(data)
    assert _merged_keys(data) == ALL - {(FEEDERS[0], 2)}


@pytest.mark.parametrize("fault, reason", [("nan", "not finite in 1 of 96 rows"), ("rows", "95 rows, not 96")])
def test_a_series_with_nonfinite_values_or_missing_rows_is_stale(data, fault, reason):
    folder = _instance(data)
    frame = pd.read_parquet(folder / "timeseries.parquet")
    if fault == "nan":
        frame.loc[40, "P_3ph (kW)"] = np.inf
    else:
        frame = frame.iloc[:-1]
    write_parquet(folder / "timeseries.parquet", frame)
    _edit_summary(folder, timeseries_sha256=sha256_file(folder / "timeseries.parquet"))
    assert run(data) == 0
    assert reason in _stale(data)[(FEEDERS[0], 2)]
    assert (FEEDERS[0], 2) not in _merged_keys(data) | _series_keys(data)


def test_an_ok_run_without_its_series_is_stale(data):
    (_instance(data) / "timeseries.parquet").unlink()
    assert run(data) == 0
    assert "timeseries.parquet is missing" in _stale(data)[(FEEDERS[0], 2)]


@pytest.mark.parametrize("value", ["NaN", "Infinity", '"12 kW"'])
def test_a_summary_with_a_nonfinite_metric_is_never_merged(data, value):
    path = _instance(data) / "summary.json"
    summary = json.loads(path.read_text())
    text = json.dumps({**summary, "metrics": {**summary["metrics"], "peak_kw": "@@"}}).replace('"@@"', value)
    path.write_text(text)
    assert run(data) == 0
    assert "metric peak_kw" in _stale(data)[(FEEDERS[0], 2)]
    results = _read(data, "xlrm_results")
    assert np.isfinite(results["peak_kw"]).all() and (FEEDERS[0], 2) not in _merged_keys(data)


def test_an_undefined_metric_null_is_merged_as_empty(data):
    folder = _instance(data)
    summary = json.loads((folder / "summary.json").read_text())
    _edit_summary(folder, metrics={**summary["metrics"], "losses_pct": None})
    assert run(data) == 0
    results = _read(data, "xlrm_results").set_index(["feeder", "case"])
    assert math.isnan(results.loc[(FEEDERS[0], 2), "losses_pct"]) and _stale(data) == {}


# ------------------------------------------------------------------------------------------- failures.csv kept
def test_current_failed_and_unsolved_runs_stay_in_failures(data):
    ws = Workspace(data)
    write_run(ws, FEEDERS[1], "1", status="failed")
    (_instance(data, FEEDERS[1], "3") / "summary.json").unlink()
    stale_unsolved = _instance(data, FEEDERS[1], "7")
    shutil.copytree(_instance(data, FEEDERS[1], "3"), stale_unsolved)  # instantiated once, case gone since
    assert run(data) == 0
    failures = _read(data, "failures")
    assert failures[failures["source"] == "run"][["feeder", "case"]].values.tolist() == [[FEEDERS[1], "1"]]
    assert failures[failures["source"] == "not_solved"][["feeder", "case"]].values.tolist() == [[FEEDERS[1], "3"]]
    assert failures[failures["source"] == "circuit_filter"]["feeder"].tolist() == [REJECTED]
    assert set(_stale(data)) == {(FEEDERS[1], 7)}
    results = _read(data, "xlrm_results").set_index(["feeder", "case"])
    assert results.loc[(FEEDERS[1], 1), "status"] == "failed" and (FEEDERS[1], 1) not in _series_keys(data)


# ------------------------------------------------------------------------------------------- --clean-stale
def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_clean_stale_removes_exactly_the_stale_folders(data):
    ws = Workspace(data)
    table = pd.read_csv(ws.circuit_filter(STATE))
    table.loc[table["feeder"] == FEEDERS[1], "status"] = "skipped"
    table.to_csv(ws.circuit_filter(STATE), index=False)
    truncated = _instance(data, FEEDERS[0], "1") / "timeseries.parquet"
    truncated.write_bytes(truncated.read_bytes()[:50])
    stale_folders = {_instance(data, FEEDERS[0], "1")} | {_instance(data, FEEDERS[1], str(c)) for c in range(4)}
    phase6 = ws.phase("6")
    before = _tree(data)
    assert run(data, "--clean-stale") == 0
    assert set(_stale(data)) == {(FEEDERS[0], 1)} | {(FEEDERS[1], c) for c in range(4)}
    assert not any(f.exists() for f in stale_folders)
    removed = {k for k in before if any((data / k).is_relative_to(f) for f in stale_folders)}
    after = _tree(data)
    kept = {k: v for k, v in before.items() if k not in removed}
    assert {k: after[k] for k in kept} == kept  # nothing else touched
    assert (phase6 / STATE / SEASON / DESIGN / FEEDERS[1]).is_dir()  # the feeder folder stays
    assert _merged_keys(data) == {(FEEDERS[0], c) for c in (0, 2, 3)}


def test_without_clean_stale_nothing_is_removed(data):
    path = _instance(data) / "timeseries.parquet"
    path.write_bytes(path.read_bytes()[:-10])
    before = _tree(data / "6_instantiate_circuits")
    assert run(data) == 0
    assert _tree(data / "6_instantiate_circuits") == before


def test_all_runs_stale_exits_2_and_lists_them(data, capsys):
    mixes, _ = doe.build_mixes(DESIGN, N_CASES, seed=77)
    write_json(Workspace(data).mixes(DESIGN), mixes)
    assert run(data) == 2
    err = capsys.readouterr().err
    assert "no current run" in err and "stale_runs.csv" in err and len(err.strip().splitlines()) == 1
    assert len(_stale(data)) == len(ALL)
    assert not rio.results_path(Workspace(data), "xlrm_results").exists()


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("missing", ["mixes", "filter"])
def test_missing_mixes_or_filter_exits_2_naming_it(data, missing, capsys):
    ws = Workspace(data)
    path = ws.mixes(DESIGN) if missing == "mixes" else ws.circuit_filter(STATE)
    path.unlink()
    assert run(data, "--clean-stale") == 2
    err = capsys.readouterr().err
    assert str(path) in err and len(err.strip().splitlines()) == 1
    assert _no_outputs(ws.results_dir)
    assert _instance(data).is_dir()  # nothing judged stale, nothing removed


def test_unknown_filter_status_exits_2(data, capsys):
    path = Workspace(data).circuit_filter(STATE)
    path.write_text(path.read_text().replace(",pass,", ",maybe,", 1))
    assert run(data) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "'maybe'" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "x"])
def test_csv_limit_must_be_a_positive_number(data, value, capsys):
    for script in (combine, long_format):
        assert script.main(["--data-dir", str(data), "-q", "--csv-limit-mb", value]) == 2
        err = capsys.readouterr().err
        assert "--csv-limit-mb" in err and len(err.strip().splitlines()) == 1
    assert _no_outputs(Workspace(data).results_dir)


def test_csv_twin_is_written_under_the_limit_and_removed_above_it(data):
    ws = Workspace(data)
    assert run(data, "--csv-limit-mb", "50") == 0
    csv = rio.results_path(ws, "aggregate_csv")
    assert len(pd.read_csv(csv)) == len(pd.read_parquet(rio.results_path(ws, "aggregate"))) == 8 * 97
    size_mb = csv.stat().st_size / 1e6
    assert long_format.main(["--data-dir", str(data), "-q", "--csv-limit-mb", "50"]) == 0
    long_csv = rio.results_path(ws, "xlrm_long_csv")
    assert len(pd.read_csv(long_csv)) == len(pd.read_parquet(rio.results_path(ws, "xlrm_long")))
    # a limit below the size: the CSV twins are skipped and the copies of the earlier run removed
    assert run(data, "--csv-limit-mb", f"{size_mb / 2:.6f}") == 0
    assert not csv.exists() and rio.results_path(ws, "aggregate").is_file()
    manifest = json.loads((ws.results_dir / "manifest_append_experiment_results.json").read_text())
    assert manifest["settings"]["aggregate_csv"].startswith("skipped")
    long_mb = long_csv.stat().st_size / 1e6
    assert long_format.main(["--data-dir", str(data), "-q", "--csv-limit-mb", f"{long_mb / 2:.6f}"]) == 0
    assert not long_csv.exists() and rio.results_path(ws, "xlrm_long").is_file()
    assert not list(ws.results_dir.glob(".*.tmp"))


@pytest.mark.parametrize("name", ["append_experiment_results", *LATER])
def test_results_folder_that_is_a_file_exits_2(data, name, capsys):
    (data / "7_results_analysis").write_text("not a folder")
    script = combine if name == "append_experiment_results" else LATER[name]
    assert script.main(["--data-dir", str(data), "-q"]) == 2
    err = capsys.readouterr().err
    assert "7_results_analysis" in err and "not a folder" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("fault", ["empty", "truncated"])
@pytest.mark.parametrize("name", list(LATER))
def test_unreadable_xlrm_results_exits_2_naming_the_file(data, name, fault, capsys):
    assert run(data) == 0
    path = rio.results_path(Workspace(data), "xlrm_results")
    path.write_bytes(b"" if fault == "empty" else path.read_bytes()[: path.stat().st_size // 2])
    capsys.readouterr()
    assert LATER[name].main(["--data-dir", str(data), "-q"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "append_experiment_results.py" in err and len(err.strip().splitlines()) == 1


def test_corrupt_summary_still_exits_2_before_writing(data, capsys):
    path = _instance(data) / "summary.json"
    path.write_text(path.read_text()[:120])
    assert run(data, "--clean-stale") == 2
    err = capsys.readouterr().err
    assert str(path) in err and len(err.strip().splitlines()) == 1
    assert _no_outputs(Workspace(data).results_dir) and _instance(data).is_dir()


def test_report_lists_the_stale_runs(data):
    path = _instance(data) / "timeseries.parquet"
    path.write_bytes(path.read_bytes()[:-10])
    assert run(data) == 0
    assert LATER["make_report"].main(["--data-dir", str(data), "-q"]) == 0
    page = rio.results_path(Workspace(data), "report").read_text()
    assert "1 stale run(s) left out" in page and "stale_runs.csv" in page and "SHA-256 differs" in page


def test_clean_stale_while_a_phase6_batch_runs_exits_2_and_touches_nothing(data, capsys):
    from common.io import folder_lock

    path = _instance(data) / "timeseries.parquet"
    path.write_bytes(path.read_bytes()[:-10])
    with folder_lock(Workspace(data).circuits_dir(STATE), f"phase 6 {STATE}"):
        assert run(data, "--clean-stale") == 2
    err = capsys.readouterr().err
    assert "phase 6 NC is already running" in err and len(err.strip().splitlines()) == 1
    assert _instance(data).is_dir() and _no_outputs(Workspace(data).results_dir)
    assert run(data, "--clean-stale") == 0 and not _instance(data).exists()
