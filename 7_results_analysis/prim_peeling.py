"""Patient Rule Induction Method (PRIM) for scenario discovery: peeling, pasting, covering.

Friedman and Fisher (1999), "Bump hunting in high-dimensional data", Statistics and Computing 9:
123-143, as used for scenario discovery by Bryant and Lempert (2010), "Thinking inside the box",
Technological Forecasting and Social Change 77: 34-49.

Why this module rather than the ``prim`` package (PRIM 1.0.0, Project Platypus, 2017): its core
peeling runs on numpy 2 and pandas 3, but ``Prim.limits`` fails on pandas 3 (chained assignment by
``iloc`` with a label), the limits of each trajectory step are only reachable through a private
attribute, the restricted dimensions are ordered by iterating a ``set`` of names (an order that
changes between processes with hash randomisation, so the output is not reproducible), every import
pulls in interactive plotting (mplcursors, widgets), and a class of interest with no or only
failures raises instead of being recorded. This implementation follows the same algorithm for
real-valued inputs, step for step (the tests check the trajectories are identical on a synthetic
case), with plain arrays in and out.

Algorithm (real-valued inputs ``x`` (n, d), boolean class of interest ``y``)

* The first box holds all (remaining) points; its limits are the data's min and max per input.
* Peeling: for every input, two candidates cut off the ``peel_alpha`` share of the points in the box
  at the low or the high end (tie-aware quantiles, so a cut never splits equal values). Each
  candidate scores ``(mean_new - mean_old) / (n_old - n_new)`` ("lenient1", Friedman and Fisher eq.
  14.5: gain in density per point removed); the best (ties: fewer restricted inputs, then input
  order, high end before low end) is taken while its mass stays >= ``mass_min``, it removes points
  and it raises the density.
* Pasting: for every restricted input, widen the box at the low or high end by the ``paste_alpha``
  quantile of the remaining points just outside it; take the best while it adds points and raises
  the density.
* Every accepted peel and paste is a step of the trajectory with its coverage (share of all cases
  of interest inside the box), density (share of the points in the box that are of interest), mass
  (share of all points inside) and restricted inputs.
* Selection: the step with the highest density among those with coverage >= ``min_coverage``
  (ties: higher coverage, fewer restricted inputs, earlier step); step 0 (the whole space) always
  qualifies, so a class of interest spread over the whole space selects no restriction.
* Covering: further boxes are searched on the points outside the selected boxes, up to
  ``max_boxes``, while cases of interest remain and the selected box restricts something.
* Quasi-p values (Bryant and Lempert 2010): for each restricted input, the one-sided binomial
  probability of a density at least the box's when that restriction is lifted; small values mean
  the restriction matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binom


# ------------------------------------------------------------------------------------------- helpers
def tie_aware_quantile(values: np.ndarray, q: float) -> float:
    """The ``q`` quantile, moved half-way to the next distinct value when it falls on a tie.

    Above the median the lower neighbour is moved down past equal values, below it the upper one up,
    so ``x <= value`` (``q > 0.5``) or ``x >= value`` drops whole groups of equal values.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile {q} must be in (0, 1)")
    data = np.sort(np.asarray(values, dtype=float))
    if data.size == 0:
        raise ValueError("no values")
    i = (len(data) - 1) * q
    lo, hi = int(math.floor(i)), int(math.ceil(i))
    if q > 0.5:
        while data[lo] == data[hi] and lo > 0:
            lo -= 1
    else:
        while data[lo] == data[hi] and hi < len(data) - 1:
            hi += 1
    return float((data[lo] + data[hi]) / 2.0)


def lenient1(y_old: np.ndarray, y_new: np.ndarray) -> float:
    """Gain in mean per point removed or added (Friedman and Fisher 1999, eq. 14.5)."""
    mean_old = float(np.mean(y_old))
    mean_new = float(np.mean(y_new)) if len(y_new) else 0.0
    if mean_old == mean_new or len(y_old) == len(y_new):
        return 0.0
    return (mean_new - mean_old) / abs(len(y_old) - len(y_new))


