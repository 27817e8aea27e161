"""Global sensitivity of the headline outcomes to the study's inputs: delta and PAWN with intervals.

Description
    For each headline metric (``results_io.HEADLINE_METRICS``: ``peak_kw``,
    ``ansi_a_violation_node_intervals``, ``worst_transformer_loading_pct``, ``losses_pct``, and
    ``upgrade_cost_usd`` where phase 6's upgrade step ran, ``--upgrades``: :func:`analysed_metrics`) and each
    of the seven independent inputs (``results_io.INDEPENDENT_INPUTS``: ``hp_adoption``,
    ``hp_dm_fraction``, ``ev_perc``, ``ev_lvl2_perc``, ``ev_split.controlled``, ``storage_perc_3ph``,
    ``pv_perc_3ph``), two moment-independent measures estimated from the runs as given
    (``gsa_methods``). The heat-pump shares are not analysed themselves: they sum to one and
    ``shares.dm`` and ``shares.un`` are rank-correlated by construction (about -0.5), so their
    independent coordinates are used instead, ``hp_adoption`` = 1 - ``shares.baseline`` (heat-pump
    adoption, X) and ``hp_dm_fraction`` = ``shares.dm`` / (``shares.dm`` + ``shares.un``)
    (demand-management enrolment of the heat pumps, L), each a function of one cube dimension of
    phase 0 (``common.doe.FACTORS``). A run without heat pumps has no ``hp_dm_fraction`` and is left
    out (recorded in ``sensitivity_skipped.csv``; no sampled case of phase 0 has none).

    * delta (Borgonovo; SALib's kernel estimator on the runs as given, Plischke et al.'s bootstrap bias
      correction, and a normal bootstrap interval: ``gsa_methods.delta_indices``);
    * PAWN (Pianosi and Wagener; SALib ``pawn.analyze``, median KS distance over conditioning slices,
      with a bootstrap percentile interval over runs).

    Both are valid on a Latin hypercube, on a Sobol sequence and on the two pooled; Sobol variance
    indices are NOT computed: their estimators need Saltelli's cross-sampled design, and an LHS
    ensemble has none.

    Runs used: status ``ok``, every design, the fixed reference case "0" left out (it is not a draw
    of the design). Groups:

    * ``feeder``: per (state, season, feeder), the metric as simulated [its unit]. Runs of the LHS and
      the Sobol design are pooled: both sample the same uniform input space.
    * ``pooled``: per (state, season), every feeder together, each run's metric first put on a common
      scale relative to ITS feeder's reference case "0" of the same season
      (``gsa_methods.NORMALISATION``: peak as % change, transformer loading and losses as
      percentage-point differences, Range A violations as node-intervals per customer above the
      reference). A feeder without an ``ok`` reference run is left out of the pooled group (logged).
      The upgrade cost is the exception: pooled as USD per customer of its feeder, NOT relative to the
      reference case (a cost has its own zero, the reference often costs 0, and lumpy upgrades make a
      difference of costs meaningless), so a feeder without a reference run stays in. A run whose
      upgrade failed or did not run has no cost and is left out of the cost's analyses (mostly-zero
      costs usually leave delta skipped: PAWN still runs).

    A group with fewer runs than ``--min-runs`` (default ``MIN_RUNS``), a metric that is constant
    over a group, or (delta only) fewer runs than ``gsa_methods.DELTA_MIN_RUNS`` or more than
    ``gsa_methods.POINT_MASS_SHARE`` of the runs on one value (a count that is mostly 0) is skipped
    with the reason logged and written to ``sensitivity_skipped.csv``. Every analysis also scores a
    ``dummy`` input (uniform noise the model never sees): its index is the noise floor at that
    sample size, and an input whose index is not clearly above it has no detectable effect. Randomness (bootstrap) comes from
    ``numpy.random.SeedSequence(--seed, spawn_key=CRC-32 of group, metric, method)``: the same inputs
    give the same bytes whatever the order or the number of ``--workers``.

    Verdicts: every row carries the dummy's index and interval of its (group, metric, method), the
    input's ``verdict`` ("above the noise floor" when its interval lies wholly above the dummy's, else
    "not distinguishable from the dummy") and the group's words (``group_verdict``: "too few runs to
    rank inputs" when no input is above the floor; ``gsa_methods.group_verdict``).

    Placement replicates (phase 0 ``--replicates R``; a table without ``design_point`` and
    ``placement_replicate`` is one replicate): with R > 1, ``placement_replicate`` is analysed beside
    the inputs (:func:`replicate_coordinate`), and ``placement_spread.csv`` gives per group and metric
    the median over design points of the SD and range across replicates beside the SD across design
    points (:func:`placement_spread`). With R = 1 that table, the skipped list and the log say
    "placement noise not measured".

    Convergence (``sensitivity_convergence.csv``): every analysis again on N/4 and N/2 of each design's
    points (``SUBSAMPLING``: Sobol the first 2^k points, LHS a nested seeded random subset;
    :func:`subsample_mask`), with rank and ``ranking_stable`` (the inputs above the floor, in order, at
    N/2 and N).

    Figures per metric: ``plots/sensitivity_<metric>.png``, per (state, season) and method the pooled
    index of each input with its interval (filled where above the noise floor, hollow and hatched
    where not, "too few runs to rank inputs" written over a panel where nothing is), each feeder's
    index as a dot, the dummy's interval as a grey band and its index dashed;
    ``plots/convergence_<metric>.png``, each input's pooled index and interval at N/4, N/2 and N with
    the dummy's interval as a band.

Inputs
    <data>/7_results_analysis/xlrm_results.parquet      (append_experiment_results.py)

Outputs (``<data>/7_results_analysis/``)
    sensitivity.csv          group, scope (feeder / pooled), state, season, feeder, metric, basis, input,
                             method (delta / pawn), index, conf_low, conf_high, conf_level, dummy_index,
                             dummy_conf_low, dummy_conf_high, verdict, group_verdict, n_runs, n_feeders,
                             designs, resamples, pawn_slices, seed
    sensitivity_skipped.csv  group, scope, state, season, feeder, metric, method, input, n_runs, reason
    sensitivity_convergence.csv  CONVERGENCE_COLUMNS (subsample N/4, N/2, N; note: why not analysed)
    placement_spread.csv     SPREAD_COLUMNS
    plots/sensitivity_<metric>.png, plots/convergence_<metric>.png
    manifest_sensitivity_analysis.json

Settings read
    common.config: DOE_SEED (default --seed); common.doe.PARAMETERS, FACTORS (bounds);
    results_io.HEADLINE_METRICS, INDEPENDENT_INPUTS; gsa_methods.NORMALISATION, CONF_LEVEL.

Usage
    python 7_results_analysis/sensitivity_analysis.py [--data-dir DATA] [--state NC] [--min-runs 20]
        [--resamples 100] [--seed 123] [--workers 2]
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Sequence

import numpy as np
import pandas as pd

import gsa_methods as gsa
import results_io as rio
from common import cli, config, figures
from common.io import save_figure, write_csv, write_manifest

logger = logging.getLogger(__name__)

MIN_RUNS = 20
RESAMPLES = 100
METHODS = gsa.METHODS
METHOD_LABELS = {"delta": "delta (Borgonovo)", "pawn": "PAWN (median KS)"}
#: the placement replicate, analysed beside the inputs when a group has more than one (phase 0 --replicates)
REPLICATE = "placement_replicate"
DESIGN_POINT = "design_point"
#: the convergence table's subsamples: (label, share of each design's points); nested, the last is all runs
SUBSAMPLES = (("N/4", 0.25), ("N/2", 0.5), ("N", 1.0))
SUBSAMPLING = ("Sobol: the first 2^k points of the sequence (a balanced Sobol sample); LHS: the first points of "
               "one seeded random order of its design points (a random subset, the same cases in every group); "
               "every placement replicate of a chosen design point is kept")
#: said wherever placement noise would be reported from a single replicate
NOT_MEASURED = ("placement noise not measured: one placement replicate per design point "
                "(phase 0 --replicates R with R > 1 measures it)")
RESULT_COLUMNS = ("group", "scope", "state", "season", "feeder", "metric", "basis", "input", "method", "index",
                  "conf_low", "conf_high", "conf_level", "dummy_index", "dummy_conf_low", "dummy_conf_high", "verdict",
                  "group_verdict", "n_runs", "n_feeders", "designs", "resamples", "pawn_slices", "seed")
SKIP_COLUMNS = ("group", "scope", "state", "season", "feeder", "metric", "method", "input", "n_runs", "reason")
CONVERGENCE_COLUMNS = ("group", "scope", "state", "season", "feeder", "metric", "method", "input", "subsample",
                       "fraction", "n_runs", "index", "conf_low", "conf_high", "dummy_index", "dummy_conf_low",
                       "dummy_conf_high", "verdict", "rank", "group_verdict", "ranking_stable", "note")
SPREAD_COLUMNS = ("group", "scope", "state", "season", "feeder", "metric", "basis", "replicates", "design_points",
                  "n_runs", "placement_sd", "placement_sd_median", "placement_range_median", "placement_sd_max", "design_point_sd",
                  "placement_to_design_sd", "note")
POOLED = "pooled"
#: environment of the worker processes: one BLAS thread each (the work is many small solves)
BLAS_THREADS_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ------------------------------------------------------------------------------------------- pure: groups
def analysed_metrics(results: pd.DataFrame) -> list[str]:
    """The metrics analysed: the headline metrics, then the upgrade cost where the upgrade step ran on some run
    (``results_io.has_upgrade_costs``; phase 6 ``--upgrades``)."""
    return list(rio.HEADLINE_METRICS) + ([rio.COST_METRIC] if rio.has_upgrade_costs(results) else [])


def with_placement(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with ``design_point`` and ``placement_replicate``; a table without them (made before
    phase 0 had replicates) is one replicate: design point = case, replicate 0."""
    frame = results.copy()
    if DESIGN_POINT not in frame.columns:
        frame[DESIGN_POINT] = pd.to_numeric(frame["case"]).astype("int64")
    if REPLICATE not in frame.columns:
        frame[REPLICATE] = np.int64(0)
    return frame


