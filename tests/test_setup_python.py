"""Which Python the Makefile makes .venv with (tools/find_python.sh) and when it remakes .venv
(tools/make_venv.sh, the Makefile's install rule).

The machines this runs on have the layout these tests rebuild in a temporary folder: pyenv's
``python3.12`` shim fails ("command not found") unless PYENV_VERSION is set, ``python3`` is older
than 3.12, and the real 3.12 lives in ``$(pyenv root)/versions/3.12.*/bin``. The "old Python" and
the failing shim are small scripts that answer as those do; the good Python is the real interpreter
running the tests (>= 3.12, or the tests would not have got this far).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

FIND = REPO / "tools" / "find_python.sh"
MAKE_VENV = REPO / "tools" / "make_venv.sh"
MIN = "3.12"
SH = shutil.which("sh") or "/bin/sh"

# what pyenv's shim does for a version that is installed but not selected
FAILING_SHIM = '#!/bin/sh\necho "pyenv: $(basename "$0"): command not found" >&2\nexit 127\n'
# what a Python 3.11 prints for find_python.sh's probe
OLD_PYTHON = '#!/bin/sh\necho "3 11 $0"\n'


def _script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def _machine(tmp_path: Path) -> dict[str, str]:
    """PATH with a failing python3.12/python3.13 shim and an old python3; a pyenv root whose
    versions/3.12.9 holds the real interpreter."""
    bin_dir = tmp_path / "bin"
    _script(bin_dir / "python3.13", FAILING_SHIM)
    _script(bin_dir / "python3.12", FAILING_SHIM)
    _script(bin_dir / "python3", OLD_PYTHON)
    good = tmp_path / "pyenv" / "versions" / "3.12.9" / "bin" / "python3"
    good.parent.mkdir(parents=True)
    good.symlink_to(sys.executable)
    return {"PATH": str(bin_dir), "PYENV_ROOT": str(tmp_path / "pyenv"), "HOME": str(tmp_path)}


def _find(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SH, str(FIND), *args], env=env, capture_output=True, text=True)


def test_find_python_passes_over_a_failing_shim_and_an_old_python3_to_pyenv_versions(tmp_path):
    env = _machine(tmp_path)
    result = _find(env, MIN)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "pyenv" / "versions" / "3.12.9" / "bin" / "python3")
    assert "python3.12 (does not run)" in result.stderr and "python3 (3.11)" in result.stderr


def test_find_python_prefers_a_working_python3_on_path(tmp_path):
    env = _machine(tmp_path)
    (tmp_path / "bin" / "python3").unlink()
    (tmp_path / "bin" / "python3").symlink_to(sys.executable)
    result = _find(env, MIN)
    assert result.returncode == 0 and result.stdout.strip() == str(tmp_path / "bin" / "python3")


def test_find_python_with_nothing_new_enough_says_what_to_install_in_one_line(tmp_path):
    env = _machine(tmp_path)
    shutil.rmtree(tmp_path / "pyenv")
    result = _find(env, MIN)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "no Python 3.12 or newer found" in result.stderr and "install Python 3.12" in result.stderr


def test_find_python_never_swaps_the_python_you_named(tmp_path):
    env = {**_machine(tmp_path), "PYTHON": str(tmp_path / "bin" / "python3")}
    result = _find(env, MIN)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"PYTHON={env['PYTHON']} is not")


def test_find_python_takes_the_python_you_named(tmp_path):
    result = _find({**_machine(tmp_path), "PYTHON": sys.executable}, MIN)
    assert result.returncode == 0 and result.stdout.strip() == sys.executable


@pytest.mark.parametrize("which, expected", [("good", 0), ("old", 1), ("missing", 1)])
def test_find_python_check(tmp_path, which, expected):
    env = _machine(tmp_path)
    python = {"good": sys.executable, "old": str(tmp_path / "bin" / "python3"),
              "missing": str(tmp_path / "nothing")}[which]
    assert _find(env, "--check", python, MIN).returncode == expected


# ------------------------------------------------------------------------------------------- .venv
def _make_venv(venv: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**env, "PATH": env["PATH"] + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run([SH, str(MAKE_VENV), str(venv), MIN], env=full, capture_output=True, text=True)


def _old_venv(venv: Path, *, runs: bool) -> None:
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n")
    if runs:
        _script(venv / "bin" / "python", OLD_PYTHON)
    else:
        (venv / "bin" / "python").symlink_to(venv / "gone" / "python3.11")
    (venv / ".installed").write_text("")


def _venv_python_version(venv: Path) -> tuple[int, int]:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def test_make_venv_remakes_a_venv_of_an_older_python(tmp_path):
    venv = tmp_path / "venv"
    _old_venv(venv, runs=True)
    result = _make_venv(venv, _machine(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "made by Python 3.11.7, older than 3.12: removing it" in result.stderr
    assert _venv_python_version(venv) >= (3, 12)
    assert not (venv / ".installed").exists()  # so make install installs the lock again


def test_make_venv_remakes_a_venv_whose_python_is_gone(tmp_path):
    venv = tmp_path / "venv"
    _old_venv(venv, runs=False)
    result = _make_venv(venv, _machine(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "which no longer runs" in result.stderr
    assert _venv_python_version(venv) >= (3, 12)


def test_make_venv_keeps_a_good_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / ".installed").write_text("")
    result = _make_venv(venv, _machine(tmp_path))
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    assert (venv / ".installed").exists()


def test_make_venv_refuses_a_folder_that_is_not_a_venv(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "notes.txt").write_text("mine")
    result = _make_venv(venv, _machine(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "is not a virtual environment" in result.stderr
    assert (venv / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("good", [True, False])
def test_make_install_remakes_an_old_venv_even_when_its_stamp_is_newer(tmp_path, good):
    venv = tmp_path / "venv"
    if good:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    else:
        _old_venv(venv, runs=True)
    (venv / ".installed").write_text("")  # newer than requirements.txt and pyproject.toml
    result = subprocess.run(["make", "-n", "-C", str(REPO), "install", f"VENV={venv}"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert ("make_venv.sh" in result.stdout) is not good
