"""Run the phases on a test workspace, in order, as `make run` does (helpers for the tests).

The steps and their flags come from the one step table, ``common/steps.py``, that ``make run``
(through ``run_pipeline.py``) follows too. Each ``run_*`` function calls the steps' ``main``
in-process and asserts it returned 0. The tests start from the embedded sample's bucket mirror
instead of phase 1c's downloads: phase 1b reads the sample's SMART-DS and EULP trees directly.
"""

from __future__ import annotations

from pathlib import Path

from common import config
from common.steps import Step, steps_of
from conftest import load_script

#: phase 1b's steps, by script name (``copy_circuits``, ...), in run order
PHASE_1B = tuple(Path(step.script).stem for step in steps_of("1b"))

#: phases 2 to 5, in run order (phase 3 before the daily files): (script, whether it takes --eulp-root)
PROFILE_STEPS = tuple((step.script, step.eulp_root) for step in steps_of("2", "3", "4", "5"))


def sample_smartds_root(data: Path) -> Path:
    return data / "sample" / "oedi" / config.SMARTDS_PREFIX


def sample_eulp_root(data: Path) -> Path:
    return data / "sample" / "oedi" / config.EULP_PREFIX


def run_step(step: Step, data: Path, **settings: object) -> None:
    """One step in-process, with the flags the table gives it (and -q); asserts it returned 0."""
    argv = step.argv(data, quiet=True, **settings)  # type: ignore[arg-type]
    assert load_script(step.script).main(argv) == 0, step.name


def run_phase1b(data: Path, state: str, smartds_root: Path | None = None, eulp_root: Path | None = None) -> None:
    smartds_root = smartds_root or sample_smartds_root(data)
    eulp_root = eulp_root or sample_eulp_root(data)
    for step in steps_of("1b"):
        run_step(step, data, state=state, smartds_root=smartds_root, eulp_root=eulp_root)


def run_profiles(data: Path, state: str, eulp_root: Path | None = None) -> None:
    """Phases 2 to 5 in the order make run uses (phase 3 before the daily files)."""
    for step in steps_of("2", "3", "4", "5"):
        run_step(step, data, state=state, eulp_root=eulp_root)


def solve_cases(data: Path, cases: dict[str, dict], feeder: str, season: str = "summer", state: str = "NC") -> dict:
    """Write ``cases`` (keys "0".."N", case "0" included) as the workspace's LHS mixes, solve every case but "0" on
    one feeder and season with phase 6 (2 workers) and return their summaries {key: summary.json}, each ok."""
    import json

    from common.paths import Workspace

    ws = Workspace(data)
    ws.mixes("lhs").write_text(json.dumps(cases, indent=1), encoding="utf-8")
    keys = sorted((k for k in cases if k != "0"), key=int)
    apply = load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")
    assert apply.main(["--data-dir", str(data), "--state", state, "--season", season, "--design", "lhs",
                       "--feeders", feeder, "--cases", ",".join(keys), "--run", "--workers", "2", "-q"]) == 0
    out = {}
    for key in keys:
        summary = json.loads((ws.instance_dir(state, season, "lhs", feeder, key) / "summary.json").read_text())
        assert summary["status"] == "ok", summary["message"]
        out[key] = summary
    return out
