"""Where every file of the workspace lives: the only module that knows the layout.

The workspace (the "data folder") is ``./data`` beside this repository by default, ignored by git;
``--data-dir`` or the environment variable ``DSS_XLRM_DATA`` moves it. Every phase's inputs and
outputs are named once here, so a script never builds a path from string pieces of its own.

Layout (``<data>`` is the workspace)::

    sample/oedi/<bucket keys>                      embedded sample: SMART-DS and EULP in the OEDI layout
    sample/ev/ev_session_stats.csv                 EV charging-session statistics (phase 6)
    0_code_xlrm/                                   designs of experiments (phase 0)
    smartds/<year>/<city>/<subregion>/...          SMART-DS below SMART-DS/v1.0 (phase 1c)
    1c_eulp_downloads/<release>/...                EULP below the EULP prefix (phase 1c)
    1b_smartds_eulp_match/<STATE>/...              feeders, customers, matches (phase 1b)
    2_profiles_heat_pumps/<STATE>/...              design days, baseline daily profiles (phase 2)
    3_kvar_kw_prep/<STATE>/...                     kVAr/kW ratios (phase 3)
    4_profiles_heat_pumps_dm/<STATE>/...           demand-managed daily profiles (phase 4)
    5_profiles_heat_pumps_un/<STATE>/...           uncontrolled daily profiles (phase 5)
    6_instantiate_circuits/<STATE>/<season>/...    circuit instances and runs (phase 6)
    7_results_analysis/                            combined results, report (phase 7)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from common import config

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT / "data"

#: phase folders, named once
PHASE_DIRS = {
    "0": "0_code_xlrm",
    "1b": "1b_smartds_eulp_match",
    "1c": "1c_eulp_downloads",
    "2": "2_profiles_heat_pumps",
    "3": "3_kvar_kw_prep",
    "4": "4_profiles_heat_pumps_dm",
    "5": "5_profiles_heat_pumps_un",
    "6": "6_instantiate_circuits",
    "7": "7_results_analysis",
}
#: the phase folder that writes each variant's daily profiles
VARIANT_PHASE = {"baseline": "2", "dm": "4", "un": "5"}


def resolve_data_dir(cli_value: str | os.PathLike | None = None) -> Path:
    """The workspace folder: ``--data-dir``, else ``$DSS_XLRM_DATA``, else ``./data``."""
    if cli_value:
        return Path(cli_value).expanduser().resolve()
    env = os.environ.get(config.DATA_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return DEFAULT_DATA_DIR


#: the sub-folder of a run folder holding the run on its light-load day (phase 6, LIGHT_LOAD_SEASONS)
LIGHT_LOAD_FOLDER = "light_load"


def day_suffix(rank: int) -> str:
    """The file-name suffix of a design day's profiles: none for rank 1 (the design day, the names they
    always had), ``_day<k>`` for rank k > 1 (``--days``)."""
    rank = int(rank)
    if rank < 1:
        raise ValueError(f"design-day rank {rank} is not 1 or more")
    return "" if rank == 1 else f"_day{rank}"


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace. All methods are pure: nothing is created on disk."""

    root: Path

    def phase(self, key: str) -> Path:
        return self.root / PHASE_DIRS[key]

    # ---------------------------------------------------------------- paths written into outputs
    def portable(self, path: Path | str) -> str:
        """A path to write into an output: relative to the workspace (posix) when it lies inside it,
        so that a workspace copied or moved elsewhere reads its own files; absolute otherwise (an
        external tree the user named)."""
        resolved = Path(path).resolve()
        try:
            return resolved.relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(resolved)

    def resolve(self, text: str | Path) -> Path:
        """The path :meth:`portable` wrote: relative ones from the workspace, absolute ones as they are."""
        path = Path(text)
        return path if path.is_absolute() else self.root / path

    # ---------------------------------------------------------------- embedded sample
    @property
    def sample(self) -> Path:
        return self.root / "sample"

    @property
    def sample_manifest(self) -> Path:
        return self.sample / "sample_manifest.json"

    @property
    def sample_oedi(self) -> Path:
        """A local folder holding OEDI bucket keys: usable as ``--source`` of phase 1c."""
        return self.sample / "oedi"

    @property
    def ev_session_stats(self) -> Path:
        return self.sample / "ev" / "ev_session_stats.csv"

    # ---------------------------------------------------------------- phase 0
    def mixes(self, design: str) -> Path:
        return self.phase("0") / f"mixes_{design}.json"

    @property
    def mixes_compare_long(self) -> Path:
        return self.phase("0") / "mixes_compare_long.csv"

    @property
    def lhs_vs_sobol_summary(self) -> Path:
        return self.phase("0") / "lhs_vs_sobol_summary.csv"

    def phase0_plot(self, name: str) -> Path:
        return self.phase("0") / f"{name}.png"

    # ---------------------------------------------------------------- phase 1c
    @property
    def smartds_root(self) -> Path:
        """SMART-DS below ``SMART-DS/v1.0``: ``<year>/<city>/<subregion>/...``."""
        return self.root / "smartds"

    @property
    def eulp_root(self) -> Path:
        """EULP below the EULP prefix: ``<release>/...``."""
        return self.phase("1c")

    def eulp_file(self, release: str, relative: str) -> Path:
        return self.eulp_root / release / relative

    def download_manifest(self, dataset_root: Path) -> Path:
        return dataset_root / "manifest.csv"

    # ---------------------------------------------------------------- phase 1b
    def match_dir(self, state: str) -> Path:
        return self.phase("1b") / state

    def feeders_dir(self, state: str) -> Path:
        return self.match_dir(state) / "feeders"

    def feeder_dir(self, state: str, feeder: str) -> Path:
        return self.feeders_dir(state) / feeder

    def feeder_list(self, state: str) -> Path:
        return self.match_dir(state) / "feeders.csv"

    def customers(self, state: str) -> Path:
        return self.match_dir(state) / "customers.parquet"

    def shape_counts(self, state: str) -> Path:
        return self.match_dir(state) / "shape_counts.csv"

    def profile_stats(self, state: str) -> Path:
        return self.match_dir(state) / "profile_monthly_stats.parquet"

    def candidates(self, state: str, cls: str) -> Path:
        return self.match_dir(state) / f"candidates_{cls}.parquet"

    def candidates_clean(self, state: str, cls: str) -> Path:
        return self.match_dir(state) / f"candidates_clean_{cls}.parquet"

    def source_map(self, state: str) -> Path:
        return self.match_dir(state) / "source_map.csv"

    def final_selection(self, state: str, cls: str) -> Path:
        name = {"res": "residential", "com": "commercial"}[cls]
        return self.match_dir(state) / f"{state}_final_{name}.csv"

    def bldg_id_list(self, state: str, cls: str) -> Path:
        return self.match_dir(state) / f"{state}_bldg_ids_{cls}.txt"

    def unmatched(self, state: str) -> Path:
        return self.match_dir(state) / "unmatched_profiles.csv"

    def feeder_parse(self, state: str) -> Path:
        """Per feeder: parsed or left out, with the reason (circuit_make_daily_list_sets.py)."""
        return self.match_dir(state) / "feeder_parse.csv"

    def match_report(self, state: str) -> Path:
        """Per class: matched or failed, and what matching skipped (match_smartds_parquets.py)."""
        return self.match_dir(state) / "match_report.csv"

    def cleanup_removed(self, state: str) -> Path:
        """Candidate rows removed by clean_up_bldgs.py, with the reason."""
        return self.match_dir(state) / "cleanup_removed.csv"

    def cleanup_report(self, state: str) -> Path:
        """Per class and check (vacancy, income): applied or skipped, and why (clean_up_bldgs.py)."""
        return self.match_dir(state) / "cleanup_report.csv"

    def selection_report(self, state: str) -> Path:
        """Per class and rule (income preference, type quotas): applied or skipped (select_rep_family.py)."""
        return self.match_dir(state) / "selection_report.csv"

    # ---------------------------------------------------------------- phases 2-5
    def profiles_dir(self, state: str) -> Path:
        return self.phase("2") / state

    def feeder_buildings(self, state: str) -> Path:
        return self.profiles_dir(state) / "feeder_buildings.csv"

    def variant_upgrades(self, state: str) -> Path:
        return self.profiles_dir(state) / "variant_upgrades.csv"

    def feeder_status(self, state: str) -> Path:
        """Per feeder: has a building for every shape or left out (scale_feeder_curves.py)."""
        return self.profiles_dir(state) / "feeder_status.csv"

    def variant_summary(self, state: str) -> Path:
        """Design-day peak and energy per feeder, season and variant (plot_parquet_differences.py)."""
        return self.profiles_dir(state) / "variant_summary.csv"

    def design_days(self, state: str) -> Path:
        return self.profiles_dir(state) / "design_days.csv"

    def feeder_curves(self, state: str) -> Path:
        return self.profiles_dir(state) / "feeder_curves_baseline.parquet"

    def daily_profile(self, state: str, variant: str, feeder: str, season: str, shape: str, rank: int = 1) -> Path:
        """96-row daily file of one load shape: columns p_pu, q_pu (per unit of annual peak kW), on the
        feeder's design day of ``rank`` (``--days``: rank 1 is the design day, ranks 2.. in ``<season>_day<k>/``)."""
        return self.phase(VARIANT_PHASE[variant]) / state / "daily" / feeder / (season + day_suffix(rank)) / f"{shape}.csv"

    def variant_dir(self, state: str, variant: str) -> Path:
        """The state folder of the phase that writes one variant's daily profiles."""
        return self.phase(VARIANT_PHASE[variant]) / state

    def daily_profiles_dir(self, state: str, variant: str) -> Path:
        """The folder of one variant's daily files (``daily_profile``), written by its phase only."""
        return self.phase(VARIANT_PHASE[variant]) / state / "daily"

    def daily_profile_table(self, state: str, variant: str, season: str, rank: int = 1) -> Path:
        """All daily profiles of one variant, season and design-day rank, long format (for fast loading)."""
        return self.phase(VARIANT_PHASE[variant]) / state / f"daily_profiles_{season}{day_suffix(rank)}.parquet"

    def scenario_controls(self, state: str, season: str) -> Path:
        return self.profiles_dir(state) / f"scenario_profiles_{season}.csv"

    @property
    def storage_controls(self) -> Path:
        return self.phase("2") / "storage_controls.csv"

    def profile_plots_dir(self, state: str) -> Path:
        return self.profiles_dir(state) / "plots"

    def feeder_day_plot(self, state: str, feeder: str) -> Path:
        """One feeder's design-day curves under each variant (plot_parquet_differences.py)."""
        return self.profile_plots_dir(state) / f"{feeder}_design_day.png"

    def profile_plot(self, state: str, key: str) -> Path:
        """A state-wide plot of plot_parquet_differences.py by its key in PROFILE_PLOTS."""
        return self.profile_plots_dir(state) / PROFILE_PLOTS[key]

    def kvar_ratios(self, state: str) -> Path:
        return self.phase("3") / state / "kvar_kw_ratio.parquet"

    # ---------------------------------------------------------------- phase 6
    def circuits_dir(self, state: str) -> Path:
        return self.phase("6") / state

    def generic_feeders_dir(self, state: str) -> Path:
        """Feeders of route ``--feeder-dir`` (any OpenDSS model), one folder per feeder id (common.intake)."""
        return self.circuits_dir(state) / "_feeders"

    def circuit_filter(self, state: str) -> Path:
        return self.circuits_dir(state) / "circuit_filter.csv"

    def season_shared(self, state: str, season: str, feeder: str, rank: int = 1) -> Path:
        """Case-independent files of one feeder and season (PV shape, feeder context), on its design day of
        ``rank`` (``--days``: ranks 2.. in ``<feeder>__day<k>/``)."""
        return self.circuits_dir(state) / season / "_shared" / (feeder + ("_" + day_suffix(rank) if rank > 1 else ""))

    def shared_digest(self, state: str, season: str, feeder: str, rank: int = 1) -> Path:
        """The digest of a feeder's shared inputs as the last batch found them (phase 6 writes it,
        phase 7 compares each run's ``shared_digest`` with it)."""
        return self.season_shared(state, season, feeder, rank) / "shared_digest.txt"

    def design_dir(self, state: str, season: str, design: str) -> Path:
        return self.circuits_dir(state) / season / design

    def instance_dir(self, state: str, season: str, design: str, feeder: str, case: str) -> Path:
        return self.design_dir(state, season, design) / feeder / str(case)

    def day_instance_dir(self, state: str, season: str, design: str, feeder: str, case: str, rank: int) -> Path:
        """The instance of one design day of a run solved on several (``--days`` > 1): ``<case>/day<k>/``."""
        return self.instance_dir(state, season, design, feeder, case) / f"day{int(rank)}"

    def light_load_instance_dir(self, state: str, season: str, design: str, feeder: str, case: str) -> Path:
        """The instance of a run on its feeder's light-load day (``common.config.LIGHT_LOAD_SEASONS``):
        ``<case>/light_load/``, a plain OpenDSS instance of its own beside the peak day's."""
        return self.instance_dir(state, season, design, feeder, case) / LIGHT_LOAD_FOLDER

    def batch_log(self, state: str, season: str, design: str) -> Path:
        return self.design_dir(state, season, design) / "batch.log"

    def batch_index(self, state: str, season: str, design: str) -> Path:
        return self.design_dir(state, season, design) / "runs.csv"

    def batch_timings(self, state: str, season: str, design: str) -> Path:
        """Per-run timings and worker memory of the last batch (a log: never part of the results)."""
        return self.design_dir(state, season, design) / "timings.csv"

    @property
    def upgrade_costs_dir(self) -> Path:
        """The unit-cost tables of the upgrade step (``UPGRADE_COST_FILES``): NREL DISCO's generic database as
        published, copied here by sample/build_sample.py with its source and licence (``UPGRADE_COSTS_SOURCE``)."""
        return self.root / "upgrade_costs"

    # ---------------------------------------------------------------- phase 7
    @property
    def results_dir(self) -> Path:
        return self.phase("7")

    def result(self, key: str) -> Path:
        """A combined output of phase 7 by its key in RESULT_FILES."""
        return self.results_dir / RESULT_FILES[key]

    @property
    def results_plots(self) -> Path:
        return self.results_dir / "plots"


