"""Feeder intake: any OpenDSS feeder into the workspace as the engine reads it, checked by solving it.

Both routes take feeders in through :func:`take_in`: phase 1b's SMART-DS copy
(``1b_smartds_eulp_match/copy_circuits.py``) and phase 6's ``--feeder-dir``.

1. :func:`find_master`: the master file the user names is the one studied (``Master-unbal.dss``, not
   the folder's ``Master.dss``); a folder means its ``Master.dss``, or its only file that defines a
   circuit.
2. :func:`collect`: every file the engine reads when it compiles the master, found by following the
   commands as the engine does. ``Redirect`` / ``Compile`` targets recursively, relative to the file that
   names them (after ``Compile x/f.dss`` the rest of the naming file resolves from ``x/``, as OpenDSS
   does); every file named by a property (``mult=(file=...)``, ``qmult=(sngfile=...)``, ``csvfile=``,
   ``sngfile=``, ``dblfile=``, any ``(file=...)`` array of XY curves or shapes) and by
   ``BusCoords`` / ``LatLongCoords``. Syntax as OpenDSS reads it: any case, quoted or bracketed tokens,
   ``~`` continuations, ``!`` / ``//`` / ``/* */`` comments, ``\\`` separators. A file that does not
   exist is an :class:`IntakeError` naming the file and line that reference it.
3. The feeder's id (:func:`feeder_id`): ``name`` when given, else derived from the path; a feeder of
   the same id taken in from another source is an error, never an overwrite.
4. The feeder is compiled in place (its master without solve/export/plot/show lines), then copied
   into ``<feeders_dir>/<id>/`` keeping the files' relative layout below their common folder (so
   ``../IEEELineCodes.DSS`` still works), references rewritten only where a path must change
   (absolute paths, files kept in place); the copied master is stripped of solve/export/plot/show lines.
   With ``share_outside`` (SMART-DS: profiles are large and shared by every feeder of a subregion)
   the files outside the master's folder are not copied but referenced from the copy by relative path
   (absolute when the copy and the file have no folder in common but the root).
5. Verification: the copy must compile to the same circuit as the original in place: the same
   number of objects of every class, the same load shapes (multipliers), the same base-case snapshot
   solution (every node voltage within ``VOLTAGE_RTOL``). A difference is an IntakeError naming it.
   Files left in place are checked to be reached from the copy by the path it names them with; the
   load shapes they feed are compared through binary stand-ins of the values the original read
   (a 35040-row CSV profile costs the engine ~25 ms to parse, its stand-in 0.2 ms), and only when
   that finds a difference is the copy compiled on the profiles themselves.
6. ``<id>/.intake.json`` records the source, every copied file's digest, the files referenced in
   place, the circuit and its object counts. Taking in the same source again is a no-op when nothing
   changed (no compile), else an update.

The caller holds the lock of the folder (``common.io.folder_lock``); one intake per feeder at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import opendssdirect

from common import dss
from common.io import InputError, sha256_bytes, sha256_file, write_json
from common.paths import FEEDER_INTAKE_RECORD

logger = logging.getLogger(__name__)

#: version of the copy layout and record; a copy of another version is made again
INTAKE_VERSION = 1
#: commands that read DSS text; ``Compile`` also moves the rest of the naming file to the target's folder
INCLUDE_COMMANDS = ("redirect", "compile")
#: commands whose first argument is a data file
FILE_COMMANDS = ("buscoords", "latlongcoords")
#: property names whose value is a file
FILE_PROPERTIES = ("csvfile", "sngfile", "dblfile", "pqcsvfile", "file")
#: the commands strip_master_text drops from the master; in a redirected file they would solve, write
#: or show something during the intake's compile, so there they are refused
REFUSED_NESTED = ("solve", "export", "plot", "show", "visualize")
#: commands that move the engine's folder in a way the copy cannot follow
UNSUPPORTED = ("cd",)
#: folder names that say nothing about the feeder: its id takes the parent folder's name too
GENERIC_FOLDER_NAMES = frozenset({"opendss", "dss", "model", "models", "feeder", "feeders", "circuit", "circuits",
                                  "network", "master", "base", "files"})
#: where, inside a copy, files named by an absolute path outside the copied tree go
EXTERNAL_DIR = "_external"
#: tolerance on every node voltage of the copy's snapshot, relative to the original's magnitude
VOLTAGE_RTOL = 1e-9
_FEEDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
_GROUP_FILE = re.compile(r"(?<![A-Za-z0-9_.])(?:file|csvfile|sngfile|dblfile)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s,)\]}]+)",
                         re.IGNORECASE)
_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class IntakeError(InputError):
    """A feeder that cannot be taken in: a referenced file missing, a master that does not compile in
    place, a copy that does not compile to the same circuit, an id already taken by another source.
    One line naming the file (and line) and the fix; ``cli.entry`` turns it into exit status 2."""


# ------------------------------------------------------------------------------------------- inventory
@dataclass(frozen=True)
class Reference:
    """One file named by a command: where (file, lines), how (command), the path as written and the
    file it resolves to (absolute, ``..`` collapsed, symbolic links kept)."""

    referrer: Path
    first_line: int
    last_line: int
    command: str          # e.g. "Redirect", "Compile", "Buscoords", "Loadshape.res_1 mult"
    written: str
    base: Path            # the folder the written path resolves from
    target: Path
    script: bool          # DSS commands the engine reads (Redirect / Compile), else a data file
    #: for ``New Loadshape.<shape> mult|pmult|qmult=(file=...)``: the shape, the property and the whole
    #: ``(file=...)`` token as written (the verification may read those values from a binary stand-in)
    shape: str | None = None
    prop: str = ""
    token: str = ""

    def where(self) -> str:
        return f"{self.referrer} line {self.first_line}: {self.command} {self.written}"


@dataclass(frozen=True)
class Inventory:
    """Every file the engine reads when compiling ``master``, and where each is named."""

    master: Path
    references: tuple[Reference, ...]
    circuit: tuple[Path, int] | None = None   # the file and line of the first command defining the circuit

    @property
    def files(self) -> list[Path]:
        """The master and every referenced file, sorted, each once."""
        return sorted({self.master} | {r.target for r in self.references})

    @property
    def scripts(self) -> list[Path]:
        return sorted({self.master} | {r.target for r in self.references if r.script})


def _absolute(path: Path | str) -> Path:
    """Absolute with ``..`` collapsed, symbolic links kept (a folder of links is still that folder)."""
    return Path(os.path.abspath(os.fspath(path)))


def _resolve(written: str, base: Path) -> Path:
    """Where the engine finds ``written`` from folder ``base`` (``\\`` accepted as separator)."""
    posix = written.replace("\\", "/")
    physical = base / posix
    lexical = Path(os.path.normpath(physical))
    if lexical.exists() or not physical.exists():
        return lexical
    return Path(os.path.realpath(physical))  # ``..`` after a linked folder: the engine follows the link


def _is_absolute(written: str) -> bool:
    return written.replace("\\", "/").startswith("/") or bool(_WINDOWS_ABSOLUTE.match(written))


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="surrogateescape")


def include_refs(text: str) -> list[tuple[int, str, str]]:
    """(line, command as written, path as written) of every ``Redirect`` / ``Compile`` of a DSS text."""
    refs = []
    for command in dss.command_spans(text):
        tokens = dss.tokenize(command.text)
        if tokens and tokens[0][0] is None and tokens[0][1].lower() in INCLUDE_COMMANDS:
            written = _argument(tokens)
            if written:
                refs.append((command.first_line, tokens[0][1], written))
    return refs


def _argument(tokens: list[tuple[str | None, str]]) -> str:
    """The file argument of ``Redirect x``, ``Compile (x)``, ``Redirect file=x``, ``Buscoords "x"``."""
    if len(tokens) < 2:
        return ""
    key, value = tokens[1]
    if key not in (None, "file", "filename"):
        return ""
    return dss.unquote(value)


def _object_label(tokens: list[tuple[str | None, str]]) -> str:
    """``Loadshape.x`` of ``New Loadshape.x ...`` / ``Edit ...``; the command word otherwise."""
    word = tokens[0][1]
    if tokens[0][0] is None and word.lower() in ("new", "edit", "more", "like") and len(tokens) > 1:
        return dss.unquote(tokens[1][1])
    return word if tokens[0][0] is None else tokens[0][0].rsplit(".", 1)[0]


def _data_refs(tokens: list[tuple[str | None, str]]) -> list[tuple[str, str, dict[str, str]]]:
    """(label, path as written, stand-in details) of every file a property names in one command."""
    found = []
    label = _object_label(tokens)
    cls, _, shape = label.partition(".")
    is_shape = tokens[0][0] is None and tokens[0][1].lower() in ("new", "edit") and cls.lower() == "loadshape"
    for key, value in tokens[1:] if tokens[0][0] is None else tokens:
        prop = key.rsplit(".", 1)[-1] if key else ""
        if prop in FILE_PROPERTIES:
            path = dss.unquote(value)
            if path and "=" not in path:
                found.append((f"{label} {prop}", path, {}))
                continue
        if value[:1] in "([{":
            matches = list(_GROUP_FILE.finditer(value[1:-1] if len(value) > 1 else ""))
            single = is_shape and shape and prop in ("mult", "pmult", "qmult") and len(matches) == 1
            for match in matches:
                details = {"shape": shape.lower(), "prop": prop, "token": value} if single else {}
                found.append((f"{label} {prop or 'array'} file", match.group(1).strip("\"'"), details))
    return found


def collect(master: Path) -> Inventory:
    """Every file the engine reads when it compiles ``master`` (without the master's own
    solve/export/plot/show lines), following the commands as the engine does.

    Raises IntakeError naming the file and line of a reference whose file does not exist, of a
    Redirect loop, of a solve/export/plot/show line in a redirected file, or of ``CD`` /
    ``Set DataPath`` (which the copy cannot follow)."""
    master = _absolute(master)
    if not master.is_file():
        raise IntakeError(f"{master}: master file not found")
    refs: list[Reference] = []
    circuit: list[tuple[Path, int]] = []

    def walk(path: Path, stack: tuple[Path, ...]) -> None:
        base = path.parent
        for command in dss.command_spans(_read_text(path)):
            tokens = dss.tokenize(command.text)
            if not tokens:
                continue
            word = tokens[0][1].lower() if tokens[0][0] is None else ""
            where = f"{path} line {command.first_line}"
            if word in dss._STRIP_COMMANDS:
                if path == master:
                    continue  # stripped from the master: never run
                if word in REFUSED_NESTED:
                    raise IntakeError(f"{where}: {tokens[0][1]} in a redirected file (the intake strips "
                                      f"solve/export/plot/show lines from the master {master.name} only): "
                                      f"remove it from {path.name}")
            if word in UNSUPPORTED or (word == "set" and any((k or "").lower() == "datapath" for k, _ in tokens)):
                raise IntakeError(f"{where}: {command.text[:60]!r} moves the engine's folder, which the intake "
                                  "cannot follow: name the files by paths relative to the file naming them")
            if not circuit and dss.circuit_name_of(command.text):
                circuit.append((path, command.first_line))
            if word in INCLUDE_COMMANDS:
                written = _argument(tokens)
                if not written:
                    raise IntakeError(f"{where}: {tokens[0][1]} names no file")
                ref = _reference(path, command, tokens[0][1], written, base, script=True)
                if ref.target in stack:
                    raise IntakeError(f"{ref.where()}: {ref.target} is already being read (a Redirect loop)")
                refs.append(ref)
                walk(ref.target, stack + (ref.target,))
                if word == "compile":  # the engine reads the rest of this file from the compiled file's folder
                    base = ref.target.parent
                continue
            if word in FILE_COMMANDS:
                written = _argument(tokens)
                if written:
                    refs.append(_reference(path, command, tokens[0][1], written, base, script=False))
                continue
            for label, written, details in _data_refs(tokens):
                refs.append(_reference(path, command, label, written, base, script=False, **details))

    walk(master, (master,))
    return Inventory(master=master, references=tuple(refs), circuit=circuit[0] if circuit else None)


def _reference(path: Path, command: dss.Command, label: str, written: str, base: Path, *, script: bool,
               shape: str | None = None, prop: str = "", token: str = "") -> Reference:
    target = _resolve(written, base)
    ref = Reference(referrer=path, first_line=command.first_line, last_line=command.last_line, command=label,
                    written=written, base=base, target=target, script=script, shape=shape, prop=prop, token=token)
    if not target.is_file():
        hint = ""
        if _is_absolute(written):
            hint = f" (an absolute path, perhaps of another machine: name it relative to {path.parent})"
        what = "is a folder, not a file" if target.is_dir() else "does not exist"
        raise IntakeError(f"{ref.where()}: {target} {what}{hint}")
    return ref


# ------------------------------------------------------------------------------------------- masters and ids
def _defines_circuit(path: Path) -> bool:
    try:
        return any(dss.circuit_name_of(c.text) for c in dss.command_spans(_read_text(path)))
    except OSError:
        return False


def find_master(path: Path | str) -> Path:
    """The master to study: ``path`` itself when it is a file; for a folder its ``Master.dss`` (any
    case), else its only ``.dss`` file that defines a circuit. Raises IntakeError listing the
    candidates when the folder has none or several."""
    path = _absolute(Path(path).expanduser())
    if path.is_file():
        return path
    if not path.is_dir():
        raise IntakeError(f"{path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".dss")
    for candidate in files:
        if candidate.name.lower() == "master.dss":
            return candidate
    circuits = [p for p in files if _defines_circuit(p)]
    if len(circuits) == 1:
        logger.info("%s: no Master.dss; %s is its only file that defines a circuit", path, circuits[0].name)
        return circuits[0]
    if circuits:
        raise IntakeError(f"{path}: no Master.dss, and {', '.join(p.name for p in circuits)} each define a "
                          "circuit: pass the master file itself")
    raise IntakeError(f"{path}: no Master.dss and no .dss file that defines a circuit (New Circuit.<name>)"
                      + (f" among {', '.join(p.name for p in files)}" if files else ""))


def check_feeder_name(name: str) -> str:
    """``name`` when it can be a feeder id (a folder name in every phase), else IntakeError."""
    if not _FEEDER_NAME.match(name or ""):
        raise IntakeError(f"feeder name {name!r}: use letters, digits and . _ + - (starting with a letter or "
                          "digit), at most 100 characters")
    return name


def derived_feeder_id(master: Path) -> str:
    """A readable id from the master's path: the file's stem (``IEEE13Nodeckt``, ``ieee34Mod1``); for
    ``Master.dss`` its folder's name, and ``<folder>_<stem>`` for other ``Master*`` files
    (``8500-Node_Master-unbal``); a folder named only ``OpenDSS`` (``GENERIC_FOLDER_NAMES``) is
    prefixed with its parent's name (``p12uhs3_1247--p12udt1234_OpenDSS``)."""
    master = _absolute(master)
    folder = master.parent
    folder_part = folder.name
    if folder_part.lower() in GENERIC_FOLDER_NAMES and folder.parent.name:
        folder_part = f"{folder.parent.name}_{folder_part}"
    stem = master.stem
    if stem.lower() == "master":
        raw = folder_part
    elif stem.lower().startswith("master"):
        raw = f"{folder_part}_{stem}"
    else:
        raw = stem
    clean = re.sub(r"[^A-Za-z0-9._+-]+", "_", raw).strip("._+-")[:80]
    return clean or "feeder"


