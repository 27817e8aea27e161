"""Phase 1b: feeders copied and parsed in the real formats, matched to EULP buildings reproducibly."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import config
from common.paths import Workspace
from conftest import SHARED_DATA, SHARED_SMARTDS_FEEDER, load_script, make_workspace, requires_shared
from pipeline import run_phase1b, sample_eulp_root, sample_smartds_root

copy = load_script("1b_smartds_eulp_match/copy_circuits.py")
parse = load_script("1b_smartds_eulp_match/circuit_make_daily_list_sets.py")
review = load_script("1b_smartds_eulp_match/review_parquet_matches.py")
match = load_script("1b_smartds_eulp_match/match_smartds_parquets.py")
clean = load_script("1b_smartds_eulp_match/clean_up_bldgs.py")
select = load_script("1b_smartds_eulp_match/select_rep_family.py")


@pytest.fixture(scope="module")
def nc(tmp_path_factory, sample_root) -> Path:
    data = make_workspace(tmp_path_factory.mktemp("p1b") / "data", sample_root)
    run_phase1b(data, "NC")
    return data


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _small_tree(tmp_path: Path, sample_root: Path, state: str = "NC") -> Path:
    """A writable copy of one state's SMART-DS subregion (feeders + profiles + load_data)."""
    sd = config.SMARTDS[state]
    rel = Path(sd["year"]) / sd["city"] / sd["subregions"][0]
    src = sample_root / "oedi" / config.SMARTDS_PREFIX / rel
    dst = tmp_path / "tree" / rel
    shutil.copytree(src / "scenarios", dst / "scenarios")
    (dst / "profiles").symlink_to(src / "profiles")
    (dst / "load_data").mkdir(parents=True)
    for f in (src / "load_data").iterdir():
        (dst / "load_data" / f.name).symlink_to(f)
    return tmp_path / "tree"


# ------------------------------------------------------------------------------------------- copy
def test_copy_circuits_lists_every_feeder_with_status(nc):
    feeders = pd.read_csv(Workspace(nc).feeder_list("NC"))
    assert (feeders["status"] == "ok").all()
    assert len(feeders) == 4
    assert set(feeders["substation"]) == {"uhs0_1247", "uhs1_1247"}


def test_copied_loadshapes_still_resolve(nc):
    folder = Workspace(nc).feeder_dir("NC", "uhs0_1247--udt1021")
    text = (folder / "LoadShapes.dss").read_text()
    for _, _, ref in copy.shape_file_refs(text):
        assert (folder / ref).resolve().is_file()


def test_copy_rerun_skips_unchanged_and_never_makes_duplicates(tmp_path, sample_root):
    data = make_workspace(tmp_path / "data", sample_root)
    argv = ["--data-dir", str(data), "--state", "CA", "--smartds-root", str(sample_smartds_root(data)), "-q"]
    assert copy.main(argv) == 0
    before = _digest(Workspace(data).feeders_dir("CA"))
    assert copy.main(argv) == 0
    assert _digest(Workspace(data).feeders_dir("CA")) == before
    assert not [p for p in Workspace(data).feeders_dir("CA").iterdir() if "__" in p.name or p.name.startswith(".")]


def test_copy_replaces_a_changed_feeder(tmp_path, sample_root):
    tree = _small_tree(tmp_path, sample_root)
    data = make_workspace(tmp_path / "data", sample_root)
    argv = ["--data-dir", str(data), "--state", "NC", "--smartds-root", str(tree), "-q"]
    assert copy.main(argv) == 0
    master = next(tree.rglob("uhs0_1247--udt1021/Master.dss"))
    master.write_text(master.read_text() + "\n! edited\n")
    assert copy.main(argv) == 0
    assert (Workspace(data).feeder_dir("NC", "uhs0_1247--udt1021") / "Master.dss").read_text().endswith("! edited\n")


