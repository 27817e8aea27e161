"""Phase 1b on an EULP release whose metadata are partitioned by state and county (ComStock 2024
release 2, mirrored in the sample): every partition of the state is read, and a building that ComStock
apportions over several rows is one candidate building."""

from __future__ import annotations

import pandas as pd
import pytest

from common import config, eulp
from common.paths import Workspace
from conftest import copy_workspace, load_script
from pipeline import sample_eulp_root

RELEASE = "2024/comstock_amy2018_release_2"


def test_state_buildings_reads_every_county_once_per_building(prepared_nc):
    root = sample_eulp_root(prepared_nc)
    rows = eulp.read_release_metadata(root, RELEASE, "NC")
    table, where = eulp.state_buildings(root, RELEASE, "NC")
    assert len(rows) > len(table) == rows["bldg_id"].nunique()  # an apportioned building is one row
    assert table["bldg_id"].is_unique and where.name == "state=NC"
    assert len(table.attrs["files"]) >= 2  # more than one county partition


def test_matching_and_cleanup_run_on_a_county_partitioned_release(prepared_nc, tmp_path, monkeypatch):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    root = sample_eulp_root(data)
    monkeypatch.setitem(config.EULP_RELEASE["NC"], "com", RELEASE)  # the user's edit of the release table
    args = ["--data-dir", str(data), "--state", "NC", "--eulp-root", str(root), "-q"]
    assert load_script("1b_smartds_eulp_match/match_smartds_parquets.py").main(args) == 0
    assert load_script("1b_smartds_eulp_match/clean_up_bldgs.py").main(args) == 0
    ws = Workspace(data)
    report = pd.read_csv(ws.match_report("NC")).set_index("class")
    buildings, _ = eulp.state_buildings(root, RELEASE, "NC")
    assert report.loc["com", "status"] == "ok" and report.loc["com", "n_buildings"] == len(buildings)
    clean = pd.read_parquet(ws.candidates_clean("NC", "com"))
    assert set(clean["bldg_id"]) <= set(buildings["bldg_id"]) and len(clean) > 0


def test_missing_partitions_fail_the_class_naming_the_folder(tmp_path):
    root = tmp_path / "empty-eulp"
    root.mkdir()
    match = load_script("1b_smartds_eulp_match/match_smartds_parquets.py")
    with pytest.raises(eulp.EULPError, match=r"state=NC not found: run 1c_eulp_downloads"):
        match.load_class_metadata(root, RELEASE, "NC", "com")