def path_hash(master: Path) -> str:
    """Eight hex digits of the master's absolute path: the suffix that tells apart two feeders whose
    derived ids are the same."""
    return hashlib.sha256(str(_absolute(master)).encode()).hexdigest()[:8]


def feeder_id(master: Path, feeders_dir: Path, name: str | None = None, *, replace: bool = False) -> str:
    """The id of the feeder ``master`` in ``feeders_dir``.

    With ``name``: that name (checked), or IntakeError when ``feeders_dir/<name>`` holds a feeder of
    another source (unless ``replace``). Without: :func:`derived_feeder_id`, or that id plus
    ``_<path_hash>`` when the plain one is taken by another source; the same source always gets the
    same id back."""
    master = _absolute(master)
    if name is not None:
        name = check_feeder_name(name)
        record = read_record(Path(feeders_dir) / name)
        folder = Path(feeders_dir) / name
        if replace:
            return name
        if record is not None and record.get("source") != str(master):
            raise IntakeError(f"feeder {name!r} is already in {feeders_dir}, taken in from {record.get('source')}: "
                              f"choose another --feeder-name for {master}")
        if record is None and folder.exists():
            raise IntakeError(f"{folder} exists but was not made by the feeder intake: remove it or choose "
                              f"another --feeder-name for {master}")
        return name
    base = derived_feeder_id(master)
    for candidate in (base, f"{base}_{path_hash(master)}"):
        folder = Path(feeders_dir) / candidate
        record = read_record(folder)
        if not folder.exists() or (record is not None and record.get("source") == str(master)):
            return candidate
    raise IntakeError(f"feeder ids {base!r} and {base}_{path_hash(master)} are both taken in {feeders_dir} by other "
                      f"sources: pass --feeder-name for {master}")


