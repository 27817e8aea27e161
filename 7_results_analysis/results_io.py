"""Shared plumbing of phase 7: output file names, the variable tables (roles, units), loading.

The phase 7 scripts read phase 6's run folders once (``append_experiment_results.py``) and then
work from the combined tables. This module names those tables, documents every variable they
hold (role, unit, meaning) and gives the few helpers more than two scripts need:

* file names (``common.paths.RESULT_FILES``) below ``<data>/7_results_analysis/`` (``Workspace.results_dir``);
* :data:`METRICS`, :data:`REALISED`: the unit and meaning of every metric phase 6b writes in a
  run's ``summary.json`` (``metrics``) and of every realised count (``realised``), from
  ``common.schema`` (the one table phase 6 and phase 7 share);
* :data:`CRITERIA`, :func:`planning_failures`: "the feeder fails" a planning criterion of
  ``common.config.FAILURE_CRITERIA`` (transformer overload, line overload, sustained undervoltage)
  or any of them (``fails``), as used by the scenario discovery, the plots and the report;
* :data:`FACTORS`, :func:`with_factors`: the independent coordinates of the heat-pump shares
  (``hp_adoption`` = 1 - baseline, X; ``hp_dm_fraction`` = dm / (dm + un), L; ``common.doe.FACTORS``),
  added to every table read from ``xlrm_results`` beside the shares, which stay;
* :func:`load_results`: ``xlrm_results.parquet`` with a clear error when it is missing or unreadable,
  with the factors added;
* :data:`COST_METRIC`, :func:`has_upgrade_costs`, :func:`cost_failures`: the upgrade step's cost
  (phase 6 ``--upgrades``) as an outcome, and its criterion "cost above
  ``common.config.UPGRADES["cost_threshold_usd"]``" (:data:`COST_CRITERION`), only where the cost exists.

Nothing here reads or writes at import time.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from common import cli, config, doe, schema
from common.io import exclusive_step, read_parquet
from common.paths import Workspace

logger = logging.getLogger(__name__)

#: run keys, in the order of the tables' first columns (and of their rows)
RUN_KEYS = ("state", "feeder", "season", "design", "case")
#: the same keys under the earlier study's names (aggregate_m2_combined, circuit_summary_combined)
PRIOR_KEYS = {"state": "state", "feeder": "circuit_folder", "season": "season", "design": "design",
              "case": "scenario"}
#: the fixed reference case of every design (common.config.REFERENCE_CASE)
REFERENCE_CASE = 0

#: files written below <data>/7_results_analysis/
# file names: common.paths.RESULT_FILES (the only place that knows where files live)

#: scripts of this phase, in the order they run (for messages naming the producer of an input)
PRODUCERS = {
    "xlrm_results": "7_results_analysis/append_experiment_results.py",
    "xlrm_long": "7_results_analysis/append_xlrm_long_format.py",
    "sensitivity": "7_results_analysis/sensitivity_analysis.py",
    "prim_boxes": "7_results_analysis/scenario_discovery.py",
    "plots": "7_results_analysis/plot_results.py",
}

#: study inputs (XLRM X and L) under their flattened names, in common.doe.PARAMETERS order
INPUTS = tuple(p.name for p in doe.PARAMETERS)
#: the independent coordinates of the heat-pump shares (common.doe.FACTORS), derived from the shares
FACTORS = tuple(p.name for p in doe.FACTORS)
#: every input of a table read by phase 7 (the shares and the factors): name -> common.doe.Parameter
INPUT_BY_NAME = {p.name: p for p in (*doe.PARAMETERS, *doe.FACTORS)}
#: the independent inputs of the designs, what the sensitivity analysis and PRIM search: the three
#: heat-pump shares sum to one and shares.dm and shares.un are rank-correlated (about -0.5 over a
#: uniform design), so the shares are replaced by their independent coordinates ``hp_adoption``
#: (a function of cube dimension shares_u1 only) and ``hp_dm_fraction`` (of shares_u2 only)
INDEPENDENT_INPUTS = ("hp_adoption", "hp_dm_fraction", "ev_perc", "ev_lvl2_perc", "ev_split.controlled",
                      "storage_perc_3ph", "pv_perc_3ph", "pv_perc_res", "storage_perc_res")

#: which point of the design a run is (0: the reference case) and its placement replicate (phase 0
#: --replicates; common.doe): the cases of one design point differ only in their placements
PLACEMENT_COLUMNS = ("design_point", "placement_replicate")

#: short labels of the inputs for figures
INPUT_LABELS = {
    "shares.baseline": "baseline heating share",
    "shares.dm": "demand-managed heat-pump share",
    "shares.un": "uncontrolled heat-pump share",
    "hp_adoption": "heat-pump adoption (1 - baseline)",
    "hp_dm_fraction": "demand-managed fraction of heat pumps",
    "ev_perc": "EV share of residential customers",
    "ev_lvl2_perc": "Level-2 share of EVs",
    "ev_split.controlled": "managed-charging share of EVs",
    "storage_perc_3ph": "storage share of 3-phase customers",
    "pv_perc_3ph": "PV share of 3-phase customers",
    "pv_perc_res": "rooftop PV share of residential customers",
    "storage_perc_res": "home-battery share of residential customers",
}

#: the run files' schema, shared with phase 6 (common.schema): feeder-head columns, metrics, realised counts
HEAD_COLUMNS = schema.HEAD_COLUMNS
METRICS = schema.METRICS
REALISED = schema.REALISED
NOT_OUTCOMES = schema.NOT_OUTCOMES
is_text = schema.is_text

#: the upgrade step's outcomes (6_instantiate_circuits/upgrade_circuit.py, phase 6 ``--upgrades``; issue 17), from
#: the ``upgrades`` block of a run's summary.json (:func:`upgrade_columns`): columns of xlrm_results only when some
#: run has that block; empty (never 0) where the step did not run or failed. A cost threshold for the
#: sensitivity and PRIM analyses: ``common.config.UPGRADES["cost_threshold_usd"]``.
UPGRADE_METRICS: dict[str, tuple[str, str]] = {
    "upgrade_cost_usd": ("USD", "cost of the thermal and voltage upgrades that remove the run's violations (NREL "
                                "DISCO's method and generic unit costs; 0: no violation)"),
    "upgrade_cost_transformers_usd": ("USD", "of which transformer replacements and parallel units"),
    "upgrade_cost_lines_usd": ("USD", "of which reconductored lines and parallel circuits"),
    "upgrade_cost_voltage_usd": ("USD", "of which capacitor / regulator control changes and new regulators"),
    "upgrade_transformers": ("count", "transformers upgraded"),
    "upgrade_lines": ("count", "lines upgraded"),
    "upgrade_voltage_actions": ("count", "control changes and new regulators"),
    "upgrade_unsolved": ("count", "violations the upgrades did not remove (elements, and customers outside Range A "
                                  "as one item)"),
    "upgrade_status": ("text", "upgraded, not needed, or failed (with the reason in summary.json)"),
}


#: the run's metrics on its feeder's light-load day (phase 6 light_load.py, ``common.config.LIGHT_LOAD_SEASONS``):
#: columns of xlrm_results only when some run has them (summer runs by default); empty for the others
LIGHT_LOAD_METRICS = schema.LIGHT_LOAD_METRICS

#: every outcome of xlrm_results with its unit and meaning: the run metrics, the light-load day's, then the
#: upgrade step's
OUTCOMES_DESCRIBED: dict[str, tuple[str, str]] = {**METRICS, **LIGHT_LOAD_METRICS, **UPGRADE_METRICS}
#: the upgrade cost [USD] as an analysed outcome of phase 7 (sensitivity, scenario discovery, robustness, report)
COST_METRIC = "upgrade_cost_usd"
#: the cost's split, in the order the report gives it: (column, label)
COST_PARTS = (("upgrade_cost_transformers_usd", "transformers"), ("upgrade_cost_lines_usd", "lines"),
              ("upgrade_cost_voltage_usd", "voltage"))
#: scenario discovery's criterion on the cost (only where xlrm_results has the cost): a run "fails" it when its
#: upgrade cost is above ``common.config.UPGRADES["cost_threshold_usd"]``
COST_CRITERION = "upgrade_cost_above_threshold"


def has_upgrade_costs(results: pd.DataFrame) -> bool:
    """Whether the upgrade step ran on some run of ``results``: the cost column holds a finite value."""
    if COST_METRIC not in results.columns:
        return False
    return bool(np.isfinite(pd.to_numeric(results[COST_METRIC], errors="coerce").to_numpy(
        dtype=float, na_value=np.nan)).any())


def cost_threshold_usd() -> float:
    """The cost above which a run is "too costly" [USD]: ``common.config.UPGRADES["cost_threshold_usd"]``."""
    return float(config.UPGRADES["cost_threshold_usd"])


def cost_failures(results: pd.DataFrame, threshold_usd: float | None = None) -> pd.Series:
    """Per run, whether its upgrade cost is above the threshold (``cost_threshold_usd`` by default), as a
    nullable boolean: True above it, False at or below it, <NA> where the cost is unknown (no upgrade
    step, a failed one, or a run that is not ``ok``); an analysis of the criterion leaves those runs out
    rather than count them as passing. A table without the cost column is all <NA>."""
    threshold_usd = cost_threshold_usd() if threshold_usd is None else float(threshold_usd)
    if COST_METRIC not in results.columns:
        return pd.Series(pd.NA, index=results.index, dtype="boolean")
    cost = pd.to_numeric(results[COST_METRIC], errors="coerce").astype(float)
    known = cost.notna()
    if "status" in results.columns:
        known &= results["status"] == "ok"
    return pd.Series(cost > threshold_usd, index=results.index, dtype="boolean").where(known, pd.NA)


def upgrade_columns(block: dict | None) -> dict[str, object]:
    """The :data:`UPGRADE_METRICS` of a summary's ``upgrades`` block ({} without one; costs None when it failed)."""
    if not isinstance(block, dict):
        return {}
    return {"upgrade_cost_usd": block.get("cost_usd"),
            "upgrade_cost_transformers_usd": block.get("cost_transformers_usd"),
            "upgrade_cost_lines_usd": block.get("cost_lines_usd"),
            "upgrade_cost_voltage_usd": block.get("cost_voltage_usd"),
            "upgrade_transformers": block.get("n_transformer_upgrades"), "upgrade_lines": block.get("n_line_upgrades"),
            "upgrade_voltage_actions": block.get("n_voltage_upgrades"), "upgrade_unsolved": block.get("n_unsolved"),
            "upgrade_status": block.get("status", "")}


