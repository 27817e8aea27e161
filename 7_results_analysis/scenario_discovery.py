"""Scenario discovery: under which input ranges the runs fail each planning criterion (PRIM, EMA Workbench).

Description
    A run fails a criterion of ``common.config.FAILURE_CRITERIA`` (``results_io.planning_failures``):
    ``transformer_overload`` (2-h moving average above 100 % of nameplate, or any 15-min interval above
    the 150 % emergency limit; IEEE C57.91), ``line_overload`` (1-h moving average above 100 % of
    NormAmps), ``undervoltage`` (a customer below ANSI C84.1 Range A for at least 2 consecutive
    intervals), and ``fails``, their union; where phase 6's upgrade step ran (``--upgrades``: the results hold
    ``upgrade_cost_usd``), also ``upgrade_cost_above_threshold``, a cost above
    ``common.config.UPGRADES["cost_threshold_usd"]`` (``results_io.cost_failures``; not part of ``fails``;
    runs without a cost, where the step failed, are left out of that criterion's groups, logged). For every
    criterion, PRIM (the Patient Rule Induction
    Method: Friedman and Fisher 1999; for scenario discovery Bryant and Lempert 2010) searches for a
    box, a range per input, where the failing runs concentrate, in two kinds of group:

    * ``pooled``: per (state, season), the runs of every feeder and both designs, with three feeder
      descriptors added to the inputs so that a box can say "on the larger feeders" in physical terms:
      ``feeder_n_customers`` (results column ``n_customers``), ``feeder_head_capacity_kva``
      (``head_capacity_kva`` of ``circuit_summary_combined.csv``: n_phases x kV(line-neutral) x
      NormAmps of the head line) and ``feeder_ref_peak_loading_pct`` (100 x the feeder's reference-case
      ``peak_kw`` of that state and season / ``feeder_head_capacity_kva``: how loaded the feeder is
      before any adoption). A descriptor that is not finite for every run of a group is left out of
      that group's search (logged; the ``inputs`` column lists what was searched);
    * ``feeder``: per (state, season, feeder), the seven independent inputs only.

    Inputs searched: ``results_io.INDEPENDENT_INPUTS`` (the heat-pump shares enter as their
    independent coordinates ``hp_adoption`` and ``hp_dm_fraction``, ``common.doe.FACTORS``). Runs used:
    status ``ok``, the reference case 0 left out (not a draw of the design), and any run without heat
    pumps (``hp_dm_fraction`` undefined; logged).

    **Fails before any adoption.** When the reference run (case 0 of the same state, season and
    feeder, either design) already fails a criterion, the feeder's failures of that criterion are not
    caused by the inputs, and PRIM is not asked to explain them: the feeder group gets the status
    ``fails_before_adoption``, and the pooled group of that criterion leaves the feeder out (listed in
    ``feeders_left_out``; with it in, a box mostly says which feeder a run is on). A feeder with no ok
    reference run stays in (``reference`` = ``missing``; logged).

    **The box.** EMA's ``Prim`` (``ema_workbench.analysis.prim``, 3.x: lenient1 objective, peel and
    paste with ``--peel-alpha`` / ``--paste-alpha``, ``--mass-min``) gives a peeling trajectory; the
    step with the highest density among those covering at least ``--min-coverage`` of the failures is
    selected (ties: higher coverage, fewer restricted inputs, earlier step). Its quasi-p values
    (``PrimBox.p_values``, what ``PrimBox.inspect`` prints: the one-sided binomial probability of the
    box's density when one limit of an input is lifted, Bryant and Lempert 2010) are read per restricted
    input, the larger of its two limits'; while the largest is above ``--significance`` (0.05), that
    restriction is dropped (``PrimBox.drop_restriction``: a new step on the trajectory, phase ``drop``)
    and the values are read again. The binomial test treats the runs as independent: in a pooled group
    and with placement replicates a design point's runs repeat its inputs on several feeders and
    replicates, so there the quasi-p values are optimistic (README: read a pooled restriction near 0.05
    as not shown). The box left restricts only inputs with quasi-p <= 0.05; it is
    resampled (``PrimBox.resample``: PRIM again on ``--resamples`` random halves of the runs) and each
    input's reproducibility is the share of the resamples whose box of similar coverage
    (``repro_coverage``) or density (``repro_density``) restricts it too [%]. ``reproducibility_pct``
    is the lowest density reproducibility of the box's restricted inputs: the coverage one matches a
    resample's first step of equal coverage, and a box covering every failure (coverage 1, common
    here) then matches the resample's unrestricted start, so it understates. Further boxes (covering,
    ``--max-boxes``) are searched on the runs outside the boxes found.

    **No box.** When no restriction survives (or the densest qualifying step is the whole space), the
    group gets the status ``no_box`` and a second view, CART (``ema_workbench.analysis.cart.CART``,
    binary classification tree, leaves of at least ``--mass-min`` of the runs and at least
    ``MIN_LEAF_RUNS``, a fixed ``random_state`` so that ties between equal splits break the same way
    every run): its densest leaf holding failures is written in the same columns (``method`` =
    ``cart``; ``rule`` starts with "CART" and says so when fewer than ``MIN_LEAF_RUNS`` runs fail: a
    leaf around one or two failing runs describes them, it is not a finding), or "CART finds no split
    either" when the tree is one leaf.
    CART leaves have no quasi-p values.

    Status of a row: ``box`` (a PRIM box, every restriction significant), ``no_box`` (the CART view),
    ``fails_before_adoption``, ``no_failures``, ``all_failures`` (every run fails, whatever the inputs),
    ``too_few_runs`` (fewer than ``--min-runs``).

Inputs
    <data>/7_results_analysis/xlrm_results.parquet          (append_experiment_results.py)
    <data>/7_results_analysis/circuit_summary_combined.csv  (append_experiment_results.py: head_capacity_kva)

Outputs (``<data>/7_results_analysis/``)
    prim_boxes.csv        group, scope (pooled / feeder), criterion, state, season, feeder, status, method
                          (prim / cart / empty), reference (passes / fails / missing; feeder rows),
                          feeders_left_out (pooled rows; ";"-separated), n_runs, n_failures, base_rate, box,
                          step, coverage, density, mass, n_in_box, n_failures_in_box, n_restricted,
                          reproducibility_pct, rule, inputs (";"-separated), then per input (the seven
                          independent inputs, then the three feeder descriptors; empty where not searched)
                          <input>.min, <input>.max (unrestricted = the data's range), <input>.qp (quasi-p of a
                          restricted input), <input>.repro_coverage, <input>.repro_density [%].
                          Changed from the earlier version: ``criterion``, ``method``, ``reference``,
                          ``feeders_left_out``, ``reproducibility_pct``, ``inputs`` and the per-input
                          reproducibility columns are new; scope ``season`` is now ``pooled`` and the
                          seasons-pooled ``state`` scope is gone (the season is not an input, and a box over
                          both seasons mostly said which season a run was in); ``n_undervoltage`` and
                          ``n_overload`` are gone (each criterion is its own row: ``n_failures``).
    prim_trajectory.csv   group, scope, criterion, state, season, feeder, box, step, phase (start / peel / paste /
                          drop), coverage, density, mass, n_in_box, n_failures_in_box, n_restricted, selected
                          (the box kept), <input>.min, <input>.max; the groups with a box only
    plots/prim_boxes.png, plots/prim_trajectory.png   (pooled groups: a row per state and season, a column per
                          criterion)
    manifest_scenario_discovery.json

Settings read
    common.config: FAILURE_CRITERIA (through results_io.planning_failures), ANSI_RANGE_A,
    UPGRADES["cost_threshold_usd"] (the cost criterion, results_io.cost_failures);
    common.doe.PARAMETERS, FACTORS (design ranges of the inputs, for the plots).

Usage
    python 7_results_analysis/scenario_discovery.py [--data-dir DATA] [--state NC] [--min-coverage 0.8]
        [--peel-alpha 0.05] [--paste-alpha 0.05] [--mass-min 0.05] [--max-boxes 1] [--min-runs 10]
        [--significance 0.05] [--resamples 10] [--seed 20100101]
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

import results_io as rio
from common import cli, config, figures
from common.io import read_csv, save_figure, write_csv, write_manifest

logger = logging.getLogger(__name__)

MIN_RUNS = 10
MIN_COVERAGE = 0.8
PEEL_ALPHA = 0.05
PASTE_ALPHA = 0.05
MASS_MIN = 0.05
SIGNIFICANCE = 0.05
RESAMPLES = 10
RESAMPLE_SEED = 20100101
#: CART's smallest leaf [runs], whatever --mass-min gives: a leaf of one or two runs says nothing
MIN_LEAF_RUNS = 5
#: the feeder descriptors of the pooled groups, in column order
DESCRIPTORS = ("feeder_n_customers", "feeder_head_capacity_kva", "feeder_ref_peak_loading_pct")
DESCRIPTOR_LABELS = {"feeder_n_customers": "feeder customers", "feeder_head_capacity_kva": "feeder head capacity [kVA]",
                     "feeder_ref_peak_loading_pct": "feeder reference peak / head capacity [%]"}
#: every input a box may restrict, in the tables' column order
ALL_INPUTS = (*rio.INDEPENDENT_INPUTS, *DESCRIPTORS)
#: the criteria PRIM runs for: each of common.config.FAILURE_CRITERIA, then their union
CRITERIA = (*rio.CRITERIA, rio.UNION)
#: with the upgrade cost in the results (phase 6 --upgrades): also "cost above the threshold"
CRITERIA_WITH_COST = (*CRITERIA, rio.COST_CRITERION)
STATUSES = ("box", "no_box", "fails_before_adoption", "no_failures", "all_failures", "too_few_runs")


# ------------------------------------------------------------------------------------------- EMA Workbench
def ema_modules():
    """The EMA Workbench's ``prim`` and ``cart`` modules (the ``analysis`` extra, imported where used).

    Importing ``ema_workbench`` warns that two optional packages it can use are missing: ipyparallel
    (a parallel evaluator for running models, which this script does not run) and altair (interactive
    box inspection in a notebook). Neither is used here, so those two warnings, and only they, are
    filtered during the import."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ipyparallel not installed", category=UserWarning)
        warnings.filterwarnings("ignore", message="altair based interactive inspection not available",
                                category=ImportWarning)
        try:
            from ema_workbench.analysis import cart, prim
        except ImportError as exc:
            raise cli.UserError(f"scenario discovery needs the EMA Workbench ({exc}): "
                                "pip install -r requirements.txt (make install)") from exc
    logging.getLogger("EMA").setLevel(logging.WARNING)  # its per-box progress lines would flood the log
    return prim, cart


