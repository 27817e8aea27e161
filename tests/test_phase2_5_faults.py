"""Phases 2-5 on bad inputs: one line naming the file and the fix, exit 2, nothing half-written;
step locks, temporaries of killed writers, and outputs made from inputs that changed since."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from common import config, eulp
from common.io import folder_lock
from common.paths import Workspace, lineage_record
from conftest import copy_workspace, load_script
from faults import folder_digests as _digests, one_line as _one_line, truncate as _truncate
from pipeline import sample_eulp_root, sample_smartds_root

scale = load_script("2_profiles_heat_pumps/scale_feeder_curves.py")
maxday = load_script("2_profiles_heat_pumps/find_max_day_curve.py")
controls = load_script("2_profiles_heat_pumps/get_scenario_csv_controls.py")
plots = load_script("2_profiles_heat_pumps/plot_parquet_differences.py")
ratios = load_script("3_kvar_kw_prep/rev_spec_kvar_kw_ratio.py")
dm = load_script("4_profiles_heat_pumps_dm/make_dm_profiles.py")
un = load_script("5_profiles_heat_pumps_un/make_un_profiles.py")
copy = load_script("1b_smartds_eulp_match/copy_circuits.py")
parse = load_script("1b_smartds_eulp_match/circuit_make_daily_list_sets.py")

STATE = "NC"


def _argv(data: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(data), "--state", STATE, "-q", *extra]


def _mirror(source: Path, target: Path) -> Path:
    """A tree of real folders and symbolic links to ``source``'s files: one file or folder of it can
    be replaced or removed without touching the session's sample."""
    for folder, _, files in os.walk(source):
        rel = Path(folder).relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            (target / rel / name).symlink_to(Path(folder) / name)
    return target


def _mirror_eulp(data: Path, target: Path) -> Path:
    return _mirror(sample_eulp_root(data), target)


def _first_building_file(data: Path, eulp_root: Path, upgrade: int = 0, keep_feeder: str | None = None) -> Path:
    """The EULP file of the lowest building id (of ``keep_feeder`` when given)."""
    table = pd.read_csv(Workspace(data).feeder_buildings(STATE))
    if keep_feeder is not None:
        table = table[table["feeder"] == keep_feeder]
    b = table.sort_values("bldg_id").iloc[0]
    return eulp_root / b["release"] / eulp.timeseries_relpath(b["release"], upgrade, STATE, int(b["bldg_id"]))


