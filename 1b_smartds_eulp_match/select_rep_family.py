"""Choose one EULP building per SMART-DS profile: the representative family, reproducibly.

Description
    For every SMART-DS profile of the state, picks one building among its cleaned candidates that
    are within tolerance, by the key (tolerance tier, building-type quota not yet reached, building
    not yet chosen for another profile, income-tier preference ``INCOME_PREFERENCE``, match score,
    a seeded tie-break). Building-type quotas (``BUILDING_TYPE_QUOTAS``: the largest share of the
    class's profiles one type may take) steer the family towards the stock's type mix without
    leaving a tier. Profiles are visited from the most constrained (fewest candidates) and in sorted
    order, with one numpy generator seeded from ``SELECT_SEED``: the same inputs always give the
    same family. Every profile gets a building or a recorded reason.

    A rule whose data are absent is skipped, never silently: without income tiers (the metadata
    had no ``in.area_median_income``) the income preference, without building types (no
    building-type column) the type quotas; a warning names the file and the column, and
    ``selection_report.csv`` records it.

Inputs (``<data>/1b_smartds_eulp_match/<STATE>/``)
    candidates_<cls>.parquet, candidates_clean_<cls>.parquet, match_report.csv,
    profile_monthly_stats.parquet

Outputs (same folder; read by phase 1c (id lists) and phase 2)
    <STATE>_final_residential.csv, <STATE>_final_commercial.csv
        state, class, release, subregion, shape, profile_id, bldg_id, Chosen_Parquet
        (<bldg_id>-0.parquet), score, tier, within_tolerance, building_type, income_tier,
        n_candidates, reason
    <STATE>_bldg_ids_res.txt, <STATE>_bldg_ids_com.txt   chosen ids, one per line, sorted
    unmatched_profiles.csv                                class, subregion, shape, reason
    selection_report.csv                                  class, rule (income_preference /
                                                          type_quotas), status (applied / skipped /
                                                          not applicable / no candidates), reason

Settings read
    common.config: BUILDING_TYPE_QUOTAS, INCOME_PREFERENCE, SELECT_SEED, MATCH

Usage
    python 1b_smartds_eulp_match/select_rep_family.py --state NC [--seed N] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from common import cli, config, smartds
from common.io import exclusive_step, read_csv, read_parquet, write_csv, write_text
from common.paths import Workspace

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name
MATCH_PRODUCER = "1b_smartds_eulp_match/match_smartds_parquets.py"
CLEAN_PRODUCER = "1b_smartds_eulp_match/clean_up_bldgs.py"
STATS_PRODUCER = "1b_smartds_eulp_match/review_parquet_matches.py"
CLEAN_COLUMNS = ("subregion", "shape", "rank", "bldg_id", "release", "score", "tier", "within_tolerance",
                 "building_type", "income_tier")
REPORT_COLUMNS = ["class", "rule", "status", "reason"]
#: the classes with income tiers (ResStock's household income; ComStock publishes none)
INCOME_CLASSES = ("res",)

FINAL_COLUMNS = ["state", "class", "release", "subregion", "shape", "profile_id", "bldg_id", "Chosen_Parquet",
                 "score", "tier", "within_tolerance", "building_type", "income_tier", "n_candidates", "reason"]


def type_quotas(cls: str, n_profiles: int) -> dict[str, int]:
    return {t: max(1, math.ceil(share * n_profiles)) for t, share in config.BUILDING_TYPE_QUOTAS[cls].items()}


def select_family(profiles: pd.DataFrame, clean: pd.DataFrame, cls: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(chosen rows, unmatched rows) for one class.

    ``profiles``: subregion, shape, reason_if_none (why a profile may have no candidate).
    ``clean``: the cleaned candidates of the class.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(config.CLASSES.index(cls),)))
    ok = clean[clean["within_tolerance"]].copy()
    n_ok = ok.groupby(["subregion", "shape"]).size()
    order = profiles.assign(n=[int(n_ok.get((s, p), 0)) for s, p in zip(profiles["subregion"], profiles["shape"])])
    order = order.sort_values(["n", "subregion", "shape"], kind="stable").reset_index(drop=True)
    quotas = type_quotas(cls, len(profiles))
    taken_by_type: dict[str, int] = {}
    used: set[int] = set()
    income_rank = {tier: i for i, tier in enumerate(config.INCOME_PREFERENCE)}
    groups = {key: g for key, g in ok.groupby(["subregion", "shape"], sort=True)}
    chosen, unmatched = [], []
    for _, prof in order.iterrows():
        key = (prof["subregion"], prof["shape"])
        cands = groups.get(key)
        if cands is None or cands.empty:
            unmatched.append({"class": cls, "subregion": key[0], "shape": key[1], "reason": prof["reason_if_none"]})
            continue
        cands = cands.sort_values(["rank", "bldg_id"]).copy()
        cands["quota_full"] = [taken_by_type.get(t, 0) >= quotas.get(t, len(profiles))
                               for t in cands["building_type"].fillna("")]
        cands["reused"] = cands["bldg_id"].isin(used)
        cands["income_rank"] = cands["income_tier"].map(income_rank).fillna(len(income_rank))
        cands["jitter"] = rng.random(len(cands))
        ranked = cands.sort_values(["tier", "quota_full", "reused", "income_rank", "score", "jitter"], kind="stable")
        pick = ranked.iloc[0]
        best_in_tier = cands[cands["tier"] == pick["tier"]].sort_values(["score", "bldg_id"]).iloc[0]
        if pick["reused"] and cands["reused"].all():
            reason = "every candidate within tolerance is already chosen for another profile: building reused"
        elif pick["reused"]:
            reason = (f"building reused: the unused candidates are all outside tier {pick['tier']:g}, "
                      "and a closer match is preferred over a distinct building")
        elif int(pick["bldg_id"]) != int(best_in_tier["bldg_id"]) and bool(best_in_tier["quota_full"]):
            reason = f"quota of {best_in_tier['building_type']} reached: best candidate of another type in the tier"
        elif int(pick["bldg_id"]) != int(best_in_tier["bldg_id"]):
            reason = f"preferred income tier {pick['income_tier']} within tier {pick['tier']:g}"
        else:
            reason = f"best candidate within tolerance {pick['tier']:g}"
        used.add(int(pick["bldg_id"]))
        btype = pick["building_type"] if isinstance(pick["building_type"], str) else ""
        taken_by_type[btype] = taken_by_type.get(btype, 0) + 1
        parsed = smartds.parse_shape(key[1])
        chosen.append({"class": cls, "release": pick["release"], "subregion": key[0], "shape": key[1],
                       "profile_id": parsed[1] if parsed else "", "bldg_id": int(pick["bldg_id"]),
                       "Chosen_Parquet": f"{int(pick['bldg_id'])}-0.parquet", "score": float(pick["score"]),
                       "tier": float(pick["tier"]), "within_tolerance": True, "building_type": btype,
                       "income_tier": pick["income_tier"], "n_candidates": int(len(cands)), "reason": reason})
    chosen_df = pd.DataFrame(chosen, columns=[c for c in FINAL_COLUMNS if c != "state"])
    chosen_df = chosen_df.sort_values(["subregion", "shape"]).reset_index(drop=True)
    return chosen_df, pd.DataFrame(unmatched, columns=["class", "subregion", "shape", "reason"])


def rule_report(cls: str, clean: pd.DataFrame, path: Path) -> list[dict]:
    """Whether the income preference and the type quotas can act on ``clean`` (read from ``path``)."""
    rows = []
    if clean.empty:
        return [{"class": cls, "rule": rule, "status": "no candidates", "reason": ""}
                for rule in ("income_preference", "type_quotas")]
    if cls not in INCOME_CLASSES:
        rows.append({"class": cls, "rule": "income_preference", "status": "not applicable",
                     "reason": f"the {cls} release has no income tiers"})
    elif "in.area_median_income" not in clean.columns:
        rows.append({"class": cls, "rule": "income_preference", "status": "skipped",
                     "reason": f"{path} has no column 'in.area_median_income' (absent from the EULP metadata: see "
                               "cleanup_report.csv): every income tier is unknown"})
    else:
        rows.append({"class": cls, "rule": "income_preference", "status": "applied", "reason": ""})
    types = clean["building_type"].fillna("").astype(str)
    if (types == "").all():
        rows.append({"class": cls, "rule": "type_quotas", "status": "skipped",
                     "reason": f"column 'building_type' of {path} is empty (the EULP metadata has no building-type "
                               "column: see match_report.csv): no quota applies"})
    else:
        rows.append({"class": cls, "rule": "type_quotas", "status": "applied", "reason": ""})
    return rows


def profiles_of_class(stats: pd.DataFrame, candidates: pd.DataFrame, report: pd.DataFrame, cls: str) -> pd.DataFrame:
    """Every profile of a class with the reason it would have no candidate."""
    keys = stats[stats["class"] == cls][["subregion", "shape"]].drop_duplicates().sort_values(["subregion", "shape"])
    failed = report[(report["class"] == cls) & (report["status"] != "ok")]
    tiers = config.MATCH["tolerance_tiers"][cls]
    if not failed.empty:
        default = f"class not matched: {failed['reason'].iloc[0]}"
    else:
        default = f"no candidate within the largest tolerance ({tiers[-1]:.0%} of its peaks)"
    reasons = []
    within = candidates[candidates["within_tolerance"]].groupby(["subregion", "shape"]).size() if not candidates.empty else {}
    for s, p in zip(keys["subregion"], keys["shape"]):
        if failed.empty and len(within) and within.get((s, p), 0) > 0:
            reasons.append("every candidate within tolerance was removed by clean_up_bldgs.py (vacant or unknown)")
        else:
            reasons.append(default)
    return keys.assign(reason_if_none=reasons).reset_index(drop=True)


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="select_rep_family.py")
    cli.add_state(parser)
    parser.add_argument("--seed", type=cli.nonnegative_int, default=config.SELECT_SEED,
                        help=f"seed of the tie-breaks (default {config.SELECT_SEED})")
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
    stats = read_parquet(ws.profile_stats(state), STATS_PRODUCER, required=("subregion", "shape", "class"))
    report = read_csv(ws.match_report(state), MATCH_PRODUCER, required=("class", "status", "reason"))
    # every input is read before the first output is written: a bad file leaves the previous outputs
    tables = {cls: (read_parquet(ws.candidates(state, cls), MATCH_PRODUCER,
                                 required=("subregion", "shape", "within_tolerance")),
                    read_parquet(ws.candidates_clean(state, cls), CLEAN_PRODUCER, required=CLEAN_COLUMNS))
              for cls in config.CLASSES}
    unmatched_all, rules = [], []
    for cls, (candidates, clean) in tables.items():
        checks = rule_report(cls, clean, ws.candidates_clean(state, cls))
        for row in checks:
            if row["status"] == "skipped":
                logger.warning("%s %s: %s skipped: %s", state, cls, row["rule"], row["reason"])
        rules += checks
        profiles = profiles_of_class(stats, candidates, report, cls)
        chosen, unmatched = select_family(profiles, clean, cls, args.seed)
        chosen.insert(0, "state", state)
        write_csv(ws.final_selection(state, cls), chosen[FINAL_COLUMNS])
        ids = sorted(set(chosen["bldg_id"].astype(int)))
        write_text(ws.bldg_id_list(state, cls), "".join(f"{i}\n" for i in ids))
        unmatched_all.append(unmatched)
        for _, row in unmatched.iterrows():
            logger.warning("%s %s: no building: %s", row["subregion"], row["shape"], row["reason"])
        logger.info("%s %s: %d of %d profiles matched to %d buildings -> %s", state, cls, len(chosen), len(profiles),
                    len(ids), ws.final_selection(state, cls))
    write_csv(ws.unmatched(state), pd.concat(unmatched_all, ignore_index=True))
    write_csv(ws.selection_report(state), pd.DataFrame(rules, columns=REPORT_COLUMNS))
    cli.record(__file__, ws.match_dir(state), args, quotas=config.BUILDING_TYPE_QUOTAS, income_preference=list(config.INCOME_PREFERENCE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
