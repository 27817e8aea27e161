"""Robustness of the policies across the scenarios: satisficing, percentile outcomes, regret, vulnerability.

Description
    Needs results of phase 0's cross layout (``--layout cross``: S scenarios over the uncertainties X
    crossed with P policies over the levers L, ``common.doe`` "layouts"); on results without one it
    writes nothing, removes its own earlier outputs and says so in one line. The vocabulary is the EMA
    Workbench's (Kwakkel 2017): scenarios, policies, outcomes.

    Runs used: status ``ok``, not the reference case 0, with a policy id. A scenario is
    (design, scenario id): the LHS and Sobol mixes files draw their own scenarios, and a policy is the
    same in both. Per (state, season, feeder) and policy:

    * **satisficing** (Simon; Lempert and Collins 2007): the share of the runs (scenarios x placement
      replicates) meeting every limit of ``common.config.FAILURE_CRITERIA`` (``satisficing``) and each
      criterion alone (``<criterion>.satisficing``), evaluated as scenario discovery does
      (``results_io.planning_failures``). Interval: the binomial **Wilson score interval** (95 %) over
      the n runs (``satisficing_interval`` says so); with placement replicates the runs of one scenario
      share its X values, so the interval is then optimistic, and ``replicate_satisficing_min`` /
      ``_max`` give the range of the share across replicates;
    * **percentile outcomes** of :data:`OUTCOMES` (lower is better): median and 90th percentile over the
      runs, the 90th percentile with a 95 % bootstrap percentile interval that resamples whole
      scenarios (``BOOTSTRAP`` resamples, seeded by SeedSequence from ``--seed`` and the group); where
      phase 6's upgrade step ran (``--upgrades``), ``upgrade_cost_usd`` is an outcome too
      (:func:`outcomes_of`: its median and 90th percentile per policy, "policy A keeps the upgrade cost
      below $X in 90 % of the futures", and its regret; runs without a cost, where the step failed, are
      left out of its statistics), but not part of the ranking below;
    * **regret** (Savage): per scenario and placement replicate, the policy's outcome minus the best
      policy's outcome in that scenario and replicate (the same placements: common random numbers, so
      the difference is the policies' alone); its maximum and 90th percentile per policy. A scenario and
      replicate in which some policy has no ok run has no regret (counted in ``n_incomplete``).

    **Most robust policy** per feeder and season: the highest ``satisficing`` share (every limit); ties
    (the same share) go to the lowest 90th-percentile regret of ``peak_kw``, then of the other outcomes
    in :data:`OUTCOMES` order, then the lowest policy id. ``verdict`` says when the analysis cannot
    support a ranking: fewer than ``--min-scenarios`` scenarios, every policy meeting every limit in
    every run, or none in any (then no policy is marked ``most_robust``, and the report says so), and
    whether the top two satisficing intervals overlap (ranked, not resolved).

    **Vulnerability** of the most robust policy (Bryant and Lempert 2010): the runs of that policy,
    ``y`` = fails any limit, inputs the uncertainties X only (``common.doe.uncertainty_names``:
    hp_adoption and the X parameters), searched with scenario_discovery.py's PRIM wrapper (EMA
    Workbench PRIM, quasi-p values read per restriction, non-significant restrictions dropped, CART's
    densest leaf where no PRIM box remains). The feeder's reference case 0 status is given beside it
    (``reference``: a feeder that fails before any adoption fails whatever the policy).

Inputs
    <data>/7_results_analysis/xlrm_results.parquet    (append_experiment_results.py; scenario, policy,
                                                       policy_name columns from a cross layout)

Outputs (``<data>/7_results_analysis/``; written atomically)
    robustness.csv       state, season, feeder, policy, policy_name, n_scenarios, n_runs, n_failed_solves,
                         satisficing, satisficing_low, satisficing_high, satisficing_interval,
                         replicate_satisficing_min, replicate_satisficing_max, <criterion>.satisficing,
                         <criterion>.low, <criterion>.high (each criterion), then per outcome <o>.median,
                         <o>.p90, <o>.p90_low, <o>.p90_high, <o>.regret_max, <o>.regret_p90; n_incomplete,
                         reference, rank, most_robust, verdict
    regret.csv           state, season, feeder, design, scenario, placement_replicate, policy, policy_name,
                         case, fails, <o>, <o>.best, <o>.regret (each outcome)
    vulnerability.csv    state, season, feeder, policy, policy_name, reference, then scenario_discovery's box
                         columns (status, method, n_runs, n_failures, base_rate, coverage, density, mass,
                         n_restricted, reproducibility_pct, rule, inputs) and <x>.min, <x>.max, <x>.qp per
                         uncertainty
    plots/robustness_policies.png   per state and season: satisficing share with its Wilson interval and the
                         90th percentile of each outcome with its bootstrap interval, per feeder and policy
    plots/robustness_regret.png     per state and season: 90th-percentile regret (bar) and maximum regret
                         (marker) of each outcome per feeder and policy
    manifest_robustness_analysis.json

Settings read
    common.config: FAILURE_CRITERIA (results_io.planning_failures); common.doe.PARAMETERS, FACTORS (roles).

Usage
    python 7_results_analysis/robustness_analysis.py [--data-dir DATA] [--state NC] [--min-scenarios 5]
        [--seed 20100101] [--resamples 10]
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

import results_io as rio
import scenario_discovery as sd
from common import cli, config, doe, figures
from common.io import save_figure, write_csv, write_manifest

logger = logging.getLogger(__name__)

#: the outcomes of the percentiles and the regret, lower is better: feeder-head peak, worst transformer
#: loading, customers outside ANSI C84.1 Range A (the undervoltage customers; phase 6 counts customers
#: outside the range, under or over)
OUTCOMES = ("peak_kw", "worst_transformer_loading_pct", "ansi_a_customers_affected")
OUTCOME_LABELS = {"peak_kw": "feeder-head peak [kW]", "worst_transformer_loading_pct": "worst transformer loading [%]",
                  "ansi_a_customers_affected": "customers outside Range A", rio.COST_METRIC: "upgrade cost [USD]"}


def outcomes_of(results: pd.DataFrame) -> tuple[str, ...]:
    """The outcomes of the percentiles and the regret: :data:`OUTCOMES`, then the upgrade cost where phase 6's
    upgrade step ran (``results_io.has_upgrade_costs``). The ranking reads :data:`OUTCOMES` only, so the upgrade
    step leaves the policies' order as it was (the cost is reported beside it)."""
    return (*OUTCOMES, rio.COST_METRIC) if rio.has_upgrade_costs(results) else OUTCOMES
