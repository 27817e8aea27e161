"""The light-load day for rooftop PV (issue #14 items 4 and 8): the day of the season's lowest daytime load, on
which every summer run is solved once more (``<case>/light_load/``) and its PV metrics reported as
``light_load_<metric>`` beside the peak day's.

Constructed curves check the choice of the day (``common.profiles.light_load_day``); the sample's large NC
feeder in summer checks that the light-load day's metrics move the way physics says and that its instance
folder is a plain OpenDSS instance of the series the run recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import config, doe, dss, profiles, schema
from common.paths import Workspace
from conftest import SHARED_DATA, copy_workspace, load_script, requires_shared
from pipeline import solve_cases

SUMMER = config.SEASON_MONTHS["summer"]
apply = load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")
pf = load_script("6_instantiate_circuits/daily_power_flow.py")
LARGE = "uhs1_1247--udt5219"


def _index() -> pd.DatetimeIndex:
    return pd.date_range("2018-01-01", periods=35040, freq="15min")


def _curves(points: dict[str, list[tuple[str, float]]]) -> dict[str, np.ndarray]:
    """Flat 500 kW curves with 15-min values {variant: [(interval start, kW), ...]}."""
    index = _index()
    out = {}
    for variant in config.VARIANTS:
        curve = np.full(len(index), 500.0)
        for start, kw in points.get(variant, []):
            curve[index.get_loc(pd.Timestamp(start))] = kw
        curve[index.get_loc(pd.Timestamp("2018-04-10 12:00"))] = 1.0  # outside the season: never a day
        out[variant] = curve
    return out


# ------------------------------------------------------------------------------------------- the day
def test_light_load_day_is_the_lowest_daytime_value_of_any_variant():
    curves = _curves({"baseline": [("2018-07-04 12:00", 300.0)],
                      "dm": [("2018-06-02 11:00", 180.0), ("2018-06-02 18:00", 2000.0)],
                      "un": [("2018-08-20 13:30", 250.0)]})
    day = profiles.light_load_day(curves, _index(), SUMMER)
    assert (day["date"], day["min_daytime_variant"], day["min_daytime_kw"]) == ("2018-06-02", "dm", 180.0)
    assert day["min_daytime_interval_start"] == "2018-06-02T11:00:00" and day["day_of_year"] == 152
    # the day's own peak, as ranks 2..K have: the highest value of any variant that day
    assert (day["peak_kw"], day["peak_variant"], day["peak_interval_start"]) == (2000.0, "dm", "2018-06-02T18:00:00")


def test_a_night_time_minimum_on_another_day_does_not_count():
    curves = _curves({"baseline": [("2018-07-10 03:00", 20.0), ("2018-07-10 09:45", 30.0),
                                   ("2018-07-10 16:00", 40.0)],  # outside 10:00-16:00 (16:00 starts after it)
                      "un": [("2018-08-01 15:45", 400.0)]})
    day = profiles.light_load_day(curves, _index(), SUMMER)
    assert (day["date"], day["min_daytime_kw"], day["min_daytime_variant"]) == ("2018-08-01", 400.0, "un")


def test_light_load_window_is_the_configured_one():
    assert config.LIGHT_LOAD_DAY_WINDOW_H == (10, 16) and config.LIGHT_LOAD_SEASONS == ("summer",)
    curves = _curves({"baseline": [("2018-07-10 08:00", 20.0), ("2018-08-01 12:00", 400.0)]})
    assert profiles.light_load_day(curves, _index(), SUMMER, window_h=(6, 10))["date"] == "2018-07-10"
    with pytest.raises(ValueError, match="LIGHT_LOAD_DAY_WINDOW_H"):
        profiles.light_load_day(curves, _index(), SUMMER, window_h=(16, 10))


# ------------------------------------------------------------------------------------------- phase 2 on the sample
def test_design_days_has_one_light_load_row_per_summer_feeder_after_its_peak_days(prepared_nc):
    ws = Workspace(prepared_nc)
    days = profiles.read_design_days(ws, "NC")
    light = days[days["kind"] == "light_load"]
    assert sorted(light["season"].unique()) == ["summer"]
    assert sorted(light["feeder"]) == sorted(days["feeder"].unique())
    assert (light["rank"] == 2).all()  # --days 1: rank K + 1
    peaks = days[days["kind"] == "peak"]
    assert (peaks["rank"] == 1).all() and peaks["min_daytime_kw"].isna().all()
    curves = pd.read_parquet(ws.feeder_curves("NC"))
    for _, row in light.iterrows():  # the baseline's daytime values of that day are at least the minimum
        day = curves[(curves["feeder"] == row["feeder"])
                     & (curves["interval_start"].dt.date.astype(str) == row["date"])]
        daytime = day[day["interval_start"].dt.hour.between(10, 15)]
        assert daytime["kw"].min() >= row["min_daytime_kw"] - 1e-6
        assert row["min_daytime_kw"] < row["peak_kw"]


# ------------------------------------------------------------------------------------------- phase 6 on the sample
def _case(share: float, key: int) -> dict:
    return {"shares": {"baseline": 1.0, "dm": 0.0, "un": 0.0}, "ev_perc": 0.1, "ev_lvl2_perc": 0.7,
            "ev_split": {"controlled": 0.5, "uncontrolled": 0.5}, "storage_perc_3ph": 0.0, "pv_perc_3ph": 0.0,
            "pv_perc_res": share, "storage_perc_res": 0.0, **doe.placement_seeds(config.DOE_SEED, 0),
            "disjoint_sets": True, "design_point": key, "placement_replicate": 0}


@pytest.fixture(scope="module")
def light_runs(prepared_nc, tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """The sample's large NC feeder in summer: one case with rooftop PV shares 0, 0.3 and 0.6."""
    data = copy_workspace(prepared_nc, tmp_path_factory.mktemp("light-load") / "data")
    mixes = doe.load_mixes(Workspace(data).mixes("lhs"))
    cases = {"0": mixes["0"], **{str(k): _case(s, k) for k, s in ((1, 0.0), (2, 0.3), (3, 0.6))}}
    return data, solve_cases(data, cases, LARGE)


