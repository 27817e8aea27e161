"""Phase 7 end to end on the embedded sample: combined tables, long table, sensitivity, PRIM, plots, report.

One module fixture prepares the study once: the NC workspace of ``prepared_nc`` with 12 cases per
design (so each feeder and season has 28 design runs: 12 LHS + 16 Sobol, enough for delta), phase 6
solved for both seasons and designs on the two small feeders plus a feeder the circuit filter leaves
out, one run turned into a failed run and one into a never-solved instance, then every phase 7 script.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import config, doe
from common.paths import Workspace
from conftest import copy_workspace, load_script

APPLY = load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")
SCRIPTS = ("append_experiment_results", "append_xlrm_long_format", "sensitivity_analysis", "scenario_discovery",
           "plot_results", "make_report")
PHASE7 = {name: load_script(f"7_results_analysis/{name}.py") for name in SCRIPTS}
import results_io as rio  # noqa: E402

SMALL, MEDIUM, FILTERED = "uhs0_1247--udt1021", "uhs0_1247--udt2473", "uhs1_1247--udt7745"
N_CASES = 12
FAILED = ("summer", "lhs", SMALL, "3")
UNSOLVED = ("winter", "sobol", SMALL, "2")
EXTRA_ARGS = {"sensitivity_analysis": ["--resamples", "20"]}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")



def _no_outputs(folder: Path) -> bool:
    """Nothing written in phase 7's folder (it may exist, holding only its step lock)."""
    return not folder.exists() or [p.name for p in folder.rglob("*")] in ([], [".lock"])

def run_phase7(data: Path) -> None:
    for name in SCRIPTS:
        assert PHASE7[name].main(["--data-dir", str(data), "-q", *EXTRA_ARGS.get(name, [])]) == 0, name


@pytest.fixture(scope="module")
def study(prepared_nc, tmp_path_factory) -> Path:
    data = copy_workspace(prepared_nc, tmp_path_factory.mktemp("p7") / "data")
    assert load_script("0_code_xlrm/run_mix_generator.py").main(
        ["--data-dir", str(data), "--n-cases", str(N_CASES), "-q"]) == 0
    for season in config.SEASONS:
        for design in config.DESIGNS:
            assert APPLY.main(["--data-dir", str(data), "--state", "NC", "--season", season, "--design", design,
                               "--feeders", f"{SMALL},{MEDIUM},{FILTERED}", "--run", "--workers", "2", "-q"]) == 0
    ws = Workspace(data)
    failed = ws.instance_dir("NC", *FAILED)
    summary = json.loads((failed / "summary.json").read_text())
    summary.update(status="failed", message="injected: 5 of 96 steps did not converge", metrics={},
                   timeseries_sha256="")
    (failed / "summary.json").write_text(json.dumps(summary))
    (failed / "timeseries.parquet").unlink()
    unsolved = ws.instance_dir("NC", *UNSOLVED)
    (unsolved / "summary.json").unlink()
    (unsolved / "timeseries.parquet").unlink()
    run_phase7(data)
    return data


def _summaries(data: Path) -> dict[tuple, dict]:
    out = {}
    for path in sorted((data / "6_instantiate_circuits").rglob("summary.json")):
        s = json.loads(path.read_text())
        out[(s["state"], s["feeder"], s["season"], s["design"], int(s["case"]))] = s
    return out


def _results(data: Path, key: str) -> Path:
    return rio.results_path(Workspace(data), key)


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------- combined tables
def test_every_run_is_in_xlrm_results_exactly_once(study):
    results = pd.read_parquet(_results(study, "xlrm_results"))
    keys = list(zip(results["state"], results["feeder"], results["season"], results["design"], results["case"]))
    summaries = _summaries(study)
    assert len(keys) == len(set(keys)) and set(keys) == set(summaries)
    assert len(keys) == 2 * 2 * (N_CASES + 1 + 16 + 1) - 1  # feeders x seasons x cases, one never solved
    status = dict(zip(keys, results["status"]))
    assert all(status[k] == s["status"] for k, s in summaries.items())


