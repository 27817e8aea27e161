"""One static HTML page with the study's headlines, tables and every figure: report.html.

Description
    Gathers what phase 7 wrote into ``<data>/7_results_analysis/report.html``, a single file that
    opens in any browser without a server (figures embedded as base64 ``data:`` URIs, no script, no
    external style sheet or font):

    * runs per state, season and design (ok, failed, never solved; feeders studied and left out by
      the circuit filter) and the stale runs left out;
    * planning failures per criterion of ``common.config.FAILURE_CRITERIA`` (transformer overload,
      line overload, sustained undervoltage) and their union per state, season, design and feeder,
      and the list of failed runs with phase 6's messages;
    * the worst outcome of each headline metric per state and season, with the feeder and case;
    * rooftop PV, reverse flow and overvoltage per band of the rooftop PV share (``der_outcomes``), on the
      peak (design) day and, where runs were also solved on their feeder's light-load day (``light_load_*``
      metrics), on that day beside it, with a computed sentence saying whether any run reaches ANSI Range A
      on each day and the highest customer voltage (``overvoltage_finding``);
    * "What it costs to fix": where phase 6's upgrade step ran (``--upgrades``, ``make study``), the upgrade
      cost per feeder and season (and policy in a cross layout): futures upgraded, median, 90th percentile and
      maximum cost, its split (transformers, lines, voltage), violations left unsolved, in words, with the
      inputs that drive it (the sensitivity rows of ``upgrade_cost_usd``) and the costly futures' PRIM box;
      otherwise one line saying the upgrade step did not run;
    * the sensitivity verdicts per pooled group, metric and method (and per feeder, folded): the inputs
      whose interval lies above the dummy input's (the noise floor) with index [interval], or "too few
      runs to rank inputs" where none does; the convergence of the rankings at N/4, N/2 and N; how much
      placement alone moves each metric (placement replicates), or that it was not measured;
    * the scenario-discovery boxes per criterion (PRIM with quasi-p values, or CART's densest leaf where
      PRIM finds no significant box; feeders that fail before any adoption; reproducibility);
    * with a cross layout (policies x scenarios), the robustness of the policies: in words per feeder and
      season which policy is most robust, in how many futures it fails and what those futures share (its
      vulnerability box), or why no ranking can be made; the table and the two figures;
    * every PNG of ``plots/`` (the known ones with captions, then any other);
    * the study's settings: designs (cases per mixes file, seed, bounds, reference case), ANSI
      C84.1 ranges and thermal limits, phase 7 settings from the manifests, package versions and
      git revision; and links to the data files.

    Only ``xlrm_results.parquet`` is required; a section whose input is missing says which script
    makes it. The page holds no time stamp: the same inputs give the same bytes.

Inputs (``<data>/7_results_analysis/``, from the other phase 7 scripts)
    xlrm_results.parquet (required), failures.csv, stale_runs.csv, circuit_summary_combined.csv, sensitivity.csv,
    sensitivity_skipped.csv, sensitivity_convergence.csv, placement_spread.csv, prim_boxes.csv, robustness.csv,
    vulnerability.csv, manifest_*.json,
    plots/*.png
    <data>/0_code_xlrm/mixes_<design>.json                                      (phase 0)

Outputs
    <data>/7_results_analysis/report.html

Settings read
    common.config: DESIGNS, DOE_SEED, DOE_BOUNDS, REFERENCE_CASE, ANSI_RANGE_A, ANSI_RANGE_B,
    THERMAL, FAILURE_CRITERIA, UPGRADES; common.doe.PARAMETERS, FACTORS; the cases drawn from phase 0's manifest.

Usage
    python 7_results_analysis/make_report.py [--data-dir DATA] [--state NC]
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

import gsa_methods as gsa
import results_io as rio
from common import cli, config, doe
from common.io import git_revision, package_versions, read_csv, write_text

logger = logging.getLogger(__name__)

#: the figures the report knows, in page order: (file name or prefix, section, caption)
FIGURES = (
    ("peak_distribution_", "outcomes", "Design-day feeder-head peak per feeder, season and design (box: the design's "
                                       "runs; diamond: reference case 0)."),
    ("failure_map_", "failures", "Where feeders fail, over EV share and uncontrolled heat-pump share."),
    ("storage_peak_reduction.png", "outcomes", "Peak reduction by the batteries against the storage share."),
    ("ecdf_lhs_vs_sobol.png", "outcomes", "Outcome distributions of the LHS and Sobol designs."),
    ("upgrade_cost_", "costs", "Upgrade cost per feeder and season (box: the futures; points: runs, coloured by "
                               "policy in a cross layout; cross: violations left unsolved, a lower bound; diamond: "
                               "reference case 0; dashed: the cost threshold of scenario discovery)."),
    ("sensitivity_", "sensitivity", "Global sensitivity (pooled bars with intervals, filled where the interval "
                                    "lies above the dummy's, hollow where not; dots: single feeders; grey band and "
                                    "dashed line: the dummy input's interval and index = noise floor)."),
    ("convergence_", "sensitivity", "Convergence: each input's pooled index and interval at N/4, N/2 and N runs; "
                                    "grey band: the dummy input's interval (noise floor)."),
    ("prim_boxes.png", "prim", "PRIM box: the input ranges that concentrate failures."),
    ("prim_trajectory.png", "prim", "PRIM peeling trajectory: coverage against density; the selected box circled."),
    ("robustness_policies.png", "robustness", "Policies across the scenarios: share of runs meeting every limit "
                                              "(Wilson interval) and 90th-percentile outcomes (bootstrap interval "
                                              "over scenarios) per feeder and policy; star: most robust."),
    ("robustness_regret.png", "robustness", "Regret per feeder and policy: 90th percentile (bar) and maximum "
                                            "(triangle) of the outcome minus the best policy's in the same scenario."),
)
PACKAGES = ("numpy", "pandas", "pyarrow", "scipy", "matplotlib", "SALib", "opendssdirect.py", "dss-python", "pvlib")
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 1.5em 3em; color: #222; line-height: 1.45; }
h1 { border-bottom: 3px solid #4c72b0; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .88em; }
th, td { border: 1px solid #d0d0d0; padding: .25em .6em; text-align: left; vertical-align: top;
         font-variant-numeric: tabular-nums; }
th { background: #eef2f8; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #e0e0e0; }
figcaption { font-size: .9em; color: #555; }
.note { background: #fff8e1; border-left: 4px solid #f0ad4e; padding: .4em .8em; }
.kpi { display: inline-block; margin: .3em 1.2em .3em 0; padding: .5em 1em; background: #eef2f8; border-radius: 6px; }
.kpi b { font-size: 1.4em; display: block; }
nav a { margin-right: 1em; }
code { background: #f3f3f3; padding: 0 .25em; }
"""