def test_summary_is_the_peak_days_with_a_light_load_block_and_metrics(light_runs):
    _, runs = light_runs
    for summary in runs.values():
        block = summary["light_load"]
        assert block["status"] == "ok" and block["folder"] == "light_load" and block["date"] != summary["design_day"]
        assert set(schema.LIGHT_LOAD_METRICS) <= set(summary["metrics"])
        assert "worst_day" not in summary  # the peak day's run, unchanged


def test_light_load_day_shows_more_reverse_flow_and_voltage_rise_with_more_rooftop_pv(light_runs):
    _, runs = light_runs
    m = {k: runs[k]["metrics"] for k in runs}
    assert m["1"]["light_load_reverse_flow_intervals"] == 0  # no rooftop PV: no reverse flow
    assert m["3"]["light_load_reverse_flow_intervals"] > m["3"]["reverse_flow_intervals"]  # high PV: lighter day worse
    rev = [m[k]["light_load_reverse_flow_intervals"] for k in ("1", "2", "3")]
    assert rev == sorted(rev) and rev[2] > rev[0]
    assert m["3"]["light_load_head_min_kw"] < 0 < m["1"]["light_load_head_min_kw"]  # high PV: the head exports
    vmax = [m[k]["light_load_v_max_customer_pu"] for k in ("1", "2", "3")]
    assert vmax[0] < vmax[1] < vmax[2]


