"""Shared plumbing of phase 7: output file names, the variable tables (roles, units), loading.

The phase 7 scripts read phase 6's run folders once (``append_experiment_results.py``) and then
work from the combined tables. This module names those tables, documents every variable they
hold (role, unit, meaning) and gives the few helpers more than two scripts need:

* file names (``common.paths.RESULT_FILES``) below ``<data>/7_results_analysis/`` (``Workspace.results_dir``);
* :data:`METRICS`, :data:`REALISED`: the unit and meaning of every metric phase 6b writes in a
  run's ``summary.json`` (``metrics``) and of every realised count (``realised``);
* :func:`planning_failures`: "the feeder fails" (any ANSI C84.1 Range A undervoltage at a customer,
  or any transformer above its rating), as used by the scenario discovery, the plots and the report;
* :func:`load_results`: ``xlrm_results.parquet`` with a clear error when it is missing.

Nothing here reads or writes at import time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from common import cli, config, doe
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
#: the independent inputs of the designs: the three heat-pump shares sum to one, so
#: ``shares.baseline`` is left out (it is 1 - dm - un)
INDEPENDENT_INPUTS = ("shares.dm", "shares.un", "ev_perc", "ev_lvl2_perc", "ev_split.controlled",
                      "storage_perc_3ph", "pv_perc_3ph")

#: short labels of the inputs for figures
INPUT_LABELS = {
    "shares.baseline": "baseline heating share",
    "shares.dm": "demand-managed heat-pump share",
    "shares.un": "uncontrolled heat-pump share",
    "ev_perc": "EV share of residential customers",
    "ev_lvl2_perc": "Level-2 share of EVs",
    "ev_split.controlled": "managed-charging share of EVs",
    "storage_perc_3ph": "storage share of 3-phase customers",
    "pv_perc_3ph": "PV share of 3-phase customers",
}

#: Feeder-head columns of phase 6b's timeseries.parquet (the earlier workflow's m2 schema), as
#: ``6_instantiate_circuits/daily_power_flow.HEAD_COLUMNS`` names them (a test keeps them equal).
HEAD_COLUMNS = ("S1 (kVA)", "Ang1", "S2 (kVA)", "Ang2", "S3 (kVA)", "Ang3", "P1 (kW)", "Q1 (kVAr)", "P2 (kW)",
                "Q2 (kVAr)", "P3 (kW)", "Q3 (kVAr)", "P_3ph (kW)", "Q_3ph (kVAr)", "S_3ph (kVA)", "S_sum_3ph (kVA)")

# --------------------------------------------------------------------------------------------
# Variable tables: name -> (unit, meaning). "text" marks a value that is not a number.
# --------------------------------------------------------------------------------------------
#: Outcomes (XLRM M) of phase 6b, ``summary.json`` key ``metrics`` (6_instantiate_circuits/daily_power_flow.py).
#: Counts of "node-intervals" count each customer service node once per 15-min interval it is out of
#: range; "element-intervals" likewise per element.
METRICS: dict[str, tuple[str, str]] = {
    "peak_kw": ("kW", "feeder-head peak active power (15-min average)"),
    "peak_time": ("text", "start of the interval of the feeder-head peak, hh:mm"),
    "energy_kwh": ("kWh", "feeder-head energy of the design day"),
    "losses_kwh": ("kWh", "circuit losses of the day"),
    "losses_pct": ("%", "losses as a share of the feeder-head energy"),
    "imbalance_max_kva": ("kVA", "largest S_sum_3ph - S_3ph at the head (phase imbalance)"),
    "imbalance_mean_kva": ("kVA", "mean S_sum_3ph - S_3ph at the head"),
    "v_min_pu": ("pu", "lowest voltage of any energised node"),
    "v_max_pu": ("pu", "highest voltage of any energised node"),
    "v_min_customer_pu": ("pu", "lowest voltage at a customer service node"),
    "v_max_customer_pu": ("pu", "highest voltage at a customer service node"),
    "ansi_a_under_node_intervals": ("count", "customer node-intervals below ANSI C84.1 Range A"),
    "ansi_a_over_node_intervals": ("count", "customer node-intervals above ANSI C84.1 Range A"),
    "ansi_a_violation_node_intervals": ("count", "customer node-intervals outside ANSI C84.1 Range A"),
    "ansi_a_customers_affected": ("count", "customers with any node outside Range A"),
    "ansi_b_under_node_intervals": ("count", "customer node-intervals below ANSI C84.1 Range B"),
    "ansi_b_over_node_intervals": ("count", "customer node-intervals above ANSI C84.1 Range B"),
    "ansi_b_violation_node_intervals": ("count", "customer node-intervals outside ANSI C84.1 Range B"),
    "ansi_b_customers_affected": ("count", "customers with any node outside Range B"),
    "worst_line_loading_pct": ("%", "highest line current as a share of NormAmps"),
    "worst_line": ("text", "the line with the highest loading"),
    "overloaded_line_intervals": ("count", "line element-intervals above 100 % of NormAmps"),
    "overloaded_lines": ("count", "lines above 100 % of NormAmps at least once"),
    "line_ma_overload_intervals": ("count", "line element-intervals whose moving average exceeds the "
                                            "THERMAL line threshold"),
    "worst_transformer_loading_pct": ("%", "highest transformer |S| as a share of its kVA rating"),
    "worst_transformer": ("text", "the transformer with the highest loading"),
    "overloaded_transformer_intervals": ("count", "transformer element-intervals above 100 % of rating"),
    "overloaded_transformers": ("count", "transformers above 100 % of rating at least once"),
    "transformer_ma_overload_intervals": ("count", "transformer element-intervals whose moving average "
                                                   "exceeds the THERMAL transformer threshold"),
    "reverse_flow_intervals": ("count", "15-min intervals with power flowing back into the substation"),
    "peak_without_storage_kw": ("kW", "feeder-head peak of the same day with the batteries disabled"),
    "storage_peak_reduction_kw": ("kW", "peak without storage minus peak with storage"),
    "storage_peak_reduction_pct": ("%", "storage peak reduction as a share of the peak without storage"),
    "storage_discharged_kwh": ("kWh", "energy the batteries discharged"),
    "storage_charged_kwh": ("kWh", "energy the batteries charged"),
    "ev_energy_requested_kwh": ("kWh", "energy the EVs asked for"),
    "ev_energy_delivered_kwh": ("kWh", "energy the chargers delivered"),
    "ev_energy_unserved_kwh": ("kWh", "EV energy not delivered (sessions too short or voltage too low)"),
    "pv_energy_kwh": ("kWh", "PV energy of the day"),
    "non_converged_steps": ("count", "15-min steps whose power flow did not converge"),
}
#: metrics phase 6b also writes that are not outcomes (kept once, under REALISED)
NOT_OUTCOMES = ("n_customers",)

#: Realised counts of an instance (``summary.json`` key ``realised``; nested dictionaries flattened
#: with a dot, as the inputs are).
REALISED: dict[str, tuple[str, str]] = {
    "n_customers": ("count", "customers of the feeder"),
    "n_residential": ("count", "residential customers"),
    "n_three_phase": ("count", "three-phase customers (PV and storage hosts)"),
    "customers_per_variant.baseline": ("count", "customers on their existing heating and cooling"),
    "customers_per_variant.dm": ("count", "customers with demand-managed heat pumps"),
    "customers_per_variant.un": ("count", "customers with uncontrolled heat pumps"),
    "n_evs": ("count", "EVs (one per EV host)"),
    "n_evs_level2": ("count", "EVs charging at Level 2"),
    "n_evs_controlled": ("count", "EVs in managed charging"),
    "ev_charger_kw_total": ("kW", "sum of the EV charger ratings"),
    "ev_need_kwh": ("kWh", "energy the EV sessions need"),
    "ev_scheduled_kwh": ("kWh", "energy the charging schedules deliver"),
    "ev_unserved_kwh": ("kWh", "EV energy the sessions cannot take in their dwell time"),
    "n_pv": ("count", "PV systems"),
    "pv_kw": ("kW", "PV rating (Pmpp) of all systems"),
    "n_storage": ("count", "batteries"),
    "n_storage_wanted": ("count", "batteries the storage share asked for"),
    "storage_kw": ("kW", "battery power rating of the fleet"),
    "storage_kwh": ("kWh", "battery energy rating of the fleet"),
    "storage_shortfall": ("text", "why fewer batteries than wanted were placed, if so"),
}

#: the four outcomes the sensitivity analysis and the report lead with
HEADLINE_METRICS = ("peak_kw", "ansi_a_violation_node_intervals", "worst_transformer_loading_pct", "losses_pct")


def is_text(unit: str) -> bool:
    return unit == "text"


def ordered(names: Iterable[str], table: dict[str, tuple[str, str]]) -> list[str]:
    """``names`` in the table's order, then any name the table does not know, sorted."""
    names = set(names)
    return [n for n in table if n in names] + sorted(names - set(table))