#: the criteria of the satisficing shares: each planning criterion; the union is ``satisficing``
CRITERIA = rio.CRITERIA
Z95 = 1.959963984540054
BOOTSTRAP = 500
MIN_SCENARIOS = 5
SEED = 20100101
KEYS = ("state", "season", "feeder")
UNIT = ("design", "scenario", "placement_replicate")  # one future under one placement
WILSON = "Wilson 95 % over the runs (scenarios x placement replicates)"


# ------------------------------------------------------------------------------------------- pure: statistics
def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial share k / n (NaN, NaN for n = 0)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def p90_interval(values: np.ndarray, clusters: np.ndarray, rng: np.random.Generator,
                 resamples: int = BOOTSTRAP) -> tuple[float, float]:
    """95 % bootstrap percentile interval of the 90th percentile, resampling whole clusters (scenarios)."""
    values = np.asarray(values, dtype=float)
    labels, inverse = np.unique(clusters, return_inverse=True)
    if len(labels) < 2:
        return math.nan, math.nan
    members = [np.nonzero(inverse == i)[0] for i in range(len(labels))]
    stats = np.empty(resamples)
    for b in range(resamples):
        pick = rng.integers(0, len(labels), len(labels))
        stats[b] = np.percentile(values[np.concatenate([members[i] for i in pick])], 90)
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def regret_table(runs: pd.DataFrame, outcomes: Sequence[str] = OUTCOMES) -> pd.DataFrame:
    """Per run of a group (one feeder and season): each outcome, the best policy's outcome in the same
    scenario and placement replicate (``<o>.best``, the lowest) and the regret ``<o>.regret`` = outcome -
    best. Units in which some policy of the group has no run get NaN regret (``complete`` False)."""
    out = runs.copy()
    policies = out["policy"].nunique()
    size = out.groupby(list(UNIT), sort=True)["policy"].transform("nunique")
    out["complete"] = (size == policies).to_numpy()
    for o in outcomes:
        best = out.groupby(list(UNIT), sort=True)[o].transform("min")
        out[f"{o}.best"] = best.where(out["complete"])
        out[f"{o}.regret"] = (out[o] - best).where(out["complete"])
    return out


