"""Phase 1c: the download scripts end to end, over the loopback bucket server and the embedded sample.

The server (``tests/bucket_server.py``) serves the embedded sample's OEDI folder over real HTTP on
127.0.0.1 and injects faults per key; the local-folder source reads the same folder directly. Every
download must end byte-identical to the source with no ``.part`` left, or report exactly what is
missing (exit status 1, manifest rows); bad input ends with one stderr line and exit status 2.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bucket_server import BucketServer
from common import config
from conftest import REPO, load_script

homes = load_script("1c_eulp_downloads/download_parquets_homes.py")
commercial = load_script("1c_eulp_downloads/download_parquets_commercial.py")
smartds = load_script("1c_eulp_downloads/download_smartds.py")

RES = config.EULP_RELEASE["NC"]["res"]
COM = config.EULP_RELEASE["NC"]["com"]
#: short timeouts and backoff so that faults cost little time
FAST = ["--timeout", "2,1", "--retries", "2", "--backoff", "0.01", "--workers", "4", "-q"]
TX_FEEDER = "p1uhs2_1247--p1udt3318"
TX_REGION = f"{config.SMARTDS_PREFIX}/2018/AUS/P1U"


# ------------------------------------------------------------------------------------------- helpers
def nc_ids(sample_root: Path, release: str, n: int) -> list[int]:
    meta = pd.read_parquet(sample_root / "oedi" / config.EULP_PREFIX / release /
                           config.EULP_RELEASES[release]["metadata_baseline"], columns=["bldg_id", "in.state"])
    return sorted(meta.loc[meta["in.state"] == "NC", "bldg_id"].astype(int))[:n]


def ts_key(release: str, upgrade: int, bldg_id: int, state: str = "NC") -> str:
    rel = config.EULP_RELEASES[release]["timeseries"].format(upgrade=upgrade, state=state, bldg_id=bldg_id)
    return f"{config.EULP_PREFIX}/{release}/{rel}"


def meta_key(release: str) -> str:
    return f"{config.EULP_PREFIX}/{release}/{config.EULP_RELEASES[release]['metadata_baseline']}"


def local_file(data: Path, key: str) -> Path:
    if key.startswith(config.SMARTDS_PREFIX + "/"):
        return data / "smartds" / key[len(config.SMARTDS_PREFIX) + 1:]
    return data / "1c_eulp_downloads" / key[len(config.EULP_PREFIX) + 1:]


def manifest(data: Path, dataset: str = "1c_eulp_downloads") -> pd.DataFrame:
    return pd.read_csv(data / dataset / "manifest.csv", dtype=str, keep_default_na=False)


def assert_identical(data: Path, oedi: Path, keys) -> None:
    for key in keys:
        assert local_file(data, key).read_bytes() == (oedi / key).read_bytes(), key


def part_files(data: Path) -> list[Path]:
    return sorted(data.rglob("*.part"))


def homes_args(data: Path, source, ids, *extra: str) -> list[str]:
    return ["--data-dir", str(data), "--source", str(source), "--state", "NC",
            "--bldg-ids", ",".join(map(str, ids)), *extra]


@pytest.fixture
def oedi(sample_root: Path) -> Path:
    return sample_root / "oedi"


@pytest.fixture
def bucket(oedi: Path):
    with BucketServer(oedi, page_size=3) as server:
        yield server


# ------------------------------------------------------------------------------------------- faults over HTTP
FAULTS = {  # fault kind -> (times injected, extra client flags)
    "http500": (2, []),
    "http429": (1, []),
    "reset": (1, []),
    "truncate": (2, []),
    "corrupt": (1, []),
    "slow": (1, ["--timeout", "2,0.5"]),
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_download_survives_fault(kind, bucket, oedi, tmp_path):
    times, extra = FAULTS[kind]
    ids = nc_ids(oedi.parent, RES, 2)
    faulty = ts_key(RES, 0, ids[1])
    bucket.add_fault(faulty, kind, times=times, delay_s=3.0)
    started = time.monotonic()
    assert homes.main(homes_args(tmp_path, bucket.url, ids, "--upgrades", "0", *FAST, *extra)) == 0
    keys = [meta_key(RES)] + [ts_key(RES, 0, b) for b in ids]
    assert_identical(tmp_path, oedi, keys)
    assert part_files(tmp_path) == []
    assert bucket.request_counts[faulty] == times + 1
    assert manifest(tmp_path)["status"].tolist() == ["ok"] * 3
    if kind == "http429":
        assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured


def test_missing_key_is_reported_with_exit_1(bucket, oedi, tmp_path, caplog):
    ids = nc_ids(oedi.parent, RES, 3)
    gone = ts_key(RES, 1, ids[0])
    bucket.add_fault(gone, "missing", times=100)
    assert homes.main(homes_args(tmp_path, bucket.url, ids, *FAST)) == 1
    table = manifest(tmp_path).set_index("key")
    assert table.loc[gone, "status"] == "missing"
    assert (table.drop(index=gone)["status"] == "ok").all()
    assert len(table) == 2 + 2 * 3  # baseline + upgrade01 metadata, 3 homes x upgrades 0 and 1
    assert not local_file(tmp_path, gone).exists()
    assert bucket.request_counts[gone] == 1  # a 404 is an answer, not retried
    summary = [r.getMessage() for r in caplog.records if "1 missing" in r.getMessage()]
    assert len(summary) == 1 and gone in summary[0]


def test_persistent_server_error_fails_the_file_with_exit_1(bucket, oedi, tmp_path):
    ids = nc_ids(oedi.parent, RES, 1)
    broken = ts_key(RES, 0, ids[0])
    bucket.add_fault(broken, "http500", times=1000)
    assert homes.main(homes_args(tmp_path, bucket.url, ids, "--upgrades", "0", *FAST)) == 1
    status = manifest(tmp_path).set_index("key").loc[broken, "status"]
    assert status.startswith("failed: HTTP 500")
    assert not local_file(tmp_path, broken).exists()
    assert part_files(tmp_path) == []


def test_smartds_listing_pagination_is_followed(bucket, oedi, tmp_path):
    args = ["--state", "TX", "--data-dir", str(tmp_path), "--source", bucket.url, *FAST]
    assert smartds.main(args) == 0
    prefix = f"{TX_REGION}/scenarios/base_timeseries/opendss/"
    listed = sorted(p.relative_to(oedi).as_posix() for p in (oedi / prefix).rglob("*") if p.is_file())
    assert len(listed) > 3 * 2
    assert bucket.list_requests >= -(-len(listed) // 3)  # ceil(n / page size) pages
    assert_identical(tmp_path, oedi, listed)


# ------------------------------------------------------------------------------------------- resume
def test_killed_run_resumes_without_refetching_verified_files(bucket, oedi, tmp_path):
    ids = nc_ids(oedi.parent, RES, 5)
    keys = [meta_key(RES)] + [ts_key(RES, 0, b) for b in ids]
    stalled = keys[-2:]  # fetched last: both workers hang on them, the others are done
    for key in stalled:
        bucket.add_fault(key, "stall", times=1, delay_s=60.0)
    script = REPO / "1c_eulp_downloads" / "download_parquets_homes.py"
    args = homes_args(tmp_path, bucket.url, ids, "--upgrades", "0", "--workers", "2", "--timeout", "5,60",
                      "--retries", "1", "--backoff", "0.01", "-q")
    process = subprocess.Popen([sys.executable, str(script), *args], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    journal = tmp_path / "1c_eulp_downloads" / "manifest.csv.journal"
    done = set(keys[:-2])
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            rows = journal.read_text() if journal.exists() else ""
            parts_written = [local_file(tmp_path, k).with_name(local_file(tmp_path, k).name + ".part") for k in stalled]
            if all(f"{k}," in rows for k in done) and all(p.exists() for p in parts_written):
                break
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("the first run did not reach the stalled files")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()
    assert all(not local_file(tmp_path, k).exists() for k in stalled)
    assert part_files(tmp_path)  # the kill left partial files behind

    assert homes.main(homes_args(tmp_path, bucket.url, ids, "--upgrades", "0", *FAST)) == 0
    assert_identical(tmp_path, oedi, keys)
    assert part_files(tmp_path) == []
    assert {k: bucket.request_counts[k] for k in done} == {k: 1 for k in done}
    assert {k: bucket.request_counts[k] for k in stalled} == {k: 2 for k in stalled}
    assert manifest(tmp_path)["key"].tolist() == sorted(keys)
    assert not journal.exists()


def test_corrupt_final_file_is_fetched_again(bucket, oedi, tmp_path):
    ids = nc_ids(oedi.parent, RES, 2)
    args = homes_args(tmp_path, bucket.url, ids, "--upgrades", "0", *FAST)
    assert homes.main(args) == 0
    victim = ts_key(RES, 0, ids[0])
    path = local_file(tmp_path, victim)
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01  # same size, one bit changed
    path.write_bytes(bytes(data))
    assert homes.main(args) == 0
    assert_identical(tmp_path, oedi, [victim])
    assert bucket.request_counts[victim] == 2
    assert bucket.request_counts[ts_key(RES, 0, ids[1])] == 1
    assert bucket.request_counts[meta_key(RES)] == 1


def test_leftover_part_file_is_not_trusted(bucket, oedi, tmp_path):
    ids = nc_ids(oedi.parent, RES, 1)
    args = homes_args(tmp_path, bucket.url, ids, "--upgrades", "0", *FAST)
    assert homes.main(args) == 0
    key = ts_key(RES, 0, ids[0])
    path = local_file(tmp_path, key)
    path.rename(path.with_name(path.name + ".part"))  # complete bytes, but only a .part
    assert homes.main(args) == 0
    assert bucket.request_counts[key] == 2
    assert_identical(tmp_path, oedi, [key])
    assert part_files(tmp_path) == []


# ------------------------------------------------------------------------------- the sample as a local source
def test_homes_with_bldg_ids_from_local_folder(oedi, tmp_path):
    ids = nc_ids(oedi.parent, RES, 2)
    assert homes.main(homes_args(tmp_path, oedi, ids, "-q")) == 0
    keys = [meta_key(RES), f"{config.EULP_PREFIX}/{RES}/metadata/upgrade01.parquet"]
    keys += [ts_key(RES, u, b) for u in (0, 1) for b in ids]
    table = manifest(tmp_path)
    assert list(table.columns) == ["key", "size", "checksum", "source", "time", "status"]
    assert table["key"].tolist() == sorted(keys)
    assert (table["status"] == "ok").all()
    assert (table["source"] == str(oedi.resolve())).all()
    assert_identical(tmp_path, oedi, keys)


def test_homes_sample_is_reproducible(oedi, tmp_path):
    runs = []
    for name in ("a", "b"):
        data = tmp_path / name
        assert homes.main(["--data-dir", str(data), "--source", str(oedi), "--state", "NC", "--sample", "3", "-q"]) == 0
        ts = sorted(p.name for p in (data / "1c_eulp_downloads").rglob("upgrade=0/state=NC/*.parquet"))
        runs.append(ts)
        assert len(manifest(data)) == 2 + 2 * 3
    assert runs[0] == runs[1]
    assert len(runs[0]) == 3


def test_homes_default_list_from_phase_1b(oedi, tmp_path):
    ids = nc_ids(oedi.parent, RES, 3)[1:]
    id_list = tmp_path / "1b_smartds_eulp_match" / "NC" / "NC_bldg_ids_res.txt"
    id_list.parent.mkdir(parents=True)
    id_list.write_text("".join(f"{b}\n" for b in ids))
    assert homes.main(["--data-dir", str(tmp_path), "--source", str(oedi), "--upgrades", "0", "-q"]) == 0
    assert manifest(tmp_path)["key"].tolist() == sorted([meta_key(RES)] + [ts_key(RES, 0, b) for b in ids])


def test_homes_metadata_only(oedi, tmp_path):
    assert homes.main(["--data-dir", str(tmp_path), "--source", str(oedi), "--metadata-only", "-q"]) == 0
    upgrade01 = f"{config.EULP_PREFIX}/{RES}/metadata/upgrade01.parquet"
    assert manifest(tmp_path)["key"].tolist() == [meta_key(RES), upgrade01]


def test_commercial_sample_fetches_heat_pump_upgrades(oedi, tmp_path):
    assert commercial.main(["--data-dir", str(tmp_path), "--source", str(oedi), "--state", "NC", "--sample", "3",
                            "-q"]) == 0
    table = manifest(tmp_path)
    assert (table["status"] == "ok").all()
    upgrades = sorted({int(m) for m in re.findall(r"upgrade=(\d+)/", " ".join(table["key"]))})
    assert upgrades == [0, 1, 8]
    assert len(table) == 3 + 3 * 3  # baseline, upgrade01, upgrade08 metadata; 3 buildings x 3 upgrades
    assert_identical(tmp_path, oedi, table["key"])


def test_by_county_release_takes_the_county_from_the_metadata(tmp_path):
    release = "2021/resstock_amy2018_release_1"
    layout = config.EULP_RELEASES[release]
    bucket = tmp_path / "bucket"
    meta = pd.DataFrame({"bldg_id": [11, 12, 13], "in.state": ["NC", "NC", "TX"],
                         "in.county": ["G3700810", "G3701190", "G4804530"]})
    meta_path = bucket / config.EULP_PREFIX / release / layout["metadata_baseline"]
    meta_path.parent.mkdir(parents=True)
    meta.to_parquet(meta_path)
    keys = []
    for bldg_id, county in [(11, "G3700810"), (12, "G3701190")]:
        rel = layout["timeseries"].format(upgrade=0, county=county, bldg_id=bldg_id)
        path = bucket / config.EULP_PREFIX / release / rel
        path.parent.mkdir(parents=True)
        pd.DataFrame({"timestamp": pd.date_range("2018-01-01 00:15", periods=4, freq="15min"),
                      config.EULP_TOTAL_KWH: [0.1, 0.2, 0.3, 0.4]}).to_parquet(path)
        keys.append(f"{config.EULP_PREFIX}/{release}/{rel}")
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--source", str(bucket), "--release", release, "--upgrades", "0",
            "--bldg-ids", "11,12", "-q"]
    assert homes.main(args) == 0
    assert manifest(data)["key"].tolist() == sorted([meta_key(release)] + keys)
    assert_identical(data, bucket, keys)


def test_second_run_merges_into_the_manifest(oedi, tmp_path):
    ids = nc_ids(oedi.parent, RES, 2)
    assert homes.main(homes_args(tmp_path, oedi, ids[:1], "--upgrades", "0", "-q")) == 0
    assert homes.main(homes_args(tmp_path, oedi, ids[1:], "--upgrades", "0", "-q")) == 0
    assert manifest(tmp_path)["key"].tolist() == sorted([meta_key(RES)] + [ts_key(RES, 0, b) for b in ids])


def test_smartds_one_feeder_fetches_exactly_its_references(oedi, tmp_path):
    args = ["--state", "TX", "--feeders", TX_FEEDER, "--data-dir", str(tmp_path), "--source", str(oedi), "-q"]
    assert smartds.main(args) == 0
    feeder_dir = next((oedi / TX_REGION / "scenarios" / "base_timeseries" / "opendss").glob(f"*/{TX_FEEDER}"))
    text = (feeder_dir / "LoadShapes.dss").read_text()
    profiles = {Path(os.path.normpath(feeder_dir / ref)).name for ref in re.findall(r"file=([^)\s]+)", text)}
    shapes = re.findall(r"New Loadshape\.(res|com)_kw_(\d+)_pu", text)
    region = tmp_path / "smartds" / "2018" / "AUS" / "P1U"
    assert profiles and shapes
    assert {p.name for p in (region / "profiles").iterdir()} == profiles
    assert {p.name for p in (region / "load_data").iterdir()} == {f"{c}_{i}.parquet" for c, i in shapes}
    fetched_feeders = {p.name for p in (region / "scenarios" / "base_timeseries" / "opendss").glob("*/*")}
    assert fetched_feeders == {TX_FEEDER}
    table = manifest(tmp_path, "smartds")
    assert (table["status"] == "ok").all()
    assert len(table) == len(list(feeder_dir.iterdir())) + len(profiles) + len(shapes)
    assert_identical(tmp_path, oedi, table["key"])


def test_smartds_missing_profile_is_reported_with_exit_1(bucket, oedi, tmp_path):
    feeder_dir = next((oedi / TX_REGION / "scenarios" / "base_timeseries" / "opendss").glob(f"*/{TX_FEEDER}"))
    first_profile = re.search(r"file=\.\./\.\./\.\./\.\./\.\./profiles/([^)\s]+)",
                              (feeder_dir / "LoadShapes.dss").read_text()).group(1)
    gone = f"{TX_REGION}/profiles/{first_profile}"
    bucket.add_fault(gone, "missing", times=100)
    args = ["--state", "TX", "--feeders", TX_FEEDER, "--data-dir", str(tmp_path), "--source", bucket.url, *FAST]
    assert smartds.main(args) == 1
    table = manifest(tmp_path, "smartds").set_index("key")
    assert table.loc[gone, "status"] == "missing"
    assert (table.drop(index=gone)["status"] == "ok").all()


# ------------------------------------------------------------------------------------------- bad input
BAD_INPUT = {
    "unknown release": (homes, ["--release", "2024/resstock_nowhere"], "--release"),
    "release of the other class": (commercial, ["--release", RES], "--release"),
    "unknown state": (homes, ["--state", "ZZ"], "--state"),
    "unknown upgrade": (homes, ["--upgrades", "0,7", "--bldg-ids", "1"], "--upgrades"),
    "malformed bldg ids": (homes, ["--bldg-ids", "12,abc"], "--bldg-ids"),
    "missing bldg id file": (homes, ["--bldg-ids", "ids/none.txt"], "--bldg-ids"),
    "no phase 1b list": (homes, [], "select_rep_family.py"),
    "unknown feeder": (smartds, ["--state", "TX", "--feeders", "nope"], "--feeders"),
    "bad timeout": (homes, ["--timeout", "soon", "--bldg-ids", "1"], "--timeout"),
    "variant upgrades not in release": (homes, ["--release", "2021/resstock_amy2018_release_1", "--bldg-ids", "1"],
                                        "--upgrades"),
    "NaN timeout": (homes, ["--timeout", "nan", "--bldg-ids", "1"], "--timeout"),
    "NaN read timeout, commercial": (commercial, ["--timeout", "2,nan", "--metadata-only"], "--timeout"),
    "NaN timeout, SMART-DS": (smartds, ["--state", "TX", "--timeout", "nan"], "--timeout"),
    "zero workers": (smartds, ["--state", "TX", "--workers", "0"], "--workers"),
    "negative retries": (homes, ["--retries", "-1", "--metadata-only"], "--retries"),
    "NaN backoff": (commercial, ["--backoff", "nan", "--metadata-only"], "--backoff"),
    "zero sample": (homes, ["--sample", "0"], "--sample"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_exits_2_with_one_line(case, oedi, tmp_path, capsys):
    script, args, flag = BAD_INPUT[case]
    assert script.main(["--data-dir", str(tmp_path), "--source", str(oedi), *args]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0] and flag in lines[0]
    assert "Traceback" not in err


def test_bldg_ids_not_in_the_state_exit_2(oedi, tmp_path, capsys):
    assert homes.main(homes_args(tmp_path, oedi, [999999999], "-q")) == 2
    assert "999999999" in capsys.readouterr().err


def test_unreachable_source_exits_2_with_one_line(tmp_path):
    script = REPO / "1c_eulp_downloads" / "download_parquets_homes.py"
    run = subprocess.run([sys.executable, str(script), "--data-dir", str(tmp_path), "--source", "http://127.0.0.1:9",
                          "--bldg-ids", "1", "--timeout", "0.5", "--retries", "1", "--backoff", "0.01"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "cannot reach" in lines[0] and "127.0.0.1:9" in lines[0]
    assert not (tmp_path / "1c_eulp_downloads").exists()


# ------------------------------------------------------------------------------------------- common conventions
def _write_feeder_bucket(root: Path, shape_id: str) -> tuple[str, str]:
    """A SMART-DS bucket with one feeder whose load shape has the id ``shape_id``; (region key, feeder)."""
    region = f"{config.SMARTDS_PREFIX}/2018/AUS/P1U"
    feeder = "p1uhs9_1247--p1udt9001"
    folder = root / region / "scenarios" / "base_timeseries" / "opendss" / "p1uhs9_1247" / feeder
    folder.mkdir(parents=True)
    (folder / "Master.dss").write_text("Clear\nRedirect LoadShapes.dss\n")
    (folder / "LoadShapes.dss").write_text(
        f"New Loadshape.res_kw_{shape_id}_pu npts=4 interval=0.25 "
        f"mult = (file=../../../../../profiles/res_kw_{shape_id}_pu.csv)\n")
    (root / region / "profiles").mkdir(parents=True)
    (root / region / "profiles" / f"res_kw_{shape_id}_pu.csv").write_text("0.1\n0.2\n0.3\n0.4\n")
    (root / region / "load_data").mkdir(parents=True)
    pd.DataFrame({"total_site_electricity_kw": [1.0, 2.0, 3.0, 4.0]}).to_parquet(
        root / region / "load_data" / f"res_{shape_id}.parquet")
    return region, feeder


def test_smartds_shape_id_with_letters_gets_its_load_data(tmp_path):
    from common import smartds as smartds_conventions

    shape_id = "a12b"
    assert smartds_conventions.parse_shape(f"res_kw_{shape_id}_pu") == ("res", shape_id)  # phase 1b matches it
    bucket = tmp_path / "bucket"
    region, feeder = _write_feeder_bucket(bucket, shape_id)
    data = tmp_path / "data"
    args = ["--state", "TX", "--feeders", feeder, "--data-dir", str(data), "--source", str(bucket), "-q"]
    assert smartds.main(args) == 0
    load_data = f"{region}/load_data/res_{shape_id}.parquet"
    assert_identical(data, bucket, [load_data, f"{region}/profiles/res_kw_{shape_id}_pu.csv"])
    assert load_data in manifest(data, "smartds")["key"].tolist()


# ------------------------------------------------------------------------------------------- broken metadata
def test_empty_metadata_in_a_local_source_exits_2_naming_it(oedi, tmp_path, capsys):
    bucket = tmp_path / "bucket"
    baseline = bucket / meta_key(RES)
    baseline.parent.mkdir(parents=True)
    baseline.write_bytes(b"")
    data = tmp_path / "data"
    assert homes.main(["--data-dir", str(data), "--source", str(bucket), "--metadata-only", "--upgrades", "0",
                       *FAST]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(baseline) in lines[0] and "not a readable parquet file" in lines[0]
    assert "Traceback" not in err
    assert not local_file(data, meta_key(RES)).exists() and part_files(data) == []


def test_truncated_downloaded_metadata_is_fetched_again(bucket, oedi, tmp_path):
    args = ["--data-dir", str(tmp_path), "--source", bucket.url, "--metadata-only", "--upgrades", "0", *FAST]
    assert homes.main(args) == 0
    path = local_file(tmp_path, meta_key(RES))
    for size in (0, path.stat().st_size // 2):  # empty, then cut in half
        data = (oedi / meta_key(RES)).read_bytes()
        path.write_bytes(data[:size])
        assert homes.main(args) == 0
        assert_identical(tmp_path, oedi, [meta_key(RES)])
    assert bucket.request_counts[meta_key(RES)] == 3


def _metadata_with_broken_data(path: Path) -> None:
    """NC buildings whose parquet footer reads but whose first data page does not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"bldg_id": list(range(100, 140)), "in.state": ["NC"] * 40})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="none", use_dictionary=False)
    column = pq.read_metadata(path).row_group(0).column(0)
    data = bytearray(path.read_bytes())
    start, size = column.data_page_offset, column.total_compressed_size // 2  # inside the first column chunk
    data[start:start + size] = b"\x55" * size
    path.write_bytes(bytes(data))
    assert pq.read_metadata(path).num_rows == 40


