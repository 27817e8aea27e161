"""Peak-shaving dispatch of a battery fleet on the design day, and its linear-programming yardstick.

The fleet (sum of the units' kW and kWh ratings; every unit follows the same per-unit dispatch)
shaves the feeder-head load ``L`` [kW] forecast from the instance (customer loads + EVs - PV):

* a discharge threshold ``T`` (never below ``peak_target_factor`` x the day's peak without
  storage): the fleet discharges ``min(P, L - T)`` wherever ``L > T``;
* the energy this takes (divided by the discharge efficiency, then by the charge efficiency) is
  charged back in the day's valleys: water-filled into the intervals below ``T``, never lifting
  the load above ``T``; when the battery cannot hold a whole day's charge at once, each discharge
  event is recharged in the valley before it (between a morning and an evening peak);
* the day is periodic: the start state of charge is chosen so that the trajectory stays within
  [reserve, 100 %] of the kWh rating and the day ends where it started;
* ``T`` is the lowest threshold for which all of this is feasible (bisection; feasibility is
  monotone in ``T``).

:func:`lp_min_peak` solves the best any dispatch of the same fleet can do under the same limits
(power, energy, efficiencies, reserve, periodic state of charge, the same floor) with
``scipy.optimize.linprog`` (HiGHS), the yardstick against which the dispatch is judged.

Home batteries (one unit per home, ``common.config.HOME_STORAGE``) are dispatched on each home's own net
load: :func:`self_consumption` (charge from the home's PV surplus only, discharge to cover its own net
load only, so battery energy is never exported; periodic day) or :func:`home_peak_shaving` (the
peak-shaving rule above on the home's own day).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from common import config
from common.waterfill import water_fill

DT_H = config.INTERVAL_H


@dataclass(frozen=True)
class Fleet:
    power_kw: float          # sum of kW ratings
    energy_kwh: float        # sum of kWh ratings
    eff_charge: float
    eff_discharge: float
    reserve: float           # lowest state of charge, fraction of energy_kwh

    @property
    def usable_kwh(self) -> float:
        return (1.0 - self.reserve) * self.energy_kwh


@dataclass
class Dispatch:
    power_kw: np.ndarray     # fleet power per interval, positive = discharge
    soc_start: float         # state of charge at 00:00 (fraction)
    soc: np.ndarray          # state of charge at the end of each interval (fraction)
    threshold_kw: float
    peak_before_kw: float
    peak_after_kw: float


def _events(active: np.ndarray) -> list[np.ndarray]:
    """Maximal runs of ``active`` intervals on the periodic day (a run may wrap past midnight)."""
    n = len(active)
    if not active.any():
        return []
    if active.all():
        return [np.arange(n)]
    start = int(np.argmin(active))  # an inactive interval: runs do not wrap across it
    order = (start + np.arange(n)) % n
    runs, current = [], []
    for t in order:
        if active[t]:
            current.append(t)
        elif current:
            runs.append(np.array(current))
            current = []
    if current:
        runs.append(np.array(current))
    return runs


def _charge_in_valleys(load_kw: np.ndarray, room: np.ndarray, grid_kwh: float) -> np.ndarray:
    """All charging water-filled into the day's lowest intervals."""
    charge = np.zeros_like(load_kw)
    valley = room > 0
    if grid_kwh > 0:
        charge[valley] = water_fill(load_kw[valley], grid_kwh, room[valley], DT_H)
    return charge


def _charge_before_each_event(load_kw: np.ndarray, room: np.ndarray, discharge: np.ndarray,
                              fleet: Fleet) -> np.ndarray | None:
    """Each discharge event's energy water-filled into the valley just before it (and, when that
    gap is too small, into the gaps before), so that the fleet recharges between peaks."""
    n = len(load_kw)
    events = _events(discharge > 0)
    charge = np.zeros(n)
    left = room.copy()
    for k, event in enumerate(events):
        need = discharge[event].sum() * DT_H / fleet.eff_discharge / fleet.eff_charge
        cursor = int(event[0])
        for back in range(len(events)):
            prev_end = int(events[(k - back - 1) % len(events)][-1])
            gap = (prev_end + 1 + np.arange((cursor - prev_end - 1) % n)) % n
            if len(gap):
                take = min(need, left[gap].sum() * DT_H)
                if take > 0:
                    add = water_fill(load_kw[gap] + charge[gap], take, left[gap], DT_H)
                    charge[gap] += add
                    left[gap] -= add
                    need -= take
            if need <= 1e-9:
                break
            cursor = int(events[(k - back - 1) % len(events)][0])
        if need > 1e-6:
            return None
    return charge