# ------------------------------------------------------------------------------------------- snapshot
@dataclass
class Snapshot:
    """What a compiled circuit is, for comparing a copy with its original."""

    circuit: str
    elements: dict[str, int]            # class -> number of objects (circuit elements and general objects)
    shapes: dict[str, str]              # load shape -> digest of its npts, interval and multipliers
    nodes: list[str]
    volts: np.ndarray                   # complex node voltages [V] of the base-case snapshot
    solve_error: str = ""
    converged: bool = False


def snapshot(engine: Any) -> Snapshot:
    """Object counts, load shapes and the base-case snapshot solution of the compiled circuit."""
    elements = {}
    for cls in engine.Basic.Classes():
        engine.Circuit.SetActiveClass(cls)
        count = int(engine.ActiveClass.Count())
        if count:
            elements[cls] = count
    shapes = {}
    for name in engine.LoadShape.AllNames():
        engine.LoadShape.Name(name)
        h = hashlib.sha256()
        h.update(f"{engine.LoadShape.Npts()} {engine.LoadShape.HrInterval()!r}".encode())
        h.update(np.asarray(engine.LoadShape.PMult(), dtype=float).tobytes())
        h.update(np.asarray(engine.LoadShape.QMult(), dtype=float).tobytes())
        shapes[name.lower()] = h.hexdigest()
    error = ""
    try:
        engine.Text.Command("Set mode=snapshot")
        engine.Solution.Solve()
    except opendssdirect.DSSException as exc:
        error = dss._message(exc)
    return Snapshot(circuit=engine.Circuit.Name(), elements=elements, shapes=shapes,
                    nodes=list(engine.Circuit.AllNodeNames()), volts=dss.complex_array(engine.Circuit.AllBusVolts()),
                    solve_error=error, converged=bool(engine.Solution.Converged()))