def test_overvoltage_appears_with_high_rooftop_pv_when_the_substation_bus_sits_high(light_runs, tmp_path):
    """At the sample's 1.03 pu substation bus no light-load run leaves Range A (the highest customer voltage
    stays below 1.05 pu: a stiff primary, about 1.4 % rise over the service transformer and drop at 60 %
    rooftop PV). With the bus at 1.045 pu (an LTC set at the top of its band at light load, 125.4 V on 120 V)
    the same feeder and day show overvoltage with high rooftop PV and none without: the counts follow the
    voltage rise, not the settings."""
    data, runs = light_runs
    ws = Workspace(copy_workspace(data, tmp_path / "data"))  # the instances name their feeder's files by relative path
    m = {k: runs[k]["metrics"] for k in runs}
    assert max(m[k]["light_load_v_max_customer_pu"] for k in m) < config.ANSI_RANGE_A[1]
    assert all(m[k]["light_load_ansi_a_over_customer_intervals"] == 0 for k in m)
    over = {}
    for key in ("1", "3"):
        folder = ws.instance_dir("NC", "summer", "lhs", LARGE, key) / "light_load"
        master = folder / "Master.dss"
        text = master.read_text()
        assert text.count(" pu=1.03 ") == 1, "the instance's source is no longer at the sample's 1.03 pu"
        master.write_text(text.replace(" pu=1.03 ", " pu=1.045 "))
        _, summary, _ = pf.simulate(folder)
        assert summary["status"] == "ok", summary["message"]
        over[key] = summary["metrics"]
    assert over["1"]["ansi_a_over_customer_intervals"] == 0  # no rooftop PV: the feeder only drops voltage
    assert over["3"]["ansi_a_over_customer_intervals"] > 0 and over["3"]["v_max_customer_pu"] > config.ANSI_RANGE_A[1]
    assert over["3"]["ansi_a_over_node_intervals"] > over["1"]["ansi_a_over_node_intervals"]


def test_light_load_folder_solves_in_plain_opendss_to_the_recorded_head_series(light_runs):
    """Compile the light-load day's Master.dss and solve the day in one OpenDSS command: the head power
    matches the series the run recorded for that day."""
    data, runs = light_runs
    folder = Workspace(data).light_load_instance_dir("NC", "summer", "lhs", LARGE, "3")
    recorded = pd.read_parquet(folder / "timeseries.parquet")
    assert str(recorded["interval_start"].iloc[0].date()) == runs["3"]["light_load"]["date"]
    dss.compile_master(folder / "Master.dss", strip=False)
    dss.run_commands("solve mode=daily stepsize=15m number=96")
    engine = dss.engine()
    engine.Monitors.Name("m2")
    m2 = engine.Monitors.AsMatrix()  # hour, sec, P1, Q1, P2, Q2, P3, Q3 (ppolar=no)
    np.testing.assert_allclose(m2[:, 2] + m2[:, 4] + m2[:, 6], recorded["P_3ph (kW)"], rtol=1e-6, atol=1e-6)
    assert runs["3"]["metrics"]["light_load_head_min_kw"] == pytest.approx(float(recorded["P_3ph (kW)"].min()))


@requires_shared
def test_upgrades_stay_on_the_peak_days_instance_and_do_not_refuse_the_light_load_day(light_runs, tmp_path):
    import shutil

    data = copy_workspace(light_runs[0], tmp_path / "data")
    shutil.copytree(SHARED_DATA / "upgrade_costs", Workspace(data).upgrade_costs_dir)  # as the sample builder does
    assert apply.main(["--data-dir", str(data), "--state", "NC", "--season", "summer", "--design", "lhs",
                       "--feeders", LARGE, "--cases", "3", "--run", "--upgrades", "--workers", "1", "-q"]) == 0
    folder = Workspace(data).instance_dir("NC", "summer", "lhs", LARGE, "3")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "ok" and "upgrades" in summary and summary["light_load"]["status"] == "ok"
    assert summary["metrics"] == light_runs[1]["3"]["metrics"]  # the peak day and the light day, as solved before
    light = json.loads((folder / "light_load" / "summary.json").read_text())
    assert "upgrades" not in light and not (folder / "light_load" / "upgrades.json").exists()


# ------------------------------------------------------------------------------------------- phase 7
combine = load_script("7_results_analysis/append_experiment_results.py")
rio = load_script("7_results_analysis/results_io.py")


def _phase7(data: Path) -> tuple[pd.DataFrame, dict[int, str]]:
    assert combine.main(["--data-dir", str(data), "-q"]) == 0
    ws = Workspace(data)
    stale = pd.read_csv(rio.results_path(ws, "stale_runs"), keep_default_na=False)
    return pd.read_parquet(rio.results_path(ws, "xlrm_results")), dict(zip(stale["case"].astype(int), stale["reason"]))


