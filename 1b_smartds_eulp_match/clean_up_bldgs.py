"""Clean the candidate tables: vacant units out, income tiers in, and the buildings' source map.

Description
    Joins each candidate building to its EULP metadata; removes vacant dwelling units
    (``in.vacancy_status == "Vacant"``: their load is not a customer's) and buildings the metadata
    does not know, recording each removal; adds the income tier from ``in.area_median_income``
    (percent of area median income: 0-80 % low, 80-120 % mid, above high; ``common.config
    .INCOME_TIERS``); and writes the source map: for every remaining building, the bucket key and
    local path of its 15-min file for the baseline and for every upgrade the heat-pump variants use.

    Residential metadata without ``in.vacancy_status`` or ``in.area_median_income`` is not silently used: the
    check is skipped with a warning naming the file and the column, and ``cleanup_report.csv``
    records it (vacant units then stay in; every income tier is "unknown").

Inputs
    <data>/1b_smartds_eulp_match/<STATE>/candidates_<cls>.parquet     (match_smartds_parquets.py)
    <eulp-root>/<release>/metadata/baseline.parquet                   (phase 1c)

Outputs (``<data>/1b_smartds_eulp_match/<STATE>/``; read by select_rep_family.py and phase 2)
    candidates_clean_<cls>.parquet   the candidates plus income_tier, in.area_median_income,
                                     in.vacancy_status, in.geometry_building_type_acs (res)
    cleanup_removed.csv              class, subregion, shape, bldg_id, reason
    cleanup_report.csv               class, check (vacancy / income_tier), status (applied /
                                     skipped / no candidates / not applicable), column, reason
    source_map.csv                   class, release, bldg_id, upgrade, key, local_path

Settings read
    common.config: EULP_RELEASE, EULP_RELEASES, ALLOW_MIXED_WEATHER, HEAT_PUMP_VARIANT_RULES, INCOME_TIERS

Usage
    python 1b_smartds_eulp_match/clean_up_bldgs.py --state NC [--eulp-root DIR] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from common import cli, config, eulp
from common.io import exclusive_step, InputError, read_parquet, write_csv, write_parquet
from common.paths import Workspace

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name
METADATA_PRODUCER = "1c_eulp_downloads/download_parquets_homes.py (or _commercial.py) --metadata-only"
CANDIDATES_PRODUCER = "1b_smartds_eulp_match/match_smartds_parquets.py"
META_COLUMNS = ("in.area_median_income", "in.vacancy_status", "in.geometry_building_type_acs", "in.county")
#: the metadata column each check of the clean-up needs, and what happens without it
CHECKS = {"vacancy": ("in.vacancy_status", "vacant units not removed"),
          "income_tier": ("in.area_median_income", "every income tier is 'unknown'")}
#: the classes each check applies to: ResStock describes dwelling units (vacancy, household
#: income); ComStock publishes neither for commercial buildings
CHECK_CLASSES = {"vacancy": ("res",), "income_tier": ("res",)}
REMOVED_COLUMNS = ["class", "subregion", "shape", "bldg_id", "reason"]
REPORT_COLUMNS = ["class", "check", "status", "column", "reason"]


def income_tier(ami: object) -> str:
    """``"80-100%"`` -> "mid": the tier holding the bin's lower bound; unknown text -> "unknown"."""
    if not isinstance(ami, str):
        return "unknown"
    match = re.match(r"^\s*<?\s*(\d+(?:\.\d+)?)", ami)
    if not match:
        return "unknown"
    low = float(match.group(1))
    for tier, (lo, hi) in config.INCOME_TIERS.items():
        if lo <= low < hi:
            return tier
    return "unknown"


