"""Synthetic SMART-DS v1.0 feeders for the embedded sample, written as SMART-DS ships them.

A feeder is radial at 12.47 kV: a three-phase trunk from the substation, single-phase laterals
(phases rotated for balance, some behind fuses) with split-phase centre-tap service transformers
(three-winding, 7.2 kV / 120-0-120 V) feeding residential customers as ``_1``/``_2`` half loads on
the two legs, and three-phase service transformers (480 V or 208 V) feeding commercial
customers. Conductor ampacities are manufacturers' overhead ratings (Southwire ACSR and triplex,
75 C); impedances are typical phase-frame matrices for those conductors. Service transformers are
sized from the connected customers' annual peaks with a diversity factor, to standard sizes, as a
utility would: high electrification then overloads some of them.

Names follow each city's convention: Greensboro (GSO, NC) without a region prefix
(``uhs0_1247--udt1021``), Austin and the Bay Area with it (``p1uhs2_1247--p1udt3318``).
``Master.dss`` carries the monitors, energy meter, yearly solve, export and plot lines that SMART-DS
ships; ``LoadShapes.dss`` points five folders up to the subregion's ``profiles/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: name, phases, R matrix self/mutual, X self/mutual [ohm/km], C self/mutual [nF/km], ampacity [A]
LINE_CODES = {
    "3P_OH_AL_ACSR_795_Drake_12_47_0_3_3_3_3_3": (3, 0.1650, 0.0901, 0.5450, 0.2202, 8.3, -3.3, 907),
    "3P_OH_AL_ACSR_477_Hawk_12_47_0_3_3_3_3_3": (3, 0.2010, 0.0901, 0.5700, 0.2202, 7.9, -3.2, 659),
    "3P_OH_AL_ACSR_4/0_Penguin_12_47_0_3_3_3_3_3": (3, 0.3636, 0.0901, 0.6385, 0.2202, 7.45, -3.18, 357),
    "1P_OH_AL_ACSR_1/0_Raven_12_47_0_1_1_1_1_1": (1, 0.6573, 0.0, 0.7250, 0.0, 7.9, 0.0, 242),
    "1P_OH_AL_ACSR_#2_Sparrow_12_47_0_1_1_1_1_1": (1, 1.0412, 0.0, 0.7627, 0.0, 7.70, 0.0, 184),
    "1P_OH_AL_4/0_Zuzara_0_416_0_2_2_2_2_2": (2, 0.4728, 0.2021, 0.2135, 0.1247, 41.36, -20.45, 240),
    "1P_OH_AL_1/0_Gammarus_0_416_0_2_2_2_2_2": (2, 0.9516, 0.2150, 0.2380, 0.1350, 39.0, -19.0, 160),
    "3P_UG_AL_350kcmil_15_0_416_0_3_3_3_3_3": (3, 0.3389, 0.1745, 0.5126, 0.2912, 164.4, -81.6, 310),
    "fuse_1_1_1_1_1": (1, 0.001, 0.0, 0.001, 0.0, 3.4, 0.0, 325),
}
STANDARD_1PH_KVA = (10.0, 15.0, 25.0, 37.5, 50.0, 75.0, 100.0, 167.0)
STANDARD_3PH_KVA = (45.0, 75.0, 112.5, 150.0, 225.0, 300.0, 500.0, 750.0)
PRIMARY_KV = 12.47
PRIMARY_LN_KV = 7.199560000000001
SECONDARY_LN_KV = 0.120089
VOLTAGE_BASES = "[0.2080002494301389, 0.48, 7.199560000000001, 12.47]"


@dataclass(frozen=True)
class FeederSpec:
    """What to build: counts and sizes of one feeder."""

    substation: str          # e.g. "uhs0_1247" or "p1uhs2_1247"
    feeder_id: int           # number of the head bus: feeder name = f"{prefix}dt{feeder_id}"
    prefix: str              # "u" (GSO urban) or "p1u" (AUS/SFO subregion P1U)
    n_res: int               # residential customers
    n_com_3ph: int           # commercial customers on three-phase services
    n_com_1ph: int           # small commercial customers on split-phase services
    trunk_segments: int
    trunk_span_m: float
    trunk_code: str
    customers_per_xfmr: tuple[int, int] = (3, 8)
    lateral_span_m: float = 70.0
    diversity: float = 1.0   # transformer kVA >= diversity x sum of connected annual peaks
    fault: bool = False      # one lateral left isolated (a broken connection)
    seed: int = 0

    @property
    def feeder(self) -> str:
        return f"{self.prefix}dt{self.feeder_id}"

    @property
    def folder(self) -> str:
        return f"{self.substation}--{self.feeder}"


@dataclass
class Customer:
    kind: str      # "res", "com1", "com3"
    shape: str     # load-shape name, e.g. res_kw_44719_pu
    kw: float      # annual peak
    kvar: float


@dataclass
class FeederFiles:
    files: dict[str, str] = field(default_factory=dict)
    shapes: list[str] = field(default_factory=list)
    n_customers: int = 0
    n_loads: int = 0


def _fmt(x: float) -> str:
    return repr(float(x))


class _Names:
    """Unique element numbers, drawn without collisions from one generator."""

    def __init__(self, rng: np.random.Generator, taken: set[int]):
        self.rng = rng
        self.taken = set(taken)

    def next(self) -> int:
        while True:
            n = int(self.rng.integers(100, 99999))
            if n not in self.taken:
                self.taken.add(n)
                return n


def _line(name: str, bus1: str, bus2: str, phases: int, code: str, length_m: float) -> str:
    return (f"New Line.{name} Units=km Length={length_m / 1000:.6g} bus1={bus1} bus2={bus2} switch=n "
            f"enabled=y phases={phases} Linecode={code}")


def _xfmr_1ph(dt: str, phase: int, kva: float) -> str:
    normh = kva * 1.1
    emerg = kva * 1.5
    return (f"New Transformer.tr(r:{dt}-{dt}lv) phases=1 windings=3 %loadloss=0.798816 %Noloadloss=0.472 "
            f"normhkva={normh:g} wdg=1 conn=wye bus={dt}.{phase} Kv={PRIMARY_LN_KV!r} kva={kva!r} "
            f"EmergHKVA={emerg:g} %r=0.266272 wdg=2 conn=wye bus={dt}lv.1.0 Kv={SECONDARY_LN_KV} kva={kva!r} "
            f"EmergHKVA={emerg:g} %r=0.532544 wdg=3 conn=wye bus={dt}lv.0.2 Kv={SECONDARY_LN_KV} kva={kva!r} "
            f"EmergHKVA={emerg:g} %r=0.532544 XHL=2.4 XLT=2.4 XHT=1.6")


def _xfmr_3ph(dt: str, kva: float, lv_kv: float) -> str:
    return (f"New Transformer.tr(r:{dt}-{dt}lv) phases=3 windings=2 %loadloss=1.74408 %Noloadloss=0.6 "
            f"normhkva={kva * 1.1:g} wdg=1 conn=wye Kv={PRIMARY_KV} kva={kva!r} EmergHKVA={kva * 1.5:g} "
            f"%R=0.87204 bus={dt} wdg=2 conn=wye Kv={lv_kv} kva={kva!r} EmergHKVA={kva * 1.5:g} %R=0.87204 "
            f"bus={dt}lv XHL=3.2400000000000007")


def _standard(kva_needed: float, sizes: tuple[float, ...]) -> float:
    for size in sizes:
        if size >= kva_needed:
            return size
    return sizes[-1]


def build_feeder(spec: FeederSpec, customers: list[Customer], rng: np.random.Generator,
                 taken: set[int] | None = None) -> FeederFiles:
    """DSS files of one feeder for the given customers (res first, then com1, then com3).

    ``taken``: element numbers already used in the subregion (updated), so that names stay unique
    across its feeders, as in SMART-DS.
    """
    p = spec.prefix
    names = _Names(rng, (taken or set()) | {spec.feeder_id})
    head = spec.feeder
    source = f"{head}-{spec.substation}x"
    lines: list[str] = []
    xfmrs: list[str] = []
    loads: list[str] = []
    coords: dict[str, tuple[float, float]] = {}
    x0, y0 = 600000.0 + rng.uniform(0, 50000), 3300000.0 + rng.uniform(0, 50000)
    coords[source] = (x0 - 30, y0)
    coords[head] = (x0, y0)
    lines.append(_line(f"l(r:{head}-{spec.substation})", f"{source}.1.2.3", f"{head}.1.2.3", 3, spec.trunk_code, 30.0))

    # trunk
    trunk = [head]
    for k in range(spec.trunk_segments):
        bus = f"{p}dm{names.next()}"
        prev = trunk[-1]
        coords[bus] = (coords[prev][0] + spec.trunk_span_m, coords[prev][1] + rng.normal(0, 20))
        lines.append(_line(f"l(r:{prev}-{bus})", f"{prev}.1.2.3", f"{bus}.1.2.3", 3, spec.trunk_code, spec.trunk_span_m))
        trunk.append(bus)

    # split-phase groups: residential and small commercial customers behind 1-phase transformers
    split = [c for c in customers if c.kind in ("res", "com1")]
    order = rng.permutation(len(split))
    groups: list[list[Customer]] = []
    i = 0
    lo, hi = spec.customers_per_xfmr
    while i < len(order):
        size = int(rng.integers(lo, hi + 1))
        groups.append([split[j] for j in order[i:i + size]])
        i += size
    n_laterals = max(2, int(round(len(groups) / 9)))
    lateral_groups = np.array_split(np.arange(len(groups)), n_laterals)
    fuse_counter = 266500 + int(rng.integers(0, 1000))
    faulty_lateral = int(rng.integers(0, n_laterals)) if spec.fault else -1
    n_loads = 0
    for lat, members in enumerate(lateral_groups):
        if len(members) == 0:
            continue
        phase = 1 + lat % 3
        tap = trunk[1 + (lat * (len(trunk) - 1)) // max(n_laterals, 1)] if len(trunk) > 1 else head
        side = 1 if lat % 2 == 0 else -1
        prev_bus = tap
        for pos, g in enumerate(members):
            dt = f"{p}dt{names.next()}"
            coords[dt] = (coords[tap][0] + rng.normal(0, 15), coords[tap][1] + side * spec.lateral_span_m * (pos + 1))
            code = "1P_OH_AL_ACSR_1/0_Raven_12_47_0_1_1_1_1_1" if pos < 3 and len(members) > 6 else \
                "1P_OH_AL_ACSR_#2_Sparrow_12_47_0_1_1_1_1_1"
            if pos == 0:
                if lat % 2 == 1:  # fused tap, written as SMART-DS writes fuses
                    fuse_counter += 1
                    mid = f"{dt}-{tap}x"
                    fname = f"fuse(r:{dt}-{tap}){p}_{fuse_counter}"
                    lines.append(_line(fname, f"{tap}.{phase}", f"{mid}.{phase}", 1, "fuse_1_1_1_1_1", 1.0))
                    lines.append(f"New Fuse.Fuse_{fname} monitoredobj=Line.{fname} enabled=y ratedcurrent=100.0")
                    coords[mid] = coords[tap]
                    prev_bus = mid
                if lat == faulty_lateral:
                    prev_bus = f"{prev_bus}_open"  # the broken connection: a bus nothing else reaches
            lines.append(_line(f"l(r:{prev_bus.split('_open')[0]}-{dt})", f"{prev_bus}.{phase}", f"{dt}.{phase}", 1, code,
                               spec.lateral_span_m * (1 + rng.uniform(-0.2, 0.2))))
            prev_bus = dt
            need = spec.diversity * sum(c.kw for c in groups[g])
            xfmrs.append(_xfmr_1ph(dt, phase, _standard(need, STANDARD_1PH_KVA)))
            lv = f"{dt}lv"
            coords[lv] = (coords[dt][0] + 4, coords[dt][1] + 4)
            for c in groups[g]:
                cb = f"{p}lv{names.next()}"
                length = rng.uniform(15, 60)
                coords[cb] = (coords[lv][0] + rng.uniform(-40, 40), coords[lv][1] + rng.uniform(-40, 40))
                code = "1P_OH_AL_4/0_Zuzara_0_416_0_2_2_2_2_2" if c.kind == "com1" or c.kw > 12 else \
                    "1P_OH_AL_1/0_Gammarus_0_416_0_2_2_2_2_2"
                lines.append(_line(f"l(r:{lv}-{cb})", f"{lv}.1.2", f"{cb}.1.2", 2, code, length))
                for leg in (1, 2):
                    loads.append(f"New Load.load_{cb}_{leg} conn=wye bus1={cb}.{leg} kV=0.12 Vminpu=0.8 Vmaxpu=1.2 "
                                 f"model=1 kW={_fmt(c.kw / 2)} kvar={_fmt(c.kvar / 2)} Phases=1 yearly={c.shape}")
                    n_loads += 1

    # three-phase commercial services tapped off the trunk
    for j, c in enumerate([c for c in customers if c.kind == "com3"]):
        tap = trunk[1 + (j * 7 + 3) % max(len(trunk) - 1, 1)] if len(trunk) > 1 else head
        dt = f"{p}dt{names.next()}"
        coords[dt] = (coords[tap][0] + 20, coords[tap][1] + 25)
        lines.append(_line(f"l(r:{tap}-{dt})", f"{tap}.1.2.3", f"{dt}.1.2.3", 3,
                           "3P_OH_AL_ACSR_4/0_Penguin_12_47_0_3_3_3_3_3", 40.0))
        lv_kv = 0.48 if c.kw > 60 else 0.208
        kva = _standard(c.kw * 1.25, STANDARD_3PH_KVA)
        xfmrs.append(_xfmr_3ph(dt, kva, lv_kv))
        lv = f"{dt}lv"
        cb = f"{p}lv{names.next()}"
        coords[lv] = (coords[dt][0] + 4, coords[dt][1] + 4)
        coords[cb] = (coords[lv][0] + 10, coords[lv][1] + 10)
        lines.append(_line(f"l(r:{lv}-{cb})", f"{lv}.1.2.3", f"{cb}.1.2.3", 3,
                           "3P_UG_AL_350kcmil_15_0_416_0_3_3_3_3_3", 15.0))
        loads.append(f"New Load.load_{cb} conn=wye bus1={cb}.1.2.3 kV={lv_kv} Vminpu=0.8 Vmaxpu=1.2 model=1 "
                     f"kW={_fmt(c.kw)} kvar={_fmt(c.kvar)} Phases=3 yearly={c.shape}")
        n_loads += 1

    if taken is not None:
        taken |= names.taken
    shapes = sorted({c.shape for c in customers})
    files = FeederFiles(shapes=shapes, n_customers=len(customers), n_loads=n_loads)
    files.files["LineCodes.dss"] = "\n\n".join(_linecode(name) for name in LINE_CODES) + "\n"
    files.files["Lines.dss"] = "\n\n".join(lines) + "\n"
    files.files["Transformers.dss"] = "\n\n".join(xfmrs) + "\n"
    files.files["Loads.dss"] = "\n\n".join(loads) + "\n"
    files.files["LoadShapes.dss"] = "\n\n".join(
        f"New Loadshape.{s} npts=35040 interval=0.25 mult = (file=../../../../../profiles/{s}.csv) "
        f"qmult = (file=../../../../../profiles/{s.replace('_kw_', '_kvar_')}.csv)" for s in shapes) + "\n"
    files.files["Buscoords.dss"] = "\n".join(f"{b} {xy[0]:.3f} {xy[1]:.3f}" for b, xy in coords.items()) + "\n"
    files.files["Master.dss"] = _master(spec)
    return files


def _linecode(name: str) -> str:
    phases, rs, rm, xs, xm, cs, cm, amps = LINE_CODES[name]

    def matrix(self_: float, mutual: float) -> str:
        rows = [" ".join(repr(self_ if i == j else mutual) for j in range(i + 1)) for i in range(phases)]
        return "(" + " | ".join(rows) + " )"

    return (f"New Linecode.{name} units=km nphases={phases} Faultrate=0.1 Rmatrix={matrix(rs, rm)} "
            f"Xmatrix={matrix(xs, xm)} Cmatrix={matrix(cs, cm)} normamps={float(amps)} emergamps={float(amps) * 1.25}")


def _master(spec: FeederSpec) -> str:
    head = spec.feeder
    sub = spec.substation
    return f"""Clear

New Circuit.feeder_{head}-{sub}x bus1={head}-{sub}x pu=1.03 basekV=12.47 R1=1e-05 X1=1e-05 R0=1e-05 X0=1e-05

Redirect LineCodes.dss
Redirect Lines.dss
Redirect Transformers.dss
Redirect LoadShapes.dss
Redirect Loads.dss

New Monitor.m1 element=Line.l(r:{head}-{sub}) mode=0
New Monitor.m2 element=Line.l(r:{head}-{sub}) mode=1
New EnergyMeter.m3 Line.l(r:{head}-{sub})

Set Voltagebases={VOLTAGE_BASES}

Calcvoltagebases

Buscoords Buscoords.dss

set maxcontroliter=50
Solve mode=yearly stepsize=15m number=35040
Export monitors m1
Export monitors m2
Plot monitor object= m1 channels=(7 9 11)
Plot monitor object= m2 channels=(1 3 5)
Plot Profile Phases=All
"""