def _plan(load_kw: np.ndarray, fleet: Fleet, threshold: float) -> tuple[np.ndarray, float, np.ndarray] | None:
    """Dispatch for one threshold, or None when the fleet cannot hold the load below it.

    Charging goes to the day's valleys when the state of charge allows it, else to the valley
    before each discharge event (recharging between a morning and an evening peak).
    """
    excess = load_kw - threshold
    if excess.max() > fleet.power_kw + 1e-9:
        return None
    discharge = np.clip(excess, 0.0, fleet.power_kw)
    stored_needed = discharge.sum() * DT_H / fleet.eff_discharge
    grid_charge_kwh = stored_needed / fleet.eff_charge
    room = np.where(discharge > 0, 0.0, np.clip(threshold - load_kw, 0.0, fleet.power_kw))
    if grid_charge_kwh > room.sum() * DT_H + 1e-9:
        return None
    for strategy in ("valleys", "before_each_event"):
        if strategy == "valleys":
            charge = _charge_in_valleys(load_kw, room, grid_charge_kwh)
        else:
            charge = _charge_before_each_event(load_kw, room, discharge, fleet)
            if charge is None:
                return None
        delta = (charge * fleet.eff_charge - discharge / fleet.eff_discharge) * DT_H
        stored = np.concatenate([[0.0], np.cumsum(delta)])
        if stored.max() - stored.min() <= fleet.usable_kwh + 1e-9:
            start_kwh = fleet.reserve * fleet.energy_kwh - stored.min()
            soc = (start_kwh + stored[1:]) / fleet.energy_kwh
            return discharge - charge, start_kwh / fleet.energy_kwh, soc
    return None


def peak_shaving(load_kw: np.ndarray, fleet: Fleet, target_factor: float = config.STORAGE["peak_target_factor"],
                 iterations: int = 60) -> Dispatch:
    """The lowest feasible threshold dispatch (see module docstring)."""
    load_kw = np.asarray(load_kw, dtype=float)
    peak = float(load_kw.max())
    idle = Dispatch(power_kw=np.zeros_like(load_kw), soc_start=1.0, soc=np.ones_like(load_kw), threshold_kw=peak,
                    peak_before_kw=peak, peak_after_kw=peak)
    if fleet.power_kw <= 0 or fleet.energy_kwh <= 0:
        return idle
    floor = max(target_factor * peak, peak - fleet.power_kw)
    lo, hi = floor, peak
    if _plan(load_kw, fleet, lo) is not None:
        hi = lo
    else:
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            if _plan(load_kw, fleet, mid) is None:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-6 * max(peak, 1.0):
                break
    best = _plan(load_kw, fleet, hi)
    if best is None:  # numerical edge: keep the fleet idle rather than violate a limit
        return idle
    power, soc_start, soc = best
    return Dispatch(power_kw=power, soc_start=soc_start, soc=soc, threshold_kw=hi, peak_before_kw=peak,
                    peak_after_kw=float((load_kw - power).max()))


def lp_min_peak(load_kw: np.ndarray, fleet: Fleet, target_factor: float = config.STORAGE["peak_target_factor"]
                ) -> tuple[float, np.ndarray]:
    """Lowest feeder peak [kW] any dispatch of the fleet reaches, and that dispatch (HiGHS LP).

    Variables: charge c_t, discharge d_t in [0, P]; stored energy s_0..s_n in [reserve E, E];
    peak z >= floor. Minimise z subject to L_t + c_t - d_t <= z,
    s_{t+1} = s_t + eta_c c_t dt - d_t dt / eta_d, and s_n >= s_0 (a periodic day).
    """
    load_kw = np.asarray(load_kw, dtype=float)
    n = len(load_kw)
    peak = float(load_kw.max())
    floor = target_factor * peak
    if fleet.power_kw <= 0 or fleet.energy_kwh <= 0:
        return peak, np.zeros(n)
    # variable layout: c (n), d (n), s (n + 1), z (1)
    ic, id_, is_, iz = 0, n, 2 * n, 3 * n + 1
    nvar = 3 * n + 2
    cost = np.zeros(nvar)
    cost[iz] = 1.0
    rows, cols, vals = [], [], []
    # L_t + c_t - d_t - z <= 0
    for t in range(n):
        rows += [t, t, t]
        cols += [ic + t, id_ + t, iz]
        vals += [1.0, -1.0, -1.0]
    # s_0 - s_n <= 0
    rows += [n, n]
    cols += [is_, is_ + n]
    vals += [1.0, -1.0]
    a_ub = coo_matrix((vals, (rows, cols)), shape=(n + 1, nvar)).tocsr()
    b_ub = np.concatenate([-load_kw, [0.0]])
    rows, cols, vals = [], [], []
    for t in range(n):  # s_{t+1} - s_t - eta_c dt c_t + dt/eta_d d_t = 0
        rows += [t] * 4
        cols += [is_ + t + 1, is_ + t, ic + t, id_ + t]
        vals += [1.0, -1.0, -fleet.eff_charge * DT_H, DT_H / fleet.eff_discharge]
    a_eq = coo_matrix((vals, (rows, cols)), shape=(n, nvar)).tocsr()
    bounds = ([(0.0, fleet.power_kw)] * (2 * n) + [(fleet.reserve * fleet.energy_kwh, fleet.energy_kwh)] * (n + 1)
              + [(floor, None)])
    result = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=np.zeros(n), bounds=bounds, method="highs")
    if not result.success:
        raise RuntimeError(f"storage LP did not solve: {result.message}")
    x = result.x
    return float(x[iz]), x[id_:id_ + n] - x[ic:ic + n]