def differences(original: Snapshot, copy: Snapshot, *, limit: int = 3) -> list[str]:
    """What differs between the copy and the original, most telling first (empty: the same circuit)."""
    found = []
    if original.circuit != copy.circuit:
        found.append(f"circuit {copy.circuit!r} instead of {original.circuit!r}")
    for cls in sorted(set(original.elements) | set(copy.elements)):
        a, b = original.elements.get(cls, 0), copy.elements.get(cls, 0)
        if a != b:
            found.append(f"{cls}: {b} in the copy, {a} in the original")
    missing = sorted(set(original.shapes) - set(copy.shapes))
    changed = sorted(s for s in set(original.shapes) & set(copy.shapes) if original.shapes[s] != copy.shapes[s])
    if missing:
        found.append(f"load shapes missing in the copy: {', '.join(missing[:limit])}")
    if changed:
        found.append(f"load shapes whose multipliers differ: {', '.join(changed[:limit])}")
    if original.solve_error != copy.solve_error:
        found.append(f"snapshot solve: {copy.solve_error or 'no error'} in the copy, "
                     f"{original.solve_error or 'no error'} in the original")
    if original.converged != copy.converged:
        found.append(f"snapshot {'converged' if copy.converged else 'did not converge'} in the copy, "
                     f"{'converged' if original.converged else 'did not'} in the original")
    if original.nodes != copy.nodes:
        first = next((i for i, (a, b) in enumerate(zip(original.nodes, copy.nodes)) if a != b),
                     min(len(original.nodes), len(copy.nodes)))
        found.append(f"nodes differ ({len(copy.nodes)} in the copy, {len(original.nodes)} in the original; "
                     f"first at position {first + 1})")
    elif len(original.volts) == len(copy.volts) and len(original.volts):
        deviation = np.abs(copy.volts - original.volts)
        allowed = VOLTAGE_RTOL * np.abs(original.volts) + 1e-9
        if (deviation > allowed).any():
            k = int(np.argmax(deviation - allowed))
            found.append(f"snapshot voltage at node {original.nodes[k]}: {abs(copy.volts[k]):.6g} V in the copy, "
                         f"{abs(original.volts[k]):.6g} V in the original")
    return found


