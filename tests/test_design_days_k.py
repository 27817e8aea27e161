"""``--days K``: the K highest distinct peak days, profiles on each, each run solved on each and its worst day
reported (issue #14 item 4).

Constructed curves check the ranking (``common.profiles.ranked_design_days``) and constructed day summaries
the worst-day rule (``worst_day.run_summary``); the sample checks that ``--days 1`` leaves phase 2-5 outputs
as they were and that a run of two days reports the worse of its two single-day solves.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import config, profiles
from common.paths import Workspace
from common.steps import STEPS, plan
from conftest import copy_workspace, load_script
from pipeline import run_step, sample_eulp_root

worst_day = load_script("6_instantiate_circuits/worst_day.py")
daily_power_flow = load_script("6_instantiate_circuits/daily_power_flow.py")
phase6 = load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")

STATE = "NC"
WINTER = config.SEASON_MONTHS["winter"]
FEEDER = "udt1021"


def _index() -> pd.DatetimeIndex:
    return pd.date_range("2018-01-01", periods=35040, freq="15min")


def _curves(peaks: dict[str, list[tuple[str, float]]]) -> dict[str, np.ndarray]:
    """Flat 100 kW curves with 15-min peaks {variant: [(interval start, kW), ...]}."""
    index = _index()
    curves = {}
    for variant, points in peaks.items():
        curve = np.full(len(index), 100.0)
        for start, kw in points:
            curve[index.get_loc(pd.Timestamp(start))] = kw
        curve[index.get_loc(pd.Timestamp("2018-04-10 12:00"))] = 9000.0  # outside the season: never a day
        curves[variant] = curve
    return curves


# ------------------------------------------------------------------------------------------- the ranking
def test_ranked_design_days_are_the_k_highest_distinct_days():
    curves = _curves({"baseline": [("2018-02-14 06:15", 2820.0)],
                      "dm": [("2018-12-29 06:00", 2900.0), ("2018-01-26 18:00", 2950.0)],
                      "un": [("2018-01-26 07:00", 2984.0), ("2018-01-27 07:00", 2700.0)]})
    days = profiles.ranked_design_days(curves, _index(), WINTER, 4, "highest_variant")
    # 2018-01-26 peaks in two variants (un 2984, dm 2950): one day, ranked by its highest peak
    assert [(d["rank"], d["date"], d["peak_variant"], d["peak_kw"]) for d in days] == [
        (1, "2018-01-26", "un", 2984.0), (2, "2018-12-29", "dm", 2900.0), (3, "2018-02-14", "baseline", 2820.0),
        (4, "2018-01-27", "un", 2700.0)]
    assert [d["day_of_year"] for d in days] == [25, 362, 44, 26]
    assert days[2]["peak_interval_start"] == "2018-02-14T06:15:00"
    # rank 1 is the design day of the rule, every column of it; the feeder's columns repeat on every rank
    first = profiles.variant_design_day(curves, _index(), WINTER, "highest_variant")
    assert {k: v for k, v in days[0].items() if k != "rank"} == first
    assert all(d["un_date"] == "2018-01-26" and d["baseline_day_error_pct"] == first["baseline_day_error_pct"]
               for d in days)


def test_ranked_design_days_baseline_rule_ranks_the_baseline_curve():
    curves = _curves({"baseline": [("2018-02-14 06:15", 2820.0), ("2018-02-01 08:00", 2500.0)],
                      "un": [("2018-01-26 07:00", 2984.0)], "dm": [("2018-12-29 06:00", 2900.0)]})
    days = profiles.ranked_design_days(curves, _index(), WINTER, 2, "baseline")
    assert [(d["date"], d["peak_variant"], d["peak_kw"]) for d in days] == [
        ("2018-02-14", "baseline", 2820.0), ("2018-02-01", "baseline", 2500.0)]


def test_ranked_design_days_one_day_is_the_design_day():
    curves = _curves({"baseline": [("2018-02-14 06:15", 2820.0)], "un": [("2018-01-26 07:00", 2984.0)]})
    [day] = profiles.ranked_design_days(curves, _index(), WINTER, 1)
    assert day == {**profiles.variant_design_day(curves, _index(), WINTER), "rank": 1}


def test_ranked_design_days_refuses_more_days_than_the_season_has():
    curves = _curves({"baseline": [("2018-02-14 06:15", 2820.0)]})
    with pytest.raises(ValueError, match="only 90 whole days"):
        profiles.ranked_design_days(curves, _index(), WINTER, 91)


# ------------------------------------------------------------------------------------------- the worst day
def _day(rank: int, date: str, peak_kw: float, status: str = "ok") -> dict:
    return {"state": STATE, "season": "winter", "design": "lhs", "feeder": "f", "case": "3", "design_day": date,
            "inputs_digest": f"in{rank}", "shared_digest": f"sh{rank}", "status": status,
            "message": "" if status == "ok" else "OpenDSS error",
            "metrics": {"peak_kw": peak_kw, "energy_kwh": 10.0 * rank} if status == "ok" else {}}


def test_run_summary_is_the_worst_days_with_every_days_peak():
    summary = worst_day.run_summary({1: _day(1, "2018-01-10", 100.0), 2: _day(2, "2018-01-31", 120.0),
                                     3: _day(3, "2018-01-09", 90.0)})
    assert summary["metrics"] == {"peak_kw": 120.0, "energy_kwh": 20.0}
    assert (summary["worst_day"], summary["design_day"], summary["days"]["worst_rank"]) == ("2018-01-31", "2018-01-31", 2)
    assert [d["peak_kw"] for d in summary["days"]["per_day"]] == [100.0, 120.0, 90.0]
    assert summary["days"]["worst_day_metric"] == config.WORST_DAY_METRIC
    # lineage: the worst day's instance, the design day's shared inputs (the feeder's digest phase 7 checks)
    assert (summary["inputs_digest"], summary["shared_digest"]) == ("in2", "sh1")


def test_run_summary_tie_goes_to_the_lower_rank():
    summary = worst_day.run_summary({1: _day(1, "2018-01-10", 100.0), 2: _day(2, "2018-01-31", 100.0)})
    assert summary["days"]["worst_rank"] == 1


def test_run_summary_with_a_failed_day_is_a_failed_run():
    summary = worst_day.run_summary({1: _day(1, "2018-01-10", 100.0), 2: _day(2, "2018-01-31", 0.0, "failed")})
    assert summary["status"] == "failed" and summary["metrics"] == {} and summary["worst_day"] is None
    assert summary["message"].startswith("day 2 of 2 (2018-01-31) failed: OpenDSS error")


def test_days_reaches_phase_2_and_phase_6_only():
    takes = sorted(step.script for step in STEPS if step.days)
    assert takes == ["2_profiles_heat_pumps/find_max_day_curve.py",
                     "6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py"]
    commands = plan("data", states=["NC"], seasons=["winter"], designs=["lhs"], days=3)
    with_days = sorted({c.step.script for c in commands if "--days" in c.argv})
    assert with_days == takes and all(c.argv[c.argv.index("--days") + 1] == "3"
                                      for c in commands if "--days" in c.argv)


# ------------------------------------------------------------------------------------------- the sample
def _profiles(data: Path, days: int) -> None:
    from common.steps import STEPS, steps_of

    for step in steps_of("2", "3", "4", "5"):
        run_step(step, data, state=STATE, eulp_root=sample_eulp_root(data), days=days)


@pytest.fixture(scope="module")
def two_days(prepared_nc, tmp_path_factory) -> Path:
    """The prepared NC workspace with phases 2-5 run again with --days 2."""
    data = copy_workspace(prepared_nc, tmp_path_factory.mktemp("two-days") / "data")
    _profiles(data, 2)
    return data


def _files(root: Path) -> dict[str, bytes]:
    """The daily profile files and tables of a variant's folder (phase 2's also holds its other outputs)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and str(p.relative_to(root)).startswith("daily")}


