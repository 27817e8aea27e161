"""Plots of what heat pumps do to each feeder's design day, and to each building's peak.

Description
    Reads the daily profiles of the three variants (baseline from phase 2, demand-managed from
    phase 4, uncontrolled from phase 5) and draws, for a planner:

    * per feeder: the design-day feeder curve under baseline, demand-managed and uncontrolled heat
      pumps, one panel per season, with each curve's peak marked (sum over customers of
      annual peak kW x the variant's per-unit profile);
    * per state: the distribution of each building's design-day peak change against its baseline
      peak, for demand-managed and uncontrolled heat pumps, per season;
    * the record of which upgrade each building type uses per variant, with the rule's reason.

    The numbers behind the curves go to ``variant_summary.csv`` (peak kW, its time and the day's
    energy per feeder, season and variant).

Inputs
    <data>/1b_smartds_eulp_match/<STATE>/customers.parquet                      (phase 1b)
    <data>/{2,4,5}_profiles_heat_pumps*/<STATE>/daily_profiles_<season>.parquet  (phases 2, 4, 5)
    <data>/2_profiles_heat_pumps/<STATE>/variant_upgrades.csv, feeder_buildings.csv, design_days.csv

Outputs (``<data>/2_profiles_heat_pumps/<STATE>/``)
    plots/<feeder>_design_day.png, plots/building_peak_change.png, plots/variant_upgrades.png
    variant_summary.csv   feeder, season, date, variant, peak_kw, peak_time, energy_kwh

Settings read
    common.config: VARIANTS, SEASONS

Usage
    python 2_profiles_heat_pumps/plot_parquet_differences.py --state NC [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from common import cli, config, profiles
from common.figures import figure
from common.io import exclusive_step, InputError, clean_temporaries, save_figure, write_csv
from common.paths import Workspace

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).name
SCRIPT_PATH = "2_profiles_heat_pumps/plot_parquet_differences.py"

VARIANT_LABEL = {"baseline": "baseline equipment", "dm": "demand-managed heat pumps", "un": "uncontrolled heat pumps"}
VARIANT_COLOR = {"baseline": "tab:gray", "dm": "tab:green", "un": "tab:red"}


def design_date(days: pd.DataFrame, feeder: str, season: str, path: Path) -> str:
    """The date of a feeder's design day of a season, rank 1 (the plots and variant_summary.csv show the
    design day, not the further days of ``--days``; InputError naming ``path`` when absent)."""
    day = days[(days["feeder"] == feeder) & (days["season"] == season) & (days["rank"] == 1)]
    if day.empty:
        raise InputError(f"{path}: no {season} design day for feeder {feeder}: run "
                         f"{profiles.PRODUCERS['design_days']} again")
    return str(day["date"].iloc[0])


def feeder_curves(customers: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """Design-day feeder kW per feeder and step: sum over customers of peak kW x p_pu."""
    weights = customers.groupby(["feeder", "shape"])["peak_kw"].sum().rename("kw_sum").reset_index()
    merged = daily.merge(weights, on=["feeder", "shape"], how="inner")
    merged["kw"] = merged["kw_sum"] * merged["p_pu"]
    return merged.groupby(["feeder", "step"], sort=True)["kw"].sum().reset_index()


def building_peak_change(buildings: pd.DataFrame, daily: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per building and season: design-day peak of dm and un relative to the baseline's."""
    rows = []
    peaks = {v: d.groupby(["feeder", "shape"])["p_pu"].max() for v, d in daily.items()}
    one = buildings.drop_duplicates("bldg_id")
    for _, b in one.iterrows():
        key = (b["feeder"], b["shape"])
        base = peaks["baseline"].get(key)
        if base is None or base <= 0:
            continue
        rows.append({"bldg_id": int(b["bldg_id"]), "class": b["class"],
                     **{f"change_{v}": float(peaks[v].get(key, np.nan) / base - 1.0) for v in ("dm", "un")}})
    return pd.DataFrame(rows)


def plot_feeder(feeder: str, curves: dict[tuple[str, str], pd.DataFrame], dates: dict[str, str]):
    seasons = [s for s in config.SEASONS if any(k[1] == s for k in curves)]
    fig, axes = figure(1, len(seasons), width=6.5, height=4.6)
    hours = np.arange(config.INTERVALS_PER_DAY) * config.INTERVAL_H
    for ax, season in zip(axes[0], seasons):
        for variant in config.VARIANTS:
            curve = curves.get((variant, season))
            if curve is None:
                continue
            kw = curve["kw"].to_numpy()
            ax.plot(hours, kw, color=VARIANT_COLOR[variant], label=f"{VARIANT_LABEL[variant]} (peak {kw.max():,.0f} kW)")
            ax.plot(hours[np.argmax(kw)], kw.max(), "o", color=VARIANT_COLOR[variant])
        ax.set_title(f"{season} design day {dates[season]}")
        ax.set_xlabel("hour of day (interval start)")
        ax.set_ylabel("feeder load [kW]")
        ax.set_xticks(range(0, 25, 3))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{feeder}: design-day load under each heat-pump variant (no EV, PV or storage)")
    return fig


