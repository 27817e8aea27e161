"""NREL End-Use Load Profiles: release layouts, heat-pump variant rules, building time series.

Paths come from the release table ``common.config.EULP_RELEASES`` (never from string surgery).
Metadata are one file per upgrade (``national``), one file per state (``by_state``) or one file per
county (``by_state_and_county``, ComStock 2024 release 2 and 2025): :func:`metadata_paths` finds a
state's files in a local mirror (:func:`metadata_partitions` picks them out of a bucket listing)
and :func:`read_release_metadata` reads them as one table.
Time series hold kWh per 15-min interval labelled at the interval's END (the first row is 00:15 on
1 January, standard time): :func:`read_building_kw` returns mean kW (4 x kWh) indexed by the
interval's START, so row ``i`` is the interval that begins ``15 i`` minutes after midnight on
1 January, the same convention as SMART-DS profiles and OpenDSS daily shapes.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from common import config

logger = logging.getLogger(__name__)

INTERVAL = pd.Timedelta(minutes=15)
#: how a release keeps its metadata (``metadata_partition`` of ``common.config.EULP_RELEASES``)
METADATA_PARTITIONS = ("national", "by_state", "by_state_and_county")
#: the phase 1c script that downloads a class's metadata
METADATA_SCRIPTS = {"res": "1c_eulp_downloads/download_parquets_homes.py",
                    "com": "1c_eulp_downloads/download_parquets_commercial.py"}
_COUNTY_SLOT = "@@COUNTY@@"


class EULPError(ValueError):
    """An EULP file or setting that cannot be used; the message names the file or the setting."""


class EULPFileError(EULPError):
    """An EULP file that is missing, empty (0 bytes) or not a readable parquet file."""



def release_layout(release: str) -> dict[str, Any]:
    try:
        return config.EULP_RELEASES[release]
    except KeyError:
        known = ", ".join(sorted(config.EULP_RELEASES))
        raise EULPError(f"unknown EULP release {release!r}: supported releases are {known} "
                        "(common/config.py EULP_RELEASES)") from None


def metadata_partition(release: str) -> str:
    """``national``, ``by_state`` or ``by_state_and_county``: how ``release`` keeps its metadata."""
    partition = release_layout(release)["metadata_partition"]
    if partition not in METADATA_PARTITIONS:
        raise EULPError(f"release {release}: metadata_partition {partition!r} is not one of "
                        f"{', '.join(METADATA_PARTITIONS)} (common/config.py EULP_RELEASES)")
    return partition


def _metadata_template(release: str, upgrade: int) -> str:
    layout = release_layout(release)
    if upgrade == 0:
        return layout["metadata_baseline"]
    if not layout["metadata_upgrade"]:
        raise EULPError(f"release {release} publishes no upgrade metadata")
    return layout["metadata_upgrade"]


def metadata_relpath(release: str, upgrade: int = 0, state: str | None = None, county: str | None = None) -> str:
    """Path below the release folder of one metadata file: the release's only file of ``upgrade``
    (``national``), the state's (``by_state``) or one county's (``by_state_and_county``: ``county``
    as the release names it, e.g. ``G3700810``). A partitioned release without the state (or the
    county) is an :class:`EULPError`: read its partitions with :func:`read_release_metadata`."""
    template = _metadata_template(release, upgrade)
    partition = metadata_partition(release)
    if partition != "national" and not state:
        raise EULPError(f"release {release} keeps its metadata {partition.replace('_', ' ')}: name the state "
                        "(common.eulp.read_release_metadata reads every partition of a state)")
    if partition == "by_state_and_county" and not county:
        raise EULPError(f"release {release} keeps its metadata by state and county: name the county "
                        "(common.eulp.metadata_paths lists a state's county partitions)")
    return template.format(upgrade=upgrade, state=state or "", county=county or "")


def metadata_state_prefix(release: str, state: str) -> str:
    """The folder below the release folder (ending in ``/``) that holds the state's metadata files:
    the prefix to list in the bucket or in a mirror."""
    formatted = _metadata_template(release, 0).format(upgrade=0, state=state, county=_COUNTY_SLOT)
    head = formatted.split(_COUNTY_SLOT, 1)[0]
    return head.rsplit("/", 1)[0] + "/" if "/" in head else ""


def _partition_pattern(release: str, state: str, upgrade: int) -> re.Pattern[str]:
    """A file of the state's metadata for ``upgrade``; group ``county`` where the layout has one."""
    formatted = _metadata_template(release, upgrade).format(upgrade=upgrade, state=state, county=_COUNTY_SLOT)
    pieces = [re.escape(piece) for piece in formatted.split(_COUNTY_SLOT)]
    county = [r"(?P<county>[^/_]+)"] + [r"(?P=county)"] * (len(pieces) - 2)
    pattern = pieces[0] + "".join(slot + piece for slot, piece in zip(county, pieces[1:]))
    return re.compile(pattern + r"\Z")


