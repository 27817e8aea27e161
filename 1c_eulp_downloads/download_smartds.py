"""Download a SMART-DS v1.0 feeder set with the profiles and load_data its load shapes use.

Description
    Lists ``SMART-DS/v1.0/<year>/<city>/<subregion>/scenarios/<scenario>/opendss/`` on the source
    (ListObjectsV2 over HTTPS, or a walk of a local folder with the same keys), fetches every file
    of the feeder folders (``<substation>/<substation>--<feeder>/``; all of them, or those named
    by ``--feeders``), then reads each feeder's ``LoadShapes.dss`` (and a solar scenario's
    ``PVShapes.dss``, whose shapes point into the scenario's ``pv-profiles/``) and fetches what its load shapes
    refer to: the ``mult``/``qmult`` files (``profiles/<res|com>_<kw|kvar>_<id>_pu.csv``, resolved
    against the feeder folder, e.g. ``../../../../../profiles/...``; absolute Windows or cluster
    paths are mapped onto the subregion's ``profiles/``, ``load_data/`` or ``solar_data/``) and
    ``load_data/<res|com>_<id>.parquet`` of every shape named ``<res|com>_kw_<id>_pu`` (the names
    and folder conventions are those of ``common.smartds``, as in phase 1b: an id of letters and
    digits counts).

    Transfers go through ``oedi_client.py``: every file is streamed to ``<file>.part``, checked
    (byte count against Content-Length and the listing's Size, MD5 against a single-part ETag,
    parquet footer) and renamed into place; a re-run fetches only what is not verified yet. A file
    a load shape refers to that the source does not have is recorded as missing (exit status 1).

Inputs
    the source (``--source``; default the OEDI bucket over HTTPS)

Outputs (under ``<data>/smartds/``, the keys below ``SMART-DS/v1.0/``; read by phase 1b)
    <year>/<city>/<subregion>/scenarios/<scenario>/opendss/<substation>/<substation>--<feeder>/*
        Master.dss, Lines.dss, Loads.dss, LoadShapes.dss, ... as shipped
    <year>/<city>/<subregion>/profiles/<res|com>_<kw|kvar>_<id>_pu.csv   35,040 rows, per unit of annual peak
    <year>/<city>/<subregion>/load_data/<res|com>_<id>.parquet           per-customer end uses [kW, kVAr]
    <year>/<city>/<subregion>/download_<scenario>.json   the run's settings: feeders, source, package
                                                          versions, git revision
    manifest.csv   key, size [bytes], checksum [MD5 hex], source, time [UTC ISO 8601], status

    Exit status 0 when every file is verified, 1 when some are missing or failed (listed in the
    manifest and in the final summary line), 2 for bad input or an unreachable source.

Settings read
    common.config: SMARTDS (year, city, subregions, scenario per state), SMARTDS_PREFIX, STATES,
    DEFAULT_STATE, OEDI_SOURCE

Usage
    python 1c_eulp_downloads/download_smartds.py --state NC
    python 1c_eulp_downloads/download_smartds.py --state TX --feeders p1udt3318 --source data/sample/oedi
    python 1c_eulp_downloads/download_smartds.py --year 2018 --city AUS --subregion P1U --scenario base_timeseries
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import re
import sys
from typing import Sequence

import oedi_client
from common import cli, config, dss, smartds
from common.io import write_manifest

logger = logging.getLogger(__name__)

LOADSHAPES_FILE = "LoadShapes.dss"
#: other shape files a feeder may ship: a solar scenario's PVShapes.dss points into ``pv-profiles/``
OPTIONAL_SHAPE_FILES = ("PVShapes.dss",)
#: Loadshape properties holding ``(file=...)`` values, and those holding a path directly
FILE_VALUE_PROPERTIES = ("mult", "qmult", "pmult")
PATH_PROPERTIES = ("csvfile", "sngfile", "dblfile", "pqcsvfile")
#: subregion folders a load shape may point into (used to map absolute paths written elsewhere)
REFERENCE_FOLDERS = ("profiles", "load_data", "solar_data")
#: feeder names shown in an error before the list is cut
MAX_NAMES_SHOWN = 30


# ------------------------------------------------------------------------------------------- pure functions
#: an absolute path written on another machine: ``/...`` or a Windows drive ``C:/...``
_ABSOLUTE = re.compile(r"^(/|[A-Za-z]:/)")


def subregion_key(year: str, city: str, subregion: str) -> str:
    return f"{config.SMARTDS_PREFIX}/{smartds.subregion_relpath(year, city, subregion)}"


def opendss_prefix(year: str, city: str, subregion: str, scenario: str) -> str:
    return f"{config.SMARTDS_PREFIX}/{smartds.scenario_relpath(year, city, subregion, scenario)}/"


def feeder_part(folder: str) -> str | None:
    """The feeder of a ``<substation>--<feeder>`` folder name (``common.smartds``), None for another name."""
    try:
        return smartds.split_folder(folder)[1]
    except ValueError:
        return None


def feeder_folders(objects: Sequence[oedi_client.ObjectInfo], prefix: str) -> dict[str, list[oedi_client.ObjectInfo]]:
    """Objects grouped by feeder folder name (``<substation>--<feeder>``), below the opendss prefix.

    Only ``<substation>/<substation>--<feeder>/...`` keys count; substation-level files and folder
    markers (keys ending in ``/``) do not.
    """
    folders: dict[str, list[oedi_client.ObjectInfo]] = {}
    for obj in objects:
        if not obj.key.startswith(prefix) or obj.key.endswith("/"):
            continue
        parts = obj.key[len(prefix):].split("/")
        if len(parts) >= 3 and feeder_part(parts[1]) is not None:
            folders.setdefault(parts[1], []).append(obj)
    return {name: sorted(objs, key=lambda o: o.key) for name, objs in sorted(folders.items())}


def feeder_folder_key(objects: Sequence[oedi_client.ObjectInfo], prefix: str) -> str:
    """``<prefix><substation>/<feeder folder>`` of a feeder's objects."""
    parts = objects[0].key[len(prefix):].split("/")
    return f"{prefix}{parts[0]}/{parts[1]}"


