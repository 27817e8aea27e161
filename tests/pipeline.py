"""Run the phases on a test workspace, in order, as `make run` does (helpers for the tests).

Each ``run_*`` function calls the phase scripts' ``main`` in-process and asserts it returned 0.
"""

from __future__ import annotations

from pathlib import Path

from common import config
from conftest import load_script

PHASE_1B = ("copy_circuits", "circuit_make_daily_list_sets", "review_parquet_matches", "match_smartds_parquets",
            "clean_up_bldgs", "select_rep_family")


def sample_smartds_root(data: Path) -> Path:
    return data / "sample" / "oedi" / config.SMARTDS_PREFIX


def sample_eulp_root(data: Path) -> Path:
    return data / "sample" / "oedi" / config.EULP_PREFIX


def run_phase1b(data: Path, state: str, smartds_root: Path | None = None, eulp_root: Path | None = None) -> None:
    smartds_root = smartds_root or sample_smartds_root(data)
    eulp_root = eulp_root or sample_eulp_root(data)
    for step in PHASE_1B:
        argv = ["--data-dir", str(data), "--state", state, "-q"]
        if step == "copy_circuits":
            argv += ["--smartds-root", str(smartds_root)]
        if step in ("match_smartds_parquets", "clean_up_bldgs"):
            argv += ["--eulp-root", str(eulp_root)]
        module = load_script(f"1b_smartds_eulp_match/{step}.py")
        assert module.main(argv) == 0, step


PROFILE_STEPS = (
    ("2_profiles_heat_pumps/scale_feeder_curves.py", True),
    ("2_profiles_heat_pumps/find_max_day_curve.py", True),
    ("3_kvar_kw_prep/rev_spec_kvar_kw_ratio.py", False),
    ("2_profiles_heat_pumps/get_scenario_csv_controls.py", True),
    ("4_profiles_heat_pumps_dm/make_dm_profiles.py", True),
    ("5_profiles_heat_pumps_un/make_un_profiles.py", True),
    ("2_profiles_heat_pumps/plot_parquet_differences.py", False),
)


def run_profiles(data: Path, state: str, eulp_root: Path | None = None) -> None:
    """Phases 2 to 5 in the order make run uses (phase 3 before the daily files)."""
    for script, takes_eulp in PROFILE_STEPS:
        argv = ["--data-dir", str(data), "--state", state, "-q"]
        if takes_eulp and eulp_root is not None:
            argv += ["--eulp-root", str(eulp_root)]
        assert load_script(script).main(argv) == 0, script