def test_xlrm_results_hold_inputs_realised_counts_and_metrics(study):
    results = pd.read_parquet(_results(study, "xlrm_results")).set_index(list(rio.RUN_KEYS))
    for key, summary in _summaries(study).items():
        row = results.loc[key]
        np.testing.assert_allclose([row[p.name] for p in doe.PARAMETERS],
                                   [summary["inputs"][p.name] for p in doe.PARAMETERS], rtol=0, atol=0)
        assert row["n_evs"] == summary["realised"]["n_evs"]
        assert row["customers_per_variant.un"] == summary["realised"]["customers_per_variant"]["un"]
        if summary["status"] == "ok":
            assert row["peak_kw"] == summary["metrics"]["peak_kw"]
            assert row["ansi_a_under_node_intervals"] == summary["metrics"]["ansi_a_under_node_intervals"]


def test_combined_series_has_96_data_rows_and_one_summary_row_per_run(study):
    series = pd.read_parquet(_results(study, "aggregate"))
    counts = series.groupby(["state", "circuit_folder", "season", "design", "scenario", "row_type"]).size().unstack()
    assert (counts["data"] == 96).all() and (counts["summary"] == 1).all()
    results = pd.read_parquet(_results(study, "xlrm_results"))
    assert len(counts) == int((results["status"] == "ok").sum())
    failed = (FAILED[0], FAILED[1], int(FAILED[3]))
    assert not ((series["circuit_folder"] == FAILED[2]) & (series["season"] == failed[0])
                & (series["design"] == failed[1]) & (series["scenario"] == failed[2])).any()


def test_summary_row_holds_the_daily_maximum(study):
    series = pd.read_parquet(_results(study, "aggregate"))
    results = pd.read_parquet(_results(study, "xlrm_results"))
    summary = series[series["row_type"] == "summary"].merge(
        results, left_on=["state", "circuit_folder", "season", "design", "scenario"],
        right_on=["state", "feeder", "season", "design", "case"])
    np.testing.assert_allclose(summary["P_3ph (kW)"], summary["peak_kw"], rtol=1e-12)
    assert summary["hour"].isna().all() and summary["interval_start"].isna().all()
    np.testing.assert_allclose(summary["v_min_pu_x"], summary["v_min_pu_y"], rtol=1e-6)


def test_combined_series_equals_the_run_timeseries(study):
    series = pd.read_parquet(_results(study, "aggregate"))
    part = series[(series["circuit_folder"] == MEDIUM) & (series["season"] == "winter") & (series["design"] == "sobol")
                  & (series["scenario"] == 5) & (series["row_type"] == "data")].reset_index(drop=True)
    own = pd.read_parquet(Workspace(study).instance_dir("NC", "winter", "sobol", MEDIUM, "5") / "timeseries.parquet")
    for column in ("hour", *rio.HEAD_COLUMNS, "storage_kw"):
        np.testing.assert_array_equal(part[column].to_numpy(), own[column].to_numpy())
    assert (part["interval_start"].to_numpy() == own["interval_start"].to_numpy()).all()


def test_aggregate_csv_is_written_under_the_limit(study):
    csv = pd.read_csv(_results(study, "aggregate_csv"))
    assert len(csv) == len(pd.read_parquet(_results(study, "aggregate")))


def test_failures_list_the_failed_run_the_unsolved_instance_and_the_filtered_feeder(study):
    failures = pd.read_csv(_results(study, "failures"), keep_default_na=False)
    run = failures[failures["source"] == "run"]
    assert run[["season", "design", "feeder", "case"]].astype(str).values.tolist() == [list(FAILED)]
    assert run["reason"].item().startswith("injected")
    unsolved = failures[failures["source"] == "not_solved"]
    assert unsolved[["season", "design", "feeder", "case"]].astype(str).values.tolist() == [list(UNSOLVED)]
    filtered = failures[failures["source"] == "circuit_filter"]
    assert set(filtered["feeder"]) == {FILTERED} and set(filtered["season"]) == set(config.SEASONS)
    assert filtered["reason"].str.contains("isolated").all()


