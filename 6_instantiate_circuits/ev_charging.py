"""EV home charging on the design day: sessions, uncontrolled charging, valley-filling control.

A session is one EV's plug-in window and energy need for the day, drawn from the binned session
statistics (sample file ``<data>/sample/ev/ev_session_stats.csv``: arrival hour, departure hour
and daily energy per charger level). Times are snapped to the 15-min grid. The day is treated as
periodic (the design day repeats): a session that plugs in at 18:00 and leaves at 07:00 charges
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


class SessionStatsError(ValueError):
    """An unusable EV statistics file; the message names the file and the item."""


@dataclass
class Sessions:
    """n EV sessions (arrays of shape (n,))."""

    level: np.ndarray        # "L1" / "L2"
    charger_kw: np.ndarray
    arrival_step: np.ndarray  # first 15-min interval plugged in
    dwell_steps: np.ndarray   # intervals plugged in (1..95)
    need_kwh: np.ndarray      # energy the EV wants
    energy_kwh: np.ndarray    # energy its window can hold: min(need, charger kW x dwell)

    def __len__(self) -> int:
        return len(self.charger_kw)

    @property
    def unserved_kwh(self) -> np.ndarray:
        return self.need_kwh - self.energy_kwh

    def window(self, i: int) -> np.ndarray:
        return (self.arrival_step[i] + np.arange(self.dwell_steps[i])) % STEPS


def load_session_stats(path: Path) -> dict[tuple[str, str], pd.DataFrame]:
    """Binned distributions per (charger level, quantity), checked."""
    path = Path(path)
    if not path.is_file():
        raise SessionStatsError(f"EV session statistics {path} not found (build the sample or pass --ev-stats)")
    frame = pd.read_csv(path)
    need = {"charger_level", "quantity", "bin_low", "bin_high", "probability"}
    if not need <= set(frame.columns):
        raise SessionStatsError(f"{path}: columns {sorted(need - set(frame.columns))} missing")
    out = {}
    for level in LEVELS:
        for quantity in ("arrival_hour", "departure_hour", "energy_kwh"):
            part = frame[(frame["charger_level"] == level) & (frame["quantity"] == quantity)]
            if part.empty:
                raise SessionStatsError(f"{path}: no {quantity} rows for charger level {level}")
            total = part["probability"].sum()
            if not np.isclose(total, 1.0, atol=1e-6) or (part["probability"] < 0).any():
                raise SessionStatsError(f"{path}: {level} {quantity} probabilities sum to {total:.6f}, not 1")
            out[(level, quantity)] = part.sort_values("bin_low").reset_index(drop=True)
    return out


def _draw_binned(rng: np.random.Generator, table: pd.DataFrame, n: int) -> np.ndarray:
    idx = rng.choice(len(table), size=n, p=table["probability"].to_numpy() / table["probability"].sum())
    low = table["bin_low"].to_numpy()[idx]
    high = table["bin_high"].to_numpy()[idx]
    return low + rng.random(n) * (high - low)


def draw_sessions(levels: np.ndarray, stats: dict, rng: np.random.Generator) -> Sessions:
    """Sessions for EVs of the given charger levels, from one random stream."""
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
        arr = np.round(_draw_binned(rng, stats[(level, "arrival_hour")], k) * 4).astype(int) % STEPS
        dep = np.round(_draw_binned(rng, stats[(level, "departure_hour")], k) * 4).astype(int) % STEPS
        d = (dep - arr) % STEPS
        d = np.where(d < 2, d + STEPS // 2, d)  # shorter than 30 min: the EV stays over half a day
        arrival[mask], dwell[mask] = arr, np.minimum(d, STEPS - 1)
        need[mask] = _draw_binned(rng, stats[(level, "energy_kwh")], k)
    energy = np.minimum(need, charger * dwell * DT_H)
    return Sessions(level=levels, charger_kw=charger, arrival_step=arrival, dwell_steps=dwell,
                    need_kwh=need, energy_kwh=energy)


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