def in_box(x: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of ``x`` inside ``limits`` (d, 2), bounds included."""
    return np.all((x >= limits[:, 0]) & (x <= limits[:, 1]), axis=1)


def restricted(limits: np.ndarray, init: np.ndarray) -> np.ndarray:
    """Mask of the inputs whose limits differ from the initial box."""
    return np.any(limits != init, axis=1)


# ------------------------------------------------------------------------------------------- results
@dataclass
class Step:
    """One box of a peeling/pasting trajectory."""

    phase: str                 # start, peel or paste
    limits: np.ndarray         # (d, 2) lower and upper limit of each input
    members: np.ndarray        # indices of the points inside
    n_interest: int            # cases of interest inside
    coverage: float
    density: float
    mass: float
    n_restricted: int


@dataclass
class Box:
    """One PRIM box: its trajectory, the selected step and the statistics of that step."""

    names: tuple[str, ...]
    init: np.ndarray                  # (d, 2) limits of the whole data
    trajectory: list[Step]
    selected: int
    remaining: np.ndarray             # indices of the points the box was searched on
    quasi_p: dict[str, float] = field(default_factory=dict)

    @property
    def step(self) -> Step:
        return self.trajectory[self.selected]

    def restricted_names(self, step: int | None = None) -> list[str]:
        limits = self.trajectory[self.selected if step is None else step].limits
        return [n for n, r in zip(self.names, restricted(limits, self.init)) if r]


# ------------------------------------------------------------------------------------------- peeling
class _Search:
    def __init__(self, x: np.ndarray, y: np.ndarray, remaining: np.ndarray, init: np.ndarray,
                 peel_alpha: float, paste_alpha: float, mass_min: float):
        self.x, self.y, self.remaining, self.init = x, y, remaining, init
        self.peel_alpha, self.paste_alpha, self.mass_min = peel_alpha, paste_alpha, mass_min
        self.n = len(y)
        self.n_interest = int(y.sum())
        self.steps: list[Step] = []

    def record(self, phase: str, limits: np.ndarray, members: np.ndarray) -> None:
        k = int(self.y[members].sum())
        self.steps.append(Step(phase, limits.copy(), members, k, k / self.n_interest if self.n_interest else 0.0,
                               k / len(members) if len(members) else 0.0, len(members) / self.n,
                               int(restricted(limits, self.init).sum())))

    def _best(self, candidates: list[tuple[np.ndarray, np.ndarray]], members: np.ndarray):
        best = None
        for limits, new in candidates:
            score = (lenient1(self.y[members], self.y[new]), self.x.shape[1] - int(restricted(limits, self.init).sum()))
            if best is None or score > best[0]:
                best = (score, limits, new)
        return best

    def peel(self) -> None:
        while True:
            step = self.steps[-1]
            members = step.members
            candidates = []
            for j in range(self.x.shape[1]):
                xj = self.x[members, j]
                for upper in (True, False):
                    value = tie_aware_quantile(xj, 1.0 - self.peel_alpha if upper else self.peel_alpha)
                    keep = xj <= value if upper else xj >= value
                    limits = step.limits.copy()
                    limits[j, 1 if upper else 0] = value
                    candidates.append((limits, members[keep]))
            (obj, _), limits, new = self._best(candidates, members)
            mass_new, mass_old = len(new) / self.n, len(members) / self.n
            if mass_new >= self.mass_min and mass_new < mass_old and obj > 0:
                self.record("peel", limits, new)
            else:
                return

    def paste(self) -> None:
        xr = self.x[self.remaining]
        while True:
            step = self.steps[-1]
            members = step.members
            candidates = []
            for j in np.nonzero(restricted(step.limits, self.init))[0]:
                for upper in (False, True):
                    region = step.limits.copy()
                    if upper:
                        region[j] = (step.limits[j, 1], self.init[j, 1])
                    else:
                        region[j] = (self.init[j, 0], step.limits[j, 0])
                    data = xr[in_box(xr, region), j]
                    if data.size:
                        value = tie_aware_quantile(data, self.paste_alpha if upper else 1.0 - self.paste_alpha)
                    else:
                        value = self.init[j, 1 if upper else 0]
                    limits = step.limits.copy()
                    limits[j, 1 if upper else 0] = value
                    candidates.append((limits, self.remaining[in_box(xr, limits)]))
            if not candidates:
                return
            (obj, _), limits, new = self._best(candidates, members)
            mass_new, mass_old = len(new) / self.n, len(members) / self.n
            if (mass_new >= self.mass_min and mass_new > mass_old and obj > 0
                    and np.mean(self.y[new]) > np.mean(self.y[members])):
                self.record("paste", limits, new)
            else:
                return


def peel_and_paste(x: np.ndarray, y: np.ndarray, remaining: np.ndarray | None = None, *, peel_alpha: float = 0.05,
                   paste_alpha: float = 0.05, mass_min: float = 0.05) -> list[Step]:
    """The trajectory of one box searched on the ``remaining`` points (default all)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=bool)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"x must be (n, d) with n = len(y); got {x.shape} and {len(y)}")
    if not np.isfinite(x).all():
        raise ValueError("x has missing or infinite values")
    remaining = np.arange(len(y)) if remaining is None else np.asarray(remaining, dtype=int)
    init = np.column_stack([x.min(axis=0), x.max(axis=0)])
    search = _Search(x, y, remaining, init, peel_alpha, paste_alpha, mass_min)
    search.record("start", init, remaining)
    search.peel()
    search.paste()
    return search.steps