def test_circuit_summary_counts_loads_and_head_capacity(study):
    circuits = pd.read_csv(_results(study, "circuit_summary"))
    results = pd.read_parquet(_results(study, "xlrm_results"))
    assert len(circuits) == len(results)
    ws = Workspace(study)
    for feeder in (SMALL, MEDIUM):
        loads = (ws.instance_dir("NC", "winter", "lhs", feeder, "1") / "Loads.dss").read_text()
        rows = circuits[circuits["circuit_folder"] == feeder]
        assert (rows["n_loads"] == len(re.findall(r"^New Load\.", loads, flags=re.M))).all()
    merged = circuits.merge(results, left_on=["circuit_folder", "season", "design", "scenario"],
                            right_on=["feeder", "season", "design", "case"])
    assert (merged["n_evs_x"] == merged["n_evs_y"]).all()
    assert circuits["substation_xfmr_kva"].isna().all()
    np.testing.assert_allclose(circuits["head_capacity_kva"],
                               np.sqrt(3) * circuits["head_kv_ll"] * circuits["head_norm_amps"], rtol=1e-9)
    assert (circuits["head_capacity_kva"] > 0).all()
    np.testing.assert_allclose(circuits["head_kv_ll"], 12.47, rtol=1e-6)


# ------------------------------------------------------------------------------------------- long table
def test_long_table_has_one_row_per_run_and_variable_with_roles_and_units(study):
    long = pd.read_parquet(_results(study, "xlrm_long"))
    results = pd.read_parquet(_results(study, "xlrm_results"))
    assert set(long["role"]) == {"X", "L", "M"}
    assert not long.duplicated(["state", "feeder", "season", "design", "case", "variable"]).any()
    per_run = long.groupby(["feeder", "season", "design", "case"]).size()
    assert len(per_run) == len(results) and per_run.nunique() == 1
    units = long.drop_duplicates("variable").set_index("variable")
    for p in doe.PARAMETERS:
        assert units.loc[p.name, "role"] == p.role and units.loc[p.name, "unit"] == p.unit
    metrics = units[units["role"] == "M"]
    assert "unknown" not in set(metrics["unit"]) and metrics.loc["peak_kw", "unit"] == "kW"
    assert metrics.loc["v_min_pu", "unit"] == "pu" and metrics.loc["losses_pct", "unit"] == "%"
    text = long[(long["variable"] == "worst_transformer") & (long["status"] == "ok")]
    assert text["value_text"].str.startswith("Transformer.").all() and text["value"].isna().all()


# ------------------------------------------------------------------------------------------- analyses
def test_sensitivity_outputs_are_finite_for_both_methods(study):
    table = pd.read_csv(_results(study, "sensitivity"))
    assert set(table["method"]) == {"delta", "pawn"} and set(table["scope"]) == {"feeder", "pooled"}
    assert np.isfinite(table[["index", "conf_low", "conf_high"]].to_numpy()).all()
    assert (table["conf_low"] <= table["index"] + 1e-12).all() and (table["index"] <= table["conf_high"] + 1e-12).all()
    assert set(table["input"]) == set(rio.INDEPENDENT_INPUTS) | {"dummy"}
    pooled = table[(table["scope"] == "pooled") & (table["metric"] == "peak_kw")]
    results = pd.read_parquet(_results(study, "xlrm_results"))
    design_runs = results[(results["status"] == "ok") & (results["case"] != 0)].groupby("season").size()
    assert set(pooled["season"]) == set(config.SEASONS)
    assert (pooled["n_runs"] == pooled["season"].map(design_runs)).all()
    for metric in rio.HEADLINE_METRICS:
        assert (rio.plots_dir(Workspace(study)) / f"sensitivity_{metric}.png").is_file()


def test_sensitivity_rows_carry_the_dummy_interval_and_a_verdict(study):
    table = pd.read_csv(_results(study, "sensitivity"), keep_default_na=False)
    for _, part in table.groupby(["group", "metric", "method"]):
        dummy = part[part["input"] == "dummy"].iloc[0]
        assert (part["dummy_conf_high"] == dummy["conf_high"]).all() and part["group_verdict"].nunique() == 1
        real = part[part["input"] != "dummy"]
        above = real["conf_low"] > dummy["conf_high"]
        assert (real["verdict"] == np.where(above, "above the noise floor", "not distinguishable from the dummy")).all()
        assert (part["group_verdict"].iloc[0] == "too few runs to rank inputs") == (not above.any())


