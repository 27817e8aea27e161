"""The newest EULP releases: their layouts in the release table, partitioned metadata read as one
table (``common.eulp``), and phase 1c fetching county partitions over the loopback bucket server
and from a local folder.

The embedded sample mirrors ComStock 2024 release 2 for NC (two county partitions, three buildings,
one of them on two rows of its county file); ResStock 2025 (one file per state) is built by the
tests that need it. The default releases (``EULP_RELEASE``: ResStock 2024 release 2 and ComStock 2024
release 1, both AMY 2018) stay the single-file ones that the other pipeline tests run on.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bucket_server import BucketServer
from common import config, eulp
from conftest import load_script
from sample import build_sample as BS

homes = load_script("1c_eulp_downloads/download_parquets_homes.py")
commercial = load_script("1c_eulp_downloads/download_parquets_commercial.py")

COUNTY_RELEASE = "2024/comstock_amy2018_release_2"
STATE_RELEASE = "2025/resstock_amy2018_release_1"
FAST = ["--timeout", "2,1", "--retries", "1", "--backoff", "0.01", "--workers", "4", "-q"]
NEW_RELEASES = ("2024/comstock_amy2018_release_2", "2025/comstock_amy2018_release_1",
                "2025/comstock_amy2018_release_2", "2025/comstock_amy2018_release_3",
                "2025/resstock_amy2018_release_1", "2025/resstock_amy2012_release_1")


# ------------------------------------------------------------------------------------------- helpers
@pytest.fixture
def oedi(sample_root: Path) -> Path:
    return sample_root / "oedi"


def mirrored_rows(sample_root: Path) -> dict[str, int]:
    """{metadata path below the release folder: rows} of the sample's partitioned mirror."""
    manifest = json.loads((sample_root / "sample_manifest.json").read_text())
    return manifest["releases"]["partitioned"]["metadata_rows"]


def county_keys(sample_root: Path) -> list[str]:
    return sorted(f"{config.EULP_PREFIX}/{COUNTY_RELEASE}/{rel}" for rel in mirrored_rows(sample_root))


def manifest(data: Path) -> pd.DataFrame:
    return pd.read_csv(data / "1c_eulp_downloads" / "manifest.csv", dtype=str, keep_default_na=False)


def local_file(data: Path, key: str) -> Path:
    return data / "1c_eulp_downloads" / key[len(config.EULP_PREFIX) + 1:]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def state_release_bucket(root: Path, states=("NC",)) -> dict[str, int]:
    """A bucket folder with ResStock 2025 metadata (one file per state) and each building's
    baseline series; returns {key: rows}."""
    written = {}
    for i, state in enumerate(states):
        rel = eulp.metadata_relpath(STATE_RELEASE, 0, state)
        ids = [1000 * (i + 1) + j for j in range(3 + i)]
        frame = pd.DataFrame({"bldg_id": ids, "in.state": state, "in.county": "G3700810",
                              "upgrade": 0, "weight": 253.9})
        path = root / config.EULP_PREFIX / STATE_RELEASE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
        written[f"{config.EULP_PREFIX}/{STATE_RELEASE}/{rel}"] = len(frame)
    return written


# ------------------------------------------------------------------------------------------- release table
def test_release_table_rows_are_complete():
    keys = {"stock", "class", "weather", "partition", "timeseries", "metadata_partition", "metadata_baseline",
            "metadata_upgrade", "building_type_column", "upgrades"}
    for release, layout in config.EULP_RELEASES.items():
        assert set(layout) == keys, release
        assert layout["metadata_partition"] in eulp.METADATA_PARTITIONS, release
        assert layout["class"] == {"resstock": "res", "comstock": "com"}[layout["stock"]], release
        assert layout["upgrades"][0] == "baseline", release
        assert layout["weather"] in ("TMY3", "AMY2018", "AMY2012"), release


def test_new_releases_are_in_the_table():
    assert set(NEW_RELEASES) <= set(config.EULP_RELEASES)


