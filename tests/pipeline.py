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