def clean_candidates(candidates: pd.DataFrame, meta: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept candidates with metadata columns, removed rows with reasons)."""
    columns = ["bldg_id", *[c for c in META_COLUMNS if c in meta.columns]]
    merged = candidates.merge(meta[columns], on="bldg_id", how="left", indicator=True)
    unknown = merged["_merge"] == "left_only"
    vacant = merged.get("in.vacancy_status", pd.Series("", index=merged.index)).fillna("").eq("Vacant")
    reason = pd.Series("", index=merged.index)
    reason[vacant] = "vacant unit (in.vacancy_status)"
    reason[unknown] = "building not in the release metadata"
    removed = merged.loc[reason != "", ["class", "subregion", "shape", "bldg_id"]].assign(reason=reason[reason != ""])
    kept = merged[reason == ""].drop(columns="_merge").copy()
    kept["income_tier"] = kept["in.area_median_income"].map(income_tier) if "in.area_median_income" in kept else "unknown"
    return kept.reset_index(drop=True), removed.reset_index(drop=True)


def check_report(cls: str, meta: pd.DataFrame | None, path: Path) -> list[dict]:
    """One row per check: applied, or skipped with the reason (the column absent from ``path``)."""
    rows = []
    for check, (column, consequence) in CHECKS.items():
        if cls not in CHECK_CLASSES[check]:
            rows.append({"class": cls, "check": check, "status": "not applicable", "column": column,
                         "reason": f"the {cls} release describes no {check.replace('_', ' ')}"})
        elif meta is None:
            rows.append({"class": cls, "check": check, "status": "no candidates", "column": column, "reason": ""})
        elif column in meta.columns:
            rows.append({"class": cls, "check": check, "status": "applied", "column": column, "reason": ""})
        else:
            rows.append({"class": cls, "check": check, "status": "skipped", "column": column,
                         "reason": f"column {column!r} absent from {path}: {consequence}"})
    return rows


def source_map(kept: pd.DataFrame, cls: str, release: str, state: str, eulp_root: Path,
               ws: Workspace | None = None) -> pd.DataFrame:
    """Where each chosen building's files live: bucket key and local path (relative to the workspace
    ``ws`` when the EULP tree lies inside it)."""
    rows = []
    layout = eulp.release_layout(release)
    upgrades = [u for u in eulp.needed_upgrades(cls) if u in layout["upgrades"]]
    buildings = kept.drop_duplicates("bldg_id").sort_values("bldg_id")
    for _, b in buildings.iterrows():
        county = b.get("in.county") if isinstance(b.get("in.county"), str) else None
        for u in upgrades:
            rel = eulp.timeseries_relpath(release, u, state, int(b["bldg_id"]), county)
            rows.append({"class": cls, "release": release, "bldg_id": int(b["bldg_id"]), "upgrade": u,
                         "key": f"{config.EULP_PREFIX}/{release}/{rel}",
                         "local_path": ws.portable(Path(eulp_root) / release / rel) if ws is not None
                         else str(Path(eulp_root) / release / rel)})
    return pd.DataFrame(rows, columns=["class", "release", "bldg_id", "upgrade", "key", "local_path"])


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="clean_up_bldgs.py")
    cli.add_state(parser)
    cli.add_eulp_root(parser)
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
    eulp_root = cli.eulp_root(args, ws)
    # residential and commercial loads are summed on a feeder: one weather year (common.eulp)
    try:
        eulp.check_one_weather_year(config.EULP_RELEASE[state].values(), f"common.config.EULP_RELEASE[{state!r}]")
    except eulp.EULPError as exc:
        raise cli.UserError(str(exc)) from None
    # every input is read before the first output is written: a bad file leaves the previous outputs
    loaded = {}
    for cls in config.CLASSES:
        release = config.EULP_RELEASE[state][cls]
        candidates = read_parquet(ws.candidates(state, cls), CANDIDATES_PRODUCER,
                                  required=("class", "subregion", "shape", "bldg_id"))
        path, meta = Path(eulp_root) / release, None
        if not candidates.empty:
            try:
                meta, path = eulp.state_buildings(eulp_root, release, state)
            except eulp.EULPError as exc:
                raise InputError(str(exc)) from None
            if "bldg_id" not in meta.columns:
                raise InputError(f"{path}: column 'bldg_id' missing: run {METADATA_PRODUCER} again")
        loaded[cls] = (release, candidates, path, meta)
    removed_all, maps, report = [], [], []
    for cls, (release, candidates, path, meta) in loaded.items():
        checks = check_report(cls, meta, path)
        report += checks
        for row in checks:
            if row["status"] == "skipped":
                logger.warning("%s %s: %s check skipped: %s", state, cls, row["check"], row["reason"])
        if meta is None:
            write_parquet(ws.candidates_clean(state, cls), candidates.assign(income_tier=pd.Series(dtype=str)))
            continue
        kept, removed = clean_candidates(candidates, meta)
        write_parquet(ws.candidates_clean(state, cls), kept)
        removed_all.append(removed)
        maps.append(source_map(kept, cls, release, state, eulp_root, ws))
        logger.info("%s %s: %d candidate rows kept, %d removed (%d vacant), %d buildings", state, cls, len(kept),
                    len(removed), int(removed["reason"].str.startswith("vacant").sum()), kept["bldg_id"].nunique())
    removed = pd.concat(removed_all, ignore_index=True) if removed_all else pd.DataFrame(columns=REMOVED_COLUMNS)
    write_csv(ws.cleanup_removed(state), removed)
    write_csv(ws.cleanup_report(state), pd.DataFrame(report, columns=REPORT_COLUMNS))
    write_csv(ws.source_map(state), pd.concat(maps, ignore_index=True) if maps else pd.DataFrame())
    cli.record(__file__, ws.match_dir(state), args, income_tiers={k: [lo, hi if hi != float("inf") else None]
                                                            for k, (lo, hi) in config.INCOME_TIERS.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
