"""Figures a distribution planner reads at a glance: peaks, storage, where feeders fail, LHS against Sobol.

Description
    From ``xlrm_results.parquet`` (runs with status ``ok``), PNG figures in ``plots/``:

    * ``peak_distribution_<STATE>.png``: the feeder-head peak [kW] of every run per feeder, as box
      plots per season and design with the runs as points and the reference case "0" as a black
      diamond (log scale when the feeders' peaks differ more than ``LOG_SCALE_RATIO`` times);
    * ``storage_peak_reduction.png``: peak reduction by the batteries [% of the peak without them]
      against the storage share of three-phase customers [%], per state and season, a colour per
      feeder;
    * ``failure_map_<STATE>.png``: every case on the plane of EV share [%] x heat-pump adoption
      (``hp_adoption`` = 1 - baseline share, demand-managed and uncontrolled together) [%], two
      independent inputs of the designs, one panel per season: green where it is ok on every feeder, otherwise coloured by the
      share of feeders that fail any planning criterion (``common.config.FAILURE_CRITERIA``:
      transformer overload, line overload, sustained undervoltage; ``results_io.planning_failures``); circles LHS, squares Sobol, star the reference case;
    * ``ecdf_lhs_vs_sobol.png``: the empirical distribution of two outcomes per design, per state and
      season (feeder-head peak as % change against each feeder's reference case, and the worst
      transformer loading [%]), with the Kolmogorov-Smirnov distance between the designs
      (``scipy.stats.ks_2samp``): how alike the two designs cover the outcomes;
    * ``upgrade_cost_<STATE>.png`` (only where phase 6's upgrade step ran, ``--upgrades``; else any earlier
      one is removed): the upgrade cost [USD] of every run per feeder, a box and the runs as points per
      season, coloured by policy in a cross layout, the reference case "0" as a black diamond, runs the
      upgrades left unsolved as crosses and ``common.config.UPGRADES["cost_threshold_usd"]`` as a dashed line.

    The sensitivity bars and the PRIM figures are drawn by ``sensitivity_analysis.py`` and
    ``scenario_discovery.py``.

Inputs
    <data>/7_results_analysis/xlrm_results.parquet      (append_experiment_results.py)

Outputs (``<data>/7_results_analysis/plots/``)
    peak_distribution_<STATE>.png, storage_peak_reduction.png, failure_map_<STATE>.png, ecdf_lhs_vs_sobol.png,
    upgrade_cost_<STATE>.png (with upgrade costs)
    <data>/7_results_analysis/manifest_plot_results.json

Settings read
    common.config: SEASONS, DESIGNS, FAILURE_CRITERIA (through results_io.planning_failures),
    UPGRADES["cost_threshold_usd"]; results_io.INPUT_LABELS.

Usage
    python 7_results_analysis/plot_results.py [--data-dir DATA] [--state NC]
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

import results_io as rio
from common import cli, config, figures
from common.io import save_figure, write_manifest

logger = logging.getLogger(__name__)

LOG_SCALE_RATIO = 20.0
SEASON_COLOURS = {"summer": "#dd8452", "winter": "#4c72b0"}
DESIGN_MARKERS = {"lhs": "o", "sobol": "s"}
DESIGN_STYLES = {"lhs": "-", "sobol": "--"}
#: seed of the horizontal jitter of the points (layout only)
JITTER_SEED = 7


# ------------------------------------------------------------------------------------------- pure
def peak_change_pct(results: pd.DataFrame) -> pd.Series:
    """Peak of each run as % change against its feeder's reference case 0 of the same state and season."""
    ref = (results[results["case"] == rio.REFERENCE_CASE].groupby(["state", "season", "feeder"])["peak_kw"].mean()
           .rename("ref"))
    joined = results.join(ref, on=["state", "season", "feeder"])
    return 100.0 * (joined["peak_kw"] / joined["ref"] - 1.0)


