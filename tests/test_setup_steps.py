"""The one step table (common/steps.py): README, the Makefile, run_pipeline.py and tests/pipeline.py
follow it, and run_pipeline.py stops at the first failing step with the step named."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from common import config
from common.steps import CASE_SET, STATE, STEPS, STUDY, plan, steps_of
from conftest import REPO
from pipeline import PHASE_1B, PROFILE_STEPS

RUNNER = REPO / "run_pipeline.py"
FIXED_FLAGS = sorted({flag for step in STEPS for flag in step.flags})


def _readme_rows() -> list[tuple[str, list[str]]]:
    """(step column, command words) of every row of README's phase table, in order."""
    text = (REPO / "README.md").read_text()
    start = text.index("| step | command |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        match = re.match(r"\|\s*([^|]+?)\s*\|\s*`python ([^`]+)`", line)
        assert match, f"README phase table row without a `python ...` command: {line}"
        rows.append((match.group(1), match.group(2).split()))
    return rows


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUNNER), *argv], capture_output=True, text=True)


def test_readme_phase_table_lists_the_table_scripts_in_order():
    rows = _readme_rows()
    assert [(phase, words[0]) for phase, words in rows] == [(step.phase, step.script) for step in STEPS]


def test_readme_phase_table_shows_each_step_fixed_flags():
    for (_, words), step in zip(_readme_rows(), STEPS):
        assert [flag for flag in FIXED_FLAGS if flag in words] == sorted(step.flags), step.name


def test_plan_runs_state_steps_per_state_and_phase6_per_season_and_design():
    commands = plan("/d", states=["NC", "TX"], seasons=["winter"], designs=["lhs", "sobol"])
    state_steps = [s for s in STEPS if s.scope == STATE]
    case_steps = [s for s in STEPS if s.scope == CASE_SET]
    study = [s for s in STEPS if s.scope == STUDY]
    per_state = len(state_steps) + 2 * len(case_steps)
    assert len(commands) == len(study) + 2 * per_state
    assert [c.where for c in commands[2:2 + per_state]] == ["NC"] * len(state_steps) + ["NC winter lhs",
                                                                                         "NC winter sobol"]
    assert commands[2 + per_state].where == "TX" and commands[-1].where == ""
    phase6 = [c.argv for c in commands if c.step.phase == "6"]
    assert phase6[1][:8] == ("--data-dir", "/d", "--state", "NC", "--season", "winter", "--design", "sobol")


def test_plan_passes_settings_only_to_the_steps_that_take_them():
    commands = plan("/d", states=["NC"], seasons=["winter"], designs=["lhs"], n_cases=4, replicates=2, workers=3,
                    source="/bucket")
    with_source = {c.step.name for c in commands if "--source" in c.argv}
    assert with_source == {s.name for s in STEPS if s.source}
    with_workers = [c.step.script for c in commands if "--workers" in c.argv]
    assert with_workers == ["6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py",
                            "7_results_analysis/sensitivity_analysis.py"]
    assert [c.argv for c in commands if "--n-cases" in c.argv] == [("--data-dir", "/d", "--n-cases", "4",
                                                                     "--replicates", "2")]


def test_step_argv_refuses_a_state_step_without_a_state():
    with pytest.raises(ValueError, match="give state"):
        steps_of("1b")[0].argv("/d")


def test_pipeline_helpers_come_from_the_table():
    assert PHASE_1B == ("copy_circuits", "circuit_make_daily_list_sets", "review_parquet_matches",
                        "match_smartds_parquets", "clean_up_bldgs", "select_rep_family")
    assert PROFILE_STEPS == (
        ("2_profiles_heat_pumps/scale_feeder_curves.py", True),
        ("2_profiles_heat_pumps/find_max_day_curve.py", True),
        ("3_kvar_kw_prep/rev_spec_kvar_kw_ratio.py", False),
        ("2_profiles_heat_pumps/get_scenario_csv_controls.py", True),
        ("4_profiles_heat_pumps_dm/make_dm_profiles.py", True),
        ("5_profiles_heat_pumps_un/make_un_profiles.py", True),
        ("2_profiles_heat_pumps/plot_parquet_differences.py", False),
    )


def test_every_step_script_exists_and_has_a_main():
    for step in STEPS:
        assert "def main(" in (REPO / step.script).read_text(), step.script


def test_runner_dry_run_prints_the_plan_with_stage_headings(tmp_path):
    result = _run("--data-dir", str(tmp_path), "--states", "CA", "--seasons", "summer", "--designs", "lhs",
                  "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    commands = plan(tmp_path, states=["CA"], seasons=["summer"], designs=["lhs"])
    assert [line.split()[0] for line in lines if not line.startswith("== ")] == [c.step.script for c in commands]
    assert "== CA phase 6: summer lhs instances and power flows" in lines
    assert not any(tmp_path.iterdir())


def test_runner_rejects_an_unknown_state_in_one_line():
    result = _run("--states", "ZZ", "--dry-run")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--states" in result.stderr


def test_runner_stops_at_the_first_failing_step_and_names_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the data folder's parent should be")
    result = _run("--data-dir", str(blocker / "data"), "--states", "NC", "-q")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert f"step 1/{len(plan('/d', states=['NC']))} sample/build_sample.py failed with exit status 2" in last
    assert "later steps not run" in last
    assert "== phase 0" not in result.stdout


def test_runner_stops_mid_run_after_the_steps_before_have_run(workspace, tmp_path):
    result = _run("--data-dir", str(workspace), "--states", "NC", "--n-cases", "4", "-q",
                  "--source", str(tmp_path / "no-bucket"))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "step 3/" in last and "1c_eulp_downloads/download_smartds.py for NC failed with exit status 2" in last
    assert "download_smartds.py: error: --source" in result.stderr  # the step's own line, above
    assert (workspace / "0_code_xlrm" / "mixes_lhs.json").is_file()  # phase 0 ran
    assert not (workspace / "1b_smartds_eulp_match").exists()        # phase 1b did not


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_calls_the_runner_and_names_no_phase_script(tmp_path):
    result = subprocess.run(["make", "-n", "-C", str(REPO), "run", f"VENV={tmp_path / 'venv'}",
                             "STATES=NC TX", "SEASONS=winter", "DESIGNS=lhs", "N_CASES=4", "WORKERS=1"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    run_line = next(line for line in result.stdout.splitlines() if "run_pipeline.py" in line)
    assert "--states NC TX --seasons winter --designs lhs" in run_line
    assert "--n-cases 4 --replicates 1 --workers 1 --source data/sample/oedi" in result.stdout
    assert not [step.script for step in STEPS if step.script in result.stdout]
    assert "the report (open in a browser)" in result.stdout


def test_make_study_runs_the_pipeline_with_the_study_settings_in_its_own_workspace(tmp_path):
    result = subprocess.run(["make", "-n", "-C", str(REPO), "study", f"VENV={tmp_path / 'venv'}",
                             "STUDY_STATES=NC", "STUDY_SEASONS=winter"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "N_CASES=256" in result.stdout and "REPLICATES=2" in result.stdout
    assert "DATA=\"data/study\"" in result.stdout or 'DATA="data/study"' in result.stdout


def test_plan_defaults_to_every_configured_state():
    commands = plan("/d")
    assert {c.where.split()[0] for c in commands if c.where} == set(config.STATES)


def test_declared_markers_are_applied():
    """The shared and browser markers select real tests (``pytest -m shared`` / ``-m "not browser"``)."""
    import subprocess
    import sys

    from conftest import REPO

    for marker, at_least in (("shared", 5), ("browser", 1)):
        out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", marker, "-p",
                              "no:cacheprovider", "tests"], cwd=REPO, capture_output=True, text=True).stdout
        selected = [line for line in out.splitlines() if "::" in line]
        assert len(selected) >= at_least, (marker, out[-500:])