def _break(path: Path, how: str) -> None:
    """Replace ``path`` (possibly a link) with a zero-byte or a truncated copy of itself."""
    content = path.read_bytes()
    path.unlink()
    path.write_bytes(b"" if how == "empty" else content[: len(content) // 2])


# ------------------------------------------------------------------------------------------- bad files
@pytest.mark.parametrize("how", ["empty", "truncated"])
@pytest.mark.parametrize("script", ["scale", "maxday", "un"])
def test_broken_eulp_building_file_is_one_line(prepared_nc, tmp_path, capsys, how, script):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    eulp_root = _mirror_eulp(data, tmp_path / "eulp")
    module = {"scale": scale, "maxday": maxday, "un": un}[script]
    bad = _first_building_file(data, eulp_root, upgrade=0 if script != "un" else
                               int(eulp.variant_rule(*_class_and_type(data), "un")["upgrade"]))
    _break(bad, how)
    before = {f: _digests(Workspace(data).phase(f)) for f in ("2", "5")}
    assert module.main(_argv(data, "--eulp-root", str(eulp_root))) == 2
    line = _one_line(capsys, bad)
    assert "download_parquets" in line
    assert {f: _digests(Workspace(data).phase(f)) for f in ("2", "5")} == before


def _class_and_type(data: Path) -> tuple[str, str | None]:
    b = pd.read_csv(Workspace(data).feeder_buildings(STATE)).sort_values("bldg_id").iloc[0]
    return b["class"], b["building_type"] if isinstance(b["building_type"], str) else None


@pytest.mark.parametrize("script", ["scale", "plots"])
def test_truncated_customers_is_one_line(prepared_nc, tmp_path, capsys, script):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    path = Workspace(data).customers(STATE)
    _truncate(path)
    before = _digests(Workspace(data).phase("2"))
    module = {"scale": scale, "plots": plots}[script]
    extra = ["--eulp-root", str(sample_eulp_root(data))] if script == "scale" else []
    assert module.main(_argv(data, *extra)) == 2
    assert "circuit_make_daily_list_sets.py" in _one_line(capsys, path)
    assert _digests(Workspace(data).phase("2")) == before


def test_customers_without_bus_column_is_one_line(prepared_nc, tmp_path, capsys):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    path = Workspace(data).customers(STATE)
    pd.read_parquet(path).drop(columns=["bus"]).to_parquet(path, index=False)
    assert scale.main(_argv(data, "--eulp-root", str(sample_eulp_root(data)))) == 2
    line = _one_line(capsys, path)
    assert "'bus' missing" in line and "circuit_make_daily_list_sets.py" in line


@pytest.mark.parametrize("variant", ["baseline", "dm", "un"])
def test_truncated_daily_profile_table_is_one_line(prepared_nc, tmp_path, capsys, variant):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    ws = Workspace(data)
    path = ws.daily_profile_table(STATE, variant, "winter")
    _truncate(path)
    before = ws.variant_summary(STATE).read_bytes()
    assert plots.main(_argv(data)) == 2
    _one_line(capsys, path)
    assert ws.variant_summary(STATE).read_bytes() == before


GARBAGE = {"binary": b"\x00\x01PAR1\xff\xfe garbage \x00\n\x07",
           "text": b"this is not the design-day table\nat all\n",
           "bad_day": None}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
@pytest.mark.parametrize("script", ["ratios", "un", "plots"])
def test_garbage_design_days_is_one_line(prepared_nc, tmp_path, capsys, kind, script):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    ws = Workspace(data)
    path = ws.design_days(STATE)
    if kind == "bad_day":
        days = pd.read_csv(path)
        days["day_of_year"] = days["day_of_year"].astype(object)
        days.loc[0, "day_of_year"] = "noon"
        days.to_csv(path, index=False)
    else:
        path.write_bytes(GARBAGE[kind])
    before = {f: _digests(ws.phase(f)) for f in ("3", "5")}
    module = {"ratios": ratios, "un": un, "plots": plots}[script]
    extra = ["--eulp-root", str(sample_eulp_root(data))] if script == "un" else []
    assert module.main(_argv(data, *extra)) == 2
    assert "find_max_day_curve.py" in _one_line(capsys, path)
    assert {f: _digests(ws.phase(f)) for f in ("3", "5")} == before


# ------------------------------------------------------------------------------------------- locks, temporaries
def test_second_run_of_a_step_on_one_folder_is_refused(prepared_nc, tmp_path, capsys):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    ws = Workspace(data)
    before = ws.design_days(STATE).read_bytes()
    with folder_lock(ws.profiles_dir(STATE), "find_max_day_curve.py"):
        assert maxday.main(_argv(data, "--eulp-root", str(sample_eulp_root(data)))) == 2
    line = _one_line(capsys, ws.profiles_dir(STATE))
    assert "find_max_day_curve.py is already running" in line
    assert ws.design_days(STATE).read_bytes() == before


def test_temporaries_of_a_killed_writer_are_removed(prepared_nc, tmp_path):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    ws = Workspace(data)
    left = [ws.profiles_dir(STATE) / ".design_days.csv.k1ll3d.tmp",
            ws.daily_profile(STATE, "un", ws_feeder(ws), "winter", "x").parent / ".res_kw_1_pu.csv.k1ll3d.tmp"]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    eulp_root = ["--eulp-root", str(sample_eulp_root(data))]
    assert maxday.main(_argv(data, *eulp_root)) == 0
    assert un.main(_argv(data, *eulp_root)) == 0
    assert not any(p.exists() for p in left)


def ws_feeder(ws: Workspace) -> str:
    return sorted(pd.read_csv(ws.feeder_buildings(STATE))["feeder"])[0]


# ------------------------------------------------------------------------------------------- stale outputs
def test_steps_after_a_refused_scale_do_not_run_on_removed_feeders(prepared_nc, tmp_path, capsys):
    """copy_circuits.py drops a feeder, customers.parquet follows, scale_feeder_curves.py refuses:
    the next steps must not run on the previous feeder_buildings.csv, which still lists it."""
    data = copy_workspace(prepared_nc, tmp_path / "data")
    ws = Workspace(data)
    tree = _mirror(sample_smartds_root(data), tmp_path / "tree")
    gone, kept = sorted(pd.read_csv(ws.feeder_buildings(STATE))["feeder"].unique())[:2]
    shutil.rmtree(next(tree.rglob(gone)))
    assert copy.main(_argv(data, "--smartds-root", str(tree))) == 0
    assert parse.main(_argv(data)) == 0
    assert gone not in set(pd.read_parquet(ws.customers(STATE))["feeder"])
    eulp_root = _mirror_eulp(data, tmp_path / "eulp")
    _break(_first_building_file(data, eulp_root, keep_feeder=kept), "truncated")
    assert scale.main(_argv(data, "--eulp-root", str(eulp_root))) == 2
    capsys.readouterr()
    assert gone in set(pd.read_csv(ws.feeder_buildings(STATE))["feeder"])  # the previous run's file is left
    for module in (maxday, ratios, controls, un, plots):
        extra = ["--eulp-root", str(sample_eulp_root(data))] if module in (maxday, controls, un) else []
        assert module.main(_argv(data, *extra)) == 2, module.__name__
        line = _one_line(capsys, ws.feeder_buildings(STATE))
        assert str(ws.customers(STATE)) in line and "scale_feeder_curves.py" in line


def test_output_of_a_step_rerun_since_is_refused_downstream(prepared_nc, tmp_path, capsys):
    """find_max_day_curve.py re-run for winter only: kvar ratios made from the old design days are out of date."""
    data = copy_workspace(prepared_nc, tmp_path / "data")
    ws = Workspace(data)
    assert maxday.main(_argv(data, "--eulp-root", str(sample_eulp_root(data)), "--season", "winter")) == 0
    assert un.main(_argv(data, "--eulp-root", str(sample_eulp_root(data)))) == 2
    line = _one_line(capsys, ws.kvar_ratios(STATE))
    assert str(ws.design_days(STATE)) in line and "rev_spec_kvar_kw_ratio.py" in line
    assert ratios.main(_argv(data)) == 0
    assert un.main(_argv(data, "--eulp-root", str(sample_eulp_root(data)), "--season", "winter")) == 0


def test_output_without_its_record_is_refused(prepared_nc, tmp_path, capsys):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    ws = Workspace(data)
    lineage_record(ws.feeder_buildings(STATE)).unlink()
    assert maxday.main(_argv(data, "--eulp-root", str(sample_eulp_root(data)))) == 2
    assert "scale_feeder_curves.py" in _one_line(capsys, ws.feeder_buildings(STATE))


def test_every_output_records_its_inputs(prepared_nc):
    ws = Workspace(prepared_nc)
    outputs = [ws.feeder_buildings(STATE), ws.variant_upgrades(STATE), ws.design_days(STATE), ws.kvar_ratios(STATE),
               *(ws.daily_profile_table(STATE, v, s) for v in config.VARIANTS for s in config.SEASONS)]
    for path in outputs:
        assert lineage_record(path).is_file(), path