def test_one_day_outputs_are_the_one_day_study(prepared_nc, two_days):
    """--days 1 (the default) writes phase 2's design_days.csv whose peak rows (kind peak, rank 1) equal byte for
    byte the two-day file's rank-1 rows; the light-load row (LIGHT_LOAD_SEASONS) follows the peak days (rank 2,
    then 3) and is the same day either way; every rank-1 profile of phases 2-5 is the same file either way."""
    ws1, ws2 = Workspace(prepared_nc), Workspace(two_days)
    one, two = pd.read_csv(ws1.design_days(STATE)), pd.read_csv(ws2.design_days(STATE))
    assert sorted(one["rank"].unique()) == [1, 2] and sorted(two["rank"].unique()) == [1, 2, 3]
    peaks_two = two[two["kind"] == "peak"]
    assert peaks_two[peaks_two["rank"] == 1].to_csv(index=False) == one[one["kind"] == "peak"].to_csv(index=False)
    light_one, light_two = one[one["kind"] == "light_load"], two[two["kind"] == "light_load"]
    assert (light_one["rank"] == 2).all() and (light_two["rank"] == 3).all()
    assert light_one.drop(columns="rank").to_csv(index=False) == light_two.drop(columns="rank").to_csv(index=False)
    assert ws1.feeder_curves(STATE).read_bytes() == ws2.feeder_curves(STATE).read_bytes()
    for variant in config.VARIANTS:
        before, after = _files(ws1.variant_dir(STATE, variant)), _files(ws2.variant_dir(STATE, variant))
        ranks_1 = {k: v for k, v in after.items() if "_day" not in k}
        assert ranks_1 == {k: v for k, v in before.items() if "_day" not in k}, variant
        assert any("winter_day2" in k for k in after) and any(k.endswith("daily_profiles_winter_day2.parquet")
                                                             for k in after)