#: file names of a SMART-DS feeder folder (copied by phase 1b, compiled by phase 6)
SMARTDS_FILES = {
    "master": "Master.dss",
    "loads": "Loads.dss",
    "loadshapes": "LoadShapes.dss",
}

#: marker inside a feeder copy: the digest of the source folder it was copied from (copy_circuits.py
#: before the feeder intake; a copy holding it and no intake record is made again)
FEEDER_SOURCE_DIGEST = ".source_digest"

#: record inside a feeder copy made by ``common.intake.take_in``: source master, copied files' digests,
#: files referenced in place, circuit and object counts (JSON)
FEEDER_INTAKE_RECORD = ".intake.json"

#: state-wide plots of phase 2 (plot_parquet_differences.py), below ``profile_plots_dir``
PROFILE_PLOTS = {
    "peak_change": "building_peak_change.png",
    "upgrades": "variant_upgrades.png",
}

#: suffix of the record that a phase 2-5 output keeps of the inputs it was made from
LINEAGE_SUFFIX = ".inputs.json"


def lineage_record(path: Path) -> Path:
    """The hidden record beside an output of phases 2-5: its digest and its inputs' digests
    (``common.profiles.check_current`` compares them with the files on disk)."""
    path = Path(path)
    return path.with_name(f".{path.name}{LINEAGE_SUFFIX}")


