"""Copy a state's SMART-DS feeders into the workspace, checked, with the list of what was left out.

Description
    Finds the feeder folders ``<substation>--<feeder>`` of the state's city, subregion(s) and
    scenario (``common.config.SMARTDS``) below a SMART-DS tree in the OEDI layout, checks each one
    (``Master.dss``, ``Loads.dss`` and ``LoadShapes.dss`` present; every ``Redirect`` / ``Compile``
    target, followed from ``Master.dss`` through the files it names, relative paths resolved from
    the file that names them, exists and is one of the folder's own files; every ``file=`` path of
    ``LoadShapes.dss`` resolves) and copies the good ones into the workspace. A feeder that fails a
    check is left out, listed in ``feeders.csv`` with the reason naming the file; the others go
    through. ``file=`` paths are
    rewritten relative to the copy, so the copy keeps pointing at the tree's ``profiles/``.
    Re-running skips a feeder whose source is unchanged and replaces one that changed (never a
    ``__2`` copy); a feeder no longer in the source is removed from the workspace.

Inputs
    <smartds-root>/<year>/<city>/<subregion>/scenarios/<scenario>/opendss/<sub>/<sub>--<feeder>/
        default root ``<data>/smartds`` (phase 1c ``download_smartds.py``); ``--smartds-root``
        takes any local SMART-DS tree, e.g. the embedded sample ``<data>/sample/oedi/SMART-DS/v1.0``

Outputs (``<data>/1b_smartds_eulp_match/<STATE>/``, read by the rest of phase 1b and phase 6)
    feeders/<sub>--<feeder>/*.dss     the copies
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
import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import pandas as pd

from common import cli, config, dss, smartds
from common.io import clean_temporaries, folder_lock, write_csv
from common.paths import FEEDER_SOURCE_DIGEST, SMARTDS_FILES, Workspace

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name
MASTER, LOADS, LOADSHAPES = SMARTDS_FILES["master"], SMARTDS_FILES["loads"], SMARTDS_FILES["loadshapes"]
REQUIRED_FILES = (MASTER, LOADS, LOADSHAPES)
DIGEST_FILE = FEEDER_SOURCE_DIGEST
#: OpenDSS commands that read another DSS file
INCLUDE_COMMANDS = ("redirect", "compile")


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


def resolve_ref(folder: Path, ref: str) -> Path:
    """A ``file=`` path resolved from the feeder folder; Windows separators accepted."""
    ref = ref.replace("\\", "/")
    path = Path(ref)
    return path if path.is_absolute() else (folder / path).resolve()


def include_refs(text: str) -> list[tuple[int, str, str]]:
    """(line number, command, path as written) of every ``Redirect`` / ``Compile`` of a DSS text."""
    refs = []
    in_block = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if in_block:
            if "*/" not in line:
                continue
            line, in_block = line.split("*/", 1)[1].strip(), False
        if line.startswith("/*"):
            in_block = "*/" not in line
            continue
        tokens = dss.tokenize(line)
        if len(tokens) < 2 or tokens[0][0] is not None or tokens[0][1].lower() not in INCLUDE_COMMANDS:
            continue
        key, value = tokens[1]
        if key not in (None, "file"):
            continue
        value = value.strip()
        if value[:1] in "([{":
            value = value[1:-1].strip()
        if value[:1] in "\"'":
            value = value.strip("\"'")
        else:
            value = value.split("!", 1)[0]
        if value:
            refs.append((number, tokens[0][1], value))
    return refs


def include_problem(folder: Path) -> str | None:
    """The first ``Redirect`` / ``Compile`` target that does not exist, or that is not one of the
    feeder folder's own files (the copy holds those only), followed from Master.dss through every
    file it includes; relative paths resolve from the file that names them. None when all do."""
    root = Path(os.path.abspath(folder))  # not resolve(): a folder of symbolic links is still the folder
    queue, seen = [root / MASTER], set()
    while queue:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.add(current)
        name = current.name if current.parent == root else str(current)
        for number, command, ref in include_refs(current.read_text(encoding="utf-8", errors="replace")):
            written = Path(ref.replace("\\", "/"))
            target = written if written.is_absolute() else Path(os.path.normpath(current.parent / written))
            if not target.is_file():
                return f"{name} line {number}: {command} {ref}: {target} does not exist"
            if not written.is_absolute() and target.parent != root:
                return (f"{name} line {number}: {command} {ref}: {target} is outside the feeder folder "
                        "(the copy holds the folder's own files only)")
            queue.append(target)
    return None


def check_feeder(folder: Path) -> str | None:
    """The reason a feeder folder cannot be used, or None when it is complete."""
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        return f"missing {', '.join(missing)}"
    problem = include_problem(folder)
    if problem:
        return problem
    text = (folder / LOADSHAPES).read_text(encoding="utf-8", errors="replace")
    for shape, prop, ref in shape_file_refs(text):
        if not resolve_ref(folder, ref).is_file():
            return f"{LOADSHAPES}: {shape} {prop} file {ref} does not exist"
    return None


def source_digest(folder: Path) -> str:
    """Digest of a feeder folder's files and of where its profiles resolve."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(str(folder.resolve()).encode())
    return h.hexdigest()