def rank_policies(rows: list[dict[str, Any]], outcomes: Sequence[str] = OUTCOMES) -> list[int]:
    """Indices of ``rows`` (one per policy of a group) from most to least robust: highest satisficing
    share, then lowest 90th-percentile regret of each outcome in order (NaN last), then policy id."""
    def key(i: int):
        r = rows[i]
        regrets = [r[f"{o}.regret_p90"] if np.isfinite(r[f"{o}.regret_p90"]) else math.inf for o in outcomes]
        return (-r["satisficing"], *regrets, r["policy"])
    return sorted(range(len(rows)), key=key)


def verdict(rows: list[dict[str, Any]], order: list[int], min_scenarios: int) -> str:
    """Whether a group's policies can be ranked, in words (see the module docstring)."""
    n = min(r["n_scenarios"] for r in rows)
    if n < min_scenarios:
        return f"too few scenarios to rank policies ({n} < {min_scenarios})"
    shares = [r["satisficing"] for r in rows]
    if all(s == 1.0 for s in shares):
        return ("cannot rank: every policy meets every limit in every run (the limits do not bind; regret alone "
                "separates them)")
    if all(s == 0.0 for s in shares):
        return "cannot rank: no policy meets every limit in any run (every policy fails in every future)"
    if len(order) < 2:
        return "ranked (one policy only)"
    first, second = rows[order[0]], rows[order[1]]
    if first["satisficing"] == second["satisficing"]:
        return "ranked: tie on satisficing, broken by the 90th-percentile regret of peak_kw"
    if first["satisficing_low"] <= second["satisficing_high"]:
        return "ranked, not resolved: the top two satisficing intervals overlap (more scenarios would settle it)"
    return "ranked: the top policy's satisficing interval lies above the runner-up's"


def group_rows(runs: pd.DataFrame, flags: pd.DataFrame, head: dict[str, Any], *, seed: int, failed_solves: dict[int, int],
               outcomes: Sequence[str] = OUTCOMES) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Robustness rows (one per policy) and the regret table of one (state, season, feeder) group.
    ``runs``: the group's ok cross-layout runs; ``flags``: their planning failures (same index)."""
    regret = regret_table(runs, outcomes)
    rows = []
    for policy, part in regret.groupby("policy", sort=True):
        f = flags.loc[part.index]
        n = len(part)
        k = int((~f[rio.UNION]).sum())
        low, high = wilson(k, n)
        row = {**head, "policy": int(policy), "policy_name": str(part["policy_name"].iloc[0]),
               "n_scenarios": int(part[["design", "scenario"]].drop_duplicates().shape[0]), "n_runs": n,
               "n_failed_solves": int(failed_solves.get(int(policy), 0)),
               "satisficing": k / n, "satisficing_low": low, "satisficing_high": high, "satisficing_interval": WILSON}
        by_replicate = (~f[rio.UNION]).groupby(part["placement_replicate"]).mean()
        row["replicate_satisficing_min"] = float(by_replicate.min()) if len(by_replicate) > 1 else math.nan
        row["replicate_satisficing_max"] = float(by_replicate.max()) if len(by_replicate) > 1 else math.nan
        for c in CRITERIA:
            kc = int((~f[c]).sum())
            row[f"{c}.satisficing"] = kc / n
            row[f"{c}.low"], row[f"{c}.high"] = wilson(kc, n)
        clusters = (part["design"].astype(str) + "|" + part["scenario"].astype(str)).to_numpy()
        rng = np.random.default_rng(sd.seed_for(seed, "robustness", *map(str, head.values()), str(policy)))
        for o in outcomes:
            values = part[o].to_numpy(dtype=float)
            finite = np.isfinite(values)
            row[f"{o}.median"] = float(np.median(values[finite])) if finite.any() else math.nan
            row[f"{o}.p90"] = float(np.percentile(values[finite], 90)) if finite.any() else math.nan
            row[f"{o}.p90_low"], row[f"{o}.p90_high"] = (p90_interval(values[finite], clusters[finite], rng)
                                                         if finite.sum() > 1 else (math.nan, math.nan))
            r = part[f"{o}.regret"].to_numpy(dtype=float)
            r = r[np.isfinite(r)]
            row[f"{o}.regret_max"] = float(r.max()) if len(r) else math.nan
            row[f"{o}.regret_p90"] = float(np.percentile(r, 90)) if len(r) else math.nan
        row["n_incomplete"] = int((~part["complete"]).sum())
        rows.append(row)
    return rows, regret