# ------------------------------------------------------------------------------------------- pure: tables
def fmt(value: Any) -> str:
    """A table cell: integers and numbers from 1000 on with thousands separators, others with 4 significant
    digits, empty for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if float(value).is_integer() and abs(value) < 1e12:
            return f"{int(value):,}"
        if abs(value) >= 1000:
            return f"{float(value):,.0f}"
        return f"{float(value):.4g}"
    return str(value)


def folded(summary: str, frame: pd.DataFrame, *, max_rows: int | None = None) -> str:
    """A table folded under a one-line summary (``<details>``): opens on a click, no script."""
    return f"<details><summary>{summary}</summary>{html_table(frame, max_rows=max_rows)}</details>"


def html_table(frame: pd.DataFrame, *, max_rows: int | None = None) -> str:
    """An HTML table of ``frame`` (``DataFrame.to_html``, every cell escaped), cells formatted by :func:`fmt`."""
    if frame is None or frame.empty:
        return '<p class="note">Nothing to show.</p>'
    shown = frame if max_rows is None else frame.head(max_rows)
    cells = pd.DataFrame({i: [fmt(v) for v in shown.iloc[:, i]] for i in range(shown.shape[1])}, index=shown.index)
    cells.columns = [str(c) for c in shown.columns]
    table = cells.to_html(index=False, escape=True, border=0, justify="left")
    more = ""
    if max_rows is not None and len(frame) > max_rows:
        more = f'<p class="note">{len(frame) - max_rows} more rows in the CSV file.</p>'
    return table + more


def runs_overview(results: pd.DataFrame, failures: pd.DataFrame | None) -> pd.DataFrame:
    """Runs per state, season and design: ok, failed, never solved, feeders, feeders filtered out."""
    rows = []
    for (state, season, design), part in results.groupby(["state", "season", "design"], sort=True):
        row = {"state": state, "season": season, "design": design, "runs": len(part),
               "ok": int((part["status"] == "ok").sum()), "failed": int((part["status"] != "ok").sum()),
               "cases": int(part["case"].nunique()), "feeders": int(part["feeder"].nunique())}
        if failures is not None and len(failures):
            f = failures[(failures["state"] == state) & (failures["season"] == season)]
            row["never solved"] = int(((f["source"] == "not_solved") & (f["design"] == design)).sum())
            row["feeders filtered out"] = int((f["source"] == "circuit_filter").sum())
        rows.append(row)
    return pd.DataFrame(rows)


def failure_overview(results: pd.DataFrame) -> pd.DataFrame:
    """Runs failing the planning limits per state, season, design and feeder (ok runs)."""
    ok = results[results["status"] == "ok"]
    flags = rio.planning_failures(ok)
    names = (*rio.CRITERIA, rio.UNION)
    frame = ok.assign(**{name: flags[name].to_numpy() for name in names})
    out = frame.groupby(["state", "season", "design", "feeder"], sort=True).agg(
        runs=("case", "size"), **{name.replace("_", " "): (name, "sum") for name in names}).reset_index()
    out = out.rename(columns={rio.UNION: "any criterion"})
    out["share failing [%]"] = 100.0 * out["any criterion"] / out["runs"]
    return out


def prim_table(boxes: pd.DataFrame) -> pd.DataFrame:
    """The scenario-discovery rows for the report: group, criterion, status, method, the rule with the
    quasi-p value of each restricted input, coverage, density, mass and reproducibility."""
    qp_columns = [c for c in boxes.columns if c.endswith(".qp")]

    def quasi_p(row: pd.Series) -> str:
        values = [(c[:-3], row[c]) for c in qp_columns if pd.notna(row[c]) and str(row[c]) != ""]
        return "; ".join(f"{name}: {float(v):.2g}" for name, v in values)

    shown = boxes.copy()
    shown["quasi-p"] = shown.apply(quasi_p, axis=1) if qp_columns and len(shown) else ""
    columns = ["group", "criterion", "status", "method", "n_runs", "n_failures", "rule", "quasi-p", "coverage",
               "density", "mass", "reproducibility_pct", "feeders_left_out", "reference"]
    return shown[[c for c in columns if c in shown.columns]]


#: headline outcomes of the "worst outcomes" table: (metric, "max" or "min")
WORST = (("peak_kw", "max"), ("worst_transformer_loading_pct", "max"), ("v_min_customer_pu", "min"),
         ("ansi_a_violation_node_intervals", "max"), ("ansi_a_customers_affected", "max"),
         ("worst_line_loading_pct", "max"), ("losses_pct", "max"), ("ev_energy_unserved_kwh", "max"),
         ("vuf_max_pct", "max"), ("head_current_unbalance_max_pct", "max"),
         ("transformer_ma_overload_intervals", "max"), ("ansi_a_under_max_consecutive_intervals", "max"),
         ("service_transformer_reverse_flow_intervals", "max"), ("ansi_a_over_customer_intervals", "max"))

#: rooftop PV bands of the "rooftop PV, reverse flow and overvoltage" table (share of residential customers)
PV_RES_BANDS = ((0.0, 0.0, "none"), (0.0, 0.2, "up to 20 %"), (0.2, 0.4, "20-40 %"), (0.4, 1.0, "over 40 %"))


def worst_outcomes(results: pd.DataFrame) -> pd.DataFrame:
    """The worst value of each headline outcome per state and season, and where it happens."""
    ok = results[results["status"] == "ok"]
    rows = []
    for (state, season), part in ok.groupby(["state", "season"], sort=True):
        for metric, how in WORST:
            if metric not in part.columns:
                continue
            values = pd.to_numeric(part[metric], errors="coerce").astype(float)
            if values.notna().sum() == 0:
                continue
            i = values.idxmax() if how == "max" else values.idxmin()
            rows.append({"state": state, "season": season, "outcome": metric, "unit": rio.METRICS[metric][0],
                         "worst": float(values[i]), "median": float(values.median()), "feeder": part.at[i, "feeder"],
                         "design": part.at[i, "design"], "case": int(part.at[i, "case"])})
    return pd.DataFrame(rows)


def der_outcomes(results: pd.DataFrame) -> pd.DataFrame:
    """Per state, season and band of rooftop PV share (:data:`PV_RES_BANDS`): the ok runs, the share of them
    with reverse flow at the feeder head on any phase in any interval, with reverse flow through any service
    transformer, and with any customer above ANSI C84.1 Range A (1.05 pu) or Range B (1.0583 pu); the median
    count of service transformers in reverse flow and the highest customer voltage, on the design (peak) day;
    where the runs were also solved on their feeder's light-load day (``light_load_*`` metrics, phase 6
    light_load.py) the same shares and voltage on that day beside them ("light-load day: ..."; empty for a
    season without one). Empty without the rooftop PV input (results of an older phase 6)."""
    needed = ("pv_perc_res", "service_transformers_reverse_flow", "ansi_a_over_customer_intervals")
    ok = results[results["status"] == "ok"]
    if ok.empty or any(c not in ok.columns for c in needed):
        return pd.DataFrame()
    rows = []
    for (state, season), part in ok.groupby(["state", "season"], sort=True):
        pv = pd.to_numeric(part["pv_perc_res"], errors="coerce").fillna(0.0)
        for low, high, label in PV_RES_BANDS:
            band = part[(pv == 0)] if high == 0 else part[(pv > low) & (pv <= high)]
            if band.empty:
                continue
            row = {"state": state, "season": season, "rooftop PV share": label, "runs": len(band)}
            row |= _der_day(band, "")
            light = band[pd.to_numeric(band["light_load_v_max_customer_pu"], errors="coerce").notna()] \
                if "light_load_v_max_customer_pu" in band.columns else band.iloc[:0]
            if "light_load_v_max_customer_pu" in ok.columns:
                row |= {f"light-load day: {k}": v for k, v in _der_day(light, "light_load_").items()} if len(light) \
                    else {f"light-load day: {k}": None for k in _der_day(band, "")}
            rows.append(row)
    return pd.DataFrame(rows)


def _der_day(band: pd.DataFrame, prefix: str) -> dict[str, float | None]:
    """The DER columns of one band of runs on one day: the peak day's metrics (``prefix`` '') or the light-load
    day's (``light_load_``)."""
    number = lambda c: pd.to_numeric(band[prefix + c], errors="coerce").fillna(0.0)  # noqa: E731
    head = [c for c in band.columns if c.startswith(prefix + "head_reverse_flow_intervals_phase")]
    head_any = (band[head].apply(pd.to_numeric, errors="coerce").fillna(0.0).sum(axis=1) > 0) if head else None
    has = lambda c: prefix + c in band.columns  # noqa: E731
    return {"head reverse flow [% of runs]": 100.0 * float(head_any.mean()) if head_any is not None else None,
            "transformer reverse flow [% of runs]": 100.0 * float((number("service_transformers_reverse_flow") > 0).mean()),
            "transformers in reverse flow (median)": float(number("service_transformers_reverse_flow").median()),
            "above Range A [% of runs]": 100.0 * float((number("ansi_a_over_customer_intervals") > 0).mean()),
            "above Range B [% of runs]": 100.0 * float((number("ansi_b_over_customer_intervals") > 0).mean())
            if has("ansi_b_over_customer_intervals") else None,
            "highest customer voltage [pu]": float(pd.to_numeric(band[prefix + "v_max_customer_pu"], errors="coerce")
                                                   .max()) if has("v_max_customer_pu") else None}