def metadata_partitions(release: str, state: str, upgrade: int, relpaths: Iterable[str]) -> dict[str, str]:
    """``{county: relpath}`` of the state's metadata files of ``upgrade`` among ``relpaths`` (paths
    below the release folder, e.g. a bucket listing), sorted by county. Layouts without county
    partitions give at most one entry, under the key ``""``."""
    pattern = _partition_pattern(release, state, upgrade)
    found = {}
    for relpath in relpaths:
        match = pattern.match(relpath)
        if match:
            found[match.groupdict().get("county") or ""] = relpath
    return dict(sorted(found.items()))


def metadata_paths(eulp_root: Path, release: str, state: str, upgrade: int = 0) -> list[Path]:
    """The local metadata files of ``state`` and ``upgrade`` below ``<eulp_root>/<release>``, sorted:
    the one national file (present or not: :func:`read_metadata` names a missing one), the state's
    file, or every county partition of the state found in the folder.

    :class:`EULPFileError` (one line, naming the folder and the download to run) when a partitioned
    release has no file of the state."""
    release_dir = Path(eulp_root) / release
    partition = metadata_partition(release)
    if partition == "national":
        return [release_dir / metadata_relpath(release, upgrade)]
    folder = release_dir / metadata_state_prefix(release, state)
    relpaths = []
    if folder.is_dir():
        relpaths = sorted(p.relative_to(release_dir).as_posix() for p in folder.rglob("*.parquet") if p.is_file())
    found = metadata_partitions(release, state, upgrade, relpaths)
    if not found:
        script = METADATA_SCRIPTS[release_layout(release)["class"]]
        what = "county partition" if partition == "by_state_and_county" else "file"
        raise EULPFileError(f"no EULP metadata {what} of state {state} (upgrade {upgrade}) of release {release} "
                            f"in {folder}: run {script} --state {state} --release {release} --metadata-only")
    return [release_dir / relpath for relpath in found.values()]


def weather_year(release: str) -> str:
    """The weather year a release was simulated with (``weather`` of EULP_RELEASES: TMY3, AMY2018...)."""
    weather = release_layout(release).get("weather")
    if not weather:
        raise EULPError(f"release {release} has no weather year: give its 'weather' in common/config.py EULP_RELEASES")
    return str(weather)


def check_one_weather_year(releases: Iterable[str], where: str) -> str:
    """The one weather year of the releases whose loads are summed on a feeder (a state's residential
    and commercial releases). Releases of two or more weather years are an EULPError (one line
    naming every release, its weather and the fix) unless ``common.config.ALLOW_MIXED_WEATHER`` is
    True; then a warning naming them is logged and ``"mixed"`` returned. ``where``: the setting or
    file the releases come from, named in the line."""
    chosen = sorted(set(releases))
    years = {release: weather_year(release) for release in chosen}
    if len(set(years.values())) <= 1:
        return next(iter(years.values()), "")
    named = " and ".join(f"{release} ({years[release]})" for release in chosen)
    if not config.ALLOW_MIXED_WEATHER:
        raise EULPError(f"{where} pairs {named}: a feeder would sum loads of different weather years; pair "
                        "releases of one weather year in common/config.py EULP_RELEASE (or set "
                        "ALLOW_MIXED_WEATHER = True there to allow it)")
    logger.warning("%s pairs %s: mixed weather years, allowed by common.config.ALLOW_MIXED_WEATHER", where, named)
    return "mixed"


