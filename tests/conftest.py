"""Shared test fixtures: phase scripts loaded by path, the embedded sample, workspaces.

The phase folders start with digits, so their scripts are loaded with :func:`load_script` and
tests call their ``main([...])`` and pure functions directly. The sample is built once per test
session (or reused from ``./data/sample`` when that holds the same sample version), and every test
workspace links to it read-only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

# one BLAS thread per process before numpy loads: the suite runs on 2 shared cores, and a multi-threaded
# OpenBLAS made SALib's kernel estimates ~30x slower there (the pipeline's own pools set the same)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_SMARTDS_FEEDER = (SHARED_DATA / "smartds" / "2018" / "AUS" / "P1U" / "scenarios" / "base_timeseries" /
                         "opendss" / "p1uhs21_1247" / "p1uhs21_1247--p1udt5257")
IEEE13 = SHARED_DATA / "ieee13" / "IEEE13Nodeckt.dss"

_SHARED_ABSENT = pytest.mark.skipif(not SHARED_DATA.is_dir(),
                                    reason="../shared/data (reference feeders) is not beside this checkout")


def requires_shared(test):
    """Mark a test that needs ../shared/data: marker ``shared`` (``pytest -m "not shared"`` leaves it
    out) and a skip with the reason when the folder is absent."""
    return pytest.mark.shared(_SHARED_ABSENT(test))

_loaded: dict[str, ModuleType] = {}


def load_script(relative: str) -> ModuleType:
    """Import a phase script by its path from the repository root (cached)."""
    if relative in _loaded:
        return _loaded[relative]
    path = REPO / relative
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the phase's own helper modules
    name = "phase_" + relative.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _loaded[relative] = module
    return module


def _sample_is_current(folder: Path) -> bool:
    from sample.build_sample import SAMPLE_SEED, SAMPLE_VERSION

    manifest = folder / "sample_manifest.json"
    if not manifest.is_file():
        return False
    data = json.loads(manifest.read_text())
    return data.get("version") == SAMPLE_VERSION and data.get("seed") == SAMPLE_SEED


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded sample folder (``<data>/sample``), built once per session if needed."""
    reuse = REPO / "data" / "sample"
    if os.environ.get("DSS_XLRM_TEST_FRESH_SAMPLE") != "1" and _sample_is_current(reuse):
        return reuse
    build = load_script("sample/build_sample.py")
    data = tmp_path_factory.mktemp("sample-data")
    assert build.main(["--data-dir", str(data), "-q"]) == 0
    return data / "sample"


def make_workspace(root: Path, sample: Path) -> Path:
    """A workspace folder whose ``sample`` links to the session's sample."""
    root.mkdir(parents=True, exist_ok=True)
    link = root / "sample"
    if not link.exists():
        link.symlink_to(sample, target_is_directory=True)
    return root


@pytest.fixture
def workspace(tmp_path: Path, sample_root: Path) -> Path:
    return make_workspace(tmp_path / "data", sample_root)


def copy_workspace(source: Path, target: Path) -> Path:
    """A writable copy of a prepared workspace (the sample stays a link)."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name == "sample":
            (target / "sample").symlink_to(item.resolve(), target_is_directory=True)
        elif item.is_dir():
            shutil.copytree(item, target / item.name, symlinks=True)
        else:
            shutil.copy2(item, target / item.name)
    return target


@pytest.fixture(scope="session")
def prepared_nc(tmp_path_factory: pytest.TempPathFactory, sample_root: Path) -> Path:
    """A workspace with phases 0 (4 cases per design), 1b and 2-5 done for NC on the sample.

    Read-only for tests: a test that writes makes its own copy with :func:`copy_workspace`.
    """
    from pipeline import run_phase1b, run_profiles, sample_eulp_root

    data = make_workspace(tmp_path_factory.mktemp("prepared-nc") / "data", sample_root)
    assert load_script("0_code_xlrm/run_mix_generator.py").main(["--data-dir", str(data), "--n-cases", "4", "-q"]) == 0
    run_phase1b(data, "NC")
    run_profiles(data, "NC", eulp_root=sample_eulp_root(data))
    return data