def robustness_columns(outcomes: Sequence[str] = OUTCOMES) -> list[str]:
    return ([*KEYS, "policy", "policy_name", "n_scenarios", "n_runs", "n_failed_solves", "satisficing",
             "satisficing_low", "satisficing_high", "satisficing_interval", "replicate_satisficing_min",
             "replicate_satisficing_max"]
            + [f"{c}.{s}" for c in CRITERIA for s in ("satisficing", "low", "high")]
            + [f"{o}.{s}" for o in outcomes for s in ("median", "p90", "p90_low", "p90_high", "regret_max", "regret_p90")]
            + ["n_incomplete", "reference", "rank", "most_robust", "verdict"])


def regret_columns(outcomes: Sequence[str] = OUTCOMES) -> list[str]:
    return ([*KEYS, "design", "scenario", "placement_replicate", "policy", "policy_name", "case", "fails"]
            + [f"{o}{s}" for o in outcomes for s in ("", ".best", ".regret")])


def vulnerability_columns(names: Sequence[str]) -> list[str]:
    return ([*KEYS, "policy", "policy_name", "reference", "status", "method", "n_runs", "n_failures", "base_rate",
             "coverage", "density", "mass", "n_in_box", "n_failures_in_box", "n_restricted", "reproducibility_pct",
             "rule", "inputs"] + [f"{n}.{s}" for n in names for s in ("min", "max", "qp")])


def cross_runs(results: pd.DataFrame) -> pd.DataFrame:
    """The runs of a cross layout's policies: not the reference case, with a policy id (any status)."""
    policy = pd.to_numeric(results["policy"], errors="coerce")
    runs = results[(results["case"] != rio.REFERENCE_CASE) & (policy.fillna(0) > 0)].copy()
    runs["policy"] = runs["policy"].astype("int64")
    runs["scenario"] = runs["scenario"].astype("int64")
    return runs.sort_values(list(rio.RUN_KEYS), kind="stable")