# --------------------------------------------------------------------------------------------
# Planning failures
# --------------------------------------------------------------------------------------------
def planning_failures(results: pd.DataFrame, overload_pct: float = config.THERMAL["overload_pct"]) -> pd.DataFrame:
    """Which runs fail the planning limits: columns ``undervoltage``, ``overload``, ``fails`` (bool).

    ``undervoltage``: at least one customer node-interval below ANSI C84.1 Range A
    (``ansi_a_under_node_intervals > 0``, Range A from ``common.config.ANSI_RANGE_A``);
    ``overload``: a transformer above ``overload_pct`` of its rating
    (``worst_transformer_loading_pct > overload_pct``); ``fails``: either. Runs without metrics (failed
    solves) are neither.
    """
    under = pd.to_numeric(results["ansi_a_under_node_intervals"], errors="coerce").fillna(0).to_numpy() > 0
    loading = pd.to_numeric(results["worst_transformer_loading_pct"], errors="coerce").to_numpy(dtype=float)
    over = np.nan_to_num(loading, nan=-np.inf) > overload_pct
    return pd.DataFrame({"undervoltage": under, "overload": over, "fails": under | over}, index=results.index)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def results_path(ws: Workspace, key: str) -> Path:
    return ws.result(key)


def plots_dir(ws: Workspace) -> Path:
    return ws.results_plots


