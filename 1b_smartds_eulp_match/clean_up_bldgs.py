"""Clean the candidate tables: vacant units out, income tiers in, and the buildings' source map.

Description
    Joins each candidate building to its EULP metadata; removes vacant dwelling units
    (``in.vacancy_status == "Vacant"``: their load is not a customer's) and buildings the metadata
    does not know, recording each removal; adds the income tier from ``in.area_median_income``
    (percent of area median income: 0-80 % low, 80-120 % mid, above high; ``common.config
    .INCOME_TIERS``); and writes the source map: for every remaining building, the bucket key and
    local path of its 15-min file for the baseline and for every upgrade the heat-pump variants use.

Inputs
    <data>/1b_smartds_eulp_match/<STATE>/candidates_<cls>.parquet     (match_smartds_parquets.py)
    <eulp-root>/<release>/metadata/baseline.parquet                   (phase 1c)

Outputs (``<data>/1b_smartds_eulp_match/<STATE>/``; read by select_rep_family.py and phase 2)
    candidates_clean_<cls>.parquet   the candidates plus income_tier, in.area_median_income,
                                     in.vacancy_status, in.geometry_building_type_acs (res)
    cleanup_removed.csv              class, subregion, shape, bldg_id, reason
    source_map.csv                   class, release, bldg_id, upgrade, key, local_path

Settings read
    common.config: EULP_RELEASE, EULP_RELEASES, HEAT_PUMP_VARIANT_RULES, INCOME_TIERS

Usage
    python 1b_smartds_eulp_match/clean_up_bldgs.py --state NC [--eulp-root DIR] [--data-dir DIR]
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from common import cli, config, eulp
from common.io import write_csv, write_parquet

logger = logging.getLogger(__name__)

META_COLUMNS = ("in.area_median_income", "in.vacancy_status", "in.geometry_building_type_acs", "in.county")


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


def source_map(kept: pd.DataFrame, cls: str, release: str, state: str, eulp_root: Path) -> pd.DataFrame:
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
                         "local_path": str(Path(eulp_root) / release / rel)})
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
    state = args.state
    eulp_root = cli.eulp_root(args, ws)
    removed_all, maps = [], []
    for cls in config.CLASSES:
        release = config.EULP_RELEASE[state][cls]
        candidates = pd.read_parquet(cli.require(ws.candidates(state, cls),
                                                 "1b_smartds_eulp_match/match_smartds_parquets.py"))
        if candidates.empty:
            write_parquet(ws.candidates_clean(state, cls), candidates.assign(income_tier=pd.Series(dtype=str)))
            continue
        try:
            meta = eulp.read_metadata(Path(eulp_root) / release / eulp.metadata_relpath(release, 0))
        except eulp.EULPError as exc:
            raise cli.UserError(str(exc)) from None
        kept, removed = clean_candidates(candidates, meta)
        write_parquet(ws.candidates_clean(state, cls), kept)
        removed_all.append(removed)
        maps.append(source_map(kept, cls, release, state, eulp_root))
        logger.info("%s %s: %d candidate rows kept, %d removed (%d vacant), %d buildings", state, cls, len(kept),
                    len(removed), int(removed["reason"].str.startswith("vacant").sum()), kept["bldg_id"].nunique())
    removed = pd.concat(removed_all, ignore_index=True) if removed_all else pd.DataFrame(
        columns=["class", "subregion", "shape", "bldg_id", "reason"])
    write_csv(ws.match_dir(state) / "cleanup_removed.csv", removed)
    write_csv(ws.source_map(state), pd.concat(maps, ignore_index=True) if maps else pd.DataFrame())
    cli.record(__file__, ws.match_dir(state), args, income_tiers={k: [lo, hi if hi != float("inf") else None]
                                                            for k, (lo, hi) in config.INCOME_TIERS.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