def needs_county(release: str) -> bool:
    """Whether the release's time-series paths name the building's county (``in.county``)."""
    return release_layout(release)["partition"] == "by_county"


def timeseries_relpath(release: str, upgrade: int, state: str, bldg_id: int, county: str | None = None) -> str:
    layout = release_layout(release)
    if upgrade not in layout["upgrades"]:
        raise EULPError(f"upgrade {upgrade} is not in release {release} (it has {sorted(layout['upgrades'])})")
    if needs_county(release) and not county:
        raise EULPError(f"release {release} is partitioned by county: building {bldg_id} needs its in.county")
    return layout["timeseries"].format(upgrade=upgrade, state=state, county=county or "", bldg_id=int(bldg_id))


def variant_rule(cls: str, building_type: str | None, variant: str) -> dict[str, Any]:
    """The upgrade, load-shift flag and reason of one heat-pump variant for a building type."""
    for group in config.HEAT_PUMP_VARIANT_RULES[cls]:
        types = group["building_types"]
        if "*" in types or (building_type is not None and building_type in types):
            return group[variant]
    raise EULPError(f"no heat-pump variant rule for class {cls!r}, building type {building_type!r} "
                    "(add a '*' group to HEAT_PUMP_VARIANT_RULES in common/config.py)")


def needed_upgrades(cls: str) -> list[int]:
    """Every upgrade the configured variants of a class may use (baseline included)."""
    ups = {0}
    for group in config.HEAT_PUMP_VARIANT_RULES[cls]:
        for variant in config.VARIANTS:
            ups.add(int(group[variant]["upgrade"]))
    return sorted(ups)


