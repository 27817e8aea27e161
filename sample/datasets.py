"""Writers of the sample's files in the published formats (formats.md): SMART-DS ``profiles/`` and
``load_data/``, EULP per-building 15-min parquet and metadata (one file per upgrade, or partitioned
by state and county as ComStock 2024 release 2 publishes it), and the EV session statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from common import config, eulp
from sample import buildings as B
from sample.weather import N_INTERVALS, YEAR

MONTH_ABBR = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def interval_start_index() -> pd.DatetimeIndex:
    return pd.date_range(f"{YEAR}-01-01 00:00", periods=N_INTERVALS, freq="15min")


def interval_end_index() -> pd.DatetimeIndex:
    """EULP timestamps label the END of each interval: 00:15 on Jan 1 ... 00:00 on Jan 1 next year."""
    return pd.date_range(f"{YEAR}-01-01 00:15", periods=N_INTERVALS, freq="15min")


def month_of_interval() -> np.ndarray:
    return interval_start_index().month.to_numpy()


def _write_parquet(table: pa.Table, path: Path, delta_columns: tuple[str, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = table.column_names
    pq.write_table(table, path, compression="zstd", compression_level=9,
                   use_dictionary=[c for c in names if c not in delta_columns],
                   column_encoding={c: "DELTA_BINARY_PACKED" for c in delta_columns})


def _round32(x: np.ndarray, decimals: int = 3) -> np.ndarray:
    return np.round(x, decimals).astype(np.float32)


# ------------------------------------------------------------------------------------------- SMART-DS
def write_smartds_profile(subregion_dir: Path, cls: str, profile_id: int, loads: dict[str, np.ndarray],
                          building_type: str) -> tuple[float, float]:
    """Write ``profiles/<cls>_kw|kvar_<id>_pu.csv`` and ``load_data/<cls>_<id>.parquet`` for one
    customer; returns its annual peak kW and kvar."""
    kw = B.total_kw(loads)
    kvar = B.reactive_kvar(loads)
    peak_kw, peak_kvar = float(kw.max()), float(kvar.max())
    profiles = subregion_dir / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    for name, values, peak in ((f"{cls}_kw_{profile_id}_pu", kw, peak_kw), (f"{cls}_kvar_{profile_id}_pu", kvar, peak_kvar)):
        text = "\n".join(f"{v:.6f}" for v in values / peak) + "\n"
        (profiles / f"{name}.csv").write_text(text)
    heating = loads["heating"] + loads["heating_hp_bkup"]
    cooling = loads["cooling"]
    fans = loads["heating_fans_pumps"] + loads["cooling_fans_pumps"]
    table = pa.table({
        "Time": pa.array(interval_start_index().to_numpy().astype("datetime64[us]")),
        "total_site_electricity_kw": _round32(kw),
        "total_site_electricity_kvar": _round32(kvar),
        "building": pa.array([building_type] * N_INTERVALS),
        "pf": _round32(kw / np.sqrt(kw**2 + kvar**2 + 1e-12), 4),
        "heating_kw": _round32(heating),
        "heating_kvar": _round32(loads["heating"] * B.TAN_PHI["heating"]),
        "cooling_kw": _round32(cooling),
        "cooling_kvar": _round32(cooling * B.TAN_PHI["cooling"]),
        "lighting_kw": _round32(loads["lighting_interior"]),
        "fans_kw": _round32(fans),
        "water_systems_kw": _round32(loads["water_systems"]),
        "plug_loads_kw": _round32(loads["plug_loads"]),
    })
    _write_parquet(table, subregion_dir / "load_data" / f"{cls}_{profile_id}.parquet", ("Time",))
    return peak_kw, peak_kvar


# ------------------------------------------------------------------------------------------- EULP
def eulp_timeseries_table(bldg_id: int, loads: dict[str, np.ndarray]) -> pa.Table:
    columns = {
        "bldg_id": pa.array(np.full(N_INTERVALS, bldg_id, dtype=np.int64)),
        "timestamp": pa.array(interval_end_index().to_numpy().astype("datetime64[us]")),
        config.EULP_TOTAL_KWH: _round32(B.total_kw(loads) * 0.25),
    }
    for use in B.END_USES:
        columns[f"out.electricity.{use}.energy_consumption"] = _round32(loads[use] * 0.25)
    columns["out.natural_gas.total.energy_consumption"] = _round32(loads["natural_gas"] * 0.25)
    return pa.table(columns)


def write_eulp_timeseries(path: Path, bldg_id: int, loads: dict[str, np.ndarray]) -> None:
    _write_parquet(eulp_timeseries_table(bldg_id, loads), path, ("timestamp", "bldg_id"))


def annual_results(loads: dict[str, np.ndarray], months: np.ndarray, stock: str) -> dict[str, float]:
    """The ``out.*`` annual results of the metadata for one building and upgrade."""
    kw = np.round(B.total_kw(loads) * 0.25, 3) * 4.0
    out = {
        "out.electricity.total.energy_consumption.kwh": float(kw.sum() * 0.25),
        "out.natural_gas.total.energy_consumption.kwh": float(loads["natural_gas"].sum() * 0.25),
    }
    if stock == "resstock":
        summer = np.isin(months, config.SEASON_MONTHS["summer"])
        winter = np.isin(months, config.SEASON_MONTHS["winter"])
        out["out.electricity.summer.peak.kw"] = float(kw[summer].max())
        out["out.electricity.winter.peak.kw"] = float(kw[winter].max())
    else:
        for m, abbr in enumerate(MONTH_ABBR, start=1):
            out[f"out.qoi.maximum_daily_peak_{abbr}..kw"] = float(kw[months == m].max())
    return out


def write_metadata(path: Path, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows).sort_values("bldg_id", kind="stable").reset_index(drop=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd")


def write_partitioned_metadata(release_dir: Path, release: str, state: str, upgrade: int, rows: list[dict]) -> dict[str, int]:
    """Write one upgrade's metadata rows of ``state`` as the release partitions them (one file per
    ``in.county`` for ``by_state_and_county``, one file for ``by_state``; paths from
    ``common.eulp.metadata_relpath``); returns {path below ``release_dir``: rows}."""
    by_county = eulp.metadata_partition(release) == "by_state_and_county"
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(str(row["in.county"]) if by_county else "", []).append(row)
    written = {}
    for county, part in sorted(groups.items()):
        rel = eulp.metadata_relpath(release, upgrade, state, county or None)
        write_metadata(release_dir / rel, part)
        written[rel] = len(part)
    return written


def build_partitioned_comstock(release_dir: Path, release: str, state: str, counties: tuple[str, ...],
                               upgrades: tuple[int, ...], weather: dict[str, np.ndarray], rng: np.random.Generator,
                               first_bldg_id: int) -> dict[str, int]:
    """A small mirror of a ComStock release whose metadata are partitioned by state and county:
    ``len(counties) + 1`` buildings of ``state`` spread over ``counties`` (the first county gets
    two), their 15-min files for every upgrade, and one metadata file per county and upgrade. As in
    the published files, the first building fills two rows of its county file (its weight split
    over two census tracts), so a county file has more rows than buildings. Returns {metadata path
    below ``release_dir``: rows}."""
    layout = config.EULP_RELEASES[release]
    county_of = [counties[0], *counties]
    shops = B.draw_commercial(len(county_of), rng)
    months = month_of_interval()
    per_upgrade = {u: B.commercial_loads(shops, weather, u) for u in upgrades}
    rows: dict[int, list[dict]] = {u: [] for u in upgrades}
    for j, county in enumerate(county_of):
        bldg = first_bldg_id + j
        hydronic = bool(shops.hydronic[j])
        weight = float(np.round(rng.uniform(3, 25), 2))
        inputs = {
            "bldg_id": bldg, "weight": weight, "in.state": state, "in.county": county,
            "in.comstock_building_type": str(shops.building_type[j]), "in.sqft": float(shops.sqft[j]),
            "in.heating_fuel": "NaturalGas",
            "in.hvac_system_type": "VAV chiller with gas boiler reheat" if hydronic else "PSZ-AC with gas coil",
        }
        tracts = (0.4, 0.6) if j == 0 else (1.0,)
        for u in upgrades:
            one = {k: v[j] for k, v in per_upgrade[u].items()}
            rel = layout["timeseries"].format(upgrade=u, state=state, county=county, bldg_id=bldg)
            write_eulp_timeseries(release_dir / rel, bldg, one)
            applicable = u == 0 or (u == 1 and not hydronic) or (u == 8 and hydronic)
            results = annual_results(one, months, "comstock")
            for share in tracts:
                rows[u].append({**inputs, "weight": round(weight * share, 2), "upgrade": u, "applicability": applicable,
                                **results})
    written: dict[str, int] = {}
    for u in upgrades:
        written.update(write_partitioned_metadata(release_dir, release, state, u, rows[u]))
    return written


# ------------------------------------------------------------------------------------------- EV sessions
#: Synthetic home-charging statistics, shaped after published residential charging behaviour
#: (INL EV Project, "Plugged In: How Americans Charge Their Electric Vehicles", INL/EXT-15-35584,
#: and NREL EVI-Pro home charging: plug-in peaking 17:00-19:00 on weekdays, home sessions mostly
#: overnight and connected far longer than they charge; Level 1 users, often plug-in hybrids, need
#: less energy per day). The numbers are NOT fitted to those studies:
#: * arrival: wrapped normal on the 24-h clock, as in sample version 5;
#: * dwell (hours plugged in, drawn after the arrival; departure = arrival + dwell): normal, truncated
#:   to 0-24 h. Its mean is the earlier sample's mean departure minus its mean arrival (L1 07:12 -
#:   17:48 = 13.4 h, L2 07:24 - 18:18 = 13.1 h), so the typical EV still leaves at about 07:00-07:30;
#:   its sd of 1.5 h is an assumption, narrower than the arrival's so that departures keep a morning
#:   peak (departure sd = sqrt(arrival sd^2 + 1.5^2), 2.5 h for L1). Short evening top-ups are left
#:   out: the energy is drawn apart from the dwell, and a short session with a whole day's energy
#:   need would show as unserved energy that no driver would have asked for;
#: * energy: lognormal, as in sample version 5.
EV_DISTRIBUTIONS = {
    # level: arrival (mean h, sd h), dwell (mean h, sd h), energy (lognormal median kWh, sigma)
    "L1": ((17.8, 2.0), (13.4, 1.5), (6.5, 0.45)),
    "L2": ((18.3, 2.3), (13.1, 1.5), (10.5, 0.50)),
}


def ev_session_stats() -> pd.DataFrame:
    """Binned distributions of arrival hour, dwell time and session energy per charger level."""
    rows = []
    hours = np.arange(25)
    energy_edges = np.array([0, 2, 4, 6, 8, 10, 12, 14, 16, 20, 25, 30, 40, 60], dtype=float)
    from scipy.stats import lognorm, norm

    def binned(level: str, quantity: str, edges: np.ndarray, cdf: np.ndarray, unit: str) -> list[dict]:
        prob = np.diff(cdf)
        prob = prob / prob.sum()
        return [{"charger_level": level, "quantity": quantity, "bin_low": float(lo), "bin_high": float(hi),
                 "probability": round(float(p), 6), "unit": unit} for lo, hi, p in zip(edges[:-1], edges[1:], prob)]

    for level, ((a_mu, a_sd), (d_mu, d_sd), (e_med, e_sig)) in EV_DISTRIBUTIONS.items():
        # wrapped normal on the 24-h clock
        arrival = sum(norm.cdf(hours + shift, a_mu, a_sd) for shift in (-24, 0, 24))
        rows += binned(level, "arrival_hour", hours, arrival, "hour of day")
        rows += binned(level, "dwell_h", hours, norm.cdf(hours, d_mu, d_sd), "hours plugged in")
        rows += binned(level, "energy_kwh", energy_edges, lognorm.cdf(energy_edges, s=e_sig, scale=e_med),
                       "kWh per day")
    frame = pd.DataFrame(rows)
    # probabilities rounded to 6 decimals: renormalise the largest bin so every group sums to 1
    for _, idx in frame.groupby(["charger_level", "quantity"]).groups.items():
        largest = frame.loc[idx, "probability"].idxmax()
        frame.loc[largest, "probability"] = round(1.0 - frame.loc[idx].drop(largest)["probability"].sum(), 6)
    return frame


EV_README = """# EV charging-session statistics (synthetic)