def test_without_a_light_load_season_phase_2_writes_the_one_day_file(prepared_nc, tmp_path):
    """--light-load-seasons with no season (a winter-only study likewise): design_days.csv without rank, kind or
    min_daytime columns, the peak rows of the default file; the winter rows and every winter profile of phases
    2-5 are the same with or without the summer light-load day, so the winter runs are built from the same files."""
    data = copy_workspace(prepared_nc, tmp_path / "data")
    from common.steps import steps_of

    maxday = load_script("2_profiles_heat_pumps/find_max_day_curve.py")
    assert maxday.main(["--data-dir", str(data), "--state", STATE, "--eulp-root", str(sample_eulp_root(data)),
                        "--light-load-seasons", "-q"]) == 0
    after = [s for s in STEPS if s.phase in ("3", "4", "5")  # every profile step after the design days, in run
             or s.script == "2_profiles_heat_pumps/get_scenario_csv_controls.py"]  # order (the baseline's included)
    assert len(after) == len(steps_of("3", "4", "5")) + 1
    for step in after:
        run_step(step, data, state=STATE, eulp_root=sample_eulp_root(data))
    ws0, ws1 = Workspace(data), Workspace(prepared_nc)
    off, on = pd.read_csv(ws0.design_days(STATE)), pd.read_csv(ws1.design_days(STATE))
    assert not {"rank", "kind", "min_daytime_kw"} & set(off.columns)
    peaks = on[on["kind"] == "peak"].drop(columns=["rank", "kind", "min_daytime_kw", "min_daytime_interval_start",
                                                   "min_daytime_variant"])
    assert off.to_csv(index=False) == peaks.to_csv(index=False)
    for variant in config.VARIANTS:
        winter = lambda files: {k: v for k, v in files.items() if "winter" in k}  # noqa: E731
        assert winter(_files(ws0.variant_dir(STATE, variant))) == winter(_files(ws1.variant_dir(STATE, variant)))
        assert ws0.daily_profile_table(STATE, variant, "summer").read_bytes() == \
            ws1.daily_profile_table(STATE, variant, "summer").read_bytes()  # the summer peak day's too


def test_rank_two_profiles_are_cut_on_the_second_day(two_days):
    ws = Workspace(two_days)
    days = profiles.read_design_days(ws, STATE)
    second = days[(days["rank"] == 2) & (days["season"] == "winter")].set_index("feeder")["date"]
    table = pd.read_parquet(ws.daily_profile_table(STATE, "un", "winter", 2))
    first = table[table["step"] == 0]
    for feeder, start in zip(first["feeder"], first["interval_start"]):
        assert str(pd.Timestamp(start).date()) == second[feeder]


