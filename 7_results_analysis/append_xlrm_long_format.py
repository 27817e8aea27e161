"""The XLRM long table: one row per run and variable, with its role (X, L or M), value and unit.

Description
    Reads ``xlrm_results.parquet`` (one row per run) and stacks its study variables:

    * X (uncertainties) and L (levers): the inputs of ``common.doe.PARAMETERS``, with their role and
      unit from that table (fractions of customers, of residential customers, of EVs ...), then the
      independent coordinates of the heat-pump shares, ``common.doe.FACTORS`` (``results_io.with_factors``):
      ``hp_adoption`` = 1 - ``shares.baseline`` (X) and ``hp_dm_fraction`` = ``shares.dm`` /
      (``shares.dm`` + ``shares.un``) (L; empty for a run without heat pumps, as the reference case 0).
      The shares keep their rows and roles; they are dependent (they sum to one), the factors are
      not, and the sensitivity analysis and PRIM use the factors;
    * M (measures): every outcome phase 6b writes (``results_io.METRICS``: kW, kWh, %, pu, count,
      text), in that table's order. A metric that is text (``peak_time``, ``worst_line``,
      ``worst_transformer``) has its value in ``value_text`` and an empty ``value``; numbers have an
      empty ``value_text``. A failed run keeps its X and L rows; its M values are empty.

    The realised counts of an instance (EVs, kW of PV, customers per heat-pump variant ...) are not
    XLRM variables: they stay in ``xlrm_results``. ``xlrm_variables.csv`` is the data dictionary of
    every column of ``xlrm_results`` (role key / X / L / realised / M / run, unit, meaning).

Inputs
    <data>/7_results_analysis/xlrm_results.parquet       (append_experiment_results.py)

Outputs (``<data>/7_results_analysis/``)
    xlrm_long.parquet, xlrm_long.csv   state, feeder, season, design, case, status, role (X/L/M), variable,
                                       value, value_text, unit; the CSV only while under --csv-limit-mb
    xlrm_variables.csv                 role, variable, unit, description
    manifest_append_xlrm_long_format.json

Settings read
    common.doe.PARAMETERS, FACTORS (names, roles, units); common.schema.METRICS, REALISED.

Usage
    python 7_results_analysis/append_xlrm_long_format.py [--data-dir DATA] [--state NC] [--csv-limit-mb 200]
"""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

import results_io as rio
from common import cli
from common.io import write_csv, write_manifest, write_parquet

logger = logging.getLogger(__name__)

CSV_LIMIT_MB = 200.0
LONG_COLUMNS = ("state", "feeder", "season", "design", "case", "status", "role", "variable", "value", "value_text",
                "unit")
#: roles of the columns of xlrm_results that are not XLRM variables (for the data dictionary)
OTHER_COLUMNS = {
    "state": ("key", "", "state of the study area"),
    "feeder": ("key", "", "SMART-DS feeder folder <substation>--<feeder>"),
    "season": ("key", "", "season of the design day"),
    "design": ("key", "", "design of experiments (lhs or sobol)"),
    "case": ("key", "", "case of the design; 0 is the fixed reference case"),
    "design_day": ("run", "date", "the season's design day of the feeder"),
    "disjoint_sets": ("run", "", "PV and storage hosts drawn from disjoint customer sets"),
    "design_point": ("run", "index", "point of the design (1..n; 0 the reference case): the cases of one point "
                                     "differ only in their placement replicate"),
    "placement_replicate": ("X", "index", "placement replicate (0..R-1): which seeded random order of customers the "
                                          "hosts of EVs, PV, storage and heat pumps are taken from (a nuisance "
                                          "uncertainty, common to every case of the replicate)"),
    "status": ("run", "text", "ok, or failed (see message)"),
    "message": ("run", "text", "why the run failed"),
    "inputs_digest": ("run", "text", "digest of every input of the instance"),
    **rio.LAYOUT_COLUMNS,  # scenario (X), policy (L), policy_name of a cross layout
}


# ------------------------------------------------------------------------------------------- pure
def variables_table(columns: Sequence[str]) -> pd.DataFrame:
    """The data dictionary of xlrm_results' columns: role, variable, unit, description."""
    rows = []
    for name in columns:
        if name in rio.INPUT_BY_NAME:
            p = rio.INPUT_BY_NAME[name]
            rows.append((p.role, name, p.unit, p.description))
        elif name in rio.REALISED:
            rows.append(("realised", name, *rio.REALISED[name]))
        elif name in rio.METRICS:
            rows.append(("M", name, *rio.METRICS[name]))
        elif name in rio.LIGHT_LOAD_METRICS:
            rows.append(("M", name, *rio.LIGHT_LOAD_METRICS[name]))
        elif name in rio.UPGRADE_METRICS:
            rows.append(("M", name, *rio.UPGRADE_METRICS[name]))
        elif name in OTHER_COLUMNS:
            rows.append((OTHER_COLUMNS[name][0], name, OTHER_COLUMNS[name][1], OTHER_COLUMNS[name][2]))
        else:
            rows.append(("M", name, "unknown", "metric not described in results_io.METRICS"))
    return pd.DataFrame(rows, columns=["role", "variable", "unit", "description"])