@pytest.mark.parametrize("release,upgrade,state,county,expected", [
    ("2024/comstock_amy2018_release_2", 0, "NC", "G3700810",
     "metadata_and_annual_results/by_state_and_county/full/parquet/state=NC/county=G3700810/NC_G3700810_baseline.parquet"),
    ("2024/comstock_amy2018_release_2", 8, "NC", "G3700810",
     "metadata_and_annual_results/by_state_and_county/full/parquet/state=NC/county=G3700810/NC_G3700810_upgrade08.parquet"),
    ("2025/comstock_amy2018_release_3", 0, "CA", "G0600750",
     "metadata_and_annual_results/by_state_and_county/full/parquet/state=CA/county=G0600750/CA_G0600750_upgrade0.parquet"),
    ("2025/resstock_amy2018_release_1", 0, "TX", None,
     "metadata_and_annual_results/by_state/full/parquet/state=TX/TX_upgrade0.parquet"),
    ("2024/resstock_tmy3_release_2", 1, None, None, "metadata/upgrade01.parquet"),
    ("2024/comstock_amy2018_release_1", 0, None, None, "metadata/baseline.parquet"),
])
def test_metadata_relpath_follows_the_published_layout(release, upgrade, state, county, expected):
    assert eulp.metadata_relpath(release, upgrade, state, county) == expected


@pytest.mark.parametrize("release,state,needs", [("2024/comstock_amy2018_release_2", None, "state"),
                                                 ("2024/comstock_amy2018_release_2", "NC", "county"),
                                                 ("2025/resstock_amy2018_release_1", None, "state")])
def test_metadata_relpath_of_a_partitioned_release_names_what_is_missing(release, state, needs):
    with pytest.raises(eulp.EULPError, match=f"name the {needs}"):
        eulp.metadata_relpath(release, 0, state)


@pytest.mark.parametrize("release", NEW_RELEASES)
def test_new_releases_keep_time_series_by_state(release):
    assert eulp.timeseries_relpath(release, 0, "NC", 90001) == \
        "timeseries_individual_buildings/by_state/upgrade=0/state=NC/90001-0.parquet"


def test_default_releases_stay_the_single_file_ones_of_the_sample():
    for state in config.STATES:
        assert config.EULP_RELEASE[state] == {"res": BS.RES_RELEASE, "com": BS.COM_RELEASE}
        assert {eulp.metadata_partition(r) for r in config.EULP_RELEASE[state].values()} == {"national"}


@pytest.mark.parametrize("cls", config.CLASSES)
def test_variant_rules_name_upgrades_of_the_default_and_mirrored_releases(cls):
    releases = {config.EULP_RELEASE[state][cls] for state in config.STATES}
    if cls == "com":
        releases.add(COUNTY_RELEASE)
    for release in sorted(releases):
        assert set(eulp.needed_upgrades(cls)) <= set(config.EULP_RELEASES[release]["upgrades"]), release


def test_metadata_partitions_picks_one_states_counties_of_one_upgrade():
    rel = lambda u, s, c: eulp.metadata_relpath(COUNTY_RELEASE, u, s, c)  # noqa: E731
    listing = [rel(0, "NC", "G3700810"), rel(0, "NC", "G3700670"), rel(1, "NC", "G3700810"), rel(0, "TX", "G4804530"),
               # a file whose name names another county than its folder is not a partition
               rel(0, "NC", "G3700810").replace("NC_G3700810", "NC_G3700670"), "data_dictionary.tsv"]
    assert eulp.metadata_partitions(COUNTY_RELEASE, "NC", 0, listing) == {
        "G3700670": rel(0, "NC", "G3700670"), "G3700810": rel(0, "NC", "G3700810")}
    assert list(eulp.metadata_partitions(COUNTY_RELEASE, "NC", 1, listing)) == ["G3700810"]


