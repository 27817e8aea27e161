"""Phase 7 pure functions: result tables, the summary row, PRIM rules, delta/PAWN helpers, report cells.

No workspace needed: every test builds its own small arrays. The end-to-end tests on the sample
are in ``test_phase7_pipeline.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.stats import ks_2samp

from common import cli, config, doe, figures, schema
from conftest import load_script

combine = load_script("7_results_analysis/append_experiment_results.py")
long_format = load_script("7_results_analysis/append_xlrm_long_format.py")
discovery = load_script("7_results_analysis/scenario_discovery.py")
plots = load_script("7_results_analysis/plot_results.py")
report = load_script("7_results_analysis/make_report.py")
import gsa_methods as gsa  # noqa: E402  (phase 7 folder put on sys.path by load_script)
import results_io as rio  # noqa: E402


def _summary(**overrides) -> dict:
    base = {"state": "NC", "season": "winter", "design": "lhs", "feeder": "s--f1", "case": "3",
            "design_day": "2018-01-17",
            "inputs": {**{p.name: 0.1 for p in doe.PARAMETERS}, "disjoint_sets": True},
            "realised": {"n_customers": 10, "customers_per_variant": {"baseline": 5, "dm": 3, "un": 2}, "n_evs": 4,
                         "pv_kw": 12.5, "storage_shortfall": ""},
            "status": "ok", "message": "",
            "metrics": {**{name: ("x" if unit == "text" else 1) for name, (unit, _) in schema.METRICS.items()},
                        "peak_kw": 100.0, "peak_time": "17:45", "n_customers": 10, "ansi_a_under_node_intervals": 2,
                        "worst_transformer_loading_pct": 90.0},
            "inputs_digest": "abc", "mixes_digest": "m" * 64, "timeseries_sha256": "t" * 64, "packages": {},
            "metric_settings_digest": schema.metric_settings_digest()}
    base.update(overrides)
    return base


# ------------------------------------------------------------------------------------------- tables
def test_head_columns_are_the_columns_phase6_writes():
    pf = load_script("6_instantiate_circuits/daily_power_flow.py")
    table = pf.head_table(np.array([[1 + 1j, 2 - 1j, 3 + 0.5j]] * config.INTERVALS_PER_DAY))
    assert list(table.columns) == schema.HEAD_COLUMNS
    assert rio.HEAD_COLUMNS is schema.HEAD_COLUMNS and rio.METRICS is schema.METRICS


def test_run_row_holds_no_timings_or_packages():
    row = combine.run_row(_summary(runtime_s=1.5, instance_s=0.2, packages={"numpy": "2"}))
    assert not {"runtime_s", "instance_s", "packages", "mixes_digest", "timeseries_sha256"} & set(row)
    frame = combine.results_frame([row])
    assert list(frame.columns[-3:]) == ["status", "message", "inputs_digest"]


def test_run_row_flattens_realised_and_keeps_one_n_customers():
    row = combine.run_row(_summary())
    assert row["customers_per_variant.dm"] == 3 and row["case"] == 3
    assert row["n_customers"] == 10 and list(row).count("n_customers") == 1
    assert row["ev_perc"] == pytest.approx(0.1) and row["peak_time"] == "17:45"


def test_results_frame_types_counts_and_orders_columns():
    frame = combine.results_frame([combine.run_row(_summary()),
                                   combine.run_row(_summary(case="1", status="failed", metrics={}, message="boom"))])
    assert list(frame["case"]) == [1, 3]
    assert str(frame["ansi_a_under_node_intervals"].dtype) == "Int64"
    assert frame["ansi_a_under_node_intervals"].isna().tolist() == [True, False]
    assert list(frame.columns[:5]) == list(rio.RUN_KEYS)
    assert frame.columns.get_loc("peak_kw") > frame.columns.get_loc("n_evs") > frame.columns.get_loc("pv_perc_3ph")


def _run_folder(tmp_path, summary_text: str):
    folder = tmp_path / "NC" / "winter" / "lhs" / "s--f1" / "3"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(summary_text)
    return combine.RunFolder("NC", "winter", "lhs", "s--f1", 3, folder)


def test_read_summary_rejects_corrupt_json_naming_the_file(tmp_path):
    run = _run_folder(tmp_path, '{"state": "NC", ')
    with pytest.raises(cli.UserError, match="summary.json.*corrupt"):
        combine.read_summary(run)


def test_read_summary_rejects_a_summary_of_another_folder(tmp_path):
    run = _run_folder(tmp_path, json.dumps(_summary(case="4")))
    with pytest.raises(cli.UserError, match="case = '4'"):
        combine.read_summary(run)


def test_reduce_column_max_min_all_and_all_nan():
    assert combine.reduce_column(np.array([1.0, np.nan, 3.0]), "max") == 3.0
    assert combine.reduce_column(np.array([1.0, np.nan, 3.0]), "min") == 1.0
    assert np.isnan(combine.reduce_column(np.array([np.nan, np.nan]), "max"))
    assert combine.reduce_column(np.array([True, False]), "all") is False


def test_series_block_adds_a_summary_row_of_daily_maxima():
    n = config.INTERVALS_PER_DAY
    rng = np.random.default_rng(0)
    columns = {"hour": np.arange(1, n + 1) * 0.25,
               "interval_start": pd.date_range("2018-01-17", periods=n, freq="15min").to_numpy().astype("datetime64[us]")}
    columns.update({c: rng.normal(size=n) for c in rio.HEAD_COLUMNS})
    columns.update({"v_min_pu": rng.uniform(0.9, 1.0, n), "v_max_pu": rng.uniform(1.0, 1.05, n),
                    "converged": np.ones(n, dtype=bool)})
    table = pa.table(columns)
    run = combine.RunFolder("NC", "winter", "lhs", "s--f1", 3, None)
    block = combine.series_block(run, table)
    batch = combine._arrow_batch([block], combine.series_schema()).to_pandas()
    assert len(batch) == n + 1 and batch["row_type"].tolist() == ["data"] * n + ["summary"]
    summary = batch.iloc[-1]
    assert np.isnan(summary["hour"]) and pd.isna(summary["interval_start"])
    assert summary["P_3ph (kW)"] == pytest.approx(columns["P_3ph (kW)"].max())
    assert summary["v_min_pu"] == pytest.approx(columns["v_min_pu"].min())
    assert np.isnan(summary["storage_kw"]) and bool(summary["converged"])


def test_long_table_roles_units_and_text_values():
    results = combine.results_frame([combine.run_row(_summary())])
    long = long_format.long_table(results)
    x_l = long[long["role"].isin(["X", "L"])].set_index("variable")
    for p in doe.PARAMETERS:
        assert x_l.loc[p.name, "role"] == p.role and x_l.loc[p.name, "unit"] == p.unit
    peak_time = long[long["variable"] == "peak_time"].iloc[0]
    assert peak_time["role"] == "M" and peak_time["value_text"] == "17:45" and np.isnan(peak_time["value"])
    assert long[long["variable"] == "peak_kw"]["unit"].item() == "kW"
    assert not long["variable"].duplicated().any()


# ------------------------------------------------------------------------------------------- PRIM
# (the failure criteria: tests/test_phase7_criteria.py; EMA's PRIM and the boxes: tests/test_phase7_prim.py)
def test_box_rule_names_only_restricted_inputs():
    init = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    limits = np.array([[0.4, 1.0], [0.0, 1.0], [0.1, 0.5]])
    assert discovery.box_rule(["a", "b", "c"], limits, init) == "a >= 0.4 and 0.1 <= c <= 0.5"


# ------------------------------------------------------------------------------------------- delta, PAWN
@pytest.mark.parametrize("n", [28, 57, 130])
def test_pawn_median_equals_salib(n):
    from SALib.analyze import pawn

    rng = np.random.default_rng(n)
    x = rng.random((n, 3))
    y = np.where(rng.random(n) < 0.3, 0.0, x[:, 0] + x[:, 1] ** 2)
    slices = gsa.pawn_slices(n)
    expected = pawn.analyze(gsa.problem(["a", "b", "c"], [(0, 1)] * 3), x, y, S=slices)["median"]
    np.testing.assert_allclose(gsa.pawn_median(x, y, slices), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", range(20, 120, 7))
def test_pawn_slices_avoid_counts_salib_cannot_slice(n):
    slices = gsa.pawn_slices(n)
    assert 3 <= slices <= 10 and slices not in (6, 9)


def test_normalise_relative_and_differences():
    np.testing.assert_allclose(gsa.normalise(np.array([110.0, 90.0]), 100.0, 1, "relative_pct"), [10.0, -10.0])
    np.testing.assert_allclose(gsa.normalise(np.array([3.0]), 1.0, 1, "difference"), [2.0])
    np.testing.assert_allclose(gsa.normalise(np.array([30.0]), 10.0, np.array([4.0]), "difference_per_customer"), [5.0])
    with pytest.raises(ValueError):
        gsa.normalise(np.array([1.0]), 0.0, 1, "relative_pct")


def _task(x, y, **extra):
    return {"group": "NC winter pooled", "scope": "pooled", "state": "NC", "season": "winter", "feeder": "",
            "metric": "peak_kw", "basis": "kW", "x": x, "y": y, "names": ["a", "b", "c"], "bounds": [(0, 1)] * 3,
            "n_feeders": 1, "designs": "lhs", "min_runs": 20, "resamples": 20, "seed": 123, **extra}


def test_analyse_ranks_the_influential_input_first_and_is_reproducible():
    rng = np.random.default_rng(5)
    x = rng.random((150, 3))
    y = 5 * x[:, 1] + 0.2 * rng.random(150)
    rows, skips = gsa.analyse(_task(x, y))
    again, _ = gsa.analyse(_task(x, y))
    assert rows == again and not skips
    table = pd.DataFrame(rows)
    for method in gsa.METHODS:
        part = table[table["method"] == method].set_index("input")
        assert part["index"].idxmax() == "b"
        assert part.loc["b", "conf_low"] > part.loc[gsa.DUMMY, "index"]
        assert np.isfinite(part[["index", "conf_low", "conf_high"]].to_numpy()).all()


def test_analyse_skips_a_constant_output():
    rows, skips = gsa.analyse(_task(np.random.default_rng(1).random((30, 3)), np.zeros(30)))
    assert rows == [] and "constant" in skips[0]["reason"]


def test_analyse_skips_delta_on_a_point_mass_but_keeps_pawn():
    rng = np.random.default_rng(2)
    x = rng.random((60, 3))
    y = np.where(x[:, 0] > 0.5, 10 * x[:, 0], 0.0)
    rows, skips = gsa.analyse(_task(x, y))
    assert {r["method"] for r in rows} == {"pawn"}
    assert skips[0]["method"] == "delta" and "share one value" in skips[0]["reason"]


# ------------------------------------------------------------------------------------------- plots, report
def test_ks_distance_equals_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=40), rng.normal(0.3, size=55)
    assert plots.ks_distance(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)


def test_ks_distance_of_empty_or_nonfinite_samples_is_nan():
    assert np.isnan(plots.ks_distance(np.array([np.nan, np.inf]), np.array([1.0, 2.0])))
    assert plots.ks_distance(np.array([1.0, np.nan, 2.0]), np.array([1.0, 2.0])) == 0.0


def test_report_cells_and_tables_escape_and_format():
    assert report.fmt(12345.678) == "12,346" and report.fmt(0.96245) == "0.9625" and report.fmt(np.nan) == ""
    table = report.html_table(pd.DataFrame({"name": ["<b>x</b>", "a&b"], "kW": [1.5, np.nan],
                                            "n": pd.array([3, pd.NA], dtype="Int64"), "<th>": [True, False]}))
    assert "&lt;b&gt;x&lt;/b&gt;" in table and "a&amp;b" in table and "<b>" not in table
    assert "<td>1.5</td>" in table and "<td>3</td>" in table and "<td>yes</td>" in table
    assert "<th>&lt;th&gt;</th>" in table and "NA" not in table and table.count("<td></td>") == 2


def test_report_table_truncates_with_a_note():
    table = report.html_table(pd.DataFrame({"a": range(5)}), max_rows=2)
    assert table.count("<td>") == 2 and "3 more rows" in table


# ------------------------------------------------------------------------------------------- figures
def test_figure_gives_2d_axes_on_agg_without_pyplot():
    import matplotlib
    import matplotlib.pyplot as plt

    fig, axes = figures.figure(2, 3, width=2.0, height=1.5)
    assert axes.shape == (2, 3) and tuple(fig.get_size_inches()) == (6.0, 3.0)
    assert matplotlib.get_backend().lower() == "agg" and fig not in map(plt.figure, plt.get_fignums())


def test_saved_figures_are_byte_identical(tmp_path):
    from common.io import save_figure

    def draw():
        fig, axes = figures.figure()
        axes[0, 0].plot([0, 1, 2], [1, 3, 2], label="a")
        axes[0, 0].legend()
        fig.suptitle("same data, same bytes")
        return fig

    first = save_figure(draw(), tmp_path / "a.png").read_bytes()
    assert save_figure(draw(), tmp_path / "b.png").read_bytes() == first
    assert b"tIME" not in first and first[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------- currency of runs
def _current() -> "combine.Current":
    return combine.Current(mixes_digest={"lhs": "m" * 64}, mixes_cases={"lhs": frozenset({"0", "1", "3"})},
                           mixes_name={"lhs": "mixes_lhs.json"},
                           filter={("NC", "winter", "s--f1"): ("pass", ""), ("NC", "winter", "s--f2"): ("fail", "isolated")})


def _stale_reason(summary: dict, digest: str | None = "abc", series: bool = True, feeder: str = "s--f1") -> str:
    run = combine.RunFolder("NC", "winter", "lhs", feeder, int(summary["case"]), None)
    return combine.stale_reason(run, summary, _current(), digest, series)


def test_stale_reason_is_empty_for_a_current_run():
    assert _stale_reason(_summary()) == ""
    assert _stale_reason(_summary(status="failed", metrics={}, timeseries_sha256=""), series=False) == ""


@pytest.mark.parametrize("change, expected", [
    ({"case": "2"}, "case 2 is not in the current mixes_lhs.json"),
    ({"mixes_digest": "x" * 64}, "earlier mixes_lhs.json"),
    ({"feeder": "s--f2"}, "'fail' in the current NC circuit_filter.csv for winter (isolated)"),
    ({"feeder": "s--f9"}, "has no winter row"),
    ({"inputs_digest": "other"}, "inputs changed"),
    ({"metrics": {"peak_kw": float("nan")}}, "metric peak_kw is nan"),
    ({"metrics": {"peak_kw": True}}, "metric peak_kw is True"),
    ({"metrics": {"peak_kw": "12"}}, "metric peak_kw is '12'"),
    ({"metrics": {}}, "status ok without metrics"),
    ({"timeseries_sha256": ""}, "timeseries_sha256 is empty"),
    ({"mixes_digest": None}, "no mixes_digest"),
    ({"metric_settings_digest": "0" * 64}, "computed under other planning limits"),
    ({"metrics": {"peak_kw": 100.0}}, "has no metric"),
    ({"upgrades": {"status": "upgraded", "cost_usd": 7000.0, "settings_digest": "0" * 64}},
     "upgrade cost was computed under other upgrade settings"),
])
def test_stale_reason_names_the_first_failing_check(change, expected):
    feeder = change.pop("feeder", "s--f1")
    assert expected in _stale_reason(_summary(**change), feeder=feeder)


def test_stale_reason_without_assignments_or_series():
    assert "scenario_assignments.json missing" in _stale_reason(_summary(), digest=None)
    assert "timeseries.parquet is missing" in _stale_reason(_summary(), series=False)


def _table(**columns) -> pa.Table:
    n = config.INTERVALS_PER_DAY
    base = {"hour": np.arange(1, n + 1) * 0.25,
            "interval_start": pd.date_range("2018-01-17", periods=n, freq="15min").to_numpy().astype("datetime64[us]"),
            **{c: np.ones(n) for c in schema.HEAD_COLUMNS}, "storage_soc": np.full(n, np.nan)}
    base.update(columns)
    return pa.table(base)


def test_series_reason_accepts_nan_outside_the_head_columns():
    assert combine.series_reason(_table()) == ""


def test_series_reason_rejects_missing_columns_rows_and_nonfinite_values():
    n = config.INTERVALS_PER_DAY
    assert "no column 'P_3ph (kW)'" in combine.series_reason(_table().drop(["P_3ph (kW)"]))
    assert "95 rows" in combine.series_reason(_table().slice(0, 95))
    bad = np.ones(n)
    bad[7] = np.nan
    assert "'S1 (kVA)' is not finite in 1 of 96" in combine.series_reason(_table(**{"S1 (kVA)": bad}))


def test_report_names_a_confounded_design_and_only_that_one(tmp_path):
    from common.paths import Workspace

    ws = Workspace(tmp_path)
    ws.lhs_vs_sobol_summary.parent.mkdir(parents=True)
    pd.DataFrame([{"design": "lhs", "max_abs_corr": 0.12, "max_abs_corr_pair": "ev_perc~pv_perc_res"},
                  {"design": "sobol", "max_abs_corr": 0.57, "max_abs_corr_pair": "scenarios:ev_lvl2_perc~pv_perc_3ph"}]
                 ).to_csv(ws.lhs_vs_sobol_summary, index=False)
    note = report.confounding_note(ws)
    assert "SOBOL: scenarios:ev_lvl2_perc~pv_perc_3ph at |r| = 0.57" in note and "LHS" not in note


def test_report_has_no_confounding_note_for_uncorrelated_designs(tmp_path):
    from common.paths import Workspace

    ws = Workspace(tmp_path)
    ws.lhs_vs_sobol_summary.parent.mkdir(parents=True)
    pd.DataFrame([{"design": "lhs", "max_abs_corr": 0.12, "max_abs_corr_pair": "a~b"}]).to_csv(
        ws.lhs_vs_sobol_summary, index=False)
    assert report.confounding_note(ws) == ""


def test_report_der_table_counts_reverse_flow_and_overvoltage_per_rooftop_pv_band():
    runs = pd.DataFrame({"state": "NC", "season": "summer", "status": "ok",
                         "pv_perc_res": [0.0, 0.1, 0.5, 0.55],
                         "head_reverse_flow_intervals_phase1": [0, 0, 3, 0],
                         "head_reverse_flow_intervals_phase2": [0, 0, 0, 0],
                         "service_transformers_reverse_flow": [0, 2, 9, 11],
                         "ansi_a_over_customer_intervals": [0, 0, 0, 4],
                         "ansi_b_over_customer_intervals": [0, 0, 0, 0],
                         "v_max_customer_pu": [1.03, 1.035, 1.045, 1.052]})
    table = report.der_outcomes(runs).set_index("rooftop PV share")
    assert list(table.index) == ["none", "up to 20 %", "over 40 %"]
    high = table.loc["over 40 %"]
    assert high["runs"] == 2 and high["head reverse flow [% of runs]"] == 50.0
    assert high["above Range A [% of runs]"] == 50.0 and high["highest customer voltage [pu]"] == 1.052
    assert table.loc["none", "transformer reverse flow [% of runs]"] == 0.0


def test_feeders_where_rooftop_pv_fell_short_are_named():
    runs = pd.DataFrame({"state": ["NC", "NC", "TX"], "feeder": ["ieee13", "ieee13", "f2"], "status": ["ok", "ok", "ok"],
                         "pv_res_shortfall": ["7 hosts without rooftop PV: ...", "", None]})
    assert combine.shortfall_feeders(runs) == ["NC/ieee13"]
    assert combine.shortfall_feeders(runs.drop(columns="pv_res_shortfall")) == []
