"""Shared body of the two EULP download scripts (ResStock homes, ComStock commercial buildings).

Description
    ``download_parquets_homes.py`` (class ``res``) and ``download_parquets_commercial.py`` (class
    ``com``) are thin scripts over :func:`run`. For one state and one release it fetches, through
    :mod:`oedi_client` (verified, resumable, recorded in ``manifest.csv``):

    1. the release's metadata: the baseline file and the file of every upgrade asked for
       (paths from ``common.config.EULP_RELEASES``: ``metadata_baseline``, ``metadata_upgrade``);
    2. unless ``--metadata-only``: the per-building 15-min time series of every upgrade asked for
       (the release's ``timeseries`` template; a template naming ``{county}`` takes each building's
       ``in.county`` from the baseline metadata).

    Upgrades: 0 (baseline) and every upgrade the heat-pump variants use
    (``common.config.HEAT_PUMP_VARIANT_RULES`` of the class), or ``--upgrades``.
    Buildings: phase 1b's list (``<data>/1b_smartds_eulp_match/<STATE>/<STATE>_bldg_ids_<class>.txt``),
    ``--bldg-ids``, or ``--sample N`` (N of the state's buildings in the baseline metadata, drawn
    with ``numpy.random.default_rng(SeedSequence(--seed))`` and sorted).

    Files land at ``<data>/1c_eulp_downloads/<release>/<path in the release>``: the bucket key below
    ``common.config.EULP_PREFIX``.

Inputs
    the source (``--source``: the OEDI bucket or a local folder with the same keys)
    <data>/1b_smartds_eulp_match/<STATE>/<STATE>_bldg_ids_<res|com>.txt   bldg_id per line (phase 1b;
        only without --bldg-ids, --sample, --metadata-only)

Outputs (under ``<data>/1c_eulp_downloads/``; metadata read by phase 1b, time series by phases 2, 4, 5)
    <release>/metadata/baseline.parquet, <release>/metadata/upgradeNN.parquet
    <release>/timeseries_individual_buildings/by_state/upgrade=<u>/state=<XX>/<bldg_id>-<u>.parquet
        15-min time series: timestamp (interval end), out.electricity.*.energy_consumption [kWh]
    <release>/download_<STATE>.json   the run's settings: upgrades, building ids, seed, source,
                                       package versions, git revision (no times: re-runs rewrite it
                                       byte for byte)
    manifest.csv   key, size [bytes], checksum [MD5 hex], source, time [UTC ISO 8601], status

Settings read
    common.config: STATES, DEFAULT_STATE, EULP_PREFIX, EULP_RELEASE, EULP_RELEASES,
    HEAT_PUMP_VARIANT_RULES, VARIANTS, OEDI_SOURCE

Usage
    See the two scripts.
"""

from __future__ import annotations

import argparse
import logging
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

import oedi_client
from common import cli, config
from common.io import write_manifest

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
    """Upgrade 0 and every upgrade a heat-pump variant of ``cls`` uses, sorted."""
    upgrades = {0}
    for rule in config.HEAT_PUMP_VARIANT_RULES[cls]:
        for variant in config.VARIANTS:
            if variant in rule:
                upgrades.add(int(rule[variant]["upgrade"]))
    return sorted(upgrades)


def releases_of_class(cls: str) -> list[str]:
    return sorted(name for name, layout in config.EULP_RELEASES.items() if layout["class"] == cls)


def release_layout(release: str, cls: str) -> dict:
    """The layout row of ``release``; a UserError unless it is a known release of class ``cls``."""
    known = ", ".join(releases_of_class(cls))
    layout = config.EULP_RELEASES.get(release)
    if layout is None:
        raise cli.UserError(f"--release {release!r} is not in common.config.EULP_RELEASES; "
                            f"{STOCK_NAMES[cls]} releases: {known}")
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


def template_fields(template: str) -> set[str]:
    """The ``{field}`` names of a format template."""
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


def metadata_relpaths(layout: dict, upgrades: Iterable[int]) -> list[str]:
    """Metadata files (below the release folder): the baseline, then each non-zero upgrade's file."""
    paths = [layout["metadata_baseline"]]
    template = layout.get("metadata_upgrade")
    if template:
        paths += [template.format(upgrade=u) for u in sorted(set(upgrades)) if u != 0]
    return paths


def timeseries_relpath(layout: dict, upgrade: int, bldg_id: int, state: str, county: str | None = None) -> str:
    """One building's 15-min file below the release folder, from the release's template."""
    template = layout["timeseries"]
    values: dict[str, object] = {"upgrade": upgrade, "bldg_id": bldg_id, "state": state}
    if "county" in template_fields(template):
        if not county:
            raise ValueError(f"the {layout['partition']} layout needs the county of building {bldg_id}")
        values["county"] = county
    return template.format(**values)


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


def timeseries_keys(layout: dict, release: str, upgrades: Iterable[int], ids: Iterable[int], state: str,
                    buildings: pd.DataFrame | None) -> list[str]:
    """Bucket keys of the 15-min files, upgrade by upgrade (the county from ``buildings`` if needed)."""
    needs_county = "county" in template_fields(layout["timeseries"])
    keys = []
    for upgrade in upgrades:
        for bldg_id in ids:
            county = str(buildings.at[bldg_id, COUNTY_COLUMN]) if needs_county else None
            keys.append(f"{config.EULP_PREFIX}/{release}/"
                        f"{timeseries_relpath(layout, upgrade, bldg_id, state, county)}")
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


