"""Global sensitivity of the headline outcomes to the study's inputs: delta and PAWN with intervals.

Description
    For each headline metric (``results_io.HEADLINE_METRICS``: ``peak_kw``,
    ``ansi_a_violation_node_intervals``, ``worst_transformer_loading_pct``, ``losses_pct``) and each
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

    A group with fewer runs than ``--min-runs`` (default ``MIN_RUNS``), a metric that is constant
    over a group, or (delta only) fewer runs than ``gsa_methods.DELTA_MIN_RUNS`` or more than
    ``gsa_methods.POINT_MASS_SHARE`` of the runs on one value (a count that is mostly 0) is skipped
    with the reason logged and written to ``sensitivity_skipped.csv``. Every analysis also scores a
    ``dummy`` input (uniform noise the model never sees): its index is the noise floor at that
    sample size, and an input whose index is not clearly above it has no detectable effect. Randomness (bootstrap) comes from
    ``numpy.random.SeedSequence(--seed, spawn_key=CRC-32 of group, metric, method)``: the same inputs
    give the same bytes whatever the order or the number of ``--workers``.

    One bar chart per metric (``plots/sensitivity_<metric>.png``): per (state, season), the pooled
    index of each input with its interval, per method, each feeder's index as a dot, and the dummy
    input's index as a dashed line.

Inputs
    <data>/7_results_analysis/xlrm_results.parquet      (append_experiment_results.py)

Outputs (``<data>/7_results_analysis/``)
    sensitivity.csv          group, scope (feeder / pooled), state, season, feeder, metric, basis, input,
                             method (delta / pawn), index, conf_low, conf_high, conf_level, n_runs,
                             n_feeders, designs, resamples, pawn_slices, seed
    sensitivity_skipped.csv  group, scope, state, season, feeder, metric, method, input, n_runs, reason
    plots/sensitivity_<metric>.png
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
RESULT_COLUMNS = ("group", "scope", "state", "season", "feeder", "metric", "basis", "input", "method", "index",
                  "conf_low", "conf_high", "conf_level", "n_runs", "n_feeders", "designs", "resamples",
                  "pawn_slices", "seed")
SKIP_COLUMNS = ("group", "scope", "state", "season", "feeder", "metric", "method", "input", "n_runs", "reason")
POOLED = "pooled"
#: environment of the worker processes: one BLAS thread each (the work is many small solves)
BLAS_THREADS_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ------------------------------------------------------------------------------------------- pure: groups
def analysis_groups(results: pd.DataFrame, metrics: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The (group, metric) data sets: per feeder (raw metric) and pooled per (state, season) (normalised).

    Returns the tasks (inputs ``x``, metric ``y`` and their description) and the skips found on the way
    (feeders without a reference run).
    """
    ok = results[results["status"] == "ok"]
    runs = ok[ok["case"] != rio.REFERENCE_CASE]
    reference = ok[ok["case"] == rio.REFERENCE_CASE]
    tasks, skips = [], []
    for (state, season), season_runs in runs.groupby(["state", "season"], sort=True):
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
            ref = reference[(reference["state"] == state) & (reference["season"] == season)
                            & (reference["feeder"] == feeder)]
            for metric in metrics:
                y = pd.to_numeric(part[metric], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                tasks.append({"group": f"{state} {season} {feeder}", "scope": "feeder", "state": state,
                              "season": season, "feeder": feeder, "metric": metric,
                              "basis": rio.METRICS.get(metric, ("", ""))[0], "x": part[list(rio.INDEPENDENT_INPUTS)]
                              .to_numpy(dtype=float), "y": y, "n_feeders": 1, "designs": designs})
                how, _ = gsa.NORMALISATION[metric]
                ref_values = pd.to_numeric(ref[metric], errors="coerce").dropna()
                if ref_values.empty:
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
                pooled[metric].append((part, z, designs))
        for metric in metrics:
            if not pooled[metric]:
                continue
            parts = pooled[metric]
            tasks.append({"group": f"{state} {season} {POOLED}", "scope": POOLED, "state": state, "season": season,
                          "feeder": "", "metric": metric, "basis": gsa.NORMALISATION[metric][1],
                          "x": np.vstack([p[list(rio.INDEPENDENT_INPUTS)].to_numpy(dtype=float) for p, _, _ in parts]),
                          "y": np.concatenate([z for _, z, _ in parts]), "n_feeders": len(parts),
                          "designs": "+".join(sorted({d for _, _, ds in parts for d in ds.split("+")}))})
    return tasks, skips


def run_tasks(tasks: list[dict[str, Any]], workers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, skips = [], []
    if workers > 1 and len(tasks) > 1:
        # fresh interpreters with single-threaded BLAS: forked workers inherit OpenBLAS's thread pool,
        # and several multi-threaded pools on few cores slow each other down many times over
        with _environment(BLAS_THREADS_ENV), ProcessPoolExecutor(max_workers=workers,
                                                                 mp_context=get_context("spawn")) as pool:
            outcomes = list(pool.map(gsa.analyse, tasks, chunksize=1))
    else:
        outcomes = [gsa.analyse(t) for t in tasks]
    for r, s in outcomes:
        rows += r
        skips += s
    return _frame(rows, RESULT_COLUMNS), _frame(skips, SKIP_COLUMNS)


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
    input_order = {n: i for i, n in enumerate(("",) + rio.INDEPENDENT_INPUTS + (gsa.DUMMY,))}
    metric_order = {m: i for i, m in enumerate(rio.HEADLINE_METRICS)}
    frame["_s"] = (frame["scope"] != POOLED).astype(int)
    frame["_m"] = frame["metric"].map(metric_order).fillna(99)
    frame["_me"] = frame["method"].map(method_order).fillna(99)
    frame["_i"] = frame["input"].map(input_order).fillna(99)
    frame = frame.sort_values(["state", "season", "_s", "feeder", "_m", "_me", "_i"], kind="stable")
    return frame.drop(columns=["_s", "_m", "_me", "_i"]).reset_index(drop=True)


# ------------------------------------------------------------------------------------------- plots
def plot_metric(table: pd.DataFrame, metric: str):
    """Bars of the pooled index per input with its interval, per (state, season) and method; feeders as dots."""
    part = table[table["metric"] == metric]
    pooled = part[part["scope"] == POOLED]
    panels = sorted({(s, se) for s, se in zip(part["state"], part["season"])})
    names = list(rio.INDEPENDENT_INPUTS)
    labels = [rio.INPUT_LABELS[n] for n in names]
    unit = rio.METRICS.get(metric, ("", ""))[0]
    if not panels:
        fig, axes = figures.figure(1, 1, width=8.0, height=3.0)
        axes[0, 0].text(0.5, 0.5, f"No group had enough runs to estimate the sensitivity of {metric}\n"
                                  "(see sensitivity_skipped.csv)", ha="center", va="center")
        axes[0, 0].set_axis_off()
        fig.suptitle(f"Sensitivity of {metric} [{unit}]")
        return fig
    fig, axes = figures.figure(len(panels), len(METHODS), width=5.2, height=0.45 * len(names) + 1.6, sharey=True)
    yy = np.arange(len(names))
    for r, (state, season) in enumerate(panels):
        for c, method in enumerate(METHODS):
            ax = axes[r, c]
            bars = pooled[(pooled["state"] == state) & (pooled["season"] == season) & (pooled["method"] == method)]
            bars = bars.set_index("input").reindex(names)
            ok = bars["index"].notna().to_numpy()
            if ok.any():
                ax.barh(yy[ok], bars["index"].to_numpy()[ok], color="#4c72b0", alpha=0.85,
                        label=f"all feeders (n = {int(bars['n_runs'].max())} runs)")
                err = np.vstack([bars["index"] - bars["conf_low"], bars["conf_high"] - bars["index"]])[:, ok]
                ax.errorbar(bars["index"].to_numpy()[ok], yy[ok], xerr=np.clip(err, 0, None), fmt="none",
                            ecolor="black", capsize=3, lw=1)
            dots = part[(part["state"] == state) & (part["season"] == season) & (part["method"] == method)
                        & (part["scope"] == "feeder") & (part["input"] != gsa.DUMMY)]
            if len(dots):
                ax.scatter(dots["index"], dots["input"].map({n: i for i, n in enumerate(names)}), s=14,
                           color="#dd8452", zorder=3, label="single feeders")
            floor = pooled[(pooled["state"] == state) & (pooled["season"] == season) & (pooled["method"] == method)
                           & (pooled["input"] == gsa.DUMMY)]
            if len(floor):
                ax.axvline(float(floor["index"].iloc[0]), color="0.35", ls="--", lw=1,
                           label="dummy input (noise floor)")
            if not ok.any() and not len(dots):
                ax.text(0.5, 0.5, "not estimated\n(see sensitivity_skipped.csv)", ha="center", va="center",
                        transform=ax.transAxes, color="0.4")
            ax.set_yticks(yy, labels)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(f"{state} {season}: {METHOD_LABELS[method]}", fontsize=10)
            ax.set_xlabel(f"{method} index [-] (bars: {int(gsa.CONF_LEVEL * 100)} % interval)")
    handles: dict[str, object] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            key = label.split(" (n = ")[0]
            handles.setdefault(key, (handle, label if key != "all feeders" else "all feeders (pooled)"))
    if handles:
        fig.legend([h for h, _ in handles.values()], [lab for _, lab in handles.values()], loc="outside lower center",
                   ncol=len(handles), fontsize=8)
    basis = pooled["basis"].iloc[0] if len(pooled) else f"{metric} [{unit}]"
    fig.suptitle(f"What drives {metric} [{unit}]? Pooled: {basis}", fontsize=11)
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
        tasks, skips = analysis_groups(results, metrics)
        names = list(rio.INDEPENDENT_INPUTS)
        bounds = [(rio.INPUT_BY_NAME[n].low, rio.INPUT_BY_NAME[n].high) for n in names]
        for task in tasks:
            task.update(min_runs=args.min_runs, resamples=args.resamples, seed=args.seed, names=names, bounds=bounds)
        logger.info("%d (group, metric) analyses on %d ok runs (min %d runs, %d resamples, seed %d, %d worker(s))",
                    len(tasks), int((results["status"] == "ok").sum()), args.min_runs, args.resamples, args.seed,
                    args.workers)
        table, skipped = run_tasks(tasks, args.workers)
        skipped = _frame(skipped.to_dict("records") + skips, SKIP_COLUMNS) if skips else skipped
        for row in skipped.itertuples():
            logger.info("skipped %s %s %s%s: %s", row.group, row.metric, row.method or "all methods",
                        f" {row.input}" if row.input else "", row.reason)
        write_csv(rio.results_path(ws, "sensitivity"), table)
        write_csv(rio.results_path(ws, "sensitivity_skipped"), skipped)
        for metric in metrics:
            save_figure(plot_metric(table, metric), rio.plots_dir(ws) / f"sensitivity_{metric}.png")
        write_manifest(ws.results_dir, "7_results_analysis/sensitivity_analysis.py", {
            "states": sorted(results["state"].unique().tolist()), "metrics": metrics,
            "inputs": list(rio.INDEPENDENT_INPUTS), "methods": list(METHODS), "min_runs": args.min_runs,
            "delta_min_runs": gsa.DELTA_MIN_RUNS, "resamples": args.resamples, "seed": args.seed,
            "conf_level": gsa.CONF_LEVEL, "normalisation": {k: list(v) for k, v in gsa.NORMALISATION.items()},
            "rows": len(table), "skipped": len(skipped)}, name="manifest_sensitivity_analysis.json")
        top = table[table["scope"] == POOLED].sort_values("index", ascending=False, kind="stable")
        for (state, season, metric), part in top.groupby(["state", "season", "metric"], sort=True):
            best = part.iloc[0]
            logger.info("%s %s %s: most influential %s (%s %.2f)", state, season, metric, best["input"], best["method"],
                        best["index"])
        logger.info("%d indices, %d skipped -> %s", len(table), len(skipped), rio.results_path(ws, "sensitivity"))
        return 0


if __name__ == "__main__":
    sys.exit(main())