#: NREL DISCO's generic upgrade unit-cost database, one CSV per sheet, as ../shared/data/upgrade_costs publishes
#: it (beside this repository; never copied into it): the sample builder copies it into
#: ``Workspace.upgrade_costs_dir``
SHARED_UPGRADE_COSTS = REPO_ROOT.parent / "shared" / "data" / "upgrade_costs"
#: the unit-cost tables of the upgrade step: key -> file name (in ``Workspace.upgrade_costs_dir`` or a user's folder)
UPGRADE_COST_FILES = {
    "lines": "lines.csv",
    "transformers": "transformers.csv",
    "voltage_regulators": "voltage_regulators.csv",
    "control_changes": "control_changes.csv",
    "misc": "misc.csv",
}
#: the record of where the workspace's cost tables came from (source, licence, SHA-256 of each file)
UPGRADE_COSTS_SOURCE = "SOURCE.json"

#: file names inside one instance folder (phase 6)
INSTANCE_FILES = {
    "master": "Master.dss",
    "assignments": "scenario_assignments.json",
    "timeseries": "timeseries.parquet",
    "summary": "summary.json",
}
#: what the upgrade step (6_instantiate_circuits/upgrade_circuit.py) writes in an instance folder: the list of
#: upgrades with their costs, and the upgraded variant of the instance (a folder that plain OpenDSS compiles:
#: its Master.dss redirects to the instance's, then applies upgrades.dss; a copy of the assignments beside it)
UPGRADE_FILES = {
    "upgrades": "upgrades.json",
    "variant": "upgraded",
    "commands": "upgrades.dss",
}

#: file names of phase 7's outputs, below ``<data>/7_results_analysis/``
RESULT_FILES = {
    "xlrm_results": "xlrm_results.parquet",
    "xlrm_results_csv": "xlrm_results.csv",
    "aggregate": "aggregate_m2_combined.parquet",
    "aggregate_csv": "aggregate_m2_combined.csv",
    "circuit_summary": "circuit_summary_combined.csv",
    "failures": "failures.csv",
    "stale_runs": "stale_runs.csv",
    "xlrm_long": "xlrm_long.parquet",
    "xlrm_long_csv": "xlrm_long.csv",
    "variables": "xlrm_variables.csv",
    "sensitivity": "sensitivity.csv",
    "sensitivity_skipped": "sensitivity_skipped.csv",
    "prim_boxes": "prim_boxes.csv",
    "prim_trajectory": "prim_trajectory.csv",
    "report": "report.html",
}