def read_buildings(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    """The columns of a metadata parquet that phase 1c needs, as plain columns (bldg_id as int64).

    Some releases store ``bldg_id`` as the pandas index of the file (as a column, or only in the
    pandas metadata when the ids form a range); both are returned as a column.
    """
    import pyarrow.parquet as pq

    wanted = list(dict.fromkeys(columns))
    schema = pq.read_schema(path)
    index_names = {entry if isinstance(entry, str) else entry.get("name")
                   for entry in (schema.pandas_metadata or {}).get("index_columns", [])}
    missing = [c for c in wanted if c not in schema.names and c not in index_names]
    if missing:
        raise cli.UserError(f"{path} has no column(s) {', '.join(missing)}: check the release layout in "
                            "common.config.EULP_RELEASES")
    frame = pd.read_parquet(path, columns=[c for c in wanted if c in schema.names and c not in index_names])
    if any(name in wanted for name in frame.index.names):
        frame = frame.reset_index()
    frame = frame[wanted].copy()
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
    which.add_argument("--sample", type=int, default=None, metavar="N",
                       help="N buildings of the state drawn reproducibly from the baseline metadata")
    which.add_argument("--metadata-only", action="store_true", help="fetch the metadata files only")
    parser.add_argument("--seed", type=int, default=SAMPLE_SEED, help=f"seed of --sample (default {SAMPLE_SEED})")
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
        if args.sample < 1:
            raise cli.UserError(f"--sample {args.sample}: need at least 1 building")
        if args.seed < 0:
            raise cli.UserError(f"--seed {args.seed}: need a non-negative integer")
        return Selection("sample", sample_n=args.sample, origin=f"--sample {args.sample}")
    if not list_path.is_file():
        raise cli.UserError(f"no building list {list_path}: run {PHASE_1B_SCRIPT} --state {args.state} first, "
                            "or pass --bldg-ids, --sample N or --metadata-only")
    origin = f"phase 1b list {list_path}"
    return Selection("phase1b", tuple(read_id_file(list_path, origin)), origin)


def run(cls: str, args: argparse.Namespace) -> int:
    """Download one release's metadata and time series for ``cls``; 0 when complete, 1 if not."""
    cli.setup_logging(args)
    settings = oedi_client.settings_from_args(args)
    ws = cli.workspace(args)
    state = args.state
    release = args.release or config.EULP_RELEASE[state][cls]
    layout = release_layout(release, cls)
    if args.upgrades is not None:
        upgrades = check_upgrades(cli.parse_int_list(args.upgrades, "--upgrades"), release, layout, "--upgrades")
    else:
        upgrades = check_upgrades(variant_upgrades(cls), release, layout,
                                  "common.config.HEAT_PUMP_VARIANT_RULES (pass --upgrades to choose others)")
    selection = resolve_selection(args, cls, ws.bldg_id_list(state, cls))
    needs_county = "county" in template_fields(layout["timeseries"])

    source = oedi_client.open_source(args.source, settings)
    release_prefix = f"{config.EULP_PREFIX}/{release}"
    label = f"{STOCK_NAMES[cls]} {release} {state}"
    oedi_client.probe_source(source, release_prefix + "/")
    logger.info("%s: upgrades %s, buildings from %s; source %s (%d workers) -> %s", label,
                ",".join(map(str, upgrades)), selection.origin or "nowhere (metadata only)", source.label,
                settings.workers, ws.eulp_root / release)

    with oedi_client.Downloader(source, ws.eulp_root, config.EULP_PREFIX, settings, label=label,
                                manifest_path=ws.download_manifest(ws.eulp_root)) as downloader:
        meta_keys = [f"{release_prefix}/{rel}" for rel in metadata_relpaths(layout, upgrades)]
        downloader.fetch([downloader.target(k) for k in meta_keys], "metadata")
        ids: list[int] = []
        if selection.mode != "metadata":
            baseline = downloader.target(meta_keys[0])
            buildings = None
            if downloader.results[baseline.key].ok:
                columns = [BLDG_ID, STATE_COLUMN] + ([COUNTY_COLUMN] if needs_county else [])
                table = read_buildings(baseline.path, columns)
                buildings = table[table[STATE_COLUMN] == state].drop_duplicates(BLDG_ID).set_index(BLDG_ID)
                logger.info("%s: %d buildings of %s in the baseline metadata", label, len(buildings), state)
            elif selection.mode == "sample" or needs_county:
                why = "draw --sample" if selection.mode == "sample" else f"build {layout['partition']} paths"
                downloader.add_problem(f"cannot {why} without the baseline metadata {baseline.key}")
                return downloader.finish()
            else:
                logger.warning("%s: building ids not checked against the metadata (baseline missing)", label)
            ids = choose_buildings(selection, buildings, state, release, args.seed)
            if selection.mode == "sample":
                logger.info("%s: sample of %d (seed %d): %s", label, len(ids), args.seed, ", ".join(map(str, ids)))
            keys = timeseries_keys(layout, release, upgrades, ids, state, buildings)
            logger.info("%s: %d time-series files (%d buildings x %d upgrades)", label, len(keys), len(ids),
                        len(upgrades))
            downloader.fetch([downloader.target(k) for k in keys], "time series")
        write_manifest(ws.eulp_root / release, f"1c_eulp_downloads/{SCRIPT_NAMES[cls]}", {
            "state": state, "release": release, "upgrades": upgrades, "buildings_from": selection.origin,
            "seed": args.seed if selection.mode == "sample" else None, "bldg_ids": ids,
            "source": source.label, "manifest": str(downloader.manifest.path),
        }, name=f"download_{state}.json")
        return downloader.finish()
