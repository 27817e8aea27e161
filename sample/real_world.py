"""Sample feeders with the features real utility feeders have and the clean sample feeders lack.

Two groups, both synthetic, built by code from seeded generators (nothing copied from elsewhere):

* **Generic OpenDSS feeders** for the ``--feeder-dir`` route, written as hand-made or
  utility-exported models are (``<sample>/feeders/``):

  - ``tie_regulator/``: ``circuit/Master_tie.dss`` (the study case) redirects line codes from a
    parent folder (``Redirect ../linecodes/LineCodes.dss``) and loads from a subfolder
    (``Redirect loads/Loads.dss``); a voltage regulator (three single-phase ``Transformer`` +
    ``RegControl``), a switched capacitor (``Capacitor`` + ``CapControl``), a normally-open tie
    switch between the ends of its two mains (``New Line.tie_ab ... switch=y`` and
    ``Open Line.tie_ab term=1``); loads on ``yearly=`` shapes of 8,760 hourly values in
    ``../shapes/``, small shops on a 24-value ``daily=`` shape only, and loads with no shape at
    all. The same folder holds ``circuit/Master.dss``, a different circuit (the tie closed, its
    own circuit name), so that a tool studying the folder's ``Master.dss`` instead of the named
    master is caught.
  - ``utility_a/OpenDSS/Master.dss`` and ``utility_b/OpenDSS/Master.dss``: two different feeders
    whose masters sit in folders with the same name, as every SMART-DS model does. ``utility_a``
    reads its shapes with ``csvfile=../profiles/...``; ``utility_b`` has no shapes and a
    normally-open tie written as a disabled switch (``switch=y enabled=no``).
  - ``legacy_syntax/Master.dss``: the older syntax of EPRI's IEEE 34/123 files:
    ``New object=circuit.legacy_1``, ``~`` continuation lines, ``Redirect LineCodes.DSS``, an
    inline 24-value ``daily`` shape assigned with ``Load.<name>.daily=...`` lines.

* **A SMART-DS feeder with those features** (``build_smartds_features``): subregion ``P2U`` of the
  TX city (AUS), a subregion the default runs do not study (``common.config.SMARTDS`` lists
  ``P1U``), so every existing feeder and count stays as it was. The same feeder is written in
  ``base_timeseries`` and in ``solar_medium_batteries_none_timeseries``, as SMART-DS ships
  every feeder in every scenario: a normally-open tie (``switch=y enabled=n``), a regulator
  bank (``Regulators.dss``), a switched capacitor (``Capacitors.dss``), ``_1``/``_2`` half loads
  on ``yearly=`` shapes of the subregion's ``profiles/`` (with ``load_data/``); the solar
  scenario adds ``PVSystems.dss`` and ``PVShapes.dss`` whose shapes point three folders up,
  ``../../../pv-profiles/<name>.csv``, i.e. into ``scenarios/<scenario>/pv-profiles/``.
  A config row selects it: ``SMARTDS["TX"] = {..., "subregions": ("P2U",), "scenario": ...}``.

Element names are fixed per feeder (listed in ``FEATURES`` of the manifest entry each builder
returns) so that tests can look them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sample import buildings as B
from sample import datasets as D
from sample import feeders as F
from sample.weather import build_weather

#: spawn keys of this module's generators (the rest of the sample uses (state, purpose) and (99, n))
GENERIC_KEY = 200
SMARTDS_KEY = 201

HOURS_PER_YEAR = 8760

#: generic line codes: name -> the SMART-DS conductor whose impedances and ampacity it uses
GENERIC_CODES = {
    "336_ACSR_3ph": "3P_OH_AL_ACSR_477_Hawk_12_47_0_3_3_3_3_3",
    "4/0_ACSR_3ph": "3P_OH_AL_ACSR_4/0_Penguin_12_47_0_3_3_3_3_3",
    "1/0_ACSR_1ph": "1P_OH_AL_ACSR_1/0_Raven_12_47_0_1_1_1_1_1",
    "2_ACSR_1ph": "1P_OH_AL_ACSR_#2_Sparrow_12_47_0_1_1_1_1_1",
    "triplex_4/0": "1P_OH_AL_4/0_Zuzara_0_416_0_2_2_2_2_2",
    "triplex_1/0": "1P_OH_AL_1/0_Gammarus_0_416_0_2_2_2_2_2",
    "350_UG_3ph": "3P_UG_AL_350kcmil_15_0_416_0_3_3_3_3_3",
}
#: conductor role in the network -> (generic code, SMART-DS code)
ROLE_CODES = {
    "trunk": ("336_ACSR_3ph", "3P_OH_AL_ACSR_477_Hawk_12_47_0_3_3_3_3_3"),
    "main": ("4/0_ACSR_3ph", "3P_OH_AL_ACSR_4/0_Penguin_12_47_0_3_3_3_3_3"),
    "lateral": ("1/0_ACSR_1ph", "1P_OH_AL_ACSR_1/0_Raven_12_47_0_1_1_1_1_1"),
    "lateral_end": ("2_ACSR_1ph", "1P_OH_AL_ACSR_#2_Sparrow_12_47_0_1_1_1_1_1"),
    "drop": ("triplex_1/0", "1P_OH_AL_1/0_Gammarus_0_416_0_2_2_2_2_2"),
    "drop_big": ("triplex_4/0", "1P_OH_AL_4/0_Zuzara_0_416_0_2_2_2_2_2"),
    "com_service": ("350_UG_3ph", "3P_UG_AL_350kcmil_15_0_416_0_3_3_3_3_3"),
}
GENERIC_VOLTAGE_BASES = "[12.47, 0.48, 0.208]"  # 0.208 kV LL: 120 V LN base for the centre-tap legs
REGULATOR_KVA = 2000.0
CAPACITOR_KVAR = 150.0
#: kvar control of the switched capacitors on the feeder-head flow [kVAr]: on above ON, off below OFF
#: (ON - OFF > the capacitor's kvar, so that switching cannot make it hunt)
CAPACITOR_ON_KVAR, CAPACITOR_OFF_KVAR = 100.0, -75.0


# ------------------------------------------------------------------------------------------- network
@dataclass
class Meter:
    """One customer: a split-phase service (``res``/``com1``) or a three-phase one (``com3``)."""

    kind: str
    kw: float                  # annual peak [kW]
    kvar: float                # [kVAr] at the peak
    yearly: str | None = None  # load-shape names
    daily: str | None = None


@dataclass
class Section:
    bus1: str
    bus2: str
    nodes: tuple[int, ...]     # the same nodes on both ends
    role: str                  # key of ROLE_CODES, or "head" / "tie"
    length_m: float
    normally_open: bool = False


@dataclass
class Service:
    """A service transformer: single-phase centre-tap (``phase`` 1-3) or three-phase (``phase`` 0)."""

    hv_bus: str
    phase: int
    kva: float
    lv_kv: float


@dataclass
class Network:
    source: str
    head: str
    sections: list[Section] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    meters: list[tuple[Meter, str, str]] = field(default_factory=list)  # meter, customer bus, service hv bus
    regulator: tuple[str, str] = ("", "")   # (bus in, bus out)
    capacitor_bus: str = ""
    capacitor_line: int = 0                  # index in sections of the line its CapControl monitors
    tie: int = 0                             # index in sections of the tie
    coords: dict[str, tuple[float, float]] = field(default_factory=dict)


class Namer:
    """Bus names: readable counters (generic) or SMART-DS numbers (``prefix`` + dm/dt/lv + number)."""

    def __init__(self, smartds: F._Names | None = None, prefix: str = ""):
        self.smartds = smartds
        self.prefix = prefix
        self.count = {"dm": 0, "dt": 0, "lv": 0}

    def bus(self, kind: str) -> str:
        if self.smartds is not None:
            return f"{self.prefix}{kind}{self.smartds.next()}"
        self.count[kind] += 1
        return {"dm": "m", "dt": "x", "lv": "c"}[kind] + str(self.count[kind])

    def secondary(self, hv_bus: str) -> str:
        return f"{hv_bus}lv" if self.smartds is not None else f"{hv_bus}_s"


def grow_network(meters: list[Meter], rng: np.random.Generator, namer: Namer, *, source: str, head: str,
                 span_m: float = 350.0, lateral_span_m: float = 70.0, per_service: tuple[int, int] = (3, 6)
                 ) -> Network:
    """A radial 12.47 kV feeder: trunk, regulator, two three-phase mains tied at their ends (normally
    open), a capacitor on main A, single-phase laterals with centre-tap services, three-phase
    commercial services off the mains. Every customer has its own service drop."""
    net = Network(source=source, head=head)
    xy = net.coords
    x0, y0 = 500000.0 + rng.uniform(0, 20000), 3300000.0 + rng.uniform(0, 20000)
    xy[source], xy[head] = (x0 - 30.0, y0), (x0, y0)
    three = (1, 2, 3)

    def primary(prev: str, dx: float, dy: float, role: str) -> str:
        bus = namer.bus("dm")
        xy[bus] = (xy[prev][0] + dx, xy[prev][1] + dy)
        net.sections.append(Section(prev, bus, three, role, float(np.hypot(dx, dy))))
        return bus

    net.sections.append(Section(source, head, three, "head", 30.0))
    t1 = primary(head, span_m, rng.normal(0, 10), "trunk")
    t2 = primary(t1, span_m, rng.normal(0, 10), "trunk")
    t2r = f"{t2}r"
    xy[t2r] = (xy[t2][0] + 2.0, xy[t2][1])
    net.regulator = (t2, t2r)
    split = primary(t2r, span_m, rng.normal(0, 10), "trunk")
    mains: dict[str, list[str]] = {}
    for side, sign in (("a", 1.0), ("b", -1.0)):
        buses = [split]
        for _ in range(3):
            buses.append(primary(buses[-1], span_m * 0.8, sign * span_m * 0.6, "main"))
        mains[side] = buses[1:]
    net.capacitor_bus = mains["a"][1]
    net.capacitor_line = 0  # the feeder head: the control follows the whole feeder's kvar
    a_end, b_end = mains["a"][-1], mains["b"][-1]
    net.tie = len(net.sections)
    net.sections.append(Section(a_end, b_end, three, "main",
                                float(np.hypot(*np.subtract(xy[a_end], xy[b_end]))), normally_open=True))

    # centre-tap services in groups along single-phase laterals, phases rotated for balance
    split_phase = [m for m in meters if m.kind in ("res", "com1")]
    order = rng.permutation(len(split_phase))
    groups: list[list[Meter]] = []
    i = 0
    while i < len(order):
        size = int(rng.integers(per_service[0], per_service[1] + 1))
        groups.append([split_phase[j] for j in order[i:i + size]])
        i += size
    taps = [t1, *mains["a"], *mains["b"]]
    per_lateral = 2
    for lat, start in enumerate(range(0, len(groups), per_lateral)):
        tap = taps[lat % len(taps)]
        phase = 1 + lat % 3
        side = 1.0 if lat % 2 == 0 else -1.0
        prev = tap
        for pos, group in enumerate(groups[start:start + per_lateral]):
            dt = namer.bus("dt")
            xy[dt] = (xy[tap][0] + rng.normal(0, 10), xy[tap][1] + side * lateral_span_m * (pos + 1))
            length = lateral_span_m * (1 + rng.uniform(-0.2, 0.2))
            net.sections.append(Section(prev, dt, (phase,), "lateral" if pos == 0 else "lateral_end", length))
            prev = dt
            need = sum(m.kw for m in group)
            net.services.append(Service(dt, phase, F._standard(need, F.STANDARD_1PH_KVA), F.SECONDARY_LN_KV))
            lv = namer.secondary(dt)
            xy[lv] = (xy[dt][0] + 4.0, xy[dt][1] + 4.0)
            for m in group:
                cb = namer.bus("lv")
                xy[cb] = (xy[lv][0] + rng.uniform(-40, 40), xy[lv][1] + rng.uniform(-40, 40))
                role = "drop_big" if m.kind == "com1" or m.kw > 12 else "drop"
                net.sections.append(Section(lv, cb, (1, 2), role, float(rng.uniform(15, 50))))
                net.meters.append((m, cb, dt))

    # three-phase commercial services off the mains
    for j, m in enumerate(m for m in meters if m.kind == "com3"):
        tap = (mains["b"] + mains["a"])[(2 * j + 1) % 6]
        dt = namer.bus("dt")
        xy[dt] = (xy[tap][0] + 20.0, xy[tap][1] + 25.0)
        net.sections.append(Section(tap, dt, three, "main", 40.0))
        lv_kv = 0.48 if m.kw > 60 else 0.208
        net.services.append(Service(dt, 0, F._standard(m.kw * 1.25, F.STANDARD_3PH_KVA), lv_kv))
        lv = namer.secondary(dt)
        cb = namer.bus("lv")
        xy[lv] = (xy[dt][0] + 4.0, xy[dt][1] + 4.0)
        xy[cb] = (xy[lv][0] + 10.0, xy[lv][1] + 10.0)
        net.sections.append(Section(lv, cb, three, "com_service", 15.0))
        net.meters.append((m, cb, dt))
    return net


# ------------------------------------------------------------------------------------------- shapes
def _per_unit(x: np.ndarray) -> np.ndarray:
    return x / x.max()


def hourly_shapes(rng: np.random.Generator, state: str, n_res: int,
                  n_com: int) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """8,760-value hourly per-unit shapes of ``n_res`` homes and ``n_com`` businesses (the sample's
    building models on a year of the state's synthetic weather) and a 24-value weekday shape of a
    small shop (per unit of its peak)."""
    weather = build_weather(state, rng)
    res = []
    if n_res:
        res_kw = B.total_kw(B.residential_loads(B.draw_residential(state, n_res, rng), weather, 0))
        res = [_per_unit(res_kw[j].reshape(HOURS_PER_YEAR, 4).mean(axis=1)) for j in range(n_res)]
    com_kw = B.total_kw(B.commercial_loads(B.draw_commercial(n_com + 1, rng), weather, 0))
    com = [_per_unit(com_kw[j].reshape(HOURS_PER_YEAR, 4).mean(axis=1)) for j in range(n_com)]
    days = com_kw[n_com].reshape(365, 24, 4).mean(axis=2)
    weekday = days[np.arange(365) % 7 < 5].mean(axis=0)
    return res, com, _per_unit(weekday)


def _values_text(values: np.ndarray) -> str:
    return "\n".join(f"{v:.4f}" for v in values) + "\n"


# ------------------------------------------------------------------------------------------- generic text
def _matrix(phases: int, self_: float, mutual: float) -> str:
    rows = [" ".join(repr(self_ if i == j else mutual) for j in range(i + 1)) for i in range(phases)]
    return "(" + " | ".join(rows) + ")"


def generic_linecodes(legacy: bool = False) -> str:
    out = []
    for name, smartds in GENERIC_CODES.items():
        phases, rs, rm, xs, xm, cs, cm, amps = F.LINE_CODES[smartds]
        r, x, c = _matrix(phases, rs, rm), _matrix(phases, xs, xm), _matrix(phases, cs, cm)
        if legacy:
            out.append(f"New Linecode.{name} nphases={phases} BaseFreq=60 units=km\n~ rmatrix={r}\n~ xmatrix={x}\n"
                       f"~ cmatrix={c}\n~ normamps={amps} emergamps={amps * 1.25:g}")
        else:
            out.append(f"New Linecode.{name} nphases={phases} units=km rmatrix={r} xmatrix={x} cmatrix={c} "
                       f"normamps={amps} emergamps={amps * 1.25:g}")
    return "\n".join(out) + "\n"


def _nodes(bus: str, nodes: tuple[int, ...]) -> str:
    return bus + "".join(f".{n}" for n in nodes)


def _generic_line(name: str, s: Section, legacy: bool, tie_mode: str) -> str:
    """``tie_mode`` for a normally-open section: "open" (``Open`` command written elsewhere),
    "disabled" (``enabled=no``) or "closed"."""
    b1, b2 = _nodes(s.bus1, s.nodes), _nodes(s.bus2, s.nodes)
    if s.normally_open:
        extra = " enabled=no" if tie_mode == "disabled" else ""
        return f"New Line.{name} phases={len(s.nodes)} bus1={b1} bus2={b2} switch=y{extra}"
    code = ROLE_CODES.get(s.role, ROLE_CODES["trunk"])[0]
    km = f"{s.length_m / 1000:.4f}"
    if legacy:
        return f"New Line.{name} Phases={len(s.nodes)} Bus1={b1} Bus2={b2}\n~ LineCode={code} Length={km} units=km"
    return f"New Line.{name} phases={len(s.nodes)} bus1={b1} bus2={b2} linecode={code} length={km} units=km"


def _generic_service(name: str, sv: Service, lv: str, legacy: bool) -> str:
    kva = sv.kva
    if sv.phase:
        if legacy:
            return (f"New Transformer.{name} phases=1 windings=3 XHL=2.04 XHT=2.04 XLT=1.36 %noloadloss=0.2\n"
                    f"~ wdg=1 bus={sv.hv_bus}.{sv.phase} conn=wye kV=7.2 kVA={kva:g} %r=0.6\n"
                    f"~ wdg=2 bus={lv}.1.0 conn=wye kV=0.12 kVA={kva:g} %r=1.2\n"
                    f"~ wdg=3 bus={lv}.0.2 conn=wye kV=0.12 kVA={kva:g} %r=1.2")
        return (f"New Transformer.{name} phases=1 windings=3 buses=[{sv.hv_bus}.{sv.phase} {lv}.1.0 {lv}.0.2] "
                f"conns=[wye wye wye] kVs=[7.2 0.12 0.12] kVAs=[{kva:g} {kva:g} {kva:g}] %rs=[0.6 1.2 1.2] "
                f"XHL=2.04 XHT=2.04 XLT=1.36 %noloadloss=0.2")
    if legacy:
        return (f"New Transformer.{name} phases=3 windings=2 XHL=4.5 %noloadloss=0.3\n"
                f"~ wdg=1 bus={sv.hv_bus} conn=delta kV=12.47 kVA={kva:g} %r=0.8\n"
                f"~ wdg=2 bus={lv} conn=wye kV={sv.lv_kv} kVA={kva:g} %r=0.8")
    return (f"New Transformer.{name} phases=3 windings=2 buses=[{sv.hv_bus} {lv}] conns=[delta wye] "
            f"kVs=[12.47 {sv.lv_kv}] kVAs=[{kva:g} {kva:g}] %rs=[0.8 0.8] XHL=4.5 %noloadloss=0.3")


def _generic_load(name: str, m: Meter, bus: str, legacy: bool) -> str:
    shape = (f" yearly={m.yearly}" if m.yearly else "") + (f" daily={m.daily}" if m.daily else "")
    nodes, phases, kv = (".1.2.3", 3, 0.48 if m.kw > 60 else 0.208) if m.kind == "com3" else (".1.2", 1, 0.24)
    power = f"kW={m.kw:.3f} kvar={m.kvar:.3f}"
    if legacy:
        return f"New Load.{name} Bus1={bus}{nodes} Phases={phases} kV={kv} Conn=Wye Model=1\n~ {power}{shape}"
    return f"New Load.{name} bus1={bus}{nodes} phases={phases} kV={kv} conn=wye model=1 {power} vminpu=0.85{shape}"


def _regulator(prefix: str, net: Network, legacy: bool = False) -> tuple[str, list[str], list[str]]:
    """Three single-phase regulators (``<prefix>a/b/c``) with their RegControls (``c<prefix>a/b/c``)."""
    bus_in, bus_out = net.regulator
    text, xfmrs, controls = [], [], []
    kvas = f"kVAs=[{REGULATOR_KVA:g} {REGULATOR_KVA:g}]"
    for k, ph in enumerate("abc", start=1):
        t, c = f"{prefix}{ph}", f"c{prefix}{ph}"
        xfmrs.append(t)
        controls.append(c)
        if legacy:
            text.append(f"New Transformer.{t} phases=1 windings=2 bank={prefix} XHL=0.01 %LoadLoss=0.01\n"
                        f"~ buses=[{bus_in}.{k} {bus_out}.{k}] kVs=[7.2 7.2] {kvas}")
        else:
            text.append(f"New Transformer.{t} phases=1 windings=2 bank={prefix} buses=[{bus_in}.{k} {bus_out}.{k}] "
                        f"conns=[wye wye] kVs=[7.2 7.2] {kvas} XHL=0.01 %LoadLoss=0.01")
        text.append(f"New RegControl.{c} transformer={t} winding=2 vreg=123 band=2 ptratio=60 ctprim=300 R=1.5 X=3")
    return "\n".join(text) + "\n", xfmrs, controls


def _capacitor(name: str, control: str, net: Network, line: str) -> str:
    return (f"New Capacitor.{name} bus1={net.capacitor_bus} phases=3 kvar={CAPACITOR_KVAR:g} kV=12.47 conn=wye\n"
            f"New CapControl.{control} capacitor={name} element=Line.{line} terminal=1 type=kvar "
            f"ON={CAPACITOR_ON_KVAR:g} OFF={CAPACITOR_OFF_KVAR:g} Delay=60 DelayOFF=60\n")


def _generic_names(net: Network) -> tuple[list[str], list[str], list[str]]:
    """Line, service-transformer and load names of a generic feeder."""
    lines = []
    for i, s in enumerate(net.sections):
        lines.append("tie_ab" if i == net.tie else ("feeder_head" if s.role == "head" else f"ln_{s.bus2}"))
    services = [f"svc_{sv.hv_bus}" for sv in net.services]
    loads = [f"{'res' if m.kind == 'res' else 'com'}_{bus}" for m, bus, _ in net.meters]
    return lines, services, loads


def _buscoords(net: Network) -> str:
    return "".join(f"{bus},{x:.2f},{y:.2f}\n" for bus, (x, y) in net.coords.items())


def _meters(rng: np.random.Generator, n_res: int, n_com1: int, n_com3: int) -> list[Meter]:
    """Customers with plausible annual peaks [kW] and power factors."""
    out = []
    for kind, n, lo, hi in (("res", n_res, 3.5, 11.0), ("com1", n_com1, 8.0, 20.0), ("com3", n_com3, 40.0, 160.0)):
        for _ in range(n):
            kw = float(rng.uniform(lo, hi))
            pf = float(rng.uniform(0.92, 0.98))
            out.append(Meter(kind, kw, kw * float(np.tan(np.arccos(pf)))))
    return out


def _generic_master(circuit: str, redirects: list[str], after: list[str], *, pu: float = 1.0,
                    legacy: bool = False, coords: str | None = None) -> str:
    if legacy:
        head = (f"! {circuit}: synthetic 12.47 kV feeder of the dss_xlrm sample, in the older syntax\n\nClear\n"
                f"Set DefaultBaseFrequency=60\n\nNew object=circuit.{circuit}\n"
                f"~ basekv=12.47 pu={pu} angle=0 mvasc3=200 mvasc1=180  ! stiff source\n~ bus1=sourcebus\n")
    else:
        head = (f"! {circuit}: synthetic 12.47 kV feeder of the dss_xlrm sample\n\nClear\n"
                f"Set DefaultBaseFrequency=60\n\n"
                f"New Circuit.{circuit} basekV=12.47 pu={pu} phases=3 bus1=sourcebus MVAsc3=200 MVAsc1=180\n")
    body = "\n".join(f"Redirect {r}" for r in redirects) + "\n"
    tail = "\n".join(after) + ("\n" if after else "")
    coords_line = f"Buscoords {coords}\n" if coords else ""
    return (f"{head}\n{body}\n{tail}\nSet VoltageBases={GENERIC_VOLTAGE_BASES}\nCalcVoltageBases\n{coords_line}\n"
            f"Set maxcontroliter=30\nSolve\n")


def _generic_feeder_files(net: Network, *, legacy: bool, tie_mode: str) -> dict[str, str]:
    lines, services, loads = _generic_names(net)
    files = {
        "Lines.dss": "\n".join(_generic_line(n, s, legacy, tie_mode) for n, s in zip(lines, net.sections)) + "\n",
        "Transformers.dss": "\n".join(_generic_service(n, sv, f"{sv.hv_bus}_s", legacy)
                                      for n, sv in zip(services, net.services)) + "\n",
        "Loads.dss": "\n".join(_generic_load(n, m, bus, legacy) for n, (m, bus, _) in zip(loads, net.meters)) + "\n",
    }
    return files


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in sorted(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _regulator_entry(xfmrs: list[str], controls: list[str]) -> dict:
    return {"regulators": [f"Transformer.{t}" for t in xfmrs], "regcontrols": [f"RegControl.{c}" for c in controls]}


# ------------------------------------------------------------------------------------------- generic feeders
def build_tie_regulator(root: Path, rng: np.random.Generator) -> dict:
    """``tie_regulator/``: see the module docstring. Returns its manifest entry."""
    meters = _meters(rng, 30, 2, 3)
    res, com, shop_day = hourly_shapes(rng, "NC", 3, 1)
    for j, m in enumerate(meters):
        if m.kind == "res":
            m.yearly = f"res_{1 + j % 3}"
        elif m.kind == "com1":
            m.daily = "shop_day"
        elif m.kind == "com3":
            m.yearly = "com_1"
    no_shape = {id(meters[5]), id(meters[-1])}  # one home and one three-phase business on no shape at all
    for m in meters:
        if id(m) in no_shape:
            m.yearly = m.daily = None
    net = grow_network(meters, rng, Namer(), source="sourcebus", head="head")
    lines, _, loads = _generic_names(net)
    files = {f"circuit/{k}": v for k, v in _generic_feeder_files(net, legacy=False, tie_mode="open").items()}
    files["circuit/loads/Loads.dss"] = files.pop("circuit/Loads.dss")
    files["linecodes/LineCodes.dss"] = generic_linecodes()
    reg_text, reg_xfmrs, reg_controls = _regulator("reg1", net)
    files["circuit/Regulators.dss"] = reg_text
    files["circuit/Capacitors.dss"] = _capacitor("cap1", "capctl1", net, lines[net.capacitor_line])
    files["circuit/LoadShapes.dss"] = "".join(
        f"New Loadshape.{name} npts={npts} interval=1 mult=(file=../shapes/{name}.csv)\n"
        for name, npts in (("res_1", 8760), ("res_2", 8760), ("res_3", 8760), ("com_1", 8760), ("shop_day", 24)))
    for k, values in enumerate(res):
        files[f"shapes/res_{k + 1}.csv"] = _values_text(values)
    files["shapes/com_1.csv"] = _values_text(com[0])
    files["shapes/shop_day.csv"] = _values_text(shop_day)
    files["circuit/Buscoords.csv"] = _buscoords(net)
    redirects = ["../linecodes/LineCodes.dss", "Lines.dss", "Regulators.dss", "Transformers.dss", "Capacitors.dss",
                 "LoadShapes.dss", "loads/Loads.dss"]
    tie = lines[net.tie]
    files["circuit/Master_tie.dss"] = _generic_master(
        "tie_regulator", redirects,
        ["! the tie between the ends of the two mains is normally open", f"Open Line.{tie} term=1"],
        coords="Buscoords.csv")
    files["circuit/Master.dss"] = _generic_master(
        "tie_regulator_closed", [r for r in redirects if r != "Capacitors.dss"],
        ["! variant: the tie closed (both mains in a loop), the capacitor out of service"], coords="Buscoords.csv")
    _write(root / "tie_regulator", files)
    by_name = dict(zip(loads, [m for m, _, _ in net.meters]))
    return {
        "feeder": "tie_regulator", "master": "tie_regulator/circuit/Master_tie.dss",
        "variant_master": "tie_regulator/circuit/Master.dss",
        "loads": len(net.meters), "customers": len(net.meters),
        "tie": f"Line.{tie}", "tie_open_by": "Open command", **_regulator_entry(reg_xfmrs, reg_controls),
        "capacitor": "Capacitor.cap1",
        "capcontrol": "CapControl.capctl1",
        "shapes": {"yearly_8760": ["res_1", "res_2", "res_3", "com_1"], "daily_24": ["shop_day"]},
        "loads_without_shape": sorted(n for n, m in by_name.items() if id(m) in no_shape),
    }


def build_utility(root: Path, which: str, rng: np.random.Generator) -> dict:
    """``utility_a/OpenDSS/`` (shapes via ``csvfile=../profiles/``) or ``utility_b/OpenDSS/`` (no shapes,
    a disabled normally-open tie). Returns its manifest entry."""
    n_res, n_com3 = (24, 2) if which == "a" else (30, 1)
    meters = _meters(rng, n_res, 1, n_com3)
    files: dict[str, str] = {}
    shapes: list[str] = []
    if which == "a":
        res, com, _ = hourly_shapes(rng, "TX", 2, 1)
        for k, values in enumerate(res):
            files[f"profiles/home_{k + 1}.csv"] = _values_text(values)
        files["profiles/business_1.csv"] = _values_text(com[0])
        shapes = ["home_1", "home_2", "business_1"]
        for j, m in enumerate(meters):
            m.yearly = "business_1" if m.kind != "res" else f"home_{1 + j % 2}"
    circuit = f"utility_{which}"
    net = grow_network(meters, rng, Namer(), source="sourcebus", head="head",
                       span_m=300.0 if which == "a" else 420.0)
    lines, _, _ = _generic_names(net)
    base = "OpenDSS/"
    for k, v in _generic_feeder_files(net, legacy=False, tie_mode="disabled" if which == "b" else "open").items():
        files[base + k] = v
    files[base + "LineCodes.dss"] = generic_linecodes()
    reg_text, reg_xfmrs, reg_controls = _regulator("vr1", net)
    files[base + "Regulators.dss"] = reg_text
    redirects = ["LineCodes.dss", "Lines.dss", "Regulators.dss", "Transformers.dss"]
    if which == "a":
        files[base + "LoadShapes.dss"] = "".join(
            f"New Loadshape.{s} npts=8760 interval=1 csvfile=../profiles/{s}.csv\n" for s in shapes)
        redirects.append("LoadShapes.dss")
    redirects.append("Loads.dss")
    after = [] if which == "b" else [f"Open Line.{lines[net.tie]} term=2"]
    files[base + "Master.dss"] = _generic_master(circuit, redirects, after, pu=1.0 if which == "a" else 1.01)
    _write(root / circuit, files)
    return {"feeder": circuit, "master": f"{circuit}/OpenDSS/Master.dss", "loads": len(net.meters),
            "customers": len(net.meters), "tie": f"Line.{lines[net.tie]}",
            "tie_open_by": "enabled=no" if which == "b" else "Open command",
            **_regulator_entry(reg_xfmrs, reg_controls), "shapes": {"yearly_8760_csvfile": shapes} if shapes else {}}


def build_legacy(root: Path, rng: np.random.Generator) -> dict:
    """``legacy_syntax/``: ``New object=circuit.legacy_1``, ``~`` continuations, ``.DSS`` files, an inline
    daily shape assigned by ``Load.<name>.daily=`` lines. Returns its manifest entry."""
    meters = _meters(rng, 18, 1, 1)
    net = grow_network(meters, rng, Namer(), source="sourcebus", head="head", span_m=280.0)
    lines, _, loads = _generic_names(net)
    files = {k.replace(".dss", ".DSS"): v
             for k, v in _generic_feeder_files(net, legacy=True, tie_mode="disabled").items()}
    files["LineCodes.DSS"] = generic_linecodes(legacy=True)
    reg_text, reg_xfmrs, reg_controls = _regulator("reg", net, legacy=True)
    files["Regulator.DSS"] = reg_text
    _, _, day = hourly_shapes(rng, "NC", 0, 0)
    inline = " ".join(f"{v:.3f}" for v in day)
    daily = [n for n, (m, _, _) in zip(loads, net.meters) if m.kind == "res"][::2]
    files["SetDailyLoadShape.DSS"] = (f"New Loadshape.day24 npts=24 interval=1\n~ mult=({inline})\n\n"
                                      + "".join(f"Load.{n}.daily=day24\n" for n in daily))
    files["Master.dss"] = _generic_master(
        "legacy_1", ["LineCodes.DSS", "Lines.DSS", "Regulator.DSS", "Transformers.DSS", "Loads.DSS",
                     "SetDailyLoadShape.DSS"], [], legacy=True)
    _write(root / "legacy_syntax", files)
    return {"feeder": "legacy_syntax", "master": "legacy_syntax/Master.dss", "loads": len(net.meters),
            "customers": len(net.meters), "tie": f"Line.{lines[net.tie]}", "tie_open_by": "enabled=no",
            **_regulator_entry(reg_xfmrs, reg_controls), "shapes": {"daily_24_inline": ["day24"]},
            "loads_with_daily": len(daily)}


def build_generic_feeders(feeders_dir: Path, seed: int) -> list[dict]:
    """Write every generic feeder under ``feeders_dir``; returns their manifest entries (sorted by name)."""
    def rng(k: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(GENERIC_KEY, k)))

    entries = [build_tie_regulator(feeders_dir, rng(1)), build_utility(feeders_dir, "a", rng(2)),
               build_utility(feeders_dir, "b", rng(3)), build_legacy(feeders_dir, rng(4))]
    return sorted(entries, key=lambda e: e["feeder"])


# ------------------------------------------------------------------------------------------- SMART-DS
SMARTDS_SUBREGION = "P2U"        # of TX's city; the default runs study P1U
SMARTDS_STATE = "TX"
SMARTDS_SUBSTATION = "p2uhs4_1247"
SMARTDS_FEEDER_ID = 6108
SMARTDS_PREFIX = "p2u"
SOLAR_SCENARIO = "solar_medium_batteries_none_timeseries"
PV_SHARE = 0.35                  # customers with rooftop PV in the solar scenario


def _pv_profiles(rng: np.random.Generator, state: str, n: int) -> list[np.ndarray]:
    """15-min per-unit PV output (35,040 values) of ``n`` sites: irradiance over 1,000 W/m2 with a
    site's own orientation loss, clipped at 1."""
    out = []
    for _ in range(n):
        ghi = build_weather(state, rng)["ghi_w_m2"]
        out.append(np.clip(ghi / 1000.0 * float(rng.uniform(0.85, 1.0)), 0.0, 1.0))
    return out


def _smartds_network_files(net: Network, spec: F.FeederSpec) -> tuple[dict[str, str], dict]:
    lines_text, xfmrs_text, loads_text = [], [], []
    names: dict = {}
    for i, s in enumerate(net.sections):
        b1, b2 = _nodes(s.bus1, s.nodes), _nodes(s.bus2, s.nodes)
        if i == net.tie:
            name = f"switch(r:{s.bus1}-{s.bus2})"
            names["tie"] = f"Line.{name}"
            lines_text.append(f"New Line.{name} Units=km Length={s.length_m / 1000:.6g} bus1={b1} bus2={b2} switch=y "
                              f"enabled=n phases=3 Linecode={ROLE_CODES['main'][1]}")
            continue
        name = f"l(r:{spec.feeder}-{spec.substation})" if s.role == "head" else f"l(r:{s.bus1}-{s.bus2})"
        if i == net.capacitor_line:
            names["capacitor_line"] = name
        code = ROLE_CODES.get(s.role, ROLE_CODES["trunk"])[1]
        lines_text.append(F._line(name, b1, b2, len(s.nodes), code, s.length_m))
    for sv in net.services:
        xfmrs_text.append(F._xfmr_1ph(sv.hv_bus, sv.phase, sv.kva) if sv.phase
                          else F._xfmr_3ph(sv.hv_bus, sv.kva, sv.lv_kv))
    n_loads = 0
    for m, cb, _ in net.meters:
        if m.kind == "com3":
            kv = 0.48 if m.kw > 60 else 0.208
            loads_text.append(f"New Load.load_{cb} conn=wye bus1={cb}.1.2.3 kV={kv} Vminpu=0.8 Vmaxpu=1.2 model=1 "
                              f"kW={F._fmt(m.kw)} kvar={F._fmt(m.kvar)} Phases=3 yearly={m.yearly}")
            n_loads += 1
            continue
        for leg in (1, 2):
            loads_text.append(f"New Load.load_{cb}_{leg} conn=wye bus1={cb}.{leg} kV=0.12 Vminpu=0.8 Vmaxpu=1.2 "
                              f"model=1 kW={F._fmt(m.kw / 2)} kvar={F._fmt(m.kvar / 2)} Phases=1 yearly={m.yearly}")
            n_loads += 1
    bus_in, bus_out = net.regulator
    reg, regs, ctrls = [], [], []
    for k, ph in enumerate("abc", start=1):
        t = f"reg_{bus_in}_{ph}"
        regs.append(f"Transformer.{t}")
        ctrls.append(f"RegControl.{t}")
        reg.append(f"New Transformer.{t} phases=1 windings=2 bank=reg_{bus_in} buses=[{bus_in}.{k} {bus_out}.{k}] "
                   f"conns=[wye wye] kvs=[{F.PRIMARY_LN_KV!r} {F.PRIMARY_LN_KV!r}] kvas=[{REGULATOR_KVA:g} "
                   f"{REGULATOR_KVA:g}] xhl=0.01 %loadloss=0.01 %noloadloss=0.0")
        reg.append(f"New RegControl.{t} transformer={t} winding=2 vreg=122.0 band=2.0 ptratio=60.0 ctprim=300 "
                   f"R=1.5 X=3.0")
    cap = f"cap_{net.capacitor_bus}"
    capacitors = (f"New Capacitor.{cap} bus1={net.capacitor_bus}.1.2.3 phases=3 kvar={CAPACITOR_KVAR:g} "
                  f"kv={F.PRIMARY_KV} conn=wye\n"
                  f"New CapControl.capctrl_{net.capacitor_bus} capacitor={cap} element=Line.{names['capacitor_line']} "
                  f"terminal=1 type=kvar ON={CAPACITOR_ON_KVAR!r} OFF={CAPACITOR_OFF_KVAR!r} Delay=60 DelayOFF=60\n")
    files = {
        "LineCodes.dss": "\n\n".join(F._linecode(name) for name in F.LINE_CODES) + "\n",
        "Lines.dss": "\n\n".join(lines_text) + "\n",
        "Transformers.dss": "\n\n".join(xfmrs_text) + "\n",
        "Regulators.dss": "\n\n".join(reg) + "\n",
        "Capacitors.dss": capacitors,
        "Loads.dss": "\n\n".join(loads_text) + "\n",
        "Buscoords.dss": "\n".join(f"{b} {xy[0]:.3f} {xy[1]:.3f}" for b, xy in net.coords.items()) + "\n",
    }
    names.update({"regulators": regs, "regcontrols": ctrls, "capacitor": f"Capacitor.{cap}",
                  "capcontrol": f"CapControl.capctrl_{net.capacitor_bus}", "loads": n_loads})
    return files, names


def _smartds_master(spec: F.FeederSpec, solar: bool) -> str:
    text = F._master(spec)
    text = text.replace("Redirect Transformers.dss\n",
                        "Redirect Transformers.dss\nRedirect Regulators.dss\nRedirect Capacitors.dss\n")
    if solar:
        text = text.replace("Redirect LoadShapes.dss\n", "Redirect LoadShapes.dss\nRedirect PVShapes.dss\n")
        text = text.replace("Redirect Loads.dss\n", "Redirect Loads.dss\nRedirect PVSystems.dss\n")
    return text


def build_smartds_features(oedi: Path, seed: int, smartds_prefix: str, year: str, city: str) -> dict:
    """The TX subregion ``P2U`` with one feeder in ``base_timeseries`` and in the solar scenario, its
    ``profiles/``, ``load_data/`` and ``scenarios/<solar>/pv-profiles/``. Returns its manifest entry."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SMARTDS_KEY, 1)))
    subregion_dir = oedi / smartds_prefix / year / city / SMARTDS_SUBREGION
    weather = build_weather(SMARTDS_STATE, rng)
    res_ids = sorted(int(i) for i in rng.choice(np.arange(50000, 59999), size=8, replace=False))
    com_ids = sorted(int(i) for i in rng.choice(np.arange(60000, 63999), size=3, replace=False))
    homes_batch = B.draw_residential(SMARTDS_STATE, len(res_ids), rng)
    homes = B.residential_loads(homes_batch, weather, 0)
    shops_batch = B.draw_commercial(len(com_ids), rng)
    shops = B.commercial_loads(shops_batch, weather, 0)
    peaks: dict[str, tuple[float, float]] = {}
    for j, pid in enumerate(res_ids):
        one = {k: v[j] for k, v in homes.items()}
        peaks[f"res_kw_{pid}_pu"] = D.write_smartds_profile(subregion_dir, "res", pid, one,
                                                            str(homes_batch.building_type[j]))
    for j, pid in enumerate(com_ids):
        one = {k: v[j] for k, v in shops.items()}
        peaks[f"com_kw_{pid}_pu"] = D.write_smartds_profile(subregion_dir, "com", pid, one,
                                                            str(shops_batch.building_type[j]))
    spec = F.FeederSpec(substation=SMARTDS_SUBSTATION, feeder_id=SMARTDS_FEEDER_ID, prefix=SMARTDS_PREFIX, n_res=36,
                        n_com_3ph=3, n_com_1ph=2, trunk_segments=3, trunk_span_m=350.0,
                        trunk_code=ROLE_CODES["trunk"][1], seed=0)
    by_size = np.argsort(shops_batch.sqft, kind="stable")  # the smallest business on a split-phase service
    meters = []
    for kind, count, pool in (("res", spec.n_res, [f"res_kw_{i}_pu" for i in res_ids]),
                              ("com1", spec.n_com_1ph, [f"com_kw_{com_ids[j]}_pu" for j in by_size[:1]]),
                              ("com3", spec.n_com_3ph, [f"com_kw_{com_ids[j]}_pu" for j in by_size[1:]])):
        for shape in rng.choice(pool, size=count, replace=True):
            kw, kvar = peaks[str(shape)]
            scale = float(rng.uniform(0.85, 1.15))
            meters.append(Meter(kind, kw * scale, kvar * scale, yearly=str(shape)))
    names = F._Names(rng, {spec.feeder_id})
    net = grow_network(meters, rng, Namer(names, SMARTDS_PREFIX), source=f"{spec.feeder}-{spec.substation}x",
                       head=spec.feeder)
    files, elements = _smartds_network_files(net, spec)
    shapes = sorted({m.yearly for m, _, _ in net.meters})
    files["LoadShapes.dss"] = "\n\n".join(
        f"New Loadshape.{s} npts=35040 interval=0.25 mult = (file=../../../../../profiles/{s}.csv) "
        f"qmult = (file=../../../../../profiles/{s.replace('_kw_', '_kvar_')}.csv)" for s in shapes) + "\n"

    # the solar scenario: PV on a share of the split-phase customers, three solar sites
    # named like the PV shapes in NREL DISCO's SMART-DS test data: <site id>_<latitude>_<longitude>_<year>
    sites = [f"{int(rng.integers(1500000, 1600000))}_30.{int(rng.integers(10, 45)):02d}_"
             f"-97.{int(rng.integers(35, 80)):02d}_2018" for _ in range(3)]
    pv_profiles = _pv_profiles(rng, SMARTDS_STATE, len(sites))
    pv_lines = []
    split = [(m, cb) for m, cb, _ in net.meters if m.kind != "com3"]
    chosen = sorted(rng.choice(len(split), size=int(round(PV_SHARE * len(split))), replace=False))
    for k, j in enumerate(chosen):
        m, cb = split[int(j)]
        pmpp = float(np.round(min(m.kw * rng.uniform(0.5, 0.9), 9.0), 1))
        pv_lines.append(f"New PVSystem.pv_{cb} bus1={cb}.1.2 phases=1 kV=0.24 kVA={pmpp / 1.1:.3f} Pmpp={pmpp} "
                        f"%Cutin=0.1 %Cutout=0.1 pf=1 irradiance=1 yearly={sites[k % len(sites)]}")
    solar_files = dict(files)
    solar_files["PVShapes.dss"] = "\n".join(
        f"New Loadshape.{s} npts=35040 interval=0.25 mult = (file=../../../pv-profiles/{s}.csv)" for s in sites) + "\n"
    solar_files["PVSystems.dss"] = "\n\n".join(pv_lines) + "\n"
    scenarios = subregion_dir / "scenarios"
    for scenario, feeder_files in (("base_timeseries", files), (SOLAR_SCENARIO, solar_files)):
        feeder_files = {**feeder_files, "Master.dss": _smartds_master(spec, scenario == SOLAR_SCENARIO)}
        _write(scenarios / scenario / "opendss" / spec.substation / spec.folder, feeder_files)
    _write(scenarios / SOLAR_SCENARIO / "pv-profiles",
           {f"{s}.csv": "\n".join(f"{v:.6f}" for v in values) + "\n" for s, values in zip(sites, pv_profiles)})
    return {
        "state": SMARTDS_STATE, "city": city, "subregion": SMARTDS_SUBREGION, "feeder": spec.folder,
        "scenarios": ["base_timeseries", SOLAR_SCENARIO], "customers": len(net.meters), "loads": elements["loads"],
        "shapes": len(shapes), "tie": elements["tie"], "tie_open_by": "enabled=n",
        "regulators": elements["regulators"], "regcontrols": elements["regcontrols"],
        "capacitor": elements["capacitor"], "capcontrol": elements["capcontrol"],
        "pv_systems": len(pv_lines), "pv_shapes": sites,
        "pv_profiles": f"scenarios/{SOLAR_SCENARIO}/pv-profiles/",
    }