def test_convergence_table_has_each_index_at_quarter_half_and_all_runs(study):
    convergence = pd.read_csv(_results(study, "sensitivity_convergence"))
    table = pd.read_csv(_results(study, "sensitivity"))
    assert set(convergence["subsample"]) == {"N/4", "N/2", "N"}
    full = convergence[convergence["subsample"] == "N"].merge(table, on=["group", "metric", "method", "input"])
    assert len(full) == len(table)
    np.testing.assert_array_equal(full["index_x"], full["index_y"])
    pooled = convergence[(convergence["group"] == "NC winter pooled") & (convergence["metric"] == "peak_kw")
                         & (convergence["method"] == "delta")]
    runs = pooled.groupby("subsample")["n_runs"].max()
    assert runs["N/4"] < runs["N/2"] < runs["N"] and pooled["ranking_stable"].nunique() == 1
    quarter = pooled[pooled["subsample"] == "N/4"]  # 3 LHS + 4 Sobol points on each of 2 feeders
    assert quarter["index"].isna().all() and quarter["note"].str.contains("fewer than --min-runs").all()


def test_placement_spread_says_placement_noise_was_not_measured_with_one_replicate(study):
    spread = pd.read_csv(_results(study, "placement_spread"), keep_default_na=False)
    assert (spread["replicates"] == 1).all() and spread["note"].str.startswith("placement noise not measured").all()
    assert "Placement noise was not measured" in _results(study, "report").read_text()


def test_sensitivity_skips_constant_metrics_with_a_reason(study):
    skipped = pd.read_csv(_results(study, "sensitivity_skipped"), keep_default_na=False)
    constant = skipped[skipped["metric"] == "ansi_a_violation_node_intervals"]
    assert len(constant) and constant["reason"].str.contains("constant").all()


def test_prim_runs_per_criterion_and_records_every_group(study):
    boxes = pd.read_csv(_results(study, "prim_boxes"), keep_default_na=False)
    discovery = PHASE7["scenario_discovery"]
    assert set(boxes["group"]) >= {"NC summer", "NC winter", f"NC winter {SMALL}", f"NC winter {MEDIUM}"}
    assert set(boxes["criterion"]) == set(discovery.CRITERIA)
    assert (boxes.groupby(["group", "criterion"]).size() >= 1).all() and len(boxes.groupby(["group", "criterion"])) \
        == len(set(boxes["group"])) * len(discovery.CRITERIA)
    assert set(boxes["status"]) <= set(discovery.STATUSES)
    assert set(boxes["scope"]) == {"pooled", "feeder"}
    found = boxes[boxes["status"].isin(["box", "no_box"]) & (boxes["coverage"] != "")]
    stats = found[["coverage", "density", "mass"]].astype(float).to_numpy()
    assert np.isfinite(stats).all() and ((stats > 0) & (stats <= 1)).all()
    small = boxes[boxes["group"] == f"NC winter {SMALL}"]
    assert set(small["status"]) == {"no_failures"}
    steps = pd.read_csv(_results(study, "prim_trajectory"))
    assert (steps.groupby(["group", "criterion", "box"])["selected"].sum() == 1).all()
    assert np.isfinite(steps[["coverage", "density", "mass"]].to_numpy()).all()


def test_prim_boxes_restrict_only_inputs_with_quasi_p_at_most_005(study):
    """Issue #13 item 6: no box of the small run restricts an input whose quasi-p value is above 0.05, and
    every restricted input has one (n_restricted: the inputs whose limits lie inside the group's range)."""
    boxes = pd.read_csv(_results(study, "prim_boxes"))
    discovery = PHASE7["scenario_discovery"]
    for _, box in boxes[boxes["status"] == "box"].iterrows():
        searched = box["inputs"].split(";")
        qp = {n: box[f"{n}.qp"] for n in searched if np.isfinite(box[f"{n}.qp"])}
        assert qp and max(qp.values()) <= 0.05, (box["group"], box["criterion"], qp)
        assert box["n_restricted"] == len(qp)
        assert set(qp) <= set(discovery.ALL_INPUTS)
    assert (boxes[boxes["status"] != "box"][[f"{n}.qp" for n in discovery.ALL_INPUTS]].isna().all().all())