def compile_in_place(master: Path, engine: Any = None) -> Any:
    """Compile ``master`` where it is, without its solve/export/plot/show lines (relative paths from
    its folder, the process's directory unchanged). Raises IntakeError with the engine's message."""
    master = _absolute(master)
    text, _ = dss.strip_master_text(_read_text(master))
    try:
        return dss.compile_text(text, master.parent, name=master.name, dss=engine)
    except dss.DSSError as exc:
        raise IntakeError(f"{master}: does not compile in place: {exc.dss_message}") from None


# ------------------------------------------------------------------------------------------- copy plan
@dataclass
class Plan:
    """The copy to write: every file's bytes by its path inside the copy, the files left in place."""

    master: str                                   # the master's path inside the copy (posix)
    contents: dict[str, bytes]
    shared: dict[str, int] = field(default_factory=dict)  # absolute path -> size [bytes]
    #: reference of a copied file to a file left in place -> the path the copy names it by
    shared_refs: dict[Reference, str] = field(default_factory=dict)

    def digests(self) -> dict[str, str]:
        return {rel: sha256_bytes(data) for rel, data in sorted(self.contents.items())}


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def plan_copy(inventory: Inventory, dest: Path, *, share_outside: bool = False,
              standins: dict[Reference, str] | None = None) -> Plan:
    """The copy of ``inventory`` in folder ``dest``: files keep their layout below the common folder
    of the master and every relatively named file; a file named by an absolute path outside it goes
    to ``_external/<hash of its folder>/``; with ``share_outside`` the files outside the master's folder
    stay where they are, named by relative path (absolute when only the root is in common).
    References are rewritten where the path from the copy differs.
    ``standins`` (verification only) replaces a load shape's whole ``(file=...)`` token by another."""
    standins = standins or {}
    master = inventory.master
    anchor = master.parent
    if share_outside:
        root = anchor
    else:
        relative = [r.target.parent for r in inventory.references if not _is_absolute(r.written)]
        root = Path(os.path.commonpath([str(anchor)] + [str(p) for p in relative]))

    def place(folder: Path) -> Path:
        if _under(folder, root):
            return dest / folder.relative_to(root)
        if share_outside:
            return folder
        return dest / EXTERNAL_DIR / hashlib.sha256(str(folder).encode()).hexdigest()[:10]

    dest_real = Path(os.path.realpath(dest.parent)) / dest.name
    location = {f: place(f.parent) / f.name for f in inventory.files}
    copied = {f: loc for f, loc in location.items() if _under(loc, dest)}
    rewrites: dict[Path, list[tuple[Reference, str, bool]]] = {}
    shared_refs: dict[Reference, str] = {}
    for ref in inventory.references:
        if ref.referrer not in copied:
            continue
        if ref.target not in copied:
            shared_refs[ref] = ref.written
        if ref in standins:
            rewrites.setdefault(ref.referrer, []).append((ref, standins[ref], True))
            continue
        start = place(ref.base)
        if ref.target not in copied and _under(start, dest):  # climb out of the copy by its real folders
            start = dest_real / start.relative_to(dest)
        new = Path(os.path.relpath(location[ref.target], start)).as_posix()
        if ref.target not in copied and os.path.commonpath([location[ref.target], start]) == os.sep:
            new = location[ref.target].as_posix()  # nothing in common but the root: the absolute path
        if os.path.normpath(new) != os.path.normpath(ref.written.replace("\\", "/")):
            rewrites.setdefault(ref.referrer, []).append((ref, new, False))
            if ref in shared_refs:
                shared_refs[ref] = new
    contents = {}
    for source, loc in sorted(copied.items()):
        data = source.read_bytes()
        if source in rewrites:
            data = _rewrite(data, rewrites[source])
        if source == master:
            text, _ = dss.strip_master_text(data.decode("utf-8", errors="surrogateescape"))
            data = text.encode("utf-8", errors="surrogateescape")
        contents[loc.relative_to(dest).as_posix()] = data
    shared = {str(f): f.stat().st_size for f in sorted(set(location) - set(copied))}
    return Plan(master=copied[master].relative_to(dest).as_posix(), contents=contents, shared=shared,
                shared_refs=shared_refs)