def failure_shares(results: pd.DataFrame) -> pd.DataFrame:
    """Per (state, season, design, case): inputs (EV share, heat-pump adoption and demand-managed fraction,
    and the dm and un shares they come from), feeders run, feeders failing, share failing."""
    results = rio.with_factors(results)
    flags = rio.planning_failures(results)
    frame = results.assign(fails=flags["fails"].to_numpy())
    grouped = frame.groupby(["state", "season", "design", "case"], sort=True)
    out = grouped.agg(ev_perc=("ev_perc", "first"), hp_adoption=("hp_adoption", "first"),
                      hp_dm_fraction=("hp_dm_fraction", "first"), shares_dm=("shares.dm", "first"),
                      shares_un=("shares.un", "first"), n_feeders=("feeder", "nunique"),
                      n_failing=("fails", "sum")).reset_index()
    out["share_failing"] = out["n_failing"] / out["n_feeders"]
    return out


def ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.sort(np.asarray(values, dtype=float))
    v = v[np.isfinite(v)]
    return v, np.arange(1, len(v) + 1) / max(1, len(v))


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance of the finite values (``scipy.stats.ks_2samp``'s
    statistic; NaN when a sample has none)."""
    from scipy.stats import ks_2samp

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not len(a) or not len(b):
        return float("nan")
    return float(ks_2samp(a, b).statistic)


# ------------------------------------------------------------------------------------------- figures
def plot_peaks(runs: pd.DataFrame, state: str):
    part = runs[runs["state"] == state]
    feeders = sorted(part["feeder"].unique())
    combos = [(s, d) for s in config.SEASONS for d in config.DESIGNS if ((part["season"] == s) & (part["design"] == d)).any()]
    fig, axes = figures.figure(1, 1, width=max(6.0, 1.1 * len(feeders) * max(1, len(combos)) / 2 + 2), height=4.6)
    ax = axes[0, 0]
    rng = np.random.default_rng(JITTER_SEED)
    width = 0.8 / max(1, len(combos))
    for f, feeder in enumerate(feeders):
        for c, (season, design) in enumerate(combos):
            sub = part[(part["feeder"] == feeder) & (part["season"] == season) & (part["design"] == design)]
            pos = f + (c - (len(combos) - 1) / 2) * width
            design_runs = sub[sub["case"] != rio.REFERENCE_CASE]["peak_kw"].to_numpy(dtype=float)
            if len(design_runs):
                ax.boxplot(design_runs, positions=[pos], widths=width * 0.8, showfliers=False, patch_artist=True,
                           boxprops={"facecolor": SEASON_COLOURS.get(season, "0.7"), "alpha": 0.35},
                           medianprops={"color": "black"})
                ax.scatter(pos + rng.uniform(-width * 0.25, width * 0.25, len(design_runs)), design_runs, s=9,
                           color=SEASON_COLOURS.get(season, "0.5"), marker=DESIGN_MARKERS.get(design, "o"), zorder=3,
                           alpha=0.8)
            ref = sub[sub["case"] == rio.REFERENCE_CASE]["peak_kw"]
            if len(ref):
                ax.scatter([pos], [ref.mean()], marker="D", color="black", s=22, zorder=4)
    ax.set_xticks(range(len(feeders)), feeders, rotation=30 if len(feeders) > 3 else 0, ha="right" if len(feeders) > 3 else "center",
                  fontsize=8)
    peaks = part["peak_kw"].to_numpy(dtype=float)
    if len(peaks) and np.nanmin(peaks) > 0 and np.nanmax(peaks) / np.nanmin(peaks) > LOG_SCALE_RATIO:
        ax.set_yscale("log")
    ax.set_ylabel("feeder-head peak [kW]")
    ax.set_xlabel("feeder")
    ax.grid(axis="y", alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=SEASON_COLOURS.get(s, "0.5"), marker=DESIGN_MARKERS.get(d, "o"), ls="",
                      label=f"{s}, {d.upper()}") for s, d in combos]
    handles.append(Line2D([], [], color="black", marker="D", ls="", label="reference case 0"))
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_title(f"{state}: design-day peak per feeder, season and design ({len(part)} runs)")
    return fig


def plot_storage(runs: pd.DataFrame):
    panels = sorted({(s, se) for s, se in zip(runs["state"], runs["season"])})
    fig, axes = figures.figure(1, max(1, len(panels)), width=4.8, height=4.0, sharey=True)
    feeders = sorted(runs["feeder"].unique())
    from matplotlib import colormaps

    cmap = colormaps["tab20" if len(feeders) > 10 else "tab10"]
    colour = {f: cmap(i % cmap.N) for i, f in enumerate(feeders)}
    for ax, (state, season) in zip(axes.flat, panels):
        sub = runs[(runs["state"] == state) & (runs["season"] == season)]
        for feeder, part in sub.groupby("feeder", sort=True):
            ax.scatter(100 * part["storage_perc_3ph"], part["storage_peak_reduction_pct"], s=16, color=colour[feeder],
                       label=feeder if len(feeders) <= 12 else None, alpha=0.8)
        ax.set_xlabel("storage share of three-phase customers [%]")
        ax.set_title(f"{state} {season}")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("peak reduction by storage [% of peak without it]")
    if len(feeders) <= 12 and panels:
        axes[0, -1].legend(fontsize=7, title="feeder", title_fontsize=7)
    fig.suptitle("What the peak-shaving batteries take off the feeder-head peak")
    return fig


def plot_failure_map(runs: pd.DataFrame, state: str):
    from matplotlib.colors import Normalize

    shares = failure_shares(runs[runs["state"] == state])
    seasons = [s for s in config.SEASONS if (shares["season"] == s).any()]
    fig, axes = figures.figure(1, max(1, len(seasons)), width=4.8, height=4.4, sharey=True)
    norm = Normalize(0.0, 1.0)
    mappable = None
    for ax, season in zip(axes.flat, seasons):
        sub = shares[shares["season"] == season]
        n_feeders = int(sub["n_feeders"].max())
        for design, part in sub.groupby("design", sort=True):
            for is_ref, marker in ((False, DESIGN_MARKERS.get(design, "o")), (True, "*")):
                pts = part[(part["case"] == rio.REFERENCE_CASE) == is_ref]
                ok = pts[pts["n_failing"] == 0]
                bad = pts[pts["n_failing"] > 0]
                ax.scatter(100 * ok["ev_perc"], 100 * ok["hp_adoption"], marker=marker, s=60 if is_ref else 30,
                           color="#55a868", edgecolors="black", linewidths=0.3)
                mappable = ax.scatter(100 * bad["ev_perc"], 100 * bad["hp_adoption"], marker=marker,
                                      s=60 if is_ref else 30, c=bad["share_failing"], cmap="Reds", norm=norm,
                                      edgecolors="black", linewidths=0.3)
        n_fail = int((sub["n_failing"] > 0).sum())
        ax.set_title(f"{state} {season}: {n_fail} of {len(sub)} cases fail on a feeder ({n_feeders} feeders)",
                     fontsize=9)
        ax.set_xlabel("EV share of residential customers [%]")
        ax.set_xlim(0, 100)
        ax.set_ylim(-2, 100)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("heat-pump adoption, 1 - baseline share [% of customers]")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="#55a868", marker="o", ls="", markeredgecolor="black", label="ok on every feeder")]
    handles += [Line2D([], [], color="0.6", marker=m, ls="", label=d.upper()) for d, m in DESIGN_MARKERS.items()]
    handles.append(Line2D([], [], color="0.6", marker="*", ls="", markersize=10, label="reference case 0"))
    axes[0, 0].legend(handles=handles, fontsize=7, loc="upper right")
    if mappable is not None:
        fig.colorbar(mappable, ax=list(axes.flat), label="share of feeders that fail", shrink=0.8)
    fig.suptitle("Where feeders fail any planning criterion (transformer or line overload, sustained undervoltage)")
    return fig


def plot_ecdf(runs: pd.DataFrame):
    panels = sorted({(s, se) for s, se in zip(runs["state"], runs["season"])})
    outcomes = (("peak_change_pct", "peak change vs reference case [%]"),
                ("worst_transformer_loading_pct", "worst transformer loading [%]"))
    fig, axes = figures.figure(len(outcomes), max(1, len(panels)), width=4.4, height=3.4)
    design_runs = runs[runs["case"] != rio.REFERENCE_CASE]
    for c, (state, season) in enumerate(panels):
        sub = design_runs[(design_runs["state"] == state) & (design_runs["season"] == season)]
        for r, (column, label) in enumerate(outcomes):
            ax = axes[r, c]
            samples = {d: sub[sub["design"] == d][column].to_numpy(dtype=float) for d in config.DESIGNS
                       if (sub["design"] == d).any()}
            for design, values in samples.items():
                x, y = ecdf(values)
                ax.step(x, y, where="post", ls=DESIGN_STYLES.get(design, "-"), label=f"{design.upper()} (n = {len(x)})")
            if len(samples) == 2:
                a, b = samples.values()
                ax.text(0.98, 0.04, f"KS distance {ks_distance(a, b):.2f}", transform=ax.transAxes, ha="right",
                        fontsize=8)
            ax.set_xlabel(label)
            ax.set_ylabel("share of runs at or below")
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="upper left")
            ax.set_title(f"{state} {season}", fontsize=10)
    fig.suptitle("Do LHS and Sobol cover the outcomes alike? (all feeders, reference case left out)")
    return fig


POLICY_COLOURS = ("#8c8c8c", "#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#dd8452")
#: the upgrade-cost figure's file name per state
COST_FIGURE = "upgrade_cost_{state}.png"


def plot_upgrade_costs(runs: pd.DataFrame, state: str):
    """The upgrade cost [USD] of every run with one, per feeder (x) and season (box and points); points coloured
    by policy in a cross layout; runs with violations left unsolved as crosses (their cost is a lower bound);
    the reference case as a black diamond; the cost threshold of scenario discovery as a dashed line."""
    part = runs[(runs["state"] == state)].copy()
    part["cost"] = pd.to_numeric(part[rio.COST_METRIC], errors="coerce").astype(float)
    part = part[part["cost"].notna()]
    feeders = sorted(part["feeder"].unique())
    seasons = [s for s in config.SEASONS if (part["season"] == s).any()]
    cross = rio.is_cross(part)
    policies = sorted(int(p) for p in pd.to_numeric(part["policy"], errors="coerce").dropna().unique() if p > 0) \
        if cross else []
    colour = {p: POLICY_COLOURS[i % len(POLICY_COLOURS)] for i, p in enumerate(policies)}
    fig, axes = figures.figure(1, 1, width=max(6.0, 1.3 * len(feeders) * max(1, len(seasons)) + 2), height=4.6)
    ax = axes[0, 0]
    rng = np.random.default_rng(JITTER_SEED)
    width = 0.8 / max(1, len(seasons))
    unsolved = pd.to_numeric(part.get("upgrade_unsolved", pd.Series(0, index=part.index)), errors="coerce").fillna(0)
    for f, feeder in enumerate(feeders):
        for c, season in enumerate(seasons):
            sub = part[(part["feeder"] == feeder) & (part["season"] == season)]
            pos = f + (c - (len(seasons) - 1) / 2) * width
            futures = sub[sub["case"] != rio.REFERENCE_CASE]
            values = futures["cost"].to_numpy(dtype=float) / 1e3
            if len(values):
                ax.boxplot(values, positions=[pos], widths=width * 0.8, showfliers=False, patch_artist=True,
                           boxprops={"facecolor": SEASON_COLOURS.get(season, "0.7"), "alpha": 0.25},
                           medianprops={"color": "black"})
                x = pos + rng.uniform(-width * 0.3, width * 0.3, len(values))
                if cross:
                    ids = pd.to_numeric(futures["policy"], errors="coerce").fillna(0).astype(int)
                    colours = np.array([colour.get(p, "0.5") for p in ids], dtype=object)
                else:
                    colours = np.full(len(values), SEASON_COLOURS.get(season, "0.5"), dtype=object)
                left = (unsolved.loc[futures.index] > 0).to_numpy()
                ax.scatter(x[~left], values[~left], s=12, c=list(colours[~left]), zorder=3, alpha=0.85)
                if left.any():
                    ax.scatter(x[left], values[left], s=26, marker="x", color="black", zorder=4)
            ref = sub[sub["case"] == rio.REFERENCE_CASE]["cost"]
            if len(ref):
                ax.scatter([pos], [ref.mean() / 1e3], marker="D", color="black", s=22, zorder=5)
    threshold = rio.cost_threshold_usd() / 1e3
    ax.axhline(threshold, color="#b00020", ls="--", lw=1)
    ax.set_xticks(range(len(feeders)), feeders, rotation=30 if len(feeders) > 3 else 0,
                  ha="right" if len(feeders) > 3 else "center", fontsize=8)
    ax.set_ylabel("upgrade cost [thousand USD]")
    ax.set_xlabel("feeder")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    from matplotlib.lines import Line2D

    if cross:
        names = part.assign(p=pd.to_numeric(part["policy"], errors="coerce")).groupby("p")["policy_name"].first()
        handles = [Line2D([], [], color=colour[p], marker="o", ls="", label=f"{p}: {names[p]}") for p in policies]
    else:
        handles = [Line2D([], [], color=SEASON_COLOURS.get(s, "0.5"), marker="o", ls="", label=s) for s in seasons]
    if cross:
        from matplotlib.patches import Patch

        handles += [Patch(facecolor=SEASON_COLOURS.get(s, "0.7"), alpha=0.25, edgecolor="black", label=f"box: {s}")
                    for s in seasons]
    handles += [Line2D([], [], color="black", marker="D", ls="", label="reference case 0"),
                Line2D([], [], color="black", marker="x", ls="", label="violations left unsolved (lower bound)"),
                Line2D([], [], color="#b00020", ls="--", label=f"threshold {threshold:,.0f} thousand USD")]
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    ax.set_title(f"{state}: upgrade cost per run ({len(part)} runs; NREL DISCO's method and unit costs)", fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="plot_results.py")
    rio.add_state_filter(parser)
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv, must_exist=True)
    with rio.phase_lock(ws, Path(__file__).name):
        results = rio.load_results(ws, args.state)
        runs = results[results["status"] == "ok"].copy()
        if runs.empty:
            raise cli.UserError(f"no ok run in {rio.results_path(ws, 'xlrm_results')}: nothing to plot")
        runs["peak_change_pct"] = peak_change_pct(runs)
        out = rio.plots_dir(ws)
        written = []
        for state in sorted(runs["state"].unique()):
            written.append(save_figure(plot_peaks(runs, state), out / f"peak_distribution_{state}.png"))
            written.append(save_figure(plot_failure_map(runs, state), out / f"failure_map_{state}.png"))
        written.append(save_figure(plot_storage(runs), out / "storage_peak_reduction.png"))
        written.append(save_figure(plot_ecdf(runs), out / "ecdf_lhs_vs_sobol.png"))
        costed = {state for state in runs["state"].unique() if rio.has_upgrade_costs(runs[runs["state"] == state])}
        for state in sorted(costed):
            written.append(save_figure(plot_upgrade_costs(runs, state), out / COST_FIGURE.format(state=state)))
        for state in config.STATES:  # an earlier run's cost figure would tell of upgrades these results do not hold
            stale = out / COST_FIGURE.format(state=state)
            if state not in costed and stale.is_file() and (args.state is None or state in args.state):
                stale.unlink()
                logger.info("%s removed: no upgrade cost in these results for %s", stale.name, state)
        write_manifest(ws.results_dir, "7_results_analysis/plot_results.py", {
            "states": sorted(runs["state"].unique().tolist()), "runs_ok": len(runs),
            "figures": [p.name for p in written]}, name="manifest_plot_results.json")
        logger.info("%d figures -> %s", len(written), out)
        return 0


if __name__ == "__main__":
    sys.exit(main())
