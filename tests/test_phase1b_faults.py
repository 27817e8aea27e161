"""Phase 1b on bad inputs: feeders whose includes are missing, metadata that lacks optional columns,
unreadable files (one line, exit 2, nothing half-written), bad numbers, the step lock."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
import pytest

from common import config, eulp
from common.io import folder_lock
from common.paths import Workspace
from conftest import copy_workspace, load_script, make_workspace
from faults import folder_digests as _digests, one_line as _one_line
from pipeline import sample_eulp_root, sample_smartds_root

copy = load_script("1b_smartds_eulp_match/copy_circuits.py")
parse = load_script("1b_smartds_eulp_match/circuit_make_daily_list_sets.py")
review = load_script("1b_smartds_eulp_match/review_parquet_matches.py")
match = load_script("1b_smartds_eulp_match/match_smartds_parquets.py")
clean = load_script("1b_smartds_eulp_match/clean_up_bldgs.py")
select = load_script("1b_smartds_eulp_match/select_rep_family.py")

STATE = "NC"
FEEDER = "uhs0_1247--udt1021"


def _argv(data: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(data), "--state", STATE, "-q", *extra]


def _mirror(source: Path, target: Path) -> Path:
    """Real folders and symbolic links to ``source``'s files: one file can be replaced safely."""
    for folder, _, files in os.walk(source):
        rel = Path(folder).relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            (target / rel / name).symlink_to(Path(folder) / name)
    return target


def _replace(path: Path, text: str) -> None:
    path.unlink()
    path.write_text(text)


def _metadata(eulp_root: Path, cls: str) -> Path:
    release = config.EULP_RELEASE[STATE][cls]
    return eulp_root / release / eulp.metadata_relpath(release, 0)


# ------------------------------------------------------------------------------------------- includes
def test_include_refs_reads_redirect_and_compile_forms():
    text = ("Redirect LineCodes.dss\n"
            "redirect \"Lines with space.dss\"  ! comment\n"
            "! Redirect commented.dss\n"
            "// Redirect commented_too.dss\n"
            "/* Redirect block.dss\n Redirect block2.dss */\n"
            "Compile (sub\\Transformers.dss)\n"
            "New Load.x bus1=a kw=1\n")
    assert copy.include_refs(text) == [(1, "Redirect", "LineCodes.dss"), (2, "redirect", "Lines with space.dss"),
                                       (7, "Compile", "sub\\Transformers.dss")]


@pytest.mark.parametrize("nested", [False, True])
def test_feeder_whose_master_redirects_to_a_missing_file_is_left_out(tmp_path, sample_root, nested):
    data = make_workspace(tmp_path / "data", sample_root)
    tree = _mirror(sample_smartds_root(data), tmp_path / "tree")
    folder = next(tree.rglob(FEEDER))
    master = folder / "Master.dss"
    if nested:  # Master.dss -> Extra.dss -> a file that does not exist, named relative to Extra.dss
        (folder / "Extra.dss").write_text("! extra devices\nRedirect Capacitors_missing.dss\n")
        _replace(master, master.read_text().replace("Redirect Loads.dss", "Redirect Loads.dss\nRedirect Extra.dss"))
    else:
        _replace(master, master.read_text().replace("Redirect Loads.dss", "Redirect Loads.dss\nRedirect Capacitors_missing.dss"))
    assert copy.main(_argv(data, "--smartds-root", str(tree))) == 0
    ws = Workspace(data)
    feeders = pd.read_csv(ws.feeder_list(STATE)).set_index("feeder")
    reason = feeders.at[FEEDER, "reason"]
    assert feeders.at[FEEDER, "status"] == "excluded"
    assert "Capacitors_missing.dss" in reason and ("Extra.dss line 2" if nested else "Master.dss line") in reason
    assert (feeders.drop(FEEDER)["status"] == "ok").all()
    assert not ws.feeder_dir(STATE, FEEDER).exists()
    assert all(ws.feeder_dir(STATE, f).is_dir() for f in feeders.drop(FEEDER).index)


def test_feeder_whose_include_is_in_a_subfolder_is_copied_with_it(tmp_path, sample_root):
    data = make_workspace(tmp_path / "data", sample_root)
    tree = _mirror(sample_smartds_root(data), tmp_path / "tree")
    folder = next(tree.rglob(FEEDER))
    (folder / "sub").mkdir()
    (folder / "sub" / "Caps.dss").write_text("New Capacitor.c1 bus1=x phases=3 kvar=300 kv=12.47\n")
    master = folder / "Master.dss"
    _replace(master, master.read_text().replace("Redirect Loads.dss", "Redirect Loads.dss\nRedirect sub/Caps.dss"))
    assert copy.main(_argv(data, "--smartds-root", str(tree))) == 0
    feeders = pd.read_csv(Workspace(data).feeder_list(STATE)).set_index("feeder")
    assert feeders.at[FEEDER, "status"] == "ok"
    copied = Workspace(data).feeder_dir(STATE, FEEDER) / "sub" / "Caps.dss"
    assert copied.read_text() == (folder / "sub" / "Caps.dss").read_text()


def test_partial_feeder_copies_of_a_killed_run_are_removed(prepared_nc, tmp_path):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    ws = Workspace(data)
    partial = ws.feeders_dir(STATE) / f".{FEEDER}.k1ll3d"
    partial.mkdir()
    (partial / "Master.dss").write_text("half")
    tmp = ws.match_dir(STATE) / ".feeders.csv.k1ll3d.tmp"
    tmp.write_text("half")
    assert copy.main(_argv(data, "--smartds-root", str(sample_smartds_root(data)))) == 0
    assert not partial.exists() and not tmp.exists()