def _rewrite(data: bytes, changes: list[tuple[Reference, str, bool]]) -> bytes:
    """``data`` with each reference's written path replaced by its new path (or, ``whole``, the
    reference's whole ``prop=(file=...)`` token by another), on the reference's lines."""
    lines = data.decode("utf-8", errors="surrogateescape").splitlines(keepends=True)
    done = set()
    for ref, new, whole in changes:
        key = (ref.first_line, ref.last_line, ref.prop if whole else "", ref.token if whole else ref.written, new)
        if key in done:  # the same path twice in one command, or a file read twice: replaced at once
            continue
        done.add(key)
        if whole:
            pattern = re.compile(r"((?<![A-Za-z0-9_.])" + re.escape(ref.prop) + r"\s*=\s*)" + re.escape(ref.token),
                                 re.IGNORECASE)
        else:
            pattern = re.compile(r"(?:(?<=[\s=(\[{,\"'])|^)" + re.escape(ref.written) + r"(?=[\s)\]},\"'!]|//|$)")
        hits = 0
        for i in range(ref.first_line - 1, min(ref.last_line, len(lines))):
            def replace(match: re.Match) -> str:
                if whole:
                    return match.group(1) + new
                before = match.string[match.start() - 1] if match.start() else ""
                return f'"{new}"' if any(c.isspace() for c in new) and before not in "\"'" else new
            lines[i], n = pattern.subn(replace, lines[i])
            hits += n
        if not hits:
            raise IntakeError(f"{ref.where()}: the intake cannot rewrite this path for the copy: name "
                              f"{ref.target} by a path relative to {ref.referrer.parent}")
    return "".join(lines).encode("utf-8", errors="surrogateescape")


