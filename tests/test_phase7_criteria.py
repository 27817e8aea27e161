"""Planning-grade failure criteria (common.config.FAILURE_CRITERIA): phase 6's counts on synthetic loading and
voltage arrays just below and just above each threshold, phase 7's flags (results_io.planning_failures), and
the runs that fail before any adoption (their reference case 0 fails already)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common import cli, config
from conftest import load_script

pf = load_script("6_instantiate_circuits/daily_power_flow.py")
discovery = load_script("7_results_analysis/scenario_discovery.py")
import results_io as rio  # noqa: E402  (phase 7 folder put on sys.path by load_script)

TX = config.FAILURE_CRITERIA["transformer_overload"]
LINE = config.FAILURE_CRITERIA["line_overload"]
UV = config.FAILURE_CRITERIA["undervoltage"]
STEPS = config.INTERVALS_PER_DAY


def _transformer_row(pct: np.ndarray) -> dict:
    m = pf.loading_metrics(pct.reshape(STEPS, -1), ["Transformer.t"], config.THERMAL["transformer"]["window_h"],
                           config.THERMAL["transformer"]["threshold_pct"], config.THERMAL["overload_pct"],
                           emergency_pct=config.THERMAL["transformer"]["emergency_pct"])
    return {"transformer_ma_overload_intervals": m["ma_overload_intervals"],
            "transformer_emergency_intervals": m["emergency_intervals"]}


def _line_row(pct: np.ndarray) -> dict:
    m = pf.loading_metrics(pct.reshape(STEPS, -1), ["Line.l"], config.THERMAL["line"]["window_h"],
                           config.THERMAL["line"]["threshold_pct"], config.THERMAL["overload_pct"])
    return {"line_ma_overload_intervals": m["ma_overload_intervals"]}


def _voltage_row(v: np.ndarray) -> dict:
    return {"ansi_a_under_max_consecutive_intervals": pf.max_consecutive_below(v.reshape(STEPS, -1), np.array([0]),
                                                                               config.ANSI_RANGE_A[0])}


def _flags(**metrics) -> pd.Series:
    row = {"status": "ok", "transformer_ma_overload_intervals": 0, "transformer_emergency_intervals": 0,
           "line_ma_overload_intervals": 0, "ansi_a_under_max_consecutive_intervals": 0, **metrics}
    return rio.planning_failures(pd.DataFrame([row])).iloc[0]


def _window(window_h: float, level: float) -> np.ndarray:
    """A day at 50 % with one block of exactly ``window_h`` at ``level``."""
    pct = np.full(STEPS, 50.0)
    pct[40:40 + int(round(window_h / config.INTERVAL_H))] = level
    return pct


# ------------------------------------------------------------------------------------------- the table
def test_criteria_table_holds_the_planning_thresholds():
    assert TX["window_h"] == 2.0 and TX["threshold_pct"] == 100.0 and TX["emergency_pct"] == 150.0
    assert LINE["window_h"] == 1.0 and LINE["threshold_pct"] == 100.0
    assert UV["range_pu"] == config.ANSI_RANGE_A and UV["min_consecutive_intervals"] >= 1
    assert config.THERMAL["transformer"]["threshold_pct"] == TX["threshold_pct"]  # phase 6 counts at the criteria
    assert rio.CRITERIA == ("transformer_overload", "line_overload", "undervoltage")
    assert all(metric in rio.METRICS and rio.METRICS[metric][0] == "count"
               for spec in config.FAILURE_CRITERIA.values() for metric in spec["metrics"])


# ------------------------------------------------------------------------------------------- transformer
@pytest.mark.parametrize("level, fails", [(TX["threshold_pct"] - 0.1, False), (TX["threshold_pct"] + 0.1, True)])
def test_transformer_two_hour_average_just_below_and_above_nameplate(level, fails):
    flags = _flags(**_transformer_row(_window(TX["window_h"], level)))
    assert flags["transformer_overload"] == fails and flags["fails"] == fails


def test_transformer_short_peak_above_nameplate_is_not_an_overload():
    """7 intervals (1 h 45) at 114 %: far above nameplate, but the 2-h average stays at 99.75 %."""
    pct = np.full(STEPS, 0.0)
    pct[40:47] = 114.0
    row = _transformer_row(pct)
    assert row == {"transformer_ma_overload_intervals": 0, "transformer_emergency_intervals": 0}
    assert not _flags(**row)["transformer_overload"]


@pytest.mark.parametrize("level, fails", [(TX["emergency_pct"] - 0.1, False), (TX["emergency_pct"] + 0.1, True)])
def test_transformer_one_interval_just_below_and_above_the_emergency_limit(level, fails):
    pct = np.full(STEPS, 20.0)
    pct[40] = level
    row = _transformer_row(pct)
    assert row["transformer_ma_overload_intervals"] == 0
    assert _flags(**row)["transformer_overload"] == fails


# ------------------------------------------------------------------------------------------- line
@pytest.mark.parametrize("level, fails", [(LINE["threshold_pct"] - 0.1, False), (LINE["threshold_pct"] + 0.1, True)])
def test_line_one_hour_average_just_below_and_above_normamps(level, fails):
    flags = _flags(**_line_row(_window(LINE["window_h"], level)))
    assert flags["line_overload"] == fails and flags["fails"] == fails
    assert not flags["transformer_overload"] and not flags["undervoltage"]


# ------------------------------------------------------------------------------------------- undervoltage
@pytest.mark.parametrize("intervals, v_pu, fails", [
    (UV["min_consecutive_intervals"], UV["range_pu"][0] - 0.001, True),
    (UV["min_consecutive_intervals"] - 1, UV["range_pu"][0] - 0.001, False),
    (UV["min_consecutive_intervals"], UV["range_pu"][0] + 0.0001, False)])
def test_undervoltage_for_just_enough_or_too_few_intervals(intervals, v_pu, fails):
    v = np.full(STEPS, 1.0)
    v[30:30 + intervals] = v_pu
    flags = _flags(**_voltage_row(v))
    assert flags["undervoltage"] == fails and flags["fails"] == fails


def test_undervoltage_run_goes_on_across_midnight():
    v = np.full(STEPS, 1.0)
    v[-1] = v[0] = 0.94  # 23:45-24:00 and 00:00-00:15 of the periodic day: two consecutive intervals
    assert _voltage_row(v)["ansi_a_under_max_consecutive_intervals"] == 2
    assert pf.max_consecutive_below(v.reshape(STEPS, 1), np.array([0]), 0.95, periodic=False) == 1


def test_undervoltage_counts_a_customer_below_on_any_of_its_nodes():
    """Two nodes of one customer below in alternate intervals: the customer is below in all four."""
    v = np.ones((STEPS, 3))
    v[10:14:2, 0] = 0.94
    v[11:14:2, 1] = 0.94
    v[20, 2] = 0.94  # another customer, one interval
    assert pf.max_consecutive_below(v, np.array([5, 5, 7]), 0.95) == 4
    v[10:14, 0] = 0.05  # de-energised, not served: not counted
    v[10:14, 1] = 1.0
    assert pf.max_consecutive_below(v, np.array([5, 5, 7]), 0.95) == 1


def test_undervoltage_whole_day_is_one_day_long():
    assert pf.max_consecutive_below(np.full((STEPS, 2), 0.9), np.array([0, 1]), 0.95) == STEPS


# ------------------------------------------------------------------------------------------- flags
def test_planning_failures_union_and_failed_solves():
    frame = pd.DataFrame({"status": ["ok", "ok", "ok", "failed"],
                          "transformer_ma_overload_intervals": pd.array([0, 3, 0, pd.NA], dtype="Int64"),
                          "transformer_emergency_intervals": pd.array([0, 0, 0, pd.NA], dtype="Int64"),
                          "line_ma_overload_intervals": pd.array([0, 0, 1, pd.NA], dtype="Int64"),
                          "ansi_a_under_max_consecutive_intervals": pd.array([1, 0, 5, pd.NA], dtype="Int64")})
    flags = rio.planning_failures(frame)
    assert flags["transformer_overload"].tolist() == [False, True, False, False]
    assert flags["line_overload"].tolist() == [False, False, True, False]
    assert flags["undervoltage"].tolist() == [False, False, True, False]
    assert flags["fails"].tolist() == [False, True, True, False]


def test_planning_failures_refuses_an_ok_run_without_a_criterion_metric():
    frame = pd.DataFrame({"status": ["ok", "ok"], "transformer_ma_overload_intervals": [0, 0],
                          "transformer_emergency_intervals": [0, 0], "line_ma_overload_intervals": [0, 0],
                          "ansi_a_under_max_consecutive_intervals": pd.array([0, pd.NA], dtype="Int64")})
    with pytest.raises(cli.UserError, match="1 ok run.*ansi_a_under_max_consecutive_intervals"):
        rio.planning_failures(frame)
    with pytest.raises(cli.UserError, match="no column line_ma_overload_intervals"):
        rio.planning_failures(frame.drop(columns="line_ma_overload_intervals"))


# ------------------------------------------------------------------------------------------- before adoption
def _study(reference_overload: dict[str, int], n_cases: int = 12) -> pd.DataFrame:
    """Two feeders, one state and season, case 0 plus ``n_cases`` design cases each; the design runs fail the
    transformer criterion when hp_adoption > 0.5; the reference run of a feeder fails it when asked."""
    rows = []
    rng = np.random.default_rng(5)
    inputs = rng.random((n_cases, len(rio.INDEPENDENT_INPUTS)))
    for feeder, customers in (("fa", 100), ("fb", 400)):
        for case in range(n_cases + 1):
            row = {"state": "NC", "feeder": feeder, "season": "winter", "design": "lhs", "case": case, "status": "ok",
                   "n_customers": customers, "peak_kw": 500.0 if case == 0 else 600.0,
                   "transformer_emergency_intervals": 0, "line_ma_overload_intervals": 0,
                   "ansi_a_under_max_consecutive_intervals": 0}
            if case == 0:
                row.update({n: np.nan for n in rio.INDEPENDENT_INPUTS})
                row["transformer_ma_overload_intervals"] = reference_overload[feeder]
            else:
                row.update(dict(zip(rio.INDEPENDENT_INPUTS, inputs[case - 1])))
                row["transformer_ma_overload_intervals"] = int(row["hp_adoption"] > 0.5) * 4
            rows.append(row)
    return pd.DataFrame(rows)


def _circuits() -> pd.DataFrame:
    return pd.DataFrame({"state": ["NC", "NC"], "circuit_folder": ["fa", "fb"], "head_capacity_kva": [1000.0, 4000.0]})


def _groups(results: pd.DataFrame) -> dict[tuple[str, str], tuple[dict, pd.DataFrame, np.ndarray, list]]:
    return {(head["group"], head["criterion"]): (head, runs, y, names)
            for head, runs, y, names in discovery.discovery_runs(results, _circuits())}


def test_feeder_failing_in_its_reference_run_fails_before_any_adoption():
    groups = _groups(_study({"fa": 2, "fb": 0}))
    head, _, y, _ = groups[("NC winter fa", "transformer_overload")]
    assert head["status"] == "fails_before_adoption" and head["reference"] == "fails" and y.any()
    head, _, _, _ = groups[("NC winter fb", "transformer_overload")]
    assert "status" not in head and head["reference"] == "passes"
    # the other criteria do not fail in fa's reference run: fa is analysed for them
    head, _, _, _ = groups[("NC winter fa", "line_overload")]
    assert "status" not in head and head["reference"] == "passes"
    # the union fails wherever a criterion does
    assert groups[("NC winter fa", "fails")][0]["status"] == "fails_before_adoption"


def test_pooled_group_leaves_out_feeders_failing_before_any_adoption():
    groups = _groups(_study({"fa": 2, "fb": 0}))
    head, runs, y, names = groups[("NC winter", "transformer_overload")]
    assert head["feeders_left_out"] == "fa" and set(runs["feeder"]) == {"fb"} and len(y) == len(runs) == 12
    head, runs, _, names = groups[("NC winter", "line_overload")]
    assert head["feeders_left_out"] == "" and set(runs["feeder"]) == {"fa", "fb"}
    assert names[-3:] == list(discovery.DESCRIPTORS)
    np.testing.assert_allclose(runs.groupby("feeder")["feeder_ref_peak_loading_pct"].first(), [50.0, 12.5])


def test_pooled_group_of_feeders_all_failing_before_adoption_is_a_status_row():
    groups = _groups(_study({"fa": 1, "fb": 1}))
    head, _, _, _ = groups[("NC winter", "transformer_overload")]
    assert head["status"] == "fails_before_adoption" and head["feeders_left_out"] == "fa;fb"


def test_feeder_without_an_ok_reference_run_is_kept_and_says_so():
    results = _study({"fa": 0, "fb": 0})
    results.loc[(results["feeder"] == "fa") & (results["case"] == 0), "status"] = "failed"
    groups = _groups(results)
    head, _, _, _ = groups[("NC winter fa", "transformer_overload")]
    assert head["reference"] == "missing" and "status" not in head


def test_metric_settings_digest_follows_phase6_limits_not_phase7_duration(monkeypatch):
    """Changing the undervoltage duration needs phase 7 only; changing a thermal limit needs phase 6 again."""
    from common import schema

    before = schema.metric_settings_digest()
    criteria = {**config.FAILURE_CRITERIA, "undervoltage": {**config.FAILURE_CRITERIA["undervoltage"],
                                                            "min_consecutive_intervals": 4}}
    monkeypatch.setattr(config, "FAILURE_CRITERIA", criteria)
    assert schema.metric_settings_digest() == before
    monkeypatch.setattr(config, "THERMAL", {**config.THERMAL, "transformer": {**config.THERMAL["transformer"],
                                                                              "threshold_pct": 110.0}})
    assert schema.metric_settings_digest() != before