def read_metadata(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A metadata file as plain columns (``bldg_id`` stored as the pandas index, or only in the
    pandas metadata when the ids form a range, comes back as a column).

    :class:`EULPFileError` when the file is missing, empty or not a readable parquet file;
    :class:`EULPError` when one of ``columns`` is absent."""
    import pyarrow as pa

    path = Path(path)
    if not path.is_file():
        raise EULPFileError(f"EULP metadata {path} not found: run 1c_eulp_downloads/download_parquets_*.py "
                            "(or --metadata-only) first")
    if path.stat().st_size == 0:
        raise EULPFileError(f"EULP metadata {path} is empty (0 bytes): run 1c_eulp_downloads/download_parquets_*.py "
                            "again")
    try:
        schema = pq.read_schema(path)
        index_names = {entry if isinstance(entry, str) else entry.get("name")
                       for entry in (schema.pandas_metadata or {}).get("index_columns", [])} - {None}
        if columns is not None:
            missing = [c for c in columns if c not in schema.names and c not in index_names]
            if missing:
                raise EULPError(f"{path}: metadata lacks column {missing[0]!r}")
            wanted = list(dict.fromkeys(columns))
            frame = pd.read_parquet(path, columns=[c for c in wanted if c in schema.names and c not in index_names])
        else:
            frame = pd.read_parquet(path)
    except EULPError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise EULPFileError(f"EULP metadata {path} is not a readable parquet file ({first}): run "
                            "1c_eulp_downloads/download_parquets_*.py again") from None
    if any(name is not None and name in index_names for name in frame.index.names):
        frame = frame.reset_index()
    return frame if columns is None else frame[wanted]


def read_release_metadata(eulp_root: Path, release: str, state: str, upgrade: int = 0,
                          columns: list[str] | None = None) -> pd.DataFrame:
    """The metadata of ``state`` and ``upgrade`` as one table: every file of :func:`metadata_paths`
    read with :func:`read_metadata` and stacked in county order (rows kept as published: a
    ComStock building apportioned over several rows keeps them all; a national file keeps every
    state's rows). ``attrs["files"]`` lists the files read.

    :class:`EULPFileError` for a missing partition or an unreadable file (the message names it);
    :class:`EULPError` when a partition lacks one of ``columns`` or, without ``columns``, has
    other columns than the first partition (their order may differ: the first one's is kept)."""
    paths = metadata_paths(eulp_root, release, state, upgrade)
    frames = [read_metadata(path, columns) for path in paths]
    first = list(frames[0].columns)
    for path, frame in zip(paths[1:], frames[1:]):
        odd = sorted(set(frame.columns) ^ set(first))
        if odd:
            script = METADATA_SCRIPTS[release_layout(release)["class"]]
            raise EULPError(f"{path}: its columns differ from those of {paths[0]} (column {odd[0]!r}); the partitions "
                            f"of release {release} must share one schema: run {script} --metadata-only again")
    table = frames[0] if len(frames) == 1 else pd.concat([f[first] for f in frames], ignore_index=True)
    table.attrs["files"] = [str(path) for path in paths]
    return table


def state_buildings(eulp_root: Path, release: str, state: str) -> tuple[pd.DataFrame, Path]:
    """The baseline metadata of ``state`` as one row per building, and the file (or folder of
    partitions) it came from, for messages: every partition read (:func:`read_release_metadata`),
    the rows of a national file kept to the state (``in.state``) where the column exists, and a
    building that ComStock apportions over several rows (census tracts) kept once (its first row:
    the building's properties are the same on each; only the weights differ).

    :class:`EULPFileError` for a missing or unreadable file (missing: :func:`metadata_missing` tells)."""
    paths = metadata_paths(eulp_root, release, state, 0)
    table = read_release_metadata(eulp_root, release, state, 0)
    where = paths[0] if len(paths) == 1 else paths[0].parents[1 if metadata_partition(release) ==
                                                               "by_state_and_county" else 0]
    if "bldg_id" in table.columns:
        table = table.drop_duplicates("bldg_id", keep="first")
    table = table.reset_index(drop=True)
    table.attrs["files"] = [str(p) for p in paths]
    return table, where


def metadata_missing(eulp_root: Path, release: str, state: str) -> Path | None:
    """The metadata file or partition folder of ``state`` when it is absent (not yet downloaded),
    else None (present, whether readable or not)."""
    try:
        paths = metadata_paths(eulp_root, release, state, 0)
    except EULPFileError:
        return Path(eulp_root) / release / metadata_state_prefix(release, state)
    missing = [p for p in paths if not p.is_file()]
    return missing[0] if missing else None


def read_building_kw(path: Path, columns: tuple[str, ...] = (config.EULP_TOTAL_KWH,)) -> pd.DataFrame:
    """A building's 15-min series as mean kW, indexed by interval start (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise EULPError(f"EULP building file {path} not found: run 1c_eulp_downloads/download_parquets_*.py")
    schema = pq.read_schema(path)
    wanted = [config.EULP_TIMESTAMP, *columns]
    missing = [c for c in wanted if c not in schema.names]
    if missing:
        raise EULPError(f"{path}: column {missing[0]!r} missing")
    table = pq.read_table(path, columns=wanted).to_pandas()
    end = pd.to_datetime(table.pop(config.EULP_TIMESTAMP))
    if len(end) < 96 or not end.is_monotonic_increasing:
        raise EULPError(f"{path}: timestamps are not an increasing 15-min series")
    start = end - INTERVAL
    if start.iloc[0].time() != pd.Timestamp("00:00").time() or (start.iloc[1] - start.iloc[0]) != INTERVAL:
        raise EULPError(f"{path}: first timestamp {end.iloc[0]} is not 00:15 (EULP labels interval ends)")
    frame = table.astype(np.float64) * 4.0
    frame.index = pd.DatetimeIndex(start, name="interval_start")
    return frame


def building_type_column(release: str) -> str:
    return release_layout(release)["building_type_column"]