# ------------------------------------------------------------------------------------------- reading
def test_read_release_metadata_stacks_the_county_partitions(oedi, sample_root):
    table = eulp.read_release_metadata(oedi / config.EULP_PREFIX, COUNTY_RELEASE, "NC")
    baseline_rows = {rel: n for rel, n in mirrored_rows(sample_root).items() if rel.endswith("_baseline.parquet")}
    assert len(baseline_rows) == 2
    assert len(table) == sum(baseline_rows.values()) == 4
    assert table["bldg_id"].nunique() == 3  # one building fills two rows of its county file
    assert sorted(table["in.county"].unique()) == sorted(BS.PARTITIONED_COUNTIES)
    assert table["in.county"].is_monotonic_increasing  # stacked in county order
    assert len(table.attrs["files"]) == 2


def test_read_release_metadata_reads_an_upgrades_partitions(oedi):
    table = eulp.read_release_metadata(oedi / config.EULP_PREFIX, COUNTY_RELEASE, "NC", 8, columns=["bldg_id", "upgrade"])
    assert list(table.columns) == ["bldg_id", "upgrade"]
    assert len(table) == 4 and set(table["upgrade"]) == {8}


def test_read_release_metadata_of_a_state_without_partition_is_one_line(oedi):
    with pytest.raises(eulp.EULPFileError) as info:
        eulp.read_release_metadata(oedi / config.EULP_PREFIX, COUNTY_RELEASE, "TX")
    message = str(info.value)
    assert "\n" not in message
    assert "state TX" in message and COUNTY_RELEASE in message
    assert "download_parquets_commercial.py --state TX" in message and "--metadata-only" in message


def test_read_release_metadata_names_a_truncated_partition(oedi, tmp_path):
    root = tmp_path / "eulp"
    shutil.copytree(oedi / config.EULP_PREFIX / COUNTY_RELEASE / "metadata_and_annual_results", root / COUNTY_RELEASE /
                    "metadata_and_annual_results")
    victim = root / COUNTY_RELEASE / eulp.metadata_relpath(COUNTY_RELEASE, 0, "NC", "G3700810")
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.raises(eulp.EULPFileError, match=str(victim)):
        eulp.read_release_metadata(root, COUNTY_RELEASE, "NC")


def test_read_release_metadata_refuses_partitions_with_other_columns(oedi, tmp_path):
    root = tmp_path / "eulp"
    shutil.copytree(oedi / config.EULP_PREFIX / COUNTY_RELEASE / "metadata_and_annual_results", root / COUNTY_RELEASE /
                    "metadata_and_annual_results")
    odd = root / COUNTY_RELEASE / eulp.metadata_relpath(COUNTY_RELEASE, 0, "NC", "G3700810")
    pd.read_parquet(odd).drop(columns=["weight"]).to_parquet(odd, index=False)
    with pytest.raises(eulp.EULPError, match="columns differ.*weight"):
        eulp.read_release_metadata(root, COUNTY_RELEASE, "NC")


def test_read_release_metadata_of_a_by_state_release(tmp_path):
    written = state_release_bucket(tmp_path, states=("NC", "TX"))
    table = eulp.read_release_metadata(tmp_path / config.EULP_PREFIX, STATE_RELEASE, "TX")
    assert len(table) == written[f"{config.EULP_PREFIX}/{STATE_RELEASE}/{eulp.metadata_relpath(STATE_RELEASE, 0, 'TX')}"]
    assert set(table["in.state"]) == {"TX"}


# ------------------------------------------------------------------------------------------- phase 1c
def commercial_args(data: Path, source, state: str = "NC", *extra: str) -> list[str]:
    return ["--data-dir", str(data), "--source", str(source), "--state", state, "--release", COUNTY_RELEASE,
            *extra, *FAST]


def test_metadata_only_fetches_county_partitions_over_http(oedi, sample_root, tmp_path):
    with BucketServer(oedi, page_size=3) as bucket:
        assert commercial.main(commercial_args(tmp_path, bucket.url, "NC", "--metadata-only")) == 0
        assert bucket.list_requests >= 2  # six partitions, three per page: the token was followed
    keys = county_keys(sample_root)
    assert manifest(tmp_path)["key"].tolist() == keys
    assert (manifest(tmp_path)["status"] == "ok").all()
    for key in keys:
        assert local_file(tmp_path, key).read_bytes() == (oedi / key).read_bytes(), key
    table = eulp.read_release_metadata(tmp_path / "1c_eulp_downloads", COUNTY_RELEASE, "NC")
    assert len(table) == 4


