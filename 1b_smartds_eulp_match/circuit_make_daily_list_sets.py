"""Parse every copied feeder's Loads.dss and LoadShapes.dss into a customer table.

Description
    Reads the loads and load shapes of each feeder copied by ``copy_circuits.py`` in the forms
    SMART-DS writes them: split-phase customers as ``<name>_1`` / ``<name>_2`` half loads on legs
    ``.1`` and ``.2`` (GSO style) or as one two-phase load on ``.1.2`` (AUS/SFO style), three-phase
    customers on ``.1.2.3``; shapes by ``yearly=`` or ``daily=``; element names with or without a
    region prefix. A customer is a load, or the pair of half loads of one name; its annual peak kW
    and kvar are the sum of its loads' ``kW`` and ``kvar``. The "daily list set" of the earlier
    workflow is the per-feeder count of customers using each shape.

    A feeder whose ``Loads.dss`` names a shape that ``LoadShapes.dss`` lacks (or whose halves
    disagree on their shape) is left out with a message naming the file and the item; the other
    feeders go through.

Inputs (``<data>/1b_smartds_eulp_match/<STATE>/``, from ``copy_circuits.py``)
    feeders.csv, feeders/<feeder>/Loads.dss, feeders/<feeder>/LoadShapes.dss

Outputs (same folder; read by review_parquet_matches.py, phase 2 and phase 6)
    customers.parquet   state, subregion, feeder, customer, loads (";"-joined), n_loads, bus, nodes, phases,
                        kv, peak_kw, peak_kvar, shape, class (res/com), three_phase, service
                        (split_phase / three_phase / single_phase)
    shape_counts.csv    state, subregion, feeder, shape, class, n_customers, n_loads, peak_kw_sum, npts,
                        interval_h, mult_file, qmult_file
    feeder_parse.csv    feeder, status (ok / excluded), reason, n_customers, n_loads

Settings read
    none beyond the state

Usage
    python 1b_smartds_eulp_match/circuit_make_daily_list_sets.py --state NC [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from common import cli, dss, profiles, smartds
from common.io import exclusive_step, read_csv, write_csv, write_parquet
from common.paths import SMARTDS_FILES, Workspace

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name
LOADS, LOADSHAPES = SMARTDS_FILES["loads"], SMARTDS_FILES["loadshapes"]
#: the customer table's columns, in order (the contract with phases 2 and 6: common.profiles)
CUSTOMER_COLUMNS = list(profiles.CUSTOMER_COLUMNS)


class FeederParseError(ValueError):
    """A feeder whose files cannot be turned into customers; the message names file and item."""


def _float(obj: dss.DssObject, key: str, file: str, default: float | None = None) -> float:
    value = obj.get(key)
    if value is None:
        if default is not None:
            return default
        raise FeederParseError(f"{file}: Load.{obj.name} has no {key}=")
    try:
        return float(value)
    except ValueError:
        raise FeederParseError(f"{file}: Load.{obj.name} {key}={value!r} is not a number") from None


def parse_loadshapes(folder: Path) -> dict[str, dict]:
    """Shape name (lower case) -> name, npts, interval_h, mult and qmult files (resolved)."""
    shapes = {}
    for obj in dss.read_dss_objects(folder / LOADSHAPES, ("loadshape",)):
        entry = {"shape": obj.name, "npts": int(float(obj.get("npts", "0"))),
                 "interval_h": float(obj.get("interval", "1")), "mult_file": "", "qmult_file": ""}
        for prop in ("mult", "qmult"):
            ref = dss.file_reference(obj.get(prop))
            if ref:
                path = Path(ref.replace("\\", "/"))
                entry[f"{prop}_file"] = str(path if path.is_absolute() else (folder / path).resolve())
        shapes[obj.name.lower()] = entry
    return shapes


def parse_loads(folder: Path, shapes: dict[str, dict]) -> list[dict]:
    """One row per load of Loads.dss, its shape checked against LoadShapes.dss."""
    rows = []
    file = f"{folder.name}/{LOADS}"
    for obj in dss.read_dss_objects(folder / LOADS, ("load",)):
        bus1 = obj.get("bus1")
        if not bus1:
            raise FeederParseError(f"{file}: Load.{obj.name} has no bus1=")
        shape = obj.get("yearly") or obj.get("daily")
        if not shape:
            raise FeederParseError(f"{file}: Load.{obj.name} names no yearly= or daily= shape")
        if shape.lower() not in shapes:
            raise FeederParseError(f"{file}: Load.{obj.name} uses shape {shape!r} that "
                                   f"{folder.name}/{LOADSHAPES} does not define")
        nodes = dss.bus_nodes(bus1)
        phases = int(float(obj.get("phases", str(max(len([n for n in nodes if n > 0]), 1)))))
        rows.append({"load": obj.name, "bus": dss.bus_name(bus1), "nodes": tuple(n for n in nodes if n > 0),
                     "phases": phases, "kv": _float(obj, "kv", file),
                     "kw": _float(obj, "kw", file), "kvar": _float(obj, "kvar", file, default=0.0),
                     "shape": shapes[shape.lower()]["shape"]})
    return rows


def customers_from_loads(feeder: str, loads: list[dict]) -> list[dict]:
    """Group loads into customers (``common.smartds.group_loads``: half loads ``x_1``/``x_2`` are one
    customer ``x``); the loads of one customer must share a shape."""
    customers = []
    for c in smartds.group_loads(loads):
        shapes = sorted({m["shape"] for m in c.pop("members")})
        if len(shapes) > 1:
            raise FeederParseError(f"{feeder}/{LOADS}: the loads of customer {c['customer']} use different shapes "
                                   f"{', '.join(shapes)}")
        parsed = smartds.parse_shape(shapes[0])
        customers.append({"feeder": feeder, **{k: c[k] for k in ("customer", "loads", "n_loads", "bus", "nodes",
                                                                 "phases", "kv", "peak_kw", "peak_kvar")},
                          "shape": shapes[0], "class": parsed[0] if parsed else "unknown",
                          "three_phase": c["three_phase"], "service": c["service"]})
    return customers


def parse_feeder(folder: Path) -> tuple[list[dict], dict[str, dict]]:
    missing = [name for name in (LOADS, LOADSHAPES) if not (folder / name).is_file()]
    if missing:
        raise FeederParseError(f"{folder / missing[0]} not found: run {profiles.PRODUCERS['feeder_list']} again")
    shapes = parse_loadshapes(folder)
    loads = parse_loads(folder, shapes)
    if not loads:
        raise FeederParseError(f"{folder.name}/{LOADS} defines no load")
    return customers_from_loads(folder.name, loads), shapes


def shape_counts(state: str, customers: pd.DataFrame, shapes_by_feeder: dict[str, dict[str, dict]],
                 ws: Workspace | None = None) -> pd.DataFrame:
    counts = (customers.groupby(["subregion", "feeder", "shape", "class"], sort=True)
              .agg(n_customers=("customer", "size"), n_loads=("n_loads", "sum"), peak_kw_sum=("peak_kw", "sum"))
              .reset_index())
    def portable(key: str, value: object) -> object:  # profile files inside the workspace: relative to it
        return ws.portable(value) if ws is not None and key.endswith("_file") and value else value

    meta = [{"feeder": f, **{k: portable(k, v) for k, v in entry.items()}} for f, shapes in shapes_by_feeder.items()
            for entry in shapes.values()]
    counts = counts.merge(pd.DataFrame(meta), on=["feeder", "shape"], how="left")
    counts.insert(0, "state", state)
    return counts


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="circuit_make_daily_list_sets.py")
    cli.add_state(parser)
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    out = ws.match_dir(args.state)
    with exclusive_step(out, SCRIPT):
        return run(args, ws)


def run(args: argparse.Namespace, ws: Workspace) -> int:
    state = args.state
    feeders = read_csv(ws.feeder_list(state), profiles.PRODUCERS["feeder_list"], required=("feeder", "status", "subregion"))
    feeders = feeders[feeders["status"] == "ok"].sort_values("feeder")
    all_customers, shapes_by_feeder, report = [], {}, []
    for feeder in feeders["feeder"]:
        folder = ws.feeder_dir(state, feeder)
        try:
            customers, shapes = parse_feeder(folder)
        except FeederParseError as exc:
            logger.error("%s left out: %s", feeder, exc)
            report.append({"feeder": feeder, "status": "excluded", "reason": str(exc), "n_customers": 0, "n_loads": 0})
            continue
        all_customers += customers
        shapes_by_feeder[feeder] = {k: v for k, v in shapes.items()
                                    if k in {c["shape"].lower() for c in customers}}
        report.append({"feeder": feeder, "status": "ok", "reason": "", "n_customers": len(customers),
                       "n_loads": sum(c["n_loads"] for c in customers)})
        unknown = sorted({c["shape"] for c in customers if c["class"] == "unknown"})
        if unknown:
            logger.warning("%s: shapes not named res_kw_<id>_pu / com_kw_<id>_pu cannot be matched to EULP: %s",
                           feeder, ", ".join(unknown[:5]))
    write_csv(ws.feeder_parse(state), pd.DataFrame(report, columns=["feeder", "status", "reason", "n_customers",
                                                                  "n_loads"]))
    if not all_customers:
        raise cli.UserError(f"no feeder of {state} could be parsed: see {ws.feeder_parse(state)}")
    table = pd.DataFrame(all_customers)
    table.insert(0, "state", state)
    table["subregion"] = table["feeder"].map(feeders.set_index("feeder")["subregion"])
    table = table[CUSTOMER_COLUMNS]
    write_parquet(ws.customers(state), table)
    write_csv(ws.shape_counts(state), shape_counts(state, table, shapes_by_feeder, ws))
    logger.info("%s: %d customers on %d feeders, %d distinct shapes -> %s", state, len(table),
                table["feeder"].nunique(), table["shape"].nunique(), ws.customers(state))
    cli.record(__file__, ws.match_dir(state), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