# ------------------------------------------------------------------------------------------- home batteries
@dataclass
class HomeDispatch:
    """The day of a group of home batteries, one row per home (every home the same unit)."""

    power_kw: np.ndarray     # (homes, steps) battery power [kW], positive = discharge
    soc_start: np.ndarray    # (homes,) state of charge at 00:00 [fraction of the kWh rating]
    soc: np.ndarray          # (homes, steps) state of charge at the end of each interval [fraction]


def _self_consumption_day(net_kw: np.ndarray, unit: Fleet, start_kwh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One day of self-consumption from ``start_kwh`` [kWh stored] per home: (power [kW], stored [kWh] at the
    end of each interval). Charge = min(P, the home's PV surplus, room), discharge = min(P, the home's net
    load, what the stored energy above the reserve can give)."""
    n, steps = net_kw.shape
    power = np.zeros((n, steps))
    stored = np.zeros((n, steps))
    e = np.asarray(start_kwh, dtype=float).copy()
    low, high = unit.reserve * unit.energy_kwh, unit.energy_kwh
    # the limits that do not depend on the stored energy, for the whole day at once (the minimum is exact, so
    # the order in which the three limits are taken does not change a bit)
    charge_cap = np.minimum(unit.power_kw, np.clip(-net_kw, 0.0, None)).T
    discharge_cap = np.minimum(unit.power_kw, np.clip(net_kw, 0.0, None)).T
    charge_kwh_per_kw = unit.eff_charge * DT_H  # stored energy [kWh] one kW of charge adds in an interval
    for t in range(steps):
        charge = np.minimum(charge_cap[t], np.clip(high - e, 0.0, None) / charge_kwh_per_kw)
        discharge = np.minimum(discharge_cap[t], np.clip(e - low, 0.0, None) * unit.eff_discharge / DT_H)
        e = np.clip(e + unit.eff_charge * charge * DT_H - discharge * DT_H / unit.eff_discharge, low, high)
        power[:, t] = discharge - charge
        stored[:, t] = e
    return power, stored


#: points per pass of the search for the periodic start (:func:`self_consumption`): each pass narrows every home's
#: bracket 16-fold, as four bisection steps would, in one simulated day instead of four
SEARCH_POINTS = 15
#: at most this many (home, start) rows per simulated day of the search: with more homes to search, fewer points
#: per pass (7, 3, then 1: a bisection), where the arithmetic of the rows, not the steps of the day, is the cost
SEARCH_ROWS = 2048


def self_consumption(net_kw: np.ndarray, unit: Fleet, bits: int = 60) -> HomeDispatch:
    """Self-consumption dispatch of one battery ``unit`` per home on the homes' own net loads ``net_kw``
    (homes, steps) [kW] (load + own EV - own rooftop PV; negative = PV surplus).

    The battery charges only from the home's PV surplus (never from the grid, never more than the
    surplus) and discharges only to cover the home's own net load (never more, so it never exports
    battery energy), within its power rating and between ``reserve`` and 100 % of its kWh rating, with the
    charge and discharge efficiencies. The day is periodic: the state of charge at 00:00 is the one the
    day ends with. The end-minus-start change is non-increasing in the start, so its sign change is
    bracketed and the bracket narrowed until it is ``2**-bits`` of the usable energy wide (far below a
    float64's resolution): each pass evaluates :data:`SEARCH_POINTS` evenly spaced starts at once (fewer when
    many homes are searched: :data:`SEARCH_ROWS`) and keeps the sub-interval where the change turns from a gain
    to a loss (a bisection with 16 children, no less exact). Where the change is zero over a range of starts
    (a day that neither gains nor loses energy wherever it starts: lossless charging, say), every start in it is
    periodic and the one found is one of them."""
    net_kw = np.atleast_2d(np.asarray(net_kw, dtype=float))
    n = len(net_kw)
    if n == 0 or unit.power_kw <= 0 or unit.energy_kwh <= 0:
        return HomeDispatch(np.zeros_like(net_kw), np.full(n, unit.reserve), np.full(net_kw.shape, unit.reserve))
    lo = np.full(n, unit.reserve * unit.energy_kwh)
    hi = np.full(n, unit.energy_kwh)

    def change(net, start):
        return _self_consumption_day(net, unit, start)[1][:, -1] - start

    at_low, at_high = change(net_kw, lo), change(net_kw, hi)
    fixed_low, fixed_high = at_low <= 1e-12, at_high >= -1e-12
    # each home's search is its own (row-wise arithmetic): only the homes whose start is not fixed at the
    # reserve or at full (in winter most homes have no PV surplus and stay at the reserve) are searched
    free = np.nonzero(~(fixed_low | fixed_high))[0]
    lo_f, hi_f = lo[free], hi[free]
    k = next(k for k in (SEARCH_POINTS, 7, 3, 1) if k * len(free) <= SEARCH_ROWS or k == 1)
    fractions = np.arange(1, k + 1) / (k + 1)
    net_rows = net_kw[np.repeat(free, k)]
    at = np.arange(len(free))
    for _ in range(-(-bits // int(np.log2(k + 1))) if len(free) else 0):
        points = lo_f[:, None] + (hi_f - lo_f)[:, None] * fractions[None, :]  # (free homes, k), increasing
        up = (change(net_rows, points.ravel()) > 0).reshape(-1, k)  # the day gains energy from there
        first_down = np.where(up.all(axis=1), k, np.argmin(up, axis=1))  # first point where it does not
        lo_f = np.where(first_down > 0, points[at, np.maximum(first_down - 1, 0)], lo_f)
        hi_f = np.where(first_down < k, points[at, np.minimum(first_down, k - 1)], hi_f)
    middle = 0.5 * (lo + hi)
    middle[free] = 0.5 * (lo_f + hi_f)
    start = np.where(fixed_low, unit.reserve * unit.energy_kwh, np.where(fixed_high, unit.energy_kwh, middle))
    power, stored = _self_consumption_day(net_kw, unit, start)
    return HomeDispatch(power_kw=power, soc_start=start / unit.energy_kwh, soc=stored / unit.energy_kwh)


def home_peak_shaving(net_kw: np.ndarray, unit: Fleet, target_factor: float) -> HomeDispatch:
    """Peak shaving of each home's own net-load peak (:func:`peak_shaving` on that home's day, one unit)."""
    net_kw = np.atleast_2d(np.asarray(net_kw, dtype=float))
    days = [peak_shaving(row, unit, target_factor) for row in net_kw]
    if not days:
        return HomeDispatch(np.zeros_like(net_kw), np.zeros(0), np.zeros_like(net_kw))
    return HomeDispatch(power_kw=np.array([d.power_kw for d in days]), soc_start=np.array([d.soc_start for d in days]),
                        soc=np.array([d.soc for d in days]))


#: dispatch rule of each name of ``common.config.HOME_STORAGE["dispatch"]``
HOME_DISPATCH = {"self_consumption": lambda net, unit, settings: self_consumption(net, unit),
                 "peak_shaving": lambda net, unit, settings: home_peak_shaving(net, unit,
                                                                               settings["peak_target_factor"])}


def home_dispatch(net_kw: np.ndarray, settings: dict) -> tuple[Fleet, HomeDispatch]:
    """The unit of ``settings`` (``common.config.HOME_STORAGE``) and its dispatch on each home's net load."""
    if settings["dispatch"] not in HOME_DISPATCH:
        raise ValueError(f"common.config.HOME_STORAGE dispatch = {settings['dispatch']!r}: use one of "
                         f"{', '.join(HOME_DISPATCH)}")
    unit = Fleet(power_kw=float(settings["kw"]), energy_kwh=float(settings["kwh"]),
                 eff_charge=float(settings["eff_charge"]), eff_discharge=float(settings["eff_discharge"]),
                 reserve=float(settings["reserve"]))
    return unit, HOME_DISPATCH[settings["dispatch"]](net_kw, unit, settings)
