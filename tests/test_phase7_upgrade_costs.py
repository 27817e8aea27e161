"""Issue 17 in phase 7 and in ``make study``: the upgrade cost as an analysed outcome where phase 6's upgrade step ran.

``make study`` (and ``run_pipeline.py --upgrades``) pass ``--upgrades`` to phase 6, ``make run`` does not; where
``xlrm_results`` holds ``upgrade_cost_usd`` the sensitivity analysis adds it to its metrics (pooled per customer,
not relative to the reference case), scenario discovery adds the criterion "cost above the threshold", the
robustness analysis the cost's median and 90th percentile per policy, and the report a section "What it costs to
fix" with a figure; without the column none of them does, and the report says the step did not run.

The unit tests build small results tables here; the last test runs a pipeline slice with ``--upgrades`` on the
sample's medium NC feeder (phase 6 on 5 winter cases, then phase 7).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from common import config
from common.io import write_parquet
from common.paths import Workspace
from common.steps import STEPS, plan
from conftest import REPO, copy_workspace, load_script, requires_shared

SA = load_script("7_results_analysis/sensitivity_analysis.py")
SD = load_script("7_results_analysis/scenario_discovery.py")
ROBUST = load_script("7_results_analysis/robustness_analysis.py")
REPORT = load_script("7_results_analysis/make_report.py")
PLOTS = load_script("7_results_analysis/plot_results.py")
import results_io as rio  # noqa: E402

THRESHOLD = config.UPGRADES["cost_threshold_usd"]
FEEDERS = {"s--small": 20, "s--large": 400}  # feeder -> customers


def toy_results(n_cases: int = 30, costs: bool = True, seed: int = 5) -> pd.DataFrame:
    """xlrm_results of two feeders with a known cost: 0 below hp_adoption 0.5, then 400 USD per customer per 0.1
    of adoption above it (the large feeder above the 100,000 USD threshold from hp_adoption 0.5625, the small one
    never); case 3 of the small feeder's upgrade failed (no cost) and the large feeder's case 4 left a violation
    unsolved. Every feeder sees the same design points."""
    rng = np.random.default_rng(seed)
    rows = []
    points = [{n: float(rng.random()) for n in (*rio.INPUTS, "hp")} for _ in range(n_cases)]
    for feeder, customers in FEEDERS.items():
        for case in range(n_cases + 1):
            values = dict(points[case - 1]) if case else {n: 0.0 for n in (*rio.INPUTS, "hp")}
            hp = values.pop("hp")
            values.update({"shares.baseline": 1.0 - hp, "shares.dm": hp / 2, "shares.un": hp / 2})
            cost = 0.0 if hp < 0.5 else 4000.0 * customers * (hp - 0.5)
            row = {"state": "NC", "feeder": feeder, "season": "winter", "design": "lhs", "case": case, "status": "ok",
                   **values, "n_customers": customers, "peak_kw": 10.0 * customers * (1 + hp),
                   "ansi_a_violation_node_intervals": 0.0, "worst_transformer_loading_pct": 60.0 + 60 * hp,
                   "losses_pct": 2.0 + hp, "ansi_a_customers_affected": 0.0, "storage_peak_reduction_pct": 1.0,
                   "transformer_ma_overload_intervals": int(hp > 0.5), "transformer_emergency_intervals": 0,
                   "line_ma_overload_intervals": 0, "ansi_a_under_max_consecutive_intervals": 0,
                   "upgrade_cost_usd": cost, "upgrade_cost_transformers_usd": 0.75 * cost,
                   "upgrade_cost_lines_usd": 0.25 * cost, "upgrade_cost_voltage_usd": 0.0,
                   "upgrade_unsolved": 0, "upgrade_status": "upgraded" if cost > 0 else "not needed"}
            rows.append(row)
    frame = pd.DataFrame(rows)
    small3 = (frame["feeder"] == "s--small") & (frame["case"] == 3)
    frame.loc[small3, ["upgrade_cost_usd", "upgrade_cost_transformers_usd", "upgrade_cost_lines_usd",
                       "upgrade_cost_voltage_usd"]] = np.nan
    frame.loc[small3, "upgrade_status"] = "failed"
    frame.loc[(frame["feeder"] == "s--large") & (frame["case"] == 4), "upgrade_unsolved"] = 2
    frame["upgrade_unsolved"] = frame["upgrade_unsolved"].astype("Int64")
    if not costs:
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith("upgrade_")])
    return rio.with_factors(frame)


# ------------------------------------------------------------------------------------------- make study
def test_phase6_gets_upgrades_only_when_the_run_asks_for_it():
    on = plan("/d", states=["NC"], seasons=["winter"], designs=["lhs"], upgrades=True)
    off = plan("/d", states=["NC"], seasons=["winter"], designs=["lhs"])
    assert [c.step.phase for c in on if "--upgrades" in c.argv] == ["6"]
    assert not [c for c in off if "--upgrades" in c.argv]
    assert [s.script for s in STEPS if s.upgrades] == [
        "6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py"]


def test_run_pipeline_passes_upgrades_to_phase6(tmp_path):
    import sys

    result = subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), "--data-dir", str(tmp_path), "--states",
                             "NC", "--seasons", "winter", "--designs", "lhs", "--upgrades", "--dry-run"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "--upgrades" in line]
    assert len(lines) == 1 and "instantiate_circuits_and_runs_APPLYFILTER.py" in lines[0] and "--run" in lines[0]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("target, extra, on", [("run", [], False), ("study", [], True), ("run", ["UPGRADES=1"], True),
                                               ("study", ["STUDY_UPGRADES=0"], False)])
def test_make_study_upgrades_and_make_run_does_not(tmp_path, target, extra, on):
    result = subprocess.run(["make", "-n", "-C", str(REPO), target, f"VENV={tmp_path / 'venv'}", "STATES=NC",
                             "SEASONS=winter", "DESIGNS=lhs", *extra], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    runner = result.stdout[result.stdout.index("run_pipeline.py"):]
    runner = runner[:runner.index("\n", runner.index("--workers"))]
    assert ("--upgrades" in runner) == on, runner


# ------------------------------------------------------------------------------------------- criterion
def test_cost_failures_are_unknown_where_the_cost_is():
    flags = rio.cost_failures(pd.DataFrame({"status": ["ok", "ok", "ok", "failed"],
                                            rio.COST_METRIC: [0.0, THRESHOLD + 1, np.nan, THRESHOLD + 1]}))
    assert flags.tolist()[:2] == [False, True] and flags.isna().tolist() == [False, False, True, True]


# ------------------------------------------------------------------------------------------- sensitivity
def test_sensitivity_adds_the_cost_only_where_the_column_holds_one():
    assert SA.analysed_metrics(toy_results())[-1] == rio.COST_METRIC
    assert SA.analysed_metrics(toy_results(costs=False)) == list(rio.HEADLINE_METRICS)
    empty = toy_results().assign(**{rio.COST_METRIC: np.nan})
    assert SA.analysed_metrics(empty) == list(rio.HEADLINE_METRICS)


def test_pooled_cost_is_per_customer_and_needs_no_reference_run():
    results = toy_results()
    results = results[~((results["feeder"] == "s--large") & (results["case"] == 0))]  # no reference run
    tasks, skips = SA.analysis_groups(results, [rio.COST_METRIC, "peak_kw"])
    pooled = {t["metric"]: t for t in tasks if t["scope"] == SA.POOLED}
    cost = pooled[rio.COST_METRIC]
    assert cost["n_feeders"] == 2 and pooled["peak_kw"]["n_feeders"] == 1  # the peak needs case 0, the cost not
    runs = results[(results["case"] != 0)].sort_values(["feeder", "design", "case"], kind="stable")
    expected = (runs[rio.COST_METRIC] / runs["n_customers"]).to_numpy(dtype=float)
    np.testing.assert_allclose(np.sort(cost["y"][np.isfinite(cost["y"])]), np.sort(expected[np.isfinite(expected)]))
    assert "per customer" in cost["basis"] and "not relative" in cost["basis"]
    assert not [s for s in skips if s["metric"] == rio.COST_METRIC]


def _workspace(tmp_path, results: pd.DataFrame) -> Workspace:
    ws = Workspace(tmp_path / "data")
    ws.results_dir.mkdir(parents=True)
    write_parquet(rio.results_path(ws, "xlrm_results"), results)
    return ws


@pytest.mark.parametrize("costs", [True, False])
def test_sensitivity_script_analyses_the_cost_when_present(tmp_path, costs):
    ws = _workspace(tmp_path, toy_results(costs=costs))
    assert SA.main(["--data-dir", str(ws.root), "-q", "--resamples", "4"]) == 0
    table = pd.read_csv(rio.results_path(ws, "sensitivity"))
    assert (rio.COST_METRIC in set(table["metric"])) == costs
    assert (rio.plots_dir(ws) / f"sensitivity_{rio.COST_METRIC}.png").is_file() == costs
    if costs:
        feeder = table[(table["metric"] == rio.COST_METRIC) & (table["scope"] == "feeder")]
        assert set(feeder["basis"]) == {"USD"}


# ------------------------------------------------------------------------------------------- scenario discovery
def test_discovery_adds_the_cost_criterion_only_with_costs():
    with_costs = {(h["group"], h["criterion"]): (runs, y) for h, runs, y, _ in SD.discovery_runs(toy_results(), None)}
    without = {h["criterion"] for h, _, _, _ in SD.discovery_runs(toy_results(costs=False), None)}
    assert rio.COST_CRITERION not in without and without == set(SD.CRITERIA)
    runs, y = with_costs[("NC winter s--large", rio.COST_CRITERION)]
    np.testing.assert_array_equal(y, runs[rio.COST_METRIC].to_numpy(dtype=float) > THRESHOLD)
    assert y.any() and not y.all()
    small, _ = with_costs[("NC winter s--small", rio.COST_CRITERION)]
    assert 3 not in set(small["case"]) and len(small) == 29  # its failed upgrade has no cost: left out
    everything, _ = with_costs[("NC winter s--small", "fails")]
    assert 3 in set(everything["case"])  # the planning criteria keep it


def test_discovery_script_writes_the_cost_criterion_rows(tmp_path):
    ws = _workspace(tmp_path, toy_results())
    pd.DataFrame({"state": ["NC", "NC"], "circuit_folder": list(FEEDERS), "head_capacity_kva": [500.0, 9000.0]}
                 ).to_csv(rio.results_path(ws, "circuit_summary"), index=False)
    assert SD.main(["--data-dir", str(ws.root), "-q", "--resamples", "2"]) == 0
    boxes = pd.read_csv(rio.results_path(ws, "prim_boxes"))
    cost = boxes[boxes["criterion"] == rio.COST_CRITERION].set_index("group")
    assert set(cost.index) == {"NC winter", "NC winter s--small", "NC winter s--large"}
    large = cost.loc["NC winter s--large"]
    assert large["status"] in ("box", "no_box") and int(large["n_failures"]) > 0


# ------------------------------------------------------------------------------------------- robustness
def _cross(results: pd.DataFrame) -> pd.DataFrame:
    """The toy's cases as a cross layout: 5 scenarios x 3 policies (policy 3 halves the cost)."""
    frame = results.copy()
    design = frame["case"] > 0
    frame["scenario"] = pd.array(np.where(design, (frame["case"] - 1) // 3 + 1, 0), dtype="Int64")
    frame["policy"] = pd.array(np.where(design, (frame["case"] - 1) % 3 + 1, 0), dtype="Int64")
    frame["policy_name"] = np.where(design, "policy " + frame["policy"].astype(str), "reference case")
    frame["design_point"] = frame["case"]
    frame["placement_replicate"] = 0
    frame.loc[frame["policy"] == 3, rio.COST_METRIC] *= 0.5
    return frame


def test_robustness_gives_the_cost_per_policy_and_keeps_the_ranking():
    results = _cross(toy_results(n_cases=15))
    robustness, _, _ = ROBUST.analyse(results, outcomes=ROBUST.outcomes_of(results))
    plain, _, _ = ROBUST.analyse(results, outcomes=ROBUST.outcomes_of(results.drop(columns=[rio.COST_METRIC])))
    assert ROBUST.outcomes_of(results)[-1] == rio.COST_METRIC
    assert f"{rio.COST_METRIC}.p90" not in plain.columns
    assert robustness[["feeder", "policy", "rank"]].equals(plain[["feeder", "policy", "rank"]])
    row = robustness[(robustness["feeder"] == "s--large") & (robustness["policy"] == 1)].iloc[0]
    runs = results[(results["feeder"] == "s--large") & (results["policy"] == 1)][rio.COST_METRIC]
    assert row[f"{rio.COST_METRIC}.median"] == pytest.approx(np.median(runs))
    assert row[f"{rio.COST_METRIC}.p90"] == pytest.approx(np.percentile(runs, 90))


# ------------------------------------------------------------------------------------------- report
def test_cost_distribution_per_feeder_and_season():
    results = toy_results()
    table = REPORT.cost_distribution(results).set_index("feeder")
    large = results[(results["feeder"] == "s--large") & (results["case"] > 0)]
    costs = large[rio.COST_METRIC].to_numpy(dtype=float)
    row = table.loc["s--large"]
    assert row["futures"] == 30 and row["upgraded"] == int((costs > 0).sum())
    assert row["median [USD]"] == pytest.approx(np.median(costs))
    assert row["90th percentile [USD]"] == pytest.approx(np.percentile(costs, 90))
    assert row["max [USD]"] == pytest.approx(costs.max())
    assert (row["transformers [%]"], row["lines [%]"], row["voltage [%]"]) == pytest.approx((75.0, 25.0, 0.0))
    assert row["left unsolved"] == 1 and row["reference case 0 [USD]"] == 0
    assert table.loc["s--small", "upgrade failed"] == 1 and table.loc["s--small", "without a cost"] == 1


def test_report_section_gives_costs_drivers_and_figure_in_words():
    results = toy_results()
    sensitivity = pd.DataFrame([
        {"group": "NC winter pooled", "scope": "pooled", "state": "NC", "season": "winter", "feeder": "",
         "metric": rio.COST_METRIC, "method": "pawn", "input": name, "index": i, "conf_low": lo, "conf_high": hi,
         "n_runs": 59, "group_verdict": "above the noise floor: hp_adoption"}
        for name, (i, lo, hi) in {"hp_adoption": (0.6, 0.5, 0.7), "ev_perc": (0.1, 0.0, 0.2),
                                  "dummy": (0.1, 0.0, 0.2)}.items()])
    html = REPORT.cost_section(results, sensitivity, None, None, "<figure>cost figure</figure>")
    large = results[(results["feeder"] == "s--large") & (results["case"] > 0)][rio.COST_METRIC]
    assert "What it costs to fix" in html and "<figure>cost figure</figure>" in html
    assert f"{np.percentile(large, 90):,.0f} USD at the 90th percentile" in html
    assert "transformers 75 %, lines 25 %, voltage 0 %" in html
    assert "1 future(s) the upgrades left violations unsolved" in html
    assert "the cost is driven by heat-pump adoption (1 - baseline) (hp_adoption)" in html


def test_report_section_without_costs_says_the_step_did_not_run():
    html = REPORT.cost_section(toy_results(costs=False), None, None, None, "")
    assert "the upgrade step did not run (make study or --upgrades)" in html and "<table" not in html


def test_plot_results_draws_the_cost_figure_and_removes_a_stale_one(tmp_path):
    ws = _workspace(tmp_path, toy_results())
    figure = rio.plots_dir(ws) / "upgrade_cost_NC.png"
    assert PLOTS.main(["--data-dir", str(ws.root), "-q"]) == 0
    assert figure.is_file()
    write_parquet(rio.results_path(ws, "xlrm_results"), toy_results(costs=False))
    assert PLOTS.main(["--data-dir", str(ws.root), "-q"]) == 0
    assert not figure.exists()


# ------------------------------------------------------------------------------------------- pipeline slice
MEDIUM = "uhs0_1247--udt2473"


@requires_shared
def test_pipeline_slice_with_upgrades_reports_what_it_costs(prepared_nc, tmp_path):
    """Phase 6 with --upgrades on the medium NC feeder (winter, the prepared workspace's 4 LHS cases and the
    reference case), then phase 7: the cost is a column, a sensitivity metric, a PRIM criterion, a figure and a
    section of the report with its numbers."""
    from sample import build_sample

    data = copy_workspace(prepared_nc, tmp_path / "data")
    assert build_sample.copy_upgrade_costs(Workspace(data)) is not None  # what the sample step does in make run
    apply = load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")
    assert apply.main(["--data-dir", str(data), "--state", "NC", "--season", "winter", "--design", "lhs", "--run",
                       "--upgrades", "--feeders", MEDIUM, "--workers", "1", "-q"]) == 0
    argv = ["--data-dir", str(data), "-q"]
    assert load_script("7_results_analysis/append_experiment_results.py").main(argv) == 0
    assert SA.main([*argv, "--min-runs", "2", "--resamples", "2"]) == 0
    assert SD.main([*argv, "--min-runs", "2", "--resamples", "0"]) == 0
    assert PLOTS.main(argv) == 0
    assert REPORT.main(argv) == 0
    ws = Workspace(data)
    results = pd.read_parquet(rio.results_path(ws, "xlrm_results"))
    assert results[rio.COST_METRIC].notna().all()
    assert rio.COST_CRITERION in set(pd.read_csv(rio.results_path(ws, "prim_boxes"))["criterion"])
    assert (rio.plots_dir(ws) / "upgrade_cost_NC.png").is_file()
    page = rio.results_path(ws, "report").read_text()
    section = page[page.index('<h2 id="costs">'):page.index('<h2 id="sensitivity">')]
    futures = results[results["case"] > 0][rio.COST_METRIC]
    assert f"{futures.max():,.0f} USD at most" in section and "upgrade_cost_NC.png" in section


@pytest.fixture(scope="module")
def upgraded_medium(prepared_nc, tmp_path_factory):
    """The medium NC feeder's winter LHS runs solved and upgraded (phase 6 --upgrades), read-only for tests."""
    from sample import build_sample

    data = copy_workspace(prepared_nc, tmp_path_factory.mktemp("upgraded") / "data")
    assert build_sample.copy_upgrade_costs(Workspace(data)) is not None
    apply = load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")
    assert apply.main(["--data-dir", str(data), "--state", "NC", "--season", "winter", "--design", "lhs", "--run",
                       "--upgrades", "--feeders", MEDIUM, "--workers", "1", "-q"]) == 0
    return data


def _stale_after_phase7(data) -> dict[int, str]:
    load_script("7_results_analysis/append_experiment_results.py").main(["--data-dir", str(data), "-q"])
    stale = pd.read_csv(rio.results_path(Workspace(data), "stale_runs"), keep_default_na=False)
    return dict(zip(stale["case"].astype(int), stale["reason"]))


@requires_shared
def test_phase7_refuses_a_cost_whose_upgrades_json_changed(upgraded_medium, tmp_path):
    data = copy_workspace(upgraded_medium, tmp_path / "data")
    path = Workspace(data).instance_dir("NC", "winter", "lhs", MEDIUM, "1") / "upgrades.json"
    path.write_text(path.read_text().replace('"cost_usd": ', '"cost_usd": 1', 1))
    stale = _stale_after_phase7(data)
    assert set(stale) == {1} and "upgrades.json differs" in stale[1] and "--upgrades" in stale[1]


@requires_shared
def test_phase7_refuses_costs_priced_from_tables_that_changed_since(upgraded_medium, tmp_path):
    # the runs name the tables they were priced with (the fixture's workspace copy): a copy of the workspace
    # without them (a moved workspace) is checked against its own tables, the ones phase 6 now prices with
    data = copy_workspace(upgraded_medium, tmp_path / "data")
    moved = tmp_path / "moved"
    (upgraded_medium / "upgrade_costs").rename(moved)
    try:
        assert _stale_after_phase7(data) == {}  # the same tables in the copy: current
        table = Workspace(data).upgrade_costs_dir / "transformers.csv"
        table.write_text(table.read_text() + "\n")  # any edit: the prices the runs were costed with are gone
        stale = _stale_after_phase7(data)
    finally:
        moved.rename(upgraded_medium / "upgrade_costs")
    assert stale and all("unit-cost tables" in reason and "changed" in reason for reason in stale.values())
