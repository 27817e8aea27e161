"""EV home charging on the design day: sessions, uncontrolled charging, valley-filling control.

A session is one EV's plug-in window and energy need for the day, drawn from the binned session
statistics (sample file ``<data>/sample/ev/ev_session_stats.csv``: arrival hour, dwell time and
daily energy per charger level; :func:`load_session_stats`). The arrival is drawn first and then
the dwell time from its own distribution for the charger level; the EV leaves at arrival + dwell,
so it always leaves after it arrives (a session is never built from an arrival and a departure
drawn independently: a file with ``departure_hour`` rows is refused, see below). Arrival and dwell
are drawn on the 15-min grid: a bin by its probability, then one of the grid times inside it
uniformly (a bin holds the grid times ``k x 0.25 h`` with ``bin_low <= t < bin_high``); a dwell
of 0 on the grid is one interval, so the dwell is 1-95 intervals (15 min to 23 h 45 min). The day
is treated as periodic (the design day repeats): a session that plugs in at 18:00 for 13 h charges
from 18:00 to midnight and from midnight to 07:00 of the same simulated day.

* Charger level: Level 2 with probability ``ev_lvl2_perc``, else Level 1; the charger's power is
  uniform in ``common.config.EV`` ``level1_kw`` (120 V) or ``level2_kw`` (240 V).
* Uncontrolled: full charger power from plug-in until the energy is delivered (the last interval
  at partial power).
* Controlled: each EV's charging is moved into the feeder's valleys within its plug-in window
  (water-filling on the feeder load, capped at the charger's power), delivering the same energy
  by departure. EVs respond in turn to the others' schedules, starting from the uncontrolled
  schedules; each response minimises the highest feeder load in its own window, so the feeder peak
  never rises above the uncontrolled one's, and repeated passes converge to the valley-filled day.

Energy a window cannot hold at the charger's power is unserved (recorded, never silently dropped).

Statistics file: columns ``charger_level, quantity, bin_low, bin_high, probability``; for each of
``L1`` and ``L2`` the quantities ``arrival_hour`` (bins within 0-24 h of the clock), ``dwell_h``
(hours plugged in, bins within 0-24 h) and ``energy_kwh`` (bins >= 0); each group's probabilities
are >= 0 and sum to 1, and every arrival and dwell bin holds a 15-min grid time. ``departure_hour``
(the quantity of sample version 5 and earlier) is not accepted: there is no faithful conversion of
two independent marginals into a dwell distribution, so such a file is refused with the fix (give
``dwell_h`` rows; the sample's file: ``python sample/build_sample.py --force``). Any other
quantity is refused too, so that a misspelt one is not silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import config
from common.waterfill import water_fill

STEPS = config.INTERVALS_PER_DAY
DT_H = config.INTERVAL_H
LEVELS = ("L1", "L2")
#: the quantities of the session statistics file, with the range their bins must lie in
QUANTITIES = {"arrival_hour": (0.0, 24.0), "dwell_h": (0.0, 24.0), "energy_kwh": (0.0, np.inf)}
#: quantities drawn on the 15-min grid
GRID_QUANTITIES = ("arrival_hour", "dwell_h")


class SessionStatsError(ValueError):
    """An unusable EV statistics file; the message names the file and the item."""


@dataclass
class Sessions:
    """n EV sessions (arrays of shape (n,))."""

    level: np.ndarray        # "L1" / "L2"
    charger_kw: np.ndarray
    arrival_step: np.ndarray  # first 15-min interval plugged in
    dwell_steps: np.ndarray   # intervals plugged in (1..95); it leaves at arrival_step + dwell_steps
    need_kwh: np.ndarray      # energy the EV wants
    energy_kwh: np.ndarray    # energy its window can hold: min(need, charger kW x dwell)

    def __len__(self) -> int:
        return len(self.charger_kw)

    @property
    def unserved_kwh(self) -> np.ndarray:
        return self.need_kwh - self.energy_kwh

    def window(self, i: int) -> np.ndarray:
        return (self.arrival_step[i] + np.arange(self.dwell_steps[i])) % STEPS


def _grid_bounds(table: pd.DataFrame, step_h: float) -> tuple[np.ndarray, np.ndarray]:
    """Per bin, the first grid index ``k`` with ``k x step_h >= bin_low`` and the first with
    ``k x step_h >= bin_high``: the bin holds the grid times of ``first .. last - 1``."""
    eps = 1e-9
    first = np.ceil(table["bin_low"].to_numpy(dtype=float) / step_h - eps)
    last = np.ceil(table["bin_high"].to_numpy(dtype=float) / step_h - eps)
    return first, last


def load_session_stats(path: Path) -> dict[tuple[str, str], pd.DataFrame]:
    """Binned distributions per (charger level, quantity), checked (module docstring): a file
    that cannot be used is a SessionStatsError of one line naming the file, the item and the fix."""
    path = Path(path)
    if not path.is_file():
        raise SessionStatsError(f"EV session statistics {path} not found (build the sample or pass --ev-stats)")
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SessionStatsError(f"EV session statistics {path} is not a readable CSV file ({first})") from None
    need = {"charger_level", "quantity", "bin_low", "bin_high", "probability"}
    if not need <= set(frame.columns):
        raise SessionStatsError(f"{path}: columns {sorted(need - set(frame.columns))} missing")
    quantities = set(frame["quantity"].astype(str))
    if "departure_hour" in quantities:
        raise SessionStatsError(
            f"{path}: departure_hour rows are not accepted (a departure drawn apart from the arrival does not make "
            f"a session): give dwell_h rows (hours plugged in) per charger level instead; for the sample's file run "
            f"python sample/build_sample.py --force")
    unknown = sorted(quantities - set(QUANTITIES))
    if unknown:
        raise SessionStatsError(f"{path}: quantity {unknown[0]!r} is not one of {', '.join(QUANTITIES)}")
    for column in ("bin_low", "bin_high", "probability"):
        if not pd.api.types.is_numeric_dtype(frame[column]) or not np.isfinite(frame[column].to_numpy(float)).all():
            raise SessionStatsError(f"{path}: column {column} holds a value that is not a finite number")
    out = {}
    for level in LEVELS:
        for quantity, (lowest, highest) in QUANTITIES.items():
            part = frame[(frame["charger_level"] == level) & (frame["quantity"] == quantity)]
            if part.empty:
                raise SessionStatsError(f"{path}: no {quantity} rows for charger level {level}")
            total = part["probability"].sum()
            if not np.isclose(total, 1.0, atol=1e-6) or (part["probability"] < 0).any():
                raise SessionStatsError(f"{path}: {level} {quantity} probabilities sum to {total:.6f}, not 1")
            bad = ~((part["bin_low"] >= lowest) & (part["bin_high"] <= highest) & (part["bin_high"] > part["bin_low"]))
            if bad.any():
                row = part[bad].iloc[0]
                raise SessionStatsError(f"{path}: {level} {quantity} bin {row['bin_low']:g}-{row['bin_high']:g} is not "
                                        f"a range within {lowest:g}-{highest:g}")
            part = part.sort_values("bin_low").reset_index(drop=True)
            if quantity in GRID_QUANTITIES:
                first, last = _grid_bounds(part, DT_H)
                if (last <= first).any():
                    row = part[last <= first].iloc[0]
                    raise SessionStatsError(f"{path}: {level} {quantity} bin {row['bin_low']:g}-{row['bin_high']:g} "
                                            f"holds no {DT_H * 60:.0f}-min grid time: widen it")
            out[(level, quantity)] = part
    return out


def _draw_binned(rng: np.random.Generator, table: pd.DataFrame, n: int, step_h: float | None = None) -> np.ndarray:
    """``n`` values: a bin by its probability, then a value uniformly inside it; with ``step_h``,
    one of the bin's grid times ``k x step_h`` (bin_low <= t < bin_high) uniformly."""
    idx = rng.choice(len(table), size=n, p=table["probability"].to_numpy() / table["probability"].sum())
    if step_h is None:
        low = table["bin_low"].to_numpy()[idx]
        high = table["bin_high"].to_numpy()[idx]
        return low + rng.random(n) * (high - low)
    first, last = _grid_bounds(table, step_h)
    k = first[idx] + np.floor(rng.random(n) * (last[idx] - first[idx]))
    return k * step_h