def rewrite_loadshapes(text: str, source: Path, dest: Path) -> str:
    """Point every ``file=`` path at the same file, relative to the copy's folder."""
    for ref in sorted({ref for _, _, ref in shape_file_refs(text)}):
        rel = Path(os.path.relpath(resolve_ref(source, ref), dest)).as_posix()
        text = re.sub(r"(file\s*=\s*)" + re.escape(ref) + r"(?=[\s,)])", lambda m: m.group(1) + rel, text,
                      flags=re.IGNORECASE)
    return text


# ------------------------------------------------------------------------------------------- copy
def copy_feeder(source: Path, dest: Path) -> bool:
    """Copy one feeder folder atomically; False when the copy is already up to date."""
    digest = source_digest(source)
    marker = dest / DIGEST_FILE
    if marker.is_file() and marker.read_text().strip() == digest:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for path in sorted(p for p in source.iterdir() if p.is_file()):
            if path.name == LOADSHAPES:
                text = path.read_text(encoding="utf-8", errors="replace")
                (tmp / path.name).write_text(rewrite_loadshapes(text, source, dest), encoding="utf-8")
            else:
                shutil.copyfile(path, tmp / path.name)
        (tmp / DIGEST_FILE).write_text(digest + "\n")
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            if old.exists():
                shutil.rmtree(old)
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old)
        else:
            tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return True


def count_objects(folder: Path) -> tuple[int, int]:
    loads = dss.read_dss_objects(folder / LOADS, ("load",)) if (folder / LOADS).is_file() else []
    shapes = dss.read_dss_objects(folder / LOADSHAPES, ("loadshape",)) if (folder / LOADSHAPES).is_file() else []
    return len(loads), len(shapes)


def remove_partial_copies(feeders_dir: Path) -> int:
    """Remove the hidden ``.<feeder>.*`` folders a killed copy left (copy_feeder's temporaries)."""
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
    with folder_lock(out, SCRIPT):
        clean_temporaries(out)
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
        reason = check_feeder(folder)
        if reason is None and folder.name in skip:
            reason = f"SKIP_CIRCUITS: {skip[folder.name]}"
        n_loads, n_shapes = count_objects(folder)
        dest = ws.feeder_dir(state, folder.name)
        if reason is None:
            if copy_feeder(folder, dest):
                copied += 1
            else:
                unchanged += 1
            kept.add(folder.name)
        else:
            logger.warning("%s left out: %s", folder.name, reason)
        rows.append({"state": state, "feeder": folder.name, "substation": substation, "feeder_name": feeder_name,
                     "subregion": subregion, "subregion_dir": str(smartds.subregion_of_feeder(folder)),
                     "source_dir": str(folder.resolve()), "status": "ok" if reason is None else "excluded",
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
