"""One daily power flow of a circuit instance, and the planning metrics a distribution engineer reads.

:func:`simulate` compiles an instance's ``Master.dss`` with opendssdirect (no directory change),
solves the 96 x 15-min day one step at a time with a convergence check at every step, and reads
whole arrays at each step: node voltages (pu), power-delivery elements' terminal powers and their
per-cent loadings, circuit losses, the three-phase buses' voltage unbalance factor, and the feeder-head
element's phase powers and currents. Then it computes:

* reverse flow: intervals with the feeder head's three-phase power towards the substation, the same per
  phase (``head_reverse_flow_intervals_phase1..3``), and at every service transformer (last winding at most
  ``common.config.SERVICE_TRANSFORMER_MAX_KV``: active power at winding 1 towards the primary): how many see
  it in any interval and the transformer-intervals (``REVERSE_FLOW_TOLERANCE_KW`` apart from zero);
  overvoltage as customer-intervals above ANSI Range A and Range B (a customer counted once per interval);
* feeder head: peak kW and its time, energy kWh, losses kWh and %, reverse-flow intervals, and the
  phase current unbalance, NEMA MG 1 definition (the largest deviation of a phase current from the mean
  of the three, over that mean [%]: ``head_current_unbalance_max_pct``, :func:`current_unbalance_pct`);
  the earlier workflow's "imbalance" ``S_sum_3ph - S_3ph`` is kept under its honest name
  (``s_phase_sum_minus_total_max_kva`` / ``_mean_kva``): it is zero whenever the phases share a power
  factor, however unequal their loads, so it is not an unbalance measure;
* voltage unbalance: the voltage unbalance factor VUF = |V2| / |V1| [%] (negative- over positive-sequence
  voltage, Fortescue transform of the bus's phase-to-neutral phasors; the same as from the phase-to-phase
  voltages, which carry no zero sequence: :func:`voltage_unbalance_factor_pct`) at every three-phase bus
  (nodes 1, 2 and 3, all energised) and interval: its maximum and the bus-intervals above the planning
  level and the limit of ``common.config.VOLTAGE_UNBALANCE_PCT`` (ANSI C84.1 Annex D: supply systems
  should limit the unbalance at the service to 3 %; utilities plan to 2 %: ``vuf_over_2pct_bus_intervals``,
  ``vuf_over_3pct_bus_intervals``);
* voltage (ANSI C84.1, ``common.config.ANSI_RANGE_A/B``): minimum and maximum over all energised
  nodes; at the customers' service nodes, node-intervals below / above Range A and B and the
  customers affected, and the longest run of consecutive intervals any customer spends below
  Range A (``ansi_a_under_max_consecutive_intervals``: a customer is below when any of its energised
  nodes is; counted on the periodic day, so an evening run that reaches midnight goes on at 00:00,
  as the moving averages do: the design day stands for a spell of similar days, and a cut at
  midnight would split one sustained violation in two; the undervoltage criterion of
  ``common.config.FAILURE_CRITERIA`` compares it with its number of intervals);
* thermal: line loading = the highest current of its phase conductors / NormAmps (OpenDSS rates a line
  per conductor: NormAmps is each conductor's rating; a line with no rating of its own, left at the
  engine's default 400 A, is "unrated": counted, and left out of the loading and overload metrics);
  transformer loading = the highest of, in each interval: |S| at winding 1 / its kVA rating (the total),
  each winding of a single-phase transformer against its kVA, except the two 120 V legs of a split-phase
  centre-tap service transformer (SMART-DS: one phase, three windings, windings 2 and 3 on the same
  secondary bus), each against half the transformer's rating, and each phase of each winding of a
  three-phase transformer (that phase conductor's |S| against kVA / 3): a service transformer whose legs
  carry 150 % and 30 % of their half ratings is 150 % loaded, not 90 % (:func:`transformer_columns`);
  the worst of each with its element,
  element-intervals above 100 %, moving-average overloads over the ``THERMAL`` windows and
  thresholds (``common.config.FAILURE_CRITERIA``: 2 h above 100 % of nameplate for transformers,
  1 h above 100 % of NormAmps for lines; the day treated as periodic:
  ``transformer_ma_overload_intervals``, ``line_ma_overload_intervals``), and transformer
  element-intervals above the emergency limit (``THERMAL["transformer"]["emergency_pct"]``, 150 %,
  instantaneous: ``transformer_emergency_intervals``);
* devices: EV energy requested, delivered (a charger below its ``vminpu`` draws less than its
  setting, exactly as OpenDSS's constant-power load model does: :func:`constant_power_factor`) and
  unserved; PV energy (three-phase and rooftop arrays); storage charge and discharge (the three-phase
  fleet and the home batteries), their state of charge; the storage
  peak reduction against the same case without storage (the batteries disabled: the whole day
  re-solved from the same control state on a feeder with regulators or capacitors; else idle intervals
  are identical, and an active interval is solved only where a bound says it could top the peak, its
  head power plus twice the discharge taken away, or a fuse could operate without the batteries
  (:func:`peak_without_storage`, :func:`fuse_must_solve`));
* non-converged steps, steps with a control-iteration warning (OpenDSS #485 at a step that still
  converged, recorded rather than fatal), status (``ok`` / ``failed`` with the OpenDSS message),
  runtime, versions.

Metric functions are pure (numpy in, numbers out) and tested on hand-computed cases.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import config, dss, schema
from common.io import atomic_path, dumps_json, package_versions, read_json, sha256_file, write_parquet
from common.paths import INSTANCE_FILES

STEPS = config.INTERVALS_PER_DAY
DT_H = config.INTERVAL_H
EV_VMIN_PU = config.EV["vminpu"]
EV_VLOW_PU = config.EV["vlowpu"]
ENERGISED_PU = config.ENERGISED_PU
HEAD_COLUMNS = schema.HEAD_COLUMNS


# ------------------------------------------------------------------------------------------- pure metrics
def head_table(phase_powers: np.ndarray) -> pd.DataFrame:
    """Feeder-head series in the earlier workflow's schema from (96, 3) complex phase powers [kVA]."""
    p = np.asarray(phase_powers, dtype=complex)
    if p.shape[1] < 3:
        p = np.hstack([p, np.zeros((len(p), 3 - p.shape[1]), dtype=complex)])
    total = p.sum(axis=1)
    table = {}
    for i in range(3):
        table[f"S{i + 1} (kVA)"] = np.abs(p[:, i])
        table[f"Ang{i + 1}"] = np.degrees(np.angle(p[:, i]))
    for i in range(3):
        table[f"P{i + 1} (kW)"] = p[:, i].real
        table[f"Q{i + 1} (kVAr)"] = p[:, i].imag
    table["P_3ph (kW)"] = total.real
    table["Q_3ph (kVAr)"] = total.imag
    table["S_3ph (kVA)"] = np.abs(total)
    table["S_sum_3ph (kVA)"] = np.abs(p).sum(axis=1)
    return pd.DataFrame(table)[HEAD_COLUMNS]


def voltage_violations(v_pu: np.ndarray, node_customer: np.ndarray, band: tuple[float, float]) -> dict[str, int]:
    """Node-intervals below and above ``band`` and customers affected, at customer nodes.

    ``v_pu``: (steps, nodes) voltages of the customers' service nodes; ``node_customer``: the
    customer index of each node; de-energised nodes (below ``config.ENERGISED_PU``) are not counted.
    """
    energised = v_pu > ENERGISED_PU
    low = energised & (v_pu < band[0])
    high = energised & (v_pu > band[1])
    any_node = (low | high).any(axis=0)
    return {"under_node_intervals": int(low.sum()), "over_node_intervals": int(high.sum()),
            "node_intervals": int((low | high).sum()),
            "customers_affected": int(len(np.unique(node_customer[any_node]))) if any_node.any() else 0}


#: the Fortescue operator a = 1 at 120 degrees
_A = np.exp(2j * np.pi / 3)