def draw_sessions(levels: np.ndarray, stats: dict, rng: np.random.Generator) -> Sessions:
    """Sessions for EVs of the given charger levels, from one random stream: per level, the
    charger powers, then the arrivals, then the dwell times (departure = arrival + dwell), then
    the energy needs."""
    levels = np.asarray(levels)
    n = len(levels)
    charger = np.empty(n)
    arrival = np.empty(n, dtype=int)
    dwell = np.empty(n, dtype=int)
    need = np.empty(n)
    for level, (lo, hi) in (("L1", config.EV["level1_kw"]), ("L2", config.EV["level2_kw"])):
        mask = levels == level
        k = int(mask.sum())
        if k == 0:
            continue
        charger[mask] = rng.uniform(lo, hi, k)
        arr = np.round(_draw_binned(rng, stats[(level, "arrival_hour")], k, DT_H) / DT_H).astype(int) % STEPS
        stay = np.round(_draw_binned(rng, stats[(level, "dwell_h")], k, DT_H) / DT_H).astype(int)
        arrival[mask], dwell[mask] = arr, np.clip(stay, 1, STEPS - 1)
        need[mask] = _draw_binned(rng, stats[(level, "energy_kwh")], k)
    energy = np.minimum(need, charger * dwell * DT_H)
    return Sessions(level=levels, charger_kw=charger, arrival_step=arrival, dwell_steps=dwell,
                    need_kwh=need, energy_kwh=energy)


