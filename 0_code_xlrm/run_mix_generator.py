"""Generate the study's designs of experiments (LHS and Sobol) over EV, PV, storage and heat pumps.

Description
    Draws ``--n-cases`` points of the 7-dimensional unit cube with a Latin hypercube
    (``scipy.stats.qmc.LatinHypercube``) and with a scrambled Sobol sequence (``qmc.Sobol``, drawn
    by ``random_base2``: the count is rounded up to a power of two, never truncated), maps them to
    the study inputs of ``common.doe.PARAMETERS`` (heat-pump shares as a uniform point on the
    simplex from two cube dimensions). Seeds belong to placement replicates, not cases (common
    random numbers, ``common.doe``): every case of replicate r carries the replicate's seeds per
    purpose from ``numpy.random.SeedSequence``, and ``--replicates R`` repeats each design point
    with R independent placements. Case "0" is the fixed reference case of ``common.config``.
    The Latin hypercube is drawn with ``optimization="random-cd"`` (strata kept, columns permuted
    to lower the centred discrepancy). The comparison tables also hold the shares' independent
    coordinates ``common.doe.FACTORS`` (``hp_adoption`` = 1 - baseline, ``hp_dm_fraction`` =
    dm / (dm + un), empty for the reference case, which has no heat pump), and the summary the
    largest |correlation| between two columns of each design's unit cube (Pearson and Spearman,
    with the pair): a design whose columns correlate confounds their effects.

    Layouts (``--layout``, ``common.doe`` "layouts"). ``joint`` (the default, the design above): one
    sample over every dimension, uncertainties X and levers L together. ``cross``: ``--scenarios S``
    scenarios drawn with the design's sampler over the X dimensions only (their roles in
    ``common.doe.PARAMETERS`` / ``FACTORS``), crossed with P policies over the L dimensions: the named
    policies of ``common.config.POLICIES`` (each with its reason), or ``--policies N`` drawn by a Latin
    hypercube over the L dimensions (the same N policies in every design). Design point
    ``(s - 1) P + p`` is scenario s under policy p, and every case carries ``scenario`` (1..S),
    ``policy`` (1..P) and ``policy_name``; case "0" stays the reference case, with scenario 0, policy 0
    and policy_name "reference case" (it belongs to neither). A scenario's X values are the same under
    every policy and every case of a placement replicate has the replicate's seeds, so two policies'
    instances of one scenario differ only in what the policies set. The confounding check applies to
    each sub-design: the scenarios' X columns and the sampled policies' L columns (named policies are
    chosen, not sampled); the summary's discrepancy is the scenarios'.

Inputs
    none (settings only)

Outputs (under ``<data>/0_code_xlrm/``, read by phase 6 and phase 7)
    mixes_lhs.json, mixes_sobol.json   cases keyed "0".."N": shares{baseline,dm,un}, ev_perc,
                                       ev_lvl2_perc, ev_split{controlled,uncontrolled},
                                       storage_perc_3ph, pv_perc_3ph, heating_seed, ev_seed,
                                       ev_session_seed, storage_seed, pv_seed, disjoint_sets,
                                       design_point (1..n; 0 the reference case),
                                       placement_replicate (0..R-1), unit_cube (the point's cube
                                       coordinates; null for case 0; a named policy's lever outside the
                                       design bounds lies outside [0, 1]); case = 1 + (point - 1) R + replicate;
                                       cross layout also scenario, policy, policy_name (values rounded
                                       to 12 decimals)
    mixes_compare_long.csv             design, case, design_point, placement_replicate, (cross layout:
                                       scenario, policy), parameter,
                                       value, unit, role (the parameters of
                                       common.doe.PARAMETERS, then the FACTORS hp_adoption,
                                       hp_dm_fraction; hp_dm_fraction of case 0 empty)
    lhs_vs_sobol_summary.csv           design, parameter, n, mean, std, min, max, discrepancy,
                                       max_abs_corr, max_abs_corr_pair, max_abs_rank_corr,
                                       max_abs_rank_corr_pair (per design: largest |Pearson| and
                                       |Spearman| correlation between two unit-cube columns, and which),
                                       confounded (max_abs_corr above common.config.DOE_MAX_ABS_CORR:
                                       the design cannot separate that pair's effects; also a warning),
                                       layout; cross layout: the largest over the sub-designs, the pair
                                       prefixed "scenarios:" or "policies:"
    unit_cube_pairs.png, ev_vs_pv.png, histograms_lhs_vs_sobol.png
    manifest.json                      settings, package versions, git revision

Settings read
    common.config: N_CASES, DOE_SEED, PLACEMENT_REPLICATES, DOE_MAX_ABS_CORR, DOE_BOUNDS, REFERENCE_CASE, DISJOINT_SETS, DESIGNS,
    LAYOUT, CROSS_SCENARIOS, POLICIES

Usage
    python 0_code_xlrm/run_mix_generator.py [--n-cases 16] [--replicates 1] [--seed 123] [--data-dir DIR]
    python 0_code_xlrm/run_mix_generator.py --layout cross [--scenarios 8] [--policies N] [--replicates 1]
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Sequence

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from common import cli, config, doe  # noqa: E402
from common.figures import figure  # noqa: E402
from common.io import (exclusive_step, save_figure, sha256_file, write_csv,  # noqa: E402
                       write_json, write_manifest)

logger = logging.getLogger(__name__)

DESIGN_COLORS = {"lhs": "tab:blue", "sobol": "tab:orange"}


# ------------------------------------------------------------------------------------------- science
def compare_long(mixes_by_design: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """One row per design, case and parameter (the reference case included; every placement replicate
    of a design point, with its ``design_point`` and ``placement_replicate``)."""
    rows = []
    for design in sorted(mixes_by_design):
        for case_key, case in mixes_by_design[design].items():
            flat = doe.flatten_case(case)
            factors = doe.factors_from_shares(flat["shares.baseline"], flat["shares.dm"], flat["shares.un"])[0]
            values = {**flat, **dict(zip((f.name for f in doe.FACTORS), (float(v) for v in factors)))}
            for name, value in values.items():
                p = doe.PARAMETER_BY_NAME.get(name) or doe.FACTOR_BY_NAME[name]
                rows.append({"design": design, "case": int(case_key), "design_point": int(case["design_point"]),
                             "placement_replicate": int(case["placement_replicate"]),
                             "scenario": case.get("scenario"), "policy": case.get("policy"), "parameter": name,
                             "value": value, "unit": p.unit, "role": p.role})
    frame = pd.DataFrame(rows)
    if frame["scenario"].isna().all():  # joint layout: the earlier columns only
        return frame.drop(columns=["scenario", "policy"])
    for column in ("scenario", "policy"):
        frame[column] = pd.array(frame[column].tolist(), dtype="Int64")
    return frame


def design_points(long: pd.DataFrame) -> pd.DataFrame:
    """The rows of the design's own points: the reference case and placement replicates 1.. left out."""
    return long[(long["case"] > 0) & (long["placement_replicate"] == 0)]