def design_sizes(results: pd.DataFrame) -> dict[str, int]:
    """Design points per design (the largest ``design_point`` of any run, solved or not)."""
    runs = with_placement(results)
    runs = runs[runs["case"] != rio.REFERENCE_CASE]
    return {str(d): int(p.max()) for d, p in runs.groupby("design", sort=True)[DESIGN_POINT]}


def replicate_coordinate(part: pd.DataFrame, seed: int, *key: str) -> np.ndarray:
    """The placement replicate as an input column: ``r + u``, ``u`` uniform on [0, 1) (seeded by ``key``).

    Both estimators slice an input by its ranks or quantiles; on an integer column the ties fall in
    arbitrary slices (and SALib's PAWN never puts the top value in any slice). The jitter orders the
    runs of one replicate at random and keeps every replicate's runs together, so the index measures
    what the replicate alone moves, on the same footing as the dummy."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=gsa.stable_key("placement jitter", *key)))
    return part[REPLICATE].to_numpy(dtype=float) + rng.random(len(part))


def analysis_groups(results: pd.DataFrame, metrics: Sequence[str], seed: int = config.DOE_SEED
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The (group, metric) data sets: per feeder (raw metric) and pooled per (state, season) (normalised).

    Returns the tasks (inputs ``x`` with their ``names`` and ``bounds``, metric ``y``, each run's design,
    design point, replicate and feeder, and their description) and the skips found on the way (feeders
    without a reference run; placement noise not measured). With more than one placement replicate in
    a (state, season), ``placement_replicate`` is an input beside the others (:func:`replicate_coordinate`).
    """
    results = with_placement(results)
    ok = results[results["status"] == "ok"]
    runs = ok[ok["case"] != rio.REFERENCE_CASE]
    reference = ok[ok["case"] == rio.REFERENCE_CASE]
    tasks, skips = [], []
    for (state, season), season_runs in runs.groupby(["state", "season"], sort=True):
        replicates = int(season_runs[REPLICATE].max()) + 1
        names = list(rio.INDEPENDENT_INPUTS) + ([REPLICATE] if replicates > 1 else [])
        bounds = [(rio.INPUT_BY_NAME[n].low, rio.INPUT_BY_NAME[n].high) for n in rio.INDEPENDENT_INPUTS]
        bounds += [(0.0, float(replicates))] if replicates > 1 else []
        if replicates == 1:
            skips.append({"group": f"{state} {season}", "scope": "", "state": state, "season": season, "feeder": "",
                          "metric": "", "method": "", "input": REPLICATE, "n_runs": len(season_runs),
                          "reason": NOT_MEASURED})
        pooled: dict[str, list] = {m: [] for m in metrics}
        for feeder, part in season_runs.groupby("feeder", sort=True):
            part = part.sort_values(["design", "case"], kind="stable")
            defined = rio.defined_inputs(part)
            if not defined.all():
                skips.append({"group": f"{state} {season} {feeder}", "scope": "feeder", "state": state,
                              "season": season, "feeder": feeder, "metric": "", "method": "", "input": "",
                              "n_runs": int((~defined).sum()),
                              "reason": f"{int((~defined).sum())} run(s) without heat pumps left out: "
                                        "hp_dm_fraction = dm / (dm + un) is undefined"})
                part = part[defined]
                if part.empty:
                    continue
            designs = "+".join(sorted(part["design"].unique()))
            x = part[list(rio.INDEPENDENT_INPUTS)].to_numpy(dtype=float)
            if replicates > 1:
                x = np.column_stack([x, replicate_coordinate(part, seed, state, season, feeder)])
            runs_of = {"run_design": part["design"].to_numpy(dtype=str),
                       "run_point": part[DESIGN_POINT].to_numpy(dtype=np.int64),
                       "run_replicate": part[REPLICATE].to_numpy(dtype=np.int64),
                       "run_feeder": np.full(len(part), feeder, dtype=object)}
            ref = reference[(reference["state"] == state) & (reference["season"] == season)
                            & (reference["feeder"] == feeder)]
            for metric in metrics:
                y = pd.to_numeric(part[metric], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                tasks.append({"group": f"{state} {season} {feeder}", "scope": "feeder", "state": state,
                              "season": season, "feeder": feeder, "metric": metric,
                              "basis": rio.OUTCOMES_DESCRIBED.get(metric, ("", ""))[0], "x": x, "y": y, "names": names,
                              "bounds": bounds, "n_feeders": 1, "designs": designs, **runs_of})
                how, _ = gsa.NORMALISATION[metric]
                ref_values = pd.to_numeric(ref[metric], errors="coerce").dropna()
                if how in gsa.WITHOUT_REFERENCE:  # per customer (the upgrade cost): the reference case is not read
                    ref_values = pd.Series([np.nan])
                elif ref_values.empty:
                    skips.append({"group": f"{state} {season} {POOLED}", "scope": POOLED, "state": state,
                                  "season": season, "feeder": feeder, "metric": metric, "method": "",
                                  "input": "", "n_runs": len(part),
                                  "reason": f"feeder {feeder} left out of the pooled group: no ok reference case 0"})
                    continue
                try:
                    z = gsa.normalise(y, float(ref_values.mean()), pd.to_numeric(part["n_customers"], errors="coerce").to_numpy(dtype=float, na_value=np.nan), how)
                except ValueError as exc:
                    skips.append({"group": f"{state} {season} {POOLED}", "scope": POOLED, "state": state,
                                  "season": season, "feeder": feeder, "metric": metric, "method": "", "input": "",
                                  "n_runs": len(part), "reason": f"feeder {feeder} left out of the pooled group: {exc}"})
                    continue
                pooled[metric].append((x, z, designs, runs_of))
        for metric in metrics:
            if not pooled[metric]:
                continue
            parts = pooled[metric]
            tasks.append({"group": f"{state} {season} {POOLED}", "scope": POOLED, "state": state, "season": season,
                          "feeder": "", "metric": metric, "basis": gsa.NORMALISATION[metric][1],
                          "x": np.vstack([p[0] for p in parts]), "y": np.concatenate([p[1] for p in parts]),
                          "names": names, "bounds": bounds, "n_feeders": len(parts),
                          "designs": "+".join(sorted({d for p in parts for d in p[2].split("+")})),
                          **{k: np.concatenate([p[3][k] for p in parts]) for k in parts[0][3]}})
    return tasks, skips


def subsample_mask(design: np.ndarray, point: np.ndarray, fraction: float, sizes: dict[str, int],
                   seed: int) -> np.ndarray:
    """Which runs a convergence subsample keeps: about ``fraction`` of each design's points (``SUBSAMPLING``).

    Sobol: design points 1 .. fraction * n, the head of the sequence (with n a power of two and a
    fraction 1/2^j, a balanced Sobol sample itself). LHS (any other design): the head of one random
    order of its n points, from ``SeedSequence(seed, "subsample", design)``: the same cases in every
    feeder, state and season, and the N/4 subsample inside the N/2 one. A design point's replicates
    stay together."""
    keep = np.zeros(len(design), dtype=bool)
    for name in sorted(set(design.tolist())):
        n = sizes[name]
        head = max(1, int(round(fraction * n)))
        if name == "sobol":
            chosen = np.arange(1, head + 1)
        else:
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=gsa.stable_key("subsample", name)))
            chosen = rng.permutation(np.arange(1, n + 1))[:head]
        keep |= (design == name) & np.isin(point, chosen)
    return keep


