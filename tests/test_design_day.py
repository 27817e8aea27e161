"""Phase 2's design day from the baseline, demand-managed and uncontrolled feeder curves (issue #14 item 4).

Constructed curves check the rule (``common.profiles.variant_design_day``); the sample checks that
``find_max_day_curve.py`` sums each variant's curve as phase 6 will see it, that the demand-managed curve
is phase 4's own model, and that phases 3-6 read the chosen day.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import config, profiles
from common.paths import Workspace
from conftest import copy_workspace, load_script
from pipeline import sample_eulp_root

maxday = load_script("2_profiles_heat_pumps/find_max_day_curve.py")
dm = load_script("4_profiles_heat_pumps_dm/make_dm_profiles.py")

STATE = "NC"
WINTER = config.SEASON_MONTHS["winter"]


def _year_index() -> pd.DatetimeIndex:
    return pd.date_range("2018-01-01", periods=35040, freq="15min")


def _curves(peaks: dict[str, tuple[str, float]]) -> dict[str, np.ndarray]:
    """Flat 100 kW curves, each with one 15-min peak {variant: (interval start, kW)}."""
    index = _year_index()
    curves = {}
    for variant, (start, kw) in peaks.items():
        curve = np.full(len(index), 100.0)
        curve[index.get_loc(pd.Timestamp(start))] = kw
        curve[index.get_loc(pd.Timestamp("2018-04-10 12:00"))] = 5000.0  # outside the season: never the day
        curves[variant] = curve
    return curves


# ------------------------------------------------------------------------------------------- the rule
def test_variant_design_day_is_the_day_of_the_highest_variant_peak():
    curves = _curves({"baseline": ("2018-02-14 06:15", 2820.0), "dm": ("2018-12-29 06:00", 2900.0),
                      "un": ("2018-01-26 07:00", 2984.0)})
    day = profiles.variant_design_day(curves, _year_index(), WINTER, "highest_variant")
    assert (day["date"], day["peak_variant"], day["peak_kw"]) == ("2018-01-26", "un", 2984.0)
    assert day["day_of_year"] == 25 and day["peak_interval_start"] == "2018-01-26T07:00:00"
    assert (day["baseline_date"], day["dm_date"], day["un_date"]) == ("2018-02-14", "2018-12-29", "2018-01-26")
    assert (day["baseline_peak_kw"], day["dm_peak_kw"], day["un_peak_kw"]) == (2820.0, 2900.0, 2984.0)


def test_variant_design_day_baseline_rule_keeps_the_baseline_day():
    curves = _curves({"baseline": ("2018-02-14 06:15", 2820.0), "dm": ("2018-12-29 06:00", 2900.0),
                      "un": ("2018-01-26 07:00", 2984.0)})
    day = profiles.variant_design_day(curves, _year_index(), WINTER, "baseline")
    assert (day["date"], day["peak_variant"], day["peak_kw"], day["rule"]) == ("2018-02-14", "baseline", 2820.0,
                                                                                  "baseline")
    assert day["un_date"] == "2018-01-26"  # every variant's peak day is recorded under either rule


def test_variant_design_day_error_of_the_baseline_day_against_the_highest_peak():
    curves = _curves({"baseline": ("2018-02-14 06:15", 2820.0), "dm": ("2018-12-29 06:00", 2900.0),
                      "un": ("2018-01-26 07:00", 2984.0)})
    curves["un"][_year_index().get_loc(pd.Timestamp("2018-02-14 07:00"))] = 2850.0  # un on the baseline's day
    day = profiles.variant_design_day(curves, _year_index(), WINTER, "highest_variant")
    assert day["baseline_day_peak_kw"] == 2850.0
    assert day["baseline_day_error_pct"] == pytest.approx(100 * (2850.0 / 2984.0 - 1))


def test_variant_design_day_is_the_baseline_day_when_the_baseline_peaks_highest():
    curves = _curves({"baseline": ("2018-07-03 17:45", 1900.0), "dm": ("2018-07-19 16:00", 1800.0),
                      "un": ("2018-08-15 18:00", 1850.0)})
    day = profiles.variant_design_day(curves, _year_index(), config.SEASON_MONTHS["summer"], "highest_variant")
    assert (day["date"], day["peak_variant"]) == ("2018-07-03", "baseline")
    assert day["baseline_day_error_pct"] == 0.0


def test_variant_design_day_tie_goes_to_the_first_variant():
    curves = _curves({"baseline": ("2018-01-09 06:00", 900.0), "dm": ("2018-01-10 06:00", 950.0),
                      "un": ("2018-01-11 06:00", 950.0)})
    day = profiles.variant_design_day(curves, _year_index(), WINTER, "highest_variant")
    assert (day["date"], day["peak_variant"]) == ("2018-01-10", "dm")


def test_variant_design_day_refuses_an_unknown_rule():
    curves = _curves({"baseline": ("2018-01-09 06:00", 900.0)})
    with pytest.raises(ValueError, match="DESIGN_DAY_RULE"):
        profiles.variant_design_day(curves, _year_index(), WINTER, "coldest")


def test_season_days_are_the_whole_days_of_the_months():
    days = profiles.season_days(_year_index(), WINTER)
    assert len(days) == 31 + 28 + 31
    assert days[0] == 0 and days[-1] == 364 and 58 in days and 59 not in days  # 28 Feb in, 1 Mar out


# ------------------------------------------------------------------------------------------- the sample
@pytest.fixture
def nc(prepared_nc) -> Path:
    """Phases 1b and 2-5 done for NC on the sample (read-only)."""
    return prepared_nc


def _variant_curve(ws: Workspace, feeder: str, season: str, variant: str) -> np.ndarray:
    """The feeder's design-day curve [kW] from phase 2-5's daily profiles: scale x p_pu x building peak."""
    buildings = pd.read_csv(ws.feeder_buildings(STATE))
    buildings = buildings[buildings["feeder"] == feeder]
    daily = pd.read_parquet(ws.daily_profile_table(STATE, variant, season))
    daily = daily[daily["feeder"] == feeder].merge(buildings[["shape", "scale", "building_peak_kw"]], on="shape")
    daily["kw"] = daily["p_pu"] * daily["scale"] * daily["building_peak_kw"]
    return daily.groupby("step")["kw"].sum().sort_index().to_numpy()


def _peak_rows(days: pd.DataFrame) -> pd.DataFrame:
    """The peak design days of design_days.csv (without the light-load rows of LIGHT_LOAD_SEASONS)."""
    return days[days["kind"] == "peak"] if "kind" in days.columns else days


def test_design_days_record_each_variants_peak_and_the_rule(nc):
    days = _peak_rows(pd.read_csv(Workspace(nc).design_days(STATE)))
    for column in ("rule", "peak_variant", *[f"{v}_{what}" for v in config.VARIANTS for what in ("date", "peak_kw")],
                   "baseline_day_peak_kw", "baseline_day_error_pct"):
        assert column in days.columns, column
    assert (days["rule"] == config.DESIGN_DAY_RULE).all()
    highest = days[[f"{v}_peak_kw" for v in config.VARIANTS]].max(axis=1)
    np.testing.assert_allclose(days["peak_kw"], highest, rtol=1e-12)
    for _, row in days.iterrows():
        assert row["date"] == row[f"{row['peak_variant']}_date"]
    assert (days["baseline_day_error_pct"] <= 1e-9).all()


@pytest.mark.parametrize("season", config.SEASONS)
def test_chosen_day_peak_is_the_peak_of_the_daily_profiles_phase6_sums(nc, season):
    """The variant peak recorded for the design day is the peak of that variant's daily profiles (phases
    2, 4, 5) summed as phase 6 sums them: the dm curve searched is phase 4's model on that day."""
    ws = Workspace(nc)
    days = _peak_rows(pd.read_csv(ws.design_days(STATE)))
    for _, row in days[days["season"] == season].iterrows():
        for variant in config.VARIANTS:
            kw = _variant_curve(ws, row["feeder"], season, variant)
            if row[f"{variant}_date"] == row["date"]:
                np.testing.assert_allclose(kw.max(), row[f"{variant}_peak_kw"], rtol=1e-5)
            else:
                assert kw.max() <= row[f"{variant}_peak_kw"] * (1 + 1e-5)