def sub_designs(cube: np.ndarray, subs: dict[str, np.ndarray | None] | None
                ) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """The sampled sub-designs of a design with their column names: the whole cube (joint layout), or
    the scenarios over the X dimensions and, when sampled, the policies over the L dimensions (cross)."""
    if subs is None:
        return {"": (cube, doe.CUBE_DIMENSIONS)}
    x_cols, l_cols = doe.split_dimensions()
    out = {"scenarios": (subs["scenarios"], tuple(doe.CUBE_DIMENSIONS[i] for i in x_cols))}
    if subs.get("policies") is not None:
        out["policies"] = (subs["policies"], tuple(doe.CUBE_DIMENSIONS[i] for i in l_cols))
    return out


def design_checks(cube: np.ndarray, subs: dict[str, np.ndarray | None] | None, rank: bool = False
                  ) -> tuple[float, str]:
    """The largest |correlation| between two columns of any sampled sub-design and its pair (prefixed
    with the sub-design's name in a cross layout)."""
    best, best_pair = math.nan, ""
    for name, (sub, names) in sub_designs(cube, subs).items():
        corr, pair = doe.max_abs_correlation(sub, names, rank=rank)
        if np.isfinite(corr) and not corr <= best:
            best, best_pair = corr, f"{name}:{pair}" if name else pair
    return best, best_pair