#: the four outcomes the sensitivity analysis and the report lead with
HEADLINE_METRICS = ("peak_kw", "ansi_a_violation_node_intervals", "worst_transformer_loading_pct", "losses_pct")


def ordered(names: Iterable[str], table: dict[str, tuple[str, str]]) -> list[str]:
    """``names`` in the table's order, then any name the table does not know, sorted."""
    names = set(names)
    return [n for n in table if n in names] + sorted(names - set(table))


# --------------------------------------------------------------------------------------------
# Independent factors
# --------------------------------------------------------------------------------------------
def with_factors(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with the columns ``hp_adoption`` and ``hp_dm_fraction`` (float64, from the shares by
    ``common.doe.factors_from_shares``) placed right after the last input column; the shares stay.

    ``hp_dm_fraction`` is NaN for a run without heat pumps (``shares.dm + shares.un == 0``, e.g. the
    reference case 0): the fraction is undefined there, and the analyses leave such runs out. Columns
    already present are computed again (the shares are the source)."""
    frame = results.drop(columns=[c for c in FACTORS if c in results.columns])
    shares = [frame[name].to_numpy(dtype=float, na_value=np.nan) if name in frame.columns else None
              for name in ("shares.baseline", "shares.dm", "shares.un")]
    if any(column is None for column in shares):
        return results
    values = doe.factors_from_shares(*shares)
    at = max(frame.columns.get_loc(name) for name in INPUTS if name in frame.columns) + 1
    for j, name in enumerate(FACTORS):
        frame.insert(at + j, name, values[:, j].astype("float64"))
    return frame


def defined_inputs(runs: pd.DataFrame, names: Iterable[str] = INDEPENDENT_INPUTS) -> np.ndarray:
    """Boolean mask of the runs whose inputs ``names`` are all defined (finite): a run without heat
    pumps has no ``hp_dm_fraction`` and is left out of an analysis over it."""
    values = runs[list(names)].to_numpy(dtype=float, na_value=np.nan)
    return np.isfinite(values).all(axis=1)


# --------------------------------------------------------------------------------------------
# Planning failures
# --------------------------------------------------------------------------------------------
#: the planning criteria, in common.config.FAILURE_CRITERIA order (each a column of planning_failures)
CRITERIA = tuple(config.FAILURE_CRITERIA)
#: the union of the criteria: a run fails when it fails any of them
UNION = "fails"
_TX, _LINE, _UV = (config.FAILURE_CRITERIA[k] for k in ("transformer_overload", "line_overload", "undervoltage"))
#: short labels of the criteria for tables and figures, with their thresholds
CRITERION_LABELS = {
    "transformer_overload": f"transformer overload ({_TX['window_h']:g}-h average > {_TX['threshold_pct']:g} % of "
                            f"nameplate, or > {_TX['emergency_pct']:g} % in any interval)",
    "line_overload": f"line overload ({_LINE['window_h']:g}-h average > {_LINE['threshold_pct']:g} % of NormAmps)",
    "undervoltage": f"undervoltage (a customer below {_UV['range_pu'][0]:g} pu for "
                    f"{_UV['min_consecutive_intervals']} or more consecutive 15-min intervals)",
    UNION: "any planning criterion",
    COST_CRITERION: f"upgrade cost above {float(config.UPGRADES['cost_threshold_usd']):,.0f} USD "
                    "(common.config.UPGRADES cost_threshold_usd; only where the upgrade step ran)",
}


def criterion_threshold(name: str, criteria: dict | None = None) -> int:
    """The count at which a criterion's metric fails: ``min_consecutive_intervals`` for a duration
    criterion (undervoltage), 1 (any element-interval) for a count criterion (the overloads)."""
    spec = (config.FAILURE_CRITERIA if criteria is None else criteria)[name]
    return int(spec.get("min_consecutive_intervals", 1))


def planning_failures(results: pd.DataFrame, criteria: dict | None = None) -> pd.DataFrame:
    """Which runs fail each planning criterion (``common.config.FAILURE_CRITERIA``) and their union.

    Columns (bool), one per criterion, then ``fails`` (any of them):

    * ``transformer_overload`` (IEEE C57.91 loading guide): a transformer whose 2-h moving-average
      loading is above 100 % of nameplate (``transformer_ma_overload_intervals >= 1``) or whose loading
      in any 15-min interval is above the emergency limit, 150 % (``transformer_emergency_intervals >= 1``);
    * ``line_overload`` (NormAmps, the continuous rating; conductor heating per IEEE 738): a line whose
      1-h moving-average current is above 100 % of NormAmps (``line_ma_overload_intervals >= 1``);
    * ``undervoltage`` (ANSI C84.1 Range A): a customer below Range A for at least
      ``min_consecutive_intervals`` consecutive 15-min intervals, 2 by default
      (``ansi_a_under_max_consecutive_intervals >= 2``);
    * ``overload``: the same as ``transformer_overload``, kept under the name make_report.py reads
      until it reads ``transformer_overload``.

    The thermal thresholds are applied by phase 6 when it counts (``common.config.THERMAL``, from the
    same table); the undervoltage duration is applied here. A run whose ``status`` is not ``ok`` (no
    metrics) fails nothing. An ok run without a metric a criterion needs (solved before that metric
    existed), or a table without it, is a UserError naming the metric: nothing is taken as "passes".
    """
    criteria = config.FAILURE_CRITERIA if criteria is None else criteria
    ok = (results["status"] == "ok").to_numpy() if "status" in results.columns else np.ones(len(results), dtype=bool)
    flags = {}
    for name, spec in criteria.items():
        least = criterion_threshold(name, criteria)
        failing = np.zeros(len(results), dtype=bool)
        for metric in spec["metrics"]:
            if metric not in results.columns:
                raise cli.UserError(f"the results have no column {metric}, which the {name} criterion "
                                    "(common.config.FAILURE_CRITERIA) needs: solve phase 6 again and run "
                                    f"{PRODUCERS['xlrm_results']}")
            values = pd.to_numeric(results[metric], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            missing = ok & ~np.isfinite(values)
            if missing.any():
                raise cli.UserError(f"{int(missing.sum())} ok run(s) have no {metric}, which the {name} criterion "
                                    "(common.config.FAILURE_CRITERIA) needs (solved before the metric existed): "
                                    f"solve them again with phase 6 and run {PRODUCERS['xlrm_results']}")
            failing |= ok & (np.nan_to_num(values, nan=-np.inf) >= least)
        flags[name] = failing
    table = pd.DataFrame(flags, index=results.index)
    table[UNION] = table[list(criteria)].any(axis=1) if criteria else False
    return table


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
#: outputs of sensitivity_analysis.py not (yet) in common.paths.RESULT_FILES: key -> file name
SENSITIVITY_FILES = {"sensitivity_convergence": "sensitivity_convergence.csv",
                     "placement_spread": "placement_spread.csv"}


def results_path(ws: Workspace, key: str) -> Path:
    if key in SENSITIVITY_FILES:
        return ws.results_dir / SENSITIVITY_FILES[key]
    if key in ROBUSTNESS_FILES:
        return ws.results_dir / ROBUSTNESS_FILES[key]
    return ws.result(key)


def plots_dir(ws: Workspace) -> Path:
    return ws.results_plots


def results_folder(ws: Workspace) -> Path:
    """``<data>/7_results_analysis`` (not created); UserError when a file stands in its place."""
    for folder in (ws.results_dir, ws.results_plots):
        if folder.exists() and not folder.is_dir():
            raise cli.UserError(f"{folder} is a file, not a folder: move it away or use another --data-dir")
    return ws.results_dir


@contextlib.contextmanager
def phase_lock(ws: Workspace, script: str) -> Iterator[Path]:
    """The start of every phase 7 script: ``7_results_analysis`` checked (:func:`results_folder`), its
    lock held for the script (two phase 7 scripts never write it at once) and the temporaries a killed
    writer left in it removed."""
    folder = results_folder(ws)
    with exclusive_step(folder, f"phase 7 {script}", recursive=True):
        yield folder


def load_results(ws: Workspace, states: Iterable[str] | None = None) -> pd.DataFrame:
    """``xlrm_results.parquet`` (optionally some states only), checked: a missing, empty, truncated or
    corrupt file, or one without the run keys, status and inputs, is an InputError naming the file and
    the script that writes it. The independent factors are added (:func:`with_factors`)."""
    results_folder(ws)
    frame = read_parquet(results_path(ws, "xlrm_results"), PRODUCERS["xlrm_results"],
                         required=(*RUN_KEYS, "status", *INPUTS))
    frame = with_factors(frame)
    if states:
        wanted = sorted(set(states))
        frame = frame[frame["state"].isin(wanted)].reset_index(drop=True)
        if frame.empty:
            raise cli.UserError(f"--state {' '.join(wanted)}: no run of these states in "
                                f"{results_path(ws, 'xlrm_results')}")
    return frame


def add_state_filter(parser) -> None:
    """``--state``: any number of states; default every state present."""
    parser.add_argument("--state", nargs="+", choices=config.STATES, default=None,
                        metavar="{" + ",".join(config.STATES) + "}",
                        help="state(s) to include (default: every state with results)")


# --------------------------------------------------------------------------------------------
# Experiment layout (phase 0 --layout; common.doe "layouts")
# --------------------------------------------------------------------------------------------
#: columns of xlrm_results from a cross layout's mixes file (absent for a joint layout), with their role
#: in the long table, unit and meaning
LAYOUT_COLUMNS = {
    "scenario": ("X", "index", "scenario of the cross layout (1..S within a design; 0 the reference case): the "
                               "future, the values of the uncertainties X, the same under every policy"),
    "policy": ("L", "index", "policy of the cross layout (1..P, the same policy in every design; 0 the reference "
                             "case): the values of the levers L"),
    "policy_name": ("run", "text", "name of the policy (common.config.POLICIES, or 'policy <p>' when sampled)"),
}
ROBUSTNESS_FILES = {"robustness": "robustness.csv", "regret": "regret.csv", "vulnerability": "vulnerability.csv"}
PRODUCERS.setdefault("robustness", "7_results_analysis/robustness_analysis.py")


def layout_of_mixes(mixes: dict[str, dict]) -> dict[int, tuple[int, int, str]]:
    """case -> (scenario, policy, policy_name) of a cross layout's mixes (as ``doe.load_mixes`` returns
    them); empty for a joint layout."""
    return {int(k): (int(c["scenario"]), int(c["policy"]), str(c["policy_name"])) for k, c in mixes.items()
            if doe.case_layout(c) == "cross"}


def with_layout(results: pd.DataFrame, layouts: dict[str, dict[int, tuple[int, int, str]]]) -> pd.DataFrame:
    """``results`` with ``scenario``, ``policy`` (Int64) and ``policy_name`` right after the placement
    columns, from each design's cross-layout mixes (``layouts``: design -> :func:`layout_of_mixes`);
    unchanged when no design has a cross layout (a joint study keeps its columns). A run of a joint
    design beside a cross one gets empty ids."""
    if not any(layouts.values()):
        return results
    frame = results.drop(columns=[c for c in LAYOUT_COLUMNS if c in results.columns])
    found = [layouts.get(d, {}).get(int(c)) for d, c in zip(frame["design"], frame["case"])]
    at = frame.columns.get_loc(PLACEMENT_COLUMNS[-1]) + 1
    frame.insert(at, "scenario", pd.array([f[0] if f else None for f in found], dtype="Int64"))
    frame.insert(at + 1, "policy", pd.array([f[1] if f else None for f in found], dtype="Int64"))
    frame.insert(at + 2, "policy_name", pd.Series([f[2] if f else "" for f in found], index=frame.index, dtype="str"))
    return frame


def is_cross(results: pd.DataFrame) -> bool:
    """Whether the results hold a cross layout: scenario and policy ids on some run besides the reference."""
    if not all(c in results.columns for c in ("scenario", "policy")):
        return False
    policy = pd.to_numeric(results["policy"], errors="coerce")
    return bool((policy.fillna(0) > 0).any())
