"""Scenario discovery: which input ranges concentrate the runs where the feeder fails (PRIM boxes).

Description
    "The feeder fails" when a run has any customer node-interval below ANSI C84.1 Range A
    (``ansi_a_under_node_intervals > 0``) or any transformer above its rating
    (``worst_transformer_loading_pct > THERMAL["overload_pct"]`` = 100 %): ``results_io.planning_failures``.
    PRIM (``prim_peeling``: peeling, pasting, covering; Friedman and Fisher 1999, Bryant and Lempert
    2010) searches the seven independent inputs (``results_io.INDEPENDENT_INPUTS``: the heat-pump
    shares enter as their independent coordinates ``hp_adoption`` = 1 - baseline and
    ``hp_dm_fraction`` = dm / (dm + un), ``common.doe.FACTORS``; the dependent shares themselves
    are not searched) for boxes (a range per input) where failures concentrate, for each group:

    * ``season``: per (state, season), every feeder and both designs together;
    * ``state``: per state, all seasons pooled;
    * ``feeder``: per (state, season, feeder), where a planner acts (in the tables, not the figures).

    Runs used: status ``ok``, the fixed reference case "0" left out (not a draw of the design), and
    any run without heat pumps (``hp_dm_fraction`` undefined; logged; no sampled case has none). The
    box of a group is the step of its peeling trajectory with the highest density among those
    covering at least ``--min-coverage`` of the failures (``prim_peeling.select_step``). Its
    statistics: coverage (share of the group's failures inside the box), density (share of the runs
    inside the box that fail), mass (share of the group's runs inside), and per restricted input a
    quasi-p value (small: the restriction matters). A group with no failure, with only failures, or
    with fewer than ``--min-runs`` runs gets a row saying so and no box. Failures are concentrated by
    feeder as well as by inputs (the inputs of a case are the same on every feeder): read a pooled
    box together with the failure counts per feeder of the report.

Inputs
    <data>/7_results_analysis/xlrm_results.parquet      (append_experiment_results.py)

Outputs (``<data>/7_results_analysis/``)
    prim_boxes.csv        group, scope (season / state / feeder), state, season, feeder, status (box / no_failures / all_failures / too_few_runs),
                          n_runs, n_failures, n_undervoltage, n_overload, base_rate, box, step, coverage,
                          density, mass, n_in_box, n_failures_in_box, n_restricted, rule, then per input
                          <input>.min, <input>.max (the box; unrestricted = the data's range),
                          <input>.qp (quasi-p value of a restricted input)
    prim_trajectory.csv   group, scope, state, season, feeder, box, step, phase (start / peel / paste), coverage,
                          density, mass, n_in_box, n_failures_in_box, n_restricted, selected,
                          <input>.min, <input>.max
    plots/prim_boxes.png, plots/prim_trajectory.png   (season and state groups)
    manifest_scenario_discovery.json

Settings read
    common.config: THERMAL["overload_pct"], ANSI_RANGE_A (through the phase 6 metrics);
    common.doe.PARAMETERS, FACTORS (design ranges of the inputs, for the plots).

Usage
    python 7_results_analysis/scenario_discovery.py [--data-dir DATA] [--state NC] [--min-coverage 0.8]
        [--peel-alpha 0.05] [--paste-alpha 0.05] [--mass-min 0.05] [--max-boxes 1] [--min-runs 10]
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

import prim_peeling as prim
import results_io as rio
from common import cli, config, figures
from common.io import save_figure, write_csv, write_manifest

logger = logging.getLogger(__name__)

MIN_RUNS = 10
MIN_COVERAGE = 0.8
PEEL_ALPHA = 0.05
PASTE_ALPHA = 0.05
MASS_MIN = 0.05
ALL_SEASONS = "all"


# ------------------------------------------------------------------------------------------- pure
def discovery_groups(results: pd.DataFrame) -> list[tuple[str, str, str, str, pd.DataFrame]]:
    """(scope, state, season, feeder, runs): per state and season, per state (seasons pooled), then per
    feeder and season; ok runs only, the reference case 0 left out."""
    runs = results[(results["status"] == "ok") & (results["case"] != rio.REFERENCE_CASE)]
    defined = rio.defined_inputs(runs)
    if not defined.all():
        logger.info("%d run(s) without heat pumps left out: hp_dm_fraction = dm / (dm + un) is undefined",
                    int((~defined).sum()))
        runs = runs[defined]
    runs = runs.sort_values(list(rio.RUN_KEYS), kind="stable")
    groups = []
    for state, part in runs.groupby("state", sort=True):
        for season, sub in part.groupby("season", sort=True):
            groups.append(("season", state, season, "", sub))
        if part["season"].nunique() > 1:
            groups.append(("state", state, ALL_SEASONS, "", part))
        for (season, feeder), sub in part.groupby(["season", "feeder"], sort=True):
            groups.append(("feeder", state, season, feeder, sub))
    return groups


def box_rule(names: Sequence[str], limits: np.ndarray, init: np.ndarray, digits: int = 3) -> str:
    """A readable rule of a box's restrictions: ``ev_perc >= 0.45 and 0.10 <= hp_adoption <= 0.62``."""
    parts = []
    for name, (lo, hi), (ilo, ihi) in zip(names, limits, init):
        low, high = lo != ilo, hi != ihi
        if low and high:
            parts.append(f"{lo:.{digits}g} <= {name} <= {hi:.{digits}g}")
        elif low:
            parts.append(f"{name} >= {lo:.{digits}g}")
        elif high:
            parts.append(f"{name} <= {hi:.{digits}g}")
    return " and ".join(parts) if parts else "no restriction (failures spread over the whole input space)"