def summary_table(long: pd.DataFrame, cubes: dict[str, np.ndarray],
                  subs: dict[str, dict[str, np.ndarray | None] | None] | None = None) -> pd.DataFrame:
    """Per design and parameter: count, mean, spread and range of the design's points (case 0 and the
    repeats of a point in placement replicates 1.. out),
    with the design's centred L2 discrepancy in the unit cube and the largest |correlation| between
    two of its unit-cube columns (Pearson ``max_abs_corr``, Spearman ``max_abs_rank_corr``, and the
    pair of each). ``subs``: per design, None (joint) or the cross layout's sub-designs
    (:func:`sub_designs`): the discrepancy is the scenarios', the correlations the largest over the
    sub-designs."""
    subs = subs or {}
    sampled = design_points(long)
    stats = (sampled.groupby(["design", "parameter"], sort=True)["value"]
             .agg(n="count", mean="mean", std="std", min="min", max="max").reset_index())
    stats["discrepancy"] = stats["design"].map(
        {d: doe.discrepancy(c if subs.get(d) is None else subs[d]["scenarios"]) for d, c in cubes.items()})
    for column, rank in (("max_abs_corr", False), ("max_abs_rank_corr", True)):
        found = {d: design_checks(c, subs.get(d), rank=rank) for d, c in cubes.items()}
        stats[column] = stats["design"].map({d: v for d, (v, _) in found.items()})
        stats[f"{column}_pair"] = stats["design"].map({d: pair for d, (_, pair) in found.items()})
    stats["confounded"] = stats["max_abs_corr"] > config.DOE_MAX_ABS_CORR
    stats["layout"] = stats["design"].map({d: "joint" if subs.get(d) is None else "cross" for d in cubes})
    return stats