def test_metadata_only_fetches_county_partitions_from_a_local_folder(oedi, sample_root, tmp_path):
    assert commercial.main(commercial_args(tmp_path, oedi, "NC", "--metadata-only")) == 0
    assert manifest(tmp_path)["key"].tolist() == county_keys(sample_root)
    for upgrade in BS.COM_UPGRADES:
        table = eulp.read_release_metadata(tmp_path / "1c_eulp_downloads", COUNTY_RELEASE, "NC", upgrade)
        assert len(table) == 4 and table["bldg_id"].nunique() == 3


@pytest.mark.parametrize("over", ["http", "local"])
def test_metadata_only_for_a_state_without_partition_exits_2_with_one_line(over, oedi, tmp_path, capsys):
    if over == "http":
        with BucketServer(oedi, page_size=3) as bucket:
            status = commercial.main(commercial_args(tmp_path, bucket.url, "TX", "--metadata-only"))
    else:
        status = commercial.main(commercial_args(tmp_path, oedi, "TX", "--metadata-only"))
    assert status == 2
    line = one_error_line(capsys)
    assert "state TX" in line and COUNTY_RELEASE in line and "--state" in line
    assert not (tmp_path / "1c_eulp_downloads" / COUNTY_RELEASE / "metadata_and_annual_results").exists()


def test_sample_of_a_county_partitioned_release_fetches_the_time_series(oedi, sample_root, tmp_path):
    assert commercial.main(commercial_args(tmp_path, oedi, "NC", "--sample", "2")) == 0
    table = manifest(tmp_path)
    assert (table["status"] == "ok").all()
    series = [k for k in table["key"] if "/timeseries_individual_buildings/" in k]
    assert len(series) == 2 * len(BS.COM_UPGRADES)
    assert sorted(set(table["key"]) - set(series)) == county_keys(sample_root)
    for key in series:
        assert local_file(tmp_path, key).read_bytes() == (oedi / key).read_bytes(), key


def test_by_state_release_fetches_the_states_metadata_file(tmp_path):
    bucket = tmp_path / "bucket"
    written = state_release_bucket(bucket, states=("NC", "TX"))
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--source", str(bucket), "--state", "NC", "--release", STATE_RELEASE,
            "--upgrades", "0", "--metadata-only", *FAST]
    assert homes.main(args) == 0
    nc_key = f"{config.EULP_PREFIX}/{STATE_RELEASE}/{eulp.metadata_relpath(STATE_RELEASE, 0, 'NC')}"
    assert manifest(data)["key"].tolist() == [nc_key]
    assert len(eulp.read_release_metadata(data / "1c_eulp_downloads", STATE_RELEASE, "NC")) == written[nc_key]


def test_release_without_the_variant_upgrades_exits_2_naming_them(tmp_path, capsys):
    bucket = tmp_path / "bucket"
    state_release_bucket(bucket)
    args = ["--data-dir", str(tmp_path / "data"), "--source", str(bucket), "--state", "NC", "--release",
            STATE_RELEASE, "--metadata-only", *FAST]
    assert homes.main(args) == 2
    line = one_error_line(capsys)
    assert "upgrade(s) 1 not in release" in line and "--upgrades" in line


def test_a_listing_that_keeps_failing_exits_1_naming_the_state(oedi, tmp_path, caplog):
    with BucketServer(oedi, page_size=3) as bucket:
        bucket.add_listing_fault("http500", times=10)
        assert commercial.main(commercial_args(tmp_path, bucket.url, "NC", "--metadata-only")) == 1
        assert bucket.list_requests == 1 + 2  # the probe, then --retries 1: two attempts, then the report
    assert "cannot list the metadata partitions of NC" in caplog.text
