"""Shared body of the two EULP download scripts (ResStock homes, ComStock commercial buildings).

Description
    ``download_parquets_homes.py`` (class ``res``) and ``download_parquets_commercial.py`` (class
    ``com``) are thin scripts over :func:`run`. For one state and one release it fetches, through
    :mod:`oedi_client` (verified, resumable, recorded in ``manifest.csv``):

    1. the release's metadata: the baseline file and the file of every upgrade asked for
       (paths from ``common.config.EULP_RELEASES``: ``metadata_baseline``, ``metadata_upgrade``).
       A release whose metadata are partitioned by state and county (``metadata_partition``;
       ComStock 2024 release 2 and 2025) is listed first (ListObjectsV2 on the bucket, a walk of a
       local folder) for the state's county partitions, and every county's baseline and upgrade
       files are fetched; a state without a partition ends the run with one line (exit 2). A
       release partitioned by state (ResStock 2025) has one file per state and upgrade;
    2. unless ``--metadata-only``: the per-building 15-min time series of every upgrade asked for
       (``common.eulp.timeseries_relpath``; a release partitioned by county takes each building's
       ``in.county`` from the baseline metadata).

    Upgrades: 0 (baseline) and every upgrade the heat-pump variants use
    (``common.config.HEAT_PUMP_VARIANT_RULES`` of the class), or ``--upgrades``.
    Buildings: phase 1b's list (``<data>/1b_smartds_eulp_match/<STATE>/<STATE>_bldg_ids_<class>.txt``),
    ``--bldg-ids``, or ``--sample N`` (N of the state's buildings in the baseline metadata, drawn
    with ``numpy.random.default_rng(SeedSequence(--seed))`` and sorted).

    Files land at ``<data>/1c_eulp_downloads/<release>/<path in the release>``: the bucket key below
    ``common.config.EULP_PREFIX``. Release layouts, paths, upgrades and metadata reading are those of
    ``common.eulp`` (the same code phases 1b to 5 use). A baseline metadata file whose data do not
    read (its footer does, so it passed the download checks) ends the run with one line naming it
    (exit 2) and is marked in the manifest to be fetched again.

Inputs
    the source (``--source``: the OEDI bucket or a local folder with the same keys)
    <data>/1b_smartds_eulp_match/<STATE>/<STATE>_bldg_ids_<res|com>.txt   bldg_id per line (phase 1b;
        only without --bldg-ids, --sample, --metadata-only)

Outputs (under ``<data>/1c_eulp_downloads/``; metadata read by phase 1b, time series by phases 2, 4, 5)
    <release>/metadata/baseline.parquet, <release>/metadata/upgradeNN.parquet (or, by the release's
        layout, <release>/metadata_and_annual_results/by_state_and_county/full/parquet/state=<XX>/
        county=<GXXXXXXX>/<XX>_<GXXXXXXX>_baseline.parquet ... or .../by_state/full/parquet/
        state=<XX>/<XX>_upgrade<N>.parquet); read as one table by common.eulp.read_release_metadata
    <release>/timeseries_individual_buildings/by_state/upgrade=<u>/state=<XX>/<bldg_id>-<u>.parquet
        15-min time series: timestamp (interval end), out.electricity.*.energy_consumption [kWh]
    <release>/download_<STATE>.json   the run's settings: upgrades, building ids, seed, source,
                                       package versions, git revision (no times: re-runs rewrite it
                                       byte for byte)
    manifest.csv   key, size [bytes], checksum [MD5 hex], source, time [UTC ISO 8601], status

Settings read
    common.config: STATES, DEFAULT_STATE, EULP_PREFIX, EULP_RELEASE, EULP_RELEASES, ALLOW_MIXED_WEATHER,
    HEAT_PUMP_VARIANT_RULES, VARIANTS, OEDI_SOURCE

Usage
    See the two scripts.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

import oedi_client
from common import cli, config, eulp
from common.io import InputError, write_manifest
from common.paths import Workspace

logger = logging.getLogger(__name__)

#: seed of ``--sample`` (any fixed number: the same N gives the same buildings on every machine)
SAMPLE_SEED = 20240611
STOCK_NAMES = {"res": "ResStock", "com": "ComStock"}
SCRIPT_NAMES = {"res": "download_parquets_homes.py", "com": "download_parquets_commercial.py"}
BLDG_ID = "bldg_id"
STATE_COLUMN = "in.state"
COUNTY_COLUMN = "in.county"
PHASE_1B_SCRIPT = "1b_smartds_eulp_match/select_rep_family.py"


# ------------------------------------------------------------------------------------------- pure functions
def variant_upgrades(cls: str) -> list[int]:
    """Upgrade 0 and every upgrade a heat-pump variant of ``cls`` uses, sorted (``common.eulp``)."""
    return eulp.needed_upgrades(cls)


def releases_of_class(cls: str) -> list[str]:
    return sorted(name for name, layout in config.EULP_RELEASES.items() if layout["class"] == cls)


def release_layout(release: str, cls: str) -> dict:
    """The layout row of ``release`` (``common.eulp``); a UserError unless it is a release of class ``cls``."""
    known = ", ".join(releases_of_class(cls))
    try:
        layout = eulp.release_layout(release)
    except eulp.EULPError:
        raise cli.UserError(f"--release {release!r} is not in common.config.EULP_RELEASES; "
                            f"{STOCK_NAMES[cls]} releases: {known}") from None
    if layout["class"] != cls:
        other = SCRIPT_NAMES[layout["class"]]
        raise cli.UserError(f"--release {release!r} is a {layout['stock']} release: use {other}, or one of {known}")
    return layout


def check_upgrades(upgrades: Iterable[int], release: str, layout: dict, origin: str) -> list[int]:
    """Upgrades sorted; a UserError naming ``origin`` when one is not in the release table."""
    chosen = sorted(set(upgrades))
    unknown = [u for u in chosen if u not in layout["upgrades"]]
    if unknown:
        have = ", ".join(f"{u} ({name})" for u, name in sorted(layout["upgrades"].items()))
        raise cli.UserError(f"{origin}: upgrade(s) {', '.join(map(str, unknown))} not in release {release}; "
                            f"it has {have}")
    return chosen


def metadata_upgrades(release: str, upgrades: Iterable[int]) -> list[int]:
    """The upgrades whose metadata files are fetched: 0, then each other one asked for when the
    release publishes upgrade metadata."""
    layout = eulp.release_layout(release)
    return [0] + [u for u in sorted(set(upgrades)) if u != 0 and layout["metadata_upgrade"]]


def metadata_keys(release: str, upgrades: Iterable[int], state: str | None = None,
                  counties: Iterable[str] = ()) -> list[str]:
    """Bucket keys of the metadata files, upgrade by upgrade (the baseline first): one per upgrade
    (``national``), the state's (``by_state``) or one per county of ``counties``
    (``by_state_and_county``; from :func:`county_partitions`)."""
    by_county = eulp.metadata_partition(release) == "by_state_and_county"
    keys = []
    for upgrade in metadata_upgrades(release, upgrades):
        for county in (sorted(counties) if by_county else [None]):
            keys.append(f"{config.EULP_PREFIX}/{release}/{eulp.metadata_relpath(release, upgrade, state, county)}")
    return keys


def county_partitions(objects: Iterable[oedi_client.ObjectInfo], release: str, state: str) -> list[str]:
    """The counties of ``state`` that have a baseline metadata partition among the listed objects."""
    head = f"{config.EULP_PREFIX}/{release}/"
    relpaths = [o.key[len(head):] for o in objects if o.key.startswith(head)]
    return list(eulp.metadata_partitions(release, state, 0, relpaths))


def parse_id_lines(lines: Iterable[str], origin: str) -> list[int]:
    """Building ids, one per line (blank lines, ``#`` comments and a ``bldg_id`` header skipped)."""
    ids: set[int] = set()
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text or (number == 1 and text.lower() == BLDG_ID):
            continue
        if not text.isdigit():
            raise cli.UserError(f"{origin} line {number}: {text!r} is not a building id (one whole number per line)")
        ids.add(int(text))
    if not ids:
        raise cli.UserError(f"{origin} names no building")
    return sorted(ids)


def sample_bldg_ids(candidates: Iterable[int], n: int, seed: int) -> list[int]:
    """``n`` distinct ids drawn reproducibly from ``candidates`` (order-independent), sorted."""
    pool = np.array(sorted(set(int(c) for c in candidates)), dtype=np.int64)
    if n > len(pool):
        raise ValueError(f"asked for {n} buildings, only {len(pool)} available")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    return sorted(int(x) for x in rng.choice(pool, size=n, replace=False))


def choose_buildings(selection: Selection, buildings: pd.DataFrame | None, state: str, release: str,
                     seed: int) -> list[int]:
    """The building ids to fetch: drawn (``--sample``) or given, checked against the state's metadata.

    ``buildings`` is the state's baseline metadata indexed by bldg_id, or None when it is missing.
    """
    if selection.mode == "sample":
        if selection.sample_n > len(buildings):
            raise cli.UserError(f"--sample {selection.sample_n}: {release} has only {len(buildings)} "
                                f"buildings in {state}")
        return sample_bldg_ids(buildings.index, selection.sample_n, seed)
    ids = list(selection.ids)
    if buildings is not None:
        unknown = sorted(set(ids) - set(buildings.index))
        if unknown:
            shown = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
            raise cli.UserError(f"{selection.origin}: {len(unknown)} building id(s) are not {state} buildings "
                                f"of {release}: {shown}")
    return ids


def timeseries_keys(release: str, upgrades: Iterable[int], ids: Iterable[int], state: str,
                    buildings: pd.DataFrame | None) -> list[str]:
    """Bucket keys of the 15-min files, upgrade by upgrade (``common.eulp.timeseries_relpath``; the
    county from ``buildings``, indexed by bldg_id, when the release is partitioned by county)."""
    needs_county = eulp.needs_county(release)
    keys = []
    for upgrade in upgrades:
        for bldg_id in ids:
            county = str(buildings.at[bldg_id, COUNTY_COLUMN]) if needs_county else None
            keys.append(f"{config.EULP_PREFIX}/{release}/"
                        f"{eulp.timeseries_relpath(release, upgrade, state, bldg_id, county)}")
    return keys


# ------------------------------------------------------------------------------------------- I/O
def parse_bldg_ids(text: str) -> tuple[list[int], str]:
    """``--bldg-ids``: a comma list (``101,102`` or ranges ``101-110``) or a file of ids, one per line."""
    path = Path(text).expanduser()
    if path.is_file():
        return read_id_file(path, f"--bldg-ids file {path}"), f"--bldg-ids file {path}"
    if any(sep in text for sep in ("/", "\\")) or text.lower().endswith((".txt", ".csv")):
        raise cli.UserError(f"--bldg-ids {text!r}: no such file")
    if not all(part.strip().replace("-", "").isdigit() for part in text.split(",") if part.strip()):
        raise cli.UserError(f"--bldg-ids {text!r}: give building ids like 101,102 (or 101-110) or a file of ids")
    return cli.parse_int_list(text, "--bldg-ids"), "--bldg-ids"


def read_id_file(path: Path, origin: str) -> list[int]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise cli.UserError(f"{origin}: cannot read it ({exc})") from None
    return parse_id_lines(text.splitlines(), origin)


def metadata_targets(downloader: oedi_client.Downloader, release: str, state: str,
                     upgrades: list[int]) -> tuple[list[oedi_client.Target], list[oedi_client.Target]]:
    """The metadata files to fetch: (baseline files, upgrade files). A release partitioned by state
    and county is listed for the state's partitions first (listed objects carry their size and ETag
    for the checks); a UserError (exit 2) when the source holds none for the state."""
    if eulp.metadata_partition(release) != "by_state_and_county":
        targets = [downloader.target(key) for key in metadata_keys(release, upgrades, state)]
        return targets[:1], targets[1:]
    prefix = f"{config.EULP_PREFIX}/{release}/{eulp.metadata_state_prefix(release, state)}"
    objects = downloader.list_objects(prefix)
    counties = county_partitions(objects, release, state)
    if not counties:
        raise cli.UserError(f"{downloader.source.label}/{prefix} holds no baseline metadata partition of state "
                            f"{state} for release {release} ({len(objects)} object(s) listed): the release does not "
                            "cover this state, or --state / --release is not the one meant")
    listed = {o.key: o for o in objects}
    logger.info("%s: %d county partition(s) of %s: %s", downloader.label, len(counties), state,
                ", ".join(counties[:8]) + (" ..." if len(counties) > 8 else ""))
    # a key the listing lacks is still asked for: the source's answer (404) is recorded as missing
    targets = [downloader.target_for(listed[key]) if key in listed else downloader.target(key)
               for key in metadata_keys(release, upgrades, state, counties)]
    return targets[:len(counties)], targets[len(counties):]


def read_buildings(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    """The columns of a metadata parquet that phase 1c needs, as plain columns (bldg_id as int64),
    through ``common.eulp.read_metadata`` (which also accepts ``bldg_id`` stored as the index).

    A missing column is a UserError naming the file; an unreadable file raises
    ``common.eulp.EULPFileError``."""
    try:
        frame = eulp.read_metadata(path, list(dict.fromkeys(columns))).copy()
    except eulp.EULPFileError:
        raise
    except eulp.EULPError as exc:
        raise cli.UserError(f"{exc}: check the release layout in common.config.EULP_RELEASES") from None
    frame[BLDG_ID] = frame[BLDG_ID].astype("int64")
    return frame


# ------------------------------------------------------------------------------------------- CLI
@dataclass(frozen=True)
class Selection:
    """Which buildings to fetch: ``mode`` is ids, sample, phase1b or metadata."""

    mode: str
    ids: tuple[int, ...] = ()
    origin: str = ""
    sample_n: int = 0


def build_parser(cls: str, prog: str, description: str) -> cli.Parser:
    parser = cli.build_parser(description, prog=prog)
    cli.add_state(parser)
    parser.add_argument("--release", default=None,
                        help=f"EULP release (default: common.config.EULP_RELEASE[state]['{cls}']); "
                             f"one of {', '.join(releases_of_class(cls))}")
    parser.add_argument("--upgrades", default=None, metavar="LIST",
                        help="upgrade ids, e.g. 0,1,4 (default: 0 and the upgrades of the heat-pump variants in "
                             f"common.config.HEAT_PUMP_VARIANT_RULES: {','.join(map(str, variant_upgrades(cls)))})")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--bldg-ids", default=None, metavar="IDS|FILE",
                       help="buildings: a comma list (101,102) or a file with one id per line "
                            "(default: the list phase 1b writes)")
    which.add_argument("--sample", type=cli.positive_int, default=None, metavar="N",
                       help="N buildings of the state drawn reproducibly from the baseline metadata")
    which.add_argument("--metadata-only", action="store_true", help="fetch the metadata files only")
    parser.add_argument("--seed", type=cli.nonnegative_int, default=SAMPLE_SEED,
                        help=f"seed of --sample (default {SAMPLE_SEED})")
    oedi_client.add_transfer_arguments(parser)
    cli.add_data_dir(parser)
    cli.add_verbosity(parser)
    return parser


def resolve_selection(args: argparse.Namespace, cls: str, list_path: Path) -> Selection:
    if args.metadata_only:
        return Selection("metadata")
    if args.bldg_ids is not None:
        ids, origin = parse_bldg_ids(args.bldg_ids)
        return Selection("ids", tuple(ids), origin)
    if args.sample is not None:
        return Selection("sample", sample_n=args.sample, origin=f"--sample {args.sample}")
    if not list_path.is_file():
        raise cli.UserError(f"no building list {list_path}: run {PHASE_1B_SCRIPT} --state {args.state} first, "
                            "or pass --bldg-ids, --sample N or --metadata-only")
    origin = f"phase 1b list {list_path}"
    return Selection("phase1b", tuple(read_id_file(list_path, origin)), origin)


def run(cls: str, args: argparse.Namespace, ws: Workspace) -> int:
    """Download one release's metadata and time series for ``cls``; 0 when complete, 1 if not.

    ``args`` and ``ws`` come from ``common.cli.start`` in the script's main."""
    settings = oedi_client.settings_from_args(args)
    state = args.state
    release = args.release or config.EULP_RELEASE[state][cls]
    layout = release_layout(release, cls)
    # the release is summed on feeders with the state's release of the other class: one weather year
    where = (f"--release {release} with common.config.EULP_RELEASE[{state!r}]" if args.release
             else f"common.config.EULP_RELEASE[{state!r}]")
    try:
        eulp.check_one_weather_year({**config.EULP_RELEASE[state], cls: release}.values(), where)
    except eulp.EULPError as exc:
        raise cli.UserError(str(exc)) from None
    if args.upgrades is not None:
        upgrades = check_upgrades(cli.parse_int_list(args.upgrades, "--upgrades"), release, layout, "--upgrades")
    else:
        upgrades = check_upgrades(variant_upgrades(cls), release, layout,
                                  "common.config.HEAT_PUMP_VARIANT_RULES (pass --upgrades to choose others)")
    selection = resolve_selection(args, cls, ws.bldg_id_list(state, cls))
    needs_county = eulp.needs_county(release)

    source = oedi_client.open_source(args.source, settings)
    release_prefix = f"{config.EULP_PREFIX}/{release}"
    label = f"{STOCK_NAMES[cls]} {release} {state}"
    oedi_client.probe_source(source, release_prefix + "/")
    logger.info("%s: upgrades %s, buildings from %s; source %s (%d workers) -> %s", label,
                ",".join(map(str, upgrades)), selection.origin or "nowhere (metadata only)", source.label,
                settings.workers, ws.eulp_root / release)

    with oedi_client.Downloader(source, ws.eulp_root, config.EULP_PREFIX, settings, label=label,
                                manifest_path=ws.download_manifest(ws.eulp_root)) as downloader:
        try:
            baselines, upgrade_files = metadata_targets(downloader, release, state, upgrades)
        except oedi_client.ListingError as exc:
            downloader.add_problem(f"cannot list the metadata partitions of {state}: {exc}")
            return downloader.finish()
        downloader.fetch(baselines + upgrade_files, "metadata")
        ids: list[int] = []
        if selection.mode != "metadata":
            buildings = None
            if all(downloader.results[t.key].ok for t in baselines):
                columns = [BLDG_ID, STATE_COLUMN] + ([COUNTY_COLUMN] if needs_county else [])
                tables = []
                for baseline in baselines:
                    try:
                        tables.append(read_buildings(baseline.path, columns))
                    except eulp.EULPFileError as exc:  # the footer reads, the data do not
                        downloader.invalidate(baseline.key, str(exc).split(": run ")[0])
                        raise InputError(f"{exc} (it came from {source.describe(baseline.key)}; the manifest now "
                                         "marks it to be fetched again, and if it fails the same way the source's "
                                         "copy is damaged)") from None
                table = pd.concat(tables, ignore_index=True)
                buildings = table[table[STATE_COLUMN] == state].drop_duplicates(BLDG_ID).set_index(BLDG_ID)
                logger.info("%s: %d buildings of %s in the baseline metadata (%d file(s))", label, len(buildings),
                            state, len(baselines))
            elif selection.mode == "sample" or needs_county:
                why = "draw --sample" if selection.mode == "sample" else f"build {layout['partition']} paths"
                missing = next(t.key for t in baselines if not downloader.results[t.key].ok)
                downloader.add_problem(f"cannot {why} without the baseline metadata {missing}")
                return downloader.finish()
            else:
                logger.warning("%s: building ids not checked against the metadata (baseline missing)", label)
            ids = choose_buildings(selection, buildings, state, release, args.seed)
            if selection.mode == "sample":
                logger.info("%s: sample of %d (seed %d): %s", label, len(ids), args.seed, ", ".join(map(str, ids)))
            try:
                keys = timeseries_keys(release, upgrades, ids, state, buildings)
            except eulp.EULPError as exc:  # e.g. a building without in.county in a by-county release
                raise InputError(f"{baselines[0].path}: {exc}") from None
            logger.info("%s: %d time-series files (%d buildings x %d upgrades)", label, len(keys), len(ids),
                        len(upgrades))
            downloader.fetch([downloader.target(k) for k in keys], "time series")
        write_manifest(ws.eulp_root / release, f"1c_eulp_downloads/{SCRIPT_NAMES[cls]}", {
            "state": state, "release": release, "upgrades": upgrades, "buildings_from": selection.origin,
            "seed": args.seed if selection.mode == "sample" else None, "bldg_ids": ids,
            "source": source.label, "manifest": str(downloader.manifest.path),
        }, name=f"download_{state}.json")
        return downloader.finish()