def _phase6(data: Path, *extra: str) -> int:
    return phase6.main(["--data-dir", str(data), "--state", STATE, "--season", "winter", "--design", "lhs",
                        "--feeders", FEEDER, "--cases", "0-1", "--run", "--workers", "1", "-q", *extra])


def test_two_day_run_reports_the_worse_of_its_single_day_solves(two_days, tmp_path):
    data = copy_workspace(two_days, tmp_path / "data")
    ws = Workspace(data)
    assert _phase6(data) == 0  # the one-day study: each run on the design day
    folder = {c: ws.instance_dir(STATE, "winter", "lhs", f"uhs0_1247--{FEEDER}", c) for c in ("0", "1")}
    day1 = {c: json.loads((folder[c] / "summary.json").read_text()) for c in folder}
    assert _phase6(data, "--days", "2") == 0
    for case, run_dir in folder.items():
        run = json.loads((run_dir / "summary.json").read_text())
        _, day2, _ = daily_power_flow.simulate(run_dir / "day2")  # the second day solved on its own
        assert day2["status"] == "ok" and day1[case]["status"] == "ok"
        singles = {1: day1[case], 2: day2}
        worse = max(singles, key=lambda r: (singles[r]["metrics"]["peak_kw"], -r))
        assert run["metrics"] == singles[worse]["metrics"], case
        assert run["worst_day"] == singles[worse]["design_day"] and run["days"]["worst_rank"] == worse
        assert [d["peak_kw"] for d in run["days"]["per_day"]] == [singles[1]["metrics"]["peak_kw"],
                                                                 singles[2]["metrics"]["peak_kw"]]
        assert run["days"]["per_day"][1]["date"] != run["days"]["per_day"][0]["date"]
        # the run folder compiles to its worst day; each day folder is a plain OpenDSS instance
        assert (run_dir / "Master.dss").read_text().splitlines()[-1] == f"Redirect day{worse}/Master.dss"
        assert not (run_dir / "Loads.dss").exists() and (run_dir / "day2" / "Loads.dss").is_file()
        table = pd.read_parquet(run_dir / "timeseries.parquet")
        pd.testing.assert_frame_equal(table, pd.read_parquet(run_dir / f"day{worse}" / "timeseries.parquet"))


def test_more_days_than_phase_2_made_is_one_line(two_days, tmp_path, capsys):
    data = copy_workspace(two_days, tmp_path / "data")
    assert _phase6(data, "--days", "3") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--days 3" in err[0] and "design_days.csv" in err[0] and "find_max_day_curve.py" in err[0]


def _stale_reasons(data: Path) -> dict[int, str]:
    combine = load_script("7_results_analysis/append_experiment_results.py")
    combine.main(["--data-dir", str(data), "-q"])
    stale = pd.read_csv(Workspace(data).result("stale_runs"), keep_default_na=False)
    return {int(c): r for c, r in zip(stale["case"], stale["reason"])}


@pytest.fixture(scope="module")
def two_day_runs(two_days, tmp_path_factory) -> Path:
    """Cases 0 and 1 of the small NC feeder solved on both winter design days (phase 6 --days 2)."""
    data = copy_workspace(two_days, tmp_path_factory.mktemp("two-day-runs") / "data")
    assert _phase6(data, "--days", "2") == 0
    return data


def test_phase7_merges_current_two_day_runs(two_day_runs, tmp_path):
    data = copy_workspace(two_day_runs, tmp_path / "data")
    assert _stale_reasons(data) == {}


def test_phase7_refuses_a_two_day_run_whose_second_day_was_solved_from_other_inputs(two_day_runs, tmp_path):
    # the worst day alone is what the run folder shows: a day that is not the worst must be checked in its folder
    data = copy_workspace(two_day_runs, tmp_path / "data")
    run_dir = Workspace(data).instance_dir(STATE, "winter", "lhs", f"uhs0_1247--{FEEDER}", "1")
    run = json.loads((run_dir / "summary.json").read_text())
    other = next(d["rank"] for d in run["days"]["per_day"] if d["rank"] != run["days"]["worst_rank"])
    day = json.loads((run_dir / f"day{other}" / "summary.json").read_text())
    day["inputs_digest"] = "0" * 64
    (run_dir / f"day{other}" / "summary.json").write_text(json.dumps(day))
    reasons = _stale_reasons(data)
    assert set(reasons) == {1} and f"design day {other}" in reasons[1] and "other inputs" in reasons[1]