def select_step(trajectory: list[Step], min_coverage: float) -> int:
    """The step with the highest density at coverage >= ``min_coverage`` (see the module docstring)."""
    best, best_key = 0, None
    for i, s in enumerate(trajectory):
        if s.coverage + 1e-12 < min_coverage:
            continue
        key = (s.density, s.coverage, -s.n_restricted, -i)
        if best_key is None or key > best_key:
            best, best_key = i, key
    return best


def quasi_p_values(x: np.ndarray, y: np.ndarray, box: Box, step: int | None = None) -> dict[str, float]:
    """Quasi-p value of each restricted input of a step (one-sided binomial test, Bryant and Lempert 2010)."""
    s = box.trajectory[box.selected if step is None else step]
    xr = np.asarray(x, dtype=float)[box.remaining]
    yr = np.asarray(y, dtype=bool)[box.remaining]
    out = {}
    for j in np.nonzero(restricted(s.limits, box.init))[0]:
        lifted = s.limits.copy()
        lifted[j] = box.init[j]
        inside = in_box(xr, lifted)
        p = float(yr[inside].mean()) if inside.any() else 0.0
        out[box.names[j]] = float(binom.sf(s.n_interest - 1, len(s.members), p))
    return out


def find_boxes(x: np.ndarray, y: np.ndarray, names: tuple[str, ...] | list[str], *, max_boxes: int = 1,
               min_coverage: float = 0.8, peel_alpha: float = 0.05, paste_alpha: float = 0.05,
               mass_min: float = 0.05) -> list[Box]:
    """PRIM boxes by covering: each box is searched on the points outside the boxes before it."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=bool)
    names = tuple(names)
    if x.shape[1] != len(names):
        raise ValueError(f"{x.shape[1]} input columns but {len(names)} names")
    init = np.column_stack([x.min(axis=0), x.max(axis=0)])
    left = np.ones(len(y), dtype=bool)
    boxes: list[Box] = []
    while len(boxes) < max_boxes and y[left].any():
        remaining = np.nonzero(left)[0]
        # statistics against the whole data set, limits against its full range (as peel_and_paste does)
        trajectory = peel_and_paste(x, y, remaining, peel_alpha=peel_alpha, paste_alpha=paste_alpha,
                                    mass_min=mass_min)
        selected = select_step(trajectory, min_coverage)
        box = Box(names, init, trajectory, selected, remaining)
        if boxes and box.step.n_restricted == 0:
            break
        box.quasi_p = quasi_p_values(x, y, box)
        boxes.append(box)
        if box.step.n_restricted == 0:
            break
        left[box.step.members] = False
    return boxes