@contextlib.contextmanager
def ema_quiet() -> Iterator[None]:
    """Around calls into EMA's PRIM: ``Prim.__init__`` drops a "scenario" column with
    ``DataFrame.drop(..., inplace=True)``, which pandas 3.1 deprecates (Pandas4Warning, removal in
    pandas 4). Harmless here (the frames have no such column and pandas 3 still accepts the keyword),
    so that one warning from that module is filtered; any other warning shows."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame.drop is deprecated",
                                module=r"ema_workbench\.analysis\.prim")
        yield


# ------------------------------------------------------------------------------------------- pure: groups
def feeder_descriptors(results: pd.DataFrame, circuits: pd.DataFrame | None) -> pd.DataFrame:
    """Per (state, season, feeder): ``feeder_n_customers`` (the runs' ``n_customers``),
    ``feeder_head_capacity_kva`` (``circuits``' ``head_capacity_kva``, per state and feeder) and
    ``feeder_ref_peak_loading_pct`` (100 x the mean reference-case ``peak_kw`` of the ok case-0 runs /
    the head capacity). NaN where a source is missing."""
    ok = results[results["status"] == "ok"]
    keys = ["state", "season", "feeder"]
    out = ok.groupby(keys, sort=True).agg(feeder_n_customers=("n_customers", "max")) if "n_customers" in ok.columns \
        else ok.groupby(keys, sort=True).size().to_frame("feeder_n_customers") * np.nan
    out["feeder_n_customers"] = pd.to_numeric(out["feeder_n_customers"], errors="coerce").astype(float)
    capacity = pd.Series(dtype=float)
    if circuits is not None and len(circuits) and "head_capacity_kva" in circuits.columns:
        capacity = (circuits.assign(head_capacity_kva=pd.to_numeric(circuits["head_capacity_kva"], errors="coerce"))
                    .groupby(["state", "circuit_folder"], sort=True)["head_capacity_kva"].max())
    out["feeder_head_capacity_kva"] = [float(capacity.get((s, f), np.nan)) for s, _, f in out.index]
    ref = ok[ok["case"] == rio.REFERENCE_CASE].groupby(keys, sort=True)["peak_kw"].mean()
    ref_peak = np.array([float(ref.get(k, np.nan)) for k in out.index])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["feeder_ref_peak_loading_pct"] = 100.0 * ref_peak / out["feeder_head_capacity_kva"].to_numpy()
    return out.reset_index()


def criteria_of(results: pd.DataFrame) -> tuple[str, ...]:
    """The criteria searched on ``results``: :data:`CRITERIA`, and the upgrade cost above
    ``common.config.UPGRADES["cost_threshold_usd"]`` where the results hold a cost
    (``results_io.has_upgrade_costs``)."""
    return CRITERIA_WITH_COST if rio.has_upgrade_costs(results) else CRITERIA


def criterion_flags(results: pd.DataFrame) -> pd.DataFrame:
    """Per run and criterion of :func:`criteria_of`: whether it fails (``results_io.planning_failures``; the cost
    criterion from ``results_io.cost_failures``, nullable: <NA> where a run has no cost)."""
    flags = rio.planning_failures(results)
    if rio.COST_CRITERION in criteria_of(results):
        flags[rio.COST_CRITERION] = rio.cost_failures(results)
    return flags


def reference_status(results: pd.DataFrame, flags: pd.DataFrame) -> dict[tuple[str, str, str], dict[str, str]]:
    """(state, season, feeder) -> criterion (every column of ``flags``) -> ``fails`` / ``passes`` / ``missing``:
    does the reference case 0 of the feeder (an ok run of either design) already fail the criterion?
    ``missing`` also where the reference run's flag is unknown (<NA>: its upgrade cost, when it has none)."""
    ok = (results["status"] == "ok") & (results["case"] == rio.REFERENCE_CASE)
    out: dict[tuple[str, str, str], dict[str, str]] = {}
    for key, part in results.groupby(["state", "season", "feeder"], sort=True):
        ref = part.index[ok.loc[part.index].to_numpy()]
        status = {}
        for c in flags.columns:
            known = flags.loc[ref, c].dropna()
            status[c] = "missing" if known.empty else "fails" if bool(known.astype(bool).any()) else "passes"
        out[key] = status
    return out


def design_runs(results: pd.DataFrame) -> pd.DataFrame:
    """The runs PRIM explains: ok, not the reference case, with every independent input defined."""
    runs = results[(results["status"] == "ok") & (results["case"] != rio.REFERENCE_CASE)]
    defined = rio.defined_inputs(runs)
    if not defined.all():
        logger.info("%d run(s) without heat pumps left out: hp_dm_fraction = dm / (dm + un) is undefined",
                    int((~defined).sum()))
        runs = runs[defined]
    return runs.sort_values(list(rio.RUN_KEYS), kind="stable")


def box_rule(names: Sequence[str], limits: np.ndarray, init: np.ndarray, digits: int = 3) -> str:
    """A readable rule of a box's restrictions: ``ev_perc >= 0.45 and 0.10 <= hp_adoption <= 0.62``."""
    parts = []
    for name, (lo, hi), (ilo, ihi) in zip(names, limits, init):
        low, high = lo > ilo, hi < ihi
        if low and high:
            parts.append(f"{lo:.{digits}g} <= {name} <= {hi:.{digits}g}")
        elif low:
            parts.append(f"{name} >= {lo:.{digits}g}")
        elif high:
            parts.append(f"{name} <= {hi:.{digits}g}")
    return " and ".join(parts) if parts else "no restriction (failures spread over the whole input space)"


def select_step(trajectory: pd.DataFrame, min_coverage: float) -> int:
    """The step with the highest density at coverage >= ``min_coverage`` (ties: higher coverage, fewer
    restricted inputs, earlier step); step 0 (the whole space) always qualifies."""
    best, best_key = 0, None
    for i, (coverage, density, res_dim) in enumerate(trajectory[["coverage", "density", "res_dim"]].to_numpy(float)):
        if coverage + 1e-12 < min_coverage:
            continue
        key = (density, coverage, -res_dim, -i)
        if best_key is None or key > best_key:
            best, best_key = i, key
    return best


def restriction_qp(p_values: dict[str, list[float]]) -> dict[str, float]:
    """Quasi-p value of each restricted input of a box: the larger of its two limits' values (EMA gives
    -1 for a limit that is not restricted), so that a value <= 0.05 means every limit is significant."""
    return {name: max(v for v in values if v >= 0) for name, values in p_values.items()
            if any(v >= 0 for v in values)}


def seed_for(seed: int, *key: str) -> np.random.SeedSequence:
    """A SeedSequence per group from the run's seed and the group's key (stable across processes)."""
    words = np.frombuffer(hashlib.sha256("|".join(key).encode("utf-8")).digest()[:16], dtype="<u4")
    return np.random.SeedSequence([seed, *(int(w) for w in words)])


# ------------------------------------------------------------------------------------------- PRIM on one group
def _limits(box_lim: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    return box_lim[list(names)].to_numpy(dtype=float).T  # (d, 2): min, max


def _phases(trajectory: pd.DataFrame, n_searched: int) -> list[str]:
    """start, then peel (mass falls) or paste (mass grows) for the steps PRIM made, drop after them."""
    mass = trajectory["mass"].to_numpy(dtype=float)
    return ["start" if i == 0 else "drop" if i >= n_searched else "paste" if mass[i] > mass[i - 1] else "peel"
            for i in range(len(mass))]


def significant_box(box, selected: int, significance: float) -> dict[str, float]:
    """Select step ``selected`` of an EMA ``PrimBox`` and drop its least significant restriction
    (``drop_restriction``) while its quasi-p value is above ``significance``; returns the quasi-p values
    of the restrictions left (the box's current step is the result)."""
    box.select(selected)
    while True:
        qp = restriction_qp(box.p_values[box._cur_box])
        if not qp:
            return qp
        worst = max(qp, key=lambda n: (qp[n], -list(qp).index(n)))
        if qp[worst] <= significance:
            return qp
        box.drop_restriction(worst)


def cart_view(x: pd.DataFrame, y: np.ndarray, *, mass_min: float, seed: int) -> dict[str, Any]:
    """CART's densest leaf holding failures: limits (d, 2), coverage, density, mass, counts, number of
    leaves; ``leaves`` 1 when the tree does not split."""
    _, cart = ema_modules()
    n = len(y)
    alg = cart.CART(x, y, mass_min=max(mass_min, MIN_LEAF_RUNS / n))
    alg.build_tree()
    # EMA's build_tree fits a DecisionTreeClassifier without a random_state: equal splits (collinear
    # feeder descriptors) would break differently from run to run. Refit the same estimator with one.
    alg.clf.set_params(random_state=seed)
    alg.clf.fit(alg._x, alg.y)
    best = None
    for box_lim, stats in zip(alg.boxes, alg.stats):
        if not stats["coverage"] > 0:
            continue
        key = (float(stats["density"]), float(stats["coverage"]), -int(stats["res dim"]))
        if best is None or key > best[0]:
            best = (key, box_lim, stats)
    if best is None:  # no leaf holds a failure (y has none)
        return {"leaves": len(alg.boxes)}
    _, box_lim, stats = best
    limits = _limits(box_lim, x.columns)
    values = x.to_numpy(float)
    inside = np.all((values >= limits[:, 0]) & (values <= limits[:, 1]), axis=1)
    return {"leaves": len(alg.boxes), "limits": limits, "coverage": float(stats["coverage"]),
            "density": float(stats["density"]), "mass": float(stats["mass"]), "n_restricted": int(stats["res dim"]),
            "n_in_box": int(inside.sum()), "n_failures_in_box": int(y[inside].sum())}


def discover(head: dict[str, Any], runs: pd.DataFrame, y: np.ndarray, names: Sequence[str], *, min_runs: int,
             min_coverage: float, max_boxes: int, peel_alpha: float, paste_alpha: float, mass_min: float,
             significance: float, resamples: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Box rows and trajectory rows of one group and criterion (a status row when PRIM does not apply).

    ``head``: the group's identifying columns; ``runs``: its runs, with the columns ``names``;
    ``y``: which of them fail the criterion."""
    y = np.asarray(y, dtype=bool)
    n, k = len(y), int(y.sum())
    head = {**head, "n_runs": n, "n_failures": k, "base_rate": k / n if n else math.nan, "inputs": ";".join(names)}
    if n < min_runs:
        return [{**head, "status": "too_few_runs", "rule": f"{n} runs, fewer than --min-runs {min_runs}"}], []
    if k == 0:
        return [{**head, "status": "no_failures", "rule": "no run fails: nothing to concentrate"}], []
    if k == n:
        return [{**head, "status": "all_failures", "rule": "every run fails, whatever the inputs"}], []
    prim, _ = ema_modules()
    x = runs[list(names)].astype(float).reset_index(drop=True)
    init = np.column_stack([x.min().to_numpy(float), x.max().to_numpy(float)])
    key = (head["group"], head["criterion"])
    box_rows, step_rows = [], []
    with ema_quiet():
        alg = prim.Prim(x, y.astype(int), peel_alpha=peel_alpha, paste_alpha=paste_alpha, mass_min=mass_min)
        for b in range(1, max_boxes + 1):
            box = alg.find_box()
            if box is None:
                break
            n_searched = len(box.peeling_trajectory)
            selected = select_step(box.peeling_trajectory, min_coverage)
            qp = significant_box(box, selected, significance) if selected > 0 else {}
            final = box._cur_box if qp else selected
            s = box.peeling_trajectory.iloc[final]
            if not qp:
                if b == 1:
                    box_rows.append(_no_box_row(head, x, y, init, names, mass_min=mass_min, seed=seed))
                break
            scores = box.resample(i=final, iterations=resamples, p=0.5,
                                  rng=np.random.default_rng(seed_for(seed, *key, str(b)))) if resamples else None
            limits = _limits(box.box_lims[final], names)
            row = {**head, "status": "box", "method": "prim", "box": b, "step": final, "coverage": float(s["coverage"]),
                   "density": float(s["density"]), "mass": float(s["mass"]), "n_in_box": int(s["n"]),
                   "n_failures_in_box": int(s["k"]), "n_restricted": int(s["res_dim"]),
                   "rule": box_rule(names, limits, init)}
            for j, name in enumerate(names):
                row[f"{name}.min"], row[f"{name}.max"] = float(limits[j, 0]), float(limits[j, 1])
                row[f"{name}.qp"] = qp.get(name, math.nan)
                if scores is not None:
                    row[f"{name}.repro_coverage"] = float(scores.loc[name, "reproduce coverage"])
                    row[f"{name}.repro_density"] = float(scores.loc[name, "reproduce density"])
            row["reproducibility_pct"] = (min(row[f"{n}.repro_density"] for n in qp) if scores is not None
                                          else math.nan)
            box_rows.append(row)
            phases = _phases(box.peeling_trajectory, n_searched)
            for i, (_, t) in enumerate(box.peeling_trajectory.iterrows()):
                lim = _limits(box.box_lims[i], names)
                step = {key_: head[key_] for key_ in ("group", "scope", "criterion", "state", "season", "feeder")}
                step.update({"box": b, "step": i, "phase": phases[i], "coverage": float(t["coverage"]),
                             "density": float(t["density"]), "mass": float(t["mass"]), "n_in_box": int(t["n"]),
                             "n_failures_in_box": int(t["k"]), "n_restricted": int(t["res_dim"]),
                             "selected": i == final})
                for j, name in enumerate(names):
                    step[f"{name}.min"], step[f"{name}.max"] = float(lim[j, 0]), float(lim[j, 1])
                step_rows.append(step)
            if int(s["k"]) >= int(y[alg.yi_remaining].sum()):
                break  # no failure left outside the boxes
    return box_rows, step_rows


def _no_box_row(head: dict[str, Any], x: pd.DataFrame, y: np.ndarray, init: np.ndarray, names: Sequence[str], *,
                mass_min: float, seed: int) -> dict[str, Any]:
    row = {**head, "status": "no_box", "method": "cart"}
    view = cart_view(x, y, mass_min=mass_min, seed=seed)
    if "limits" not in view or view["n_restricted"] == 0:
        row["rule"] = ("PRIM finds no restriction with quasi-p <= the significance level, and CART finds no split "
                       "either: the failures are spread over the input space")
        return row
    row.update({k: view[k] for k in ("coverage", "density", "mass", "n_in_box", "n_failures_in_box", "n_restricted")})
    row["rule"] = (f"CART (PRIM finds no significant restriction), densest of {view['leaves']} leaves: "
                   + box_rule(names, view["limits"], init))
    if int(y.sum()) < MIN_LEAF_RUNS:
        row["rule"] += f" (from {int(y.sum())} failing run(s) only: a description, not a finding)"
    for j, name in enumerate(names):
        row[f"{name}.min"], row[f"{name}.max"] = float(view["limits"][j, 0]), float(view["limits"][j, 1])
    return row


def discovery_runs(results: pd.DataFrame, circuits: pd.DataFrame | None) -> Iterator[tuple[dict, pd.DataFrame,
                                                                                           np.ndarray, list[str]]]:
    """(head, runs, y, inputs) of every group and criterion: per (state, season) the pooled group, then
    each feeder; head rows of feeders failing before any adoption come with no runs (status row)."""
    flags = criterion_flags(results)
    references = reference_status(results, flags)
    runs = design_runs(results)
    descriptors = feeder_descriptors(results, circuits).set_index(["state", "season", "feeder"])
    runs = runs.join(descriptors, on=["state", "season", "feeder"])
    for (state, season), every in runs.groupby(["state", "season"], sort=True):
        feeders = sorted(every["feeder"].unique())
        for criterion in flags.columns:
            known = flags.loc[every.index, criterion].notna().to_numpy()
            part = every[known]  # the cost criterion: only the runs with a cost (every run for the others)
            if not known.all():
                logger.info("%s %s %s: %d run(s) without an upgrade cost (the step failed or did not run) left out",
                            state, season, criterion, int((~known).sum()))
            y_all = flags.loc[part.index, criterion].to_numpy(dtype=bool)
            before = [f for f in feeders if references.get((state, season, f), {}).get(criterion) == "fails"]
            for f in feeders:
                if references.get((state, season, f), {}).get(criterion) == "missing":
                    logger.info("%s %s %s: no ok reference run%s: kept in the pooled %s group", state, season, f,
                                " with a cost" if criterion == rio.COST_CRITERION else "", criterion)
            kept = ~part["feeder"].isin(before).to_numpy()
            pooled = part[kept]
            names = list(rio.INDEPENDENT_INPUTS)
            for d in DESCRIPTORS:
                if len(pooled) and np.isfinite(pooled[d].to_numpy(dtype=float)).all():
                    names.append(d)
                elif len(pooled):
                    logger.info("%s %s %s: descriptor %s not known for every feeder: left out of the pooled search",
                                state, season, criterion, d)
            head = {"group": f"{state} {season}", "scope": "pooled", "criterion": criterion, "state": state,
                    "season": season, "feeder": "", "reference": "", "feeders_left_out": ";".join(before)}
            if before and not len(pooled):
                yield ({**head, "status": "fails_before_adoption",
                        "rule": "every feeder's reference case 0 already fails: nothing left for PRIM to explain"},
                       part, y_all, names)
            else:
                yield head, pooled, y_all[kept], names
            for f in feeders:
                sub = part[part["feeder"] == f]
                ref = references.get((state, season, f), {}).get(criterion, "missing")
                head = {"group": f"{state} {season} {f}", "scope": "feeder", "criterion": criterion, "state": state,
                        "season": season, "feeder": f, "reference": ref, "feeders_left_out": ""}
                y = flags.loc[sub.index, criterion].to_numpy(dtype=bool)
                if ref == "fails":
                    head = {**head, "status": "fails_before_adoption",
                            "rule": "fails before any adoption: the reference case 0 already fails this criterion, "
                                    "so its failures are not explained by the inputs"}
                yield head, sub, y, list(rio.INDEPENDENT_INPUTS)


def box_columns() -> list[str]:
    return (["group", "scope", "criterion", "state", "season", "feeder", "status", "method", "reference",
             "feeders_left_out", "n_runs", "n_failures", "base_rate", "box", "step", "coverage", "density", "mass",
             "n_in_box", "n_failures_in_box", "n_restricted", "reproducibility_pct", "rule", "inputs"]
            + [f"{n}.{s}" for n in ALL_INPUTS for s in ("min", "max")] + [f"{n}.qp" for n in ALL_INPUTS]
            + [f"{n}.{s}" for n in ALL_INPUTS for s in ("repro_coverage", "repro_density")])


def trajectory_columns() -> list[str]:
    return (["group", "scope", "criterion", "state", "season", "feeder", "box", "step", "phase", "coverage", "density",
             "mass", "n_in_box", "n_failures_in_box", "n_restricted", "selected"]
            + [f"{n}.{s}" for n in ALL_INPUTS for s in ("min", "max")])


# ------------------------------------------------------------------------------------------- plots
def _label(name: str) -> str:
    return rio.INPUT_LABELS.get(name) or DESCRIPTOR_LABELS.get(name, name)


def _range(name: str, ranges: dict[str, tuple[float, float]]) -> tuple[float, float]:
    if name in rio.INPUT_BY_NAME:
        p = rio.INPUT_BY_NAME[name]
        return p.low, p.high
    return ranges.get(name, (0.0, 1.0))


def plot_boxes(boxes: pd.DataFrame, ranges: dict[str, tuple[float, float]], criteria: Sequence[str] = CRITERIA):
    """Per pooled group (rows) and criterion (columns: ``criteria``), each input's range (grey) and the first
    box's or CART leaf's range (red: PRIM, restricted, with its quasi-p value; blue: CART), with statistics.
    ``ranges``: (low, high) of the feeder descriptors over the runs."""
    groups = list(dict.fromkeys(boxes["group"]))
    fig, axes = figures.figure(len(groups), len(criteria), width=5.0, height=0.36 * len(ALL_INPUTS) + 1.6)
    yy = np.arange(len(ALL_INPUTS))
    for r, group in enumerate(groups):
        for c, criterion in enumerate(criteria):
            ax = axes[r, c]
            part = boxes[(boxes["group"] == group) & (boxes["criterion"] == criterion)]
            ax.set_yticks(yy, [_label(n) for n in ALL_INPUTS] if c == 0 else [""] * len(ALL_INPUTS), fontsize=7)
            ax.invert_yaxis()
            ax.set_xlim(-0.02, 1.02)
            ax.tick_params(axis="x", labelsize=7)
            if r == len(groups) - 1:
                ax.set_xlabel("position in the range [0 = lowest, 1 = highest]", fontsize=7)
            ax.barh(yy, 1.0, color="0.92")
            if part.empty:
                ax.set_title(f"{group}: {criterion}\n(not analysed)", fontsize=8)
                continue
            first = part.iloc[0]
            searched = str(first["inputs"]).split(";") if isinstance(first["inputs"], str) else []
            if first["status"] not in ("box", "no_box") or not np.isfinite(float(first["coverage"])):
                ax.text(0.5, 0.5, f"{first['status'].replace('_', ' ')}\n({int(first['n_failures'])} of "
                                  f"{int(first['n_runs'])} runs fail)", ha="center", va="center", transform=ax.transAxes,
                        fontsize=8)
                ax.set_title(f"{group}: {criterion}", fontsize=8)
                continue
            for i, name in enumerate(ALL_INPUTS):
                if name not in searched:
                    continue
                low, high = _range(name, ranges)
                span = (high - low) or 1.0
                lo, hi = (first[f"{name}.min"] - low) / span, (first[f"{name}.max"] - low) / span
                qp = float(first[f"{name}.qp"]) if first["status"] == "box" else math.nan
                color = "#c44e52" if np.isfinite(qp) else "#4c72b0" if first["status"] == "no_box" else "#8c8c8c"
                ax.barh(i, hi - lo, left=lo, color=color, alpha=0.85)
                if np.isfinite(qp):
                    ax.text(1.0, i, f" {first[f'{name}.min']:.3g}-{first[f'{name}.max']:.3g} (qp {qp:.2g})",
                            va="center", ha="right", fontsize=6)
            how = "PRIM" if first["status"] == "box" else "CART (no PRIM box)"
            ax.set_title(f"{group}: {criterion}, {how}\ncoverage {first['coverage']:.2f}, density "
                         f"{first['density']:.2f}, mass {first['mass']:.2f} ({int(first['n_failures'])}/"
                         f"{int(first['n_runs'])} fail)", fontsize=8)
    fig.suptitle("Where runs fail each planning criterion (pooled over feeders; red: PRIM restriction with its "
                 "quasi-p value, blue: CART leaf)", fontsize=10)
    return fig


def plot_trajectory(steps: pd.DataFrame, boxes: pd.DataFrame, criteria: Sequence[str] = CRITERIA):
    """Per pooled group (rows) and criterion (columns: ``criteria``): density against coverage along the first
    box's trajectory, dropped restrictions as crosses, the box kept circled."""
    groups = list(dict.fromkeys(boxes["group"]))
    fig, axes = figures.figure(len(groups), len(criteria), width=3.8, height=3.2)
    for r, group in enumerate(groups):
        for c, criterion in enumerate(criteria):
            ax = axes[r, c]
            part = steps[(steps["group"] == group) & (steps["criterion"] == criterion) & (steps["box"] == 1)] \
                if len(steps) else steps
            ax.set_xlim(0, 1.05)
            ax.set_ylim(0, 1.05)
            ax.tick_params(labelsize=7)
            ax.set_xlabel("coverage", fontsize=8)
            ax.set_ylabel("density", fontsize=8)
            ax.grid(alpha=0.3)
            ax.set_title(f"{group}: {criterion}", fontsize=8)
            if part.empty:
                status = boxes[(boxes["group"] == group) & (boxes["criterion"] == criterion)]["status"]
                ax.text(0.5, 0.5, status.iloc[0].replace("_", " ") if len(status) else "not analysed", ha="center",
                        va="center", transform=ax.transAxes, fontsize=8)
                continue
            searched = part[part["phase"] != "drop"]
            ax.plot(searched["coverage"], searched["density"], color="0.6", lw=0.8, zorder=0)
            ax.scatter(searched["coverage"], searched["density"], c=searched["n_restricted"], cmap="viridis", s=14,
                       vmin=0, vmax=len(ALL_INPUTS))
            dropped = part[part["phase"] == "drop"]
            ax.scatter(dropped["coverage"], dropped["density"], marker="x", color="#dd8452", s=30,
                       label="restriction dropped")
            chosen = part[part["selected"]]
            ax.scatter(chosen["coverage"], chosen["density"], s=120, facecolors="none", edgecolors="#c44e52", lw=2,
                       label="box kept")
            ax.legend(loc="lower left", fontsize=6)
    fig.suptitle("PRIM peeling trajectories (pooled groups): coverage against density; colour = restricted inputs",
                 fontsize=10)
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
    parser.add_argument("--significance", type=cli.share, default=SIGNIFICANCE,
                        help=f"drop a box's restrictions whose quasi-p value is above this (default {SIGNIFICANCE})")
    parser.add_argument("--resamples", type=cli.nonnegative_int, default=RESAMPLES,
                        help=f"PRIM runs on random halves of the runs, for each box's reproducibility (default "
                             f"{RESAMPLES}; 0: none)")
    parser.add_argument("--seed", type=cli.nonnegative_int, default=RESAMPLE_SEED,
                        help=f"seed of the resamples and of CART (default {RESAMPLE_SEED})")
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
        circuits = read_csv(rio.results_path(ws, "circuit_summary"), rio.PRODUCERS["xlrm_results"],
                            required=("state", "circuit_folder", "head_capacity_kva"))
        settings = {"min_runs": args.min_runs, "min_coverage": args.min_coverage, "max_boxes": args.max_boxes,
                    "peel_alpha": args.peel_alpha, "paste_alpha": args.paste_alpha, "mass_min": args.mass_min,
                    "significance": args.significance, "resamples": args.resamples, "seed": args.seed}
        ema_modules()
        box_rows, step_rows = [], []
        for head, runs, y, names in discovery_runs(results, circuits):
            if "status" in head:  # fails before any adoption: a status row, no PRIM
                box_rows.append({**head, "n_runs": len(runs), "n_failures": int(np.sum(y)),
                                 "base_rate": float(np.mean(y)) if len(y) else math.nan, "inputs": ";".join(names)})
                logger.info("%s, %s: fails before any adoption", head["group"], head["criterion"])
                continue
            boxes, steps = discover(head, runs, y, names, **settings)
            box_rows += boxes
            step_rows += steps
            first = boxes[0]
            if first["status"] in ("box", "no_box") and "coverage" in first:
                logger.info("%s, %s: %d of %d runs fail; %s %s (coverage %.2f, density %.2f, mass %.2f)", first["group"],
                            first["criterion"], first["n_failures"], first["n_runs"], first["status"], first["rule"],
                            first["coverage"], first["density"], first["mass"])
            else:
                logger.info("%s, %s: %s (%d of %d runs fail)", first["group"], first["criterion"],
                            first["status"].replace("_", " "), first["n_failures"], first["n_runs"])
        if not box_rows:
            raise cli.UserError(f"no ok design run in {rio.results_path(ws, 'xlrm_results')}: nothing to discover")
        boxes = pd.DataFrame(box_rows, columns=box_columns())
        for c in ("box", "step", "n_in_box", "n_failures_in_box", "n_restricted"):
            boxes[c] = boxes[c].astype("Int64")
        steps = pd.DataFrame(step_rows, columns=trajectory_columns())
        write_csv(rio.results_path(ws, "prim_boxes"), boxes)
        write_csv(rio.results_path(ws, "prim_trajectory"), steps)
        pooled = boxes[boxes["scope"] == "pooled"]
        design = design_runs(results).join(feeder_descriptors(results, circuits).set_index(
            ["state", "season", "feeder"]), on=["state", "season", "feeder"])
        ranges = {d: (float(np.nanmin(design[d])), float(np.nanmax(design[d]))) if np.isfinite(design[d]).any()
                  else (0.0, 1.0) for d in DESCRIPTORS}
        criteria = criteria_of(results)
        save_figure(plot_boxes(pooled, ranges, criteria), rio.plots_dir(ws) / "prim_boxes.png")
        save_figure(plot_trajectory(steps[steps["scope"] == "pooled"], pooled, criteria),
                    rio.plots_dir(ws) / "prim_trajectory.png")
        write_manifest(ws.results_dir, "7_results_analysis/scenario_discovery.py", {
            **settings, "states": sorted(results["state"].unique().tolist()), "inputs": list(rio.INDEPENDENT_INPUTS),
            "descriptors": list(DESCRIPTORS), "criteria": {name: {k: list(v) if isinstance(v, tuple) else v
                                                                  for k, v in spec.items()}
                                                           for name, spec in config.FAILURE_CRITERIA.items()},
            **({"cost_criterion": {"name": rio.COST_CRITERION, "metric": rio.COST_METRIC,
                                   "threshold_usd": rio.cost_threshold_usd()}}
               if rio.COST_CRITERION in criteria else {}),
            "ema_workbench": metadata.version("ema_workbench"), "scikit-learn": metadata.version("scikit-learn"),
            "groups": int(boxes["group"].nunique()), "boxes": int((boxes["status"] == "box").sum())},
            name="manifest_scenario_discovery.json")
        logger.info("%d group(s) x %d criteria, %d box(es) -> %s", boxes["group"].nunique(), len(criteria),
                    int((boxes["status"] == "box").sum()), rio.results_path(ws, "prim_boxes"))
        return 0


if __name__ == "__main__":
    sys.exit(main())