def test_every_declared_plot_is_a_png(study):
    plots = rio.plots_dir(Workspace(study))
    expected = {"peak_distribution_NC.png", "failure_map_NC.png", "storage_peak_reduction.png",
                "ecdf_lhs_vs_sobol.png", "prim_boxes.png", "prim_trajectory.png",
                *(f"sensitivity_{m}.png" for m in rio.HEADLINE_METRICS),
                *(f"convergence_{m}.png" for m in rio.HEADLINE_METRICS)}
    assert {p.name for p in plots.glob("*.png")} == expected
    assert all((plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in expected)


def test_manifests_sit_beside_the_outputs(study):
    for name in SCRIPTS[:-1]:
        manifest = json.loads((Workspace(study).results_dir / f"manifest_{name}.json").read_text())
        assert manifest["script"].endswith(f"{name}.py") and "numpy" in manifest["packages"]


def test_report_embeds_every_plot_and_names_the_settings(study):
    page = _results(study, "report").read_text()
    assert page.count("data:image/png;base64,") == len(list(rio.plots_dir(Workspace(study)).glob("*.png")))
    for text in ("Range A", "mixes_lhs.json", "SALib", "NC winter", "coverage", str(config.DOE_SEED),
                 "too few runs to rank inputs", "Convergence", "sensitivity_convergence.csv"):
        assert text in page, text
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_second_run_is_byte_identical(study):
    before = _hashes(Workspace(study).results_dir)
    run_phase7(study)
    assert _hashes(Workspace(study).results_dir) == before


COMBINED = ("xlrm_results", "xlrm_results_csv", "aggregate", "aggregate_csv", "circuit_summary", "failures",
            "stale_runs")


def test_results_do_not_depend_on_the_phase6_worker_count(study, tmp_path):
    """Phase 6 solves winter LHS again with one worker instead of two: phase 7's tables keep their bytes."""
    data = copy_workspace(study, tmp_path / "data")
    assert APPLY.main(["--data-dir", str(data), "--state", "NC", "--season", "winter", "--design", "lhs",
                       "--feeders", f"{SMALL},{MEDIUM},{FILTERED}", "--run", "--force", "--workers", "1", "-q"]) == 0
    assert PHASE7["append_experiment_results"].main(["--data-dir", str(data), "-q"]) == 0
    for key in COMBINED:
        assert _results(data, key).read_bytes() == _results(study, key).read_bytes(), key


def test_the_study_has_no_stale_run(study):
    stale = pd.read_csv(_results(study, "stale_runs"))
    assert list(stale.columns) == ["state", "season", "design", "feeder", "case", "reason"] and stale.empty


def test_new_design_and_rejected_feeder_make_runs_stale_and_clean_stale_removes_only_them(study, tmp_path):
    """Phase 0 draws LHS anew and the circuit filter now rejects MEDIUM in summer: those runs are listed in
    stale_runs.csv, kept out of every table, and --clean-stale removes exactly their folders."""
    data = copy_workspace(study, tmp_path / "data")
    ws = Workspace(data)
    assert load_script("0_code_xlrm/run_mix_generator.py").main(
        ["--data-dir", str(data), "--n-cases", str(N_CASES), "--design", "lhs", "--seed", "4242", "-q"]) == 0
    table = pd.read_csv(ws.circuit_filter("NC"))
    table.loc[(table["feeder"] == MEDIUM) & (table["season"] == "summer"), ["status", "reason"]] = [
        "fail", "injected: implausible voltages"]
    table.to_csv(ws.circuit_filter("NC"), index=False)
    before = _summaries(data)
    expected_stale = {k for k in before if k[3] == "lhs" or (k[1] == MEDIUM and k[2] == "summer")}
    unsolved = ("NC", SMALL, UNSOLVED[0], UNSOLVED[1], int(UNSOLVED[3]))
    assert PHASE7["append_experiment_results"].main(["--data-dir", str(data), "-q", "--clean-stale"]) == 0
    stale = pd.read_csv(_results(data, "stale_runs"))
    keys = set(zip(stale["state"], stale["feeder"], stale["season"], stale["design"], stale["case"]))
    assert keys == expected_stale
    assert stale[stale["design"] == "lhs"]["reason"].str.contains("earlier mixes_lhs.json").all()
    medium = stale[(stale["design"] == "sobol")]
    assert medium["reason"].str.contains("'fail' in the current NC circuit_filter.csv for summer").all()
    results = pd.read_parquet(_results(data, "xlrm_results"))
    merged = set(zip(results["state"], results["feeder"], results["season"], results["design"], results["case"]))
    assert merged == set(before) - expected_stale
    series = pd.read_parquet(_results(data, "aggregate"))
    assert set(series["design"]) == {"sobol"} and not ((series["circuit_folder"] == MEDIUM)
                                                       & (series["season"] == "summer")).any()
    for key in expected_stale:
        assert not ws.instance_dir(key[0], key[2], key[3], key[1], str(key[4])).exists()
    assert set(_summaries(data)) == set(before) - expected_stale
    assert ws.instance_dir("NC", UNSOLVED[0], UNSOLVED[1], SMALL, UNSOLVED[3]).is_dir()  # current, never solved
    failures = pd.read_csv(_results(data, "failures"), keep_default_na=False)
    assert failures[failures["source"] == "not_solved"][["feeder", "case"]].astype(str).values.tolist() == [
        [unsolved[1], str(unsolved[4])]]
    assert not (failures["source"] == "run").any()  # the failed run was an LHS run: stale now


# ------------------------------------------------------------------------------------------- bad input
def test_no_phase6_runs_exits_2_naming_the_folder(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert PHASE7["append_experiment_results"].main(["--data-dir", str(tmp_path / "data"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "no phase 6 runs found" in err and len(err.strip().splitlines()) == 1
    assert _no_outputs(tmp_path / "data" / "7_results_analysis")


def test_state_without_runs_exits_2(study, capsys):
    assert PHASE7["append_experiment_results"].main(["--data-dir", str(study), "--state", "TX", "-q"]) == 2
    assert "TX" in capsys.readouterr().err


def test_corrupt_summary_exits_2_and_writes_nothing(study, tmp_path, capsys):
    data = tmp_path / "data"
    source = Workspace(study).design_dir("NC", "winter", "lhs")
    target = Workspace(data).design_dir("NC", "winter", "lhs")
    shutil.copytree(source / SMALL, target / SMALL)
    bad = target / SMALL / "4" / "summary.json"
    bad.write_text(bad.read_text()[:200])
    assert PHASE7["append_experiment_results"].main(["--data-dir", str(data), "-q"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and len(err.strip().splitlines()) == 1
    assert _no_outputs(Workspace(data).results_dir)


@pytest.mark.parametrize("name", SCRIPTS[1:])
def test_analysis_without_results_exits_2_naming_the_producer(name, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert PHASE7[name].main(["--data-dir", str(tmp_path / "data"), "-q"]) == 2
    assert "append_experiment_results.py" in capsys.readouterr().err


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_exits_0(name, capsys):
    assert PHASE7[name].main(["--help"]) == 0
    assert "--data-dir" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- browser
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium browser found (CI installs Debian's chromium)")
def test_report_renders_in_headless_chromium_with_every_image_loaded(study, tmp_path):
    page = _results(study, "report").read_text()
    probe = ("<script>window.addEventListener('load', function () {"
             "var imgs = Array.prototype.slice.call(document.images);"
             "document.body.setAttribute('data-images', imgs.length);"
             "document.body.setAttribute('data-loaded', imgs.filter(function (i) {"
             "return i.complete && i.naturalWidth > 0; }).length); });</script>")
    checked = tmp_path / "report_probe.html"
    checked.write_text(page.replace("</body>", probe + "</body>"))
    result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                             "--virtual-time-budget=10000", "--dump-dom", checked.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    body = re.search(r"<body[^>]*>", result.stdout)
    assert body, result.stdout[:500]
    images = int(re.search(r'data-images="(\d+)"', body.group(0)).group(1))
    loaded = int(re.search(r'data-loaded="(\d+)"', body.group(0)).group(1))
    assert images == len(list(rio.plots_dir(Workspace(study)).glob("*.png"))) and loaded == images