def discover(scope: str, state: str, season: str, feeder: str, runs: pd.DataFrame, *, min_runs: int, min_coverage: float, max_boxes: int,
             peel_alpha: float, paste_alpha: float, mass_min: float) -> tuple[list[dict], list[dict]]:
    """Box rows and trajectory rows of one group (a status row only when PRIM does not apply)."""
    names = list(rio.INDEPENDENT_INPUTS)
    flags = rio.planning_failures(runs)
    y = flags["fails"].to_numpy()
    n, k = len(y), int(y.sum())
    label = "all seasons" if season == ALL_SEASONS else season
    head = {"group": " ".join(p for p in (state, label, feeder) if p), "scope": scope, "state": state,
            "season": season, "feeder": feeder, "n_runs": n, "n_failures": k,
            "n_undervoltage": int(flags["undervoltage"].sum()), "n_overload": int(flags["overload"].sum()),
            "base_rate": k / n if n else math.nan}
    if n < min_runs:
        return [{**head, "status": "too_few_runs", "rule": f"{n} runs, fewer than --min-runs {min_runs}"}], []
    if k == 0:
        return [{**head, "status": "no_failures", "rule": "no run fails: nothing to concentrate"}], []
    if k == n:
        return [{**head, "status": "all_failures", "rule": "every run fails, whatever the inputs"}], []
    x = runs[names].to_numpy(dtype=float)
    boxes = prim.find_boxes(x, y, names, max_boxes=max_boxes, min_coverage=min_coverage, peel_alpha=peel_alpha,
                            paste_alpha=paste_alpha, mass_min=mass_min)
    box_rows, steps = [], []
    for b, box in enumerate(boxes, start=1):
        s = box.step
        row = {**head, "status": "box", "box": b, "step": box.selected, "coverage": s.coverage, "density": s.density,
               "mass": s.mass, "n_in_box": len(s.members), "n_failures_in_box": s.n_interest,
               "n_restricted": s.n_restricted, "rule": box_rule(names, s.limits, box.init)}
        for j, name in enumerate(names):
            row[f"{name}.min"], row[f"{name}.max"] = float(s.limits[j, 0]), float(s.limits[j, 1])
            row[f"{name}.qp"] = box.quasi_p.get(name, math.nan)
        box_rows.append(row)
        for i, t in enumerate(box.trajectory):
            step = {"group": head["group"], "scope": scope, "state": state, "season": season, "feeder": feeder,
                    "box": b, "step": i, "phase": t.phase,
                    "coverage": t.coverage, "density": t.density, "mass": t.mass, "n_in_box": len(t.members),
                    "n_failures_in_box": t.n_interest, "n_restricted": t.n_restricted, "selected": i == box.selected}
            for j, name in enumerate(names):
                step[f"{name}.min"], step[f"{name}.max"] = float(t.limits[j, 0]), float(t.limits[j, 1])
            steps.append(step)
    return box_rows, steps


def box_columns() -> list[str]:
    names = rio.INDEPENDENT_INPUTS
    return (["group", "scope", "state", "season", "feeder", "status", "n_runs", "n_failures", "n_undervoltage", "n_overload",
             "base_rate", "box", "step", "coverage", "density", "mass", "n_in_box", "n_failures_in_box",
             "n_restricted", "rule"] + [f"{n}.{s}" for n in names for s in ("min", "max")] + [f"{n}.qp" for n in names])