def test_the_dm_curve_uses_phase4s_own_model(nc):
    assert maxday.dm_transform() is dm.transform


def test_phases_3_to_5_cut_their_profiles_on_the_chosen_day(nc):
    ws = Workspace(nc)
    days = _peak_rows(pd.read_csv(ws.design_days(STATE)))
    chosen = {(r["feeder"], r["season"]): r["date"] for _, r in days.iterrows()}
    for variant in config.VARIANTS:
        for season in config.SEASONS:
            table = pd.read_parquet(ws.daily_profile_table(STATE, variant, season))
            first = table[table["step"] == 0]
            for feeder, start in zip(first["feeder"], first["interval_start"]):
                assert str(pd.Timestamp(start).date()) == chosen[(feeder, season)], (variant, feeder)


def test_baseline_rule_gives_the_baseline_peak_day(nc, tmp_path):
    data = copy_workspace(nc, tmp_path / "data")
    assert maxday.main(["--data-dir", str(data), "--state", STATE, "--eulp-root", str(sample_eulp_root(data)),
                        "--design-day-rule", "baseline", "-q"]) == 0
    days = _peak_rows(pd.read_csv(Workspace(data).design_days(STATE)))
    assert (days["date"] == days["baseline_date"]).all() and (days["peak_variant"] == "baseline").all()
    assert (days["rule"] == "baseline").all()


