"""Copy a state's SMART-DS feeders into the workspace, checked, with the list of what was left out.

Description
    Finds the feeder folders ``<substation>--<feeder>`` of the state's city, subregion(s) and
    scenario (``common.config.SMARTDS``) below a SMART-DS tree in the OEDI layout and takes each one
    in with the feeder intake (``common.intake.take_in``): every file the engine reads when it compiles
    ``Master.dss`` is found (``Redirect`` / ``Compile`` targets recursively, relative to the file that
    names them, and every ``mult=(file=...)``, ``csvfile=``, ``BusCoords`` ... file, in
    ``LoadShapes.dss``, ``PVShapes.dss`` or any other file); the files of the feeder's folder (and its
    subfolders) are copied, the files outside it (the subregion's ``profiles/``, solar scenarios'
    ``pv-profiles/``: large, shared by every feeder) stay in the tree and the copy names them by
    relative path; the copy must compile to the same circuit (object counts, load shapes, snapshot
    voltages) as the original in place. A feeder whose folder lacks ``Master.dss``, ``Loads.dss`` or
    ``LoadShapes.dss``, whose master does not redirect to the latter two, or that the intake refuses
    (a referenced file missing, a master that does not compile) is left out, listed in
    ``feeders.csv`` with the reason naming the file and line; the others go through. Re-running skips
    a feeder whose source is unchanged and replaces one that changed (never a ``__2`` copy); a feeder
    no longer in the source is removed from the workspace.

Inputs
    <smartds-root>/<year>/<city>/<subregion>/scenarios/<scenario>/opendss/<sub>/<sub>--<feeder>/
        default root ``<data>/smartds`` (phase 1c ``download_smartds.py``); ``--smartds-root``
        takes any local SMART-DS tree, e.g. the embedded sample ``<data>/sample/oedi/SMART-DS/v1.0``

Outputs (``<data>/1b_smartds_eulp_match/<STATE>/``, read by the rest of phase 1b and phase 6)
    feeders/<sub>--<feeder>/         the copies: the files the engine reads, ``Master.dss`` stripped of its
                                     solve/export/plot lines, ``.intake.json`` (source, digests, circuit)
    feeders.csv                      state, feeder, substation, feeder_name, subregion,
                                     subregion_dir, source_dir, status (ok / excluded), reason,
                                     n_loads, n_shapes

Settings read
    common.config: SMARTDS, SKIP_CIRCUITS

Usage
    python 1b_smartds_eulp_match/copy_circuits.py --state NC [--smartds-root DIR] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from common import cli, config, dss, intake, smartds
from common.io import exclusive_step, write_csv
from common.paths import SMARTDS_FILES, Workspace

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name
MASTER, LOADS, LOADSHAPES = SMARTDS_FILES["master"], SMARTDS_FILES["loads"], SMARTDS_FILES["loadshapes"]
REQUIRED_FILES = (MASTER, LOADS, LOADSHAPES)
#: ``Redirect`` / ``Compile`` references of a DSS text, as the intake reads them
include_refs = intake.include_refs


# ------------------------------------------------------------------------------------------- checks
def find_feeder_dirs(root: Path, state: str) -> list[tuple[str, Path]]:
    """(subregion, feeder folder) of every feeder of the state's scenario, sorted."""
    found = []
    for subregion in config.SMARTDS[state]["subregions"]:
        base = smartds.scenario_dir(root, state, subregion)
        if not base.is_dir():
            continue
        for folder in sorted(base.glob("*/*--*")):
            if folder.is_dir() and folder.name.startswith(folder.parent.name + "--"):
                found.append((subregion, folder))
    return found


def shape_file_refs(text: str) -> list[tuple[str, str, str]]:
    """(shape, property, path as written) of every ``file=`` reference in LoadShapes.dss text."""
    refs = []
    for obj in dss.parse_dss_text(text, ("loadshape",)):
        for prop in ("mult", "qmult", "pmult"):
            ref = dss.file_reference(obj.get(prop))
            if ref:
                refs.append((obj.name, prop, ref))
    return refs


def missing_files(folder: Path) -> str | None:
    """The reason a feeder folder lacks a file the later phases read, or None."""
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    return f"missing {', '.join(missing)}" if missing else None