def test_copy_leaves_out_feeder_whose_profile_file_is_missing(tmp_path, sample_root):
    tree = _small_tree(tmp_path, sample_root)
    shapes = next(tree.rglob("uhs0_1247--udt1021/LoadShapes.dss"))
    shapes.write_text(shapes.read_text().replace("profiles/res_kw_", "profiles/missing_res_kw_", 1))
    data = make_workspace(tmp_path / "data", sample_root)
    assert copy.main(["--data-dir", str(data), "--state", "NC", "--smartds-root", str(tree), "-q"]) == 0
    feeders = pd.read_csv(Workspace(data).feeder_list("NC")).set_index("feeder")
    assert feeders.at["uhs0_1247--udt1021", "status"] == "excluded"
    assert "LoadShapes.dss" in feeders.at["uhs0_1247--udt1021", "reason"]
    assert "missing_res_kw_" in feeders.at["uhs0_1247--udt1021", "reason"]
    assert (feeders.drop("uhs0_1247--udt1021")["status"] == "ok").all()


def test_copy_without_source_exits_2(tmp_path, capsys):
    assert copy.main(["--data-dir", str(tmp_path), "--state", "TX", "--smartds-root", str(tmp_path / "none")]) == 2
    assert "download_smartds.py" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- parse
def test_half_loads_form_one_split_phase_customer(nc):
    customers = pd.read_parquet(Workspace(nc).customers("NC"))
    split = customers[customers["service"] == "split_phase"]
    assert (split["n_loads"] == 2).all()
    row = split.iloc[0]
    assert row["loads"] == f"{row['customer']}_1;{row['customer']}_2"
    assert row["nodes"] == "1.2"


def test_unprefixed_gso_names_parse(nc):
    customers = pd.read_parquet(Workspace(nc).customers("NC"))
    assert customers["customer"].str.startswith("load_ulv").all()
    assert set(customers["class"]) == {"res", "com"}


def test_three_phase_commercial_customers_flagged(nc):
    customers = pd.read_parquet(Workspace(nc).customers("NC"))
    three = customers[customers["three_phase"]]
    assert not three.empty and (three["class"] == "com").all() and (three["nodes"] == "1.2.3").all()


