"""A workspace can be copied or moved: the paths phase 1b writes into its tables and reads back are
relative to the workspace when they lie inside it, so a copy reads its own files, never the original's."""

from __future__ import annotations

import shutil

from common.paths import Workspace
from conftest import copy_workspace, load_script


def test_phase1b_tables_hold_no_path_of_the_workspace_they_were_made_in(prepared_nc):
    ws = Workspace(prepared_nc)
    for path in (ws.feeder_list("NC"), ws.shape_counts("NC"), ws.source_map("NC")):
        assert str(prepared_nc.resolve()) not in path.read_text(), path.name


def test_a_moved_workspace_runs_the_next_step_on_its_own_files(prepared_nc, tmp_path):
    copy = copy_workspace(prepared_nc, tmp_path / "copy")
    moved = tmp_path / "moved"
    shutil.move(str(copy), str(moved))
    review = load_script("1b_smartds_eulp_match/review_parquet_matches.py")
    assert review.main(["--data-dir", str(moved), "--state", "NC", "-q"]) == 0
    assert Workspace(moved).profile_stats("NC").is_file()