def overvoltage_finding(results: pd.DataFrame) -> str:
    """One sentence, computed from the ok runs: whether any run puts a customer above ANSI C84.1 Range A on the
    peak day and on the light-load day (where runs have one), with the highest customer voltage of each."""
    ok = results[results["status"] == "ok"]
    sentences = []
    for prefix, day in (("", "on the peak (design) day"), ("light_load_", "on the light-load day")):
        over, vmax = prefix + "ansi_a_over_customer_intervals", prefix + "v_max_customer_pu"
        if over not in ok.columns or vmax not in ok.columns:
            continue
        volts = pd.to_numeric(ok[vmax], errors="coerce")
        if volts.notna().sum() == 0:
            continue
        counts = pd.to_numeric(ok[over], errors="coerce").fillna(0.0)
        i = volts.idxmax()
        where = f"{ok.at[i, 'state']} {ok.at[i, 'season']} {ok.at[i, 'feeder']} case {int(ok.at[i, 'case'])}" \
            if {"state", "season", "feeder", "case"} <= set(ok.columns) else "one run"
        n_over = int((counts > 0).sum())
        verdict = (f"no run puts a customer above Range A ({config.ANSI_RANGE_A[1]:g} pu)" if n_over == 0 else
                   f"{n_over} of {int(volts.notna().sum())} runs put a customer above Range A "
                   f"({config.ANSI_RANGE_A[1]:g} pu)")
        sentences.append(f"{day.capitalize()}, {verdict}; the highest customer voltage is {float(volts[i]):.4f} pu "
                         f"({where}).")
    return " ".join(sentences)


def _interval(index: float, low: float, high: float) -> str:
    return f"{index:.2f} [{low:.2f}, {high:.2f}]"


def sensitivity_verdicts(sensitivity: pd.DataFrame, scope: str = "pooled") -> pd.DataFrame:
    """Per group, metric and method of ``scope``: the runs, the verdict in words ("too few runs to rank
    inputs" when no input's interval clears the dummy's), the inputs above the noise floor with their
    index [interval] (highest first) and the dummy's index [interval]. A sensitivity.csv without the
    verdict columns (an older one) gets them from ``gsa_methods`` here."""
    part = sensitivity[sensitivity["scope"] == scope]
    rows = []
    keys = ["state", "season", "group", "metric", "method"]
    for (state, season, group, metric, method), cell in part.groupby(keys, sort=True):
        floor = cell[cell["input"] == gsa.DUMMY]
        real = cell[cell["input"] != gsa.DUMMY]
        dummy_high = float(floor["conf_high"].iloc[0]) if len(floor) else math.nan
        verdict = (str(cell["group_verdict"].iloc[0]) if "group_verdict" in cell.columns else
                   gsa.group_verdict(real["input"].tolist(), real["index"].to_numpy(float),
                                     real["conf_low"].to_numpy(float), real["conf_high"].to_numpy(float), dummy_high,
                                     factors=("placement_replicate",)))
        above = real[gsa.above_floor(real["conf_low"].to_numpy(float), dummy_high)] if len(floor) else real.iloc[:0]
        above = above.sort_values(["index", "input"], ascending=[False, True], kind="stable")
        row = {"state": state, "season": season} | ({} if scope == "pooled" else {"feeder": group.split(" ", 2)[-1]})
        row |= {"metric": metric, "method": method, "runs": int(cell["n_runs"].max()), "verdict": verdict,
                "above the noise floor: index [interval]": "; ".join(
                    f"{r.input} {_interval(r.index, r.conf_low, r.conf_high)}" for r in above.itertuples()),
                "dummy (noise floor)": _interval(float(floor["index"].iloc[0]), float(floor["conf_low"].iloc[0]),
                                                 dummy_high) if len(floor) else ""}
        rows.append(row)
    return pd.DataFrame(rows)


