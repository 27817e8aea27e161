"""Build the embedded sample dataset: SMART-DS feeders and EULP buildings in the real formats.

Description
    Writes, deterministically and offline, a small synthetic copy of the public datasets the study
    reads, in the OEDI bucket layout, so that every phase runs on a fresh machine with no network:

    * SMART-DS v1.0 (2018) for each state's city and subregion (``common.config.SMARTDS``): feeder
      folders as SMART-DS ships them (a small ~30-customer and a medium ~300-customer feeder per
      state; in NC also a large ~2,000-customer feeder and a feeder with a broken connection that
      leaves a lateral isolated), ``profiles/`` (35,040-row per-unit CSVs) and ``load_data/``
      parquet for every profile used;
    * EULP: ResStock ``2024/resstock_amy2018_release_2`` (upgrades 0, 1, 4) and ComStock
      ``2024/comstock_amy2018_release_1`` (upgrades 0, 1, 8), both simulated with the state's one
      "AMY 2018" weather that also drives the SMART-DS profiles: metadata parquet and per-building
      15-min parquet with interval-ending timestamps, for the three states; and ComStock
      ``2024/comstock_amy2018_release_2`` for NC only (a few buildings, upgrades 0, 1, 8), its
      metadata partitioned by state and county as that release publishes it;
    * EV charging-session statistics for phase 6;
    * feeders with the features of real utility feeders (sample/real_world.py): generic OpenDSS
      feeders for the ``--feeder-dir`` route under ``feeders/`` (a normally-open tie, a regulator
      and a switched capacitor, ``../`` line codes, a ``loads/`` subfolder, ``yearly=`` and
      ``daily=`` shapes in another folder, a named master ``Master_tie.dss`` beside a different
      ``Master.dss``, two masters in folders both called ``OpenDSS``, the older
      ``New object=circuit.X`` and ``~`` syntax), and a SMART-DS feeder with a tie, regulator,
      capacitor and a solar scenario (``PVShapes.dss`` -> ``../../../pv-profiles/``) in the TX
      subregion ``P2U``, which the default runs do not study (``common.config.SMARTDS`` selects
      ``P1U``), so the default feeders are unchanged.

    The data are synthetic (see sample/buildings.py and sample/weather.py) and say so in
    ``sample_manifest.json``: heating peaks on cold mornings, cooling on hot afternoons, a gas-heated
    home that gets a heat pump gains winter electric load, electric backup peaks above fuel backup,
    commercial load follows business hours. The build goes to a temporary folder that is renamed
    into place at the end: an interrupted build leaves nothing behind.

Inputs
    none

Outputs (under ``<data>/sample/``)
    oedi/SMART-DS/v1.0/2018/<city>/<subregion>/...               feeders, profiles, load_data
    oedi/nrel-pds-building-stock/end-use-load-profiles-for-us-building-stock/2024/<release>/...
    oedi/SMART-DS/v1.0/2018/AUS/P2U/scenarios/{base_timeseries,solar_medium_batteries_none_timeseries}/...
                                                                  the SMART-DS feeder with real-world features
    feeders/tie_regulator/circuit/Master_tie.dss (and Master.dss, a different variant)
    feeders/utility_a/OpenDSS/Master.dss, feeders/utility_b/OpenDSS/Master.dss
    feeders/legacy_syntax/Master.dss                              generic OpenDSS feeders (--feeder-dir)
    ev/ev_session_stats.csv, ev/README.md
    sample_manifest.json                                          what was built, sizes, seeds

Outputs (under ``<data>/upgrade_costs/``, when ../shared/data/upgrade_costs exists)
    lines.csv, transformers.csv, voltage_regulators.csv, control_changes.csv, misc.csv, SOURCE.json
                                  NREL DISCO's generic unit-cost tables as published (BSD-3), with their origin

Settings read
    common.config: SMARTDS, EULP_RELEASES, SEASON_MONTHS

Usage
    python sample/build_sample.py [--data-dir DIR] [--force]
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from common import cli, config
from common.io import dumps_json
from sample import buildings as B
from sample import datasets as D
from sample import real_world as RW
from sample.feeders import Customer, FeederSpec, build_feeder
from sample.weather import build_weather

logger = logging.getLogger(__name__)

SAMPLE_SEED = 20181231
#: 6: the EV session statistics give a dwell time per charger level (dwell_h) instead of a departure hour
#: 7: ResStock mirrored as 2024/resstock_amy2018_release_2 with the AMY 2018 weather of ComStock and SMART-DS
#:    (one weather year, common.config.EULP_RELEASE), instead of resstock_tmy3_release_2 with its own weather
SAMPLE_VERSION = 7
STATE_INDEX = {state: i for i, state in enumerate(config.STATES)}

#: the default releases (common.config.EULP_RELEASE): one weather year, AMY 2018, for both classes
RES_RELEASE = "2024/resstock_amy2018_release_2"
COM_RELEASE = "2024/comstock_amy2018_release_1"
RES_UPGRADES = (0, 1, 4)
COM_UPGRADES = (0, 1, 8)
COUNTY = {"NC": ("G3700810", "G37001701"), "TX": ("G4804530", "G48005303"), "CA": ("G0600750", "G06007502")}
#: a release with metadata partitioned by state and county, mirrored for one state and two counties
PARTITIONED_RELEASE = "2024/comstock_amy2018_release_2"
PARTITIONED_STATE = "NC"
PARTITIONED_COUNTIES = ("G3700670", "G3700810")


@dataclass(frozen=True)
class StateSample:
    n_res_profiles: int
    n_com_small_profiles: int   # split-phase commercial customers
    n_com_large_profiles: int   # three-phase commercial customers
    n_res_buildings: int        # ResStock buildings in the state
    n_com_buildings: int        # ComStock buildings in the state
    feeders: tuple[FeederSpec, ...]


def _spec(sub: str, fid: int, prefix: str, n_res: int, n_com1: int, n_com3: int, segments: int, span: float,
          code: str, seed: int, fault: bool = False) -> FeederSpec:
    return FeederSpec(substation=sub, feeder_id=fid, prefix=prefix, n_res=n_res, n_com_1ph=n_com1, n_com_3ph=n_com3,
                      trunk_segments=segments, trunk_span_m=span, trunk_code=code, fault=fault, seed=seed)


DRAKE = "3P_OH_AL_ACSR_795_Drake_12_47_0_3_3_3_3_3"
HAWK = "3P_OH_AL_ACSR_477_Hawk_12_47_0_3_3_3_3_3"
PENGUIN = "3P_OH_AL_ACSR_4/0_Penguin_12_47_0_3_3_3_3_3"

STATE_SAMPLES = {
    "NC": StateSample(40, 4, 6, 80, 20, (
        _spec("uhs0_1247", 1021, "u", 25, 2, 3, 3, 250.0, PENGUIN, 1),
        _spec("uhs0_1247", 2473, "u", 270, 8, 14, 10, 300.0, HAWK, 2),
        _spec("uhs1_1247", 5219, "u", 1880, 45, 40, 22, 200.0, DRAKE, 3),
        _spec("uhs1_1247", 7745, "u", 24, 2, 2, 3, 250.0, PENGUIN, 4, fault=True),
    )),
    "TX": StateSample(18, 3, 3, 45, 12, (
        _spec("p1uhs2_1247", 3318, "p1u", 25, 2, 3, 3, 250.0, PENGUIN, 5),
        _spec("p1uhs2_1247", 4106, "p1u", 270, 8, 14, 10, 300.0, HAWK, 6),
    )),
    "CA": StateSample(18, 3, 3, 45, 12, (
        _spec("p1uhs5_1247", 2207, "p1u", 25, 2, 3, 3, 250.0, PENGUIN, 7),
        _spec("p1uhs5_1247", 6632, "p1u", 270, 8, 14, 10, 300.0, HAWK, 8),
    )),
}


def _rng(state: str, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(SAMPLE_SEED, spawn_key=(STATE_INDEX[state], purpose)))


def _ids(rng: np.random.Generator, n: int, lo: int, hi: int) -> list[int]:
    return sorted(int(i) for i in rng.choice(np.arange(lo, hi), size=n, replace=False))


def build_state_smartds(state: str, oedi: Path, spec: StateSample, stats: dict) -> None:
    sd = config.SMARTDS[state]
    subregion_dir = oedi / config.SMARTDS_PREFIX / sd["year"] / sd["city"] / sd["subregions"][0]
    weather = build_weather(state, _rng(state, 0))  # the "AMY 2018" weather of SMART-DS and ComStock
    rng = _rng(state, 2)
    # profiles: residential, small commercial (split-phase), large commercial (three-phase)
    res_ids = _ids(rng, spec.n_res_profiles, 1000, 45000)
    com_ids = _ids(rng, spec.n_com_small_profiles + spec.n_com_large_profiles, 40000, 43500)
    homes = B.draw_residential(state, len(res_ids), rng)
    res_peaks = {}
    for start in range(0, len(res_ids), 20):
        batch = B.ResidentialBatch(**{k: v[start:start + 20] for k, v in homes.__dict__.items()})
        loads = B.residential_loads(batch, weather, 0)
        for j, pid in enumerate(res_ids[start:start + 20]):
            one = {k: v[j:j + 1][0] for k, v in loads.items()}
            res_peaks[pid] = D.write_smartds_profile(subregion_dir, "res", pid, one, str(batch.building_type[j]))
    shops = B.draw_commercial(len(com_ids), rng)
    # the smallest commercial customers take the split-phase services
    order = np.argsort(shops.sqft, kind="stable")
    loads = B.commercial_loads(shops, weather, 0)
    com_peaks = {}
    for j, pid in enumerate(com_ids):
        one = {k: v[j] for k, v in loads.items()}
        com_peaks[pid] = D.write_smartds_profile(subregion_dir, "com", pid, one, str(shops.building_type[j]))
    small = [com_ids[j] for j in order[: spec.n_com_small_profiles]]
    large = [com_ids[j] for j in order[spec.n_com_small_profiles:]]

    frng = _rng(state, 3)
    taken = {fs.feeder_id for fs in spec.feeders}
    for fs in spec.feeders:
        customers = []
        for kind, count, pool, peaks, cls in (("res", fs.n_res, res_ids, res_peaks, "res"),
                                              ("com1", fs.n_com_1ph, small, com_peaks, "com"),
                                              ("com3", fs.n_com_3ph, large, com_peaks, "com")):
            for pid in frng.choice(pool, size=count, replace=True):
                kw, kvar = peaks[int(pid)]
                scale = float(frng.uniform(0.85, 1.15))
                customers.append(Customer(kind=kind, shape=f"{cls}_kw_{int(pid)}_pu", kw=kw * scale, kvar=kvar * scale))
        files = build_feeder(fs, customers, np.random.default_rng(np.random.SeedSequence(SAMPLE_SEED, spawn_key=(99, fs.seed))),
                             taken)
        folder = subregion_dir / "scenarios" / sd["scenario"] / "opendss" / fs.substation / fs.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.files.items():
            (folder / name).write_text(text)
        stats["feeders"].append({"state": state, "city": sd["city"], "subregion": sd["subregions"][0],
                                 "feeder": fs.folder, "customers": files.n_customers, "loads": files.n_loads,
                                 "shapes": len(files.shapes), "broken_connection": fs.fault})
    stats["profiles"][state] = {"res": len(res_ids), "com": len(com_ids)}


def build_state_eulp(state: str, oedi: Path, spec: StateSample, metadata: dict[str, list[dict]]) -> None:
    months = D.month_of_interval()
    eulp = oedi / config.EULP_PREFIX
    # ResStock and ComStock: the AMY 2018 weather of SMART-DS (build_state_smartds), one weather year
    amy = build_weather(state, _rng(state, 0))
    rng = _rng(state, 4)
    base_id = 100000 * (STATE_INDEX[state] + 1)
    homes = B.draw_residential(state, spec.n_res_buildings, rng, vacancy=0.10)
    res_layout = config.EULP_RELEASES[RES_RELEASE]
    county, puma = COUNTY[state]
    for start in range(0, len(homes), 20):
        batch = B.ResidentialBatch(**{k: v[start:start + 20] for k, v in homes.__dict__.items()})
        per_upgrade = {u: B.residential_loads(batch, amy, u) for u in RES_UPGRADES}
        for j in range(len(batch)):
            bldg = base_id + start + j + 1
            fuel, heat_type = B.RES_HEATING[str(batch.heating_kind[j])]
            cooling = {"central": "Central AC", "room": "Room AC", "heat_pump": "Heat Pump", "none": "None"}[
                str(batch.cooling_kind[j])]
            inputs = {
                "bldg_id": bldg, "weight": 242.13, "in.state": state, "in.county": county, "in.puma": puma,
                "in.sqft": float(batch.sqft[j]),
                "in.geometry_building_type_recs": str(batch.building_type[j]),
                "in.geometry_building_type_acs": str(batch.building_type_acs[j]),
                "in.heating_fuel": fuel, "in.hvac_heating_type_and_fuel": heat_type,
                "in.hvac_cooling_type": cooling, "in.area_median_income": str(batch.income[j]),
                "in.vacancy_status": "Vacant" if batch.vacant[j] else "Occupied",
                "in.water_heater_fuel": "Electricity" if batch.electric_wh[j] else "Natural Gas",
            }
            for u in RES_UPGRADES:
                one = {k: v[j] for k, v in per_upgrade[u].items()}
                rel = res_layout["timeseries"].format(upgrade=u, state=state, county=county, bldg_id=bldg)
                D.write_eulp_timeseries(eulp / RES_RELEASE / rel, bldg, one)
                metadata[f"{RES_RELEASE}|{u}"].append({**inputs, "upgrade": u, "applicability": True,
                                                       **D.annual_results(one, months, "resstock")})
    # ComStock: AMY 2018 weather
    shops = B.draw_commercial(spec.n_com_buildings, rng)
    com_layout = config.EULP_RELEASES[COM_RELEASE]
    per_upgrade = {u: B.commercial_loads(shops, amy, u) for u in COM_UPGRADES}
    base_id = 10000 * (STATE_INDEX[state] + 1)
    for j in range(len(shops)):
        bldg = base_id + j + 1
        hydronic = bool(shops.hydronic[j])
        inputs = {
            "bldg_id": bldg, "weight": float(np.round(rng.uniform(3, 25), 2)), "in.state": state,
            "in.county": county, "in.comstock_building_type": str(shops.building_type[j]),
            "in.sqft": float(shops.sqft[j]), "in.heating_fuel": "NaturalGas",
            "in.hvac_system_type": "VAV chiller with gas boiler reheat" if hydronic else "PSZ-AC with gas coil",
        }
        for u in COM_UPGRADES:
            one = {k: v[j] for k, v in per_upgrade[u].items()}
            applicable = u == 0 or (u == 1 and not hydronic) or (u == 8 and hydronic)
            rel = com_layout["timeseries"].format(upgrade=u, state=state, county=county, bldg_id=bldg)
            D.write_eulp_timeseries(eulp / COM_RELEASE / rel, bldg, one)
            metadata[f"{COM_RELEASE}|{u}"].append({**inputs, "upgrade": u, "applicability": applicable,
                                                   **D.annual_results(one, months, "comstock")})


def build_sample(target: Path) -> dict:
    """Build the whole sample into ``target`` (which must not exist); returns the manifest."""
    oedi = target / "oedi"
    stats: dict = {"feeders": [], "profiles": {}}
    metadata: dict[str, list[dict]] = {f"{RES_RELEASE}|{u}": [] for u in RES_UPGRADES}
    metadata.update({f"{COM_RELEASE}|{u}": [] for u in COM_UPGRADES})
    for state in config.STATES:
        logger.info("%s: SMART-DS feeders and profiles", state)
        build_state_smartds(state, oedi, STATE_SAMPLES[state], stats)
        logger.info("%s: EULP buildings", state)
        build_state_eulp(state, oedi, STATE_SAMPLES[state], metadata)
    for key, rows in sorted(metadata.items()):
        release, upgrade = key.split("|")
        layout = config.EULP_RELEASES[release]
        rel = layout["metadata_baseline"] if upgrade == "0" else layout["metadata_upgrade"].format(upgrade=int(upgrade))
        D.write_metadata(oedi / config.EULP_PREFIX / release / rel, rows)
    partitioned = D.build_partitioned_comstock(
        oedi / config.EULP_PREFIX / PARTITIONED_RELEASE, PARTITIONED_RELEASE, PARTITIONED_STATE, PARTITIONED_COUNTIES,
        COM_UPGRADES, build_weather(PARTITIONED_STATE, _rng(PARTITIONED_STATE, 0)), _rng(PARTITIONED_STATE, 5),
        first_bldg_id=90001)
    logger.info("feeders with real-world features")
    generic_feeders = RW.build_generic_feeders(target / "feeders", SAMPLE_SEED)
    city = config.SMARTDS[RW.SMARTDS_STATE]
    smartds_features = RW.build_smartds_features(oedi, SAMPLE_SEED, config.SMARTDS_PREFIX, city["year"], city["city"])
    ev = target / "ev"
    ev.mkdir(parents=True, exist_ok=True)
    D.ev_session_stats().to_csv(ev / "ev_session_stats.csv", index=False, lineterminator="\n")
    (ev / "README.md").write_text(D.EV_README)
    files = sorted(p for p in target.rglob("*") if p.is_file())
    return {
        "what": "embedded sample of the dss_xlrm project: SYNTHETIC data in the formats of NREL SMART-DS v1.0 "
                "and NREL End-Use Load Profiles (ResStock/ComStock 2024), not real measurements",
        "version": SAMPLE_VERSION,
        "seed": SAMPLE_SEED,
        "states": list(config.STATES),
        "releases": {"res": {"release": RES_RELEASE, "upgrades": list(RES_UPGRADES),
                             "weather": config.EULP_RELEASES[RES_RELEASE]["weather"]},
                     "com": {"release": COM_RELEASE, "upgrades": list(COM_UPGRADES),
                             "weather": config.EULP_RELEASES[COM_RELEASE]["weather"]},
                     "partitioned": {"release": PARTITIONED_RELEASE, "state": PARTITIONED_STATE,
                                     "upgrades": list(COM_UPGRADES), "metadata_rows": partitioned}},
        "feeders": stats["feeders"],
        "generic_feeders": {"folder": "feeders", "feeders": generic_feeders},
        "smartds_feature_feeders": [smartds_features],
        "profiles": stats["profiles"],
        "buildings": {state: {"res": STATE_SAMPLES[state].n_res_buildings, "com": STATE_SAMPLES[state].n_com_buildings}
                      for state in config.STATES},
        "files": len(files) + 1,
        "bytes": sum(p.stat().st_size for p in files),
    }


#: what the workspace's copy of the upgrade unit-cost tables records of its origin (Workspace.upgrade_costs_dir)
UPGRADE_COSTS_ORIGIN = {
    "what": "NREL DISCO generic distribution upgrade unit-cost database (Generic_DISCO_cost_database_v2.xlsx, one "
            "CSV per sheet), copied as published",
    "source": "https://github.com/NREL/disco (disco/extensions/upgrade_simulation/upgrades/"
              "Generic_DISCO_cost_database_v2.xlsx), via ../shared/data/upgrade_costs",
    "licence": "BSD 3-Clause, Copyright (c) 2019 Alliance for Sustainable Energy, LLC",
    "notes": "costs in USD; each row includes labour and land; a transformer added in parallel also carries the "
             "fixed costs of misc.csv",
}


def copy_upgrade_costs(ws, source: Path | None = None) -> Path | None:
    """Copy NREL DISCO's unit-cost tables (``common.paths.UPGRADE_COST_FILES``), as published, from ``source``
    (default ``common.paths.SHARED_UPGRADE_COSTS``) into ``ws.upgrade_costs_dir`` with ``SOURCE.json`` (origin,
    licence, SHA-256 of each file); the folder is written beside and renamed into place. Without the source
    folder nothing is copied and None is returned (the sample itself does not need the tables; the upgrade
    step then refuses in one line)."""
    from common.io import sha256_file
    from common.paths import SHARED_UPGRADE_COSTS, UPGRADE_COST_FILES, UPGRADE_COSTS_SOURCE

    source = Path(source or SHARED_UPGRADE_COSTS)
    if not all((source / name).is_file() for name in UPGRADE_COST_FILES.values()):
        logger.info("no upgrade cost tables at %s: not copied (the upgrade step needs them)", source)
        return None
    target = ws.upgrade_costs_dir
    record = {**UPGRADE_COSTS_ORIGIN, "files": {name: sha256_file(source / name)
                                                 for name in sorted(UPGRADE_COST_FILES.values())}}
    current = target / UPGRADE_COSTS_SOURCE
    if current.is_file():
        try:
            if json.loads(current.read_text(encoding="utf-8")).get("files") == record["files"] and all(
                    sha256_file(target / n) == h for n, h in record["files"].items() if (target / n).is_file()) and all(
                    (target / n).is_file() for n in record["files"]):
                return target
        except (OSError, ValueError, AttributeError):
            pass
    ws.root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".upgrade-costs-", dir=ws.root))
    try:
        for name in record["files"]:
            shutil.copyfile(source / name, tmp / name)
        (tmp / UPGRADE_COSTS_SOURCE).write_text(dumps_json(record), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    logger.info("upgrade cost tables (NREL DISCO, BSD-3) copied from %s -> %s", source, target)
    return target


def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="build_sample.py")
    parser.add_argument("--force", action="store_true", help="rebuild even when a complete sample exists")
    cli.add_standard(parser)
    return parser


def built_version(manifest: Path) -> int | None:
    """The version recorded in an existing sample's manifest (None when unreadable)."""
    try:
        version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, int) else None


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    if ws.sample_manifest.is_file() and not args.force:
        built = built_version(ws.sample_manifest)
        if built == SAMPLE_VERSION:
            logger.info("sample already built: %s (use --force to rebuild)", ws.sample)
            copy_upgrade_costs(ws)
            return 0
        logger.warning("the sample in %s is version %s, this code builds version %d (its data changed): rebuilding it; "
                       "the phases after it redo what depends on it", ws.sample, built, SAMPLE_VERSION)
    ws.root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=".sample-build-", dir=ws.root))
    try:
        manifest = build_sample(tmp)
        (tmp / "sample_manifest.json").write_text(dumps_json(manifest))
        if ws.sample.exists():
            shutil.rmtree(ws.sample)
        tmp.rename(ws.sample)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    logger.info("sample built in %.1f s: %d files, %.1f MB -> %s", time.monotonic() - started, manifest["files"],
                manifest["bytes"] / 1e6, ws.sample)
    copy_upgrade_costs(ws)
    return 0


if __name__ == "__main__":
    sys.exit(main())