def test_light_load_metrics_flow_into_the_results_table(light_runs, tmp_path):
    data = copy_workspace(light_runs[0], tmp_path / "data")
    results, stale = _phase7(data)
    assert stale == {}
    row = results.set_index("case").loc[3]
    for name, (unit, _) in schema.LIGHT_LOAD_METRICS.items():
        assert row[name] == pytest.approx(light_runs[1]["3"]["metrics"][name]), name
    assert str(results["light_load_reverse_flow_intervals"].dtype) == "Int64"


@pytest.mark.parametrize("fault", ["missing folder", "truncated series", "no block"])
def test_phase7_refuses_a_run_whose_light_load_day_is_stale_or_missing(light_runs, tmp_path, fault):
    data = copy_workspace(light_runs[0], tmp_path / "data")
    folder = Workspace(data).instance_dir("NC", "summer", "lhs", LARGE, "3")
    if fault == "missing folder":
        import shutil

        shutil.rmtree(folder / "light_load")
    elif fault == "truncated series":
        path = folder / "light_load" / "timeseries.parquet"
        path.write_bytes(path.read_bytes()[:100])
    else:
        summary = json.loads((folder / "summary.json").read_text())
        del summary["light_load"]
        (folder / "summary.json").write_text(json.dumps(summary))
    results, stale = _phase7(data)
    assert set(stale) == {3} and "light-load day" in stale[3]
    assert 3 not in set(results["case"])


def test_phase7_refuses_a_run_whose_light_load_metric_is_missing(light_runs, tmp_path):
    data = copy_workspace(light_runs[0], tmp_path / "data")
    path = Workspace(data).instance_dir("NC", "summer", "lhs", LARGE, "3") / "summary.json"
    summary = json.loads(path.read_text())
    del summary["metrics"]["light_load_v_max_customer_pu"]
    path.write_text(json.dumps(summary))
    results, stale = _phase7(data)
    assert set(stale) == {3} and "light_load_v_max_customer_pu" in stale[3]
    assert 3 not in set(results["case"])


def _phase2_without_light_load_day(data: Path) -> None:
    from common.steps import steps_of
    from pipeline import run_step, sample_eulp_root

    maxday_script = "2_profiles_heat_pumps/find_max_day_curve.py"
    assert load_script(maxday_script).main(["--data-dir", str(data), "--state", "NC", "--eulp-root",
                                            str(sample_eulp_root(data)), "--light-load-seasons", "-q"]) == 0
    after = [s for s in steps_of("2", "3", "4", "5") if s.script not in (maxday_script, "2_profiles_heat_pumps/"
                                                                        "scale_feeder_curves.py")]
    for step in after:  # phase 3, the baseline daily profiles, phases 4 and 5 (and the plots)
        run_step(step, data, state="NC", eulp_root=sample_eulp_root(data))


def test_a_light_load_day_phase_2_no_longer_gives_is_stale_until_phase_6_drops_it(light_runs, tmp_path):
    """Phase 2 run again without a light-load season: the peak days' profiles are the same, so phase 6 skips the
    runs; phase 7 must not report the earlier light-load day's metrics, and phase 6 must remove them (else it
    would skip the runs and phase 7 refuse them for ever)."""
    data = copy_workspace(light_runs[0], tmp_path / "data")
    _phase2_without_light_load_day(data)
    assert combine.main(["--data-dir", str(data), "-q"]) == 2  # every run there stale: nothing to combine
    stale = pd.read_csv(rio.results_path(Workspace(data), "stale_runs"), keep_default_na=False)
    assert sorted(stale["case"]) == [1, 2, 3] and all("gives feeder" in reason for reason in stale["reason"])
    assert apply.main(["--data-dir", str(data), "--state", "NC", "--season", "summer", "--design", "lhs",
                       "--feeders", LARGE, "--cases", "1-3", "--run", "--workers", "1", "-q"]) == 0
    folder = Workspace(data).instance_dir("NC", "summer", "lhs", LARGE, "3")
    summary = json.loads((folder / "summary.json").read_text())
    assert "light_load" not in summary and not (folder / "light_load").exists()
    assert summary["metrics"] == {k: v for k, v in light_runs[1]["3"]["metrics"].items()
                                  if k not in schema.LIGHT_LOAD_METRICS}  # the peak day's run, as it was
    results, stale = _phase7(data)
    assert stale == {} and not any(c.startswith("light_load_") for c in results.columns)
