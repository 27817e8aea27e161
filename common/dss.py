"""OpenDSS helpers on opendssdirect.py (DSS-Extensions engine), and a reader of DSS text files.

* :func:`engine` gives this thread's engine with ``AllowChangeDir(False)``: compiling never changes
  the process's working directory (formats.md section 3).
* :func:`compile_master` compiles a ``Master.dss``, by default without the solve, export, plot and
  show lines that SMART-DS ships; relative paths resolve from the Master's folder.
* :func:`solve_daily` runs the 96 x 15-min daily solution one step at a time, checks convergence
  at every step and hands each solved step to a callback for whole-array reads.
* :class:`DSSError` carries the circuit, the step and the engine's own message.
* :func:`read_dss_objects` parses ``New Class.name key=value ...`` files (Loads.dss,
  LoadShapes.dss) in the forms SMART-DS and hand-written feeders use.
* :func:`command_spans` (logical commands with their lines), :func:`unquote` and
  :func:`compile_text` (DSS text compiled as a master of a given folder) serve the feeder intake
  (``common.intake``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENDSSDIRECT_PY_USE_NUMPY", "1")

import re  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import opendssdirect  # noqa: E402

STEPS_PER_DAY = 96
STEP_SIZE = "15m"

#: commands a pipeline must not run from a shipped Master: it drives the solution itself
_STRIP_COMMANDS = ("solve", "export", "plot", "show", "visualize", "interpolate")


class DSSError(RuntimeError):
    """An OpenDSS failure, with the circuit, the step (when solving) and the engine's message."""

    def __init__(self, circuit: str, message: str, step: int | None = None):
        self.circuit = circuit
        self.step = step
        self.dss_message = message
        where = f"{circuit}" + (f", step {step + 1} of {STEPS_PER_DAY}" if step is not None else "")
        super().__init__(f"{where}: {message}")


class DeadlineExceeded(RuntimeError):
    """A run took longer than its time limit."""


_local = threading.local()


def engine() -> Any:
    """This thread's OpenDSS engine (its own context in every thread but the main one)."""
    dss = getattr(_local, "dss", None)
    if dss is None:
        if threading.current_thread() is threading.main_thread():
            dss = opendssdirect
        else:
            dss = opendssdirect.NewContext()
        dss.Basic.AllowChangeDir(False)
        _local.dss = dss
    return dss


# ------------------------------------------------------------------------------------------- text
def _command_word(line: str) -> str:
    stripped = line.strip()
    return stripped.split(None, 1)[0].lower() if stripped else ""


def strip_master_text(text: str) -> tuple[str, list[str]]:
    """Drop the solve/export/plot/show lines (and their ``~`` continuations) of a Master.

    Returns the kept text and the dropped lines, so that callers can log what they removed.
    """
    kept, dropped = [], []
    dropping = False
    for line in text.splitlines():
        word = _command_word(line)
        if word in ("~", "more", "m") and dropping:
            dropped.append(line)
            continue
        dropping = word in _STRIP_COMMANDS
        (dropped if dropping else kept).append(line)
    return "\n".join(kept) + "\n", dropped


def compile_master(master: Path, *, strip: bool = True, dss: Any = None) -> Any:
    """Compile ``master`` in this thread's engine without changing directory.

    With ``strip`` the solve/export/plot/show lines are left out, so nothing is solved or written
    by the file itself. Raises DSSError with the engine's message when the file does not compile.
    """
    dss = dss or engine()
    master = Path(master).resolve()
    if not master.is_file():
        raise DSSError(master.parent.name, f"Master file not found: {master}")
    try:
        if strip:
            text, _ = strip_master_text(master.read_text(encoding="utf-8", errors="replace"))
            dss.Text.Command("Clear")
            dss.Basic.DataPath(str(master.parent))
            dss.Text.Commands(text)
        else:
            dss.Text.Command(f"Compile [{master}]")
    except opendssdirect.DSSException as exc:
        raise DSSError(master.parent.name, _message(exc)) from None
    if not dss.Circuit.Name():
        raise DSSError(master.parent.name, f"{master} defines no circuit")
    return dss