def take_in_feeder(folder: Path, feeders_dir: Path) -> tuple[intake.Intake | None, str | None]:
    """Take one feeder folder in (``common.intake.take_in``, files outside the folder referenced in
    place); (the intake, None) or (None, the reason it is left out)."""
    try:
        result = intake.take_in(folder / MASTER, feeders_dir, name=folder.name, share_outside=True, replace=True)
    except intake.IntakeError as exc:
        return None, str(exc)
    unread = [name for name in (LOADS, LOADSHAPES) if name not in result.files]
    if unread:
        return None, f"{folder / MASTER} does not redirect to {' or '.join(unread)} (the customers are read from it)"
    return result, None


def count_objects(folder: Path) -> tuple[int, int]:
    loads = dss.read_dss_objects(folder / LOADS, ("load",)) if (folder / LOADS).is_file() else []
    shapes = dss.read_dss_objects(folder / LOADSHAPES, ("loadshape",)) if (folder / LOADSHAPES).is_file() else []
    return len(loads), len(shapes)


def remove_partial_copies(feeders_dir: Path) -> int:
    """Remove the hidden ``.<feeder>.*`` folders a killed copy left (the intake's temporaries)."""
    if not feeders_dir.is_dir():
        return 0
    partial = sorted(p for p in feeders_dir.iterdir() if p.is_dir() and p.name.startswith("."))
    for path in partial:
        shutil.rmtree(path)
    return len(partial)


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="copy_circuits.py")
    cli.add_state(parser)
    parser.add_argument("--smartds-root", default=None,
                        help="SMART-DS tree below SMART-DS/v1.0 (<year>/<city>/...); default <data>/smartds")
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    out = ws.match_dir(args.state)
    with exclusive_step(out, SCRIPT):
        if remove_partial_copies(ws.feeders_dir(args.state)):
            logger.info("removed the partial feeder copies of an interrupted run")
        return run(args, ws)


def run(args: argparse.Namespace, ws: Workspace) -> int:
    state = args.state
    root = Path(args.smartds_root).expanduser().resolve() if args.smartds_root else ws.smartds_root
    sd = config.SMARTDS[state]
    found = find_feeder_dirs(root, state)
    if not found:
        where = smartds.scenario_dir(root, state, sd["subregions"][0])
        raise cli.UserError(f"no SMART-DS feeders for {state} under {where}: run "
                            "1c_eulp_downloads/download_smartds.py or pass --smartds-root")
    logger.info("%s: %d feeder folders under %s", state, len(found), root)
    skip = config.SKIP_CIRCUITS.get(state, {})
    rows, kept = [], set()
    copied = unchanged = 0
    for subregion, folder in found:
        substation, feeder_name = smartds.split_folder(folder.name)
        reason = missing_files(folder)
        if reason is None and folder.name in skip:
            reason = f"SKIP_CIRCUITS: {skip[folder.name]}"
        n_loads, n_shapes = count_objects(folder)
        if reason is None:
            result, reason = take_in_feeder(folder, ws.feeders_dir(state))
            if result is not None:
                kept.add(folder.name)
                if result.updated:
                    copied += 1
                else:
                    unchanged += 1
        if reason is not None:
            logger.warning("%s left out: %s", folder.name, reason)
        rows.append({"state": state, "feeder": folder.name, "substation": substation, "feeder_name": feeder_name,
                     "subregion": subregion, "subregion_dir": ws.portable(smartds.subregion_of_feeder(folder)),
                     "source_dir": ws.portable(folder), "status": "ok" if reason is None else "excluded",
                     "reason": reason or "", "n_loads": n_loads, "n_shapes": n_shapes})
    feeders_dir = ws.feeders_dir(state)
    if feeders_dir.is_dir():
        for stale in sorted(p for p in feeders_dir.iterdir() if p.is_dir() and p.name not in kept):
            logger.info("removing %s: no longer a usable feeder of the source", stale.name)
            shutil.rmtree(stale)
    write_csv(ws.feeder_list(state), pd.DataFrame(rows))
    excluded = sum(r["status"] != "ok" for r in rows)
    logger.info("%s: %d feeders copied, %d unchanged, %d left out -> %s", state, copied, unchanged, excluded,
                ws.feeder_list(state))
    cli.record(__file__, ws.match_dir(state), args, smartds_root=str(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