def voltage_unbalance_factor_pct(v_abc: np.ndarray) -> np.ndarray:
    """The voltage unbalance factor VUF = 100 |V2| / |V1| [%] of three phase phasors ``v_abc`` (..., 3),
    complex, in phase order a, b, c (nodes 1, 2, 3; b lagging a by 120 degrees in a positive-sequence
    supply): V1 = (Va + a Vb + a^2 Vc) / 3, V2 = (Va + a^2 Vb + a Vc) / 3 (Fortescue). Phase-to-neutral and
    phase-to-phase phasors give the same VUF (the difference only removes the zero sequence). A bus whose
    nodes carry the phases in the other rotation (c lagging a: nodes rolled 1-3-2) has its sequences
    swapped, so the ratio is taken as the smaller of |V1|, |V2| over the larger (the same VUF for either
    rotation, never above 100 %); 0 where both are 0. This is the "true" definition of IEC 61000-4-30 and IEEE 1159; ANSI C84.1 Annex D (at most 3 % at
    the service) states its limit on the phase-to-phase voltages' largest deviation from their average,
    which for small unbalance is 0.87-1 times VUF."""
    v = np.asarray(v_abc, dtype=complex)
    v1 = np.abs(v[..., 0] + _A * v[..., 1] + _A * _A * v[..., 2])
    v2 = np.abs(v[..., 0] + _A * _A * v[..., 1] + _A * v[..., 2])
    low, high = np.minimum(v1, v2), np.maximum(v1, v2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(high > 0, 100.0 * low / high, 0.0)


def voltage_unbalance_metrics(vuf_pct: np.ndarray, planning_pct: float, limit_pct: float) -> dict[str, Any]:
    """Highest VUF [%] and bus-intervals above ``planning_pct`` and ``limit_pct``, from (steps, buses) VUF of
    the three-phase buses, NaN where a bus is not energised (not counted). The maximum is None without any
    energised three-phase bus."""
    v = np.asarray(vuf_pct, dtype=float)
    counted = np.isfinite(v)
    v = np.where(counted, v, -np.inf)
    return {"vuf_max_pct": float(v.max()) if counted.any() else None,
            "vuf_over_planning_bus_intervals": int((v > planning_pct).sum()),
            "vuf_over_limit_bus_intervals": int((v > limit_pct).sum())}


def current_unbalance_pct(amps: np.ndarray) -> np.ndarray:
    """Phase current unbalance [%] of (steps, 3) phase current magnitudes, NEMA MG 1 definition: 100 x the
    largest deviation of a phase current from the mean of the three, over that mean. NaN where the mean is
    0 (no current: undefined)."""
    i = np.asarray(amps, dtype=float)
    mean = i.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mean > 0, 100.0 * np.abs(i - mean[:, None]).max(axis=1) / mean, np.nan)


def customer_intervals_above(v_pu: np.ndarray, node_customer: np.ndarray, limit_pu: float) -> int:
    """Customer-intervals [count] with any energised service node above ``limit_pu``: each customer counts
    once per interval, however many of its nodes are above. ``v_pu``: (steps, nodes) voltages of the
    customers' service nodes; ``node_customer``: the customer index of each node."""
    v = np.asarray(v_pu, dtype=float)
    if v.size == 0:
        return 0
    high = (v > ENERGISED_PU) & (v > limit_pu)
    customers, inverse = np.unique(np.asarray(node_customer), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(customers)))
    return int(np.logical_or.reduceat(high[:, order], starts, axis=1).sum())


def max_consecutive_below(v_pu: np.ndarray, node_customer: np.ndarray, limit_pu: float, periodic: bool = True) -> int:
    """The longest run of consecutive intervals [count] any customer spends below ``limit_pu``.

    ``v_pu``: (steps, nodes) voltages of the customers' service nodes; ``node_customer``: the customer
    index of each node. A customer is below in an interval when any of its energised nodes (above
    ``config.ENERGISED_PU``) is. ``periodic``: the day wraps around (a run at the end of the day goes
    on at its start); the result is then at most ``steps``.
    """
    v = np.asarray(v_pu, dtype=float)
    if v.size == 0:
        return 0
    low = (v > ENERGISED_PU) & (v < limit_pu)
    customers, inverse = np.unique(np.asarray(node_customer), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(customers)))
    below = np.logical_or.reduceat(low[:, order], starts, axis=1)  # (steps, customers)
    if periodic:
        below = np.concatenate([below, below], axis=0)
    run = np.zeros(below.shape[1], dtype=int)
    longest = 0
    for row in below:
        run = np.where(row, run + 1, 0)
        longest = max(longest, int(run.max()))
    return min(longest, len(v))


def moving_average_circular(x: np.ndarray, window: int) -> np.ndarray:
    """Moving average over ``window`` intervals ending at each interval, on a periodic day."""
    x = np.asarray(x, dtype=float)
    if window <= 1:
        return x
    padded = np.concatenate([x[-(window - 1):], x], axis=0)
    c = np.cumsum(padded, axis=0)
    c = np.concatenate([np.zeros((1,) + x.shape[1:]), c], axis=0)
    return (c[window:] - c[:-window]) / window


def loading_metrics(pct: np.ndarray, names: list[str], window_h: float, threshold_pct: float,
                    overload_pct: float, emergency_pct: float | None = None) -> dict[str, Any]:
    """Worst loading and overload counts of a group of elements, ``pct``: (steps, elements) [%].

    Element-intervals above ``overload_pct`` (instantaneous), whose circular moving average over
    ``window_h`` is above ``threshold_pct`` (``ma_overload_intervals``) and, when ``emergency_pct`` is
    given, above that emergency limit (instantaneous: ``emergency_intervals``)."""
    if pct.size == 0:
        empty = {"worst_pct": 0.0, "worst_element": "", "overloaded_intervals": 0, "overloaded_elements": 0,
                 "ma_overload_intervals": 0}
        return empty if emergency_pct is None else {**empty, "emergency_intervals": 0}
    pct = np.where(np.isfinite(pct), pct, 0.0)  # an element with no rating is not loaded against one
    worst = np.unravel_index(int(np.argmax(pct)), pct.shape)
    ma = moving_average_circular(pct, int(round(window_h / DT_H)))
    out = {"worst_pct": float(pct[worst]), "worst_element": names[worst[1]],
           "overloaded_intervals": int((pct > overload_pct).sum()),
           "overloaded_elements": int((pct > overload_pct).any(axis=0).sum()),
           "ma_overload_intervals": int((ma > threshold_pct).sum())}
    if emergency_pct is not None:
        out["emergency_intervals"] = int((pct > emergency_pct).sum())
    return out