def test_phase7_refuses_two_day_runs_when_a_days_shared_inputs_changed(two_day_runs, tmp_path):
    data = copy_workspace(two_day_runs, tmp_path / "data")
    digest = Workspace(data).shared_digest(STATE, "winter", f"uhs0_1247--{FEEDER}", 2)
    digest.write_text("0" * 64 + "\n")  # what a batch writes after phase 2-5 changed the second day's profiles
    reasons = _stale_reasons(data)
    assert set(reasons) == {0, 1} and all("design day 2" in r and "shared inputs" in r for r in reasons.values())


def test_phase7_refuses_a_two_day_run_whose_day_folder_is_gone(two_day_runs, tmp_path):
    data = copy_workspace(two_day_runs, tmp_path / "data")
    run_dir = Workspace(data).instance_dir(STATE, "winter", "lhs", f"uhs0_1247--{FEEDER}", "0")
    import shutil

    shutil.rmtree(run_dir / "day2")
    reasons = _stale_reasons(data)
    assert set(reasons) == {0} and "design day 2" in reasons[0] and "missing" in reasons[0]


def test_phase7_refuses_two_day_runs_after_phase_2_went_back_to_one_day(two_day_runs, tmp_path):
    data = copy_workspace(two_day_runs, tmp_path / "data")
    maxday = load_script("2_profiles_heat_pumps/find_max_day_curve.py")
    assert maxday.main(["--data-dir", str(data), "--state", STATE, "--eulp-root", str(sample_eulp_root(data)),
                        "-q"]) == 0  # --days 1 again: the second day is no design day any more
    reasons = _stale_reasons(data)
    assert set(reasons) == {0, 1} and all("design day 2" in r and "no such day" in r for r in reasons.values())


def test_phase7_merges_two_day_runs_of_a_design_days_file_without_a_light_load_day(two_day_runs, tmp_path):
    # phase 2 for winter alone (no light-load season) with --days 2 writes a rank column and no kind column
    data = copy_workspace(two_day_runs, tmp_path / "data")
    path = Workspace(data).design_days(STATE)
    days = pd.read_csv(path, dtype=str, keep_default_na=False)
    days = days[days["kind"] == "peak"].drop(columns=["kind", "min_daytime_kw", "min_daytime_interval_start",
                                                     "min_daytime_variant"])
    days.to_csv(path, index=False)
    assert _stale_reasons(data) == {}


def test_phase7_refuses_runs_of_one_state_and_season_on_different_numbers_of_days(two_day_runs, tmp_path, capsys):
    # cases 0-1 solved on two design days, cases 2-3 then on one: the worst of two days beside single days
    data = copy_workspace(two_day_runs, tmp_path / "data")
    assert phase6.main(["--data-dir", str(data), "--state", STATE, "--season", "winter", "--design", "lhs",
                        "--feeders", FEEDER, "--cases", "2-3", "--run", "--workers", "1", "-q"]) == 0
    capsys.readouterr()
    results = Workspace(data).results_dir
    before = {p: p.read_bytes() for p in sorted(results.rglob("*")) if p.is_file() and p.name != ".lock"}
    combine = load_script("7_results_analysis/append_experiment_results.py")
    assert combine.main(["--data-dir", str(data), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    design = Workspace(data).instance_dir(STATE, "winter", "lhs", f"uhs0_1247--{FEEDER}", "0").parent
    assert (f"{STATE} winter" in err[0] and "2 on 1 design day" in err[0] and "2 on 2 design days" in err[0]
            and "--design lhs --run --days 2:" in err[0]), err[0]
    # an example of each: the lowest case of each count
    assert str(design / "0" / "summary.json") in err[0] and str(design / "2" / "summary.json") in err[0], err[0]
    assert {p: p.read_bytes() for p in sorted(results.rglob("*")) if p.is_file() and p.name != ".lock"} == before