def convergence_summary(convergence: pd.DataFrame) -> pd.DataFrame:
    """Per pooled group, metric and method: runs at N/4, N/2 and N and whether the ranking held."""
    part = convergence[convergence["scope"] == "pooled"]
    rows = []
    for (state, season, metric, method), cell in part.groupby(["state", "season", "metric", "method"], sort=True):
        row = {"state": state, "season": season, "metric": metric, "method": method}
        for label in ("N/4", "N/2", "N"):
            at = cell[cell["subsample"] == label]
            row[f"runs at {label}"] = int(at["n_runs"].max()) if len(at) and at["n_runs"].notna().any() else ""
            verdict = at["group_verdict"].dropna()
            row[f"verdict at {label}"] = (str(verdict.iloc[0]) if len(verdict) and str(verdict.iloc[0])
                                          else "; ".join(sorted(set(at["note"].dropna().astype(str)) - {""})))
        row["ranking"] = str(cell["ranking_stable"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def placement_summary(spread: pd.DataFrame, scope: str = "pooled") -> pd.DataFrame:
    """The placement spread table (placement_spread.csv) of one scope, its columns named for a reader."""
    part = spread[spread["scope"] == scope]
    columns = {"state": "state", "season": "season", "feeder": "feeder", "metric": "metric", "basis": "unit",
               "replicates": "replicates", "design_points": "design points",
               "placement_sd": "placement SD (pooled over design points)",
               "placement_sd_median": "placement SD (median over design points)",
               "placement_range_median": "placement range (median)", "placement_sd_max": "placement SD (largest)",
               "design_point_sd": "SD across design points", "placement_to_design_sd": "placement / design SD"}
    if scope == "pooled":
        columns.pop("feeder")
    return part[list(columns)].rename(columns=columns)


def mixes_summary(ws) -> pd.DataFrame:
    rows = []
    for design in config.DESIGNS:
        path = ws.mixes(design)
        if not path.is_file():
            rows.append({"design": design, "file": path.name, "cases": "missing", "note": "run 0_code_xlrm/run_mix_generator.py"})
            continue
        try:
            mixes = doe.load_mixes(path)
        except doe.MixesError as exc:
            rows.append({"design": design, "file": path.name, "cases": "unreadable", "note": str(exc)})
            continue
        points = len({c["design_point"] for k, c in mixes.items() if k != "0"})
        replicates = len({c["placement_replicate"] for c in mixes.values()})
        rows.append({"design": design, "file": path.name, "cases": len(mixes), "design points": points,
                     "placement replicates": replicates,
                     "note": f"case 0 = reference case, then {points} design points x {replicates} placement "
                             f"replicate(s)"})
    return pd.DataFrame(rows)


def confounding_note(ws) -> str:
    """One paragraph naming every design whose phase 0 check found two columns correlated above
    common.config.DOE_MAX_ABS_CORR ("" when none did or phase 0's summary is absent): in that design the
    two inputs' effects cannot be told apart, whatever the indices below say."""
    path = ws.lhs_vs_sobol_summary
    if not path.is_file():
        return ""
    table = read_csv(path, "0_code_xlrm/run_mix_generator.py", required=("design", "max_abs_corr", "max_abs_corr_pair"))
    flagged = table.drop_duplicates("design")
    flagged = flagged[flagged["max_abs_corr"].astype(float) > config.DOE_MAX_ABS_CORR]
    if flagged.empty:
        return ""
    items = "; ".join(f"{row.design.upper()}: {row.max_abs_corr_pair} at |r| = {float(row.max_abs_corr):.2f}"
                      for row in flagged.itertuples())
    return (f'<p class="warn"><b>Confounded inputs.</b> Phase 0 found columns correlated above |r| = '
            f"{config.DOE_MAX_ABS_CORR:g} ({html.escape(items)}): within that design the analysis cannot tell "
            "the pair's effects apart, so an index of either may carry the other's effect. Draw more cases or "
            "scenarios (about four per dimension) before reading those two.</p>")


def _read_csv(path: Path) -> pd.DataFrame | None:
    """An optional phase 7 table: None when absent; an unreadable one is an InputError naming it."""
    if not path.exists():
        return None
    return read_csv(path, "the phase 7 script that writes it", keep_default_na=True)


def _manifest(folder: Path, script: str) -> dict[str, Any]:
    path = folder / f"manifest_{script}.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        logger.warning("%s unreadable (%s): its settings are left out of the report; run %s.py again", path, exc,
                       script)
        return {}


def figure_html(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.stem.replace("_", " "))}">'
            f"<figcaption>{html.escape(path.name)}: {html.escape(caption)}</figcaption></figure>")


def figures_by_section(plots: Path) -> dict[str, list[tuple[Path, str]]]:
    """Every PNG of the plots folder under its section (unknown ones under "other"), in FIGURES order."""
    files = sorted(plots.glob("*.png")) if plots.is_dir() else []
    placed: set[Path] = set()
    out: dict[str, list[tuple[Path, str]]] = {}
    for name, section, caption in FIGURES:
        for path in files:
            if path in placed:
                continue
            if path.name == name or (name.endswith("_") and path.name.startswith(name)):
                out.setdefault(section, []).append((path, caption))
                placed.add(path)
    for path in files:
        if path not in placed:
            out.setdefault("other", []).append((path, "figure"))
    return out


# ------------------------------------------------------------------------------------------- robustness
def robustness_sentences(robustness: pd.DataFrame, vulnerability: pd.DataFrame | None) -> list[str]:
    """One sentence per (state, season, feeder) of robustness.csv: the most robust policy, its satisficing
    share and regret, in how many futures it fails and what they share (vulnerability.csv), or why the
    policies cannot be ranked."""
    out = []
    vuln = {} if vulnerability is None else {(r["state"], r["season"], r["feeder"]): r
                                             for _, r in vulnerability.iterrows()}
    for (state, season, feeder), part in robustness.groupby(["state", "season", "feeder"], sort=True):
        part = part.sort_values("rank")
        top = part.iloc[0]
        where = f"{state} {season}, {feeder}"
        verdict = str(top["verdict"])
        if not bool(top["most_robust"]):
            out.append(f"{where}: {verdict} ({int(top['n_scenarios'])} scenarios per policy). For information only, "
                       f"not a ranking: the policy with the lowest 90th-percentile peak regret is "
                       f"{top['policy_name']} ({fmt(top['peak_kw.regret_p90'])} kW).")
            continue
        failing = int(round((1 - float(top["satisficing"])) * int(top["n_runs"])))
        text = (f"{where}: the most robust policy is {top['policy_name']}: it meets every limit in "
                f"{fmt(100 * float(top['satisficing']))} % of {int(top['n_runs'])} runs (Wilson 95 % "
                f"{fmt(100 * float(top['satisficing_low']))}-{fmt(100 * float(top['satisficing_high']))} %), "
                f"90th-percentile peak regret {fmt(top['peak_kw.regret_p90'])} kW (maximum "
                f"{fmt(top['peak_kw.regret_max'])} kW), and fails in {failing} of them")
        if len(part) > 1:
            second = part.iloc[1]
            text += f"; runner-up {second['policy_name']} ({fmt(100 * float(second['satisficing']))} %)"
        text += f". {verdict[0].upper() + verdict[1:]}."
        cost_p90 = top.get(f"{rio.COST_METRIC}.p90", math.nan)
        if pd.notna(cost_p90):
            text += (f" Its upgrade cost is {fmt(top[f'{rio.COST_METRIC}.median'])} USD at the median and "
                     f"{fmt(cost_p90)} USD at the 90th percentile of its futures.")
        box = vuln.get((state, season, feeder))
        if failing and box is not None:
            status = str(box["status"])
            if status == "box":
                text += (f" Those futures share {box['rule']} (PRIM: coverage {fmt(box['coverage'])}, density "
                         f"{fmt(box['density'])}, every restriction with quasi-p <= 0.05).")
            elif status == "no_box" and isinstance(box.get("rule"), str):
                text += f" PRIM finds no significant box in them; {box['rule']}."
            else:
                text += f" Scenario discovery on them: {str(box.get('rule', status))}."
        if str(top.get("reference", "")) == "fails":
            text += " The feeder already fails in its reference case 0 (before any adoption)."
        out.append(text)
    return out