def long_table(results: pd.DataFrame) -> pd.DataFrame:
    """Stack the X, L and M columns of xlrm_results: one row per run and variable (run-major order);
    the independent factors are added first where missing (``results_io.with_factors``)."""
    results = rio.with_factors(results)
    variables = variables_table(list(results.columns))
    variables = variables[variables["role"].isin(["X", "L", "M"])].reset_index(drop=True)
    unknown = variables.loc[variables["unit"] == "unknown", "variable"].tolist()
    if unknown:
        logger.warning("variables without a documented unit (kept as M, unit 'unknown'): %s", ", ".join(unknown))
    keys = ["state", "feeder", "season", "design", "case", "status"]
    n_runs, n_vars = len(results), len(variables)
    out = {k: np.repeat(results[k].to_numpy(), n_vars) for k in keys}
    out["role"] = np.tile(variables["role"].to_numpy(), n_runs)
    out["variable"] = np.tile(variables["variable"].to_numpy(), n_runs)
    value = np.full((n_runs, n_vars), np.nan)
    text = np.full((n_runs, n_vars), None, dtype=object)
    for j, (name, unit) in enumerate(zip(variables["variable"], variables["unit"])):
        column = results[name]
        if rio.is_text(unit):
            filled = column.notna() & (column.astype("str") != "") & results["status"].eq("ok")
            text[filled.to_numpy(), j] = column[filled].astype("str").to_numpy()
        else:
            value[:, j] = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    out["value"] = value.ravel()
    out["value_text"] = text.ravel()
    out["unit"] = np.tile(variables["unit"].to_numpy(), n_runs)
    frame = pd.DataFrame(out, columns=list(LONG_COLUMNS))
    frame["case"] = frame["case"].astype("int64")
    frame["value_text"] = frame["value_text"].astype("str").where(frame["value_text"].notna(), None)
    for c in ("state", "feeder", "season", "design", "status", "role", "variable", "unit"):
        frame[c] = frame[c].astype("str")
    return frame


def csv_size_estimate(frame: pd.DataFrame, sample_rows: int = 20000) -> float:
    """Bytes the frame would take as CSV, from the first ``sample_rows`` rows."""
    if frame.empty:
        return 0.0
    head = frame.head(sample_rows)
    buffer = io.StringIO()
    head.to_csv(buffer, index=False, lineterminator="\n")
    return len(buffer.getvalue().encode("utf-8")) / len(head) * len(frame)


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="append_xlrm_long_format.py")
    rio.add_state_filter(parser)
    parser.add_argument("--csv-limit-mb", type=cli.positive_float, default=CSV_LIMIT_MB,
                        help=f"write xlrm_long.csv only under this size [MB] (default {CSV_LIMIT_MB:g})")
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv, must_exist=True)
    with rio.phase_lock(ws, Path(__file__).name):
        results = rio.load_results(ws, args.state)
        logger.info("stacking %d runs of %s", len(results), rio.results_path(ws, "xlrm_results"))
        long = long_table(results)
        variables = variables_table(list(results.columns))
        write_parquet(rio.results_path(ws, "xlrm_long"), long)
        csv_path = rio.results_path(ws, "xlrm_long_csv")
        estimate = csv_size_estimate(long)
        if estimate <= args.csv_limit_mb * 1e6:
            write_csv(csv_path, long)
            csv_note = "written"
        else:
            csv_note = f"skipped: about {estimate / 1e6:.0f} MB, above --csv-limit-mb {args.csv_limit_mb:g}"
            if csv_path.exists():
                csv_path.unlink()
                logger.info("removed the stale %s of an earlier run", csv_path.name)
            logger.warning("%s %s (the parquet file holds the same rows)", csv_path.name, csv_note)
        write_csv(rio.results_path(ws, "variables"), variables)
        roles = long.drop_duplicates("variable")["role"].value_counts().to_dict()
        write_manifest(ws.results_dir, "7_results_analysis/append_xlrm_long_format.py", {
            "states": sorted(results["state"].unique().tolist()), "runs": len(results), "rows": len(long),
            "variables_per_role": {k: int(roles[k]) for k in sorted(roles)}, "csv": csv_note,
            "csv_limit_mb": args.csv_limit_mb}, name="manifest_append_xlrm_long_format.json")
        logger.info("%d rows (%s) -> %s", len(long), ", ".join(f"{int(roles[k])} {k}" for k in sorted(roles)),
                    rio.results_path(ws, "xlrm_long"))
        return 0


if __name__ == "__main__":
    sys.exit(main())
