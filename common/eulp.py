"""NREL End-Use Load Profiles: release layouts, heat-pump variant rules, building time series.

Paths come from the release table ``common.config.EULP_RELEASES`` (never from string surgery).
Time series hold kWh per 15-min interval labelled at the interval's END (the first row is 00:15 on
1 January, standard time): :func:`read_building_kw` returns mean kW (4 x kWh) indexed by the
interval's START, so row ``i`` is the interval that begins ``15 i`` minutes after midnight on
1 January, the same convention as SMART-DS profiles and OpenDSS daily shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from common import config

INTERVAL = pd.Timedelta(minutes=15)


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


def metadata_relpath(release: str, upgrade: int = 0) -> str:
    layout = release_layout(release)
    if upgrade == 0:
        return layout["metadata_baseline"]
    if not layout["metadata_upgrade"]:
        raise EULPError(f"release {release} publishes no upgrade metadata")
    return layout["metadata_upgrade"].format(upgrade=upgrade)


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