def robustness_section(ws, results: pd.DataFrame) -> str:
    """The report's robustness section (see :func:`robustness_sentences`), or a line saying why it is empty."""
    head = '<h2 id="robustness">Policies across futures: robustness, regret and vulnerability</h2>'
    if not rio.is_cross(results):
        return head + ('<p class="note">These results come from the joint layout (uncertainties and levers sampled '
                       "together), which cannot rank policies: run phase 0 with <code>--layout cross</code> "
                       "(<code>make run</code> does) for policies x scenarios.</p>")
    robustness = _read_csv(rio.results_path(ws, "robustness"))
    if robustness is None:
        return head + (f'<p class="note">No robustness.csv yet: run <code>{html.escape(rio.PRODUCERS["robustness"])}'
                       "</code>.</p>")
    states = set(results["state"])
    robustness = robustness[robustness["state"].isin(states)]
    vulnerability = _read_csv(rio.results_path(ws, "vulnerability"))
    sentences = robustness_sentences(robustness, vulnerability)
    intro = ("<p>Each policy of phase 0's cross layout is run in every scenario (future). Satisficing: the share of "
             "runs meeting every planning limit, with its Wilson interval; regret: the policy's outcome minus the "
             "best policy's in the same scenario and placement. The most robust policy has the highest satisficing "
             "share (ties: the lowest 90th-percentile peak regret); its failing futures are searched with PRIM over "
             "the uncertainties.</p>")
    costs = [c for c in (f"{rio.COST_METRIC}.median", f"{rio.COST_METRIC}.p90") if c in robustness.columns]
    table = robustness[["state", "season", "feeder", "rank", "policy_name", "n_scenarios", "satisficing",
                        "satisficing_low", "satisficing_high", "peak_kw.p90", "peak_kw.regret_p90",
                        "peak_kw.regret_max", "worst_transformer_loading_pct.p90", *costs, "most_robust"]]
    return (head + intro + "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul>"
            + html_table(table))


# ------------------------------------------------------------------------------------------- what it costs to fix
#: what the cost section says where the results hold no upgrade cost
COST_ABSENT = "the upgrade step did not run (make study or --upgrades)"