#: what a task knows of each run, and what of it the analysis itself needs: a run's design point (design,
#: point), so that the dummy repeats and the bootstrap resamples with the point (gsa_methods.analyse)
RUN_KEYS = ("run_design", "run_point", "run_replicate", "run_feeder")
ANALYSED_RUN_KEYS = ("run_design", "run_point")


def convergence_tasks(tasks: list[dict[str, Any]], sizes: dict[str, int], seed: int) -> list[dict[str, Any]]:
    """The subsample tasks (N/4, N/2) of every task: the same analysis on fewer design points."""
    out = []
    for task in tasks:
        for label, fraction in SUBSAMPLES[:-1]:
            mask = subsample_mask(task["run_design"], task["run_point"], fraction, sizes, seed)
            sub = {k: v for k, v in task.items() if k not in RUN_KEYS}
            out.append({**sub, "x": task["x"][mask], "y": task["y"][mask], "subsample": label,
                        **{k: task[k][mask] for k in ANALYSED_RUN_KEYS}})
    return out


def _outcomes(tasks: list[dict[str, Any]], workers: int) -> list[tuple[list, list]]:
    if workers > 1 and len(tasks) > 1:
        # fresh interpreters with single-threaded BLAS: forked workers inherit OpenBLAS's thread pool,
        # and several multi-threaded pools on few cores slow each other down many times over
        light = [{k: v for k, v in t.items() if k not in RUN_KEYS or k in ANALYSED_RUN_KEYS} for t in tasks]
        with _environment(BLAS_THREADS_ENV), ProcessPoolExecutor(max_workers=workers,
                                                                 mp_context=get_context("spawn")) as pool:
            return list(pool.map(gsa.analyse, light, chunksize=1))
    return [gsa.analyse(t) for t in tasks]


