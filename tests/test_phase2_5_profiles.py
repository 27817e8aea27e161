"""Phases 2-5: design days, kVAr/kW ratios, baseline / demand-managed / uncontrolled daily profiles."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from common import config, eulp
from common.paths import Workspace
from common.waterfill import water_fill
from conftest import copy_workspace, load_script, make_workspace
from pipeline import run_phase1b, run_profiles, sample_eulp_root

scale = load_script("2_profiles_heat_pumps/scale_feeder_curves.py")
maxday = load_script("2_profiles_heat_pumps/find_max_day_curve.py")
controls = load_script("2_profiles_heat_pumps/get_scenario_csv_controls.py")
plots = load_script("2_profiles_heat_pumps/plot_parquet_differences.py")
ratios = load_script("3_kvar_kw_prep/rev_spec_kvar_kw_ratio.py")
dm = load_script("4_profiles_heat_pumps_dm/make_dm_profiles.py")
un = load_script("5_profiles_heat_pumps_un/make_un_profiles.py")

STATE = "NC"


@pytest.fixture(scope="module")
def nc(tmp_path_factory, sample_root) -> Path:
    data = make_workspace(tmp_path_factory.mktemp("p25") / "data", sample_root)
    run_phase1b(data, STATE)
    run_profiles(data, STATE, eulp_root=sample_eulp_root(data))
    return data


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------- design day
def _year_index() -> pd.DatetimeIndex:
    return pd.date_range("2018-01-01", periods=35040, freq="15min")


@pytest.mark.parametrize("month,day,season", [(7, 17, "summer"), (1, 9, "winter")])
def test_design_day_is_the_true_season_peak(month, day, season):
    index = _year_index()
    curve = np.full(len(index), 100.0)
    # decoys: a higher value outside the season, and late-month values below the true peak
    curve[index.get_loc(pd.Timestamp("2018-04-10 12:00"))] = 900.0
    for decoy in ("2018-08-31 18:00", "2018-12-31 07:00", "2018-02-28 07:00"):
        curve[index.get_loc(pd.Timestamp(decoy))] = 400.0
    curve[index.get_loc(pd.Timestamp(f"2018-{month:02d}-{day:02d} 16:00"))] = 500.0
    result = maxday.design_day(curve, index, config.SEASON_MONTHS[season])
    assert result["date"] == f"2018-{month:02d}-{day:02d}"
    assert result["peak_kw"] == 500.0
    assert result["day_of_year"] == pd.Timestamp(result["date"]).day_of_year - 1


def test_interval_ending_timestamps_belong_to_the_interval_start_day(tmp_path):
    ends = pd.date_range("2018-01-01 00:15", periods=35040, freq="15min")
    kwh = np.full(len(ends), 0.25)
    kwh[95] = 5.0  # the interval ENDING at 00:00 on 2 January started at 23:45 on 1 January
    path = tmp_path / "b.parquet"
    pd.DataFrame({"timestamp": ends, config.EULP_TOTAL_KWH: kwh}).to_parquet(path)
    frame = eulp.read_building_kw(path)
    assert frame.index[0] == pd.Timestamp("2018-01-01 00:00")
    day = maxday.design_day(frame[config.EULP_TOTAL_KWH].to_numpy(), frame.index, (1,))
    assert day["date"] == "2018-01-01" and day["peak_interval_start"] == "2018-01-01T23:45:00"
    assert day["peak_kw"] == pytest.approx(20.0)


def test_one_design_day_per_feeder_and_season(nc):
    days = pd.read_csv(Workspace(nc).design_days(STATE))
    days = days[days["kind"] == "peak"]  # the light-load rows (LIGHT_LOAD_SEASONS) are tests/test_light_load_day.py's
    assert not days.duplicated(["feeder", "season"]).any()
    for _, row in days.iterrows():
        assert pd.Timestamp(row["date"]).month in config.SEASON_MONTHS[row["season"]]


def test_winter_design_day_peaks_on_a_cold_morning(nc):
    days = pd.read_csv(Workspace(nc).design_days(STATE))
    winter = days[days["season"] == "winter"]
    hours = pd.to_datetime(winter["peak_interval_start"]).dt.hour
    assert hours.between(5, 9).all()


# ------------------------------------------------------------------------------------------- variants
def test_variants_cover_the_same_96_timestamps(nc):
    ws = Workspace(nc)
    buildings = pd.read_csv(ws.feeder_buildings(STATE))
    for season in config.SEASONS:
        for _, b in buildings.head(12).iterrows():
            stamps = []
            for variant in config.VARIANTS:
                frame = pd.read_csv(ws.daily_profile(STATE, variant, b["feeder"], season, b["shape"]))
                assert len(frame) == 96 and list(frame.columns) == ["p_pu", "q_pu", "interval_start"]
                stamps.append(tuple(frame["interval_start"]))
            assert stamps[0] == stamps[1] == stamps[2]


def test_daily_files_are_per_unit_of_baseline_annual_peak(nc, sample_root):
    ws = Workspace(nc)
    b = pd.read_csv(ws.feeder_buildings(STATE)).iloc[0]
    day = pd.read_csv(ws.design_days(STATE)).query("feeder == @b.feeder and season == 'summer'")["day_of_year"].iloc[0]
    path = sample_eulp_root(nc) / b["release"] / eulp.timeseries_relpath(b["release"], 0, STATE, int(b["bldg_id"]))
    kw = eulp.read_building_kw(path)[config.EULP_TOTAL_KWH].to_numpy()
    expected = kw[day * 96:(day + 1) * 96] / kw.max()
    got = pd.read_csv(ws.daily_profile(STATE, "baseline", b["feeder"], "summer", b["shape"]))["p_pu"].to_numpy()
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_kvar_is_kw_times_ratio_with_no_nan_or_inf(nc):
    ws = Workspace(nc)
    table = pd.read_parquet(ws.kvar_ratios(STATE))
    days = pd.read_csv(ws.design_days(STATE))
    buildings = pd.read_csv(ws.feeder_buildings(STATE))
    for variant in config.VARIANTS:
        daily = pd.read_parquet(ws.daily_profile_table(STATE, variant, "winter"))
        assert np.isfinite(daily[["p_pu", "q_pu"]].to_numpy()).all()
        sample = daily.merge(buildings[["feeder", "shape", "subregion"]], on=["feeder", "shape"])
        sample = sample.merge(days[days["season"] == "winter"][["feeder", "day_of_year"]], on="feeder")
        sample = sample.merge(table, on=["subregion", "shape", "day_of_year", "step"])
        assert len(sample) == len(daily)
        np.testing.assert_allclose(sample["q_pu"], sample["p_pu"] * sample["ratio"], atol=2e-6)


def test_winter_demand_managed_peak_below_uncontrolled_with_energy_kept(nc):
    ws = Workspace(nc)
    daily = {v: pd.read_parquet(ws.daily_profile_table(STATE, v, "winter")) for v in ("dm", "un")}
    residential = pd.read_csv(ws.feeder_buildings(STATE)).query("`class` == 'res'")[["feeder", "shape"]]
    checked = 0
    for (feeder, shape), group in daily["un"].merge(residential).groupby(["feeder", "shape"]):
        un_p = group["p_pu"].to_numpy()
        dm_p = daily["dm"].query("feeder == @feeder and shape == @shape")["p_pu"].to_numpy()
        assert dm_p.sum() == pytest.approx(un_p.sum(), rel=0.02)
        assert dm_p.max() <= un_p.max() + 1e-9
        checked += 1
    assert checked >= 10
    summary = pd.read_csv(ws.variant_summary(STATE)).pivot_table(
        index=["feeder", "season"], columns="variant", values="peak_kw")
    assert (summary.loc[(slice(None), "winter"), "dm"] < summary.loc[(slice(None), "winter"), "un"]).all()


def test_uncontrolled_heat_pumps_raise_the_winter_feeder_peak(nc):
    summary = pd.read_csv(Workspace(nc).variant_summary(STATE))
    winter = summary[summary["season"] == "winter"].pivot_table(index="feeder", columns="variant", values="peak_kw")
    assert (winter["un"] > winter["baseline"]).all()


def test_load_shift_sheds_the_window_and_keeps_energy():
    total = np.full(96, 5.0)
    total[24:36] = 8.0   # the morning peak window 06:00-09:00
    total[16:24] = 3.0   # a valley before it
    total[36:44] = 3.0   # and after it
    hvac = np.full(96, 3.0)
    settings = {"window_hours": ((6, 9),), "shed_fraction": 0.5, "pre_hours": 2.0, "rebound_hours": 2.0,
                "pre_share": 0.6, "energy_penalty": 0.0}
    out = dm.load_shift(total, hvac, settings)
    np.testing.assert_allclose(out[24:36], 6.5)
    assert out.sum() == pytest.approx(total.sum())
    assert out.max() < total.max()
    outside = np.r_[0:24, 36:96]
    assert out[outside].max() <= 5.0 + 1e-9  # the energy fits under the ceiling: no new peak outside
    shed_kwh = 12 * 1.5 * 0.25
    assert (out[16:24] - 3.0).sum() * 0.25 == pytest.approx(0.6 * shed_kwh)
    assert (out[36:44] - 3.0).sum() * 0.25 == pytest.approx(0.4 * shed_kwh)


def test_load_shift_that_cannot_fit_under_the_ceiling_spreads_over_the_day():
    total = np.full(96, 2.0)
    total[24:36] = 10.0  # the whole load sits in the window
    hvac = np.where(np.arange(96) // 4 < 9, 0.0, 0.0)
    hvac[24:36] = 8.0
    settings = {"window_hours": ((6, 9),), "shed_fraction": 0.5, "pre_hours": 1.0, "rebound_hours": 1.0,
                "pre_share": 0.5, "energy_penalty": 0.0}
    out = dm.load_shift(total, hvac, settings)
    assert out.sum() == pytest.approx(total.sum())
    assert out.max() < total.max()


# ------------------------------------------------------------------------------------------- staggered DM
def _cold_morning_building(i: int) -> tuple[np.ndarray, np.ndarray]:
    """A heat-pump home on a cold day: HVAC peaking at 06:30, a little different per building."""
    h = np.arange(96) / 4
    hvac = 2.0 + 3.0 * np.exp(-0.5 * ((h - 6.5 - 0.05 * (i % 5)) / 1.5) ** 2)
    return 1.0 + 0.1 * (i % 3) + hvac, hvac


STAGGER = {"spread_h": 2.0, "step_h": 0.25, "seed": 7}


def test_window_offsets_are_seeded_per_building_on_the_grid():
    keys = [dm.building_key("res", "2024/resstock_tmy3_release_2", i) for i in range(400)]
    offsets = np.array([dm.window_offset_h(k, STAGGER) for k in keys])
    assert np.abs(offsets).max() <= 2.0 and np.allclose(offsets * 4, np.round(offsets * 4))
    assert len(np.unique(offsets)) == 17  # every 15-min step of -2..+2 h is used
    assert [dm.window_offset_h(k, STAGGER) for k in reversed(keys)] == list(offsets[::-1])  # order-free
    other_seed = np.array([dm.window_offset_h(k, {**STAGGER, "seed": 8}) for k in keys])
    assert (other_seed != offsets).mean() > 0.8  # another seed, other offsets
    assert dm.window_offset_h(keys[0], {**STAGGER, "spread_h": 0.0}) == 0.0


@pytest.mark.parametrize("bad", [{"step_h": 0.1}, {"spread_h": 0.3}, {"spread_h": -1.0}, {"spread": 1.0}])
def test_stagger_setting_off_the_grid_is_refused(bad):
    from common import cli

    with pytest.raises(cli.UserError, match="LOAD_SHIFT_STAGGER"):
        dm.stagger_steps({**STAGGER, **bad})


def test_staggered_load_shift_conserves_each_buildings_energy():
    settings = config.LOAD_SHIFT["winter"]
    for i in range(30):
        total, hvac = _cold_morning_building(i)
        offset = dm.window_offset_h(dm.building_key("res", "r", i), STAGGER)
        out = dm.load_shift(total, hvac, dm.shifted(settings, offset))
        assert out.sum() == pytest.approx(total.sum(), rel=1e-12)
        assert out.max() <= total.max() + 1e-9


def test_staggering_lowers_the_synchronised_feeder_peak():
    settings = config.LOAD_SHIFT["winter"]
    days = [_cold_morning_building(i) for i in range(60)]
    uncontrolled = sum(total for total, _ in days)
    one_clock = sum(dm.load_shift(total, hvac, settings) for total, hvac in days)
    staggered = sum(dm.load_shift(total, hvac, dm.shifted(settings, dm.window_offset_h(dm.building_key("res", "r", i),
                                                                                            STAGGER)))
                    for i, (total, hvac) in enumerate(days))
    assert staggered.sum() == pytest.approx(one_clock.sum(), rel=1e-12)
    # one clock: the pre-heat of every building lands in the same hours before the window
    assert 12 <= int(np.argmax(one_clock)) < 24  # 03:00-06:00, before the 06:00 window
    assert staggered.max() < 0.9 * one_clock.max() < 0.95 * uncontrolled.max()


def test_offsets_table_lists_every_buildings_offset_and_windows(nc):
    ws = Workspace(nc)
    table = pd.read_csv(dm.offsets_path(ws, STATE))
    buildings = pd.read_csv(ws.feeder_buildings(STATE)).drop_duplicates(["class", "release", "bldg_id"])
    assert len(table) == len(buildings)
    for _, row in table.iterrows():
        offset = dm.window_offset_h(dm.building_key(row["class"], row["release"], row["bldg_id"]))
        assert row["offset_h"] == offset
        start, end = config.LOAD_SHIFT["summer"]["window_hours"][0]
        assert row["windows_summer"] == f"{dm._clock(start + offset)}-{dm._clock(end + offset)}"
    assert table["offset_h"].nunique() > 5
    assert profiles_check(ws, dm.offsets_path(ws, STATE))


def profiles_check(ws: Workspace, path: Path) -> bool:
    from common import profiles

    return bool(profiles.check_current(ws, path, profiles.PRODUCERS["dm"]))


def test_staggered_dm_keeps_every_buildings_energy_on_the_sample(nc):
    ws = Workspace(nc)
    for season in config.SEASONS:
        tables = {v: pd.read_parquet(ws.daily_profile_table(STATE, v, season)) for v in ("dm", "un")}
        energy = {v: table.groupby(["feeder", "shape"])["p_pu"].sum() for v, table in tables.items()}
        assert len(energy["dm"]) > 50
        np.testing.assert_allclose(energy["dm"].to_numpy(), energy["un"].reindex(energy["dm"].index).to_numpy(),
                                   rtol=1e-9)


def _winter_peaks(data: Path) -> pd.DataFrame:
    summary = pd.read_csv(Workspace(data).variant_summary(STATE))
    return summary[summary["season"] == "winter"].pivot_table(index="feeder", columns="variant", values="peak_kw")


def test_staggered_dm_winter_peak_is_clearly_below_uncontrolled_and_one_clock_on_the_large_feeder(
        nc, tmp_path, monkeypatch):
    large = "uhs1_1247--udt5219"
    staggered = _winter_peaks(nc)
    assert staggered["baseline"].idxmax() == large
    # the same phase 4 with one shared clock (spread 0, the earlier behaviour), on a copy of the workspace
    one_clock = copy_workspace(nc, tmp_path / "one_clock")
    monkeypatch.setitem(config.LOAD_SHIFT_STAGGER, "spread_h", 0.0)
    assert dm.main(["--data-dir", str(one_clock), "--state", STATE, "-q",
                    "--eulp-root", str(sample_eulp_root(one_clock))]) == 0
    assert set(pd.read_csv(dm.offsets_path(Workspace(one_clock), STATE))["offset_h"]) == {0.0}
    assert plots.main(["--data-dir", str(one_clock), "--state", STATE, "-q"]) == 0
    synchronised = _winter_peaks(one_clock)
    assert synchronised.at[large, "un"] == staggered.at[large, "un"]
    # sample v5 (ResStock TMY3): one clock 18,157 kW, staggered 15,717 kW, uncontrolled 18,637 kW
    assert staggered.at[large, "dm"] < 0.9 * synchronised.at[large, "dm"]
    assert staggered.at[large, "dm"] < 0.9 * staggered.at[large, "un"]
    assert (staggered["dm"] < 0.9 * staggered["un"]).all()


def test_water_fill_fills_the_lowest_intervals_first():
    added = water_fill(np.array([5.0, 1.0, 3.0, 1.0]), energy_kwh=1.0, caps=np.inf, dt_h=0.25)
    np.testing.assert_allclose(added, [0.0, 2.0, 0.0, 2.0])
    capped = water_fill(np.array([5.0, 1.0, 3.0, 1.0]), energy_kwh=1.0, caps=1.5, dt_h=0.25)
    np.testing.assert_allclose(capped, [0.0, 1.5, 1.0, 1.5], atol=1e-9)


# ------------------------------------------------------------------------------------------- phase 3
def test_day_ratios_use_power_factor_where_kw_is_near_zero():
    kw = np.ones(96 * 3)
    kvar = np.full(96 * 3, 0.25)
    kw[96 + 5] = 0.0
    ratio, near_zero = ratios.day_ratios(kw, kvar, np.array([1, 2]), fallback=0.2)
    assert ratio.shape == (2, 96)
    assert ratio[0, 5] == 0.2 and near_zero[0, 5]
    assert ratio[0, 6] == 0.25 and ratio[1, 5] == 0.25


def test_profile_without_load_data_uses_class_power_factor(tmp_path):
    row = pd.Series({"subregion": "x", "shape": "com_kw_1_pu", "class": "com", "subregion_dir": str(tmp_path),
                     "day_of_year": np.array([3])})
    frame = ratios.profile_ratios(row)
    np.testing.assert_allclose(frame["ratio"], math.tan(math.acos(config.DEFAULT_POWER_FACTOR["com"])))
    assert set(frame["source"]) == {"power_factor_default"}


def test_phase3_reads_each_load_data_file_once(nc, monkeypatch):
    calls = []
    real = pq.read_table

    def counting(path, *args, **kwargs):
        calls.append((str(path), tuple(kwargs.get("columns") or ())))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ratios.pq, "read_table", counting)
    assert ratios.main(["--data-dir", str(nc), "--state", STATE, "-q"]) == 0
    paths = [c[0] for c in calls]
    assert len(paths) == len(set(paths)) > 0
    assert all(c[1] == (ratios.KW, ratios.KVAR) for c in calls)


# ------------------------------------------------------------------------------------------- outputs
def test_scenario_table_points_every_variant_at_a_file(nc):
    ws = Workspace(nc)
    table = pd.read_csv(ws.scenario_controls(STATE, "winter"))
    assert set(table["variant"]) == set(config.VARIANTS)
    assert all((nc / f).is_file() for f in table["file"])


def test_storage_settings_are_not_copied_to_a_csv(nc):
    # phase 6 reads common.config.STORAGE: one source, no copy to drift from it
    assert not Workspace(nc).storage_controls.exists()


def test_plots_exist_and_show_each_feeder(nc):
    folder = Workspace(nc).profile_plots_dir(STATE)
    feeders = pd.read_csv(Workspace(nc).feeder_buildings(STATE))["feeder"].unique()
    for feeder in feeders:
        assert (folder / f"{feeder}_design_day.png").stat().st_size > 20_000
    assert (folder / "building_peak_change.png").is_file() and (folder / "variant_upgrades.png").is_file()


def test_second_run_is_byte_identical(nc):
    ws = Workspace(nc)
    folders = [ws.phase("2"), ws.phase("3"), ws.phase("4"), ws.phase("5")]
    before = {str(f): _digest(f) for f in folders}
    run_profiles(nc, STATE, eulp_root=sample_eulp_root(nc))
    assert {str(f): _digest(f) for f in folders} == before


def test_feeder_with_an_unmatched_shape_is_left_out():
    customers = pd.DataFrame({"state": "NC", "feeder": ["a", "a", "b"], "subregion": "s", "customer": ["1", "2", "3"],
                              "shape": ["res_kw_1_pu", "res_kw_2_pu", "res_kw_1_pu"], "class": "res",
                              "peak_kw": [5.0, 6.0, 7.0]})
    chosen = pd.DataFrame({"subregion": ["s"], "shape": ["res_kw_1_pu"], "release": ["r"], "bldg_id": [9],
                           "building_type": ["Single-Family Detached"]})
    table, status = scale.feeder_building_table(customers, chosen)
    assert list(table["feeder"]) == ["b"]
    assert status.set_index("feeder").at["a", "reason"] == "no EULP building for shape(s) res_kw_2_pu"


def test_missing_input_names_the_producing_script(tmp_path, capsys):
    assert maxday.main(["--data-dir", str(tmp_path), "--state", "TX"]) == 2
    assert "scale_feeder_curves.py" in capsys.readouterr().err
