"""Global sensitivity measures from given data: delta and PAWN, with confidence intervals.

Both measures are moment-independent and estimated from any sample of (inputs, output) pairs, so
they are valid on a Latin hypercube, on a scrambled Sobol sequence and on the two pooled. (Sobol
variance indices are not: their estimators need the Saltelli cross-sampling, which an LHS ensemble
does not have, so none are computed here.)

* delta (Borgonovo 2007; given-data estimator of Plischke, Borgonovo and Smith 2013):
  :func:`delta_indices` over :func:`delta_estimate` (SALib 1.6's equal-frequency partition of the
  input's ranks; per class, the L1 separation of the output's conditional and unconditional
  distributions from their empirical distribution functions at the crossings of their Silverman kernel
  densities, with the class's outputs mean-adjusted to one input value). The point estimate is computed
  on the runs as given, the index reported is its Plischke et al. (2013, eqn 30) bias-corrected
  value ``2 * estimate - mean(bootstrap)`` and the interval is the normal bootstrap interval
  ``index +/- z * sd(bootstrap)`` at level ``CONF_LEVEL`` (see :func:`delta_indices` for why
  ``SALib.analyze.delta.analyze`` is not called).
* PAWN (Pianosi and Wagener 2015, 2018): ``SALib.analyze.pawn.analyze``; the index is the median
  over ``S`` conditioning slices of the Kolmogorov-Smirnov distance between the output's conditional
  and unconditional distributions. SALib gives no interval, so a bootstrap over runs (resampled with
  replacement, ``resamples`` times, with :func:`pawn_median`, a vectorised copy of SALib's estimator
  that a test keeps equal to it) gives the percentile interval re-centred on the estimate,
  ``[I + q_low - mean, I + q_high - mean]`` clipped to [0, 1]: resampling with replacement repeats
  runs, which inflates every KS distance of a resample by about the same amount (an artefact of the
  resampling, not of the estimator), so the plain percentile interval would sit above the index.
  ``S = clip(n // 10, 3, 10)``: about ten runs per slice, SALib's default of 10 from 100 runs on
  (lowered to 5 or 8 where it would be 6 or 9, which SALib 1.6 cannot slice).

delta's bootstrap draws from ``numpy.random.default_rng(seed)``; SALib's PAWN draws nothing, and
:func:`pawn_indices` still runs it with numpy's legacy global generator seeded and restored afterwards.
Inputs may be dependent (the heat-pump shares lie on a simplex): both measures stay defined, and
measure the input's effect including what it shares with the inputs it depends on.

Each analysis adds a :data:`DUMMY` input (uniform, seeded, unused by the model): an input whose
index is not clearly above the dummy's cannot be told from sampling noise with this many runs. The
dummy is drawn once per design point, so that it repeats across the feeders of a pooled group and the
placement replicates exactly as the real inputs do, and both bootstraps resample whole design points
(:func:`bootstrap_rows`): with a dummy drawn per run and runs resampled one by one, an input with no
effect inherits the chance association of a few design points confirmed on every feeder and replicate,
while the dummy's floor sits too low (a review measured 2-6 of 6 no-effect inputs "above the floor" with
32 points x 3 feeders x 2 replicates; 0 with the dummy and bootstrap per design point, test
``test_no_effect_inputs_stay_at_the_floor_when_points_repeat``).
Small samples also bias both measures: PAWN's KS distances stay well above 0 for an input with no
effect, delta's kernel estimate too (less so once bias-corrected, which can also take it below 0),
while coarse conditioning classes bias delta low (mended by the mean adjustment, :func:`delta_estimate`).
The dummy shows the size of the upward bias.

Verdicts (:func:`above_floor`, :func:`group_verdict`): an input is "above the noise floor" when its
whole interval lies above the dummy's (``conf_low > dummy conf_high``); a (group, metric, method)
where no input is says :data:`TOO_FEW` ("too few runs to rank inputs") instead of a ranking.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
import zlib
from typing import Any, Iterator, Sequence

import numpy as np
from scipy.stats import norm

CONF_LEVEL = 0.95
METHODS = ("delta", "pawn")
#: delta is not computed from fewer runs: SALib's partition (:func:`delta_partition`) gives 3 bins there,
#: of 8 runs or fewer, about the fewest a kernel density of the output within a bin can rest on
DELTA_MIN_RUNS = 24
#: delta's kernel density estimate assumes a continuous output: with more than this share of the runs
#: on one value (e.g. "no violation" = 0) it is not computed (PAWN, on distribution functions, is)
POINT_MASS_SHARE = 0.25
#: points of the output grid on which delta's kernel densities are compared to find where they cross
#: (:func:`delta_estimate`); only the crossings' places come from it, interpolated between points
DELTA_GRID = 512
#: delta's distribution functions are kernel-smoothed with this share of the Silverman bandwidth
#: (:func:`delta_estimate`): unsmoothed (0) they resolve every repeated design point as a spike, and a
#: no-effect input cleared the dummy's floor in 6 of 120 trials with 32 points x 6 copies (4 at 0.25,
#: 1 at 0.5, 1 with SALib's full-bandwidth kernel integral); at 0.5 the smoothing bias stays small (Ishigami
#: x2 at 4,096 runs within 0.02 of its 2^16-run value, against 0.035 for the kernel integral)
DELTA_CDF_BANDWIDTH = 0.5
#: name of the dummy input: a uniform column the model never sees, whose index is the estimator's
#: noise floor at the sample size (Khorashadi Zadeh et al. 2017)
DUMMY = "dummy"


def stable_key(*parts: str) -> tuple[int, ...]:
    """Integers naming a task, stable across processes (CRC-32, never Python's salted hash)."""
    return tuple(zlib.crc32(p.encode("utf-8")) for p in parts)


def _salib_slices_valid(slices: int) -> bool:
    """SALib 1.6 builds its slice edges with ``arange(0, 1 + 1/S, 1/S)``; for some S (6, 9) rounding
    adds an edge above 1 and ``nanquantile`` fails."""
    step = 1 / slices
    return bool(np.arange(0, 1 + step, step).max() <= 1.0)


def pawn_slices(n: int) -> int:
    """Conditioning slices for ``n`` runs: about ten runs per slice, between 3 and 10, skipping the
    counts SALib cannot slice (:func:`_salib_slices_valid`)."""
    slices = int(min(10, max(3, n // 10)))
    while not _salib_slices_valid(slices):
        slices -= 1
    return slices


def problem(names: list[str] | tuple[str, ...], bounds: list[tuple[float, float]]) -> dict[str, Any]:
    return {"num_vars": len(names), "names": list(names), "bounds": [list(b) for b in bounds]}


@contextlib.contextmanager
def _salib_context(seed: int) -> Iterator[list]:
    """Seed numpy's legacy global generator for SALib's PAWN, restore it afterwards; collect SALib's warnings."""
    state = np.random.get_state()
    formatter = warnings.formatwarning
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            np.random.seed(seed)
            yield caught
    finally:
        np.random.set_state(state)
        warnings.formatwarning = formatter  # some SALib analyzers (delta.analyze) replace it globally


def delta_partition(n: int) -> np.ndarray:
    """Edges, on the input's ranks 0..n, of the equal-frequency bins of SALib 1.6's delta for ``n`` runs.

    ``M = min(ceil(n ** (2 / (7 + tanh((1500 - n) / 500)))), 48)`` bins (Plischke et al. 2013's rule as
    SALib writes it: about n^(1/4) bins for small samples, n^(1/3) for large ones, at most 48).
    """
    exponent = 2.0 / (7.0 + np.tanh((1500.0 - n) / 500.0))
    bins = int(np.round(min(int(np.ceil(n ** exponent)), 48)))
    return np.linspace(0, n, bins + 1)


def delta_estimate(x: np.ndarray, y: np.ndarray, partition: np.ndarray | None = None) -> np.ndarray:
    """delta per column of ``x`` from the runs as given: Plischke et al.'s (2013) estimator with the L1
    separation taken from distribution functions.

    delta = 1/2 E[ integral |f_Y - f_Y|X| dy ] (Borgonovo 2007). The input's ranks are cut into the
    equal-frequency classes of :func:`delta_partition` (SALib's partition). Per class, Silverman kernel
    densities of the output (all runs, and the class's runs; the unconditional one computed once) only
    locate where the two densities cross, on a :data:`DELTA_GRID`-point grid over [min y, max y], linearly
    interpolated; the separation itself comes from the distribution functions: between consecutive
    crossings ``z_k`` one density stays above the other, so by Scheffe's identity
    ``integral |f - g| = sum_k |(F - G)(z_k+1) - (F - G)(z_k)|`` with ``z_0 = -inf``, ``z_m+1 = +inf``
    (Plischke, Borgonovo and Smith 2013, section 4, estimating the separation through cdfs at the
    density intersections). The distribution functions are smoothed with :data:`DELTA_CDF_BANDWIDTH`
    (half) of each one's Silverman bandwidth: integrating a density to its distribution function
    averages most of the smoothing's variance away, so it can be undersmoothed. Where the kernel
    estimate integrates ``|f - g|`` directly (SALib's ``calc_delta``), the full bandwidth flattens sharp
    density peaks and biases delta low: on Ishigami with 4,096 runs x2 comes out 0.035 below its
    2^16-run value with the kernel integral and within 0.02 with this one
    (``tests/test_gsa_estimators.py``). The class's outputs are mean-adjusted to one input value
    (:func:`_mean_adjusted`). A class whose runs share one output value is a point mass: its
    separation is ``2 (1 - P(Y = y0))`` (SALib's estimator skips such a class, which counts it as no
    separation at all).

    NaN for a constant column (no classes can be formed); 0 for every column when ``y`` is constant.
    """
    from scipy.stats import gaussian_kde, rankdata

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n, d = x.shape
    out = np.full(d, np.nan)
    if not np.ptp(y) > 0:
        out[[np.ptp(x[:, j]) > 0 for j in range(d)]] = 0.0
        return out
    edges = delta_partition(n) if partition is None else np.asarray(partition)
    grid = np.linspace(y.min(), y.max(), DELTA_GRID)
    kernel_all = gaussian_kde(y, bw_method="silverman")
    f_all = kernel_all(grid)
    h_all = DELTA_CDF_BANDWIDTH * float(np.sqrt(kernel_all.covariance[0, 0]))
    y_sorted = np.sort(y)
    for j in range(d):
        if not np.ptp(x[:, j]) > 0:
            continue
        ranks = rankdata(x[:, j], method="ordinal")
        separation = 0.0
        for lo, hi in zip(edges[:-1], edges[1:]):
            in_class = (ranks > lo) & (ranks <= hi)
            if in_class.any():
                members = _mean_adjusted(x[in_class, j], y[in_class])
                separation += len(members) / n * _l1_separation(y_sorted, np.sort(members), grid, f_all, h_all)
        out[j] = separation / 2.0
    return out


def _mean_adjusted(x_class: np.ndarray, y_class: np.ndarray) -> np.ndarray:
    """A class's outputs moved along the class's least-squares line to its median input value.

    Hyndman, Bashtannyk and Grunwald's (1996) mean-adjusted conditional density estimator, with a linear
    conditional mean within the class: ``y - b (x - median x)``. Without it the class's outputs mix
    the conditional distributions over the whole class width, which pulls them towards the unconditional
    one and biases delta low (on Ishigami with 4,096 runs, x2 by a further 0.02)."""
    spread = x_class - x_class.mean()
    sxx = float(spread @ spread)
    if not sxx > 0:
        return y_class
    slope = float(spread @ (y_class - y_class.mean())) / sxx
    return y_class - slope * (x_class - np.median(x_class))


def _smoothed_cdf(sorted_values: np.ndarray, at: np.ndarray, bandwidth: float) -> np.ndarray:
    """Distribution function of a Gaussian kernel smoothing of the values, with the given bandwidth."""
    from scipy.special import ndtr

    return ndtr((at[:, None] - sorted_values[None, :]) / bandwidth).mean(axis=1)


def _l1_separation(y_sorted: np.ndarray, members: np.ndarray, grid: np.ndarray, f_all: np.ndarray,
                   h_all: float) -> float:
    """integral |f_Y - f_class| from the two distribution functions at the crossings of the two densities.

    The densities (Silverman kernels) only place the crossings; the distribution functions are smoothed
    with :data:`DELTA_CDF_BANDWIDTH` times each one's Silverman bandwidth (``h_all`` for all runs)."""
    from scipy.stats import gaussian_kde

    n, m = len(y_sorted), len(members)
    if not np.ptp(members) > 0:  # a point mass at y0: below y0, at y0, above y0
        below = np.searchsorted(y_sorted, members[0], side="left") / n
        at_or_below = np.searchsorted(y_sorted, members[0], side="right") / n
        return below + (1.0 - (at_or_below - below)) + (1.0 - at_or_below)
    kernel = gaussian_kde(members, bw_method="silverman")
    gap = f_all - kernel(grid)
    k = np.nonzero(np.sign(gap[1:]) * np.sign(gap[:-1]) < 0)[0]
    crossings = grid[k] - gap[k] * (grid[k + 1] - grid[k]) / (gap[k + 1] - gap[k])
    h_class = DELTA_CDF_BANDWIDTH * float(np.sqrt(kernel.covariance[0, 0]))
    difference = _smoothed_cdf(y_sorted, crossings, h_all) - _smoothed_cdf(members, crossings, h_class)
    return float(np.abs(np.diff(np.concatenate([[0.0], difference, [0.0]]))).sum())


def delta_full_sample(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """delta per input estimated on the runs as given (no resampling, no randomness): :func:`delta_estimate`."""
    return delta_estimate(x, y)


@dataclasses.dataclass(frozen=True)
class DeltaResult:
    """delta per input: the full-sample ``estimate``, the bias-corrected ``index`` and its interval.

    ``bootstrap`` (resamples, inputs) holds the resampled estimates the correction and the interval
    come from; ``notes`` the warnings SALib raised per input ("" where none).
    """

    estimate: np.ndarray
    index: np.ndarray
    half_width: np.ndarray
    bootstrap: np.ndarray
    notes: list[str]

    @property
    def low(self) -> np.ndarray:
        return self.index - self.half_width

    @property
    def high(self) -> np.ndarray:
        return self.index + self.half_width


def bootstrap_rows(n: int, resamples: int, rng: np.random.Generator, clusters: np.ndarray | None = None
                   ) -> list[np.ndarray]:
    """Row indices of ``resamples`` bootstrap resamples of ``n`` runs, each of ``n`` rows.

    Without ``clusters`` the runs are resampled with replacement. With ``clusters`` (one label per run:
    its design point) whole clusters are drawn with replacement until ``n`` rows are reached (the last
    one cut to fit): the runs of one design point (its feeders in a pooled group, its placement
    replicates) share their inputs and are not independent, so they are resampled together (the
    cluster bootstrap; Davison and Hinkley 1997, section 3.8)."""
    if clusters is None:
        return list(rng.integers(0, n, size=(resamples, n)))
    labels, members = np.unique(np.asarray(clusters), return_inverse=True)
    groups = [np.nonzero(members == k)[0] for k in range(len(labels))]
    out = []
    for _ in range(resamples):
        taken, total = [], 0
        while total < n:
            group = groups[int(rng.integers(0, len(groups)))]
            taken.append(group)
            total += len(group)
        out.append(np.concatenate(taken)[:n])
    return out


def delta_indices(x: np.ndarray, y: np.ndarray, *, resamples: int, seed: int,
                  conf_level: float = CONF_LEVEL, clusters: np.ndarray | None = None) -> DeltaResult:
    """delta per input (Borgonovo 2007) from given data, bias-corrected, with a bootstrap interval.

    * estimate: :func:`delta_estimate` on the runs as given (equal to :func:`delta_full_sample`, a test
      keeps them so);
    * bootstrap: ``resamples`` resamples of the runs with replacement (the same rows for every input;
      whole design points with ``clusters``, :func:`bootstrap_rows`), each estimated the same way on the
      full sample's output grid and partition;
    * index: Plischke et al. (2013, eqn 30) bias correction, ``estimate - (mean(bootstrap) - estimate)``:
      the estimator is biased upwards at small samples (a no-effect input scores well above 0), and the
      bootstrap shows by how much;
    * interval: ``index +/- z * sd(bootstrap)``, ``z`` the normal quantile of ``conf_level`` (SALib's
      choice). A percentile interval would need about 1,000 resamples to place its 2.5 % and 97.5 %
      tails, the normal one only the SD (it is asked for with 20 to 100); it always contains the index.
      Neither is clipped to [0, 1]: an index below 0 says the input's effect is below the bias.

    Why not ``SALib.analyze.delta.analyze``: SALib 1.6's ``bias_reduced_delta`` computes the point
    estimate on one more bootstrap resample (``d_hat = calc_delta(Y[ind], ...)``), not on the data, so
    its index moves with the seed by about its own bootstrap SD (0.02 to 0.045 on Ishigami with 512
    runs); it also computes a "balanced" and a "step" variant nobody here reads, and draws from numpy's
    global generator. Its estimator, ``calc_delta``, integrates the difference of two kernel densities,
    whose smoothing biases delta low (Ishigami x2 by 0.035 at 4,096 runs) and which skips a class of
    equal outputs; :func:`delta_estimate` keeps SALib's partition and mends both. The randomness comes
    from ``numpy.random.default_rng(seed)``. The estimate does not depend on ``seed``; the index does only through the bootstrap mean,
    by about ``sd(bootstrap) / sqrt(resamples)``.

    ``x`` (runs, inputs), ``y`` (runs); a constant input gets NaN with a note.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n, d = x.shape
    if resamples < 2:
        raise ValueError(f"resamples {resamples}: need at least 2 for a bootstrap SD")
    partition = delta_partition(n)
    rows = bootstrap_rows(n, resamples, np.random.default_rng(seed), clusters)
    notes = [""] * d
    for j in range(d):
        if not np.ptp(x[:, j]) > 0:
            notes[j] = f"input is constant ({x[0, j]:g}) over the {n} runs"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimate = delta_estimate(x, y, partition)
        bootstrap = np.array([delta_estimate(x[r], y[r], partition) for r in rows])
    raised = "; ".join(sorted({" ".join(str(w.message).split()) for w in caught}))[:300]
    notes = [note or (raised if np.isfinite(estimate[j]) else "") for j, note in enumerate(notes)]
    index = 2.0 * estimate - bootstrap.mean(axis=0)
    half_width = norm.ppf(0.5 + conf_level / 2) * bootstrap.std(axis=0, ddof=1)
    return DeltaResult(estimate=estimate, index=index, half_width=half_width, bootstrap=bootstrap, notes=notes)


def _ks_to_all(y_sorted: np.ndarray, subset: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between a subset of the sample and the whole (sorted) sample."""
    sub = np.sort(subset)
    cdf_all = np.searchsorted(y_sorted, y_sorted, side="right") / len(y_sorted)
    cdf_sub = np.searchsorted(sub, y_sorted, side="right") / len(sub)
    return float(np.max(np.abs(cdf_all - cdf_sub)))


def pawn_median(x: np.ndarray, y: np.ndarray, slices: int) -> np.ndarray:
    """Median over slices of the KS distance per input: SALib's PAWN ``median``, vectorised."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    y_sorted = np.sort(y)
    step = 1 / slices
    seq = np.arange(0, 1 + step, step)
    out = np.full(x.shape[1], np.nan)
    for j in range(x.shape[1]):
        xj = x[:, j]
        edges = np.nanquantile(xj, seq)
        values = []
        for s in range(slices):
            sel = (xj >= edges[s]) & (xj < edges[s + 1])
            if sel.any():
                values.append(_ks_to_all(y_sorted, y[sel]))
        if values:
            out[j] = float(np.median(values))
    return out


def pawn_indices(x: np.ndarray, y: np.ndarray, names: list[str], bounds: list[tuple[float, float]], *,
                 resamples: int, seed: int, clusters: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """PAWN median per input (SALib) with its re-centred bootstrap interval (whole design points resampled
    with ``clusters``: :func:`bootstrap_rows`); returns index, low, high, S."""
    from SALib.analyze import pawn

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    slices = pawn_slices(len(y))
    with _salib_context(int(seed) % (2**31 - 2) + 1):
        index = np.asarray(pawn.analyze(problem(names, bounds), x, y, S=slices)["median"], dtype=float)
    boot = np.empty((resamples, x.shape[1]))
    for b, rows in enumerate(bootstrap_rows(len(y), resamples, np.random.default_rng(seed), clusters)):
        boot[b] = pawn_median(x[rows], y[rows], slices)
    tail = 100 * (1 - CONF_LEVEL) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column stays NaN
        q_low = np.nanpercentile(boot, tail, axis=0)
        q_high = np.nanpercentile(boot, 100 - tail, axis=0)
        centre = np.nanmean(boot, axis=0)
    # percentile interval re-centred on the estimate: repeated runs in a resample inflate every KS
    # distance by about the same amount, an artefact of resampling rather than of the estimator
    low = np.clip(index + (q_low - centre), 0.0, 1.0)
    high = np.clip(index + (q_high - centre), 0.0, 1.0)
    return index, low, high, slices


# ------------------------------------------------------------------------------------------- normalisation
#: How each headline metric is put on a common scale across feeders for the pooled groups:
#: (transform, basis). The reference is the feeder's reference case "0" in the same state and season.
NORMALISATION = {
    "peak_kw": ("relative_pct", "% change of the peak vs the feeder's reference case"),
    "ansi_a_violation_node_intervals": ("difference_per_customer",
                                        "Range A node-intervals per customer above the reference case"),
    "worst_transformer_loading_pct": ("difference", "percentage points above the reference case"),
    "losses_pct": ("difference", "percentage points above the reference case"),
    # the upgrade cost (phase 6 --upgrades; issue 17) is NOT taken relative to the reference case: a cost has
    # its own zero (nothing to fix), a % change is undefined where the reference costs 0 (most feeders), and
    # upgrades are lumpy (the next catalogue size), so a future's cost minus the reference's is not what the
    # future adds. Per customer of the feeder, so that feeders of 30 and 2,000 customers share one scale.
    "upgrade_cost_usd": ("per_customer", "upgrade cost in USD per customer of the feeder (not relative to the "
                                         "reference case)"),
}
#: transforms of NORMALISATION that do not read the reference case (a feeder without an ok case 0 stays in)
WITHOUT_REFERENCE = ("per_customer",)


def normalise(values: np.ndarray, reference: float, n_customers: np.ndarray | float, how: str) -> np.ndarray:
    """A feeder's metric relative to its reference case, or per customer (transforms of :data:`NORMALISATION`;
    ``per_customer`` ignores ``reference``)."""
    values = np.asarray(values, dtype=float)
    if how == "relative_pct":
        if not reference > 0:
            raise ValueError(f"reference {reference} is not positive")
        return 100.0 * (values / reference - 1.0)
    if how == "difference":
        return values - reference
    if how == "difference_per_customer":
        return (values - reference) / np.asarray(n_customers, dtype=float)
    if how == "per_customer":
        return values / np.asarray(n_customers, dtype=float)
    raise ValueError(f"unknown normalisation {how!r}")


# ------------------------------------------------------------------------------------------- one task
def task_seed(master: int, group: str, metric: str, method: str, subsample: str = "") -> int:
    """A 32-bit seed per (group, metric, method) from numpy's SeedSequence; a subsample of the group
    (``subsample``, e.g. "N/4" of the convergence table) has its own."""
    parts = (group, metric, method) + ((subsample,) if subsample else ())
    ss = np.random.SeedSequence(entropy=master, spawn_key=stable_key(*parts))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


# ------------------------------------------------------------------------------------------- verdicts
#: the words of a group where no input's interval clears the dummy's
TOO_FEW = "too few runs to rank inputs"
#: per-input verdicts (the ``verdict`` column)
ABOVE, AT_FLOOR, FLOOR = "above the noise floor", "not distinguishable from the dummy", "noise floor"


def above_floor(conf_low: np.ndarray, dummy_conf_high: float) -> np.ndarray:
    """Whether each input's interval lies wholly above the dummy's: its ``conf_low`` above the dummy's
    ``conf_high``. Overlapping intervals mean this sample cannot tell the input from noise."""
    return np.asarray(conf_low, dtype=float) > float(dummy_conf_high)


def group_verdict(names: Sequence[str], index: np.ndarray, conf_low: np.ndarray, conf_high: np.ndarray,
                  dummy_conf_high: float, *, factors: Sequence[str] = ()) -> str:
    """One line on what a (group, metric, method) can rank.

    :data:`TOO_FEW` when no design input's interval clears the dummy's; else the inputs that do, by
    index, and whether their order is resolved (each one's interval above the next one's). ``factors``
    (e.g. ``placement_replicate``) are named apart: placement alone above the floor ranks no input.
    """
    if not np.isfinite(dummy_conf_high):
        return "no noise floor (the dummy was not estimated): not ranked"
    index, conf_low, conf_high = (np.asarray(a, dtype=float) for a in (index, conf_low, conf_high))
    above = above_floor(conf_low, dummy_conf_high)
    order = sorted((j for j in range(len(names)) if above[j] and names[j] not in factors),
                   key=lambda j: (-index[j], names[j]))
    extra = [names[j] for j in range(len(names)) if above[j] and names[j] in factors]
    tail = f"; {', '.join(extra)} above the noise floor" if extra else ""
    if not order:
        return TOO_FEW + tail
    resolved = all(conf_low[a] > conf_high[b] for a, b in zip(order, order[1:]))
    ranked = " > ".join(names[j] for j in order)
    how = "" if len(order) == 1 else (" (order resolved)" if resolved else " (order not resolved: intervals overlap)")
    return f"above the noise floor: {ranked}{how}{tail}"


def analyse(task: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both measures for one (group, metric): result rows and skip rows (a worker process may run it).

    ``task``: group, scope, state, season, feeder, metric, basis, x (n, d), y (n), names, bounds,
    n_feeders, designs, min_runs, resamples, seed (the master seed; each method's own is
    :func:`task_seed`), optionally subsample (a label: a subsample of the group gets its own seeds).
    """
    names, bounds = list(task["names"]), [tuple(b) for b in task["bounds"]]
    describe = {k: task[k] for k in ("group", "scope", "state", "season", "feeder", "metric")}
    x, y = task["x"], task["y"]
    finite = np.isfinite(y)
    x, y = x[finite], y[finite]
    n = len(y)
    # a run's design point (design and point): the runs of one point repeat its inputs on every feeder of a
    # pooled group and in every placement replicate, so the dummy repeats with them and the bootstrap
    # resamples them together; without the columns every run is its own point
    if "run_design" in task and "run_point" in task:
        points = np.char.add(np.char.add(np.asarray(task["run_design"], dtype=str)[finite], "/"),
                             np.asarray(task["run_point"]).astype(str)[finite])
    else:
        points = np.arange(n)
    labels, point_of = np.unique(points, return_inverse=True)
    clusters = point_of if len(labels) < n else None  # every run its own point: the plain bootstrap
    rows, skips = [], []

    def skip(method: str, reason: str, name: str = "") -> None:
        skips.append({**describe, "method": method, "input": name, "n_runs": n, "reason": reason})

    if n < task["min_runs"]:
        skip("", f"{n} runs, fewer than --min-runs {task['min_runs']}")
        return rows, skips
    if np.ptp(y) == 0:
        skip("", f"{task['metric']} is constant ({y[0]:g}) over the {n} runs")
        return rows, skips
    common = {**describe, "basis": task["basis"], "conf_level": CONF_LEVEL, "n_runs": n,
              "n_feeders": task["n_feeders"], "designs": task["designs"], "resamples": task["resamples"]}
    subsample = task.get("subsample", "")
    # the dummy is drawn per design point (labels in sorted order), like the inputs it stands beside
    dummy = np.random.default_rng(task_seed(task["seed"], task["group"], task["metric"], DUMMY, subsample)
                                  ).random(len(labels))[point_of]
    x = np.column_stack([x, dummy])
    names, bounds = names + [DUMMY], bounds + [(0.0, 1.0)]
    modal_share = np.unique(y, return_counts=True)[1].max() / n
    for method in METHODS:
        seed = task_seed(task["seed"], task["group"], task["metric"], method, subsample)
        if method == "delta":
            if n < DELTA_MIN_RUNS:
                skip(method, f"{n} runs, fewer than the {DELTA_MIN_RUNS} delta needs")
                continue
            if modal_share > POINT_MASS_SHARE:
                skip(method, f"{100 * modal_share:.0f} % of the runs share one value: delta's density estimate "
                             "needs a continuous output (PAWN does not)")
                continue
            result = delta_indices(x, y, resamples=task["resamples"], seed=seed, clusters=clusters)
            index, low, high, notes, slices = result.index, result.low, result.high, result.notes, np.nan
        else:
            index, low, high, slices = pawn_indices(x, y, names, bounds, resamples=task["resamples"], seed=seed,
                                                    clusters=clusters)
            notes = [""] * len(names)
        for j, name in enumerate(names):
            if not (np.isfinite(index[j]) and np.isfinite(low[j]) and np.isfinite(high[j])):
                skip(method, f"not estimable: {notes[j] or 'SALib returned no value'}", name)
                continue
            rows.append({**common, "input": name, "method": method, "index": float(index[j]),
                         "conf_low": float(low[j]), "conf_high": float(high[j]), "pawn_slices": slices, "seed": seed})
    return rows, skips