# ------------------------------------------------------------------------------------------- plots
def plot_unit_cube_pairs(cubes: dict[str, np.ndarray]):
    dims = doe.CUBE_DIMENSIONS
    n = len(dims)
    # [0, 1], widened where a named policy's lever lies outside the design bounds (cross layout)
    stacked = np.vstack(list(cubes.values()))
    limits = [(min(0.0, float(stacked[:, k].min())), max(1.0, float(stacked[:, k].max()))) for k in range(n)]
    fig, axes = figure(n, n, width=2.0, height=2.0, layout=None)
    for i in range(n):
        for j in range(n):
            ax = axes[i, j]
            if i == j:
                for design, cube in cubes.items():
                    ax.hist(cube[:, i], bins=10, range=limits[i], histtype="step", color=DESIGN_COLORS[design])
            else:
                for design, cube in cubes.items():
                    ax.scatter(cube[:, j], cube[:, i], s=6, color=DESIGN_COLORS[design], alpha=0.8,
                               label=design.upper())
            ax.set_xlim(*limits[j])
            if i != j:
                ax.set_ylim(*limits[i])
            ax.tick_params(labelsize=6)
            if i == n - 1:
                ax.set_xlabel(dims[j], fontsize=7)
            if j == 0:
                ax.set_ylabel(dims[i], fontsize=7)
    handles, labels = axes[0, 1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right")
    fig.suptitle("Designs in the unit cube: every pair of dimensions (diagonal: marginal histograms)")
    fig.tight_layout(rect=(0, 0, 0.95, 0.97))
    return fig


def plot_ev_vs_pv(mixes_by_design: dict[str, dict[str, dict]]):
    fig, axes = figure(width=6.0, height=5.0, layout=None)
    ax = axes[0, 0]
    for design in sorted(mixes_by_design):
        cases = [c for k, c in mixes_by_design[design].items() if k != "0" and c["placement_replicate"] == 0]
        ax.scatter([100 * c["ev_perc"] for c in cases], [100 * c["pv_perc_3ph"] for c in cases],
                   color=DESIGN_COLORS[design], label=f"{design.upper()} ({len(cases)} cases)", alpha=0.8)
    ref = next(iter(mixes_by_design.values()))["0"]
    ax.scatter([100 * ref["ev_perc"]], [100 * ref["pv_perc_3ph"]], marker="*", s=200, color="black",
               label="reference case 0")
    ax.set_xlabel("EV adoption [% of residential customers]")
    ax.set_ylabel("PV adoption [% of three-phase customers]")
    ax.set_title("EV vs PV adoption of the cases")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_histograms(long: pd.DataFrame):
    names = [p.name for p in (*doe.PARAMETERS, *doe.FACTORS)]
    fig, axes = figure(2, (len(names) + 1) // 2, width=16.0 / ((len(names) + 1) // 2), height=3.25, layout=None)
    for ax, name in zip(axes.flat, names):
        p = doe.PARAMETER_BY_NAME.get(name) or doe.FACTOR_BY_NAME[name]
        designs = sorted(long["design"].unique())
        points = design_points(long)
        values = [points[(points["design"] == d) & (points["parameter"] == name)]["value"] for d in designs]
        low = min([p.low, *(float(v.min()) for v in values if len(v))])
        high = max([p.high, *(float(v.max()) for v in values if len(v))])
        ax.hist(values, bins=8, range=(low, high), color=[DESIGN_COLORS[d] for d in designs],
                label=[d.upper() for d in designs])
        ax.set_title(f"{name} [{p.role}]", fontsize=9)
        ax.set_xlabel(p.unit, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend()
    fig.suptitle("Parameter histograms: LHS vs Sobol (reference case left out)")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="run_mix_generator.py")
    parser.add_argument("--n-cases", type=cli.positive_int, default=None,
                        help=f"joint layout: cases per design besides the reference case (default {config.N_CASES}; "
                             "Sobol rounds up to a power of two)")
    parser.add_argument("--seed", type=cli.nonnegative_int, default=config.DOE_SEED,
                        help=f"master seed of samplers and placement seeds (default {config.DOE_SEED})")
    parser.add_argument("--replicates", type=cli.positive_int, default=config.PLACEMENT_REPLICATES,
                        help="placement replicates per design point: each repeats the point with its own "
                             "random order of hosts (common random numbers across the points of a replicate; "
                             f"default {config.PLACEMENT_REPLICATES})")
    parser.add_argument("--layout", choices=doe.LAYOUTS, default=config.LAYOUT,
                        help="joint: X and L sampled together (--n-cases); cross: --scenarios scenarios over the X "
                             "dimensions x policies over the L dimensions (default common.config.LAYOUT = "
                             f"{config.LAYOUT})")
    parser.add_argument("--scenarios", type=cli.positive_int, default=None,
                        help="cross layout: scenarios per design (default common.config.CROSS_SCENARIOS = "
                             f"{config.CROSS_SCENARIOS}; Sobol rounds up to a power of two)")
    parser.add_argument("--policies", type=cli.positive_int, default=None,
                        help="cross layout: draw this many policies over the L dimensions (a Latin hypercube, the "
                             "same in every design) instead of the named ones of common.config.POLICIES")
    cli.add_design(parser, multiple=True)
    cli.add_standard(parser)
    return parser


def check_layout_flags(args) -> None:
    """One line (exit 2) for flags of the other layout: nothing given is silently ignored."""
    if args.layout == "cross" and args.n_cases is not None:
        raise cli.UserError("--n-cases sets the joint layout's points; with --layout cross give --scenarios S "
                            "(and --policies N, or the named policies of common.config.POLICIES)")
    if args.layout == "joint":
        for flag, value in (("--scenarios", args.scenarios), ("--policies", args.policies)):
            if value is not None:
                raise cli.UserError(f"{flag} applies to --layout cross only (the joint layout takes --n-cases)")
    if args.layout == "joint":
        args.n_cases = config.N_CASES if args.n_cases is None else args.n_cases
    else:
        args.scenarios = config.CROSS_SCENARIOS if args.scenarios is None else args.scenarios


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    check_layout_flags(args)
    designs = sorted(set(args.design))
    if args.layout == "joint":
        logger.info("designs %s, %d points each x %d placement replicate(s), seed %d -> %s", ", ".join(designs),
                    args.n_cases, args.replicates, args.seed, ws.phase("0"))
    else:
        try:
            policies = doe.policy_table(args.policies, args.seed)[0]
        except doe.MixesError as exc:
            raise cli.UserError(str(exc)) from None
        logger.info("designs %s, cross layout: %d scenarios x %d %s policies (%s) x %d placement replicate(s), "
                    "seed %d -> %s", ", ".join(designs), args.scenarios, len(policies),
                    "named" if args.policies is None else "sampled", "; ".join(n for n, _ in policies),
                    args.replicates, args.seed, ws.phase("0"))
    with exclusive_step(ws.phase("0"), "phase 0"):
        return _generate(args, ws, designs)


def _generate(args, ws, designs: list[str]) -> int:
    """Draw every design in memory, then write: the old manifest goes first and the new one, with the
    SHA-256 of each mixes file, last, so that an interrupted run never leaves mixes files that its
    manifest vouches for (phase 6 checks the mixes file against it)."""
    mixes_by_design, cubes, subs = {}, {}, {}
    for design in designs:
        if args.layout == "joint":
            mixes_by_design[design], cubes[design] = doe.build_mixes(design, args.n_cases, args.seed,
                                                                     replicates=args.replicates)
            subs[design] = None
        else:
            mixes_by_design[design], cubes[design], subs[design] = doe.build_cross_mixes(
                design, args.scenarios, args.seed, args.policies, replicates=args.replicates)
    manifest = ws.phase("0") / doe.PHASE0_MANIFEST
    manifest.unlink(missing_ok=True)
    digests = {}
    for design in designs:
        write_json(ws.mixes(design), mixes_by_design[design])
        digests[design] = sha256_file(ws.mixes(design))
        corr, pair = design_checks(cubes[design], subs[design])
        sampled = cubes[design] if subs[design] is None else subs[design]["scenarios"]
        logger.info("%s: %d points + reference case, discrepancy %.5f, largest |correlation| between columns "
                    "%.3f (%s) -> %s", design.upper(), len(cubes[design]), doe.discrepancy(sampled), corr,
                    pair or "-", ws.mixes(design))
        if corr > config.DOE_MAX_ABS_CORR:
            logger.warning("%s: columns %s correlate at |r| = %.2f (above common.config.DOE_MAX_ABS_CORR = %.2f): "
                           "the analysis cannot tell their effects apart; draw more cases (--n-cases, or --scenarios "
                           "in the cross layout: a design of fewer than about 4 points per dimension has such a pair "
                           "whatever its scrambling)",
                           design.upper(), pair, corr, config.DOE_MAX_ABS_CORR)

    long = compare_long(mixes_by_design)
    write_csv(ws.mixes_compare_long, long)
    write_csv(ws.lhs_vs_sobol_summary, summary_table(long, cubes, subs))
    save_figure(plot_unit_cube_pairs(cubes), ws.phase0_plot("unit_cube_pairs"))
    save_figure(plot_ev_vs_pv(mixes_by_design), ws.phase0_plot("ev_vs_pv"))
    save_figure(plot_histograms(long), ws.phase0_plot("histograms_lhs_vs_sobol"))
    write_manifest(ws.phase("0"), "0_code_xlrm/run_mix_generator.py",
                   {"n_cases": args.n_cases, "seed": args.seed, "replicates": args.replicates, "designs": designs,
                    "layout": args.layout, "scenarios": args.scenarios, "policies": args.policies,
                    "policy_names": (sorted({(c["policy"], c["policy_name"]) for m in mixes_by_design.values()
                                             for c in m.values() if c["policy"]})
                                     if args.layout == "cross" else []),
                    "cases_drawn": {d: int(len(c)) for d, c in cubes.items()}, "mixes_sha256": digests},
                   name=doe.PHASE0_MANIFEST)
    logger.info("phase 0 outputs in %s", ws.phase("0"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
