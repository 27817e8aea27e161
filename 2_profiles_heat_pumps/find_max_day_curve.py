"""Each feeder's design day per season, from its baseline, demand-managed and uncontrolled curves.

Description
    A feeder's curve in one heat-pump variant is the sum over its shapes of the matched building's
    kW in that variant (4 x kWh per 15 min, from the EULP file of the variant's upgrade,
    ``common.eulp.variant_rule``) times the shape's scale (customers' annual peak sum / building's
    annual peak; ``scale_feeder_curves.py``): the feeder as phase 6 sees it with every customer in
    that variant. The demand-managed curve applies phase 4's load-shift model (its own function,
    ``4_profiles_heat_pumps_dm/make_dm_profiles.py`` ``transform``, loaded by path: the staggered
    windows included) to every day of the season, each day on its own as phase 4 does on the design
    day. EULP timestamps label the END of each interval: they are turned into interval starts
    (``common.eulp.read_building_kw``), so that the day of an interval is the day it starts in and
    00:00-00:15 belongs to the new day.

    Each variant's peak day of a season is the day holding its curve's highest 15-min value among
    the intervals of the season's months (``SEASON_MONTHS``: summer Jun-Aug, winter Dec-Feb). The
    design day (``DESIGN_DAY_RULE``) is the day of the highest of the three variants' peaks
    (``highest_variant``: the worst day of the variant that loads the feeder most, often the
    uncontrolled heat pumps' coldest morning) or the baseline's peak day (``baseline``, the earlier
    rule). One design day per feeder and season, shared by every heat-pump variant (phases 3-6 cut
    every profile on it); every variant's peak day and peak are written beside it, and how much of
    the worst peak the baseline's day misses (``baseline_day_error_pct``).

    With ``--days K`` (``DESIGN_DAYS``, default 1) the K highest DISTINCT peak days are kept
    (``common.profiles.ranked_design_days``): rank 1 is the design day above, ranks 2..K the other days of
    the season by the day's highest 15-min peak of the rule's curves (all three variants, or the baseline
    for ``baseline``). Phases 3-5 then cut profiles on every one of them and phase 6 (``--days K``) solves
    each run on each and reports its worst day. With K = 1 the outputs are those of the one-day study, byte
    for byte (no ``rank`` column).

    The light-load day (``LIGHT_LOAD_SEASONS``, default summer; ``--light-load-seasons``): rooftop PV's
    reverse flow and voltage rise are worst at the lightest daytime load, not on the peak day
    (interconnection and hosting-capacity screens use the daytime minimum load: FERC Order 792 SGIP
    supplemental review screen 2.4.4.1.1, 10 a.m. to 4 p.m. for fixed panels; EPRI hosting-capacity
    practice). Per feeder and season of those seasons it is the whole day of the season's months holding
    the lowest 15-min value, among the intervals starting within ``LIGHT_LOAD_DAY_WINDOW_H`` (10-16 h), of
    the three variant curves (baseline, dm, un: the lightest the feeder gets in any variant;
    ``common.profiles.light_load_day``): a night-time minimum does not count. It is one more row of
    design_days.csv, rank K+1 after the K peak days, ``kind`` light_load, so that phases 3-5 cut every
    profile on it as they do on a day of ``--days`` and phase 6 solves every run of the season on it too.
    Ranks 1..K are those of ``--days K`` exactly as without it. A winter-only run (no light-load season)
    writes the file it always did.

    The buildings' releases must share one weather year (``common.eulp.check_one_weather_year``;
    ``ALLOW_MIXED_WEATHER``): the feeder curve sums residential and commercial buildings.

Inputs (``<data>/2_profiles_heat_pumps/<STATE>/``)
    feeder_buildings.csv (scale_feeder_curves.py; refused when its inputs changed since it was made);
    EULP files of the baseline and of the heat-pump upgrades (phase 1c)

Outputs (same folder; read by phases 3, 4, 5 and 6)
    design_days.csv                  state, feeder, season, date, day_of_year (0-based), peak_kw,
                                     peak_interval_start (the peak of peak_variant on that day),
                                     peak_variant, rule, baseline_date, baseline_peak_kw, dm_date,
                                     dm_peak_kw, un_date, un_peak_kw (each variant's peak day and
                                     peak [kW] in the season), baseline_day_peak_kw (the highest
                                     variant peak on the baseline's day [kW]), baseline_day_error_pct
                                     (100 x (baseline_day_peak_kw / highest variant peak - 1)), months;
                                     with --days K > 1: K rows per feeder and season and a last column
                                     rank (1 = the design day; date, day_of_year, peak_kw, peak_variant,
                                     peak_interval_start are that day's, the other columns the feeder's);
                                     with a light-load season also the columns kind (peak for ranks 1..K,
                                     light_load for the light-load day, rank K+1, of that season),
                                     min_daytime_kw, min_daytime_interval_start, min_daytime_variant (the
                                     light-load day's lowest daytime 15-min value [kW], its interval and the
                                     variant whose curve it is; empty on peak rows), and a rank column
                                     even with K = 1; on the light-load row peak_kw, peak_interval_start and
                                     peak_variant are that day's highest value of any variant (a peak, as on
                                     ranks 2..K), date and day_of_year its date
    feeder_curves_baseline.parquet   feeder, interval_start, kw (the baseline curve, the whole year)

Settings read
    common.config: DESIGN_DAY_RULE, DESIGN_DAY_RULES, DESIGN_DAYS, LIGHT_LOAD_SEASONS, LIGHT_LOAD_DAY_WINDOW_H,
    SEASON_MONTHS, SEASONS, VARIANTS,
    HEAT_PUMP_VARIANT_RULES, LOAD_SHIFT, LOAD_SHIFT_STAGGER (through phase 4's model),
    ALLOW_MIXED_WEATHER

Usage
    python 2_profiles_heat_pumps/find_max_day_curve.py --state NC [--design-day-rule baseline] [--days 3]
        [--light-load-seasons [summer winter]] [--eulp-root DIR] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from common import cli, config, eulp, profiles
from common.io import exclusive_step, write_csv, write_parquet
from common.paths import REPO_ROOT, Workspace

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name


#: the design-day rule of one curve, shared with phase 6's feeders that bring their own yearly shapes
design_day = profiles.design_day
#: the design day of a feeder's variant curves (DESIGN_DAY_RULE)
variant_design_day = profiles.variant_design_day
#: the K highest distinct peak days of a feeder's variant curves (--days)
ranked_design_days = profiles.ranked_design_days
#: the light-load day of a feeder's variant curves (LIGHT_LOAD_SEASONS)
light_load_day = profiles.light_load_day
#: phase 4's script, whose load-shift model makes the demand-managed curve
DM_SCRIPT = "4_profiles_heat_pumps_dm/make_dm_profiles.py"


def dm_transform() -> profiles.Transform:
    """Phase 4's load-shift transform (``make_dm_profiles.transform``), imported from its script by
    path (the phase folders start with digits), so that the demand-managed curve searched here is
    made by the very model phase 4 applies to the design day."""
    name = "phase_" + DM_SCRIPT.replace("/", "_").removesuffix(".py")
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / DM_SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return module.transform


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="find_max_day_curve.py")
    cli.add_state(parser)
    cli.add_season(parser, multiple=True)
    parser.add_argument("--design-day-rule", choices=config.DESIGN_DAY_RULES, default=config.DESIGN_DAY_RULE,
                        help="highest_variant: the day of the highest peak of the baseline, demand-managed and "
                             "uncontrolled feeder curves; baseline: the baseline curve's peak day "
                             f"(default: common.config.DESIGN_DAY_RULE, {config.DESIGN_DAY_RULE})")
    parser.add_argument("--days", type=cli.positive_int, default=config.DESIGN_DAYS,
                        help="design days per feeder and season: the K highest distinct peak days of the rule's "
                             f"curves, rank 1 the design day (default: common.config.DESIGN_DAYS, {config.DESIGN_DAYS})")
    parser.add_argument("--light-load-seasons", nargs="*", choices=config.SEASONS, default=None, metavar="SEASON",
                        help="seasons that also get a light-load day (rank K+1, kind light_load: the day of the lowest "
                             f"daytime 15-min value, {config.LIGHT_LOAD_DAY_WINDOW_H[0]:g}-"
                             f"{config.LIGHT_LOAD_DAY_WINDOW_H[1]:g} h, of any variant curve); give the option alone for "
                             "none (default: common.config.LIGHT_LOAD_SEASONS, "
                             f"{' '.join(config.LIGHT_LOAD_SEASONS) or 'none'})")
    cli.add_eulp_root(parser)
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    out = ws.profiles_dir(args.state)
    with exclusive_step(out, SCRIPT):
        return run(args, ws)


def run(args: argparse.Namespace, ws: Workspace) -> int:
    state = args.state
    seasons = sorted(set(args.season), key=config.SEASONS.index)
    eulp_root = cli.eulp_root(args, ws)
    inputs = profiles.Inputs(ws)
    table = profiles.read_feeder_buildings(ws, state, inputs)
    try:
        eulp.check_one_weather_year(table["release"].astype(str), f"{ws.feeder_buildings(state)} (its releases)")
        curves, index = profiles.variant_feeder_curves(table, eulp_root, state, seasons, transform=dm_transform())
    except (eulp.EULPError, profiles.ProfileError) as exc:
        raise cli.UserError(str(exc)) from None
    light_seasons = config.LIGHT_LOAD_SEASONS if args.light_load_seasons is None else tuple(args.light_load_seasons)
    light_seasons = [s for s in seasons if s in light_seasons]
    ranked_file = args.days > 1 or bool(light_seasons)  # a rank column; a kind column with a light-load day
    rows, frames = [], []
    baseline = curves[seasons[0]]["baseline"]
    for feeder in sorted(baseline):
        for season in seasons:
            months = config.SEASON_MONTHS[season]
            variant_curves = {v: curves[season][v][feeder] for v in config.VARIANTS}
            try:
                ranked = ranked_design_days(variant_curves, index, months, args.days, args.design_day_rule)
                light = light_load_day(variant_curves, index, months) if season in light_seasons else None
            except ValueError as exc:
                raise cli.UserError(f"{feeder} {season}: {exc} (the EULP files' year)") from None
            day = ranked[0]
            for other in ranked:  # rank last; a one-day file has no rank column (the file it always was)
                rank = other.pop("rank")
                rows.append({"state": state, "feeder": feeder, "season": season, **other,
                             "months": "-".join(str(m) for m in months), **({"rank": rank} if ranked_file else {}),
                             **({"kind": "peak", "min_daytime_kw": None, "min_daytime_interval_start": "",
                                 "min_daytime_variant": ""} if light_seasons else {})})
            if light is not None:  # one more row: the feeder's columns of rank 1, the light day's own
                rows.append({"state": state, "feeder": feeder, "season": season,
                             **{k: v for k, v in day.items() if k != "rank"},
                             **{k: light[k] for k in ("date", "day_of_year", "peak_kw", "peak_interval_start",
                                                      "peak_variant")},
                             "months": "-".join(str(m) for m in months), "rank": len(ranked) + 1,
                             "kind": "light_load", "min_daytime_kw": light["min_daytime_kw"],
                             "min_daytime_interval_start": light["min_daytime_interval_start"],
                             "min_daytime_variant": light["min_daytime_variant"]})
                logger.info("%s %s: light-load day %s (rank %d), %s daytime minimum %.0f kW at %s (%.0f %% of the "
                            "design day's %.0f kW peak)", feeder, season, light["date"], len(ranked) + 1,
                            light["min_daytime_variant"], light["min_daytime_kw"],
                            light["min_daytime_interval_start"][11:16],
                            100.0 * light["min_daytime_kw"] / day["peak_kw"] if day["peak_kw"] > 0 else float("nan"),
                            day["peak_kw"])
            if args.days > 1:
                logger.info("%s %s: %d design days %s", feeder, season, len(ranked),
                            ", ".join(f"{r['date']} ({r['peak_kw']:.0f} kW)" for r in ranked))
            logger.info("%s %s: design day %s (%s), %s peak %.0f kW at %s; the baseline's day %s gives %.0f kW "
                        "(%+.1f %%)", feeder, season, day["date"], args.design_day_rule, day["peak_variant"],
                        day["peak_kw"], day["peak_interval_start"][11:16], day["baseline_date"],
                        day["baseline_day_peak_kw"], day["baseline_day_error_pct"])
        frames.append(pd.DataFrame({"feeder": feeder, "interval_start": index, "kw": baseline[feeder]}))
    outputs = [write_csv(ws.design_days(state), pd.DataFrame(rows)),
               write_parquet(ws.feeder_curves(state), pd.concat(frames, ignore_index=True))]
    inputs.record(outputs, profiles.PRODUCERS["design_days"])
    cli.record(__file__, ws.profiles_dir(state), args, season_months=config.SEASON_MONTHS,
               design_day_rule=args.design_day_rule,
               **({"light_load_seasons": light_seasons, "light_load_day_window_h": config.LIGHT_LOAD_DAY_WINDOW_H}
                  if light_seasons else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