def nonfinite_steps(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Steps (0-based) at which a solution array holds NaN or inf, per array name (empty ones left out).

    A diverged Newton or fixed-point iteration leaves non-finite voltages and powers behind even where
    the engine reports convergence; such a day is not a result."""
    bad = {}
    for name, values in arrays.items():
        values = np.asarray(values)
        if values.size == 0:
            continue
        finite = np.isfinite(values).reshape(len(values), -1).all(axis=1)
        if not finite.all():
            bad[name] = np.nonzero(~finite)[0]
    return bad


def constant_power_factor(v_pu: np.ndarray, vminpu: float = EV_VMIN_PU, vlowpu: float = EV_VLOW_PU) -> np.ndarray:
    """Power a constant-power load (OpenDSS load model 1) draws, per unit of its setting, at ``v_pu``.

    OpenDSS (``Load.pas``, ``DoConstantPQLoad``): above ``vminpu`` the power is constant; between
    ``vlowpu`` and ``vminpu`` the current is interpolated linearly in the voltage magnitude between
    the constant-impedance current at ``vlowpu`` and the constant-power current at ``vminpu``
    (``I = I_low + M95 (V - V_low)``); below ``vlowpu`` the load is the constant impedance of its
    nominal rating (``I = Y_eq V``). Per unit: ``p = v i`` with those currents.
    """
    v = np.clip(np.asarray(v_pu, dtype=float), 0.0, None)
    slope = (1.0 / vminpu - vlowpu) / (vminpu - vlowpu)
    between = v * (vlowpu + slope * (v - vlowpu))
    return np.where(v > vminpu, 1.0, np.where(v > vlowpu, between, v * v))


def ev_delivery(scheduled_kw: np.ndarray, v_pu: np.ndarray) -> np.ndarray:
    """Power [kW] a constant-power charger draws at its voltage: its schedule where the voltage is
    above ``vminpu``, less below (:func:`constant_power_factor`). ``v_pu``: (steps,) the voltage
    across the charger, or (steps, phases) per phase of a three-phase one (the phases' powers add)."""
    v = np.asarray(v_pu, dtype=float)
    factor = constant_power_factor(v) if v.ndim == 1 else constant_power_factor(v).mean(axis=1)
    return scheduled_kw * factor


def charger_voltage_pu(v_nodes_pu: np.ndarray) -> np.ndarray:
    """The per-unit voltage across a charger from its nodes' voltages (steps, nodes): one node (a
    Level-1 charger, line to neutral) is that node; two nodes (a Level-2 charger across the two
    120 V legs of a split-phase service, 180 degrees apart) is their mean, the line-to-line voltage
    in pu of 240 V; three nodes (a three-phase charger) are kept per phase."""
    v = np.asarray(v_nodes_pu, dtype=float)
    if v.shape[1] == 1:
        return v[:, 0]
    if v.shape[1] == 2:
        return v.mean(axis=1)
    return v


#: what :func:`peak_without_storage` allows the losses to grow by, per kVA of battery discharge taken away, when it
#: leaves an interval unsolved: 1 kW per kVA, a marginal loss factor of 100 % (a distribution feeder's is a few per
#: cent, and tens of per cent only near voltage collapse). A solved interval whose losses grew by more than half of
#: it makes every active interval solved.
LOSS_MARGIN = 1.0
#: an interval is left unsolved only if every fuse's current bound without the batteries stays below this share of
#: the lowest current its time-current curve operates at (:func:`fuse_must_solve`)
FUSE_MARGIN = 0.9
#: the bounds are drawn only on a circuit whose loads all turn to constant impedance at this voltage [pu] or above
#: (their ``vminpu``; SMART-DS customers 0.8, EV chargers 0.85): a load held at constant power to a lower voltage
#: lets a sagging feeder near voltage collapse, where the losses a battery saves have no useful bound
BOUND_MIN_VMINPU = 0.8


def peak_without_storage(p_kw: np.ndarray, storage_kw: np.ndarray, solve_without, every_active: bool = False,
                         discharge_kva: np.ndarray | None = None, must_solve: np.ndarray | None = None) -> float:
    """The feeder-head peak of the same day with the batteries disabled.

    Valid when the steps of the day are independent (no regulator, capacitor or other stateful
    control; a circuit with such controls is re-solved for the whole day instead,
    :func:`full_day_peak_without_storage`). Then idle intervals are the same with or without
    batteries. ``storage_kw`` classifies each interval (+ where a battery discharges, - where some charge and
    none discharges, 0 idle). ``solve_without(k)`` [kW] solves interval ``k`` without the batteries.

    Without ``discharge_kva`` every interval where the fleet discharges is re-solved; where it charges, the
    head power without it is at most the power with it (a load removed), so only charging intervals whose
    power with it still tops the best value so far are re-solved, highest first; no bound on the losses a
    battery saves is assumed. With ``every_active`` every interval where a battery charges or discharges is
    re-solved (a circuit with relays or reclosers: ``solve_without`` checks after each that none operated, so
    the idle intervals keep the same protective state as with the batteries).

    With ``discharge_kva`` (per interval, the apparent power of the batteries that discharge in it [kVA]), an
    active interval is solved only while its bound ``p_kw + (1 + LOSS_MARGIN) discharge_kva`` tops the best
    value so far, highest bound first: without the batteries the head takes what the discharging ones gave and
    the losses that adds (at most :data:`LOSS_MARGIN` of it), and less where others charged (a load removed).
    ``must_solve`` (bool per interval) marks intervals solved whatever their bound (where a fuse could operate
    without the batteries: :func:`fuse_must_solve`). Should a solved interval's head power without the
    batteries exceed the power with them by more than ``(1 + LOSS_MARGIN / 2) discharge_kva`` (plus 0.1 % of
    the head power: the power flow's convergence), the bound is not trusted and every active interval is solved
    (a check that sees only what the solved intervals show: where other batteries charge in the same interval,
    the charge taken away hides part of the losses).
    """
    p_kw = np.asarray(p_kw, dtype=float)
    storage_kw = np.asarray(storage_kw, dtype=float)
    idle = np.abs(storage_kw) <= 1e-6
    best = float(p_kw[idle].max()) if idle.any() else -np.inf
    charging = storage_kw < -1e-6
    if every_active:
        for k in np.nonzero(~idle)[0]:
            best = max(best, float(solve_without(int(k))))
        return best
    if discharge_kva is not None:
        d = np.asarray(discharge_kva, dtype=float)
        must = (np.zeros(len(p_kw), dtype=bool) if must_solve is None else np.asarray(must_solve, dtype=bool)) & ~idle
        trusted = True
        bound = p_kw + (1.0 + LOSS_MARGIN) * d
        order = np.concatenate([np.nonzero(must)[0],
                                [k for k in np.argsort(-bound, kind="stable") if not idle[k] and not must[k]]])
        for k in order.astype(int):
            if trusted and not must[k] and bound[k] <= best:
                break  # the bounds are in decreasing order from here: no interval left can top the best
            value = float(solve_without(int(k)))
            best = max(best, value)
            if value - p_kw[k] > (1.0 + LOSS_MARGIN / 2) * d[k] + 1e-3 * abs(p_kw[k]):
                trusted = False
        return best
    for k in np.nonzero(storage_kw > 1e-6)[0]:
        best = max(best, float(solve_without(int(k))))
    if charging.any() and p_kw[charging].max() > best:
        # charging intervals are lower without the batteries: re-solve those that could still top the peak
        for k in np.nonzero(charging)[0][np.argsort(-p_kw[charging], kind="stable")]:
            if p_kw[k] <= best:
                break
            best = max(best, float(solve_without(int(k))))
    return best


def _bus_tree(engine: Any) -> tuple[dict[str, str], dict[str, tuple[int, int]]] | None:
    """The feeder's buses as a tree from the source: each bus's parent bus and its (entry, exit) order of a
    depth-first walk (bus b is downstream of bus a when a's span holds b's). Edges join the buses of each enabled
    power-delivery element's closed terminals (parallel elements between two buses are one edge). None when the
    buses are not a tree (a loop: a current could reach a bus two ways), or when another source could feed a bus
    (a second Vsource, an enabled Generator or ISource)."""
    for cls in ("vsource", "generator", "isource"):
        engine.Circuit.SetActiveClass(cls)
        names = [n.lower() for n in engine.ActiveClass.AllNames()] if engine.ActiveClass.Count() else []
        for name in names:
            engine.Circuit.SetActiveElement(f"{cls}.{name}")
            if engine.CktElement.Enabled() and not (cls == "vsource" and name == "source"):
                return None
    adjacency: dict[str, set[str]] = {}
    if engine.PDElements.First():
        while True:
            element = engine.CktElement
            if element.Enabled():
                phases = max(1, int(element.NumPhases()))
                # a terminal joins its bus unless every phase conductor of it is open
                buses = [bus_name_of(b) for t, b in enumerate(element.BusNames())
                         if not all(element.IsOpen(t + 1, c) for c in range(1, phases + 1))]
                for other in buses[1:]:
                    if other != buses[0]:
                        adjacency.setdefault(buses[0], set()).add(other)
                        adjacency.setdefault(other, set()).add(buses[0])
            if not engine.PDElements.Next():
                break
    engine.Circuit.SetActiveElement("Vsource.source")
    root = bus_name_of(engine.CktElement.BusNames()[0])
    parent, span, clock = {root: ""}, {}, 0
    stack = [(root, iter(sorted(adjacency.get(root, ()))))]
    span[root] = (clock, -1)
    while stack:
        bus, neighbours = stack[-1]
        child = next(neighbours, None)
        if child is None:
            clock += 1
            span[bus] = (span[bus][0], clock)
            stack.pop()
            continue
        if child == parent[bus]:
            continue
        if child in parent:
            return None  # reached again: a loop
        parent[child] = bus
        clock += 1
        span[child] = (clock, -1)
        stack.append((child, iter(sorted(adjacency.get(child, ())))))
    return parent, span


def bus_name_of(bus: str) -> str:
    return dss.bus_name(bus).lower()


def fuse_must_solve(engine: Any, circuit: "_Circuit", day: Day) -> np.ndarray | None:
    """The intervals where a fuse could operate if the batteries were taken away (bool per interval), so that
    :func:`peak_without_storage` solves them whatever their head-power bound; None when no bound can be drawn
    (every active interval is then solved).

    A fuse operates only at a current above its rated current times the lowest multiple of its time-current
    curve (OpenDSS reads the phase currents at terminal 1 of the element it monitors). Without the batteries its
    current is at most its current with them plus the current of every active battery downstream of it (a
    discharging one's power now drawn through it, a charging one's no longer drawn from the PV below it when
    that exports through the fuse), taken whole at the fuse's lowest conductor voltage to ground and with their
    losses (:data:`LOSS_MARGIN`), and the whole scaled by ``max(1, V / vmin)`` (``V`` the fuse's highest
    conductor voltage with the batteries [pu], ``vmin`` the lowest load ``vminpu``): a constant-power load draws
    more current as the voltage sags, at most in that ratio before it turns to constant impedance, whichever
    battery upstream was taken away. An interval is safe when every fuse's bound stays below
    :data:`FUSE_MARGIN` of that current. None when a fuse monitors anything but a line, its curve cannot be
    read, or the buses are not a tree (:func:`_bus_tree`)."""
    tree = circuit.tree_cache.get("tree", False)
    if tree is False:
        tree = circuit.tree_cache["tree"] = _bus_tree(engine)
    if tree is None:
        return None
    parent, span = tree
    line_of = {name.lower(): i for i, name in enumerate(circuit.line_names)}
    fuses = []
    api = engine.Fuses
    if api.First():
        while True:
            monitored = api.MonitoredObj().lower()
            if monitored not in line_of:
                return None
            try:
                engine.Text.Command(f"? TCC_Curve.{api.TCCCurve()}.C_array")
                multiples = [float(x) for x in engine.Text.Result().strip("[] ").replace(",", " ").split()]
            except (dss.opendssdirect.DSSException, ValueError):
                return None
            if not multiples or not api.RatedCurrent() > 0:
                return None
            fuses.append((line_of[monitored], float(api.RatedCurrent()) * min(multiples)))
            if not api.Next():
                break
    if not fuses:
        return np.zeros(STEPS, dtype=bool)
    vmin_pu = lowest_vminpu(engine, circuit)
    battery_span = []
    for element in circuit.storage:
        engine.Circuit.SetActiveElement(element)
        battery_span.append(span.get(bus_name_of(engine.CktElement.BusNames()[0]), (-1, -1))[0])
    battery_span = np.array(battery_span, dtype=float)
    base_v = circuit.base_v
    must = np.zeros(STEPS, dtype=bool)
    for line, threshold_a in fuses:
        seg = circuit.line_segments[line]
        stop = circuit.line_segments[line + 1] if line + 1 < len(circuit.line_segments) else len(circuit.line_nodes)
        nodes = circuit.line_nodes[seg:stop]
        nodes = nodes[nodes >= 0]
        engine.Circuit.SetActiveElement(circuit.line_names[line])
        a, b = (bus_name_of(x) for x in engine.CktElement.BusNames()[:2])
        child = a if parent.get(a) == b else b if parent.get(b) == a else None
        if child is None:  # the fuse's line is not on the tree (isolated, or open): no battery can feed it
            below = np.zeros(len(battery_span), dtype=bool)
        else:
            start, end = span[child]
            below = (battery_span >= start) & (battery_span <= end)
        volts = (day.v[:, nodes].astype(float) * base_v[nodes]).min(axis=1) if len(nodes) else np.zeros(STEPS)
        sag = np.maximum(1.0, day.v[:, nodes].max(axis=1) / vmin_pu) if len(nodes) else np.ones(STEPS)
        active_kva = day.active_kva[:, below].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            extra_a = np.where(volts > 1.0, 1000.0 * (1.0 + LOSS_MARGIN) * active_kva / volts,
                               np.where(active_kva > 0, np.inf, 0.0))
        must |= (day.line_amps[:, line] + extra_a) * sag >= FUSE_MARGIN * threshold_a
    return must


def lowest_vminpu(engine: Any, circuit: "_Circuit") -> float:
    """The lowest ``vminpu`` of the circuit's loads, enabled or not (the voltage [pu] below which each turns to
    constant impedance), read once per compiled feeder; 1.0 without loads."""
    low = circuit.tree_cache.get("vminpu")
    if low is None:
        low, loads = 1.0, engine.Loads
        if loads.First():
            while True:
                low = min(low, float(loads.Vminpu()))
                if not loads.Next():
                    break
        circuit.tree_cache["vminpu"] = low
    return low


def full_day_peak_without_storage(engine: Any, master: Path, circuit: "_Circuit", deadline: float | None,
                                  restart: Any = None) -> float:
    """The feeder-head peak [kW] of the same day with the batteries disabled, on a circuit with stateful
    controls (regulators, capacitors...): compiled again (or, on a cached feeder, its controls put back in
    their compiled state by ``restart()``), so that every control starts from the same state as the run
    with storage, and solved for the whole day."""
    if restart is None:
        dss.compile_master(master, strip=False, dss=engine)
    else:
        restart()
    engine.Text.Command("BatchEdit Storage..* enabled=no")
    head = np.zeros(STEPS)

    def read(k: int) -> None:
        head[k] = float(circuit.head_phase_powers().real.sum())

    converged = dss.solve_daily(read, dss=engine, deadline=deadline, warnings=[])
    if not converged.all():
        raise DivergedSolution(f"the day without storage did not converge at {int((~converged).sum())} steps: the "
                               "storage peak reduction cannot be measured")
    return float(head.max())


class ProtectionOperated(RuntimeError):
    """A fuse, relay or recloser operated in an interval solved without the batteries."""


def _solve_without(engine: Any, circuit: "_Circuit", k: int, protection: bool = False) -> float:
    if not getattr(circuit, "storage_disabled", False):
        engine.Text.Command("BatchEdit Storage..* enabled=no")
        circuit.storage_disabled = True
    if not dss.solve_interval(k, dss=engine):
        raise DivergedSolution(f"step {k + 1} without storage did not converge: the storage peak reduction cannot be "
                               "measured")
    if protection:
        operated = dss.protection_operated(engine)
        if operated:
            raise ProtectionOperated(f"{operated[0]} operated at step {k + 1} without the batteries")
    return float(circuit.head_phase_powers().real.sum())


# ------------------------------------------------------------------------------------------- circuit
@dataclass(frozen=True)
class TransformerWindings:
    """What :func:`transformer_columns` needs of one transformer: phases, its windings' kVA ratings and the
    bus (without nodes) of each winding, and the number of conductors per terminal (phases + 1)."""

    phases: int
    kva: tuple[float, ...]
    buses: tuple[str, ...]
    conductors: int
    kv: tuple[float, ...] = ()  # each winding's rated kV

    @property
    def service(self) -> bool:
        """A service transformer: its last winding at a utilization voltage (``SERVICE_TRANSFORMER_MAX_KV``)."""
        return bool(self.kv) and self.kv[-1] <= config.SERVICE_TRANSFORMER_MAX_KV

    @property
    def centre_tap(self) -> bool:
        """A split-phase centre-tap service transformer (SMART-DS): one phase, three windings, windings 2
        and 3 the two 120 V halves of the secondary, on the same bus."""
        return self.phases == 1 and len(self.kva) == 3 and self.buses[1] == self.buses[2]


def transformer_columns(t: TransformerWindings) -> list[tuple[list[int], float]]:
    """The loadings a transformer is checked on, as (conductors of its terminals to sum, rating [kVA]);
    conductor ``c`` of winding ``w`` (1-based) is ``(w - 1) * t.conductors + c``. The first is always the
    total: winding 1, every conductor, against winding 1's kVA. A single-phase transformer adds each other
    winding (the terminal's conductors summed: its power whatever the reference) against its kVA, except the
    two legs of a centre-tap transformer, each against half of winding 1's kVA (a 120 V leg carries half
    the rating at full load). A multi-phase transformer adds each phase conductor of each winding (its |S|
    to ground) against the winding's kVA / phases. The transformer's loading is the highest of these."""
    columns = [(list(range(t.conductors)), t.kva[0])]
    for w in range(1, len(t.kva) + 1):
        first = (w - 1) * t.conductors
        if t.phases == 1:
            if w > 1:
                rating = t.kva[0] / 2 if t.centre_tap else t.kva[w - 1]
                columns.append((list(range(first, first + t.conductors)), rating))
        else:
            columns.extend(([first + c], t.kva[w - 1] / t.phases) for c in range(t.phases))
    return columns


class _Circuit:
    """Index arrays of one compiled instance for the whole-array reads.

    Each step reads two arrays: the solution's complex node voltages (``YNodeVArray``, in
    ``YNodeOrder``) and every power-delivery element's terminal powers (``PDElements.AllPowers``).
    From them: node voltages in pu (by each node's base, learnt once), the voltage unbalance factor of
    every three-phase bus, transformer loadings per winding, phase and leg (:func:`transformer_columns`),
    line currents |S| / |V| of each terminal-1 conductor, and losses (the sum of every PD element's
    terminal powers).
    """

    def __init__(self, engine: Any, assignments: dict[str, Any]):
        self.engine = engine
        self._read_feeder(engine)
        self._feeder_keys = tuple(self.__dict__)
        self._read_case(assignments)

    def for_case(self, assignments: dict[str, Any]) -> "_Circuit":
        """The index arrays for another case on the same compiled feeder (``feeder_cache``): the feeder's
        arrays shared, read-only; the node bases as read after the compile; the case's own parts (EV nodes,
        batteries, arrays, customers) and what a day learns (NormAmps) fresh."""
        other = object.__new__(_Circuit)
        other.__dict__.update({key: self.__dict__[key] for key in self._feeder_keys})
        other.base_v = self._compiled_base_v.copy()
        other._read_case(assignments)
        return other

    def _read_feeder(self, engine: Any) -> None:
        """What depends only on the compiled feeder: node order and bases, PD element layout, transformer
        columns, three-phase buses, line conductors."""
        y_names = [n.lower() for n in engine.Circuit.YNodeOrder()]
        self.node_index = {name: i for i, name in enumerate(y_names)}
        self.n_nodes = len(y_names)
        # base voltage [V] of each node, in YNodeOrder
        bus_names = [n.lower() for n in engine.Circuit.AllNodeNames()]
        vmag = np.asarray(engine.Circuit.AllBusVMag(), dtype=float)
        vpu = np.asarray(engine.Circuit.AllBusMagPu(), dtype=float)
        self.base_v = np.full(self.n_nodes, np.nan)
        for name, magnitude, pu in zip(bus_names, vmag, vpu):
            if pu > 0 and name in self.node_index:
                self.base_v[self.node_index[name]] = magnitude / pu
        self._bases_pending = bool(np.isnan(self.base_v).any())  # nodes not solved yet (a first solve sets every base)
        self._compiled_base_v = self.base_v.copy()
        layout = dss.pd_layout(engine)
        self.layout = layout
        self.line_idx = np.nonzero(layout.is_line)[0]
        self.line_names = [layout.names[i] for i in self.line_idx]
        self.xf_idx = np.nonzero(layout.is_transformer)[0]
        self.xf_names = [layout.names[i] for i in self.xf_idx]
        windings = {}
        if engine.Transformers.First():
            while True:
                kva, kv = [], []
                for w in range(1, engine.Transformers.NumWindings() + 1):
                    engine.Transformers.Wdg(w)
                    kva.append(float(engine.Transformers.kVA()))
                    kv.append(float(engine.Transformers.kV()))
                windings[f"transformer.{engine.Transformers.Name().lower()}"] = TransformerWindings(
                    phases=int(engine.CktElement.NumPhases()), kva=tuple(kva),
                    buses=tuple(dss.bus_name(b).lower() for b in engine.CktElement.BusNames()),
                    conductors=int(engine.CktElement.NumConductors()), kv=tuple(kv))
                if not engine.Transformers.Next():
                    break
        # transformer loading columns: conductors summed (xf_col_conductors, segments xf_col_segments), each
        # against its rating xf_col_kva; an element's columns start at xf_element_columns
        conductors, col_seg, col_kva, element_cols = [], [], [], []
        for i, name in zip(self.xf_idx, self.xf_names):
            element_cols.append(len(col_seg))
            for cols, rating in transformer_columns(windings[name.lower()]):
                col_seg.append(len(conductors))
                conductors.extend(int(layout.start[i]) + c for c in cols)
                col_kva.append(rating)
        self.xf_col_conductors = np.array(conductors, dtype=int)
        self.xf_col_segments = np.array(col_seg, dtype=int)
        self.xf_col_kva = np.array(col_kva, dtype=float)
        self.xf_element_columns = np.array(element_cols, dtype=int)
        self.n_centre_tap = sum(windings[n.lower()].centre_tap for n in self.xf_names)
        # service transformers: the conductors of winding 1 (their active powers summed: the power into the
        # transformer from the primary; negative = reverse flow)
        svc_conductors, svc_seg = [], []
        for i, name in zip(self.xf_idx, self.xf_names):
            t = windings[name.lower()]
            if t.service:
                svc_seg.append(len(svc_conductors))
                svc_conductors.extend(int(layout.start[i]) + c for c in range(t.conductors))
        self.svc_conductors = np.array(svc_conductors, dtype=int)
        self.svc_segments = np.array(svc_seg, dtype=int)
        # three-phase buses: YNodeOrder indices of nodes 1, 2, 3 (buses in order of first appearance)
        bus_nodes: dict[str, dict[int, int]] = {}
        for i, name in enumerate(y_names):
            bus, _, node = name.rpartition(".")
            if node.isdigit():
                bus_nodes.setdefault(bus, {})[int(node)] = i
        self.bus3 = np.array([[nodes[1], nodes[2], nodes[3]] for nodes in bus_nodes.values()
                              if all(n in nodes for n in (1, 2, 3))], dtype=int).reshape(-1, 3)
        # terminal-1 conductors of lines, with their node (for |I| = |S| / |V|)
        wanted = set(self.line_idx.tolist())
        conductor_node = np.full(int(layout.start[-1] + layout.n_terminals[-1] * layout.n_conductors[-1])
                                 if len(layout.names) else 0, -1, dtype=int)
        if engine.PDElements.First():
            i = 0
            while True:
                if i in wanted:
                    bus = dss.bus_name(engine.CktElement.BusNames()[0]).lower()
                    order = engine.CktElement.NodeOrder()[: layout.n_conductors[i]]
                    for c, node in enumerate(order):
                        if node > 0:
                            conductor_node[layout.start[i] + c] = self.node_index.get(f"{bus}.{int(node)}", -1)
                i += 1
                if not engine.PDElements.Next():
                    break
        idx, seg, nodes = [], [], []
        for i in self.line_idx:
            seg.append(len(idx))
            for c in range(layout.start[i], layout.start[i] + layout.n_conductors[i]):
                idx.append(c)
                nodes.append(conductor_node[c])
        self.line_terminal = np.array(idx, dtype=int)
        self.line_segments = np.array(seg, dtype=int)
        self.line_nodes = np.array(nodes, dtype=int)
        self.tree_cache: dict[str, Any] = {}  # the feeder's bus tree, made when a day needs it (fuse_must_solve)

    def _read_case(self, assignments: dict[str, Any]) -> None:
        """What the case's assignments name: rated lines, customers' and EVs' nodes, the head element,
        batteries and arrays."""
        engine = self.engine
        self.line_amps = np.full(len(self.line_idx), np.nan)  # NormAmps, learnt at the first step
        unrated = {name.lower() for name in assignments.get("unrated_lines", [])}
        self.line_rated = np.array([name.lower() not in unrated for name in self.line_names], dtype=bool)
        self.n_unrated = int((~self.line_rated).sum())
        # customer service nodes and EV nodes, as the instance names them
        customer_nodes, node_customer = [], []
        for i, (_, cnodes) in enumerate(assignments["service_nodes"]):
            for node in cnodes:
                if node.lower() in self.node_index:
                    customer_nodes.append(self.node_index[node.lower()])
                    node_customer.append(i)
        self.customer_nodes = np.array(customer_nodes, dtype=int)
        self.node_customer = np.array(node_customer, dtype=int)
        self.n_customers = len(assignments["service_nodes"])
        self.ev_nodes = {ev["element"].split(".", 1)[1].lower(): [self.node_index[n.lower()] for n in ev["nodes"]
                                                                   if n.lower() in self.node_index]
                         for ev in assignments["hosts"]["ev"]}
        self.head = assignments["head_element"]
        self.head_sign = float(assignments.get("head_sign", 1.0))
        engine.Circuit.SetActiveElement(self.head)
        self.head_phases = int(engine.CktElement.NumPhases())
        # every battery (three-phase fleet and home batteries) and every array (three-phase and rooftop)
        hosts = assignments["hosts"]
        self.storage_hosts = hosts["storage"] + hosts.get("storage_res", [])  # an older instance has none
        self.storage = [s["element"] for s in self.storage_hosts]
        self.pv = [p["element"] for p in hosts["pv"] + hosts.get("pv_res", [])]
        self.storage_names = [e.split(".", 1)[1] for e in self.storage]
        # arrays and batteries read in one engine call per step
        self.device_batch = dss.ElementBatch(self.pv + self.storage, dss=engine)
        # every battery's live state of charge (Storage ``%stored``) in one engine call per step
        self.storage_batch = dss.ElementBatch(self.storage, dss=engine)
        self.soc_property = dss.property_index(engine, self.storage[0], "%stored") if self.storage else 0

    def learn_bases(self) -> None:
        """Node bases from the engine after a solve (nodes the initial read could not see)."""
        names = [n.lower() for n in self.engine.Circuit.AllNodeNames()]
        vmag = np.asarray(self.engine.Circuit.AllBusVMag(), dtype=float)
        vpu = np.asarray(self.engine.Circuit.AllBusMagPu(), dtype=float)
        for name, magnitude, pu in zip(names, vmag, vpu):
            i = self.node_index.get(name)
            if i is not None and np.isnan(self.base_v[i]) and pu > 0:
                self.base_v[i] = magnitude / pu

    def element_power_kw(self, element: str) -> float:
        self.engine.Circuit.SetActiveElement(element)
        powers = np.asarray(self.engine.CktElement.Powers(), dtype=float)
        n = self.engine.CktElement.NumConductors()
        return float(powers[0:2 * n:2].sum())

    def head_phase_powers(self) -> np.ndarray:
        self.engine.Circuit.SetActiveElement(self.head)
        powers = dss.complex_array(self.engine.CktElement.Powers())
        phases = self.engine.CktElement.NumPhases()
        return self.head_sign * powers[:min(3, phases)]

    def head_phase_amps(self) -> np.ndarray:
        """Current magnitudes [A] of the head element's terminal-1 phase conductors (at most 3)."""
        self.engine.Circuit.SetActiveElement(self.head)
        phases = self.engine.CktElement.NumPhases()
        return np.asarray(self.engine.CktElement.CurrentsMagAng(), dtype=float)[0:2 * min(3, phases):2]


# ------------------------------------------------------------------------------------------- simulate
class DivergedSolution(RuntimeError):
    """A day whose solution holds NaN or inf (a diverged power flow): a failed run, never a result."""


@dataclass
class Day:
    """The arrays one solved day leaves, read at every step (see :func:`solve_day`)."""

    v: np.ndarray            # (96, nodes) node voltages [pu], YNodeOrder
    line_pct: np.ndarray     # (96, lines) loading [% of NormAmps]; NaN where a line has no rating
    xf_pct: np.ndarray       # (96, transformers) loading [%]: the highest of total, winding, phase, leg
    head: np.ndarray         # (96, 3) feeder-head phase powers [kVA], complex
    head_amps: np.ndarray    # (96, head phases) feeder-head phase currents [A]
    vuf_pct: np.ndarray      # (96, three-phase buses) |V2| / |V1| [%], NaN where a bus is not energised
    losses_kw: np.ndarray    # (96,)
    storage_kw: np.ndarray   # (96,) fleet output, + discharging
    storage_soc: np.ndarray  # (96,) fleet state of charge [-], NaN without storage
    storage_mode: np.ndarray  # (96,) +1 where any battery discharges, -1 where some charge and none discharges
    pv_kw: np.ndarray        # (96,)
    converged: np.ndarray    # (96,) bool
    warnings: list = None    # (step, message) of control-iteration warnings at converged steps
    svc_p_kw: np.ndarray = None  # (96, service transformers) active power into winding 1 [kW]
    line_amps: np.ndarray = None  # (96, lines) the highest current of each line's phase conductors [A]
    discharge_kva: np.ndarray = None  # (96, batteries) apparent power of each battery where it discharges [kVA]
    active_kva: np.ndarray = None  # (96, batteries) apparent power of each battery where it charges or discharges


def solve_day(engine: Any, circuit: _Circuit, assignments: dict[str, Any], deadline: float | None) -> Day:
    """Solve the compiled instance's 96 steps, reading whole arrays at each; raise DivergedSolution when
    any solution array is non-finite (:func:`nonfinite_steps`)."""
    day = Day(v=np.zeros((STEPS, circuit.n_nodes), dtype=np.float32),
              line_pct=np.zeros((STEPS, len(circuit.line_idx)), dtype=np.float32),
              xf_pct=np.zeros((STEPS, len(circuit.xf_idx)), dtype=np.float32),
              head=np.zeros((STEPS, 3), dtype=complex), head_amps=np.zeros((STEPS, 3)),
              vuf_pct=np.zeros((STEPS, len(circuit.bus3)), dtype=np.float32),
              losses_kw=np.zeros(STEPS), storage_kw=np.zeros(STEPS),
              storage_soc=np.full(STEPS, np.nan), storage_mode=np.zeros(STEPS), pv_kw=np.zeros(STEPS),
              converged=np.zeros(STEPS, dtype=bool), svc_p_kw=np.zeros((STEPS, len(circuit.svc_segments))),
              line_amps=np.zeros((STEPS, len(circuit.line_idx)), dtype=np.float32),
              discharge_kva=np.zeros((STEPS, len(circuit.storage)), dtype=np.float32),
              active_kva=np.zeros((STEPS, len(circuit.storage)), dtype=np.float32))
    sto_kwh_rated = np.array([s["kwh"] for s in circuit.storage_hosts], dtype=float)

    def read(k: int) -> None:
        if k == 0 and getattr(circuit, "_bases_pending", False):
            circuit.learn_bases()
        phasors = dss.complex_array(engine.Circuit.YNodeVArray())
        volts = np.abs(phasors)
        day.v[k] = volts / circuit.base_v
        if len(circuit.bus3):
            energised = (day.v[k][circuit.bus3] > ENERGISED_PU).all(axis=1)
            day.vuf_pct[k] = np.where(energised, voltage_unbalance_factor_pct(phasors[circuit.bus3]), np.nan)
        powers = dss.complex_array(engine.PDElements.AllPowers())
        if len(circuit.line_idx):
            node_v = np.where(circuit.line_nodes >= 0, volts[np.maximum(circuit.line_nodes, 0)], np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                amps = np.where(node_v > 1.0, 1000.0 * np.abs(powers[circuit.line_terminal]) / node_v, 0.0)
            currents = np.maximum.reduceat(amps, circuit.line_segments)
            day.line_amps[k] = currents
            unknown = np.isnan(circuit.line_amps) & (currents > 0)
            if unknown.any():  # NormAmps = |I| / (% of normal) from the engine's own loading, once per line
                pct = np.asarray(engine.PDElements.AllPctNorm(False), dtype=float)[circuit.line_idx]
                engine_amps = np.asarray(engine.PDElements.AllMaxCurrents(False), dtype=float)[circuit.line_idx]
                learn = unknown & (pct > 0)
                circuit.line_amps[learn] = 100.0 * engine_amps[learn] / pct[learn]
            day.line_pct[k] = np.where(circuit.line_rated, np.where(currents > 0, 100.0 * currents / circuit.line_amps,
                                                                    0.0), np.nan)
        if len(circuit.xf_idx):
            s = np.add.reduceat(powers[circuit.xf_col_conductors], circuit.xf_col_segments)
            day.xf_pct[k] = np.maximum.reduceat(100.0 * np.abs(s) / circuit.xf_col_kva, circuit.xf_element_columns)
        h = circuit.head_phase_powers()
        day.head[k, :len(h)] = h
        amps = circuit.head_phase_amps()
        day.head_amps[k, :len(amps)] = amps
        day.losses_kw[k] = powers.real.sum()  # every PD element's terminal powers add up to its losses
        if len(circuit.svc_segments):
            day.svc_p_kw[k] = np.add.reduceat(powers[circuit.svc_conductors].real, circuit.svc_segments)
        if circuit.storage or circuit.pv:
            device_s = -circuit.device_batch.powers()  # every array, then every battery: output [kVA], complex
            device_kw = device_s.real
        if circuit.storage:
            units = device_kw[len(circuit.pv):]
            day.active_kva[k] = np.where(np.abs(units) > 1e-6, np.abs(device_s[len(circuit.pv):]), 0.0)
            day.discharge_kva[k] = np.where(units > 1e-6, day.active_kva[k], 0.0)
            day.storage_kw[k] = units.sum()
            day.storage_mode[k] = 1.0 if (units > 1e-6).any() else (-1.0 if (units < -1e-6).any() else 0.0)
            soc = circuit.storage_batch.property_values(circuit.soc_property) / 100.0
            day.storage_soc[k] = float(np.dot(soc, sto_kwh_rated) / sto_kwh_rated.sum())
        if circuit.pv:
            day.pv_kw[k] = device_kw[:len(circuit.pv)].sum()

    day.warnings = []
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged step overflows float32: checked below
        day.converged = dss.solve_daily(read, dss=engine, deadline=deadline, warnings=day.warnings)
    # losses are the sum of every PD element's terminal powers: non-finite if any element's is
    # (line loadings are NaN by design where a line has no rating, so they are not checked)
    bad = nonfinite_steps({"node voltages": day.v, "feeder-head power": day.head, "losses": day.losses_kw,
                           "transformer loadings": day.xf_pct, "storage power": day.storage_kw, "PV power": day.pv_kw})
    if bad:
        first = min(int(steps[0]) for steps in bad.values())
        raise DivergedSolution(
            f"power flow diverged: non-finite {', '.join(sorted(bad))} at "
            f"{len(set().union(*(set(x.tolist()) for x in bad.values())))} of {STEPS} steps (first: step "
            f"{first + 1}, ending {_clock(first + 1)})")
    if not (day.v > ENERGISED_PU).any():
        raise DivergedSolution(f"no node is energised at any step (every voltage below {ENERGISED_PU} pu)")
    return day


def ev_delivered_kw(engine: Any, circuit: _Circuit, assignments: dict[str, Any], v: np.ndarray) -> np.ndarray:
    """The EV fleet's power [kW] at each step: the schedule, less what chargers at a voltage below their
    ``vminpu`` cannot draw (:func:`ev_delivery`); only a sagging charger's own schedule is read."""
    ev_kw = np.asarray(assignments["forecast_kw"]["ev"], dtype=float).copy()
    for record in assignments["hosts"]["ev"]:
        name = record["element"].split(".", 1)[1]
        nodes = circuit.ev_nodes.get(name.lower(), [])
        if nodes and v[:, nodes].min() < EV_VMIN_PU:
            engine.LoadShape.Name(name)
            sched = np.asarray(engine.LoadShape.PMult(), dtype=float) * record["charger_kw"]
            ev_kw -= sched - ev_delivery(sched, charger_voltage_pu(v[:, nodes]))
    return ev_kw


def day_metrics(day: Day, circuit: _Circuit, p3: np.ndarray, s_sum_minus_total_kva: np.ndarray, ev_kw: np.ndarray,
                ev_requested_kwh: float, peak_without_kw: float) -> dict[str, Any]:
    """The planning metrics of a solved day (pure: arrays in, numbers out; the module docstring says
    what each means and which standard it follows). Undefined ones (losses % of a feeder that exports
    over the day) are None; a non-finite one raises DivergedSolution."""
    v = day.v
    customer_v = v[:, circuit.customer_nodes].astype(float)
    energised = v > ENERGISED_PU
    a = voltage_violations(customer_v, circuit.node_customer, config.ANSI_RANGE_A)
    b = voltage_violations(customer_v, circuit.node_customer, config.ANSI_RANGE_B)
    lines = loading_metrics(day.line_pct.astype(float), circuit.line_names, config.THERMAL["line"]["window_h"],
                            config.THERMAL["line"]["threshold_pct"], config.THERMAL["overload_pct"])
    xfs = loading_metrics(day.xf_pct.astype(float), circuit.xf_names, config.THERMAL["transformer"]["window_h"],
                          config.THERMAL["transformer"]["threshold_pct"], config.THERMAL["overload_pct"],
                          emergency_pct=config.THERMAL["transformer"]["emergency_pct"])
    vuf = voltage_unbalance_metrics(day.vuf_pct, config.VOLTAGE_UNBALANCE_PCT["planning_pct"],
                                    config.VOLTAGE_UNBALANCE_PCT["limit_pct"])
    head_unbalance = current_unbalance_pct(day.head_amps) if circuit.head_phases >= 3 else np.array([np.nan])
    energy_kwh = float(p3.sum() * DT_H)
    losses_kwh = float(day.losses_kw.sum() * DT_H)
    peak = float(p3.max())
    sto = day.storage_kw
    tol = config.REVERSE_FLOW_TOLERANCE_KW
    metrics = {
        "peak_kw": peak, "peak_time": _clock(int(np.argmax(p3))), "energy_kwh": energy_kwh,
        "losses_kwh": losses_kwh, "losses_pct": 100.0 * losses_kwh / energy_kwh if energy_kwh > 0 else None,
        "s_phase_sum_minus_total_max_kva": float(s_sum_minus_total_kva.max()),
        "s_phase_sum_minus_total_mean_kva": float(s_sum_minus_total_kva.mean()),
        "vuf_max_pct": vuf["vuf_max_pct"], "vuf_over_2pct_bus_intervals": vuf["vuf_over_planning_bus_intervals"],
        "vuf_over_3pct_bus_intervals": vuf["vuf_over_limit_bus_intervals"],
        "head_current_unbalance_max_pct": float(np.nanmax(head_unbalance)) if np.isfinite(head_unbalance).any()
        else None,
        "v_min_pu": float(v[energised].min()), "v_max_pu": float(v[energised].max()),
        "v_min_customer_pu": float(customer_v[customer_v > ENERGISED_PU].min())
        if (customer_v > ENERGISED_PU).any() else None,
        "v_max_customer_pu": float(customer_v.max()),
        "ansi_a_under_node_intervals": a["under_node_intervals"], "ansi_a_over_node_intervals": a["over_node_intervals"],
        "ansi_a_violation_node_intervals": a["node_intervals"], "ansi_a_customers_affected": a["customers_affected"],
        "ansi_a_under_max_consecutive_intervals": max_consecutive_below(customer_v, circuit.node_customer,
                                                                        config.ANSI_RANGE_A[0]),
        "ansi_b_under_node_intervals": b["under_node_intervals"], "ansi_b_over_node_intervals": b["over_node_intervals"],
        "ansi_b_violation_node_intervals": b["node_intervals"], "ansi_b_customers_affected": b["customers_affected"],
        "n_customers": circuit.n_customers,
        "worst_line_loading_pct": lines["worst_pct"], "worst_line": lines["worst_element"],
        "overloaded_line_intervals": lines["overloaded_intervals"], "overloaded_lines": lines["overloaded_elements"],
        "line_ma_overload_intervals": lines["ma_overload_intervals"],
        "n_unrated_lines": circuit.n_unrated,
        "worst_transformer_loading_pct": xfs["worst_pct"], "worst_transformer": xfs["worst_element"],
        "overloaded_transformer_intervals": xfs["overloaded_intervals"],
        "overloaded_transformers": xfs["overloaded_elements"],
        "transformer_ma_overload_intervals": xfs["ma_overload_intervals"],
        "transformer_emergency_intervals": xfs["emergency_intervals"],
        "reverse_flow_intervals": int((p3 < 0).sum()),
        **{f"head_reverse_flow_intervals_phase{i + 1}": int((day.head[:, i].real < -tol).sum()) for i in range(3)},
        "n_service_transformers": int(day.svc_p_kw.shape[1]),
        "service_transformers_reverse_flow": int((day.svc_p_kw < -tol).any(axis=0).sum()),
        "service_transformer_reverse_flow_intervals": int((day.svc_p_kw < -tol).sum()),
        "ansi_a_over_customer_intervals": customer_intervals_above(customer_v, circuit.node_customer,
                                                                   config.ANSI_RANGE_A[1]),
        "ansi_b_over_customer_intervals": customer_intervals_above(customer_v, circuit.node_customer,
                                                                   config.ANSI_RANGE_B[1]),
        "peak_without_storage_kw": peak_without_kw,
        "storage_peak_reduction_kw": peak_without_kw - peak,
        "storage_peak_reduction_pct": 100.0 * (peak_without_kw - peak) / peak_without_kw if peak_without_kw > 0 else 0.0,
        "storage_discharged_kwh": float(np.clip(sto, 0, None).sum() * DT_H),
        "storage_charged_kwh": float(np.clip(-sto, 0, None).sum() * DT_H),
        "ev_energy_requested_kwh": ev_requested_kwh,
        "ev_energy_delivered_kwh": float(ev_kw.sum() * DT_H),
        "ev_energy_unserved_kwh": max(0.0, ev_requested_kwh - float(ev_kw.sum() * DT_H)),
        "pv_energy_kwh": float(day.pv_kw.sum() * DT_H),
        "non_converged_steps": int((~day.converged).sum()),
        "control_warning_steps": len({k for k, _ in day.warnings or []}),
        "control_warning": (day.warnings or [(0, "")])[0][1],
    }
    undefined = sorted(k for k, x in metrics.items() if isinstance(x, float) and not math.isfinite(x))
    if undefined:
        raise DivergedSolution(f"power flow gave non-finite metrics: {', '.join(undefined)}")
    return metrics


def series_table(day: Day, head: pd.DataFrame, ev_kw: np.ndarray, design_day: str) -> pd.DataFrame:
    """``timeseries.parquet``: the feeder-head table with the interval clock, devices, losses, the
    lowest and highest energised node voltage and each step's convergence."""
    table = head.copy()
    table.insert(0, "hour", (np.arange(STEPS) + 1) * DT_H)
    table.insert(1, "interval_start", pd.date_range(design_day, periods=STEPS, freq="15min"))
    table["ev_kw"] = ev_kw
    table["pv_kw"] = day.pv_kw
    table["storage_kw"] = day.storage_kw
    table["storage_soc"] = day.storage_soc
    table["losses_kw"] = day.losses_kw
    table["v_min_pu"] = np.where(day.v > ENERGISED_PU, day.v, np.inf).min(axis=1)
    table["v_max_pu"] = day.v.max(axis=1)
    table["converged"] = day.converged
    return table


def simulate(instance_dir: Path, deadline: float | None = None,
             prepared: Any = None, keep: dict[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, Any], float]:
    """Solve one instance's day; returns (timeseries, summary, runtime [s]).

    By default the instance's ``Master.dss`` is compiled; ``prepared`` (a ``feeder_cache.Prepared``: a
    feeder compiled once, the case applied to it) gives the engine and the circuit's index arrays
    instead, with the same results (``feeder_cache`` says why). With ``keep`` (a dict), an ok day leaves
    there its ``circuit`` (index arrays) and ``day`` (:class:`Day`: the arrays the metrics came from), for the
    upgrade step to start from the run's own day.

    OpenDSS failures, a time limit reached, non-converged steps and non-finite solutions all become
    status ``failed`` with their reason; a failed run has an empty series. The runtime is returned
    apart from the summary so that the summary depends only on the inputs."""
    instance_dir = Path(instance_dir)
    started = time.perf_counter()
    assignments = read_json(instance_dir / INSTANCE_FILES["assignments"])
    summary: dict[str, Any] = {key: assignments[key] for key in ("state", "season", "design", "feeder", "case",
                                                                  "design_day")}
    summary["inputs"] = assignments["inputs"]
    summary["realised"] = assignments["realised"]
    summary["inputs_digest"] = assignments.get("inputs_digest", "")
    summary["mixes_digest"] = assignments.get("mixes_digest", "")
    summary["shared_digest"] = assignments.get("shared_digest", "")
    summary["metric_settings_digest"] = schema.metric_settings_digest()
    engine = prepared.engine if prepared is not None else dss.engine()
    table, metrics = pd.DataFrame(), {}
    try:
        if prepared is None:
            dss.compile_master(instance_dir / INSTANCE_FILES["master"], strip=False)
            circuit = _Circuit(engine, assignments)
        else:
            circuit = prepared.circuit.for_case(assignments)
        day = solve_day(engine, circuit, assignments, deadline)
        head = head_table(day.head)
        p3 = head["P_3ph (kW)"].to_numpy()
        ev_kw = ev_delivered_kw(engine, circuit, assignments, day.v)
        peak_without = float(p3.max())
        if circuit.storage:
            stateful = set(dss.stateful_control_classes(engine))
            # fuses, relays and reclosers hold a state only once they operate: while none has (with the batteries,
            # and in every interval solved without them) the steps stay independent
            protective = bool(stateful) and stateful <= dss.PROTECTIVE_CLASSES and not dss.protection_operated(engine)
            # a blown fuse stays blown: with fuses alone one look after the intervals finds any that operated in one;
            # a relay or recloser may close again, so it is looked at after every interval
            latching = protective and stateful <= {"fuse"}
            peak_without = None
            if not stateful or protective:  # each step is independent: only the intervals that could top the peak
                # classified per interval by every battery, not their sum: a home battery charging beside a
                # discharging fleet must not hide the discharge
                try:
                    # intervals are left unsolved by a bound on the head power and on every fuse's current (none
                    # with relays or reclosers, or where the fuses cannot be bounded: every active interval solved)
                    bounded = lowest_vminpu(engine, circuit) >= BOUND_MIN_VMINPU
                    must = (None if not bounded else fuse_must_solve(engine, circuit, day) if latching
                            else np.zeros(STEPS, dtype=bool) if not stateful else None)
                    try:
                        best = peak_without_storage(
                            p3, day.storage_mode,
                            lambda k: _solve_without(engine, circuit, k, protection=protective and not latching),
                            every_active=must is None,
                            discharge_kva=day.discharge_kva.sum(axis=1) if must is not None else None,
                            must_solve=must)
                    except dss.DSSError:
                        if not (latching and dss.protection_operated(engine)):
                            raise
                        best = None  # an interval after a fuse blew failed: the whole day is solved below
                    operated = dss.protection_operated(engine) if latching else []
                    if operated:
                        raise ProtectionOperated(f"{operated[0]} operated in an interval solved without the batteries")
                    peak_without = best
                except ProtectionOperated:
                    circuit.storage_disabled = False  # the whole day is solved again below, from the compiled state
            if peak_without is None:  # taps and switching depend on the whole day: re-solve it all
                peak_without = full_day_peak_without_storage(engine, instance_dir / INSTANCE_FILES["master"],
                                                             circuit, deadline,
                                                             restart=prepared.restart if prepared is not None
                                                             else None)
        s_sum_minus_total = head["S_sum_3ph (kVA)"].to_numpy() - head["S_3ph (kVA)"].to_numpy()
        metrics = day_metrics(day, circuit, p3, s_sum_minus_total, ev_kw, float(assignments["realised"]["ev_need_kwh"]),
                              peak_without)
        n_bad = metrics["non_converged_steps"]
        status = "ok" if n_bad == 0 else "failed"
        first = int(np.argmin(day.converged))
        message = "" if n_bad == 0 else (f"{n_bad} of {STEPS} steps did not converge (first: step {first + 1}, "
                                         f"ending {_clock(first + 1)})")
        if status == "ok":
            table = series_table(day, head, ev_kw, assignments["design_day"])
            if keep is not None:
                keep.update(circuit=circuit, day=day)
    except (dss.DSSError, dss.DeadlineExceeded, DivergedSolution) as exc:
        table, metrics = pd.DataFrame(), {}
        status, message = "failed", str(exc)
    summary.update({"status": status, "message": message, "metrics": metrics, "packages": package_versions()})
    return table, summary, round(time.perf_counter() - started, 4)


def _clock(step: int) -> str:
    minutes = (step * 15) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# ------------------------------------------------------------------------------------------- outputs
def write_outputs(instance_dir: Path, table: pd.DataFrame, summary: dict[str, Any]) -> dict[str, Any]:
    """Commit a run's two outputs together: ``summary.json`` is the completion marker.

    The old summary goes first (a run killed from here on leaves no marker, so it is redone), then
    the series of an ok run (a failed run's old series is removed), then the summary, written last,
    with the SHA-256 of the series it belongs to (``timeseries_sha256``; empty for a failed run). A
    summary that cannot be encoded (a non-finite number) turns into a failed run's summary, so no
    error escapes with the old outputs left in place. Returns the summary as written.
    """
    instance_dir = Path(instance_dir)
    summary_path = instance_dir / INSTANCE_FILES["summary"]
    ts_path = instance_dir / INSTANCE_FILES["timeseries"]
    summary_path.unlink(missing_ok=True)
    summary = dict(summary)
    try:
        text = dumps_json({**summary, "timeseries_sha256": "0" * 64})
    except ValueError as exc:  # allow_nan=False: a metric the checks above let through
        summary.update(status="failed", message=f"summary not encodable ({exc}): treated as a diverged run",
                       metrics={})
    if summary["status"] == "ok" and not table.empty:
        write_parquet(ts_path, table)
        summary["timeseries_sha256"] = sha256_file(ts_path)
    else:
        ts_path.unlink(missing_ok=True)
        summary["timeseries_sha256"] = ""
        if summary["status"] == "ok":
            summary.update(status="failed", message="the run produced no series", metrics={})
    text = dumps_json(summary)
    with atomic_path(summary_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return summary


def outputs_valid(instance_dir: Path, inputs_digest: str) -> dict[str, Any] | None:
    """The summary of a finished run made from the same inputs, or None.

    Finished: ``summary.json`` parses, says ``ok``, names the same ``inputs_digest``, was computed with
    the current metric settings (``metric_settings_digest``) and holds every metric of
    ``common.schema.METRICS`` (a summary of an older phase 6 lacks the newer ones), and names the
    SHA-256 of the ``timeseries.parquet`` beside it (so a series replaced or truncated after the run is
    caught)."""
    summary_path = Path(instance_dir) / INSTANCE_FILES["summary"]
    ts_path = Path(instance_dir) / INSTANCE_FILES["timeseries"]
    if not (summary_path.is_file() and ts_path.is_file()):
        return None
    try:
        summary = read_json(summary_path)
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("status") != "ok" or summary.get("inputs_digest") != inputs_digest:
        return None
    if summary.get("metric_settings_digest") != schema.metric_settings_digest():
        return None
    if not isinstance(summary.get("metrics"), dict) or schema.missing_metrics(summary["metrics"]):
        return None
    if not summary.get("timeseries_sha256") or summary["timeseries_sha256"] != sha256_file(ts_path):
        return None
    return summary


def update_mixes_digest(instance_dir: Path, summary: dict[str, Any], mixes_digest: str) -> dict[str, Any]:
    """A finished run whose inputs are unchanged but whose mixes file was rewritten (cases added or
    re-drawn elsewhere) still holds: record the current mixes digest in its summary."""
    if summary.get("mixes_digest") == mixes_digest:
        return summary
    summary = {**summary, "mixes_digest": mixes_digest}
    with atomic_path(Path(instance_dir) / INSTANCE_FILES["summary"]) as tmp:
        tmp.write_text(dumps_json(summary), encoding="utf-8")
    return summary