# ------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Intake:
    """A feeder in the workspace: where its copy is and what it is."""

    feeder: str                 # the feeder's id (its folder's name)
    source: Path                # the master the user named (absolute)
    folder: Path                # the copy: <feeders_dir>/<feeder>
    master: Path                # the copy's master (stripped of solve/export/plot/show lines)
    files: tuple[str, ...]      # the copy's files, relative to ``folder`` (posix), sorted
    shared: tuple[Path, ...]    # source files the copy references in place (share_outside)
    circuit: str
    elements: dict[str, int]    # class -> number of objects of the compiled circuit
    updated: bool               # True when the copy was written by this call, False when already current


def read_record(folder: Path) -> dict[str, Any] | None:
    """The intake record of a copy folder, or None when it has none (or an unreadable one)."""
    path = Path(folder) / FEEDER_INTAKE_RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def read_intake(folder: Path) -> Intake:
    """The Intake of a copy already in the workspace (for workers that must not take it in again);
    IntakeError when the folder holds no intake record."""
    folder = _absolute(folder)
    record = read_record(folder)
    if record is None or record.get("version") != INTAKE_VERSION:
        raise IntakeError(f"{folder / FEEDER_INTAKE_RECORD}: missing or of another version: take the feeder in again")
    return _intake_of(folder, record, updated=False)


def _intake_of(folder: Path, record: dict[str, Any], *, updated: bool) -> Intake:
    return Intake(feeder=record["feeder"], source=Path(record["source"]), folder=folder,
                  master=folder / record["master"], files=tuple(sorted(record["files"])),
                  shared=tuple(Path(p) for p in sorted(record["shared"])), circuit=record["circuit"],
                  elements=dict(record["elements"]), updated=updated)


def _is_current(folder: Path, record: dict[str, Any] | None, master: Path, plan: Plan) -> bool:
    if record is None or record.get("version") != INTAKE_VERSION or record.get("source") != str(master):
        return False
    if (record.get("files"), record.get("shared"), record.get("master")) != (plan.digests(), plan.shared, plan.master):
        return False
    return all((folder / rel).is_file() and sha256_file(folder / rel) == digest
               for rel, digest in record["files"].items())