def trajectory_columns() -> list[str]:
    return (["group", "scope", "state", "season", "feeder", "box", "step", "phase", "coverage", "density", "mass", "n_in_box",
             "n_failures_in_box", "n_restricted", "selected"]
            + [f"{n}.{s}" for n in rio.INDEPENDENT_INPUTS for s in ("min", "max")])


# ------------------------------------------------------------------------------------------- plots
def _grid(n: int) -> tuple[int, int]:
    cols = min(3, max(1, n))
    return math.ceil(n / cols), cols


def plot_boxes(boxes: pd.DataFrame):
    """Per group, each input's design range (grey) and the first box's range (coloured), with statistics."""
    groups = list(dict.fromkeys(boxes["group"]))
    rows, cols = _grid(len(groups))
    names = list(rio.INDEPENDENT_INPUTS)
    fig, axes = figures.figure(rows, cols, width=5.6, height=0.42 * len(names) + 1.5)
    for ax in axes.flat[len(groups):]:
        ax.set_axis_off()
    yy = np.arange(len(names))
    for ax, group in zip(axes.flat, groups):
        first = boxes[boxes["group"] == group].iloc[0]
        ax.set_yticks(yy, [rio.INPUT_LABELS[n] for n in names], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel("position in the design range [0 = lowest, 1 = highest]", fontsize=8)
        if first["status"] != "box":
            ax.barh(yy, 1.0, color="0.9")
            ax.text(0.5, 0.5, f"{first['status'].replace('_', ' ')}\n({int(first['n_failures'])} of "
                              f"{int(first['n_runs'])} runs fail)", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(f"{group}: no box", fontsize=10)
            continue
        for i, name in enumerate(names):
            p = rio.INPUT_BY_NAME[name]
            span = p.high - p.low
            lo, hi = (first[f"{name}.min"] - p.low) / span, (first[f"{name}.max"] - p.low) / span
            is_restricted = np.isfinite(first[f"{name}.qp"])
            ax.barh(i, 1.0, color="0.9")
            ax.barh(i, hi - lo, left=lo, color="#c44e52" if is_restricted else "#8c8c8c", alpha=0.85)
            if is_restricted:
                ax.text(1.0, i, f" {first[f'{name}.min']:.2f}-{first[f'{name}.max']:.2f} (qp {first[f'{name}.qp']:.2g})",
                        va="center", ha="right", fontsize=7)
        ax.set_title(f"{group}: coverage {first['coverage']:.2f}, density {first['density']:.2f}, "
                     f"mass {first['mass']:.2f}\n({int(first['n_failures'])} of {int(first['n_runs'])} runs fail; "
                     "red: restricted inputs)", fontsize=9)
    fig.suptitle("PRIM box: input ranges where the feeder fails (Range A undervoltage or transformer > 100 %)",
                 fontsize=11)
    return fig


def plot_trajectory(steps: pd.DataFrame, boxes: pd.DataFrame):
    """Per group, density against coverage along the peeling trajectory; the selected box circled."""
    groups = list(dict.fromkeys(boxes["group"]))
    rows, cols = _grid(len(groups))
    fig, axes = figures.figure(rows, cols, width=4.6, height=3.8)
    for ax in axes.flat[len(groups):]:
        ax.set_axis_off()
    for ax, group in zip(axes.flat, groups):
        part = steps[(steps["group"] == group) & (steps["box"] == 1)] if len(steps) else steps
        ax.set_xlim(0, 1.05)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("coverage [share of failures in the box]")
        ax.set_ylabel("density [share of box runs that fail]")
        ax.grid(alpha=0.3)
        if part.empty:
            status = boxes[boxes["group"] == group]["status"].iloc[0]
            ax.text(0.5, 0.5, status.replace("_", " "), ha="center", va="center", transform=ax.transAxes)
            ax.set_title(group, fontsize=10)
            continue
        sc = ax.scatter(part["coverage"], part["density"], c=part["n_restricted"], cmap="viridis", s=22,
                        vmin=0, vmax=len(rio.INDEPENDENT_INPUTS))
        ax.plot(part["coverage"], part["density"], color="0.6", lw=0.8, zorder=0)
        chosen = part[part["selected"]]
        ax.scatter(chosen["coverage"], chosen["density"], s=140, facecolors="none", edgecolors="#c44e52", lw=2,
                   label="selected box")
        ax.legend(loc="lower left", fontsize=8)
        ax.set_title(group, fontsize=10)
        fig.colorbar(sc, ax=ax, label="restricted inputs")
    fig.suptitle("PRIM peeling trajectory: coverage against density", fontsize=11)
    return fig


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="scenario_discovery.py")
    rio.add_state_filter(parser)
    parser.add_argument("--min-coverage", type=cli.share, default=MIN_COVERAGE,
                        help=f"select the densest box covering at least this share of failures (default {MIN_COVERAGE})")
    parser.add_argument("--peel-alpha", type=cli.positive_float, default=PEEL_ALPHA,
                        help=f"share of the box's runs peeled per step (default {PEEL_ALPHA})")
    parser.add_argument("--paste-alpha", type=cli.positive_float, default=PASTE_ALPHA,
                        help=f"share pasted back per step (default {PASTE_ALPHA})")
    parser.add_argument("--mass-min", type=cli.share, default=MASS_MIN,
                        help=f"smallest share of the runs a box may hold (default {MASS_MIN})")
    parser.add_argument("--max-boxes", type=cli.positive_int, default=1, help="boxes per group, found by covering (default 1)")
    parser.add_argument("--min-runs", type=cli.positive_int, default=MIN_RUNS,
                        help=f"skip a group with fewer runs (default {MIN_RUNS})")
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv, must_exist=True)
    with rio.phase_lock(ws, Path(__file__).name):
        for flag, value in (("--peel-alpha", args.peel_alpha), ("--paste-alpha", args.paste_alpha)):
            if not value < 0.5:
                raise cli.UserError(f"{flag} {value:g}: need a share between 0 and 0.5 (exclusive)")
        if args.min_runs < 2:
            raise cli.UserError(f"--min-runs {args.min_runs}: need at least 2")
        results = rio.load_results(ws, args.state)
        for metric in ("ansi_a_under_node_intervals", "worst_transformer_loading_pct"):
            if metric not in results.columns:
                raise cli.UserError(f"{rio.results_path(ws, 'xlrm_results')}: metric {metric!r} missing (no ok run?): "
                                    f"run {rio.PRODUCERS['xlrm_results']} on solved phase 6 runs")
        settings = {"min_runs": args.min_runs, "min_coverage": args.min_coverage, "max_boxes": args.max_boxes,
                    "peel_alpha": args.peel_alpha, "paste_alpha": args.paste_alpha, "mass_min": args.mass_min}
        box_rows, step_rows = [], []
        for scope, state, season, feeder, runs in discovery_groups(results):
            boxes, steps = discover(scope, state, season, feeder, runs, **settings)
            box_rows += boxes
            step_rows += steps
            first = boxes[0]
            if first["status"] == "box":
                logger.info("%s: %d of %d runs fail; box %s (coverage %.2f, density %.2f, mass %.2f)", first["group"],
                            first["n_failures"], first["n_runs"], first["rule"], first["coverage"], first["density"],
                            first["mass"])
            else:
                logger.info("%s: %s (%d of %d runs fail)", first["group"], first["status"].replace("_", " "),
                            first["n_failures"], first["n_runs"])
        if not box_rows:
            raise cli.UserError(f"no ok design run in {rio.results_path(ws, 'xlrm_results')}: nothing to discover")
        boxes = pd.DataFrame(box_rows, columns=box_columns())
        boxes["box"] = boxes["box"].astype("Int64")
        boxes["step"] = boxes["step"].astype("Int64")
        for c in ("n_in_box", "n_failures_in_box", "n_restricted"):
            boxes[c] = boxes[c].astype("Int64")
        steps = pd.DataFrame(step_rows, columns=trajectory_columns())
        write_csv(rio.results_path(ws, "prim_boxes"), boxes)
        write_csv(rio.results_path(ws, "prim_trajectory"), steps)
        pooled = boxes[boxes["scope"] != "feeder"]
        save_figure(plot_boxes(pooled), rio.plots_dir(ws) / "prim_boxes.png")
        save_figure(plot_trajectory(steps[steps["scope"] != "feeder"], pooled), rio.plots_dir(ws) / "prim_trajectory.png")
        write_manifest(ws.results_dir, "7_results_analysis/scenario_discovery.py", {
            **settings, "states": sorted(results["state"].unique().tolist()), "inputs": list(rio.INDEPENDENT_INPUTS),
            "failure": {"ansi_a_under_node_intervals": "> 0", "worst_transformer_loading_pct":
                        f"> {config.THERMAL['overload_pct']:g}", "ansi_range_a_pu": list(config.ANSI_RANGE_A)},
            "groups": len(boxes["group"].unique()), "boxes": int((boxes["status"] == "box").sum())},
            name="manifest_scenario_discovery.json")
        logger.info("%d group(s), %d box(es) -> %s", boxes["group"].nunique(), int((boxes["status"] == "box").sum()),
                    rio.results_path(ws, "prim_boxes"))
        return 0


if __name__ == "__main__":
    sys.exit(main())
