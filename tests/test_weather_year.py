"""One weather year (issue #14 item 5): the default ResStock and ComStock releases share AMY 2018, the
year of SMART-DS 2018, and a pairing of two weather years is refused in one line unless
``common.config.ALLOW_MIXED_WEATHER`` allows it, then warned, by every phase that pairs them (1c, 1b, 2).
The sample mirrors the default releases."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from common import config, eulp
from conftest import copy_workspace, load_script
from pipeline import sample_eulp_root

TMY3 = "2024/resstock_tmy3_release_2"
FAST = ["--timeout", "2,1", "--retries", "1", "--backoff", "0.01", "--workers", "2", "-q"]

homes = load_script("1c_eulp_downloads/download_parquets_homes.py")
maxday = load_script("2_profiles_heat_pumps/find_max_day_curve.py")


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


# ------------------------------------------------------------------------------------------- the defaults
@pytest.mark.parametrize("state", config.STATES)
def test_default_pairing_has_one_weather_year_that_of_smartds(state):
    years = {eulp.weather_year(release) for release in config.EULP_RELEASE[state].values()}
    assert years == {f"AMY{config.SMARTDS[state]['year']}"}
    assert eulp.check_one_weather_year(config.EULP_RELEASE[state].values(), "test") == "AMY2018"


def test_every_release_names_its_weather_year():
    for release, layout in config.EULP_RELEASES.items():
        assert f"_{layout['weather'].lower()}_" in release, release


def test_default_pairing_keeps_the_variant_upgrades():
    for state in config.STATES:
        for cls, release in config.EULP_RELEASE[state].items():
            assert set(eulp.needed_upgrades(cls)) <= set(config.EULP_RELEASES[release]["upgrades"]), release


# ------------------------------------------------------------------------------------------- the rule
def test_mixed_pairing_is_refused_in_one_line_naming_both_releases():
    com = config.EULP_RELEASE["NC"]["com"]
    with pytest.raises(eulp.EULPError) as info:
        eulp.check_one_weather_year([TMY3, com], "EULP_RELEASE['NC']")
    message = str(info.value)
    assert "\n" not in message
    assert f"{TMY3} (TMY3)" in message and f"{com} (AMY2018)" in message and "ALLOW_MIXED_WEATHER" in message


def test_mixed_pairing_is_warned_when_the_setting_allows_it(monkeypatch, caplog):
    monkeypatch.setattr(config, "ALLOW_MIXED_WEATHER", True)
    com = config.EULP_RELEASE["NC"]["com"]
    with caplog.at_level(logging.WARNING, logger="common.eulp"):
        assert eulp.check_one_weather_year([TMY3, com], "EULP_RELEASE['NC']") == "mixed"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and TMY3 in warnings[0].getMessage() and com in warnings[0].getMessage()


# ------------------------------------------------------------------------------------------- the phases
def test_phase1c_refuses_a_release_of_another_weather_year(sample_root, tmp_path, capsys):
    args = ["--data-dir", str(tmp_path), "--source", str(sample_root / "oedi"), "--state", "NC", "--release", TMY3,
            "--metadata-only", *FAST]
    assert homes.main(args) == 2
    line = _one_line(capsys)
    assert TMY3 in line and config.EULP_RELEASE["NC"]["com"] in line and "ALLOW_MIXED_WEATHER" in line
    assert not (tmp_path / "1c_eulp_downloads").exists()


def test_phase1c_warns_and_downloads_a_mixed_pairing_when_allowed(sample_root, tmp_path, monkeypatch, caplog):
    # a bucket holding the TMY3 release's metadata (the sample mirrors AMY2018 only)
    bucket = tmp_path / "bucket"
    amy = config.EULP_RELEASE["NC"]["res"]
    for upgrade in eulp.needed_upgrades("res"):
        rel = eulp.metadata_relpath(TMY3, upgrade)
        target = bucket / config.EULP_PREFIX / TMY3 / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_root / "oedi" / config.EULP_PREFIX / amy / eulp.metadata_relpath(amy, upgrade), target)
    monkeypatch.setattr(config, "ALLOW_MIXED_WEATHER", True)
    args = ["--data-dir", str(tmp_path / "data"), "--source", str(bucket), "--state", "NC", "--release", TMY3,
            "--metadata-only", *FAST]
    with caplog.at_level(logging.WARNING, logger="common.eulp"):
        assert homes.main(args) == 0
    warned = [r.getMessage() for r in caplog.records if r.name == "common.eulp" and r.levelno == logging.WARNING]
    assert len(warned) == 1 and TMY3 in warned[0] and config.EULP_RELEASE["NC"]["com"] in warned[0]
    assert (tmp_path / "data" / "1c_eulp_downloads" / TMY3 / eulp.metadata_relpath(TMY3, 0)).is_file()


@pytest.mark.parametrize("script", ["1b_smartds_eulp_match/match_smartds_parquets.py",
                                    "1b_smartds_eulp_match/clean_up_bldgs.py"])
def test_phase1b_refuses_a_mixed_release_table(script, prepared_nc, tmp_path, monkeypatch, capsys):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    monkeypatch.setitem(config.EULP_RELEASE["NC"], "res", TMY3)  # the user's edit of the release table
    match_dir = data / "1b_smartds_eulp_match" / "NC"
    before = {p.name: p.read_bytes() for p in sorted(match_dir.iterdir()) if p.is_file() and p.suffix != ".lock"}
    args = ["--data-dir", str(data), "--state", "NC", "--eulp-root", str(sample_eulp_root(data)), "-q"]
    assert load_script(script).main(args) == 2
    line = _one_line(capsys)
    assert TMY3 in line and config.EULP_RELEASE["NC"]["com"] in line and "EULP_RELEASE" in line
    after = {p.name: p.read_bytes() for p in sorted(match_dir.iterdir()) if p.is_file() and p.suffix != ".lock"}
    assert after == before


def test_phase2_refuses_buildings_of_two_weather_years(prepared_nc, tmp_path, monkeypatch, capsys):
    data = copy_workspace(prepared_nc, tmp_path / "data")
    com = config.EULP_RELEASE["NC"]["com"]
    monkeypatch.setitem(config.EULP_RELEASES[com], "weather", "TMY3")  # as if the commercial release were TMY3
    path = data / "2_profiles_heat_pumps" / "NC" / "design_days.csv"
    before = path.read_bytes()
    args = ["--data-dir", str(data), "--state", "NC", "--eulp-root", str(sample_eulp_root(data)), "-q"]
    assert maxday.main(args) == 2
    line = _one_line(capsys)
    assert "feeder_buildings.csv" in line and com in line and config.EULP_RELEASE["NC"]["res"] in line
    assert path.read_bytes() == before


# ------------------------------------------------------------------------------------------- the sample
def test_sample_mirrors_the_default_releases_of_one_weather_year(sample_root):
    manifest = json.loads((sample_root / "sample_manifest.json").read_text())
    releases = manifest["releases"]
    for state in config.STATES:
        assert config.EULP_RELEASE[state] == {"res": releases["res"]["release"], "com": releases["com"]["release"]}
    assert releases["res"]["weather"] == releases["com"]["weather"] == "AMY2018"
    for cls in config.CLASSES:
        release = releases[cls]["release"]
        assert (sample_root / "oedi" / config.EULP_PREFIX / release / eulp.metadata_relpath(release, 0)).is_file()