# ------------------------------------------------------------------------------------------- metadata columns
def test_metadata_without_vacancy_and_income_is_said_and_recorded(prepared_nc, tmp_path, caplog):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    eulp_root = _mirror(sample_eulp_root(data), tmp_path / "eulp")
    path = _metadata(eulp_root, "res")
    meta = pd.read_parquet(path).drop(columns=["in.vacancy_status", "in.area_median_income"])
    path.unlink()
    meta.to_parquet(path, index=False)
    with caplog.at_level(logging.WARNING):
        assert clean.main(_argv(data, "--eulp-root", str(eulp_root))) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for column in ("in.vacancy_status", "in.area_median_income"):
        assert any(column in w and str(path) in w for w in warnings), warnings
    ws = Workspace(data)
    report = pd.read_csv(ws.cleanup_report(STATE)).set_index(["class", "check"])
    assert report.at[("res", "vacancy"), "status"] == "skipped"
    assert report.at[("res", "income_tier"), "status"] == "skipped"
    assert "in.vacancy_status" in report.at[("res", "vacancy"), "reason"]
    assert (report.xs("com")["status"] == "not applicable").all()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert select.main(_argv(data)) == 0
    assert any("in.area_median_income" in r.getMessage() for r in caplog.records)
    rules = pd.read_csv(ws.selection_report(STATE)).set_index(["class", "rule"])
    assert rules.at[("res", "income_preference"), "status"] == "skipped"
    assert rules.at[("res", "type_quotas"), "status"] == "applied"


def test_metadata_without_building_type_is_said_and_recorded(prepared_nc, tmp_path, caplog):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    eulp_root = _mirror(sample_eulp_root(data), tmp_path / "eulp")
    path = _metadata(eulp_root, "com")
    column = eulp.building_type_column(config.EULP_RELEASE[STATE]["com"])
    meta = pd.read_parquet(path).drop(columns=[column])
    path.unlink()
    meta.to_parquet(path, index=False)
    with caplog.at_level(logging.WARNING):
        assert match.main(_argv(data, "--eulp-root", str(eulp_root))) == 0
    assert any(column in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    ws = Workspace(data)
    report = pd.read_csv(ws.match_report(STATE)).set_index("class")
    assert column in report.at["com", "skipped"] and str(path) in report.at["com", "skipped"]
    assert pd.isna(report.at["res", "skipped"])
    assert clean.main(_argv(data, "--eulp-root", str(eulp_root))) == 0
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert select.main(_argv(data)) == 0
    assert any("type_quotas" in r.getMessage() for r in caplog.records)
    rules = pd.read_csv(ws.selection_report(STATE)).set_index(["class", "rule"])
    assert rules.at[("com", "type_quotas"), "status"] == "skipped"


# ------------------------------------------------------------------------------------------- unreadable files
@pytest.mark.parametrize("how", ["empty", "truncated"])
@pytest.mark.parametrize("script", ["match", "clean"])
def test_broken_metadata_is_one_line_and_writes_nothing(prepared_nc, tmp_path, capsys, how, script):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    eulp_root = _mirror(sample_eulp_root(data), tmp_path / "eulp")
    path = _metadata(eulp_root, "com")  # the second class: the first one must not be written either
    content = path.read_bytes()
    path.unlink()
    path.write_bytes(b"" if how == "empty" else content[: len(content) // 2])
    ws = Workspace(data)
    before = _digests(ws.match_dir(STATE))
    module = {"match": match, "clean": clean}[script]
    assert module.main(_argv(data, "--eulp-root", str(eulp_root))) == 2
    assert "download_parquets" in _one_line(capsys, path)
    assert _digests(ws.match_dir(STATE)) == before


def test_truncated_customers_is_one_line_in_review(prepared_nc, tmp_path, capsys):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    path = Workspace(data).customers(STATE)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    assert review.main(_argv(data)) == 2
    assert "circuit_make_daily_list_sets.py" in _one_line(capsys, path)


def test_customers_without_bus_column_is_one_line_in_review(prepared_nc, tmp_path, capsys):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    path = Workspace(data).customers(STATE)
    pd.read_parquet(path).drop(columns=["bus"]).to_parquet(path, index=False)
    assert review.main(_argv(data)) == 2
    assert "'bus' missing" in _one_line(capsys, path)


def test_truncated_candidates_is_one_line_in_select(prepared_nc, tmp_path, capsys):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    ws = Workspace(data)
    path = ws.candidates_clean(STATE, "com")
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    before = _digests(ws.match_dir(STATE))
    assert select.main(_argv(data)) == 2
    assert "clean_up_bldgs.py" in _one_line(capsys, path)
    assert _digests(ws.match_dir(STATE)) == before


# ------------------------------------------------------------------------------------------- flags, lock
@pytest.mark.parametrize("module,flag", [(match, ["--n-candidates", "0"]), (match, ["--n-candidates", "many"]),
                                         (select, ["--seed", "-1"])])
def test_bad_numbers_are_rejected(prepared_nc, capsys, module, flag):
    assert module.main(_argv(prepared_nc, *flag)) == 2
    assert flag[0] in capsys.readouterr().err


def test_second_run_of_a_step_on_one_folder_is_refused(prepared_nc, tmp_path, capsys):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    ws = Workspace(data)
    before = _digests(ws.match_dir(STATE))
    with folder_lock(ws.match_dir(STATE), "match_smartds_parquets.py"):
        assert match.main(_argv(data, "--eulp-root", str(sample_eulp_root(data)))) == 2
    assert "match_smartds_parquets.py is already running" in _one_line(capsys, ws.match_dir(STATE))
    assert _digests(ws.match_dir(STATE)) == before