def run_tasks(tasks: list[dict[str, Any]], workers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both measures for every task: the results (with verdicts, :func:`add_verdicts`) and the skips."""
    rows, skips = [], []
    for r, s in _outcomes(tasks, workers):
        rows += r
        skips += s
    return add_verdicts(_frame(rows, RESULT_COLUMNS)), _frame(skips, SKIP_COLUMNS)


# ------------------------------------------------------------------------------------------- pure: verdicts
def add_verdicts(table: pd.DataFrame, by: Sequence[str] = ("group", "metric", "method")) -> pd.DataFrame:
    """The dummy's index and interval beside every row, each input's ``verdict`` and the group's words.

    ``verdict``: "above the noise floor" when the input's interval lies wholly above the dummy's,
    "not distinguishable from the dummy" otherwise, "noise floor" on the dummy's own row.
    ``group_verdict`` (per ``by``): ``gsa.group_verdict``, "too few runs to rank inputs" when no input
    clears the dummy."""
    if table.empty:
        return table
    table = table.copy()
    for column in ("dummy_index", "dummy_conf_low", "dummy_conf_high"):
        table[column] = np.nan
    table["verdict"] = ""
    table["group_verdict"] = ""
    for _, part in table.groupby(list(by), sort=False):
        dummy = part[part["input"] == gsa.DUMMY]
        floor = dummy[["index", "conf_low", "conf_high"]].to_numpy(dtype=float)[0] if len(dummy) else np.full(3, np.nan)
        table.loc[part.index, ["dummy_index", "dummy_conf_low", "dummy_conf_high"]] = floor
        real = part[part["input"] != gsa.DUMMY]
        above = gsa.above_floor(real["conf_low"].to_numpy(dtype=float), floor[2])
        table.loc[real.index, "verdict"] = np.where(above, gsa.ABOVE, gsa.AT_FLOOR) if np.isfinite(floor[2]) else ""
        table.loc[dummy.index, "verdict"] = gsa.FLOOR
        table.loc[part.index, "group_verdict"] = gsa.group_verdict(
            real["input"].tolist(), real["index"].to_numpy(dtype=float), real["conf_low"].to_numpy(dtype=float),
            real["conf_high"].to_numpy(dtype=float), floor[2], factors=(REPLICATE,))
    return table


def convergence_table(full: pd.DataFrame, sub_rows: list[dict[str, Any]], sub_skips: list[dict[str, Any]]
                      ) -> pd.DataFrame:
    """Index, interval, dummy and verdict of every (group, metric, method, input) at N/4, N/2 and N.

    ``rank``: the input's place by index among the inputs (1 = highest; the dummy has none).
    ``ranking_stable`` (per group, metric, method): whether the inputs above the noise floor, in order,
    are the same at N/2 as at N. A subsample that was not analysed (too few runs, a constant metric)
    has one row per method with its reason in ``note``."""
    label_of = {label: fraction for label, fraction in SUBSAMPLES}
    parts = [full.assign(subsample="N")] if not full.empty else []
    sub = _frame(sub_rows, RESULT_COLUMNS + ("subsample",))
    if not sub.empty:
        parts.append(add_verdicts(sub, ("group", "metric", "method", "subsample")))
    notes = []
    for s in sub_skips:
        for method in ([s["method"]] if s["method"] else METHODS):
            notes.append({**{k: s[k] for k in ("group", "scope", "state", "season", "feeder", "metric")},
                          "method": method, "input": s["input"], "subsample": s["subsample"], "n_runs": s["n_runs"],
                          "note": s["reason"]})
    if notes:
        parts.append(pd.DataFrame(notes))
    if not parts:
        return pd.DataFrame(columns=list(CONVERGENCE_COLUMNS))
    table = pd.concat(parts, ignore_index=True)
    table["fraction"] = table["subsample"].map(label_of)
    table["note"] = table["note"].fillna("") if "note" in table.columns else ""
    real = (table["input"] != gsa.DUMMY) & table["index"].notna()
    table["rank"] = np.nan
    ranks = table[real].groupby(["group", "metric", "method", "subsample"])["index"].rank(ascending=False,
                                                                                          method="min")
    table.loc[ranks.index, "rank"] = ranks
    table["ranking_stable"] = ""
    for _, part in table.groupby(["group", "metric", "method"], sort=False):
        table.loc[part.index, "ranking_stable"] = ranking_stability(part)
    order = {label: i for i, (label, _) in enumerate(SUBSAMPLES)}
    table = table.sort_values("subsample", key=lambda s: s.map(order), kind="stable")
    return _frame(table.to_dict("records"), CONVERGENCE_COLUMNS)  # stable: N/4, N/2, N within an input


def _ranked(part: pd.DataFrame) -> list[str] | None:
    """The inputs above the noise floor, by index; None when the subsample has no estimate."""
    rows = part[(part["input"] != gsa.DUMMY) & part["index"].notna()]
    if rows.empty:
        return None
    above = rows[(rows["verdict"] == gsa.ABOVE) & (rows["input"] != REPLICATE)]
    return above.sort_values(["index", "input"], ascending=[False, True], kind="stable")["input"].tolist()


def ranking_stability(part: pd.DataFrame) -> str:
    """Words on whether the ranking of one (group, metric, method) holds from N/2 to N."""
    half, full = (_ranked(part[part["subsample"] == label]) for label in ("N/2", "N"))
    if full is None:
        return "not assessed: not estimated at N"
    if half is None:
        return "not assessed: not estimated at N/2"
    if not half and not full:
        return "nothing to rank: no input above the noise floor at N/2 or N"
    if half == full:
        return "stable: the same inputs above the noise floor, in the same order, at N/2 and N"
    return f"changed from N/2 to N: [{', '.join(half)}] -> [{', '.join(full)}]"


# ------------------------------------------------------------------------------------------- pure: placement
def placement_spread(tasks: list[dict[str, Any]]) -> pd.DataFrame:
    """How much placement alone moves each metric, per group: the runs of one design point differ only in
    their placement replicate.

    Per task: ``placement_sd``, the pooled within-point SD (the square root of the mean over the design
    points of the variance, ddof 1, across a point's replicates: unbiased for the placement variance,
    where the median of two-replicate SDs is about 0.67 of it), then the median and largest SD and the
    median range across a point's replicates, beside the SD across design points of the replicate means
    (``design_point_sd``, which still holds placement variance / R), in the group's unit (pooled: the
    normalised metric); ``placement_to_design_sd`` = placement_sd / design_point_sd. With one replicate
    the placement columns are empty and ``note`` says it was not measured."""
    rows = []
    for t in tasks:
        frame = pd.DataFrame({"feeder": t["run_feeder"], "design": t["run_design"], "point": t["run_point"],
                              "replicate": t["run_replicate"], "y": t["y"]})
        frame = frame[np.isfinite(frame["y"].to_numpy(dtype=float))]
        per_point = frame.groupby(["feeder", "design", "point"], sort=True)["y"]
        means = per_point.mean()
        row = {**{k: t[k] for k in ("group", "scope", "state", "season", "feeder", "metric", "basis")},
               "replicates": int(frame["replicate"].nunique()), "design_points": len(means), "n_runs": len(frame),
               "placement_sd": np.nan, "placement_sd_median": np.nan, "placement_range_median": np.nan,
               "placement_sd_max": np.nan,
               "design_point_sd": float(means.std(ddof=1)) if len(means) > 1 else np.nan,
               "placement_to_design_sd": np.nan, "note": NOT_MEASURED}
        counts = per_point.size()
        multi = counts[counts >= 2].index
        if row["replicates"] > 1 and len(multi):
            sd = per_point.std(ddof=1).loc[multi]
            spread = (per_point.max() - per_point.min()).loc[multi]
            variance = per_point.var(ddof=1).loc[multi]
            row.update(placement_sd=float(np.sqrt(variance.mean())), placement_sd_median=float(sd.median()),
                       placement_range_median=float(spread.median()),
                       placement_sd_max=float(sd.max()),
                       note=f"{len(multi)} design point(s) with 2 or more replicates")
            if row["design_point_sd"] > 0:
                row["placement_to_design_sd"] = row["placement_sd"] / row["design_point_sd"]
        rows.append(row)
    return _frame(rows, SPREAD_COLUMNS)


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for the processes started inside the block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    if frame.empty:
        return frame
    method_order = {m: i for i, m in enumerate(("",) + METHODS)}
    input_order = {n: i for i, n in enumerate(("",) + rio.INDEPENDENT_INPUTS + (REPLICATE, gsa.DUMMY))}
    metric_order = {m: i for i, m in enumerate((*rio.HEADLINE_METRICS, rio.COST_METRIC))}
    blank = pd.Series("", index=frame.index)
    frame["_s"] = (frame["scope"] != POOLED).astype(int)
    frame["_m"] = frame["metric"].map(metric_order).fillna(99)
    frame["_me"] = frame.get("method", blank).map(method_order).fillna(99)
    frame["_i"] = frame.get("input", blank).map(input_order).fillna(99)
    frame = frame.sort_values(["state", "season", "_s", "feeder", "_m", "_me", "_i"], kind="stable")
    return frame.drop(columns=["_s", "_m", "_me", "_i"]).reset_index(drop=True)


# ------------------------------------------------------------------------------------------- plots
def _plotted_inputs(table: pd.DataFrame) -> list[str]:
    return list(rio.INDEPENDENT_INPUTS) + ([REPLICATE] if (table["input"] == REPLICATE).any() else [])


def _label(name: str) -> str:
    return rio.INPUT_LABELS.get(name, "placement replicate (placement alone)" if name == REPLICATE else name)


def plot_metric(table: pd.DataFrame, metric: str):
    """Bars of the pooled index per input with its interval, per (state, season) and method; feeders as dots.

    A bar is filled only where its interval lies above the dummy's (the grey band); where no input's
    does, the panel says "too few runs to rank inputs" over hollow bars."""
    part = table[table["metric"] == metric]
    pooled = part[part["scope"] == POOLED]
    panels = sorted({(s, se) for s, se in zip(part["state"], part["season"])})
    names = _plotted_inputs(part) if len(part) else list(rio.INDEPENDENT_INPUTS)
    labels = [_label(n) for n in names]
    unit = rio.OUTCOMES_DESCRIBED.get(metric, ("", ""))[0]
    if not panels:
        fig, axes = figures.figure(1, 1, width=8.0, height=3.0)
        axes[0, 0].text(0.5, 0.5, f"No group had enough runs to estimate the sensitivity of {metric}\n"
                                  "(see sensitivity_skipped.csv)", ha="center", va="center")
        axes[0, 0].set_axis_off()
        fig.suptitle(f"Sensitivity of {metric} [{unit}]")
        return fig
    fig, axes = figures.figure(len(panels), len(METHODS), width=5.2, height=0.45 * len(names) + 1.9, sharey=True)
    yy = np.arange(len(names))
    for r, (state, season) in enumerate(panels):
        for c, method in enumerate(METHODS):
            ax = axes[r, c]
            bars = pooled[(pooled["state"] == state) & (pooled["season"] == season) & (pooled["method"] == method)]
            verdict = str(bars["group_verdict"].iloc[0]) if len(bars) else ""
            floor = bars[bars["input"] == gsa.DUMMY]
            bars = bars.set_index("input").reindex(names)
            ok = bars["index"].notna().to_numpy()
            if len(floor):
                ax.axvspan(float(floor["conf_low"].iloc[0]), float(floor["conf_high"].iloc[0]), color="0.85",
                           zorder=0, label="dummy input's interval (noise floor)")
                ax.axvline(float(floor["index"].iloc[0]), color="0.35", ls="--", lw=1, label="dummy input's index")
            if ok.any():
                above = (bars["verdict"] == gsa.ABOVE).to_numpy() & ok
                n_runs = int(bars["n_runs"].max())
                if above.any():
                    ax.barh(yy[above], bars["index"].to_numpy()[above], color="#4c72b0", alpha=0.85,
                            label=f"all feeders, above the noise floor (n = {n_runs} runs)")
                if (ok & ~above).any():
                    ax.barh(yy[ok & ~above], bars["index"].to_numpy()[ok & ~above], facecolor="none",
                            edgecolor="0.55", hatch="//", label=f"all feeders, not distinguishable from the dummy "
                                                                f"(n = {n_runs} runs)")
                err = np.vstack([bars["index"] - bars["conf_low"], bars["conf_high"] - bars["index"]])[:, ok]
                ax.errorbar(bars["index"].to_numpy()[ok], yy[ok], xerr=np.clip(err, 0, None), fmt="none",
                            ecolor="black", capsize=3, lw=1)
            dots = part[(part["state"] == state) & (part["season"] == season) & (part["method"] == method)
                        & (part["scope"] == "feeder") & (part["input"] != gsa.DUMMY)]
            if len(dots):
                ax.scatter(dots["index"], dots["input"].map({n: i for i, n in enumerate(names)}), s=14,
                           color="#dd8452", zorder=3, label="single feeders")
            if not ok.any() and not len(dots):
                ax.text(0.5, 0.5, "not estimated\n(see sensitivity_skipped.csv)", ha="center", va="center",
                        transform=ax.transAxes, color="0.4")
            elif verdict.startswith(gsa.TOO_FEW):
                ax.text(0.5, 0.5, gsa.TOO_FEW, ha="center", va="center", transform=ax.transAxes, color="#b00020",
                        fontsize=11, fontweight="bold", bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#b00020"},
                        zorder=5)
            elif verdict:
                ax.text(0.98, 0.02, verdict.replace("above the noise floor: ", "ranked: ").replace(" (order", "\n(order"),
                        ha="right", va="bottom", transform=ax.transAxes, fontsize=7, color="#1a4d1a", zorder=5,
                        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
            ax.set_yticks(yy, labels)
            ax.invert_yaxis()
            ax.set_xlim(min(0.0, float(np.nanmin(np.append(bars["conf_low"].to_numpy(dtype=float), 0.0)))), 1)
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(f"{state} {season}: {METHOD_LABELS[method]}", fontsize=10)
            ax.set_xlabel(f"{method} index [-] (bars: {int(gsa.CONF_LEVEL * 100)} % interval)")
    _legend(fig, axes)
    basis = pooled["basis"].iloc[0] if len(pooled) else f"{metric} [{unit}]"
    fig.suptitle(f"What drives {metric} [{unit}]? Pooled: {basis}", fontsize=11)
    return fig


def _legend(fig, axes) -> None:
    handles: dict[str, object] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            key = label.split(" (n = ")[0]
            handles.setdefault(key, (handle, key if key.startswith("all feeders") else label))
    if handles:
        fig.legend([h for h, _ in handles.values()], [lab for _, lab in handles.values()], loc="outside lower center",
                   ncol=min(3, len(handles)), fontsize=8)


def plot_convergence(table: pd.DataFrame, metric: str):
    """Index against the number of runs (N/4, N/2, N) per input, pooled groups, the dummy's interval as a band.

    One panel per (state, season) and method; the title says whether the ranking held from N/2 to N."""
    part = table[(table["metric"] == metric) & (table["scope"] == POOLED)]
    panels = sorted({(s, se) for s, se in zip(part["state"], part["season"])})
    unit = rio.OUTCOMES_DESCRIBED.get(metric, ("", ""))[0]
    if not panels:
        fig, axes = figures.figure(1, 1, width=8.0, height=3.0)
        axes[0, 0].text(0.5, 0.5, f"No pooled group of {metric} to show\n(see sensitivity_skipped.csv)",
                        ha="center", va="center")
        axes[0, 0].set_axis_off()
        fig.suptitle(f"Convergence of the sensitivity of {metric} [{unit}]")
        return fig
    names = _plotted_inputs(part)
    colours = dict(zip(names, [f"C{i}" for i in range(len(names))]))
    fig, axes = figures.figure(len(panels), len(METHODS), width=5.2, height=3.4)
    for r, (state, season) in enumerate(panels):
        for c, method in enumerate(METHODS):
            ax = axes[r, c]
            cell = part[(part["state"] == state) & (part["season"] == season) & (part["method"] == method)]
            est = cell[cell["index"].notna()].sort_values("n_runs", kind="stable")
            floor = est[est["input"] == gsa.DUMMY]
            if len(floor):
                ax.fill_between(floor["n_runs"], floor["conf_low"], floor["conf_high"], color="0.85", zorder=0,
                                label="dummy input's interval (noise floor)")
                ax.plot(floor["n_runs"], floor["index"], color="0.35", ls="--", lw=1, label="dummy input's index")
            for name in names:
                line = est[est["input"] == name]
                if len(line):
                    ax.errorbar(line["n_runs"], line["index"], yerr=np.clip(np.vstack(
                        [line["index"] - line["conf_low"], line["conf_high"] - line["index"]]), 0, None),
                        color=colours[name], marker="o", ms=3, lw=1.2, capsize=2, label=_label(name))
            if est.empty:
                ax.text(0.5, 0.5, "not estimated at any N\n(see sensitivity_convergence.csv)", ha="center",
                        va="center", transform=ax.transAxes, color="0.4")
            else:
                ax.set_xscale("log", base=2)
                ticks = sorted(est["n_runs"].unique())
                ax.set_xticks(ticks, [str(int(t)) for t in ticks])
                ax.minorticks_off()
            stable = str(cell["ranking_stable"].iloc[0]) if len(cell) else ""
            ax.set_title(f"{state} {season}: {METHOD_LABELS[method]}\n{stable.split(':')[0]}", fontsize=9)
            ax.set_xlabel("runs in the subsample (N/4, N/2, N)")
            ax.set_ylabel(f"{method} index [-]")
            ax.grid(alpha=0.3)
    _legend(fig, axes)
    fig.suptitle(f"Do the rankings of {metric} hold as runs are added? (pooled groups)", fontsize=11)
    return fig


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="sensitivity_analysis.py")
    rio.add_state_filter(parser)
    parser.add_argument("--min-runs", type=cli.positive_int, default=MIN_RUNS,
                        help=f"skip a group with fewer runs (default {MIN_RUNS})")
    parser.add_argument("--resamples", type=cli.positive_int, default=RESAMPLES,
                        help=f"bootstrap resamples of the intervals (default {RESAMPLES})")
    parser.add_argument("--seed", type=cli.nonnegative_int, default=config.DOE_SEED,
                        help=f"master seed of the bootstraps (default common.config.DOE_SEED = {config.DOE_SEED})")
    parser.add_argument("--workers", type=cli.positive_int, default=1, help="worker processes (default 1)")
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv, must_exist=True)
    with rio.phase_lock(ws, Path(__file__).name):
        for flag, value, low in (("--min-runs", args.min_runs, 2), ("--resamples", args.resamples, 2)):
            if value < low:
                raise cli.UserError(f"{flag} {value}: need at least {low}")
        results = rio.load_results(ws, args.state)
        metrics = list(rio.HEADLINE_METRICS)
        missing = [m for m in metrics if m not in results.columns]
        if missing:
            raise cli.UserError(f"{rio.results_path(ws, 'xlrm_results')}: metric {missing[0]!r} missing (no ok run?): "
                                f"run {rio.PRODUCERS['xlrm_results']} on solved phase 6 runs")
        metrics = analysed_metrics(results)
        if rio.COST_METRIC in metrics:
            logger.info("the upgrade step ran: %s analysed too (pooled as %s)", rio.COST_METRIC,
                        gsa.NORMALISATION[rio.COST_METRIC][1])
        tasks, skips = analysis_groups(results, metrics, seed=args.seed)
        for task in tasks:
            task.update(min_runs=args.min_runs, resamples=args.resamples, seed=args.seed)
        subsamples = convergence_tasks(tasks, design_sizes(results), args.seed)
        logger.info("%d (group, metric) analyses on %d ok runs, and %d on subsamples (N/4, N/2) for the convergence "
                    "table (min %d runs, %d resamples, seed %d, %d worker(s))", len(tasks),
                    int((results["status"] == "ok").sum()), len(subsamples), args.min_runs, args.resamples,
                    args.seed, args.workers)
        outcomes = _outcomes(tasks + subsamples, args.workers)
        rows = [r for rs, _ in outcomes[:len(tasks)] for r in rs]
        table = add_verdicts(_frame(rows, RESULT_COLUMNS))
        skipped = _frame([s for _, ss in outcomes[:len(tasks)] for s in ss] + skips, SKIP_COLUMNS)
        sub_rows = []
        sub_skips = [{**s, "subsample": "N"} for _, ss in outcomes[:len(tasks)] for s in ss]
        for task, (rs, ss) in zip(subsamples, outcomes[len(tasks):]):
            sub_rows += [{**r, "subsample": task["subsample"]} for r in rs]
            sub_skips += [{**s, "subsample": task["subsample"]} for s in ss]
        convergence = convergence_table(table, sub_rows, sub_skips)
        spread = placement_spread(tasks)
        for row in skipped.itertuples():
            logger.info("skipped %s %s %s%s: %s", row.group, row.metric, row.method or "all methods",
                        f" {row.input}" if row.input else "", row.reason)
        write_csv(rio.results_path(ws, "sensitivity"), table)
        write_csv(rio.results_path(ws, "sensitivity_skipped"), skipped)
        write_csv(rio.results_path(ws, "sensitivity_convergence"), convergence)
        write_csv(rio.results_path(ws, "placement_spread"), spread)
        for metric in metrics:
            save_figure(plot_metric(table, metric), rio.plots_dir(ws) / f"sensitivity_{metric}.png")
            save_figure(plot_convergence(convergence, metric), rio.plots_dir(ws) / f"convergence_{metric}.png")
        replicates = int(with_placement(results)[REPLICATE].max()) + 1 if len(results) else 1
        write_manifest(ws.results_dir, "7_results_analysis/sensitivity_analysis.py", {
            "states": sorted(results["state"].unique().tolist()), "metrics": metrics,
            "inputs": list(rio.INDEPENDENT_INPUTS) + ([REPLICATE] if replicates > 1 else []),
            "methods": list(METHODS), "min_runs": args.min_runs,
            "delta_min_runs": gsa.DELTA_MIN_RUNS, "resamples": args.resamples, "seed": args.seed,
            "conf_level": gsa.CONF_LEVEL, "normalisation": {m: list(gsa.NORMALISATION[m]) for m in metrics},
            "placement_replicates": replicates, "convergence_subsamples": [label for label, _ in SUBSAMPLES],
            "convergence_subsampling": SUBSAMPLING, "rows": len(table), "skipped": len(skipped)},
            name="manifest_sensitivity_analysis.json")
        if replicates == 1:
            logger.info("%s", NOT_MEASURED)
        verdicts = table[table["scope"] == POOLED].drop_duplicates(["state", "season", "metric", "method"])
        for row in verdicts.itertuples():
            logger.info("%s %s %s %s: %s", row.state, row.season, row.metric, row.method, row.group_verdict)
        logger.info("%d indices, %d skipped -> %s", len(table), len(skipped), rio.results_path(ws, "sensitivity"))
        return 0


if __name__ == "__main__":
    sys.exit(main())
