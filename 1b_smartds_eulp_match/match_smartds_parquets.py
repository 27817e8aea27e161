"""Candidate EULP buildings for every SMART-DS profile, scored on peaks and shape (vectorised).

Description
    For each SMART-DS profile of the state (statistics from ``review_parquet_matches.py``) and each
    of the state's EULP buildings of the same class (residential profiles against the ResStock
    release, commercial ones against ComStock; ``common.config.EULP_RELEASE``), computes in numpy
    over the whole profile x building grid:

    * peak error: the mean |log ratio| of the profile's and the building's peaks over the features
      both sides have: residential the seasonal peaks (``out.electricity.summer.peak.kw`` and
      ``...winter.peak.kw`` against the profile's peak over ``SEASON_MONTHS``), commercial the 12
      monthly peaks (``out.qoi.maximum_daily_peak_<mon>..kw``);
    * tolerance tier: the smallest relative tolerance of ``MATCH["tolerance_tiers"]`` that every
      peak error fits in (kept as a recorded score; a building beyond the last tier is recorded as
      out of tolerance, never silently taken);
    * shape distance: residential the winter/summer peak ratio and the load factor where both sides
      have them, commercial the normalised 12-month peak profile;
    * building type: a penalty where both sides name a type and they differ (SMART-DS
      ``load_data`` ``building`` column against the release's building-type column). Metadata
      without that column is matched without the penalty, with a warning naming the file and the
      column, and the match report's ``skipped`` says so.

    ``score = peak_weight * peak error + shape_weight * shape distance + type_penalty * mismatch``;
    the best ``n_candidates`` per profile are kept, ranked by (tier, score, bldg_id). Profiles
    shorter than a year use only the seasons or months they cover (``features_used`` says which).

Inputs
    <data>/1b_smartds_eulp_match/<STATE>/profile_monthly_stats.parquet   (review_parquet_matches.py)
    <eulp-root>/<release>/metadata/baseline.parquet                       (phase 1c, default
                                                                          <data>/1c_eulp_downloads)

Outputs (``<data>/1b_smartds_eulp_match/<STATE>/``; read by clean_up_bldgs.py)
    candidates_res.parquet, candidates_com.parquet   state, class, release, subregion, shape, rank,
        bldg_id, score, peak_error, max_rel_error, tier, within_tolerance, shape_distance,
        type_match, features_used, building_type, profile_building_type
    match_report.csv   class, status, reason, skipped (what matching could not use, and why),
                       n_profiles, n_buildings

Settings read
    common.config: EULP_RELEASE, EULP_RELEASES, ALLOW_MIXED_WEATHER, SEASON_MONTHS, MATCH

Usage
    python 1b_smartds_eulp_match/match_smartds_parquets.py --state NC [--eulp-root DIR] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from common import cli, config, eulp
from common.io import exclusive_step, InputError, read_parquet, write_csv, write_parquet
from common.paths import Workspace

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name
METADATA_PRODUCER = "1c_eulp_downloads/download_parquets_homes.py (or _commercial.py) --metadata-only"
STATS_PRODUCER = "1b_smartds_eulp_match/review_parquet_matches.py"
STATS_COLUMNS = ("subregion", "shape", "class", "month", "mean_kw", "peak_kw", "n_points", "profile_points",
                 "building_type")
REPORT_COLUMNS = ["class", "status", "reason", "skipped", "n_profiles", "n_buildings"]

MONTH_ABBR = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
RES_PEAK_COLUMNS = ("out.electricity.summer.peak.kw", "out.electricity.winter.peak.kw")
RES_ENERGY_COLUMN = "out.electricity.total.energy_consumption.kwh"
COM_PEAK_COLUMNS = tuple(f"out.qoi.maximum_daily_peak_{m}..kw" for m in MONTH_ABBR)
CANDIDATE_COLUMNS = ["state", "class", "release", "subregion", "shape", "rank", "bldg_id", "score", "peak_error",
                     "max_rel_error", "tier", "within_tolerance", "shape_distance", "type_match", "features_used",
                     "building_type", "profile_building_type"]


@dataclass
class Features:
    """Feature arrays of one side (profiles or buildings): NaN where a side lacks a feature."""

    peaks: np.ndarray        # (n, F) peak features [kW]
    load_factor: np.ndarray  # (n,) annual mean / annual peak, NaN when unknown
    names: tuple[str, ...]   # feature names


# ------------------------------------------------------------------------------------------- features
def profile_features(stats: pd.DataFrame, cls: str) -> tuple[pd.DataFrame, Features]:
    """Per profile (subregion, shape): peak features and load factor from monthly statistics."""
    keys = stats[["subregion", "shape", "building_type"]].drop_duplicates(["subregion", "shape"])
    keys = keys.sort_values(["subregion", "shape"]).reset_index(drop=True)
    peak = stats.pivot_table(index=["subregion", "shape"], columns="month", values="peak_kw", aggfunc="max")
    peak = peak.reindex(columns=range(1, 13)).reindex(pd.MultiIndex.from_frame(keys[["subregion", "shape"]]))
    if cls == "res":
        names = ("summer", "winter")
        cols = [peak[list(config.SEASON_MONTHS[s])].max(axis=1, skipna=True) for s in names]
        peaks = np.column_stack(cols).astype(float)
    else:
        names = MONTH_ABBR
        peaks = peak.to_numpy(dtype=float)
    # load factor only when the profile covers the whole year
    full = stats.groupby(["subregion", "shape"])["profile_points"].max() >= 365 * 96
    mean = (stats.assign(e=stats["mean_kw"] * stats["n_points"]).groupby(["subregion", "shape"])
            .apply(lambda g: g["e"].sum() / g["n_points"].sum(), include_groups=False))
    annual_peak = stats.groupby(["subregion", "shape"])["peak_kw"].max()
    lf = (mean / annual_peak).where(full)
    lf = lf.reindex(pd.MultiIndex.from_frame(keys[["subregion", "shape"]])).to_numpy(dtype=float)
    return keys, Features(peaks=peaks, load_factor=lf, names=names)


def building_features(meta: pd.DataFrame, cls: str) -> Features:
    if cls == "res":
        peaks = meta[list(RES_PEAK_COLUMNS)].to_numpy(dtype=float)
        if RES_ENERGY_COLUMN in meta.columns:
            mean_kw = meta[RES_ENERGY_COLUMN].to_numpy(dtype=float) / 8760.0
            lf = mean_kw / np.nanmax(peaks, axis=1)
        else:
            lf = np.full(len(meta), np.nan)
        return Features(peaks=peaks, load_factor=lf, names=("summer", "winter"))
    peaks = meta[list(COM_PEAK_COLUMNS)].to_numpy(dtype=float)
    return Features(peaks=peaks, load_factor=np.full(len(meta), np.nan), names=MONTH_ABBR)


# ------------------------------------------------------------------------------------------- scoring
def _log_peaks(peaks: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.where(peaks > 0, peaks, np.nan)).astype(np.float32)


def score_grid(p: Features, b: Features, cls: str, p_types: np.ndarray, b_types: np.ndarray,
               tiers: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Scores of a block of profiles (rows) against all buildings (columns), in float32 numpy."""
    d = _log_peaks(p.peaks)[:, None, :] - _log_peaks(b.peaks)[None, :, :]   # log(profile / building)
    valid = ~np.isnan(d)
    n_valid = valid.sum(axis=2)
    has = n_valid > 0
    log_err = np.abs(np.where(valid, d, 0.0)).sum(axis=2) / np.maximum(n_valid, 1)
    # relative error of the building's peak against the profile's: |b/p - 1| = |exp(-d) - 1|,
    # largest at the extreme d of each pair
    d_max = np.where(valid, d, -np.inf).max(axis=2)
    d_min = np.where(valid, d, np.inf).min(axis=2)
    with np.errstate(over="ignore", invalid="ignore"):
        max_rel = np.where(has, np.maximum(1.0 - np.exp(-d_max), np.exp(-d_min) - 1.0), np.inf)
    tier_edges = np.asarray(tiers)
    tier_index = np.searchsorted(tier_edges, max_rel - 1e-9, side="left")
    within = (tier_index < len(tier_edges)) & has
    tier = np.where(within, tier_edges[np.minimum(tier_index, len(tier_edges) - 1)], np.inf)

    if cls == "res":
        # winter/summer peak ratio (log difference of the two seasonal errors) and load factor
        both = valid[..., 0] & valid[..., 1]
        parts = np.where(both, np.abs(d[..., 1] - d[..., 0]), 0.0)
        count = both.astype(np.float32)
        lf_ok = np.isfinite(p.load_factor)[:, None] & np.isfinite(b.load_factor)[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            lf = np.abs(np.log(p.load_factor[:, None] / b.load_factor[None, :]))
        parts = parts + np.where(lf_ok, lf, 0.0)
        count = count + lf_ok
        shape = np.where(count > 0, parts / np.maximum(count, 1), 0.0)
    else:
        # normalised monthly peak profile over the months the profile covers (grouped by month set)
        shape = np.zeros(log_err.shape, dtype=np.float32)
        masks = np.isfinite(p.peaks) & (p.peaks > 0)
        for mask in np.unique(masks, axis=0):
            rows = np.nonzero((masks == mask).all(axis=1))[0]
            if mask.sum() < 3:
                continue
            pm = p.peaks[np.ix_(rows, mask)]
            bm = b.peaks[:, mask]
            pn = (pm / pm.mean(axis=1, keepdims=True)).astype(np.float32)
            with np.errstate(divide="ignore", invalid="ignore"):
                bn = (bm / bm.mean(axis=1, keepdims=True)).astype(np.float32)
            diff = np.abs(pn[:, None, :] - bn[None, :, :])
            shape[rows] = np.where(np.isnan(diff), 0.0, diff).mean(axis=2)

    known = (p_types[:, None] != "") & (b_types[None, :] != "")
    mismatch = known & (p_types[:, None] != b_types[None, :])
    score = (config.MATCH["peak_weight"] * log_err + config.MATCH["shape_weight"] * shape
             + config.MATCH["type_penalty"] * mismatch)
    score = np.where(has, score, np.inf)
    return {"score": score, "peak_error": log_err, "max_rel_error": max_rel, "tier": tier, "within": within,
            "tier_index": tier_index, "shape": shape, "type_match": ~mismatch, "type_known": known}


def match_class(keys: pd.DataFrame, p: Features, meta: pd.DataFrame, cls: str, n_keep: int,
                block: int = 64) -> pd.DataFrame:
    """The best ``n_keep`` candidates of every profile, ranked by (tier, score, bldg_id)."""
    b = building_features(meta, cls)
    b_types = meta["_building_type"].fillna("").astype(str).to_numpy()
    p_types = keys["building_type"].fillna("").astype(str).to_numpy()
    bldg = meta["bldg_id"].to_numpy()
    tiers = tuple(config.MATCH["tolerance_tiers"][cls])
    k = min(n_keep, len(bldg))
    picked: dict[str, list[np.ndarray]] = {name: [] for name in ("row", "order")}
    grids: dict[str, list[np.ndarray]] = {name: [] for name in ("score", "peak_error", "max_rel_error", "tier",
                                                                   "within", "shape", "type_match", "type_known")}
    for start in range(0, len(keys), block):
        stop = min(start + block, len(keys))
        sub = Features(peaks=p.peaks[start:stop], load_factor=p.load_factor[start:stop], names=p.names)
        grid = score_grid(sub, b, cls, p_types[start:stop], b_types, tiers)
        # the k best of each row by (tier, score): partition on a combined key, then sort those k
        combined = grid["tier_index"] * 1e3 + np.minimum(grid["score"], 999.0)
        part = (np.argpartition(combined, k - 1, axis=1)[:, :k] if k < len(bldg)
                else np.tile(np.arange(k), (stop - start, 1)))
        for r in range(stop - start):
            idx = part[r]
            order = idx[np.lexsort((bldg[idx], grid["score"][r, idx], grid["tier_index"][r, idx]))]
            picked["row"].append(np.full(k, start + r))
            picked["order"].append(order)
            for name in grids:
                grids[name].append(grid[name if name != "within" else "within"][r, order])
    if not picked["row"]:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    rows = np.concatenate(picked["row"])
    order = np.concatenate(picked["order"])
    col = {name: np.concatenate(values) for name, values in grids.items()}
    used = [",".join(n for n, ok in zip(p.names, np.isfinite(row)) if ok) or "none" for row in p.peaks]
    return pd.DataFrame({
        "subregion": keys["subregion"].to_numpy()[rows], "shape": keys["shape"].to_numpy()[rows],
        "rank": np.tile(np.arange(1, k + 1), len(keys)), "bldg_id": bldg[order],
        "score": col["score"].astype(float), "peak_error": col["peak_error"].astype(float),
        "max_rel_error": col["max_rel_error"].astype(float), "tier": col["tier"].astype(float),
        "within_tolerance": col["within"], "shape_distance": col["shape"].astype(float),
        "type_match": pd.array(np.where(col["type_known"], col["type_match"], None), dtype="boolean"),
        "features_used": np.asarray(used, dtype=object)[rows],
        "building_type": b_types[order], "profile_building_type": p_types[rows],
    })


def load_class_metadata(eulp_root: Path, release: str, state: str, cls: str) -> pd.DataFrame:
    """The state's buildings of a release with the columns matching needs.

    A missing file or a missing needed column is an EULPError (the class is recorded as failed);
    an empty, truncated or corrupt file is an InputError (the run stops with one line). Without the
    release's building-type column, ``_building_type`` is empty and ``meta.attrs["skipped"]`` says
    so (the caller warns and records it).
    """
    type_col = eulp.building_type_column(release)
    needed = ["bldg_id", "in.state", *(RES_PEAK_COLUMNS if cls == "res" else COM_PEAK_COLUMNS)]
    absent = eulp.metadata_missing(eulp_root, release, state)
    if absent is not None:
        raise eulp.EULPError(f"EULP metadata {absent} not found: run {METADATA_PRODUCER} first")
    try:
        meta, path = eulp.state_buildings(eulp_root, release, state)
    except eulp.EULPFileError as exc:  # empty, truncated, not parquet: the run stops
        raise InputError(str(exc)) from None
    missing = [c for c in needed if c not in meta.columns]
    if missing:
        raise eulp.EULPError(f"{path}: metadata lacks column {missing[0]!r}, needed to match {cls} profiles")
    meta = meta[meta["in.state"] == state].copy()
    if meta.empty:
        raise eulp.EULPError(f"{path}: no building of state {state} (column in.state)")
    skipped = ""
    if type_col in meta.columns:
        meta["_building_type"] = meta[type_col]
    else:
        meta["_building_type"] = None
        skipped = f"building-type penalty: column {type_col!r} absent from {path}"
    meta = meta.sort_values("bldg_id").reset_index(drop=True)
    meta.attrs["skipped"] = skipped
    return meta


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="match_smartds_parquets.py")
    cli.add_state(parser)
    cli.add_eulp_root(parser)
    parser.add_argument("--n-candidates", type=cli.positive_int, default=config.MATCH["n_candidates"],
                        help=f"candidates kept per profile (default {config.MATCH['n_candidates']})")
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
    stats = read_parquet(ws.profile_stats(state), STATS_PRODUCER, required=STATS_COLUMNS)
    # every input is read before the first output is written: a bad file leaves the previous outputs
    metas: dict[str, pd.DataFrame | eulp.EULPError] = {}
    for cls in config.CLASSES:
        if (stats["class"] == cls).any():
            try:
                metas[cls] = load_class_metadata(eulp_root, config.EULP_RELEASE[state][cls], state, cls)
            except eulp.EULPError as exc:
                metas[cls] = exc
    report, failed = [], False
    for cls in config.CLASSES:
        release = config.EULP_RELEASE[state][cls]
        cls_stats = stats[stats["class"] == cls]
        n_profiles = cls_stats.groupby(["subregion", "shape"]).ngroups
        if n_profiles == 0:
            write_parquet(ws.candidates(state, cls), pd.DataFrame(columns=CANDIDATE_COLUMNS))
            report.append({"class": cls, "status": "ok", "reason": "no profile of this class", "skipped": "",
                           "n_profiles": 0, "n_buildings": 0})
            continue
        meta = metas[cls]
        if isinstance(meta, eulp.EULPError):
            logger.error("%s profiles of %s not matched: %s", cls, state, meta)
            report.append({"class": cls, "status": "failed", "reason": str(meta), "skipped": "",
                           "n_profiles": n_profiles, "n_buildings": 0})
            write_parquet(ws.candidates(state, cls), pd.DataFrame(columns=CANDIDATE_COLUMNS))
            failed = True
            continue
        skipped = meta.attrs.get("skipped", "")
        if skipped:
            logger.warning("%s %s matched without the %s", state, cls, skipped)
        keys, features = profile_features(cls_stats, cls)
        candidates = match_class(keys, features, meta, cls, args.n_candidates)
        candidates.insert(0, "state", state)
        candidates.insert(1, "class", cls)
        candidates.insert(2, "release", release)
        candidates = candidates[CANDIDATE_COLUMNS]
        write_parquet(ws.candidates(state, cls), candidates)
        best = candidates[candidates["rank"] == 1]
        logger.info("%s %s: %d profiles x %d buildings; best candidate within tolerance for %d, median tier %.2f",
                    state, cls, n_profiles, len(meta), int(best["within_tolerance"].sum()),
                    float(np.median(best["tier"].replace(np.inf, np.nan).dropna())) if best["within_tolerance"].any() else float("nan"))
        report.append({"class": cls, "status": "ok", "reason": "", "skipped": skipped, "n_profiles": n_profiles,
                       "n_buildings": len(meta)})
    write_csv(ws.match_report(state), pd.DataFrame(report, columns=REPORT_COLUMNS))
    cli.record(__file__, ws.match_dir(state), args, match=config.MATCH, releases=config.EULP_RELEASE[state], eulp_root=str(eulp_root))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