def analyse(results: pd.DataFrame, *, min_scenarios: int = MIN_SCENARIOS, seed: int = SEED,
            discovery: dict[str, Any] | None = None, outcomes: Sequence[str] = OUTCOMES
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """robustness, regret and vulnerability tables of cross-layout results (see the module docstring).
    ``discovery``: keyword settings of ``scenario_discovery.discover`` (its defaults otherwise)."""
    settings = {"min_runs": sd.MIN_RUNS, "min_coverage": sd.MIN_COVERAGE, "max_boxes": 1, "peel_alpha": sd.PEEL_ALPHA,
                "paste_alpha": sd.PASTE_ALPHA, "mass_min": sd.MASS_MIN, "significance": sd.SIGNIFICANCE,
                "resamples": sd.RESAMPLES, "seed": seed, **(discovery or {})}
    names = list(doe.uncertainty_names())
    all_runs = cross_runs(results)
    ok_results = results[results["status"] == "ok"]
    references = sd.reference_status(ok_results, rio.planning_failures(ok_results)) if len(ok_results) else {}
    runs = all_runs[all_runs["status"] == "ok"]
    flags = rio.planning_failures(runs)
    robust_rows, regret_parts, vulnerable = [], [], []
    for key, part in runs.groupby(list(KEYS), sort=True):
        head = dict(zip(KEYS, key))
        failed = all_runs[(all_runs[list(KEYS)] == pd.Series(head)).all(axis=1) & (all_runs["status"] != "ok")]
        rows, regret = group_rows(part, flags.loc[part.index], head, seed=seed,
                                  failed_solves=failed["policy"].value_counts().to_dict(), outcomes=outcomes)
        regret["fails"] = flags.loc[regret.index, rio.UNION].to_numpy()
        regret_parts.append(regret)
        order = rank_policies(rows, [o for o in outcomes if o in OUTCOMES])
        words = verdict(rows, order, min_scenarios)
        reference = references.get(key, {}).get(rio.UNION, "missing")
        for rank, i in enumerate(order, start=1):
            rows[i].update(rank=rank, most_robust=(rank == 1 and words.startswith("ranked")), verdict=words,
                           reference=reference)
        robust_rows += [rows[i] for i in order]
        best = rows[order[0]]
        if not best["most_robust"]:
            continue
        mine = part[part["policy"] == best["policy"]]
        y = flags.loc[mine.index, rio.UNION].to_numpy()
        group = {"group": " ".join(map(str, key)) + f" policy {best['policy']}", "scope": "feeder",
                 "criterion": rio.UNION, "state": head["state"], "season": head["season"], "feeder": head["feeder"]}
        boxes, _ = sd.discover(group, mine, y, names, **settings)
        first = boxes[0]
        vulnerable.append({**head, "policy": best["policy"], "policy_name": best["policy_name"], "reference": reference,
                           **{k: v for k, v in first.items() if k not in ("group", "scope", "criterion", "state",
                                                                          "season", "feeder")}})
    robustness = pd.DataFrame(robust_rows, columns=robustness_columns(outcomes))
    for c in ("rank", "policy"):
        robustness[c] = robustness[c].astype("Int64")
    regret = (pd.concat(regret_parts) if regret_parts else pd.DataFrame(columns=regret_columns(outcomes)))
    regret = regret.reindex(columns=regret_columns(outcomes)).sort_values(
        [*KEYS, "design", "scenario", "placement_replicate", "policy"], kind="stable").reset_index(drop=True)
    vulnerability = pd.DataFrame(vulnerable, columns=vulnerability_columns(names))
    for c in ("n_in_box", "n_failures_in_box", "n_restricted"):
        vulnerability[c] = vulnerability[c].astype("Int64")
    return robustness, regret, vulnerability


# ------------------------------------------------------------------------------------------- plots
POLICY_COLOURS = ("#8c8c8c", "#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#dd8452")


def _bars(ax, table: pd.DataFrame, value: str, low: str | None, high: str | None, marker: str | None = None) -> None:
    feeders = sorted(table["feeder"].unique())
    policies = sorted(table["policy"].unique())
    width = 0.8 / max(1, len(policies))
    for j, policy in enumerate(policies):
        part = table[table["policy"] == policy].set_index("feeder").reindex(feeders)
        x = np.arange(len(feeders)) + (j - (len(policies) - 1) / 2) * width
        y = part[value].to_numpy(dtype=float)
        err = None
        if low and high:
            lo, hi = part[low].to_numpy(dtype=float), part[high].to_numpy(dtype=float)
            err = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
            err = np.nan_to_num(err)
        name = str(part["policy_name"].dropna().iloc[0]) if part["policy_name"].notna().any() else str(policy)
        ax.bar(x, y, width, yerr=err, capsize=2, color=POLICY_COLOURS[j % len(POLICY_COLOURS)], label=f"{policy}: {name}")
        if marker:
            ax.scatter(x, part[marker].to_numpy(dtype=float), marker="v", color="black", s=14, zorder=3)
        best = part["most_robust"].fillna(False).to_numpy(dtype=bool)
        if best.any():
            ax.scatter(x[best], np.nan_to_num(y[best]), marker="*", s=80, color="gold", edgecolors="black", zorder=4)
    ax.set_xticks(np.arange(len(feeders)), [f.split("--")[-1] for f in feeders], fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3)


def plot_policies(robustness: pd.DataFrame, outcomes: Sequence[str] = OUTCOMES):
    """Per (state, season) row: satisficing share with its Wilson interval, then each outcome's 90th percentile
    with its bootstrap interval, per feeder (x) and policy (bars); a star marks the most robust policy."""
    groups = list(robustness[["state", "season"]].drop_duplicates().itertuples(index=False, name=None))
    fig, axes = figures.figure(len(groups), 1 + len(outcomes), width=4.2, height=3.0)
    for r, (state, season) in enumerate(groups):
        part = robustness[(robustness["state"] == state) & (robustness["season"] == season)]
        _bars(axes[r, 0], part, "satisficing", "satisficing_low", "satisficing_high")
        axes[r, 0].set_ylim(0, 1.05)
        axes[r, 0].set_title(f"{state} {season}: share of runs meeting every limit", fontsize=8)
        for c, o in enumerate(outcomes, start=1):
            _bars(axes[r, c], part, f"{o}.p90", f"{o}.p90_low", f"{o}.p90_high")
            axes[r, c].set_title(f"{state} {season}: 90th percentile of {OUTCOME_LABELS.get(o, o)}", fontsize=8)
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.suptitle("Policies across the scenarios (bars: policies; whiskers: Wilson interval of the share, bootstrap "
                 "interval over scenarios of the 90th percentile; star: most robust)", fontsize=9)
    return fig


def plot_regret(robustness: pd.DataFrame, outcomes: Sequence[str] = OUTCOMES):
    """Per (state, season) row and outcome: the 90th-percentile regret (bar) and the maximum regret (marker)."""
    groups = list(robustness[["state", "season"]].drop_duplicates().itertuples(index=False, name=None))
    fig, axes = figures.figure(len(groups), len(outcomes), width=4.2, height=3.0)
    for r, (state, season) in enumerate(groups):
        part = robustness[(robustness["state"] == state) & (robustness["season"] == season)]
        for c, o in enumerate(outcomes):
            _bars(axes[r, c], part, f"{o}.regret_p90", None, None, marker=f"{o}.regret_max")
            axes[r, c].set_title(f"{state} {season}: regret of {OUTCOME_LABELS.get(o, o)}", fontsize=8)
    axes[0, 0].legend(fontsize=6, loc="upper left")
    fig.suptitle("Regret: the policy's outcome minus the best policy's in the same scenario and placement (bar: 90th "
                 "percentile, triangle: maximum)", fontsize=9)
    return fig


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="robustness_analysis.py")
    rio.add_state_filter(parser)
    parser.add_argument("--min-scenarios", type=cli.positive_int, default=MIN_SCENARIOS,
                        help=f"rank the policies of a feeder and season only from this many scenarios (default "
                             f"{MIN_SCENARIOS})")
    parser.add_argument("--seed", type=cli.nonnegative_int, default=SEED,
                        help=f"seed of the bootstrap, of PRIM's resamples and of CART (default {SEED})")
    parser.add_argument("--resamples", type=cli.nonnegative_int, default=sd.RESAMPLES,
                        help=f"PRIM runs on random halves for the box's reproducibility (default {sd.RESAMPLES})")
    cli.add_standard(parser)
    return parser