def _costs(part: pd.DataFrame, column: str = rio.COST_METRIC) -> np.ndarray:
    return pd.to_numeric(part[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def cost_distribution(results: pd.DataFrame, by: Sequence[str] = ("state", "season", "feeder")) -> pd.DataFrame:
    """The upgrade cost over the futures (ok runs, not the reference case 0) per group ``by``: runs, how many were
    upgraded, needed nothing or whose upgrade failed, median, 90th percentile (linear interpolation) and maximum
    of the costs [USD] (runs without a cost left out), the share of the group's total spent on transformers,
    lines and voltage [%], the runs whose upgrades left violations unsolved (their cost is a lower bound) and,
    per feeder without a policy, the reference case 0's cost. Empty without a cost column."""
    if rio.COST_METRIC not in results.columns:
        return pd.DataFrame()
    ok = results[results["status"] == "ok"]
    futures = ok[ok["case"] != rio.REFERENCE_CASE]
    reference = ok[ok["case"] == rio.REFERENCE_CASE]
    status = futures["upgrade_status"].fillna("").astype(str) if "upgrade_status" in futures.columns \
        else pd.Series("", index=futures.index)
    rows = []
    for key, part in futures.groupby(list(by), sort=True):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        if "policy" in by and "policy_name" in part.columns:
            row["policy_name"] = str(part["policy_name"].iloc[0])
        cost = _costs(part)
        known = np.isfinite(cost)
        row.update({"futures": len(part), "upgraded": int((status.loc[part.index] == "upgraded").sum()),
                    "not needed": int((status.loc[part.index] == "not needed").sum()),
                    "upgrade failed": int((status.loc[part.index] == "failed").sum()),
                    "without a cost": int((~known).sum())})
        values = cost[known]
        row["median [USD]"] = float(np.median(values)) if len(values) else math.nan
        row["90th percentile [USD]"] = float(np.percentile(values, 90)) if len(values) else math.nan
        row["max [USD]"] = float(values.max()) if len(values) else math.nan
        total = float(values.sum())
        for column, label in rio.COST_PARTS:
            spent = float(np.nansum(_costs(part, column)[known])) if column in part.columns else math.nan
            row[f"{label} [%]"] = 100.0 * spent / total if total > 0 else math.nan
        unsolved = pd.to_numeric(part.get("upgrade_unsolved", pd.Series(0, index=part.index)), errors="coerce")
        row["left unsolved"] = int((unsolved.fillna(0) > 0).sum())
        if "policy" not in by:
            ref = reference
            for name in by:
                ref = ref[ref[name] == row[name]]
            ref_cost = _costs(ref)
            row["reference case 0 [USD]"] = float(np.nanmean(ref_cost)) if np.isfinite(ref_cost).any() else math.nan
        rows.append(row)
    frame = pd.DataFrame(rows)
    if "policy" in by and len(frame):
        frame["policy"] = frame["policy"].astype(int)
    return frame


def _usd(value: float) -> str:
    return "no cost" if not np.isfinite(value) else f"{value:,.0f} USD"


def cost_sentences(distribution: pd.DataFrame, by_policy: pd.DataFrame | None, results: pd.DataFrame) -> list[str]:
    """One sentence per (state, season, feeder) of :func:`cost_distribution`: how many futures need upgrades, the
    median, 90th percentile and maximum cost, its split, what the upgrades left unsolved, the reference case's
    cost, the 90th percentile per policy (``by_policy``, a cross layout) and how many runs fail a planning criterion
    yet cost nothing (the upgrade step's limits are NREL DISCO's, not the planning criteria)."""
    ok = results[(results["status"] == "ok") & (results["case"] != rio.REFERENCE_CASE)]
    fails = rio.planning_failures(ok)[rio.UNION] if len(ok) else pd.Series(dtype=bool)
    customers = ok.groupby(["state", "feeder"])["n_customers"].max() if "n_customers" in ok.columns else {}
    out = []
    for row in distribution.to_dict("records"):
        state, season, feeder = row["state"], row["season"], row["feeder"]
        n = int(row["futures"])
        size = customers.get((state, feeder)) if len(customers) else None
        named = f"{feeder} ({int(size):,} customers)" if size is not None and pd.notna(size) else feeder
        text = f"{state} {season}, {named}: {int(row['upgraded'])} of {n} futures need upgrades"
        if row["upgrade failed"]:
            text += f" and {int(row['upgrade failed'])} could not be upgraded (the step failed; see summary.json)"
        if row["without a cost"] > row["upgrade failed"]:
            text += f"; {int(row['without a cost'] - row['upgrade failed'])} ran without the upgrade step"
        text += (f"; the cost is {_usd(row['median [USD]'])} at the median, {_usd(row['90th percentile [USD]'])} "
                 f"at the 90th percentile and {_usd(row['max [USD]'])} at most")
        split = [(label, row.get(f"{label} [%]", math.nan)) for _, label in rio.COST_PARTS]
        if any(np.isfinite(v) for _, v in split):
            text += " (" + ", ".join(f"{label} {v:.0f} %" for label, v in split if np.isfinite(v)) + " of the total)"
        reference = row.get("reference case 0 [USD]", math.nan)
        if np.isfinite(reference):
            text += f"; the reference case 0 costs {_usd(reference)}"
        if row["left unsolved"]:
            text += (f". In {int(row['left unsolved'])} future(s) the upgrades left violations unsolved (catalogue or "
                     "regulator limits): there the cost is a lower bound")
        if by_policy is not None and len(by_policy):
            mine = by_policy[(by_policy["state"] == state) & (by_policy["season"] == season)
                             & (by_policy["feeder"] == feeder)].sort_values("policy")
            if len(mine):
                text += (". 90th percentile per policy: " + "; ".join(
                    f"{r['policy_name']} {_usd(r['90th percentile [USD]'])}" for r in mine.to_dict("records")))
        group = ok[(ok["state"] == state) & (ok["season"] == season) & (ok["feeder"] == feeder)]
        if len(group):
            free = int((fails.loc[group.index] & (np.nan_to_num(_costs(group), nan=-1.0) == 0)).sum())
            if free and config.UPGRADES.get("trigger") == "disco":
                text += (f". {free} future(s) fail a planning criterion yet cost nothing: the upgrade step acts on "
                         "NREL DISCO's limits (UPGRADES['trigger'] 'disco': a loading above "
                         f"{config.UPGRADES['transformer_upper_limit_pu']:g} pu in any 15-min interval, a customer "
                         "outside Range A), not on the planning criteria's moving averages")
            elif free:
                text += (f". {free} future(s) fail a planning criterion yet cost nothing: the upgrade step found no "
                         "catalogue size, setting or regulator site that removes their violations (upgrades.json, "
                         "'unsolved'); their cost of 0 is a lower bound")
        out.append(text + ".")
    return out


def _inputs_in_words(names: Sequence[str]) -> str:
    return ", ".join(f"{rio.INPUT_LABELS.get(n, n)} ({n})" for n in names)


def cost_drivers(sensitivity: pd.DataFrame | None, skipped: pd.DataFrame | None) -> list[str]:
    """In words, from the sensitivity rows of the upgrade cost: per pooled group (USD per customer), then per
    feeder (USD), and method, which inputs stand above the noise floor (with index [interval]), or that the runs
    are too few to rank any, and the analyses skipped with their reason."""
    if sensitivity is None or "metric" not in sensitivity.columns:
        return []
    rows = sensitivity[sensitivity["metric"] == rio.COST_METRIC]
    out = []
    for scope in ("pooled", "feeder"):
        if rows.empty or not (rows["scope"] == scope).any():
            continue
        verdicts = sensitivity_verdicts(rows, scope=scope)
        for r in verdicts.to_dict("records"):
            where = (f"{r['state']} {r['season']}, pooled over feeders (USD per customer)" if scope == "pooled"
                     else f"{r['state']} {r['season']}, {r['feeder']} (USD)")
            method = METHOD_WORDS.get(r["method"], r["method"])
            above = r["above the noise floor: index [interval]"]
            if above:
                names = [item.split(" ", 1)[0] for item in above.split("; ")]
                text = (f"{where}, {method} over {r['runs']} runs: the cost is driven by {_inputs_in_words(names)}; "
                        f"index [interval] {above}, against the dummy input's {r['dummy (noise floor)']}")
                if "order not resolved" in str(r["verdict"]):
                    text += " (their order is not resolved: the intervals overlap)"
            else:
                text = (f"{where}, {method} over {r['runs']} runs: no input stands above the noise floor (dummy "
                        f"{r['dummy (noise floor)']}): too few runs to say what drives the cost")
            out.append(text + ".")
    if skipped is not None and len(skipped) and "metric" in skipped.columns:
        part = skipped[(skipped["metric"] == rio.COST_METRIC)]
        for r in part.drop_duplicates(["group", "method", "reason"]).to_dict("records"):
            given = r["method"] if isinstance(r["method"], str) else ""
            method = METHOD_WORDS.get(given, given) if given else "both methods"
            out.append(f"{r['group']}: {method} not estimated for the cost: {r['reason']}.")
    return out


#: the sensitivity methods in words
METHOD_WORDS = {"delta": "delta (Borgonovo)", "pawn": "PAWN"}


def cost_prim_sentences(boxes: pd.DataFrame | None) -> list[str]:
    """The pooled scenario-discovery rows of the cost criterion in words (where the costly futures lie)."""
    if boxes is None or "criterion" not in boxes.columns:
        return []
    part = boxes[(boxes["criterion"] == rio.COST_CRITERION) & (boxes["scope"] == "pooled")]
    out = []
    for r in part.to_dict("records"):
        head = (f"{r['group']}: {int(r['n_failures'])} of {int(r['n_runs'])} futures cost more than "
                f"{rio.cost_threshold_usd():,.0f} USD")
        status = str(r["status"])
        if status == "box":
            out.append(f"{head}; PRIM finds them where {r['rule']} (coverage {fmt(r['coverage'])}, density "
                       f"{fmt(r['density'])}).")
        else:
            out.append(f"{head}; scenario discovery: {status.replace('_', ' ')} ({r['rule']}).")
    return out


def cost_section(results: pd.DataFrame, sensitivity: pd.DataFrame | None, skipped: pd.DataFrame | None,
                 boxes: pd.DataFrame | None, figures_html: str) -> str:
    """The report's section "What it costs to fix": the cost distribution per feeder and season (and policy in a
    cross layout) in words and tables, what drives it, and the cost figure; or that the upgrade step did not run."""
    head = '<h2 id="costs">What it costs to fix</h2>'
    if not rio.has_upgrade_costs(results):
        return head + f'<p class="note">No upgrade costs in these results: {html.escape(COST_ABSENT)}.</p>'
    distribution = cost_distribution(results)
    cross = rio.is_cross(results)
    by_policy = cost_distribution(results, ("state", "season", "feeder", "policy")) if cross else None
    limits = ("the study's thermal planning criteria (a transformer's 2-h moving-average loading above 100 % or any "
              "interval above 150 %, a line's 1-h moving average above 100 %)"
              if config.UPGRADES.get("trigger") == "planning_criteria" else
              "DISCO's limits (a transformer or line above "
              f"{config.UPGRADES['transformer_upper_limit_pu']:g} pu in any 15-min interval)")
    intro = ("<p>Every run that violates a limit is upgraded by phase 6's upgrade step (NREL DISCO's automated "
             "upgrade-cost method and its generic unit costs, <code>common.config.UPGRADES</code>; thermal limits: "
             f"{html.escape(limits)}; voltage: a customer outside ANSI Range A): overloaded "
             "transformers and lines get the smallest catalogue size or parallel units reaching the design loading, "
             "then capacitor and regulator settings and new regulators for customers outside Range A. The cost is "
             "over the futures (the reference case 0 apart), in USD; a future whose upgrade failed has no cost and "
             "is left out of the percentiles. Split: the share of the group's total spent on each kind.</p>")
    parts = [head, intro, "<ul>" + "".join(f"<li>{html.escape(s)}</li>"
                                           for s in cost_sentences(distribution, by_policy, results)) + "</ul>",
             html_table(distribution)]
    if by_policy is not None and len(by_policy):
        parts.append("<h3>Per policy</h3>" + html_table(by_policy))
    parts.append("<h3>Which inputs drive the cost</h3>")
    drivers = cost_drivers(sensitivity, skipped)
    if drivers:
        parts.append("<p>From the sensitivity analysis of <code>upgrade_cost_usd</code> (pooled over feeders as USD "
                     "per customer of the feeder, not relative to the reference case: a cost has its own zero). An "
                     "input drives the cost when its index interval lies above the dummy input's.</p><ul>"
                     + "".join(f"<li>{html.escape(s)}</li>" for s in drivers) + "</ul>")
    else:
        parts.append(f'<p class="note">No sensitivity of the cost yet: run '
                     f"<code>{html.escape(rio.PRODUCERS['sensitivity'])}</code>.</p>")
    prim = cost_prim_sentences(boxes)
    if prim:
        parts.append("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in prim) + "</ul>")
    parts.append(figures_html)
    return "".join(parts)


# ------------------------------------------------------------------------------------------- page
def build_page(ws, results: pd.DataFrame) -> str:
    folder = ws.results_dir
    failures = _read_csv(rio.results_path(ws, "failures"))
    stale = _read_csv(rio.results_path(ws, "stale_runs"))
    circuits = _read_csv(rio.results_path(ws, "circuit_summary"))
    sensitivity = _read_csv(rio.results_path(ws, "sensitivity"))
    skipped = _read_csv(rio.results_path(ws, "sensitivity_skipped"))
    convergence = _read_csv(rio.results_path(ws, "sensitivity_convergence"))
    spread = _read_csv(rio.results_path(ws, "placement_spread"))
    boxes = _read_csv(rio.results_path(ws, "prim_boxes"))
    figures = figures_by_section(rio.plots_dir(ws))
    states = sorted(results["state"].unique())
    if failures is not None and len(failures):
        failures = failures[failures["state"].isin(states)]
    ok = results[results["status"] == "ok"]
    flags = rio.planning_failures(ok)

    def missing(what: str, producer: str) -> str:
        return f'<p class="note">No {html.escape(what)} yet: run <code>{html.escape(producer)}</code>.</p>'

    def figs(section: str) -> str:
        return "".join(figure_html(p, c) for p, c in figures.get(section, []))

    parts = [f"<h1>Distribution planning study: results for {html.escape(', '.join(states))}</h1>",
             "<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in (
                 ("runs", "Runs"), ("failures", "Failures"), ("outcomes", "Outcomes"), ("costs", "Costs"),
                 ("sensitivity", "Sensitivity"),
                 ("prim", "Scenario discovery"), ("robustness", "Robustness"), ("settings", "Settings"),
                 ("files", "Files"))) + "</nav>"]
    kpis = [("runs", len(results)), ("ok", len(ok)), ("failed solves", int((results["status"] != "ok").sum())),
            ("runs failing a planning limit", int(flags["fails"].sum())),
            ("feeders", int(results[["state", "feeder"]].drop_duplicates().shape[0]))]
    parts.append("<p>" + "".join(f'<span class="kpi"><b>{v:,}</b>{html.escape(k)}</span>' for k, v in kpis) + "</p>")

    parts.append('<h2 id="runs">Runs</h2>')
    parts.append(html_table(runs_overview(results, failures)))
    if stale is not None and len(stale):
        stale = stale[stale["state"].isin(states)]
        parts.append(f'<p class="note">{len(stale)} stale run(s) left out of every table: made from inputs that '
                     "are no longer the study's (an earlier design, a feeder the circuit filter now rejects, changed "
                     "inputs or outputs). Phase 6 redoes them; <code>append_experiment_results.py --clean-stale</code> "
                     "removes their folders.</p>" + folded("stale runs", stale, max_rows=200))
    if circuits is not None and len(circuits):
        feeders = circuits.drop_duplicates(["state", "circuit_folder"])[
            ["state", "circuit_folder", "n_loads", "n_customers", "head_element", "head_kv_ll", "head_norm_amps",
             "head_capacity_kva", "substation_xfmr_kva"]].rename(columns={"circuit_folder": "feeder"})
        parts.append("<h3>Feeders</h3><p>Head capacity = n_phases x kV(line-neutral) x NormAmps of the head line; "
                     "SMART-DS feeders start at a stiff source with no substation transformer (its kVA is then "
                     "empty).</p>" + html_table(feeders))

    parts.append('<h2 id="failures">Planning failures</h2>')
    parts.append("<p>A run fails a planning criterion (<code>common.config.FAILURE_CRITERIA</code>, each with "
                 "its standard): " + "; ".join(html.escape(rio.CRITERION_LABELS[c]) for c in rio.CRITERIA)
                 + ". <i>any criterion</i> is their union.</p>")
    parts.append(html_table(failure_overview(results)))
    parts.append(figs("failures"))
    parts.append("<h3>Failed runs and feeders left out</h3>")
    if failures is None:
        parts.append(missing("failures.csv", rio.PRODUCERS["xlrm_results"]))
    else:
        parts.append(html_table(failures, max_rows=200))

    parts.append('<h2 id="outcomes">Outcomes</h2><h3>Worst outcome per state and season</h3>')
    parts.append(html_table(worst_outcomes(results)))
    der = der_outcomes(results)
    if len(der):
        light = any(c.startswith("light-load day: ") for c in der.columns)
        parts.append("<h3>Rooftop PV, reverse flow and overvoltage</h3><p>Per band of the rooftop PV share "
                     "(<code>pv_perc_res</code>): how many runs see power flowing back towards the substation at "
                     "the feeder head (any phase, any interval) or through a service transformer, and how many put a "
                     "customer above ANSI C84.1 Range A or B. The columns without a prefix are the design day's, the "
                     "season's peak-load day, on which midday load absorbs most of the PV"
                     + ("; the columns \"light-load day: ...\" are the same runs solved on their feeder's light-load "
                        "day (the season's lowest daytime load, "
                        f"{config.LIGHT_LOAD_DAY_WINDOW_H[0]:g}-{config.LIGHT_LOAD_DAY_WINDOW_H[1]:g} h, of any "
                        "heat-pump variant: the day interconnection screens use, FERC Order 792 SGIP 2.4.4.1.1), "
                        "where rooftop PV's reverse flow and voltage rise are worst (empty for a season without one)"
                        if light else "; no run was solved on a light-load day (phase 2 LIGHT_LOAD_SEASONS)")
                     + ". " + html.escape(overvoltage_finding(results)) + "</p>" + html_table(der))
    parts.append(figs("outcomes"))

    parts.append(cost_section(results, sensitivity, skipped, boxes, figs("costs")))

    parts.append('<h2 id="sensitivity">Sensitivity: which inputs matter</h2>')
    if sensitivity is None:
        parts.append(missing("sensitivity.csv", rio.PRODUCERS["sensitivity"]))
    else:
        parts.append("<p>Moment-independent indices (delta, PAWN) from the runs as given, valid on LHS and Sobol "
                     "designs; pooled over feeders on each feeder's change against its reference case. Every analysis "
                     "also scores a dummy input, uniform noise the model never sees: its interval is the noise floor "
                     "at this sample size. An input is <b>above the noise floor</b> when its whole interval lies above "
                     "the dummy's; where no input is, the verdict is <b>too few runs to rank inputs</b>, and the "
                     "figures draw hollow bars. Index [95 % interval].</p>")
        parts.append(confounding_note(ws))
        parts.append(html_table(sensitivity_verdicts(sensitivity)))
        feeders = sensitivity_verdicts(sensitivity, scope="feeder")
        if len(feeders):
            parts.append(folded(f"verdicts per feeder ({len(feeders)} analyses)", feeders))
        if skipped is not None and len(skipped):
            parts.append(folded(f"{len(skipped)} skipped analyses", skipped))
    parts.append("<h3>Convergence: do the rankings hold as runs are added?</h3>")
    if convergence is None:
        parts.append(missing("sensitivity_convergence.csv", rio.PRODUCERS["sensitivity"]))
    else:
        parts.append("<p>The same analysis on a quarter and a half of each design's points (Sobol: the first 2^k "
                     "points of the sequence, a balanced Sobol sample; LHS: a seeded random subset, the same cases "
                     "in every group; a design point's placement replicates stay together). A ranking is stable "
                     "when the inputs above the noise floor, in order, are the same at N/2 and N; "
                     "sensitivity_convergence.csv holds every index.</p>" + html_table(convergence_summary(convergence)))
    parts.append("<h3>Placement replicates: how much placement alone moves each metric</h3>")
    if spread is None:
        parts.append(missing("placement_spread.csv", rio.PRODUCERS["sensitivity"]))
    elif spread.empty or int(spread["replicates"].max()) <= 1:
        parts.append('<p class="note">Placement noise was not measured: this study has one placement replicate '
                     "per design point, so the runs cannot tell how much of each metric's spread is where the "
                     "devices happened to be placed. Phase 0's <code>--replicates R</code> (R &gt; 1; "
                     "<code>make run REPLICATES=R</code> or <code>make study STUDY_REPLICATES=R</code>) measures it.</p>")
    else:
        parts.append("<p>The runs of one design point differ only in their placement replicate (the seeded order "
                     "of customers that hosts the devices). Per group: the SD and range across a design point's "
                     "replicates, median over the design points, beside the SD across design points of the "
                     "replicate means; pooled groups on the normalised metric. placement_replicate also appears "
                     "as an input in the sensitivity tables: its index against the dummy's says whether placement "
                     "alone moves the metric detectably.</p>" + html_table(placement_summary(spread)))
        feeders = placement_summary(spread, scope="feeder")
        if len(feeders):
            parts.append(folded("placement spread per feeder", feeders))
    parts.append(figs("sensitivity"))

    parts.append('<h2 id="prim">Scenario discovery: where failures concentrate (PRIM)</h2>')
    if boxes is None:
        parts.append(missing("prim_boxes.csv", rio.PRODUCERS["prim_boxes"]))
    else:
        parts.append("<p>Per criterion and for their union, pooled per state and season (with the feeder "
                     "descriptors customers, head capacity and reference-case peak loading as inputs) and per "
                     "feeder: PRIM (EMA Workbench) keeps the densest box covering most failures and drops every "
                     "restriction whose quasi-p value is above 0.05; where no significant box remains, CART's "
                     "densest leaf is shown instead (<i>no_box</i>, method cart). Coverage: share of the failures "
                     "inside the box; density: share of the box's runs that fail; mass: share of all runs inside "
                     "the box; reproducibility: how often the box's restrictions come back on random halves of the "
                     "runs. Quasi-p values treat the runs as independent; in a pooled group (and with placement "
                     "replicates) a design point's runs repeat its inputs, so there they are optimistic. A feeder that fails in its reference case 0 <i>fails before any adoption</i>: its "
                     "failures are not explained by the inputs, and it is left out of the pooled group.</p>")
        pooled = boxes[boxes["scope"] == "pooled"] if "scope" in boxes.columns else boxes
        parts.append(html_table(prim_table(pooled)))
        per_feeder = boxes[boxes["scope"] == "feeder"] if "scope" in boxes.columns else boxes.iloc[0:0]
        if len(per_feeder):
            parts.append(folded(f"per feeder ({len(per_feeder)} rows)", prim_table(per_feeder)))
    parts.append(figs("prim"))

    parts.append(robustness_section(ws, results))
    parts.append(figs("robustness"))
    if figures.get("other"):
        parts.append("<h2>Other figures</h2>" + figs("other"))

    parts.append('<h2 id="settings">Study settings</h2><h3>Designs of experiments</h3>')
    parts.append(html_table(mixes_summary(ws)))
    reference = doe.flatten_case(config.REFERENCE_CASE)
    reference_factors = doe.factors_from_shares(reference["shares.baseline"], reference["shares.dm"],
                                                reference["shares.un"])[0]
    reference.update(zip((f.name for f in doe.FACTORS), (float(v) for v in reference_factors)))
    bounds = pd.DataFrame([{"input": p.name, "role": p.role, "low": p.low, "high": p.high, "unit": p.unit,
                            "reference case 0": reference[p.name],
                            "analysed": "yes" if p.name in rio.INDEPENDENT_INPUTS else "no (dependent share)"}
                           for p in (*doe.PARAMETERS, *doe.FACTORS)])
    parts.append("<p>Sobol designs are rounded up to a power of two; the seeds belong to placement replicates "
                 "(common random numbers: every case of a replicate takes its hosts from the same seeded orders of "
                 "customers). Phase 0's own settings are in 0_code_xlrm/manifest.json. The heat-pump shares sum to one and are dependent; the "
                 "sensitivity analysis and PRIM use their independent coordinates hp_adoption = 1 - baseline and "
                 "hp_dm_fraction = dm / (dm + un) (undefined, shown empty, without heat pumps, as in the reference "
                 "case).</p>" + html_table(bounds))
    limits = pd.DataFrame([
        {"limit": "ANSI C84.1 Range A", "value": f"{config.ANSI_RANGE_A[0]:g}-{config.ANSI_RANGE_A[1]:g} pu"},
        {"limit": "ANSI C84.1 Range B", "value": f"{config.ANSI_RANGE_B[0]:g}-{config.ANSI_RANGE_B[1]:g} pu"},
        {"limit": "overload counts and worst loading", "value": f"> {config.THERMAL['overload_pct']:g} % of rating"},
        *({"limit": rio.CRITERION_LABELS[name], "value": config.FAILURE_CRITERIA[name]["standard"]}
          for name in rio.CRITERIA)])
    parts.append("<h3>Planning limits</h3>" + html_table(limits))
    analysis = []
    for script in ("append_experiment_results", "sensitivity_analysis", "scenario_discovery"):
        settings = _manifest(folder, script).get("settings", {})
        for key in sorted(settings):
            value = settings[key]
            if isinstance(value, (dict, list)):
                value = json.dumps(value, sort_keys=True)
            analysis.append({"script": script, "setting": key, "value": value})
    parts.append("<h3>Phase 7 settings</h3>" + html_table(pd.DataFrame(analysis)))
    versions = package_versions(PACKAGES)
    parts.append("<h3>Software</h3>" + html_table(pd.DataFrame(
        [{"package": k, "version": v} for k, v in versions.items()] + [{"package": "git revision",
                                                                         "version": git_revision()}])))

    parts.append('<h2 id="files">Data files</h2><ul>')
    for key in ("xlrm_results", "xlrm_results_csv", "xlrm_long", "xlrm_long_csv", "variables", "aggregate",
                "aggregate_csv", "circuit_summary", "failures", "stale_runs", "sensitivity", "sensitivity_skipped", "sensitivity_convergence",
                "placement_spread", "prim_boxes",
                "prim_trajectory", "robustness", "regret", "vulnerability"):
        path = rio.results_path(ws, key)
        if path.is_file():
            parts.append(f'<li><a href="{html.escape(path.name)}">{html.escape(path.name)}</a> '
                         f"({path.stat().st_size / 1e6:.2f} MB)</li>")
    parts.append("</ul>")
    body = "\n".join(p for p in parts if p)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>dss_xlrm results: {html.escape(', '.join(states))}</title>\n<style>{STYLE}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="make_report.py")
    rio.add_state_filter(parser)
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv, must_exist=True)
    with rio.phase_lock(ws, Path(__file__).name):
        results = rio.load_results(ws, args.state)
        page = build_page(ws, results)
        path = write_text(rio.results_path(ws, "report"), page)
        n_figures = page.count("<img ")
        logger.info("%d figures, %.1f MB", n_figures, len(page) / 1e6)
        logger.info("report: %s", path)
        return 0


if __name__ == "__main__":
    sys.exit(main())
