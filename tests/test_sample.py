"""The embedded sample: real formats and physically plausible synthetic data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from common import config, dss
from sample import build_sample as BS
from sample import datasets as D

EULP = Path(config.EULP_PREFIX)
RES = BS.RES_RELEASE
COM = BS.COM_RELEASE


def _subregion(sample_root: Path, state: str) -> Path:
    sd = config.SMARTDS[state]
    return sample_root / "oedi" / config.SMARTDS_PREFIX / sd["year"] / sd["city"] / sd["subregions"][0]


def _feeders(sample_root: Path, state: str) -> list[Path]:
    return sorted(p.parent for p in _subregion(sample_root, state).glob("scenarios/*/opendss/*/*/Master.dss"))


def _ts(sample_root: Path, release: str, upgrade: int, state: str, bldg: int) -> pd.DataFrame:
    rel = config.EULP_RELEASES[release]["timeseries"].format(upgrade=upgrade, state=state, county="", bldg_id=bldg)
    return pd.read_parquet(sample_root / "oedi" / EULP / release / rel)


def _meta(sample_root: Path, release: str, upgrade: int = 0) -> pd.DataFrame:
    layout = config.EULP_RELEASES[release]
    rel = layout["metadata_baseline"] if upgrade == 0 else layout["metadata_upgrade"].format(upgrade=upgrade)
    return pd.read_parquet(sample_root / "oedi" / EULP / release / rel)


def _kw(frame: pd.DataFrame, column: str = config.EULP_TOTAL_KWH) -> np.ndarray:
    return frame[column].to_numpy(dtype=float) * 4.0


# ------------------------------------------------------------------------------------------- layout
def test_manifest_says_synthetic_and_fits_size_budget(sample_root):
    manifest = json.loads((sample_root / "sample_manifest.json").read_text())
    assert "SYNTHETIC" in manifest["what"]
    assert manifest["bytes"] < 300e6
    assert manifest["states"] == list(config.STATES)


@pytest.mark.parametrize("state", config.STATES)
def test_each_state_has_small_and_medium_feeders(sample_root, state):
    manifest = json.loads((sample_root / "sample_manifest.json").read_text())
    sizes = sorted(f["customers"] for f in manifest["feeders"] if f["state"] == state and not f["broken_connection"])
    assert sizes[0] <= 40 and any(200 <= s <= 400 for s in sizes)


def test_nc_has_a_large_feeder_and_a_broken_one(sample_root):
    manifest = json.loads((sample_root / "sample_manifest.json").read_text())
    nc = [f for f in manifest["feeders"] if f["state"] == "NC"]
    assert max(f["customers"] for f in nc) >= 1800
    assert sum(f["broken_connection"] for f in nc) == 1


@pytest.mark.parametrize("state,prefixed", [("NC", False), ("TX", True), ("CA", True)])
def test_feeder_names_follow_city_convention(sample_root, state, prefixed):
    for folder in _feeders(sample_root, state):
        substation, feeder = folder.name.split("--")
        assert folder.parent.name == substation
        assert feeder.startswith("p1udt") == prefixed
        assert feeder.startswith("udt") != prefixed


@pytest.mark.parametrize("state", config.STATES)
def test_loadshape_files_resolve_five_folders_up(sample_root, state):
    folder = _feeders(sample_root, state)[0]
    shapes = dss.read_dss_objects(folder / "LoadShapes.dss", ("loadshape",))
    assert shapes
    for shape in shapes:
        ref = dss.file_reference(shape.get("mult"))
        assert ref.startswith("../../../../../profiles/")
        assert (folder / ref).resolve().is_file()
        assert (folder / dss.file_reference(shape.get("qmult"))).resolve().is_file()


def test_master_is_as_smartds_ships_it(sample_root):
    text = (_feeders(sample_root, "NC")[0] / "Master.dss").read_text()
    for needle in ("New Monitor.m1", "mode=0", "New Monitor.m2", "New EnergyMeter.m3",
                   "Solve mode=yearly stepsize=15m number=35040", "Export monitors m1", "Plot monitor"):
        assert needle in text


def test_split_phase_customers_have_half_loads_on_both_legs(sample_root):
    loads = dss.read_dss_objects(_feeders(sample_root, "NC")[0] / "Loads.dss", ("load",))
    halves = [ld for ld in loads if ld.name.endswith(("_1", "_2"))]
    assert halves
    by_customer: dict[str, list] = {}
    for ld in halves:
        by_customer.setdefault(ld.name[:-2], []).append(ld)
    for customer, pair in by_customer.items():
        assert sorted(dss.bus_nodes(ld.get("bus1"))[0] for ld in pair) == [1, 2], customer
        assert {ld.get("kv") for ld in pair} == {"0.12"}
        assert pair[0].get("yearly") == pair[1].get("yearly")


def test_commercial_three_phase_customers_at_480_or_208_volts(sample_root):
    loads = dss.read_dss_objects(_feeders(sample_root, "NC")[1] / "Loads.dss", ("load",))
    three = [ld for ld in loads if ld.get("phases") == "3"]
    assert three
    assert {ld.get("kv") for ld in three} <= {"0.48", "0.208"}
    assert all(ld.get("yearly").startswith("com_kw_") for ld in three)


# ------------------------------------------------------------------------------------------- SMART-DS data
def test_profiles_are_35040_headerless_rows_per_unit(sample_root):
    profiles = sorted((_subregion(sample_root, "TX") / "profiles").glob("*_kw_*_pu.csv"))
    assert profiles
    values = np.loadtxt(profiles[0])
    assert values.shape == (35040,)
    assert values.max() == pytest.approx(1.0)
    assert values.min() >= 0


def test_every_used_profile_has_load_data(sample_root):
    for state in config.STATES:
        sub = _subregion(sample_root, state)
        for folder in _feeders(sample_root, state):
            for shape in dss.read_dss_objects(folder / "LoadShapes.dss", ("loadshape",)):
                cls, _, pid, _ = shape.name.split("_")
                assert (sub / "load_data" / f"{cls}_{pid}.parquet").is_file()


def test_load_data_has_documented_columns(sample_root):
    path = sorted((_subregion(sample_root, "NC") / "load_data").glob("res_*.parquet"))[0]
    frame = pd.read_parquet(path)
    assert len(frame) == 35040
    for column in ("Time", "total_site_electricity_kw", "total_site_electricity_kvar", "building", "pf",
                   "heating_kw", "heating_kvar", "cooling_kw", "cooling_kvar", "lighting_kw", "water_systems_kw"):
        assert column in frame.columns
    assert frame["Time"].is_monotonic_increasing


# ------------------------------------------------------------------------------------------- EULP data
def test_eulp_timestamps_label_interval_end(sample_root):
    bldg = int(_meta(sample_root, RES).query("`in.state` == 'NC'")["bldg_id"].iloc[0])
    frame = _ts(sample_root, RES, 0, "NC", bldg)
    assert len(frame) == 35040
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2018-01-01 00:15")
    assert frame["timestamp"].iloc[-1] == pd.Timestamp("2019-01-01 00:00")


@pytest.mark.parametrize("release,upgrades", [(RES, (0, 1, 4)), (COM, (0, 1, 8))])
def test_eulp_files_exist_for_every_building_and_upgrade(sample_root, release, upgrades):
    meta = _meta(sample_root, release)
    for state in config.STATES:
        for bldg in meta.loc[meta["in.state"] == state, "bldg_id"].head(3):
            for u in upgrades:
                assert not _ts(sample_root, release, u, state, int(bldg)).empty


def test_resstock_metadata_has_documented_columns(sample_root):
    meta = _meta(sample_root, RES)
    for column in ("bldg_id", "weight", "applicability", "in.state", "in.county", "in.puma", "in.sqft",
                   "in.geometry_building_type_recs", "in.geometry_building_type_acs", "in.heating_fuel",
                   "in.hvac_heating_type_and_fuel", "in.hvac_cooling_type", "in.area_median_income",
                   "in.vacancy_status", "out.electricity.summer.peak.kw", "out.electricity.winter.peak.kw"):
        assert column in meta.columns
    assert set(meta["in.state"]) == set(config.STATES)
    assert (meta["in.vacancy_status"] == "Vacant").any()


def test_comstock_metadata_has_monthly_peaks_and_types(sample_root):
    meta = _meta(sample_root, COM)
    assert "in.comstock_building_type" in meta.columns
    assert all(f"out.qoi.maximum_daily_peak_{m}..kw" in meta.columns for m in D.MONTH_ABBR)
    assert not _meta(sample_root, COM, 8)["applicability"].all()


def test_metadata_peaks_match_timeseries(sample_root):
    meta = _meta(sample_root, RES)
    row = meta[meta["in.state"] == "TX"].iloc[0]
    kw = _kw(_ts(sample_root, RES, 0, "TX", int(row["bldg_id"])))
    months = D.month_of_interval()
    assert kw[np.isin(months, (6, 7, 8))].max() == pytest.approx(row["out.electricity.summer.peak.kw"], rel=1e-4)


# ------------------------------------------------------------------------------------------- physics
def _homes(sample_root, state, fuel):
    meta = _meta(sample_root, RES)
    return meta[(meta["in.state"] == state) & (meta["in.heating_fuel"] == fuel) & (meta["in.vacancy_status"] == "Occupied")]


def test_gas_heated_home_gains_winter_load_with_heat_pump(sample_root):
    winter = np.isin(D.month_of_interval(), (12, 1, 2))
    gains = []
    for bldg in _homes(sample_root, "NC", "Natural Gas")["bldg_id"].head(6):
        base = _kw(_ts(sample_root, RES, 0, "NC", int(bldg)))[winter].sum()
        hp = _kw(_ts(sample_root, RES, 1, "NC", int(bldg)))[winter].sum()
        gains.append(hp - base)
    assert min(gains) > 0


def test_electric_backup_peaks_above_fuel_backup(sample_root):
    winter = np.isin(D.month_of_interval(), (12, 1, 2))
    for bldg in _homes(sample_root, "NC", "Natural Gas")["bldg_id"].head(6):
        electric = _kw(_ts(sample_root, RES, 1, "NC", int(bldg)))[winter].max()
        fuel = _kw(_ts(sample_root, RES, 4, "NC", int(bldg)))[winter].max()
        assert electric >= fuel
    assert any(_kw(_ts(sample_root, RES, 1, "NC", int(b)))[winter].max() >
               _kw(_ts(sample_root, RES, 4, "NC", int(b)))[winter].max() + 1.0
               for b in _homes(sample_root, "NC", "Natural Gas")["bldg_id"].head(6))


def _hourly_mean(kw: np.ndarray, mask: np.ndarray) -> np.ndarray:
    days = kw.reshape(365, 96)[mask.reshape(365, 96)[:, 0]]
    return days.reshape(len(days), 24, 4).mean(axis=(0, 2))


def test_heating_peaks_on_cold_mornings(sample_root):
    meta = _homes(sample_root, "NC", "Electricity")
    winter = np.isin(D.month_of_interval(), (12, 1, 2))
    total = sum(_kw(_ts(sample_root, RES, 0, "NC", int(b)), "out.electricity.heating.energy_consumption")
                for b in meta["bldg_id"].head(8))
    hourly = _hourly_mean(total, winter)
    assert 4 <= int(np.argmax(hourly)) <= 8
    assert hourly[5:8].mean() > 1.5 * hourly[13:16].mean()


def test_cooling_peaks_on_hot_afternoons(sample_root):
    meta = _meta(sample_root, RES).query("`in.state` == 'TX'")
    summer = np.isin(D.month_of_interval(), (6, 7, 8))
    total = sum(_kw(_ts(sample_root, RES, 0, "TX", int(b)), "out.electricity.cooling.energy_consumption")
                for b in meta["bldg_id"].head(8))
    hourly = _hourly_mean(total, summer)
    assert 13 <= int(np.argmax(hourly)) <= 19
    assert hourly[14:18].mean() > 2 * hourly[3:6].mean()


def test_commercial_load_follows_business_hours(sample_root):
    meta = _meta(sample_root, COM).query("`in.state` == 'NC' and `in.comstock_building_type` == 'SmallOffice'")
    kw = _kw(_ts(sample_root, COM, 0, "NC", int(meta["bldg_id"].iloc[0])))
    weekday = np.repeat(np.arange(365) % 7 < 5, 96)
    hourly = _hourly_mean(kw, weekday)
    assert hourly[10:16].mean() > 2 * hourly[0:5].mean()
    weekend = _hourly_mean(kw, ~weekday)
    assert weekend[10:16].mean() < 0.6 * hourly[10:16].mean()


# ------------------------------------------------------------------------------------------- EV data
def test_ev_session_stats_are_probability_tables(sample_root):
    stats = pd.read_csv(sample_root / "ev" / "ev_session_stats.csv")
    assert list(stats.columns) == ["charger_level", "quantity", "bin_low", "bin_high", "probability", "unit"]
    sums = stats.groupby(["charger_level", "quantity"])["probability"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-9)
    assert set(stats["charger_level"]) == {"L1", "L2"}
    assert (sample_root / "ev" / "README.md").is_file()


# ------------------------------------------------------------------------------------------- build
def test_state_build_is_deterministic(tmp_path):
    digests = []
    for run in ("a", "b"):
        stats = {"feeders": [], "profiles": {}}
        BS.build_state_smartds("CA", tmp_path / run, BS.STATE_SAMPLES["CA"], stats)
        digests.append({str(p.relative_to(tmp_path / run)): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted((tmp_path / run).rglob("*")) if p.is_file()})
    assert digests[0] == digests[1]
    assert any(name.endswith(".parquet") for name in digests[0])


def test_existing_sample_is_not_rebuilt(tmp_path, sample_root):
    data = tmp_path / "data"
    data.mkdir()
    (data / "sample").symlink_to(sample_root)
    before = (sample_root / "sample_manifest.json").stat().st_mtime_ns
    assert BS.main(["--data-dir", str(data), "-q"]) == 0
    assert (sample_root / "sample_manifest.json").stat().st_mtime_ns == before


def test_a_sample_of_an_older_version_is_rebuilt(tmp_path):
    data = tmp_path / "data"
    (data / "sample").mkdir(parents=True)
    (data / "sample" / "sample_manifest.json").write_text(json.dumps({"version": BS.SAMPLE_VERSION - 1}))
    (data / "sample" / "left_over.txt").write_text("from the older sample")
    assert BS.main(["--data-dir", str(data), "-q"]) == 0
    assert json.loads((data / "sample" / "sample_manifest.json").read_text())["version"] == BS.SAMPLE_VERSION
    assert not (data / "sample" / "left_over.txt").exists()


def test_parquet_files_have_single_row_group_footer(sample_root):
    path = sorted((_subregion(sample_root, "CA") / "load_data").glob("com_*.parquet"))[0]
    assert pq.ParquetFile(path).metadata.num_rows == 35040


def test_manifest_lists_the_real_world_feeders_and_their_masters_exist(sample_root):
    manifest = json.loads((sample_root / "sample_manifest.json").read_text())
    generic = manifest["generic_feeders"]
    assert sorted(e["feeder"] for e in generic["feeders"]) == ["legacy_syntax", "tie_regulator", "utility_a",
                                                               "utility_b"]
    for entry in generic["feeders"]:
        assert (sample_root / generic["folder"] / entry["master"]).is_file()
    smartds = manifest["smartds_feature_feeders"]
    assert [e["subregion"] for e in smartds] == ["P2U"]
    assert all(f["subregion"] != "P2U" for f in manifest["feeders"])