def select_feeders(available: Sequence[str], requested: Sequence[str] | None) -> list[str]:
    """Feeder folders named by ``--feeders`` (full ``<substation>--<feeder>`` or the feeder part)."""
    if not requested:
        return sorted(available)
    chosen: set[str] = set()
    unknown = []
    for name in requested:
        matches = [f for f in available if f == name or feeder_part(f) == name]
        if matches:
            chosen.update(matches)
        else:
            unknown.append(name)
    if unknown:
        names = sorted(available)
        shown = ", ".join(names[:MAX_NAMES_SHOWN])
        if len(names) > MAX_NAMES_SHOWN:
            shown += f" ... ({len(names)} in all)"
        raise cli.UserError(f"--feeders: no feeder {', '.join(unknown)}; the source has {shown}")
    return sorted(chosen)


def loadshape_file_references(shape: dss.DssObject) -> list[str]:
    """The file paths a Loadshape definition refers to, as written."""
    refs = []
    for prop in FILE_VALUE_PROPERTIES:
        ref = dss.file_reference(shape.get(prop))
        if ref:
            refs.append(ref)
    for prop in PATH_PROPERTIES:
        value = shape.get(prop)
        if value:
            refs.append(value.strip("\"'"))
    return refs


def resolve_reference(feeder_key: str, reference: str, subregion: str) -> str | None:
    """The bucket key a load shape's file reference points to, or None when it cannot be placed.

    Relative paths resolve against the feeder folder; absolute paths (written on the machine that
    built the feeder) are mapped onto the subregion by the last ``profiles/``, ``load_data/`` or
    ``solar_data/`` folder they contain.
    """
    text = reference.strip().replace("\\", "/")
    if _ABSOLUTE.match(text):
        for folder in REFERENCE_FOLDERS:
            marker = f"/{folder}/"
            if marker in text:
                return f"{subregion}/{folder}/{text.rsplit(marker, 1)[1]}"
        return None
    key = posixpath.normpath(posixpath.join(feeder_key, text))
    if not key.startswith(config.SMARTDS_PREFIX + "/") or ".." in key.split("/"):
        return None
    return key


def load_data_key(shape_name: str, subregion: str) -> str | None:
    """``res_kw_7440_pu`` -> ``<subregion>/load_data/res_7440.parquet``; None for other shapes.

    The shape names are those of ``common.smartds.parse_shape`` (ids of letters and digits), so that
    every shape phase 1b matches has its load_data here."""
    relpath = smartds.load_data_relpath(shape_name)
    return None if relpath is None else f"{subregion}/{relpath}"