def test_dm_model_depends_on_the_building_not_on_its_feeder_or_shape():
    """find_max_day_curve computes each building's load shift once for all its feeders and shapes."""
    rng = np.random.default_rng(7)
    total, hvac = 5 + rng.random(96) * 3, rng.random(96) * 2
    row = pd.Series({"feeder": "a--f1", "subregion": "s", "shape": "res_kw_1_pu", "class": "res",
                     "release": config.EULP_RELEASE[STATE]["res"], "bldg_id": 101, "building_type": "x",
                     "n_customers": 3, "customers_peak_kw": 20.0, "building_peak_kw": 8.0, "scale": 2.5})
    other = row.copy()
    other[["feeder", "subregion", "shape", "n_customers", "customers_peak_kw", "scale"]] = \
        ["b--f2", "t", "res_kw_2_pu", 1, 7.0, 0.875]
    for season in config.SEASONS:
        np.testing.assert_array_equal(dm.transform(total, hvac, season, row), dm.transform(total, hvac, season, other))


def test_a_truncated_heat_pump_file_is_one_line_naming_it(nc, tmp_path, capsys):
    """The variant curves read the heat-pump upgrade files: a broken one is refused before anything is written."""
    from faults import one_line, truncate

    data = copy_workspace(nc, tmp_path / "data")
    sample = sample_eulp_root(data)
    root = tmp_path / "eulp"
    buildings = pd.read_csv(Workspace(data).feeder_buildings(STATE))
    victim = None
    for (release, bldg_id, cls), _ in buildings.groupby(["release", "bldg_id", "class"]):
        for upgrade in sorted({0, 1, 8} & set(config.EULP_RELEASES[release]["upgrades"])):
            source = profiles.building_file(sample, release, STATE, int(bldg_id), upgrade)
            if not source.is_file():
                continue
            target = profiles.building_file(root, release, STATE, int(bldg_id), upgrade)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            if victim is None and cls == "res" and upgrade == 1:
                victim = target
    truncate(victim)
    before = Workspace(data).design_days(STATE).read_bytes()
    assert maxday.main(["--data-dir", str(data), "--state", STATE, "--eulp-root", str(root), "-q"]) == 2
    assert "download_parquets" in one_line(capsys, victim)
    assert Workspace(data).design_days(STATE).read_bytes() == before