def test_metadata_whose_data_do_not_read_exits_2_and_is_fetched_again_next_time(tmp_path, capsys):
    bucket = tmp_path / "bucket"
    _metadata_with_broken_data(bucket / meta_key(RES))
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--source", str(bucket), "--upgrades", "0", "--sample", "1", *FAST]
    assert homes.main(args) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(local_file(data, meta_key(RES))) in lines[0] and "Traceback" not in err
    assert manifest(data).set_index("key").loc[meta_key(RES), "status"].startswith("failed: ")

    good = pd.DataFrame({"bldg_id": [100, 101], "in.state": ["NC", "NC"]})
    good.to_parquet(bucket / meta_key(RES))  # the source repaired
    for bldg_id in good["bldg_id"]:
        series = bucket / ts_key(RES, 0, bldg_id)
        series.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": pd.date_range("2018-01-01 00:15", periods=4, freq="15min"),
                      config.EULP_TOTAL_KWH: [0.1, 0.2, 0.3, 0.4]}).to_parquet(series)
    assert homes.main(args) == 0
    assert_identical(data, bucket, [meta_key(RES)])


# ------------------------------------------------------------------------------------------- leftovers of kills
def test_leftover_part_and_tmp_files_are_removed_when_a_script_starts(oedi, tmp_path):
    args = ["--data-dir", str(tmp_path), "--source", str(oedi), "--metadata-only", "--upgrades", "0", "-q"]
    assert homes.main(args) == 0
    meta = local_file(tmp_path, meta_key(RES))
    leftovers = [meta.with_name(meta.name + ".part"),  # beside a verified file: never fetched again
                 meta.parent / ".baseline.parquet.x1y2z3.tmp",  # a killed atomic write
                 tmp_path / "1c_eulp_downloads" / ".manifest.csv.abcd.tmp",
                 tmp_path / "1c_eulp_downloads" / "2024" / "other_release" / "f.parquet.part"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    assert homes.main(args) == 0
    assert [p.exists() for p in leftovers] == [False] * len(leftovers)
    assert meta.exists()


def test_smartds_removes_leftover_part_files_when_it_starts(oedi, tmp_path):
    args = ["--state", "TX", "--feeders", TX_FEEDER, "--data-dir", str(tmp_path), "--source", str(oedi), "-q"]
    leftover = tmp_path / "smartds" / "2018" / "AUS" / "P1U" / "profiles" / "res_kw_1_pu.csv.part"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")
    assert smartds.main(args) == 0
    assert not leftover.exists()


def test_smartds_solar_scenario_fetches_its_pv_profiles(oedi, tmp_path):
    """A solar scenario's PVShapes.dss points into the scenario's pv-profiles/: those files are fetched
    with the feeder, so that the copy of phase 1b finds its PV shapes."""
    scenario = "solar_medium_batteries_none_timeseries"
    region = "SMART-DS/v1.0/2018/AUS/P2U"
    args = ["--state", "TX", "--subregion", "P2U", "--scenario", scenario, "--data-dir", str(tmp_path),
            "--source", str(oedi), "-q"]
    assert smartds.main(args) == 0
    feeder_dir = next((oedi / region / "scenarios" / scenario / "opendss").glob("*/*--*"))
    refs = re.findall(r"file=([^)\s]+)", (feeder_dir / "PVShapes.dss").read_text())
    wanted = {Path(os.path.normpath(feeder_dir / ref)).name for ref in refs}
    fetched = tmp_path / "smartds" / "2018" / "AUS" / "P2U" / "scenarios" / scenario / "pv-profiles"
    assert wanted and {p.name for p in fetched.iterdir()} == wanted
    assert (manifest(tmp_path, "smartds")["status"] == "ok").all()
