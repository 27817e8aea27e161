"""Water-filling: put an amount of energy into the lowest intervals of a load curve.

Used wherever flexible energy goes to a curve's valleys: the pre-heat and rebound of demand-managed
heat pumps (phase 4), controlled EV charging and battery charging (phase 6). Given levels ``L``
[kW], per-interval power caps ``c`` [kW] and an energy ``E`` [kWh] to place in intervals of ``dt``
hours, it finds the water level ``w`` with ``sum(clip(w - L, 0, c)) * dt = E`` exactly (the
function is piecewise linear in ``w``; its breakpoints are ``L`` and ``L + c``) and returns the
added power ``clip(w - L, 0, c)``. No allocation can make the highest loaded interval lower.
"""

from __future__ import annotations

import numpy as np


def water_level(levels: np.ndarray, caps: np.ndarray, energy_kwh: float, dt_h: float) -> float:
    """The water level ``w`` that places ``energy_kwh``; ``inf`` when the caps cannot hold it."""
    levels = np.asarray(levels, dtype=float)
    caps = np.broadcast_to(np.asarray(caps, dtype=float), levels.shape)
    target = energy_kwh / dt_h  # kW-intervals to place
    if target <= 0:
        return -np.inf
    if target > caps.sum() * (1 + 1e-12):
        return np.inf
    # an unlimited cap never binds above this height: keep the arithmetic finite
    caps = np.minimum(caps, target + float(levels.max() - levels.min()) + 1.0)
    points = np.concatenate([levels, levels + caps])
    slope_change = np.concatenate([np.ones_like(levels), -np.ones_like(levels)])
    order = np.argsort(points, kind="stable")
    points = points[order]
    slope = np.cumsum(slope_change[order])  # slope of f just right of each breakpoint
    # f at each breakpoint: integral of the slope
    f = np.concatenate([[0.0], np.cumsum(slope[:-1] * np.diff(points))])
    i = int(np.searchsorted(f, target, side="left"))
    if i == 0:
        return float(points[0])
    if i >= len(points):  # the caps hold exactly the energy: every interval full
        return float(points[-1])
    i -= 1
    if slope[i] <= 0:
        return float(points[i + 1])
    return float(points[i] + (target - f[i]) / slope[i])


def water_fill(levels: np.ndarray, energy_kwh: float, caps: np.ndarray | float, dt_h: float) -> np.ndarray:
    """Power [kW] per interval that places ``energy_kwh`` into the valleys of ``levels``.

    When the caps cannot hold the energy, every interval gets its cap (the caller decides what the
    shortfall means: unserved EV energy, say).
    """
    levels = np.asarray(levels, dtype=float)
    caps_arr = np.broadcast_to(np.asarray(caps, dtype=float), levels.shape)
    if energy_kwh <= 0 or caps_arr.sum() <= 0:
        return np.zeros_like(levels)
    w = water_level(levels, caps_arr, energy_kwh, dt_h)
    if not np.isfinite(w):
        return caps_arr.astype(float).copy()
    added = np.clip(w - levels, 0.0, caps_arr)
    # remove the floating-point residue so the energy is exact
    placed = added.sum() * dt_h
    if placed > 0:
        added *= energy_kwh / placed
    return added
