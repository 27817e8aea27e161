"""Compile a feeder once per worker and solve many cases on it: the engine state of a case without its compile.

Description
    An instance's ``Master.dss`` (``circuit_instance.render_files``) is the feeder's base files, the shared
    load shapes, the case's ``Loads.dss`` (every customer, on the shape of its heat-pump variant) and its
    device files ``EVs.dss``, ``PV.dss`` and ``Storage.dss``, then the head monitors and the voltage bases.
    Compiling it costs about as much as solving its day. A worker keeps each feeder it compiled
    (:class:`FeederCache`, least recently used first out, ``common.config.FEEDER_CACHE_SIZE`` feeders, each in
    its own OpenDSS context) and turns one case into the engine state by changing only what the case changes:

    * the base: the case's Master.dss with the three device redirects replaced by *candidates*, devices
      created once, disabled, in the order the device files define them (EV loads and their shapes for the
      customers of the EV pool, three-phase PV and storage for the three-phase customers, rooftop PV and home
      batteries for the customers of the rooftop pool, the fleet's dispatch shape), so that the enabled
      elements of any case keep the relative order of its own files. In a batch the candidates are those of
      the devices the cases of the worker's chunk have (``FeederCache.hints``, set by
      ``batch_runner.hint_chunk`` from the cases' hosts; a case with a device outside them compiles the feeder
      again with it), else every device the feeder can hold: a disabled device takes no part in the solution,
      so the results are the same bit for bit on any set of candidates, but OpenDSS still visits it at every
      step (on the 1,965-customer sample feeder, in the full ``make study``'s NC winter LHS design, 513 cases in
      chunks of 16 in case order, a median 2,268 disabled devices per case, against 4,095 with every candidate);
    * a case: each customer load whose variant changed is given its new daily shape (``Edit Load.x daily=``,
      the only property a case's Loads.dss changes: the rest of every line is checked equal to the base's);
      the devices of the previous case that this case lacks are disabled, and every line of the case's device
      files is run as ``Edit`` of its candidate with the same properties in the same order (plus
      ``enabled=yes``), so each device is parsed from the very text a compile would parse (battery state of
      charge included); head monitors are reset.

    The engine's controls start each day in the same state as after a compile: the daily solution is set up
    again (``Set mode=daily`` clears the solution, which restarts from the zero-load snapshot, as after a
    compile), the batteries' charge is the case's ``%stored``, the control queue is emptied and OpenDSS's
    ``Reset Controls`` puts every control's own state back (a fuse closed and not armed; a RegControl with no
    pending tap change, not armed; a CapControl with no pending change, its dead time over and the capacitor in
    its initial state); what those controls moved during the day is then set back to its compiled value
    (:class:`ControlState`: the taps of every winding of each transformer a RegControl drives, the step states
    of every capacitor). A fuse that blew during a day makes the worker drop the feeder after that day
    (``FeederCache.after_day``). Where the compiled state cannot be guaranteed the case is compiled from its
    files instead, and the reason is recorded (``Prepared`` is not made; ``engine_path`` in the batch's
    ``timings.csv`` and the batch log): a feeder with controls whose state ``Reset Controls`` does not put
    back (a reversible or cogeneration RegControl, whose reverse mode outlives a reset; switch controls,
    InvControls, storage controllers ...: :data:`RESETTABLE_CONTROLS` lists the ones that are), a case with an
    element no candidate stands for (the volt-var InvControls and their XYcurve of
    ``ROOFTOP_PV["inverter_control"] = "volt_var"``), a base whose master or customer lines differ from the
    case's, an engine error while applying the case (the cached feeder is then dropped), or a feeder with more
    candidate devices (for the chunk) than ``FEEDER_CACHE_MAX_DEVICES`` (a disabled device still costs the
    engine time at every step: on a large feeder more than the compile saves).

    The instance files on disk are untouched: they stay what plain OpenDSS compiles and solves, and
    ``tests/test_phase6_cache.py`` checks that both paths give the same metrics and series.

Settings read
    common.config: FEEDER_CACHE_SIZE, FEEDER_CACHE_MAX_DEVICES
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import circuit_instance
import daily_power_flow
from common import config, dss
from common.paths import INSTANCE_FILES

logger = logging.getLogger(__name__)

STEPS = config.INTERVALS_PER_DAY
DT_H = config.INTERVAL_H
#: the case's device files, in the order Master.dss redirects to them
DEVICE_FILES = ("EVs.dss", "PV.dss", "Storage.dss")
#: classes whose ``New`` lines a candidate stands for (circuit elements are enabled; shapes only edited)
_ELEMENT_CLASSES = {"load", "pvsystem", "storage"}
_SHAPE_CLASS = "loadshape"
#: stateful controls put back in their compiled state before every case (``CompiledFeeder.restart``): a fuse
#: that did not blow (one that blew during a day makes the worker drop the feeder after that day), a RegControl
#: that is neither reversible nor in cogeneration mode, a CapControl
RESETTABLE_CONTROLS = {"fuse", "regcontrol", "capcontrol"}


class CaseNotApplicable(RuntimeError):
    """A case the cached feeder cannot stand for exactly: compiled from its files instead (the message says why)."""


def _fmt(x: float) -> str:
    return circuit_instance._fmt(x)


def candidate_entries(ctx: circuit_instance.FeederContext) -> list[tuple[str | None, bool, str]]:
    """DSS commands creating every device a case of the feeder can hold, disabled, in the order of the device
    files (EVs, three-phase PV, rooftop PV, three-phase storage, home batteries; customers sorted, as each file
    lists its hosts), with the same properties as the files set: (the circuit element the command belongs to,
    ``class.name`` lower case, or None for the fleet's shared dispatch shape; whether it creates that element
    rather than its load shape; the command)."""
    rec, zeros = ctx.records, f"({' '.join(['0'] * STEPS)})"
    three = sorted(ctx.customers["customer"][ctx.customers["three_phase"].astype(bool)].tolist())
    rooftop = circuit_instance.rooftop_pool(ctx)
    entries: list[tuple[str | None, bool, str]] = []

    def shape(owner: str | None, name: str) -> None:
        entries.append((owner, False, f"New Loadshape.{name} npts={STEPS} interval={DT_H} mult={zeros}"))

    def element(cls: str, name: str, props: str) -> None:
        entries.append((f"{cls}.{name}".lower(), True, f"New {cls}.{name} {props} enabled=no"))

    ev = config.EV
    for host in circuit_instance.ev_pool(ctx):
        bus1, phases, kv = circuit_instance._connection(rec[host], "L2")
        shape(f"load.ev_{host}".lower(), f"ev_{host}")
        element("Load", f"ev_{host}", f"bus1={bus1} phases={phases} conn=wye kV={_fmt(kv)} kW=1 pf=1 model=1 "
                f"vminpu={_fmt(ev['vminpu'])} vlowpu={_fmt(ev['vlowpu'])} vmaxpu={_fmt(ev['vmaxpu'])} daily=ev_{host}")
    for prefix, hosts, level in (("pv", three, None), ("pvres", rooftop, "L2")):
        for host in hosts:
            bus1, phases, kv = circuit_instance._connection(rec[host], level)
            element("PVSystem", f"{prefix}_{host}", f"bus1={bus1} phases={phases} kV={_fmt(kv)} kVA=1 Pmpp=1 "
                    f"irradiance=1 pf=1 %cutin=0.1 %cutout=0.1 daily=pv_{ctx.season}")
    shape(None, "storage_dispatch")
    for prefix, hosts, level in (("sto", three, None), ("bat", rooftop, "L2")):
        for host in hosts:
            bus1, phases, kv = circuit_instance._connection(rec[host], level)
            daily = "storage_dispatch" if prefix == "sto" else f"{prefix}_{host}"
            if prefix == "bat":
                shape(f"storage.{prefix}_{host}".lower(), daily)
            element("Storage", f"{prefix}_{host}", f"bus1={bus1} phases={phases} kV={_fmt(kv)} kWrated=1 kWhrated=1 "
                    "kVA=1 %stored=50 %reserve=20 %EffCharge=95 %EffDischarge=95 %IdlingkW=0 dispmode=follow "
                    f"daily={daily}")
    return entries


def candidate_text(ctx: circuit_instance.FeederContext, only: set[str] | None = None,
                   entries: list[tuple[str | None, bool, str]] | None = None) -> tuple[str, set[str]]:
    """The commands of :func:`candidate_entries` (given, or made from ``ctx``) as one text, and the names of the
    circuit elements they create (``class.name``, lower case); with ``only``, just the candidates of those
    elements (and the fleet's dispatch shape), in the same order: a case solved on any set of candidates that
    holds its own devices gives the same results, bit for bit (the enabled elements keep their order, and a
    disabled one takes no part in the solution)."""
    entries = candidate_entries(ctx) if entries is None else entries
    kept = [(owner, is_element, line) for owner, is_element, line in entries
            if owner is None or only is None or owner in only]
    return "\n".join(line for _, _, line in kept) + "\n", {owner for owner, is_element, _ in kept if is_element}


def case_elements(files: dict[str, str]) -> set[str]:
    """The circuit elements (``class.name``, lower case) the ``New`` lines of a case's device files define, of
    the classes a candidate stands for (loads, PV systems, batteries)."""
    out = set()
    for name in DEVICE_FILES:
        for line in files.get(name, "").splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 2 and parts[0].lower() == "new" and parts[1].split(".", 1)[0].lower() in _ELEMENT_CLASSES:
                out.add(parts[1].lower())
    return out


def _master_key(master_text: str) -> tuple[str, ...]:
    """The lines of a Master.dss that every case of a feeder shares (comments, which name the case, and the
    device redirects left out)."""
    devices = {f"redirect {name}".lower() for name in DEVICE_FILES}
    return tuple(line for line in master_text.splitlines()
                 if line.strip() and not line.lstrip().startswith("!") and line.strip().lower() not in devices)


def _load_lines(text: str) -> dict[str, tuple[str, str]]:
    """``Loads.dss`` as load -> (its line without the daily shape, the daily shape)."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("!"):
            continue
        rest, sep, daily = line.rpartition(" daily=")
        if not sep:
            raise CaseNotApplicable(f"Loads.dss line without a daily shape: {line[:60]}")
        out[rest.split(None, 2)[1].lower()] = (rest, daily.strip())
    return out


@dataclass(frozen=True)
class ControlState:
    """What the resettable controls move during a day, as the compile left it: the tap of every winding of each
    transformer a RegControl drives, (transformer, winding, tap [pu]), and the step states of every capacitor,
    (capacitor, states)."""

    taps: tuple[tuple[str, int, float], ...] = ()
    capacitors: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @classmethod
    def read(cls, engine: Any) -> "ControlState":
        regulated = set()
        controls = engine.RegControls
        if controls.First():
            while True:
                regulated.add(controls.Transformer().lower())
                if not controls.Next():
                    break
        taps = []
        transformers = engine.Transformers
        names = {n.lower() for n in transformers.AllNames()}
        for name in sorted(regulated):
            if name not in names:  # an AutoTrans: no Transformers interface to read and set its taps
                raise CaseNotApplicable(f"the element a RegControl drives, {name}, is not a Transformer whose taps "
                                        "the cache can put back")
            transformers.Name(name)
            for winding in range(1, transformers.NumWindings() + 1):
                transformers.Wdg(winding)
                taps.append((name, winding, float(transformers.Tap())))
        capacitors = []
        caps = engine.Capacitors
        if caps.First():
            while True:
                capacitors.append((caps.Name().lower(), tuple(int(x) for x in caps.States())))
                if not caps.Next():
                    break
        return cls(taps=tuple(taps), capacitors=tuple(sorted(capacitors)))

    def restore(self, engine: Any) -> None:
        """Set every tap and capacitor state back to this state (only those that moved: setting one makes the
        engine build its admittance matrix again)."""
        transformers = engine.Transformers
        for name, winding, tap in self.taps:
            transformers.Name(name)
            transformers.Wdg(winding)
            if float(transformers.Tap()) != tap:
                transformers.Tap(tap)
        caps = engine.Capacitors
        for name, states in self.capacitors:
            caps.Name(name)
            if tuple(int(x) for x in caps.States()) != states:
                caps.States(list(states))


def unresettable_regulators(engine: Any) -> list[str]:
    """The RegControls whose state ``Reset Controls`` does not put back: reversible ones and those in
    cogeneration mode (the reverse or cogeneration mode a day switched to outlives the reset), sorted."""
    import opendssdirect

    names = []
    controls = engine.RegControls
    if controls.First():
        while True:
            name = controls.Name()
            try:
                engine.Text.Command(f"? RegControl.{name}.cogen")
                cogen = engine.Text.Result().strip().lower().startswith(("y", "t"))
            except opendssdirect.DSSException:  # an engine without the property has no cogeneration mode
                cogen = False
            if controls.IsReversible() or cogen:
                names.append(f"RegControl.{name}")
            if not controls.Next():
                break
    return sorted(names)


@dataclass
class CompiledFeeder:
    """One feeder compiled in its own OpenDSS context, with the devices of the last case applied."""

    key: tuple
    engine: Any
    master_key: tuple[str, ...]
    loads: dict[str, tuple[str, str]]          # load -> (line without daily, daily shape now set)
    elements: set[str]                         # candidate circuit elements
    circuit: Any                               # daily_power_flow._Circuit of the compiled feeder
    stateful: list[str]                        # stateful controls not reset exactly: every case compiled
    controls: ControlState = field(default_factory=ControlState)  # what the controls move, as compiled
    resets: bool = False                       # the feeder has controls that Reset Controls puts back
    enabled: set[str] = field(default_factory=set)  # candidates the last case enabled
    equipment: Any = None                      # upgrade_circuit.read_equipment of it, read when first asked

    def restart(self) -> None:
        """Put the controls in their compiled state: the control queue emptied, every control's own state reset
        (``Reset Controls``: fuses closed and not armed, regulators and capacitor controls with nothing pending),
        the regulated taps and capacitor states set back to the compile's, the head monitors emptied. The
        solution itself restarts when the day sets its mode. The actions still queued at the end of the last
        day are done first, not dropped: a control whose action is pending stays armed (``Reset Controls`` does not
        disarm a CapControl) and would not act again the next day; what those actions change is then set back."""
        self.engine.CtrlQueue.DoAllQueue()
        self.engine.CtrlQueue.ClearQueue()
        if self.resets:
            self.engine.Text.Command("Reset Controls")
        self.controls.restore(self.engine)
        self.engine.Monitors.ResetAll()

    def controls_as_compiled(self) -> bool:
        """Whether every fuse is in its normal state (none blew during the day)."""
        fuses = self.engine.Fuses
        if fuses.First():
            while True:
                if list(fuses.State()) != list(fuses.NormalState()):
                    return False
                if not fuses.Next():
                    break
        return True

    def close(self) -> None:
        try:
            self.engine.Text.Command("Clear")
        except Exception:  # noqa: BLE001 - a context being dropped: nothing depends on it any more
            logger.debug("clearing a cached feeder failed", exc_info=True)


@dataclass
class Prepared:
    """A case applied to a cached feeder: what ``daily_power_flow.simulate`` needs instead of a compile."""

    engine: Any
    circuit: Any
    restart: Any  # callable: the controls back in their compiled state (a day re-solved without storage)


def compile_feeder(key: tuple, ctx: circuit_instance.FeederContext, files: dict[str, str],
                   instance_dir: Path, candidates: tuple[str, set[str]] | None = None) -> CompiledFeeder:
    """Compile the feeder's base with ``candidates`` (:func:`candidate_text`: the chunk's, from
    :meth:`FeederCache.prepare`), by default every candidate device, in a new OpenDSS context, from the master of
    one case (its ``Loads.dss`` inlined, its device redirects replaced by the candidates). Raises DSSError when the
    engine refuses it."""
    import opendssdirect

    master = files[INSTANCE_FILES["master"]]
    candidates, elements = candidates if candidates is not None else candidate_text(ctx)
    lines, inserted = [], False
    for line in master.splitlines():
        word = line.strip().lower()
        if word == "redirect loads.dss":
            lines.append(files["Loads.dss"])
            continue
        if word in {f"redirect {name}".lower() for name in DEVICE_FILES}:
            continue
        if not inserted and word.startswith("new monitor."):
            lines.append(candidates)
            inserted = True
        lines.append(line)
    if not inserted:
        raise CaseNotApplicable("Master.dss has no head monitor to place the candidate devices before")
    engine = opendssdirect.NewContext()
    engine.Basic.AllowChangeDir(False)
    try:
        return _compiled(key, engine, ctx, files, master, lines, elements, instance_dir)
    except BaseException:
        try:  # a feeder that cannot be cached holds no memory
            engine.Text.Command("Clear")
        except opendssdirect.DSSException:
            logger.debug("clearing a context that failed to compile", exc_info=True)
        raise


def _compiled(key: tuple, engine: Any, ctx: circuit_instance.FeederContext, files: dict[str, str], master: str,
              lines: list[str], elements: set[str], instance_dir: Path) -> CompiledFeeder:
    dss.compile_text("\n".join(lines) + "\n", Path(instance_dir), name=ctx.feeder, dss=engine)
    assignments_stub = {"service_nodes": [], "hosts": {"ev": [], "pv": [], "storage": []},
                        "head_element": ctx.base.head_element, "head_sign": ctx.base.head_sign}
    circuit = daily_power_flow._Circuit(engine, assignments_stub)
    loads = _load_lines(files["Loads.dss"]) if "Loads.dss" in files else {}
    classes = dss.stateful_control_classes(engine)
    stateful = [c for c in classes if c not in RESETTABLE_CONTROLS]
    reversible = unresettable_regulators(engine) if "regcontrol" in classes else []
    if reversible:
        stateful.append(f"reversible or cogeneration regulators: {', '.join(reversible[:3])}"
                        f"{' ...' if len(reversible) > 3 else ''}")
    return CompiledFeeder(key=key, engine=engine, master_key=_master_key(master), loads=loads, elements=elements,
                          circuit=circuit, stateful=stateful, controls=ControlState.read(engine),
                          resets=bool(set(classes) & RESETTABLE_CONTROLS))


def apply_case(feeder: CompiledFeeder, files: dict[str, str]) -> Prepared:
    """Turn the cached feeder into the engine state of the case whose instance ``files`` are given (see the
    module docstring). CaseNotApplicable when the case cannot be stood for exactly; DSSError when the engine
    refuses a command (the feeder's state is then unknown: drop it)."""
    if feeder.stateful:
        raise CaseNotApplicable(f"the feeder has stateful controls ({', '.join(feeder.stateful)}) whose state a "
                                "cached circuit cannot put back exactly")
    if _master_key(files[INSTANCE_FILES["master"]]) != feeder.master_key:
        raise CaseNotApplicable("the case's Master.dss differs from the cached feeder's beyond its device files")
    commands = []
    if feeder.loads or "Loads.dss" in files:
        loads = _load_lines(files.get("Loads.dss", ""))
        if loads.keys() != feeder.loads.keys():
            raise CaseNotApplicable("the case's Loads.dss names other loads than the cached feeder's")
        for name, (rest, daily) in loads.items():
            base_rest, current = feeder.loads[name]
            if rest != base_rest:
                raise CaseNotApplicable(f"the case's {name} differs from the cached feeder's beyond its daily shape")
            if daily != current:
                commands.append(f"Edit {name} daily={daily}")
    edits, wanted = [], set()
    for name in DEVICE_FILES:
        for line in files.get(name, "").splitlines():
            if not line.strip() or line.lstrip().startswith("!"):
                continue
            parts = line.split(None, 2)
            if len(parts) < 3 or parts[0].lower() != "new":
                raise CaseNotApplicable(f"{name}: a line the cache does not apply: {line[:60]}")
            cls = parts[1].split(".", 1)[0].lower()
            target = parts[1].lower()
            if cls in _ELEMENT_CLASSES:
                if target not in feeder.elements:
                    raise CaseNotApplicable(f"{name}: {parts[1]} has no candidate in the cached feeder")
                wanted.add(target)
                edits.append(f"Edit {parts[1]} {parts[2]} enabled=yes")
            elif cls == _SHAPE_CLASS:
                edits.append(f"Edit {parts[1]} {parts[2]}")
            else:
                raise CaseNotApplicable(f"{name}: {parts[1].split('.', 1)[0]} elements have no candidate "
                                        "(e.g. volt-var InvControls)")
    commands += [f"Edit {element} enabled=no" for element in sorted(feeder.enabled - wanted)]
    commands += edits
    # the state of the cache changes from here: a failure leaves it unknown (the caller drops the feeder)
    feeder.enabled = set()
    dss.run_commands("\n".join(commands), dss=feeder.engine)
    feeder.enabled = wanted
    for name, (rest, daily) in (_load_lines(files["Loads.dss"]).items() if "Loads.dss" in files else ()):
        feeder.loads[name] = (rest, daily)
    feeder.restart()
    return Prepared(engine=feeder.engine, circuit=feeder.circuit, restart=feeder.restart)


class FeederCache:
    """Compiled feeders of one worker process, at most ``size``, the least recently used dropped first."""

    def __init__(self, size: int = config.FEEDER_CACHE_SIZE):
        if size < 1:
            raise ValueError(f"common.config.FEEDER_CACHE_SIZE = {size}: keep at least one feeder")
        self.size = size
        self.feeders: OrderedDict[tuple, CompiledFeeder] = OrderedDict()
        self.compiles = 0
        #: feeders this worker does not cache (too many candidate devices, FEEDER_CACHE_MAX_DEVICES, or a base
        #: that cannot be cached): key -> why, so that their cases are compiled without trying again
        self.uncached: dict[tuple, str] = {}
        #: the devices the cases of the chunk this worker runs have, per feeder (the first four items of its key:
        #: data dir, state, season, feeder), set by ``batch_runner.hint_chunk``: a feeder is compiled with
        #: candidates for those alone
        self.hints: dict[tuple, set[str]] = {}
        self._entries: tuple[tuple, list] | None = None  # the last feeder's candidate_entries

    def __len__(self) -> int:
        return len(self.feeders)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled empty (a cache shipped to a Dask worker starts its own; OpenDSS contexts do not travel)."""
        return {"size": self.size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["size"])

    def drop(self, key: tuple) -> None:
        feeder = self.feeders.pop(key, None)
        if feeder is not None:
            feeder.close()

    def clear(self) -> None:
        for key in list(self.feeders):
            self.drop(key)

    def prepare(self, key: tuple, ctx: circuit_instance.FeederContext, files: dict[str, str],
                instance_dir: Path) -> tuple[Prepared | None, str]:
        """The case of instance ``files`` applied to the feeder ``key`` (compiled first when it is not
        cached, or when the cached one has no candidate for a device of the case), and how: (Prepared,
        "cached") or (None, "compiled: <reason>") for a case to be compiled from its files.

        A feeder is compiled with candidates for the devices of :attr:`hints` (the chunk's cases) and of this
        case when a hint is set, else with every candidate the feeder can hold: fewer disabled devices, the same
        results (:func:`candidate_text`)."""
        if key in self.uncached:
            return None, self.uncached[key]
        feeder = self.feeders.get(key)
        wanted = case_elements(files)
        if feeder is not None and not wanted <= feeder.elements:
            entries = self._candidate_entries(key, ctx)
            if (wanted - feeder.elements) <= {owner for owner, is_element, _ in entries if is_element}:
                self.drop(key)  # compiled again below with candidates for this case's devices too
                feeder = None
        if feeder is None:
            entries = self._candidate_entries(key, ctx)
            hint = self.hints.get(key[:4] if isinstance(key, tuple) else key)
            candidates = candidate_text(ctx, None if hint is None else hint | wanted, entries)
            n_devices = len(candidates[1])
            if n_devices > config.FEEDER_CACHE_MAX_DEVICES:
                reason = (f"compiled: the feeder has {n_devices} candidate devices"
                          f"{' for its chunk' if hint is not None else ''}, "
                          f"more than FEEDER_CACHE_MAX_DEVICES = {config.FEEDER_CACHE_MAX_DEVICES} (a cached circuit's "
                          "disabled devices would cost more than the compile saves)")
                if hint is None:
                    self.uncached[key] = reason
                return None, reason
            while len(self.feeders) >= self.size:
                self.drop(next(iter(self.feeders)))
            try:
                feeder = compile_feeder(key, ctx, files, instance_dir, candidates)
            except CaseNotApplicable as exc:
                self.uncached[key] = f"compiled: the feeder's base cannot be cached ({exc})"
                return None, self.uncached[key]
            except dss.DSSError as exc:
                return None, f"compiled: the feeder's base cannot be cached ({exc})"
            self.compiles += 1
            self.feeders[key] = feeder
        self.feeders.move_to_end(key)
        try:
            return apply_case(feeder, files), "cached"
        except CaseNotApplicable as exc:
            return None, f"compiled: {exc}"
        except dss.DSSError as exc:
            self.drop(key)
            return None, f"compiled: applying the case to the cached feeder failed ({exc})"

    def equipment(self, key: tuple, read: Any) -> Any:
        """What ``read`` (``upgrade_circuit.read_equipment``) returns for the cached feeder ``key``, read once per
        compile and shared by its cases: its lines, transformers and line codes are every case's (a candidate is a
        load, PV system or battery, and a case changes only those). None when ``key`` is not cached (never
        compiled here, or dropped after its day: its upgrade step then compiles the instance)."""
        feeder = self.feeders.get(key)
        if feeder is None:
            return None
        if feeder.equipment is None:
            feeder.equipment = read(feeder.engine)
        return feeder.equipment

    def _candidate_entries(self, key: tuple, ctx: circuit_instance.FeederContext) -> list:
        if self._entries is None or self._entries[0] != key:
            self._entries = (key, candidate_entries(ctx))
        return self._entries[1]

    def after_day(self, key: tuple) -> None:
        """After a day solved on the cached feeder ``key``: drop it when a control did not end the day in its
        compiled state (a fuse blew), so that the next case compiles it again."""
        feeder = self.feeders.get(key)
        if feeder is not None and not feeder.controls_as_compiled():
            logger.info("a fuse of %s operated: the cached feeder is compiled again for its next case", key[3])
            self.drop(key)


def cache_key(task: dict[str, Any], ctx: circuit_instance.FeederContext) -> tuple:
    """What a compiled feeder depends on beyond the case: the workspace, state, season, feeder and its shared
    inputs (digest of the base files, shapes and profiles) and, in a run of several design days, the day."""
    return (task["data_dir"], task["state"], task["season"], task["feeder"], ctx.shared_digest,
            task.get("feeder_dir") or "", int(task.get("day_rank", 1)))