def pick_sessions(by_level: dict[str, Sessions], levels: np.ndarray, index: np.ndarray) -> Sessions:
    """The sessions of EVs ``index`` (positions in the pool ``by_level`` was drawn for), each from the
    draws of its own charger level ``levels``: a customer keeps its session whatever the other EVs do."""
    levels = np.asarray(levels)
    index = np.asarray(index, dtype=int)
    fields = ("charger_kw", "arrival_step", "dwell_steps", "need_kwh", "energy_kwh")
    picked = {}
    for name in fields:
        out = np.empty(len(index), dtype=getattr(by_level[LEVELS[0]], name).dtype)
        for level in LEVELS:
            mask = levels == level
            out[mask] = getattr(by_level[level], name)[index[mask]]
        picked[name] = out
    return Sessions(level=levels, **picked)


def uncontrolled_schedule(s: Sessions) -> np.ndarray:
    """(n, 96) charging power [kW]: full power from plug-in until the energy is delivered."""
    n = len(s)
    power = np.zeros((n, STEPS))
    if n == 0:
        return power
    offsets = np.arange(STEPS)[None, :]
    delivered_before = np.minimum(offsets * s.charger_kw[:, None] * DT_H, s.energy_kwh[:, None])
    delivered_after = np.minimum((offsets + 1) * s.charger_kw[:, None] * DT_H, s.energy_kwh[:, None])
    per_offset = (delivered_after - delivered_before) / DT_H
    per_offset = np.where(offsets < s.dwell_steps[:, None], per_offset, 0.0)
    steps = (s.arrival_step[:, None] + offsets) % STEPS
    np.add.at(power, (np.repeat(np.arange(n), STEPS), steps.ravel()), per_offset.ravel())
    return power


def controlled_schedule(s: Sessions, base_kw: np.ndarray, start: np.ndarray | None = None,
                        passes: int = config.EV["scheduler_passes"], tol_kw: float = 0.05) -> np.ndarray:
    """(n, 96) charging power [kW] that fills the valleys of ``base_kw`` within each window.

    Starts from ``start`` (default: the uncontrolled schedule) and lets each EV in turn water-fill
    its energy on the feeder load left by the others; stops when a pass changes nothing.
    """
    power = uncontrolled_schedule(s) if start is None else np.array(start, dtype=float)
    total = np.asarray(base_kw, dtype=float) + power.sum(axis=0)
    windows = [s.window(i) for i in range(len(s))]
    for _ in range(max(1, passes)):
        changed = 0.0
        for i in range(len(s)):
            w = windows[i]
            old = power[i, w]
            new = water_fill(total[w] - old, float(s.energy_kwh[i]), float(s.charger_kw[i]), DT_H)
            delta = new - old
            step = float(np.abs(delta).max()) if len(delta) else 0.0
            if step > tol_kw:
                total[w] += delta
                power[i, w] = new
                changed = max(changed, step)
        if changed <= tol_kw:
            break
    return power