`ev_session_stats.csv`: binned probability distributions of home charging sessions, one group per
charger level (`L1` 120 V, `L2` 240 V) and quantity:

| quantity | bins | meaning |
|---|---|---|
| `arrival_hour` | hours 0-23 | hour of day the EV plugs in |
| `dwell_h` | 1-h bins, 0-24 h | hours plugged in: it leaves at arrival + dwell (overnight: the next morning) |
| `energy_kwh` | kWh ranges | energy the EV needs that day |

Columns: `charger_level, quantity, bin_low, bin_high, probability, unit`; probabilities sum to 1 per
group. Phase 6 draws a bin by its probability and a value uniformly inside it (arrival and dwell on
the 15-min grid), the arrival first and then the dwell, so the EV always leaves after it arrives.
A file with `departure_hour` rows (sample version 5 and earlier) is refused: arrival and departure
drawn independently do not make a session; give `dwell_h` rows instead.

These are synthetic distributions written by `sample/datasets.py`, shaped after published
residential charging behaviour (INL EV Project, "Plugged In: How Americans Charge Their Electric
Vehicles"; NREL EVI-Pro home charging) but not fitted to it: plug-in peaking at 17:00-19:00; an
overnight dwell, normal with mean 13.4 h for Level 1 and 13.1 h for Level 2 (the earlier sample's
mean departure minus its mean arrival, so the typical EV leaves at about 07:00-07:30) and sd 1.5 h
(an assumption), truncated to 0-24 h; median daily energy about 6.5 kWh for Level 1 and 10.5 kWh
for Level 2 (lognormal). Short top-up sessions are left out: the energy is drawn apart from the
dwell, so a short session would carry a whole day's need. Replace this file with
measured statistics in the same columns for a real study.
"""