# ------------------------------------------------------------------------------------------- fetching
def fetch_feeders(downloader: oedi_client.Downloader, label: str, prefix: str, region: str,
                  folders: dict[str, list[oedi_client.ObjectInfo]]) -> None:
    """Fetch the feeder folders, then every file their load shapes refer to (results in ``downloader``)."""
    targets, loadshape_targets = [], {}
    for feeder in folders:
        for obj in folders[feeder]:
            try:
                targets.append(downloader.target_for(obj))
            except oedi_client.PermanentError as exc:
                downloader.add_problem(f"{feeder}: {exc}")
        listed = [o for o in folders[feeder] if posixpath.basename(o.key).lower() == LOADSHAPES_FILE.lower()]
        if listed:
            loadshape_targets[feeder] = downloader.target_for(listed[0])
        else:  # fetched anyway: recorded as missing, the feeder cannot be used without it
            loadshape_targets[feeder] = downloader.target(f"{feeder_folder_key(folders[feeder], prefix)}/"
                                                          f"{LOADSHAPES_FILE}")
            targets.append(loadshape_targets[feeder])
    downloader.fetch(targets, "feeder files")

    referenced: set[str] = set()
    for feeder in folders:
        shapes_target = loadshape_targets[feeder]
        if not downloader.results[shapes_target.key].ok:
            continue  # already counted as missing or failed
        folder_key = posixpath.dirname(shapes_target.key)
        shapes = list(dss.read_dss_objects(shapes_target.path, ("loadshape",)))
        optional = {name.lower() for name in OPTIONAL_SHAPE_FILES}
        def refer(shape: dss.DssObject, where: str) -> None:
            for reference in loadshape_file_references(shape):
                key = resolve_reference(folder_key, reference, region)
                if key is None:
                    downloader.add_problem(f"{feeder}: {where}Loadshape.{shape.name} refers to {reference!r}, "
                                           f"which is not a file of {region}")
                else:
                    referenced.add(key)

        for obj in folders[feeder]:  # PV shapes: their files are fetched, no load_data for them
            if posixpath.basename(obj.key).lower() in optional:
                target = downloader.target_for(obj)
                if downloader.results.get(target.key) is not None and downloader.results[target.key].ok:
                    for shape in dss.read_dss_objects(target.path, ("loadshape",)):
                        refer(shape, f"{posixpath.basename(obj.key)} ")
        for shape in shapes:
            refer(shape, "")
            data_key = load_data_key(shape.name, region)
            if data_key:
                referenced.add(data_key)
            else:
                logger.debug("%s: Loadshape.%s is not a customer shape; no load_data", feeder, shape.name)
        logger.debug("%s: %d load shapes", feeder, len(shapes))
    logger.info("%s: %d profiles and load_data files referenced by the load shapes", label, len(referenced))
    referenced_targets = []
    for key in sorted(referenced):
        try:
            referenced_targets.append(downloader.target(key))
        except oedi_client.PermanentError as exc:
            downloader.add_problem(f"{label}: a load shape refers to {exc}")
    downloader.fetch(referenced_targets, "profiles and load_data")


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="download_smartds.py")
    cli.add_state(parser)
    parser.add_argument("--year", default=None, help="SMART-DS year: 2016, 2017, 2018, peak "
                                                     "(default: common.config.SMARTDS[state])")
    parser.add_argument("--city", default=None, help="GSO, AUS, SFO (default: common.config.SMARTDS[state])")
    parser.add_argument("--subregion", default=None,
                        help="e.g. urban-suburban, P1U (default: the first of common.config.SMARTDS[state])")
    parser.add_argument("--scenario", default=None,
                        help="e.g. base_timeseries (default: common.config.SMARTDS[state])")
    parser.add_argument("--feeders", default=None, metavar="NAMES",
                        help="comma list of feeder folders (<substation>--<feeder>, or the feeder part); "
                             "default: every feeder of the scenario")
    oedi_client.add_transfer_arguments(parser)
    cli.add_data_dir(parser)
    cli.add_verbosity(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    settings = oedi_client.settings_from_args(args)
    defaults = config.SMARTDS[args.state]
    year = args.year or defaults["year"]
    city = args.city or defaults["city"]
    subregion = args.subregion or defaults["subregions"][0]
    scenario = args.scenario or defaults["scenario"]
    for flag, value in (("--year", year), ("--city", city), ("--subregion", subregion), ("--scenario", scenario)):
        if not value or "/" in value or value in (".", ".."):
            raise cli.UserError(f"{flag} {value!r}: give one folder name")
    requested = [n.strip() for n in args.feeders.split(",") if n.strip()] if args.feeders is not None else None
    if requested is not None and not requested:
        raise cli.UserError(f"--feeders {args.feeders!r} names no feeder")

    region = subregion_key(year, city, subregion)
    prefix = opendss_prefix(year, city, subregion, scenario)
    source = oedi_client.open_source(args.source, settings)
    label = f"SMART-DS {year}/{city}/{subregion}/{scenario}"
    oedi_client.probe_source(source, prefix)

    with contextlib.closing(source):  # the Downloader closes it too; twice is harmless
        try:
            objects = source.list_objects(prefix)
        except oedi_client.ListingError as exc:
            logger.error("%s: %s", label, exc)
            return cli.EXIT_FAILED
        folders = feeder_folders(objects, prefix)
        if not folders:
            raise cli.UserError(f"no feeder folders under {source.label}/{prefix}: check --year, --city, "
                                "--subregion and --scenario")
        selected = select_feeders(list(folders), requested)
        shown = ", ".join(selected[:5]) + (" ..." if len(selected) > 5 else "")
        logger.info("%s: %d of %d feeders (%s); source %s (%d workers) -> %s", label, len(selected),
                    len(folders), shown, source.label, settings.workers, ws.smartds_root)
        manifest_path = ws.download_manifest(ws.smartds_root)
        with oedi_client.Downloader(source, ws.smartds_root, config.SMARTDS_PREFIX, settings, label=label,
                                    manifest_path=manifest_path) as downloader:
            fetch_feeders(downloader, label, prefix, region, {f: folders[f] for f in selected})
            # written while the folder lock is held, so that no other run's clean-up takes its temporary
            write_manifest(ws.smartds_root.joinpath(*smartds.subregion_relpath(year, city, subregion).split("/")),
                           "1c_eulp_downloads/download_smartds.py", {
                               "year": year, "city": city, "subregion": subregion, "scenario": scenario,
                               "feeders": selected, "source": source.label, "manifest": str(manifest_path),
                           }, name=f"download_{scenario}.json")
            return downloader.finish()


if __name__ == "__main__":
    sys.exit(main())