# ------------------------------------------------------------------------------------------- intake
def take_in(source: Path | str, feeders_dir: Path, *, name: str | None = None, share_outside: bool = False,
            replace: bool = False, engine: Any = None) -> Intake:
    """Take the feeder ``source`` (a master file, or a folder: :func:`find_master`) into
    ``feeders_dir/<id>/``, verified; see the module's docstring for the steps.

    ``name`` is the id (``--feeder-name``); without it one is derived from the path (:func:`feeder_id`).
    ``share_outside`` leaves the files outside the master's folder in place, referenced by relative
    path from the copy (SMART-DS profiles). ``replace`` lets a copy of the same id from another source
    be replaced (phase 1b: the workspace mirrors the tree it is given) instead of raising.
    Leaves the engine (``engine`` or this thread's) with a circuit compiled, unspecified which: compile
    the returned master to use it. Raises IntakeError (one line, naming the file, line and fix)."""
    master = find_master(source)
    feeders_dir = _absolute(feeders_dir)
    inventory = collect(master)
    if inventory.circuit is None:
        raise IntakeError(f"{master}: defines no circuit (no New Circuit.<name> in it or in the files it redirects "
                          "to): pass the feeder's master file")
    fid = feeder_id(master, feeders_dir, name, replace=replace)
    dest = feeders_dir / fid
    plan = plan_copy(inventory, dest, share_outside=share_outside)
    record = read_record(dest)
    if _is_current(dest, record, master, plan):
        logger.debug("%s: copy %s is current", master, dest)
        return _intake_of(dest, record, updated=False)
    engine = engine or dss.engine()
    compile_in_place(master, engine)
    original = snapshot(engine)
    _remove_temporaries(feeders_dir, fid)
    feeders_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{fid}.", dir=feeders_dir))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; give the copy the user's usual mode
    try:
        for rel, data in plan.contents.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        _verify(master, dest, tmp, inventory, plan, original, engine, share_outside)
        record = {"version": INTAKE_VERSION, "feeder": fid, "source": str(master), "master": plan.master,
                  "share_outside": share_outside, "circuit": original.circuit, "elements": original.elements,
                  "files": plan.digests(), "shared": plan.shared}
        write_json(tmp / FEEDER_INTAKE_RECORD, record, sort_keys=True)
        _swap(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    logger.info("%s taken in as %s (%d files copied, %d referenced in place, circuit %s)", master, dest,
                len(plan.contents), len(plan.shared), original.circuit)
    return _intake_of(dest, record, updated=True)


def _verify(master: Path, dest: Path, tmp: Path, inventory: Inventory, plan: Plan, original: Snapshot, engine: Any,
            share_outside: bool) -> None:
    """Compile the copy written in ``tmp`` and compare it with the original compiled in place
    (``original``); IntakeError naming what differs.

    With ``share_outside``, the load shapes read from files left in place are first given the values
    the original read from those very files, through binary stand-ins (``dblfile=``), which the engine
    reads a hundred times faster than the CSV profiles; the copy names the same files (its paths
    resolve to them), so only a difference found that way makes the full copy compiled and compared."""
    copy_master = tmp / plan.master
    for ref, new in sorted(plan.shared_refs.items(), key=lambda item: (str(item[0].referrer), item[0].first_line)):
        seen_from = tmp / ref.base.relative_to(inventory.master.parent) if _under(ref.base, inventory.master.parent) \
            else ref.base
        found_file = seen_from / new.replace("\\", "/")
        if not (found_file.is_file() and os.path.samefile(found_file, ref.target)):
            raise IntakeError(f"{ref.where()}: the copy's path {new} does not lead to {ref.target}: take the feeder "
                              "in with a workspace whose folders are not reached through symbolic links")
    if share_outside:
        with tempfile.TemporaryDirectory(prefix="dss-xlrm-intake-") as folder:
            standins = _standins(engine, inventory, plan, Path(folder))
            if standins:
                rendition = plan_copy(inventory, dest, share_outside=True, standins=standins)
                changed = {rel: data for rel, data in rendition.contents.items() if data != plan.contents[rel]}
                for rel, data in changed.items():
                    (tmp / rel).write_bytes(data)
                try:
                    dss.compile_text(_read_text(copy_master), copy_master.parent, name=dest.name, dss=engine)
                    found = differences(original, snapshot(engine))
                except dss.DSSError as exc:
                    found = [exc.dss_message]
                for rel in changed:
                    (tmp / rel).write_bytes(plan.contents[rel])
                if not found:
                    return
                logger.debug("%s: stand-in verification found %s; compiling the full copy", master, found)
    try:
        dss.compile_text(_read_text(copy_master), copy_master.parent, name=dest.name, dss=engine)
    except dss.DSSError as exc:
        raise IntakeError(f"{master}: compiles in place but its copy in {dest} does not ({exc.dss_message}): a "
                          "file reference the intake does not follow; name the file by a plain relative path") from None
    found = differences(original, snapshot(engine))
    if found:
        raise IntakeError(f"{master}: its copy in {dest} does not compile to the same circuit: {'; '.join(found)}")


def _standins(engine: Any, inventory: Inventory, plan: Plan, folder: Path) -> dict[Reference, str]:
    """For every ``Loadshape.<x> mult|qmult=(file=...)`` of a copied file naming a file left in place:
    a binary file in ``folder`` with the multipliers the compiled original holds, and the token
    that reads it. Empty when ``folder``'s path could not be written in a DSS token as is."""
    if re.search(r"[\s\"'()\[\]{},]", str(folder)):
        return {}
    names = {n.lower() for n in engine.LoadShape.AllNames()}
    standins: dict[Reference, str] = {}
    for ref in inventory.references:
        if not ref.shape or ref.shape not in names or str(ref.target) not in plan.shared or ref in standins:
            continue
        if not _under(ref.referrer, inventory.master.parent):  # a file left in place reads its own files
            continue
        engine.LoadShape.Name(ref.shape)
        values = engine.LoadShape.QMult() if ref.prop == "qmult" else engine.LoadShape.PMult()
        path = folder / f"{len(standins)}.dbl"
        np.asarray(values, dtype=np.float64).tofile(path)
        standins[ref] = f"(dblfile={path})"
    return standins


def _remove_temporaries(feeders_dir: Path, fid: str) -> None:
    """The hidden ``.<id>.*`` folders an interrupted intake of this feeder left."""
    if feeders_dir.is_dir():
        for path in sorted(feeders_dir.glob(f".{fid}.*")):
            if path.is_dir():
                shutil.rmtree(path)


def _swap(tmp: Path, dest: Path) -> None:
    """Put folder ``tmp`` in the place of ``dest`` (renames: the old copy or the new one, never half)."""
    if not dest.exists():
        tmp.rename(dest)
        return
    old = dest.with_name(f".{dest.name}.old")
    if old.exists():
        shutil.rmtree(old)
    dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old)


def files_read(master: Path) -> list[Path]:
    """Every file the engine reads when compiling ``master`` (the master first)."""
    inventory = collect(master)
    return [inventory.master] + [f for f in inventory.files if f != inventory.master]