def test_shape_counts_are_customers_per_feeder_and_shape(nc):
    ws = Workspace(nc)
    counts = pd.read_csv(ws.shape_counts("NC"))
    customers = pd.read_parquet(ws.customers("NC"))
    expected = customers.groupby(["feeder", "shape"]).size()
    got = counts.set_index(["feeder", "shape"])["n_customers"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    assert (counts["npts"] == 35040).all()


@requires_shared
def test_parse_real_smartds_two_phase_loads(tmp_path):
    customers, shapes = parse.parse_feeder(SHARED_SMARTDS_FEEDER)
    assert len(customers) == 29
    assert sum(c["three_phase"] for c in customers) == 1
    two_phase = [c for c in customers if c["nodes"] == "1.2"]
    assert len(two_phase) == 28 and all(c["n_loads"] == 1 and c["service"] == "split_phase" for c in two_phase)
    assert all(c["customer"].startswith("load_p1ulv") for c in customers)
    assert shapes["res_kw_44719_pu"]["npts"] == 96


def test_daily_keyword_and_continuation_lines_parse(tmp_path):
    folder = tmp_path / "x--y"
    folder.mkdir()
    (folder / "LoadShapes.dss").write_text("New Loadshape.com_kw_9_pu npts=96 interval=0.25 mult=(file=a.csv)\n")
    (folder / "Loads.dss").write_text("New Load.load_a conn=wye bus1=a.1.2.3 kV=0.48 model=1 kW=40\n"
                                      "~ kvar=10 Phases=3 daily=com_kw_9_pu\n")
    customers, _ = parse.parse_feeder(folder)
    assert customers[0]["shape"] == "com_kw_9_pu" and customers[0]["peak_kvar"] == 10.0
    assert customers[0]["three_phase"]


def test_missing_shape_leaves_feeder_out_and_names_file_and_item(tmp_path, sample_root):
    data = make_workspace(tmp_path / "data", sample_root)
    assert copy.main(["--data-dir", str(data), "--state", "CA", "--smartds-root", str(sample_smartds_root(data)),
                      "-q"]) == 0
    ws = Workspace(data)
    broken = ws.feeder_dir("CA", "p1uhs5_1247--p1udt2207") / "Loads.dss"
    broken.write_text(broken.read_text().replace("yearly=res_kw_", "yearly=zzz_res_kw_", 1))
    assert parse.main(["--data-dir", str(data), "--state", "CA", "-q"]) == 0
    report = pd.read_csv(ws.feeder_parse("CA")).set_index("feeder")
    reason = report.at["p1uhs5_1247--p1udt2207", "reason"]
    assert report.at["p1uhs5_1247--p1udt2207", "status"] == "excluded"
    assert "p1uhs5_1247--p1udt2207/Loads.dss" in reason and "zzz_res_kw_" in reason and "LoadShapes.dss" in reason
    assert report.at["p1uhs5_1247--p1udt6632", "status"] == "ok"
    assert set(pd.read_parquet(ws.customers("CA"))["feeder"]) == {"p1uhs5_1247--p1udt6632"}


# ------------------------------------------------------------------------------------------- review
def test_review_monthly_stats_match_direct_computation(nc, sample_root):
    stats = pd.read_parquet(Workspace(nc).profile_stats("NC"))
    row = stats[(stats["class"] == "res") & (stats["month"] == 7)].iloc[0]
    sub = sample_root / "oedi" / config.SMARTDS_PREFIX / "2018" / "GSO" / "urban-suburban"
    kw = pd.read_parquet(sub / "load_data" / f"res_{row['profile_id']}.parquet")["total_site_electricity_kw"]
    july = kw.to_numpy()[181 * 96: 212 * 96]
    assert row["peak_kw"] == pytest.approx(july.max())
    assert row["mean_kw"] == pytest.approx(july.mean())
    assert row["p75_kw"] == pytest.approx(np.percentile(july, 75))
    assert (stats.groupby("shape")["month"].nunique() == 12).all()
    assert set(stats["source"]) == {"load_data"}


def test_review_without_load_data_uses_scaled_profile_csv(tmp_path, sample_root):
    tree = _small_tree(tmp_path, sample_root)
    for f in next(tree.rglob("load_data")).iterdir():
        f.unlink()
    data = make_workspace(tmp_path / "data", sample_root)
    for module, extra in ((copy, ["--smartds-root", str(tree)]), (parse, []), (review, [])):
        assert module.main(["--data-dir", str(data), "--state", "NC", "-q", *extra]) == 0
    ws = Workspace(data)
    stats = pd.read_parquet(ws.profile_stats("NC"))
    assert set(stats["source"]) == {"profile_csv"}
    customers = pd.read_parquet(ws.customers("NC"))
    shape = stats["shape"].iloc[0]
    annual_peak = stats[stats["shape"] == shape]["peak_kw"].max()
    assert annual_peak == pytest.approx(customers[customers["shape"] == shape]["peak_kw"].mean(), rel=1e-6)


@requires_shared
def test_short_real_profiles_are_reviewed_for_the_months_they_cover(tmp_path, sample_root, caplog):
    data = make_workspace(tmp_path / "data", sample_root)
    run_phase1b(data, "TX", smartds_root=SHARED_DATA / "smartds")
    ws = Workspace(data)
    stats = pd.read_parquet(ws.profile_stats("TX"))
    assert set(stats["month"]) == {1} and (stats["profile_points"] == 96).all()
    candidates = pd.read_parquet(ws.candidates("TX", "res"))
    assert set(candidates["features_used"]) == {"winter"}
    final = pd.read_csv(ws.final_selection("TX", "res"))
    assert len(final) + len(pd.read_csv(ws.unmatched("TX"))) == 26


# ------------------------------------------------------------------------------------------- match
def _features(peaks: list[list[float]], lf=None) -> object:
    peaks = np.asarray(peaks, dtype=float)
    return match.Features(peaks=peaks, load_factor=np.full(len(peaks), np.nan) if lf is None else np.asarray(lf),
                          names=("summer", "winter"))


def test_score_grid_ranks_exact_match_first_with_tightest_tier():
    p = _features([[5.0, 8.0]])
    b = _features([[5.0, 8.0], [5.5, 8.4], [2.0, 9.0], [50.0, 80.0]])
    grid = match.score_grid(p, b, "res", np.array([""]), np.array(["", "", "", ""]), (0.05, 0.10, 0.5, 0.95))
    assert np.argmin(grid["score"][0]) == 0
    assert list(grid["tier"][0][:2]) == [0.05, 0.10]
    assert not grid["within"][0][3]  # ten times larger: out of every tolerance


def test_score_grid_penalises_other_building_type():
    p = _features([[5.0, 8.0]])
    b = _features([[5.0, 8.0], [5.0, 8.0]])
    grid = match.score_grid(p, b, "res", np.array(["Mobile Home"]), np.array(["Single-Family Detached", "Mobile Home"]),
                            (0.05,))
    assert grid["score"][0][1] < grid["score"][0][0]


def test_score_grid_uses_only_features_the_profile_has():
    p = _features([[np.nan, 8.0]])
    b = _features([[1.0, 8.0], [9.0, 8.4]])
    grid = match.score_grid(p, b, "res", np.array([""]), np.array(["", ""]), (0.05, 0.10))
    assert grid["score"][0][0] < grid["score"][0][1]  # the summer peak is ignored


def test_metadata_without_needed_column_is_named(tmp_path, sample_root, capsys):
    data = make_workspace(tmp_path / "data", sample_root)
    run_phase1b(data, "CA")
    eulp = tmp_path / "eulp"
    release = config.EULP_RELEASE["CA"]["res"]
    meta = pd.read_parquet(sample_eulp_root(data) / release / "metadata" / "baseline.parquet")
    (eulp / release / "metadata").mkdir(parents=True)
    meta.drop(columns=["out.electricity.winter.peak.kw"]).to_parquet(eulp / release / "metadata" / "baseline.parquet")
    com = config.EULP_RELEASE["CA"]["com"]
    shutil.copytree(sample_eulp_root(data) / com / "metadata", eulp / com / "metadata")
    assert match.main(["--data-dir", str(data), "--state", "CA", "--eulp-root", str(eulp)]) == 1
    report = pd.read_csv(Workspace(data).match_report("CA")).set_index("class")
    assert report.at["res", "status"] == "failed"
    assert "out.electricity.winter.peak.kw" in report.at["res", "reason"] and "baseline.parquet" in report.at["res", "reason"]
    assert report.at["com", "status"] == "ok"
    assert select.main(["--data-dir", str(data), "--state", "CA", "-q"]) == 0
    unmatched = pd.read_csv(Workspace(data).unmatched("CA"))
    assert (unmatched["class"] == "res").all() and unmatched["reason"].str.contains("winter.peak").all()


def test_state_without_buildings_is_a_clear_error(tmp_path, sample_root):
    data = make_workspace(tmp_path / "data", sample_root)
    eulp = tmp_path / "eulp"
    release = config.EULP_RELEASE["CA"]["res"]
    meta = pd.read_parquet(sample_eulp_root(data) / release / "metadata" / "baseline.parquet")
    (eulp / release / "metadata").mkdir(parents=True)
    meta[meta["in.state"] != "CA"].to_parquet(eulp / release / "metadata" / "baseline.parquet")
    with pytest.raises(Exception, match=r"no building of state CA \(column in.state\)"):
        match.load_class_metadata(eulp, release, "CA", "res")


# ------------------------------------------------------------------------------------------- clean, select
@pytest.mark.parametrize("ami,tier", [("0-30%", "low"), ("60-80%", "low"), ("80-100%", "mid"), ("100-120%", "mid"),
                                      ("120-150%", "high"), ("150%+", "high"), ("Not Available", "unknown"),
                                      (None, "unknown")])
def test_income_tier(ami, tier):
    assert clean.income_tier(ami) == tier


def test_clean_up_removes_vacant_units():
    candidates = pd.DataFrame({"class": "res", "subregion": "s", "shape": "res_kw_1_pu", "bldg_id": [1, 2, 3]})
    meta = pd.DataFrame({"bldg_id": [1, 2], "in.vacancy_status": ["Occupied", "Vacant"],
                         "in.area_median_income": ["80-100%", "0-30%"]})
    kept, removed = clean.clean_candidates(candidates, meta)
    assert list(kept["bldg_id"]) == [1] and list(kept["income_tier"]) == ["mid"]
    assert dict(zip(removed["bldg_id"], removed["reason"])) == {2: "vacant unit (in.vacancy_status)",
                                                                3: "building not in the release metadata"}


def test_every_profile_gets_a_building_or_a_reason(nc):
    ws = Workspace(nc)
    stats = pd.read_parquet(ws.profile_stats("NC"))
    chosen = pd.concat([pd.read_csv(ws.final_selection("NC", c)) for c in config.CLASSES])
    unmatched = pd.read_csv(ws.unmatched("NC"))
    assert len(chosen) + len(unmatched) == stats["shape"].nunique()
    assert (chosen["Chosen_Parquet"] == chosen["bldg_id"].astype(str) + "-0.parquet").all()
    ids = [int(x) for x in ws.bldg_id_list("NC", "res").read_text().split()]
    assert ids == sorted(set(chosen[chosen["class"] == "res"]["bldg_id"]))


def test_selection_is_identical_on_a_second_run(nc):
    ws = Workspace(nc)
    before = {c: ws.final_selection("NC", c).read_bytes() for c in config.CLASSES}
    assert select.main(["--data-dir", str(nc), "--state", "NC", "-q"]) == 0
    assert {c: ws.final_selection("NC", c).read_bytes() for c in config.CLASSES} == before


def test_select_family_respects_building_type_quota():
    rows = []
    for p in range(4):
        rows.append({"subregion": "s", "shape": f"res_kw_{p}_pu", "rank": 1, "bldg_id": 10 + p, "tier": 0.05,
                     "score": 0.01, "building_type": "Mobile Home", "income_tier": "mid", "release": "r",
                     "within_tolerance": True})
        rows.append({"subregion": "s", "shape": f"res_kw_{p}_pu", "rank": 2, "bldg_id": 20 + p, "tier": 0.05,
                     "score": 0.02, "building_type": "Single-Family Detached", "income_tier": "mid", "release": "r",
                     "within_tolerance": True})
    clean_df = pd.DataFrame(rows)
    profiles = clean_df[["subregion", "shape"]].drop_duplicates().assign(reason_if_none="none")
    chosen, unmatched = select.select_family(profiles, clean_df, "res", seed=1)
    quota = select.type_quotas("res", 4)["Mobile Home"]
    assert (chosen["building_type"] == "Mobile Home").sum() == quota
    assert chosen["reason"].str.contains("quota of Mobile Home reached").sum() == 4 - quota
    assert unmatched.empty


@pytest.mark.parametrize("state", ["TX", "CA"])
def test_phase1b_matches_every_profile_in_other_states(tmp_path, sample_root, state):
    data = make_workspace(tmp_path / "data", sample_root)
    run_phase1b(data, state)
    ws = Workspace(data)
    assert pd.read_csv(ws.unmatched(state)).empty
    assert pd.read_csv(ws.final_selection(state, "com"))["within_tolerance"].all()