def plot_peak_change(changes: dict[str, pd.DataFrame]):
    fig, axes = figure(1, len(changes), width=6.5, height=4.2)
    for ax, (season, frame) in zip(axes[0], changes.items()):
        bins = np.linspace(min(-0.6, np.nanmin(frame[["change_dm", "change_un"]].to_numpy()) if len(frame) else -0.6),
                           max(1.5, np.nanmax(frame[["change_dm", "change_un"]].to_numpy()) if len(frame) else 1.5), 30)
        for variant in ("dm", "un"):
            values = 100 * frame[f"change_{variant}"].dropna()
            ax.hist(values, bins=100 * bins, alpha=0.6, color=VARIANT_COLOR[variant],
                    label=f"{VARIANT_LABEL[variant]} (median {np.median(values):+.0f} %)" if len(values) else variant)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(f"{season}: building design-day peak vs baseline")
        ax.set_xlabel("peak change [% of the building's baseline design-day peak]")
        ax.set_ylabel("buildings")
        ax.legend(fontsize=8)
    return fig


def plot_upgrade_record(record: pd.DataFrame):
    table = record[["class", "building_type", "variant", "upgrade", "upgrade_name", "load_shift", "reason"]].copy()
    table["reason"] = table["reason"].map(lambda r: "\n".join(textwrap.wrap(str(r), 60)))
    table["upgrade_name"] = table["upgrade_name"].map(lambda r: "\n".join(textwrap.wrap(str(r), 30)))
    fig, axes = figure(1, 1, width=17, height=0.55 * len(table) + 1.2, layout=None)
    ax = axes[0, 0]
    ax.axis("off")
    cell = ax.table(cellText=table.astype(str).to_numpy(), colLabels=list(table.columns), loc="upper center",
                    cellLoc="left", colWidths=[0.04, 0.14, 0.05, 0.05, 0.18, 0.06, 0.48])
    cell.auto_set_font_size(False)
    cell.set_fontsize(7)
    cell.scale(1, 2.3)
    ax.set_title("Upgrade used by each building type for each heat-pump variant (rule in common/config.py)")
    return fig


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="plot_parquet_differences.py")
    cli.add_state(parser)
    cli.add_season(parser, multiple=True)
    cli.add_standard(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    out = ws.profiles_dir(args.state)
    with exclusive_step(out, SCRIPT):
        clean_temporaries(ws.profile_plots_dir(args.state))
        return run(args, ws)


def run(args: argparse.Namespace, ws: Workspace) -> int:
    state = args.state
    seasons = sorted(set(args.season), key=config.SEASONS.index)
    inputs = profiles.Inputs(ws)
    customers = profiles.read_customers(ws, state, inputs)
    buildings = profiles.read_feeder_buildings(ws, state, inputs)
    days = profiles.read_design_days(ws, state, inputs)
    record = profiles.read_variant_upgrades(ws, state, inputs)
    daily = {season: {v: profiles.read_daily_table(ws, state, v, season, inputs) for v in config.VARIANTS}
             for season in seasons}
    curves: dict[str, dict[tuple[str, str], pd.DataFrame]] = {}
    dates: dict[str, dict[str, str]] = {}
    summary, changes = [], {}
    for season in seasons:
        changes[season] = building_peak_change(buildings, daily[season])
        for variant, table in daily[season].items():
            for feeder, curve in feeder_curves(customers, table).groupby("feeder"):
                curves.setdefault(feeder, {})[(variant, season)] = curve
                date = dates.setdefault(feeder, {}).setdefault(season, design_date(days, feeder, season,
                                                                                    ws.design_days(state)))
                kw = curve["kw"].to_numpy()
                summary.append({"feeder": feeder, "season": season, "date": date, "variant": variant,
                                "peak_kw": float(kw.max()), "peak_time": f"{int(np.argmax(kw)) * 15 // 60:02d}:"
                                f"{int(np.argmax(kw)) * 15 % 60:02d}", "energy_kwh": float(kw.sum() * config.INTERVAL_H)})
    for feeder in sorted(curves):
        save_figure(plot_feeder(feeder, curves[feeder], dates[feeder]), ws.feeder_day_plot(state, feeder))
    save_figure(plot_peak_change(changes), ws.profile_plot(state, "peak_change"))
    save_figure(plot_upgrade_record(record), ws.profile_plot(state, "upgrades"))
    inputs.record([write_csv(ws.variant_summary(state), pd.DataFrame(summary))], SCRIPT_PATH)
    logger.info("%s: %d feeder plots and 2 state plots -> %s", state, len(curves), ws.profile_plots_dir(state))
    cli.record(__file__, ws.profiles_dir(state), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
