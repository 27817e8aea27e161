"""SMART-DS naming conventions, in one place (formats.md section 1).

* Feeder folders are ``<substation>--<feeder>``; Greensboro names carry no region prefix
  (``uhs0_1247--udt12274``), Austin and the Bay Area do (``p1uhs21_1247--p1udt5257``): parse, never
  assume a form.
* Load shapes are ``res_kw_<id>_pu`` / ``com_kw_<id>_pu``; their reactive twin ``res_kvar_<id>_pu``;
  the customer's end-use data are ``load_data/<res|com>_<id>.parquet`` in the subregion folder.
* A customer on a centre-tap transformer is two half loads ``<name>_1`` (leg ``.1``) and
  ``<name>_2`` (leg ``.2``); the customer is the name without the suffix.
"""

from __future__ import annotations

import re
from pathlib import Path

from common import config

_SHAPE = re.compile(r"^(?P<cls>res|com)_kw_(?P<id>[A-Za-z0-9]+)_pu$", re.IGNORECASE)
_HALF = re.compile(r"^(?P<base>.+)_(?P<leg>[12])$")


def parse_shape(shape: str) -> tuple[str, str] | None:
    """``res_kw_44719_pu`` -> ("res", "44719"); None when the name is not a SMART-DS profile."""
    match = _SHAPE.match(shape)
    if not match:
        return None
    return match.group("cls").lower(), match.group("id")


def kvar_shape(shape: str) -> str:
    return re.sub(r"_kw_", "_kvar_", shape, count=1, flags=re.IGNORECASE)


def load_data_relpath(shape: str) -> str | None:
    """``res_kw_44719_pu`` -> ``load_data/res_44719.parquet`` (below the subregion folder); None when
    the name is not a SMART-DS profile."""
    parsed = parse_shape(shape)
    if parsed is None:
        return None
    cls, pid = parsed
    return f"load_data/{cls}_{pid}.parquet"


def load_data_file(subregion_dir: Path, shape: str) -> Path | None:
    relpath = load_data_relpath(shape)
    return None if relpath is None else Path(subregion_dir).joinpath(*relpath.split("/"))


def customer_of(load_name: str, n_nodes: int) -> tuple[str, int | None]:
    """The customer a load belongs to and its leg: a single-node load named ``x_1``/``x_2`` is a
    half load of customer ``x``; anything else is a customer of its own."""
    match = _HALF.match(load_name)
    if match and n_nodes == 1:
        return match.group("base"), int(match.group("leg"))
    return load_name, None


#: a two-leg service is split-phase (120/240 V) only at a low voltage; a two-node load on a
#: medium-voltage bus (a test feeder's lumped phase-to-phase load) is not a house
LV_SERVICE_MAX_KV = 0.25


def group_loads(loads: list[dict]) -> list[dict]:
    """Customers from load objects, the same rule on every route: the half loads ``x_1``/``x_2`` of a
    centre-tap service (one node each) are one split-phase customer ``x``; a two-node load (``.1.2``)
    at a low voltage (``LV_SERVICE_MAX_KV``) is a split-phase customer too; a load on the three phases with at least 3 phases is three-phase;
    anything else single-phase. ``loads``: dicts with load, bus, nodes (tuple of ints > 0), phases,
    kv, kw, kvar. Returns per customer: customer, members (the load dicts, sorted), loads
    (``a;b``), n_loads, bus, nodes (``1.2``), phases, kv, peak_kw, peak_kvar, three_phase, service."""
    groups: dict[str, list[dict]] = {}
    for row in loads:
        customer, _ = customer_of(row["load"], len(row["nodes"]))
        groups.setdefault(customer, []).append(row)
    customers = []
    for customer in sorted(groups):
        members = sorted(groups[customer], key=lambda r: r["load"])
        if len({m["bus"] for m in members}) > 1:  # same name, different places: not the halves of one service
            customers += [customer_record(m["load"], [m]) for m in members]
        else:
            customers.append(customer_record(customer, members))
    return sorted(customers, key=lambda c: c["customer"])


def customer_record(customer: str, members: list[dict]) -> dict:
    """One customer of :func:`group_loads` from its loads."""
    nodes = sorted({n for m in members for n in m["nodes"]})
    three_phase = len(set(nodes) & {1, 2, 3}) == 3 and max(m["phases"] for m in members) >= 3
    low_voltage = max(float(m["kv"]) for m in members) <= LV_SERVICE_MAX_KV
    if three_phase:
        service = "three_phase"
    elif low_voltage and (len(members) == 2 or (len(nodes) == 2 and len(members) == 1)):
        service = "split_phase"
    else:
        service = "single_phase"
    return {"customer": customer, "members": members, "loads": ";".join(m["load"] for m in members),
            "n_loads": len(members), "bus": members[0]["bus"], "nodes": ".".join(str(n) for n in nodes),
            "phases": max(m["phases"] for m in members) if len(members) == 1 else len(nodes),
            "kv": members[0]["kv"], "peak_kw": sum(m["kw"] for m in members),
            "peak_kvar": sum(m["kvar"] for m in members), "three_phase": three_phase, "service": service}


def split_folder(folder: str) -> tuple[str, str]:
    """``p1uhs21_1247--p1udt5257`` -> ("p1uhs21_1247", "p1udt5257")."""
    substation, sep, feeder = folder.partition("--")
    if not sep or not substation or not feeder:
        raise ValueError(f"{folder!r} is not a SMART-DS feeder folder name <substation>--<feeder>")
    return substation, feeder


def subregion_relpath(year: str, city: str, subregion: str) -> str:
    """``<year>/<city>/<subregion>``: a subregion folder below ``SMART-DS/v1.0``."""
    return f"{year}/{city}/{subregion}"


def scenario_relpath(year: str, city: str, subregion: str, scenario: str) -> str:
    """``<year>/<city>/<subregion>/scenarios/<scenario>/opendss``: the feeders' folder below ``SMART-DS/v1.0``."""
    return f"{subregion_relpath(year, city, subregion)}/scenarios/{scenario}/opendss"


def scenario_dir(root: Path, state: str, subregion: str, scenario: str | None = None) -> Path:
    """``<root>/<year>/<city>/<subregion>/scenarios/<scenario>/opendss`` for a state's city."""
    sd = config.SMARTDS[state]
    return Path(root).joinpath(*scenario_relpath(sd["year"], sd["city"], subregion,
                                                 scenario or sd["scenario"]).split("/"))


def subregion_of_feeder(feeder_dir: Path) -> Path:
    """The subregion folder of a feeder folder in the OEDI layout (five levels up)."""
    return Path(feeder_dir).resolve().parents[4]