OUTPUT_KEYS = ("robustness", "regret", "vulnerability")
FIGURES = ("robustness_policies.png", "robustness_regret.png")


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv, must_exist=True)
    with rio.phase_lock(ws, Path(__file__).name):
        results = rio.load_results(ws, args.state)
        if not rio.is_cross(results):
            stale = [p for p in [*(rio.results_path(ws, k) for k in OUTPUT_KEYS),
                                 *(rio.plots_dir(ws) / f for f in FIGURES)] if p.is_file()]
            for path in stale:
                path.unlink()
            logger.warning("no cross layout in %s (phase 0 --layout cross gives one): no robustness analysis, nothing "
                           "written%s", rio.results_path(ws, "xlrm_results"),
                           f" ({len(stale)} earlier output(s) removed)" if stale else "")
            return 0
        sd.ema_modules()
        outcomes = outcomes_of(results)
        robustness, regret, vulnerability = analyse(results, min_scenarios=args.min_scenarios, seed=args.seed,
                                                    discovery={"resamples": args.resamples}, outcomes=outcomes)
        if robustness.empty:
            raise cli.UserError(f"no ok run of a cross layout's policies in {rio.results_path(ws, 'xlrm_results')}: "
                                "solve phase 6 and run append_experiment_results.py")
        write_csv(rio.results_path(ws, "robustness"), robustness)
        write_csv(rio.results_path(ws, "regret"), regret)
        write_csv(rio.results_path(ws, "vulnerability"), vulnerability)
        save_figure(plot_policies(robustness, outcomes), rio.plots_dir(ws) / FIGURES[0])
        save_figure(plot_regret(robustness, outcomes), rio.plots_dir(ws) / FIGURES[1])
        write_manifest(ws.results_dir, "7_results_analysis/robustness_analysis.py", {
            "min_scenarios": args.min_scenarios, "seed": args.seed, "resamples": args.resamples,
            "bootstrap": BOOTSTRAP, "outcomes": list(outcomes), "uncertainties": list(doe.uncertainty_names()),
            "groups": int(robustness[list(KEYS)].drop_duplicates().shape[0]),
            "policies": int(robustness["policy"].nunique())}, name="manifest_robustness_analysis.json")
        for _, row in robustness[robustness["rank"] == 1].iterrows():
            label = "most robust" if bool(row["most_robust"]) else "lowest 90th-percentile peak regret, not a ranking"
            logger.info("%s %s %s: %s; %s: %s (satisficing %.2f [%.2f, %.2f] over %d runs)", row["state"],
                        row["season"], row["feeder"], row["verdict"], label, row["policy_name"], row["satisficing"],
                        row["satisficing_low"], row["satisficing_high"], row["n_runs"])
        logger.info("%d feeder-season group(s) x %d policies -> %s", robustness[list(KEYS)].drop_duplicates().shape[0],
                    robustness["policy"].nunique(), rio.results_path(ws, "robustness"))
        return 0


if __name__ == "__main__":
    sys.exit(main())
