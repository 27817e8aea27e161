"""The pipeline's steps in run order: the one table that ``make run``, the tests and README follow.

Description
    :data:`STEPS` lists every step of a full run, in order: which script, which phase, how often it
    runs (once, once per state, or once per state, season and design) and which of the run's
    settings it takes as flags. :func:`plan` expands the table for a set of states, seasons and
    designs into the commands of a run; ``run_pipeline.py`` (what ``make run`` calls) runs them as
    subprocesses, and ``tests/pipeline.py`` runs slices of it in-process. README's phase table lists
    the same scripts in the same order (``tests/test_setup_steps.py`` checks it).

    The steps of a state run one after the other for that state before the next state starts, and
    the steps of a case set (phase 6) run for every season and design of that state, as in::

        sample, phase 0
        for each state: phase 1c (metadata), 1b, 1c (time series), 2-5,
                        for each season, for each design: phase 6
        phase 7

Settings read
    common.config: STATES, SEASONS, DESIGNS (the defaults of a run)

Usage
    python -m common.steps            print the table (scope, phase, script, flags)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from common import config

#: how often a step runs in a full run
STUDY = "study"        # once
STATE = "state"        # once per state (--state)
CASE_SET = "case-set"  # once per state, season and design (--state, --season, --design)


@dataclass(frozen=True)
class Step:
    """One step of the run: a script from the repository root and the flags it gets.

    ``stage`` is the heading printed before the first step of a stage (``{state}``, ``{season}``
    and ``{design}`` are filled in). The booleans say which of the run's settings the step takes:
    ``source`` (``--source``, where phase 1c downloads from), ``smartds_root`` (``--smartds-root``),
    ``eulp_root`` (``--eulp-root``), ``workers`` (``--workers``), ``n_cases`` (``--n-cases``),
    ``replicates`` (``--replicates``), ``layout`` (``--layout``, ``--scenarios``, ``--policies``: phase 0's
    experiment layout); ``days`` (``--days``: the design days per feeder and season of phase 2's
    ``find_max_day_curve.py`` and of phase 6, ``common.config.DESIGN_DAYS``); ``upgrades`` (``--upgrades``
    when the run asks for it: phase 6's upgrade step);
    ``quiet`` passes ``-q`` always (download progress bars); ``flags`` are passed as they are.
    """

    script: str
    phase: str
    stage: str
    scope: str = STUDY
    flags: tuple[str, ...] = ()
    source: bool = False
    smartds_root: bool = False
    eulp_root: bool = False
    workers: bool = False
    n_cases: bool = False
    replicates: bool = False
    layout: bool = False
    days: bool = False
    upgrades: bool = False
    quiet: bool = False

    @property
    def name(self) -> str:
        """The script and its fixed flags: names the step in messages (a script may run twice)."""
        return " ".join((self.script, *self.flags))

    def argv(self, data_dir: str | Path, *, state: str | None = None, season: str | None = None,
             design: str | None = None, n_cases: int | None = None, replicates: int | None = None,
             workers: int | None = None, layout: str | None = None, scenarios: int | None = None,
             policies: int | None = None, days: int | None = None,
             source: str | Path | None = None, smartds_root: str | Path | None = None,
             eulp_root: str | Path | None = None, upgrades: bool = False, quiet: bool = False) -> list[str]:
        """The step's flags for one invocation. A setting left at None is not passed (the script's
        default applies); the scope's own settings (state, season, design) are required. ``upgrades``
        passes ``--upgrades`` to a step that takes it (off: the flag is left out)."""
        needed = {STUDY: (), STATE: ("state",), CASE_SET: ("state", "season", "design")}[self.scope]
        given = {"state": state, "season": season, "design": design}
        missing = [k for k in needed if given[k] is None]
        if missing:
            raise ValueError(f"step {self.name} runs per {self.scope}: give {', '.join(missing)}")
        argv = ["--data-dir", str(data_dir)]
        for key in needed:
            argv += [f"--{key}", str(given[key])]
        argv += list(self.flags)
        optional = ((self.layout, "--layout", layout), (self.layout, "--scenarios", scenarios),
                    (self.layout, "--policies", policies),
                    (self.n_cases, "--n-cases", n_cases), (self.replicates, "--replicates", replicates),
                    (self.workers, "--workers", workers), (self.days, "--days", days),
                    (self.source, "--source", source), (self.smartds_root, "--smartds-root", smartds_root),
                    (self.eulp_root, "--eulp-root", eulp_root))
        for takes, flag, value in optional:
            if takes and value is not None:
                argv += [flag, str(value)]
        if self.upgrades and upgrades:
            argv.append("--upgrades")
        if self.quiet or quiet:
            argv.append("-q")
        return argv


_1C_META = "{state} phase 1c: SMART-DS feeders and EULP metadata"
_1B = "{state} phase 1b: feeders matched to EULP buildings"
_1C_SERIES = "{state} phase 1c: the chosen buildings' time series"
_PROFILES = "{state} phases 2-5: design days and daily profiles"
_7 = "phase 7: combined results, sensitivity, scenario discovery, robustness, plots, report"

#: every step of a full run, in run order
STEPS: tuple[Step, ...] = (
    Step("sample/build_sample.py", "sample", "sample: the embedded SMART-DS and EULP sample (built once)"),
    Step("0_code_xlrm/run_mix_generator.py", "0", "phase 0: designs of experiments", n_cases=True,
         replicates=True, layout=True),
    Step("1c_eulp_downloads/download_smartds.py", "1c", _1C_META, STATE, source=True, quiet=True),
    Step("1c_eulp_downloads/download_parquets_homes.py", "1c", _1C_META, STATE, ("--metadata-only",),
         source=True, quiet=True),
    Step("1c_eulp_downloads/download_parquets_commercial.py", "1c", _1C_META, STATE, ("--metadata-only",),
         source=True, quiet=True),
    Step("1b_smartds_eulp_match/copy_circuits.py", "1b", _1B, STATE, smartds_root=True),
    Step("1b_smartds_eulp_match/circuit_make_daily_list_sets.py", "1b", _1B, STATE),
    Step("1b_smartds_eulp_match/review_parquet_matches.py", "1b", _1B, STATE),
    Step("1b_smartds_eulp_match/match_smartds_parquets.py", "1b", _1B, STATE, eulp_root=True),
    Step("1b_smartds_eulp_match/clean_up_bldgs.py", "1b", _1B, STATE, eulp_root=True),
    Step("1b_smartds_eulp_match/select_rep_family.py", "1b", _1B, STATE),
    Step("1c_eulp_downloads/download_parquets_homes.py", "1c", _1C_SERIES, STATE, source=True, quiet=True),
    Step("1c_eulp_downloads/download_parquets_commercial.py", "1c", _1C_SERIES, STATE, source=True, quiet=True),
    Step("2_profiles_heat_pumps/scale_feeder_curves.py", "2", _PROFILES, STATE, eulp_root=True),
    Step("2_profiles_heat_pumps/find_max_day_curve.py", "2", _PROFILES, STATE, eulp_root=True, days=True),
    Step("3_kvar_kw_prep/rev_spec_kvar_kw_ratio.py", "3", _PROFILES, STATE),
    Step("2_profiles_heat_pumps/get_scenario_csv_controls.py", "2", _PROFILES, STATE, eulp_root=True),
    Step("4_profiles_heat_pumps_dm/make_dm_profiles.py", "4", _PROFILES, STATE, eulp_root=True),
    Step("5_profiles_heat_pumps_un/make_un_profiles.py", "5", _PROFILES, STATE, eulp_root=True),
    Step("2_profiles_heat_pumps/plot_parquet_differences.py", "2", _PROFILES, STATE),
    Step("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py", "6",
         "{state} phase 6: {season} {design} instances and power flows", CASE_SET, ("--run",), workers=True,
         days=True, upgrades=True),
    Step("7_results_analysis/append_experiment_results.py", "7", _7),
    Step("7_results_analysis/append_xlrm_long_format.py", "7", _7),
    Step("7_results_analysis/sensitivity_analysis.py", "7", _7, workers=True),
    Step("7_results_analysis/scenario_discovery.py", "7", _7),
    Step("7_results_analysis/robustness_analysis.py", "7", _7),
    Step("7_results_analysis/plot_results.py", "7", _7),
    Step("7_results_analysis/make_report.py", "7", _7),
)


def steps_of(*phases: str) -> tuple[Step, ...]:
    """The steps of the given phases, in run order (e.g. ``steps_of("1b")``)."""
    return tuple(step for step in STEPS if step.phase in phases)


@dataclass(frozen=True)
class Invocation:
    """One command of a run: the step, the heading of its stage, its flags and where it stands."""

    step: Step
    heading: str
    argv: tuple[str, ...]
    where: str  # "" for a study step, "NC" for a state step, "NC winter lhs" for a case-set step


def plan(data_dir: str | Path, *, states: Sequence[str] = config.STATES,
         seasons: Sequence[str] = config.SEASONS, designs: Sequence[str] = config.DESIGNS,
         steps: Sequence[Step] = STEPS, **settings: object) -> list[Invocation]:
    """Every command of a run, in order. ``settings`` are passed to :meth:`Step.argv` (n_cases,
    replicates, layout, scenarios, policies, days, workers, source, smartds_root, eulp_root, upgrades, quiet)."""
    out: list[Invocation] = []

    def add(step: Step, state: str | None = None, season: str | None = None, design: str | None = None) -> None:
        heading = step.stage.format(state=state, season=season, design=design)
        where = " ".join(v for v in (state, season, design) if v is not None)
        argv = step.argv(data_dir, state=state, season=season, design=design, **settings)  # type: ignore[arg-type]
        out.append(Invocation(step, heading, tuple(argv), where))

    i = 0
    while i < len(steps):
        if steps[i].scope == STUDY:
            add(steps[i])
            i += 1
            continue
        end = i
        while end < len(steps) and steps[end].scope != STUDY:
            end += 1
        block = steps[i:end]  # consecutive per-state steps: run for one state, then the next
        for state in states:
            k = 0
            while k < len(block):
                if block[k].scope == STATE:
                    add(block[k], state)
                    k += 1
                    continue
                stop = k
                while stop < len(block) and block[stop].scope == CASE_SET:
                    stop += 1
                for season in seasons:
                    for design in designs:
                        for step in block[k:stop]:
                            add(step, state, season, design)
                k = stop
        i = end
    return out


def _print_table() -> int:
    for step in STEPS:
        takes = [flag for flag, on in (("--source", step.source), ("--smartds-root", step.smartds_root),
                                       ("--eulp-root", step.eulp_root), ("--workers", step.workers),
                                       ("--n-cases", step.n_cases), ("--replicates", step.replicates),
                                       ("--layout --scenarios --policies", step.layout),
                                       ("--days", step.days), ("--upgrades", step.upgrades)) if on]
        print(f"{step.scope:9} {step.phase:6} {step.name:75} {' '.join(takes)}")
    return 0


if __name__ == "__main__":
    sys.exit(_print_table())