def load_results(ws: Workspace, states: Iterable[str] | None = None) -> pd.DataFrame:
    """``xlrm_results.parquet`` (optionally some states only); UserError when it is missing."""
    path = cli.require(results_path(ws, "xlrm_results"), PRODUCERS["xlrm_results"])
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise cli.UserError(f"{path}: not a readable parquet file ({exc}): run {PRODUCERS['xlrm_results']} again") from None
    missing = [c for c in (*RUN_KEYS, "status", *INPUTS) if c not in frame.columns]
    if missing:
        raise cli.UserError(f"{path}: column {missing[0]!r} missing: run {PRODUCERS['xlrm_results']} again")
    if states:
        wanted = sorted(set(states))
        frame = frame[frame["state"].isin(wanted)].reset_index(drop=True)
        if frame.empty:
            raise cli.UserError(f"--state {' '.join(wanted)}: no run of these states in {path}")
    return frame


def figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.4, height: float = 4.0, **kwargs):
    """A matplotlib Figure (no pyplot state, no GUI backend) and its axes array (always 2-D)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def add_state_filter(parser) -> None:
    """``--state``: any number of states; default every state present."""
    parser.add_argument("--state", nargs="+", choices=config.STATES, default=None,
                        metavar="{" + ",".join(config.STATES) + "}",
                        help="state(s) to include (default: every state with results)")
