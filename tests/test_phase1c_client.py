"""Phase 1c: the download client's pure functions, manifest, listings and retries (oedi_client.py and the
modules it gathers: oedi_sources.py, download_manifest.py, oedi_downloader.py; eulp_download.py).

Listings run against the loopback bucket server of ``tests/bucket_server.py`` with a page size of 3, so
that continuation tokens must be followed. No network and no embedded sample needed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bucket_server import BucketServer
from common import cli, config
from common.io import InputError, LockHeld
from conftest import load_script

load_script("1c_eulp_downloads/download_parquets_homes.py")  # puts the phase folder on sys.path
import eulp_download  # noqa: E402
import oedi_client  # noqa: E402
import oedi_sources  # noqa: E402

smartds_script = load_script("1c_eulp_downloads/download_smartds.py")

FAST = oedi_client.TransferSettings(workers=2, connect_timeout_s=2.0, read_timeout_s=2.0, retries=1, backoff_s=0.01,
                                    progress=False)


def _page(body: str, namespace: bool = True) -> bytes:
    xmlns = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' if namespace else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult{xmlns}>{body}</ListBucketResult>'.encode()


# ------------------------------------------------------------------------------------------- listings XML
@pytest.mark.parametrize("namespace", [True, False])
def test_parse_list_objects_v2_reads_contents_and_token(namespace):
    body = ("<IsTruncated>true</IsTruncated>"
            "<Contents><Key>a/b=1/c.parquet</Key><Size>12</Size><ETag>&quot;0123456789abcdef0123456789abcdef&quot;"
            "</ETag></Contents><Contents><Key>a/d.csv</Key><Size>0</Size><ETag>\"x-2\"</ETag></Contents>"
            "<NextContinuationToken>tok+/=</NextContinuationToken>")
    objects, truncated, token = oedi_client.parse_list_objects_v2(_page(body, namespace))
    assert objects == [oedi_client.ObjectInfo("a/b=1/c.parquet", 12, "0123456789abcdef0123456789abcdef"),
                       oedi_client.ObjectInfo("a/d.csv", 0, "x-2")]
    assert truncated is True
    assert token == "tok+/="


def test_parse_list_objects_v2_last_page_has_no_token():
    objects, truncated, token = oedi_client.parse_list_objects_v2(_page("<IsTruncated>false</IsTruncated>"))
    assert (objects, truncated, token) == ([], False, None)


def test_parse_list_objects_v2_error_document_raises():
    xml = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    with pytest.raises(oedi_client.ListingError, match="AccessDenied"):
        oedi_client.parse_list_objects_v2(xml)


# ------------------------------------------------------------------------------------------- ETag, keys, paths
@pytest.mark.parametrize("etag, expected", [
    ('"9e107d9d372bb6826bd81d3542a419d6"', "9e107d9d372bb6826bd81d3542a419d6"),
    ("9E107D9D372BB6826BD81D3542A419D6", "9e107d9d372bb6826bd81d3542a419d6"),
    ('"9e107d9d372bb6826bd81d3542a419d6-12"', None),  # multipart upload: not an MD5
    ('W/"9e107d9d372bb6826bd81d3542a419d6"', None),
    (None, None),
])
def test_single_part_md5_only_for_plain_md5_etags(etag, expected):
    assert oedi_client.single_part_md5(etag) == expected


@pytest.mark.parametrize("key", ["../etc/passwd", "a/../../b", "/abs/key", "a//b", "a\\b", ""])
def test_check_key_rejects_keys_leaving_the_dataset(key):
    with pytest.raises(oedi_client.PermanentError):
        oedi_client.check_key(key)


def test_local_path_strips_the_dataset_prefix(tmp_path):
    key = f"{config.EULP_PREFIX}/2024/x/metadata/baseline.parquet"
    assert oedi_client.local_path(tmp_path, key, config.EULP_PREFIX) == tmp_path / "2024/x/metadata/baseline.parquet"


def test_object_url_percent_encodes_the_key():
    assert oedi_client.object_url("https://b.example/", "a b/upgrade=0/c.parquet") == \
        "https://b.example/a%20b/upgrade%3D0/c.parquet"


def test_normalise_source_maps_s3_urls_to_https():
    assert oedi_client.normalise_source("s3://oedi-data-lake/") == "https://oedi-data-lake.s3.amazonaws.com"


def test_open_source_rejects_a_missing_folder(tmp_path):
    with pytest.raises(cli.UserError, match="--source"):
        oedi_client.open_source(str(tmp_path / "nowhere"), FAST)


# ------------------------------------------------------------------------------------------- SMART-DS references
FEEDER = "SMART-DS/v1.0/2018/AUS/P1U/scenarios/base_timeseries/opendss/p1uhs2_1247/p1uhs2_1247--p1udt3318"
REGION = "SMART-DS/v1.0/2018/AUS/P1U"


def test_resolve_reference_relative_to_the_feeder_folder():
    key = smartds_script.resolve_reference(FEEDER, "../../../../../profiles/res_kw_7440_pu.csv", REGION)
    assert key == f"{REGION}/profiles/res_kw_7440_pu.csv"


def test_resolve_reference_maps_absolute_windows_paths_onto_the_subregion():
    ref = r"C:\Users\someone\SMART-DS\AUS\P1U\profiles\com_kvar_42024_pu.csv"
    assert smartds_script.resolve_reference(FEEDER, ref, REGION) == f"{REGION}/profiles/com_kvar_42024_pu.csv"


def test_resolve_reference_outside_the_bucket_is_none():
    assert smartds_script.resolve_reference(FEEDER, "../" * 12 + "x.csv", REGION) is None
    assert smartds_script.resolve_reference(FEEDER, "/projects/elsewhere/x.csv", REGION) is None


@pytest.mark.parametrize("shape, expected", [
    ("res_kw_7440_pu", f"{REGION}/load_data/res_7440.parquet"),
    ("com_kw_42024_pu", f"{REGION}/load_data/com_42024.parquet"),
    ("pv_shape_1", None),
])
def test_load_data_key_from_shape_name(shape, expected):
    assert smartds_script.load_data_key(shape, REGION) == expected


def test_select_feeders_by_full_or_feeder_name():
    available = ["p1uhs2_1247--p1udt3318", "p1uhs2_1247--p1udt4106"]
    assert smartds_script.select_feeders(available, ["p1udt3318"]) == ["p1uhs2_1247--p1udt3318"]
    assert smartds_script.select_feeders(available, None) == available
    with pytest.raises(cli.UserError, match="p1udt4106"):
        smartds_script.select_feeders(available, ["nope"])


# ------------------------------------------------------------------------------------------- EULP layout
def test_variant_upgrades_are_baseline_and_heat_pump_upgrades():
    assert eulp_download.variant_upgrades("res") == [0, 1]
    assert eulp_download.variant_upgrades("com") == [0, 1, 8]


def test_timeseries_keys_by_county_use_the_county():
    import pandas as pd

    release = "2021/resstock_amy2018_release_1"
    buildings = pd.DataFrame({"in.county": ["G3700810"]}, index=pd.Index([1234], name="bldg_id"))
    keys = eulp_download.timeseries_keys(release, [0], [1234], "NC", buildings)
    assert keys == [f"{config.EULP_PREFIX}/{release}/"
                    "timeseries_individual_buildings/by_county/upgrade=0/county=G3700810/1234-0.parquet"]
    with pytest.raises(ValueError, match="county"):
        eulp_download.timeseries_keys(release, [0], [1234], "NC", buildings.assign(**{"in.county": ""}))


def test_timeseries_keys_by_state():
    release = "2024/resstock_tmy3_release_2"
    assert eulp_download.timeseries_keys(release, [4], [77], "TX", None) == [
        f"{config.EULP_PREFIX}/{release}/timeseries_individual_buildings/by_state/upgrade=4/state=TX/77-4.parquet"]


def test_metadata_keys_have_baseline_and_each_upgrade():
    release = "2024/comstock_amy2018_release_1"
    assert eulp_download.metadata_keys(release, [8, 0, 1]) == [
        f"{config.EULP_PREFIX}/{release}/metadata/{name}.parquet" for name in ("baseline", "upgrade01", "upgrade08")]


def test_metadata_keys_of_a_release_without_upgrade_metadata():
    release = "2021/resstock_amy2018_release_1"
    assert eulp_download.metadata_keys(release, [0, 1]) == [f"{config.EULP_PREFIX}/{release}/metadata/metadata.parquet"]


def test_sample_bldg_ids_is_reproducible_and_order_free():
    pool = list(range(1000, 1100))
    first = eulp_download.sample_bldg_ids(pool, 7, seed=5)
    assert first == eulp_download.sample_bldg_ids(list(reversed(pool)), 7, seed=5)
    assert first == sorted(set(first)) and len(first) == 7
    assert first != eulp_download.sample_bldg_ids(pool, 7, seed=6)


def test_parse_id_lines_skips_header_comments_and_blanks():
    assert eulp_download.parse_id_lines(["bldg_id", "12", "", "# note", "7  # why"], "list") == [7, 12]
    with pytest.raises(cli.UserError, match="list line 2"):
        eulp_download.parse_id_lines(["12", "x1"], "list")


# ------------------------------------------------------------------------------------------- manifest
def _row(key: str, status: str = "ok") -> dict[str, str]:
    return {"key": key, "size": "3", "checksum": "abc", "source": "s", "time": "t", "status": status}


def test_manifest_merges_latest_row_per_key_sorted(tmp_path):
    path = tmp_path / "manifest.csv"
    with oedi_client.Manifest(path) as manifest:
        manifest.record(_row("b"))
        manifest.record(_row("a", "missing"))
    with oedi_client.Manifest(path) as manifest:
        manifest.record(_row("a"))
    table = oedi_client.read_manifest(path)
    assert list(table.columns) == list(oedi_client.MANIFEST_COLUMNS)
    assert table["key"].tolist() == ["a", "b"]
    assert table["status"].tolist() == ["ok", "ok"]
    assert not (tmp_path / "manifest.csv.journal").exists()


def test_manifest_replays_the_journal_of_a_killed_run(tmp_path):
    path = tmp_path / "manifest.csv"
    journal = tmp_path / "manifest.csv.journal"
    journal.write_text("k1,3,abc,s,t,ok\nk2,3,abc,s,t,missing\nk3,3,ab", encoding="utf-8")  # last line torn
    with oedi_client.Manifest(path) as manifest:
        assert sorted(manifest.rows) == ["k1", "k2"]
    assert oedi_client.read_manifest(path)["key"].tolist() == ["k1", "k2"]


def test_manifest_lock_refuses_a_second_writer(tmp_path):
    path = tmp_path / "manifest.csv"
    with oedi_client.Manifest(path):
        with pytest.raises(LockHeld, match="phase 1c download"):
            oedi_client.Manifest(path).open()


def test_verified_on_disk_needs_matching_md5(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"abc")
    target = oedi_client.Target("k/f.csv", path)
    row = {"key": "k/f.csv", "size": "3", "checksum": hashlib.md5(b"abc").hexdigest(), "status": "ok"}
    assert oedi_client.verified_on_disk(target, row)[0] is True
    path.write_bytes(b"abd")  # same size, other bytes
    assert oedi_client.verified_on_disk(target, row) == (False, "MD5 on disk differs from the manifest")


# ------------------------------------------------------------------------------------------- listings
@pytest.fixture
def tiny_bucket(tmp_path) -> Path:
    root = tmp_path / "bucket"
    for i in range(10):
        path = root / "data" / f"part={i % 2}" / f"file{i:02d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{i}\n" * (i + 1))
    (root / "other" / "x.csv").parent.mkdir(parents=True)
    (root / "other" / "x.csv").write_text("x")
    return root


def test_http_listing_follows_continuation_tokens(tiny_bucket):
    with BucketServer(tiny_bucket, page_size=3) as server:
        source = oedi_client.HttpSource(server.url, FAST)
        objects = source.list_objects("data/")
        source.close()
        assert server.list_requests == 4  # 10 keys, 3 per page
    assert [o.key for o in objects] == sorted(p.relative_to(tiny_bucket).as_posix()
                                              for p in (tiny_bucket / "data").rglob("*.csv"))
    for obj in objects:
        data = (tiny_bucket / obj.key).read_bytes()
        assert obj.size_bytes == len(data)
        assert obj.etag == hashlib.md5(data).hexdigest()


def test_local_listing_matches_http_listing(tiny_bucket):
    with BucketServer(tiny_bucket, page_size=3) as server:
        http = oedi_client.HttpSource(server.url, FAST)
        http_objects = [(o.key, o.size_bytes) for o in http.list_objects("data/part=1/")]
        http.close()
    local_objects = [(o.key, o.size_bytes) for o in oedi_client.LocalSource(tiny_bucket).list_objects("data/part=1/")]
    assert http_objects == local_objects
    assert len(local_objects) == 5


@pytest.mark.parametrize("ids", [[3, 1, 7], [5, 6, 7]])  # an index stored as a column, or as a range
def test_read_buildings_accepts_bldg_id_stored_as_index(tmp_path, ids):
    import pandas as pd

    path = tmp_path / "baseline.parquet"
    frame = pd.DataFrame({"bldg_id": ids, "in.state": ["NC", "TX", "NC"], "in.county": ["G1", "G2", "G3"]})
    frame.set_index("bldg_id").to_parquet(path)
    table = eulp_download.read_buildings(path, ["bldg_id", "in.state"])
    assert list(table.columns) == ["bldg_id", "in.state"]
    assert table["bldg_id"].tolist() == ids
    assert table["in.state"].tolist() == ["NC", "TX", "NC"]


def test_read_buildings_names_a_missing_column(tmp_path):
    import pandas as pd

    path = tmp_path / "baseline.parquet"
    pd.DataFrame({"bldg_id": [1, 4], "in.state": ["NC", "NC"]}).to_parquet(path)
    with pytest.raises(cli.UserError, match="in.sqft"):
        eulp_download.read_buildings(path, ["bldg_id", "in.sqft"])


def test_check_download_rejects_a_parquet_without_footer(tmp_path):
    target = oedi_client.Target("k/x.parquet", tmp_path / "x.parquet")
    target.part_path.write_bytes(b"PAR1" + b"\0" * 60)
    body = oedi_client.Body(iter(()), 64, None)
    with pytest.raises(oedi_client.TransferError, match="not a readable parquet"):
        oedi_client.check_download(target, body, 64, hashlib.md5(target.part_path.read_bytes()).hexdigest())


def _broken_bucket(tmp_path: Path) -> Path:
    bucket = tmp_path / "bucket"
    (bucket / "d").mkdir(parents=True)
    (bucket / "d" / "bad.parquet").write_bytes(b"not parquet at all")
    (bucket / "d" / "good.csv").write_bytes(b"1\n2\n")
    return bucket


def test_broken_parquet_over_http_is_fetched_again_then_fails(tmp_path):
    dest = tmp_path / "dest"
    with BucketServer(_broken_bucket(tmp_path)) as server:
        with oedi_client.Downloader(oedi_client.HttpSource(server.url, FAST), dest, "d", FAST) as downloader:
            results = downloader.fetch([downloader.target("d/bad.parquet"), downloader.target("d/good.csv")])
            assert downloader.finish() == 1
        assert server.request_counts["d/bad.parquet"] == FAST.attempts
    assert [r.ok for r in results] == [False, True]
    assert results[0].status.startswith("failed: not a readable parquet file")
    assert results[0].attempts == FAST.attempts
    assert sorted(p.name for p in dest.iterdir()) == [".lock", "good.csv", "manifest.csv"]


def test_broken_parquet_in_a_local_source_is_an_input_error_naming_it(tmp_path):
    bucket = _broken_bucket(tmp_path)
    (bucket / "d" / "empty.parquet").write_bytes(b"")
    dest = tmp_path / "dest"
    with pytest.raises(InputError) as caught:
        with oedi_client.Downloader(oedi_client.LocalSource(bucket), dest, "d", FAST) as downloader:
            downloader.fetch([downloader.target("d/empty.parquet")])
    message = str(caught.value)
    assert str(bucket / "d" / "empty.parquet") in message and "not a readable parquet file" in message
    assert "\n" not in message
    assert not (dest / "empty.parquet").exists() and not list(dest.rglob("*.part"))


# ------------------------------------------------------------------------------------------- one retry layer
@pytest.mark.parametrize("retries", [0, 3])
def test_an_object_that_always_answers_500_is_requested_attempts_times(tmp_path, retries):
    settings = oedi_client.TransferSettings(workers=1, connect_timeout_s=2.0, read_timeout_s=2.0, retries=retries,
                                            backoff_s=0.001, progress=False)
    with BucketServer(_broken_bucket(tmp_path)) as server:
        server.add_fault("d/good.csv", "http500", times=1000)
        with oedi_client.Downloader(oedi_client.HttpSource(server.url, settings), tmp_path / "dest", "d",
                                    settings) as downloader:
            [result] = downloader.fetch([downloader.target("d/good.csv")])
        assert server.request_counts["d/good.csv"] == settings.attempts == retries + 1
    assert result.status.startswith("failed: HTTP 500") and f"after {retries + 1} attempts" in result.status


def test_a_listing_that_always_answers_500_is_requested_attempts_times(tmp_path):
    with BucketServer(_broken_bucket(tmp_path)) as server:
        server.add_listing_fault("http500", times=1000)
        source = oedi_client.HttpSource(server.url, FAST)
        with pytest.raises(oedi_client.ListingError, match="HTTP 500"):
            source.list_objects("d/")
        source.close()
        assert server.list_requests == FAST.attempts


def test_a_refused_connection_is_not_retried_by_the_whole_file_loop(tmp_path):
    settings = oedi_client.TransferSettings(workers=1, connect_timeout_s=0.5, read_timeout_s=0.5, retries=2,
                                            backoff_s=0.001, progress=False)
    with oedi_client.Downloader(oedi_client.HttpSource("http://127.0.0.1:9", settings), tmp_path / "dest", "d",
                                settings) as downloader:
        [result] = downloader.fetch([downloader.target("d/good.csv")])
    assert result.status.startswith("failed: cannot connect")
    assert result.attempts == 1  # urllib3 made the connect retries; no second layer on top


def test_urllib3_retries_connections_only():
    retry = oedi_sources.connect_only_retry(FAST)
    assert (retry.connect, retry.read, retry.status, retry.other) == (FAST.retries, False, 0, 0)
    assert not retry.status_forcelist and not retry.respect_retry_after_header


@pytest.mark.parametrize("attempt, retry_after_s, expected_s", [
    (1, None, 1.0), (3, None, 4.0), (20, None, oedi_sources.MAX_BACKOFF_S),
    (1, 7.0, 7.0), (1, 1e9, oedi_sources.MAX_RETRY_AFTER_S),
])
def test_retry_delay_backs_off_and_honours_retry_after(attempt, retry_after_s, expected_s):
    assert oedi_client.retry_delay_s(attempt, 1.0, retry_after_s) == expected_s


def test_parse_retry_after_reads_seconds_and_http_dates():
    from datetime import datetime, timezone

    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert oedi_client.parse_retry_after("3") == 3.0
    assert oedi_client.parse_retry_after("Mon, 01 Jan 2024 12:00:30 GMT", now=now) == 30.0
    assert oedi_client.parse_retry_after("soon") is None and oedi_client.parse_retry_after(None) is None


# ------------------------------------------------------------------------------------------- clean-up, metadata
def test_clean_leftovers_removes_part_and_hidden_tmp_files_only(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    leftovers = [tmp_path / "a" / "b" / "x.parquet.part", tmp_path / "a" / ".manifest.csv.k2j3.tmp"]
    kept = [tmp_path / "a" / "b" / "x.parquet", tmp_path / "a" / "notes.tmp"]
    for path in leftovers + kept:
        path.write_bytes(b"1")
    assert oedi_client.clean_leftovers(tmp_path) == 2
    assert [p.exists() for p in leftovers] == [False, False]
    assert [p.exists() for p in kept] == [True, True]


@pytest.mark.parametrize("content", [b"", b"PAR1" + b"\0" * 60])
def test_read_buildings_of_an_unreadable_file_names_it(tmp_path, content):
    from common import eulp

    path = tmp_path / "baseline.parquet"
    path.write_bytes(content)
    with pytest.raises(eulp.EULPFileError, match=str(path)):
        eulp_download.read_buildings(path, ["bldg_id", "in.state"])