def _message(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    if len(args) >= 2:
        return f"(#{args[0]}) {args[1]}"
    return str(exc)


def run_commands(text: str, *, dss: Any = None) -> None:
    """Run DSS commands, turning an engine error into DSSError."""
    dss = dss or engine()
    try:
        dss.Text.Commands(text)
    except opendssdirect.DSSException as exc:
        raise DSSError(dss.Circuit.Name() or "(no circuit)", _message(exc)) from None


# ------------------------------------------------------------------------------------------- solve
#: engine errors that end a control iteration without ending the power-flow solution: when the engine
#: reports the step converged anyway, the step is kept and the warning recorded (``solve_daily``)
CONTROL_WARNINGS = {485: "Max Control Iterations Exceeded"}
#: the warning leaves the engine's solution-abort flag set (every later solve fails with #99); any
#: Reset command clears it, and resetting the event log touches nothing the solution depends on
_CLEAR_ABORT = "Reset Eventlog"


def _error_number(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _solve_step(dss: Any, k: int, warnings: list[tuple[int, str]] | None) -> None:
    """Solve the engine's current step ``k``; a control-iteration warning at a converged solution is
    appended to ``warnings`` (when given) and its abort flag cleared, any other error raised."""
    try:
        dss.Solution.Solve()
    except opendssdirect.DSSException as exc:
        if warnings is None or _error_number(exc) not in CONTROL_WARNINGS or not dss.Solution.Converged():
            raise
        warnings.append((k, _message(exc)))
        dss.Text.Command(_CLEAR_ABORT)


def solve_daily(on_step: Callable[[int], None] | None = None, *, steps: int = STEPS_PER_DAY,
                dss: Any = None, deadline: float | None = None, stop_on_divergence: bool = False,
                mode: str = "daily", warnings: list[tuple[int, str]] | None = None) -> np.ndarray:
    """Solve ``steps`` 15-min intervals of daily mode, one at a time.

    Step ``k`` (0-based) uses multiplier ``k`` of every daily load shape and ends at hour
    ``(k + 1) / 4``, exactly as ``solve mode=daily stepsize=15m number=96`` does. After each
    solve ``on_step(k)`` may read the solution. Returns the per-step convergence flags.
    ``deadline`` is a ``time.monotonic()`` value; passing it raises DeadlineExceeded.
    ``mode="yearly"`` steps the yearly shapes instead (a shipped SMART-DS feeder whose loads
    name only ``yearly=`` shapes; in daily mode those loads would stay at their peak kW).
    A control-iteration error (``CONTROL_WARNINGS``, e.g. #485) at a step that the engine still
    reports converged is appended to ``warnings`` as (step, message) and the day goes on; without
    a ``warnings`` list, or when the step did not converge, it raises DSSError as any other error.
    """
    if mode not in ("daily", "yearly"):
        raise ValueError(f"mode must be daily or yearly, not {mode!r}")
    dss = dss or engine()
    circuit = dss.Circuit.Name()
    converged = np.zeros(steps, dtype=bool)
    k = 0
    try:
        dss.Text.Command(f"Set mode={mode} stepsize={STEP_SIZE} number=1")
        dss.Solution.Hour(0)
        dss.Solution.Seconds(0.0)
        for k in range(steps):
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceeded(f"{circuit}: time limit reached at step {k + 1} of {steps}")
            _solve_step(dss, k, warnings)
            converged[k] = bool(dss.Solution.Converged())
            if not converged[k] and stop_on_divergence:
                raise DSSError(circuit, "power flow did not converge", step=k)
            if on_step is not None:
                on_step(k)
    except opendssdirect.DSSException as exc:
        raise DSSError(circuit, _message(exc), step=k) from None
    return converged


def circuit_name_of(command: str) -> str | None:
    """The circuit's name when ``command`` defines the circuit in any spelling OpenDSS accepts
    (``New Circuit.X``, ``new object=circuit.X``, ``New "Circuit.X"``, any case), else None."""
    tokens = tokenize(command)
    if len(tokens) < 2 or (tokens[0][1] or "").lower() != "new":
        return None
    key, value = tokens[1]
    if key is not None and key.lower() != "object":
        return None
    value = (value or "").strip("\"'[]")
    if value.lower().startswith("circuit."):
        return value.split(".", 1)[1]
    return None


_RATING_KEYS = ("NormAmps", "Ratings")


def unrated_lines(dss: Any = None) -> list[str]:
    """Lines (``Line.<name>``, sorted) whose normal rating is the engine's default (400 A) rather than
    one of their own: OpenDSS cannot tell a circuit's author that a line has no rating, so a loading
    against 400 A would count "overloads" the feeder never had.

    The compiled circuit's JSON (``Circuit.ToJSON``) lists, per object, the properties that were set,
    in the order they were set. A line's rating is its own when it sets NormAmps or Ratings itself
    (directly or by ``like=``), or takes them from a line code or line geometry (or the geometry's
    wires) that sets them; a line code copies its (default) values into the line when assigned, right
    after ``LineCode``, so only a NormAmps set after that copy, or differing from the copied one,
    counts as the line's own.
    """
    import json

    dss = dss or engine()
    data = json.loads(dss.Circuit.ToJSON(0))
    def rated(entries: list[dict[str, Any]]) -> set[str]:
        return {e["Name"].lower() for e in entries if any(k in e for k in _RATING_KEYS)}

    codes = rated(data.get("LineCode", []))
    wires = rated(data.get("WireData", [])) | rated(data.get("CNData", [])) | rated(data.get("TSData", []))
    geometries = rated(data.get("LineGeometry", []))
    for g in data.get("LineGeometry", []):
        names = g.get("Wires") or g.get("Wire") or []
        names = [names] if isinstance(names, str) else names
        if names and all(str(w).lower() in wires for w in names):
            geometries.add(g["Name"].lower())
    unrated = []
    for line in data.get("Line", []):
        keys = list(line)
        code, geometry = line.get("LineCode"), line.get("Geometry")
        if code is not None:
            own = str(code).lower() in codes
            if not own and "NormAmps" in keys:
                copied = keys.index("LineCode") + 3  # LineCode, then the copied Ratings, NormAmps, EmergAmps
                own = keys.index("NormAmps") > copied or float(line["NormAmps"]) != 400.0
        elif geometry is not None:
            own = str(geometry).lower() in geometries or "NormAmps" in keys[keys.index("Geometry") + 1:]
        else:
            own = any(k in line for k in _RATING_KEYS)
        if not own:
            unrated.append(f"Line.{line['Name'].lower()}")
    return sorted(unrated)


def has_stateful_controls(dss: Any = None) -> bool:
    """Whether the compiled circuit has controls whose state carries from one step to the next
    (regulator taps, capacitor switching, inverter and storage controllers, switch controls)."""
    return bool(stateful_control_classes(dss))


#: element classes whose state carries from one step to the next (:func:`has_stateful_controls`)
STATEFUL_CONTROL_CLASSES = frozenset({"regcontrol", "capcontrol", "swtcontrol", "invcontrol", "expcontrol",
                                      "storagecontroller", "upfccontrol", "esppvcontrol", "gencontrol", "relay",
                                      "recloser", "fuse"})


#: the stateful classes whose state changes only when they operate (a fuse blows, a relay or recloser opens):
#: while none has operated, a step does not depend on the steps before it (:func:`protection_operated`)
PROTECTIVE_CLASSES = frozenset({"fuse", "relay", "recloser"})


def protection_operated(dss: Any = None) -> list[str]:
    """The fuses, relays and reclosers of the compiled circuit that are not in their normal state (a blown
    fuse, an open relay or recloser), sorted; empty when none has operated."""
    dss = dss or engine()
    out = []
    for kind, api in (("fuse", dss.Fuses), ("relay", dss.Relays), ("recloser", dss.Reclosers)):
        i = api.First()
        while i > 0:
            if [str(x).lower() for x in np.atleast_1d(api.State())] != \
                    [str(x).lower() for x in np.atleast_1d(api.NormalState())]:
                out.append(f"{kind}.{api.Name()}")
            i = api.Next()
    return sorted(out)


def stateful_control_classes(dss: Any = None) -> list[str]:
    """The classes of :data:`STATEFUL_CONTROL_CLASSES` the compiled circuit has an element of, enabled or not
    (lower case, sorted); a class this engine does not know cannot be in the circuit."""
    dss = dss or engine()
    out = []
    for cls in sorted(STATEFUL_CONTROL_CLASSES):
        try:
            dss.Circuit.SetActiveClass(cls)
        except opendssdirect.DSSException:
            continue
        if int(dss.ActiveClass.Count()) > 0:
            out.append(cls)
    return out


def isolated_elements(dss: Any = None) -> dict[str, list[str]]:
    """Branches and loads that no path connects to the source. Isolated branches alone are normal on
    a real feeder (the far side of a normally-open tie or switch); isolated loads are not."""
    dss = dss or engine()
    branches = [b for b in dss.Topology.AllIsolatedBranches() if b]
    loads = [ld for ld in dss.Topology.AllIsolatedLoads() if ld]
    return {"branches": sorted(branches), "loads": sorted(loads)}


#: the engine's number of daily mode (``Solution.Mode()``; DSS C-API SolveModes.Daily)
_DAILY_MODE = 1


def solve_interval(k: int, *, dss: Any = None, warnings: list[tuple[int, str]] | None = None) -> bool:
    """Solve interval ``k`` of the day alone (daily mode, ending at hour (k+1)/4); ``warnings`` as in
    :func:`solve_daily`."""
    dss = dss or engine()
    try:
        # setting the mode again re-initialises the solution (about as long as the solve itself on a large
        # feeder): only when the engine is not in one-step daily mode already
        if (dss.Solution.Mode(), dss.Solution.Number(), dss.Solution.StepSize()) != (_DAILY_MODE, 1, 900.0):
            dss.Text.Command(f"Set mode=daily stepsize={STEP_SIZE} number=1")
        seconds = k * 900.0
        dss.Solution.Hour(int(seconds // 3600))
        dss.Solution.Seconds(seconds % 3600)
        _solve_step(dss, k, warnings)
    except opendssdirect.DSSException as exc:
        raise DSSError(dss.Circuit.Name(), _message(exc), step=k) from None
    return bool(dss.Solution.Converged())


# ------------------------------------------------------------------------------------------- reads
@dataclass
class PDLayout:
    """Where each power-delivery element's terminals sit in the whole-array reads."""

    names: list[str]
    n_terminals: np.ndarray
    n_conductors: np.ndarray
    start: np.ndarray  # offset of each element's first conductor in AllPowers/AllCurrents
    is_line: np.ndarray
    is_transformer: np.ndarray


def pd_layout(dss: Any = None) -> PDLayout:
    """Layout of ``PDElements.AllPowers()`` (terminal by terminal, conductor by conductor)."""
    dss = dss or engine()
    names = list(dss.PDElements.AllNames())
    n_term = np.asarray(dss.PDElements.AllNumTerminals(), dtype=int)
    n_cond = np.asarray(dss.PDElements.AllNumConductors(), dtype=int)
    sizes = n_term * n_cond
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    lower = [n.lower() for n in names]
    return PDLayout(names=names, n_terminals=n_term, n_conductors=n_cond, start=start,
                    is_line=np.array([n.startswith("line.") for n in lower], dtype=bool),
                    is_transformer=np.array([n.startswith("transformer.") for n in lower], dtype=bool))


class ElementBatch:
    """The total terminal power of many circuit elements in one engine call (DSS C-API's
    ``Alt_CEBatch_Get_TotalPowers`` on the elements' pointers): a day that reads each of a thousand
    rooftop arrays and batteries at every step through ``SetActiveElement`` + ``CktElement.Powers``
    spends more time in those calls than in the solution. The pointers stay valid while the circuit
    is not cleared or recompiled (make a new batch after a compile)."""

    def __init__(self, elements: list[str], dss: Any = None):
        dss = dss or engine()
        self.api = dss.CktElement._api_util
        self.n = len(elements)
        self.pointers = self.api.ffi.new("void*[]", max(1, self.n))
        for i, element in enumerate(elements):
            dss.Circuit.SetActiveElement(element)
            if dss.CktElement.Name().lower() != element.lower():
                raise DSSError(dss.Circuit.Name(), f"{element} is not in the circuit")
            self.pointers[i] = self.api.lib.CktElement_Get_Pointer()

    def powers(self) -> np.ndarray:
        """(elements,) complex total power [kVA] into each element's terminals, in the order given."""
        if not self.n:
            return np.zeros(0, dtype=complex)
        ffi, lib = self.api.ffi, self.api.lib
        result, dims = ffi.new("double**"), ffi.new("int32_t[4]")
        lib.Alt_CEBatch_Get_TotalPowers(result, dims, self.pointers, self.n)
        try:
            values = np.frombuffer(ffi.buffer(result[0], dims[0] * 8), dtype=np.float64).copy()
        finally:
            lib.DSS_Dispose_PDouble(result)
        if len(values) != 2 * self.n:  # one terminal each (PV systems, batteries, loads) is what this is for
            raise ValueError(f"ElementBatch: {len(values) // 2} powers for {self.n} elements (multi-terminal element?)")
        return values[0::2] + 1j * values[1::2]

    def property_values(self, index: int) -> np.ndarray:
        """(elements,) the elements' numeric property of 1-based ``index`` (one class: the index is the class's,
        e.g. a Storage's ``%stored``, the live state of charge), in one engine call (``Batch_GetFloat64``)."""
        if not self.n:
            return np.zeros(0)
        ffi, lib = self.api.ffi, self.api.lib
        result, dims = ffi.new("double**"), ffi.new("int32_t[4]")
        lib.Batch_GetFloat64(result, dims, self.pointers, self.n, int(index))
        try:
            values = np.frombuffer(ffi.buffer(result[0], dims[0] * 8), dtype=np.float64).copy()
        finally:
            lib.DSS_Dispose_PDouble(result)
        if len(values) != self.n:
            raise ValueError(f"ElementBatch: {len(values)} values of property {index} for {self.n} elements")
        return values


def property_index(dss: Any, element: str, name: str) -> int:
    """The 1-based index of property ``name`` of ``element``'s class (for :meth:`ElementBatch.property_values`)."""
    dss.Circuit.SetActiveElement(element)
    names = [n.lower() for n in dss.Element.AllPropertyNames()]
    if name.lower() not in names:
        raise DSSError(dss.Circuit.Name(), f"{element} has no property {name}")
    return names.index(name.lower()) + 1


def complex_array(values: np.ndarray) -> np.ndarray:
    """Interleaved (re, im) pairs from the engine as a complex array."""
    values = np.asarray(values, dtype=float)
    return values[0::2] + 1j * values[1::2]


# ------------------------------------------------------------------------------------------- parse
@dataclass
class DssObject:
    """One ``New Class.name ...`` definition: lower-cased class, name as written, properties."""

    cls: str
    name: str
    props: dict[str, str] = field(default_factory=dict)
    positional: list[str] = field(default_factory=list)
    line: int = 0

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.props.get(key.lower(), default)


_OPEN = {"(": ")", "[": "]", "{": "}", '"': '"', "'": "'"}


def _strip_comment(line: str) -> str:
    depth, quote = 0, None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0 and (ch == "!" or line.startswith("//", i)):
            return line[:i]
    return line


def _read_group(text: str, i: int) -> int:
    """Index just past the bracketed or quoted group starting at ``text[i]``."""
    opener = text[i]
    closer = _OPEN[opener]
    if opener in "\"'":
        j = text.find(closer, i + 1)
        return len(text) if j < 0 else j + 1
    depth = 0
    for j in range(i, len(text)):
        if text[j] == opener:
            depth += 1
        elif text[j] == closer:
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


def tokenize(command: str) -> list[tuple[str | None, str]]:
    """Split one DSS command into (key, value) pairs; key is None for positional tokens."""
    tokens: list[tuple[str | None, str]] = []
    i, n = 0, len(command)
    while i < n:
        while i < n and command[i] in " \t,":
            i += 1
        if i >= n:
            break
        if command[i] in _OPEN:
            j = _read_group(command, i)
            tokens.append((None, command[i:j]))
            i = j
            continue
        j = i
        while j < n and command[j] not in " \t=":
            j += 1
        word = command[i:j]
        k = j
        while k < n and command[k] in " \t":
            k += 1
        if k < n and command[k] == "=":
            k += 1
            while k < n and command[k] in " \t":
                k += 1
            if k < n and command[k] in _OPEN:
                end = _read_group(command, k)
            else:
                end = k
                while end < n and command[end] not in " \t":
                    end += 1
            tokens.append((word.lower(), command[k:end]))
            i = end
        else:
            tokens.append((None, word))
            i = j
    return tokens


def _logical_commands(text: str) -> list[tuple[int, str]]:
    """Join ``~`` / ``more`` continuation lines onto their command; drop comments and blanks:
    (first line number, command) of each :func:`command_spans` command."""
    return [(c.first_line, c.text) for c in command_spans(text)]


def parse_dss_text(text: str, classes: tuple[str, ...] | None = None) -> list[DssObject]:
    """Every ``New <Class>.<name>`` object of a DSS text (optionally only some classes)."""
    wanted = {c.lower() for c in classes} if classes else None
    objects = []
    for number, command in _logical_commands(text):
        tokens = tokenize(command)
        if not tokens or tokens[0][0] is not None or tokens[0][1].lower() != "new":
            continue
        rest = tokens[1:]
        if not rest:
            continue
        key, value = rest[0]
        if key == "object":  # New object=Load.name
            full = value
        elif key is None:
            full = value
        else:
            continue
        cls, _, name = full.partition(".")
        if wanted is not None and cls.lower() not in wanted:
            continue
        obj = DssObject(cls=cls.lower(), name=name, line=number)
        for k, v in rest[1:]:
            if k is None:
                obj.positional.append(v)
            else:
                obj.props[k] = v
        objects.append(obj)
    return objects


def read_dss_objects(path: Path, classes: tuple[str, ...] | None = None) -> list[DssObject]:
    return parse_dss_text(Path(path).read_text(encoding="utf-8", errors="replace"), classes)


_FILE_REF = re.compile(r"^\(\s*(?:file|sngfile|dblfile)\s*=\s*(?P<path>[^,)\s]+|\"[^\"]+\"|'[^']+')(?P<rest>.*)\)$",
                       re.IGNORECASE | re.DOTALL)


def file_reference(value: str | None) -> str | None:
    """The path of a ``(file=...)`` property value, as written, or None for inline values."""
    if not value:
        return None
    match = _FILE_REF.match(value.strip())
    if not match:
        return None
    return match.group("path").strip("\"'")


def bus_name(bus: str) -> str:
    """``p1ulv2723.1.2`` -> ``p1ulv2723``."""
    return bus.split(".", 1)[0]


def bus_nodes(bus: str) -> tuple[int, ...]:
    """``p1ulv2723.1.2`` -> (1, 2); a bus with no node list -> ()."""
    parts = bus.split(".")[1:]
    return tuple(int(p) for p in parts if p.isdigit())


# ------------------------------------------------------------------------------------------- intake helpers
@dataclass(frozen=True)
class Command:
    """One logical DSS command: its first and last line in the file (``~`` continuations joined)."""

    first_line: int
    last_line: int
    text: str


def command_spans(text: str) -> list[Command]:
    """The logical commands of a DSS text with the lines each spans; comments (``!``, ``//``,
    ``/* */``) and blank lines dropped, ``~`` / ``more`` continuation lines joined, as
    :func:`parse_dss_text` reads them."""
    commands: list[Command] = []
    in_block_comment = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw
        if in_block_comment:
            if "*/" in line:
                line = line.split("*/", 1)[1]
                in_block_comment = False
            else:
                continue
        if line.lstrip().startswith("/*"):
            if "*/" not in line:
                in_block_comment = True
            continue
        line = _strip_comment(line).strip()
        if not line:
            continue
        word = line.split(None, 1)[0].lower()
        if word in ("~", "more", "m") and commands:
            rest = line.split(None, 1)[1] if " " in line or "\t" in line else ""
            last = commands[-1]
            commands[-1] = Command(last.first_line, number, last.text + " " + rest)
        elif line.startswith("~") and commands:
            last = commands[-1]
            commands[-1] = Command(last.first_line, number, last.text + " " + line[1:])
        else:
            commands.append(Command(number, number, line))
    return commands


def unquote(value: str) -> str:
    """A token without the quotes or brackets around it: ``"a b.dss"``, ``(x.dss)``, ``[x.dss]``."""
    value = value.strip()
    for _ in range(2):
        if len(value) >= 2 and value[0] in _OPEN and value[-1] == _OPEN[value[0]]:
            value = value[1:-1].strip()
    return value


def compile_text(text: str, folder: Path, *, name: str, dss: Any = None) -> Any:
    """Compile DSS commands as if they were a master file in ``folder`` (relative paths resolve from
    it), without changing the process's directory. ``name`` names the feeder in a DSSError."""
    dss = dss or engine()
    try:
        dss.Text.Command("Clear")
        dss.Basic.DataPath(str(folder))
        dss.Text.Commands(text)
    except opendssdirect.DSSException as exc:
        raise DSSError(name, _message(exc)) from None
    if not dss.Circuit.Name():
        raise DSSError(name, "defines no circuit")
    return dss
