"""Honest dependencies: what the code imports is declared in pyproject.toml, what is declared is
pinned in requirements.txt (the lock), the lock is complete and is what is installed, and the
Python baseline is the same in pyproject.toml, the Makefile and README."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO

SKIP_DIRS = {".venv", "data", "build", ".git", "__pycache__", ".pytest_cache"}
PROJECT = canonicalize_name("dss-xlrm")


def _in_virtual_env(path: Path) -> bool:
    """Inside a virtual environment under the checkout, whatever its name (``make ... VENV=venv``)."""
    return any((REPO / parent / "pyvenv.cfg").is_file() for parent in path.relative_to(REPO).parents
               if parent != Path("."))


def _python_files() -> list[Path]:
    return sorted(p for p in REPO.rglob("*.py")
                  if not SKIP_DIRS.intersection(p.relative_to(REPO).parts) and "egg-info" not in str(p)
                  and not _in_virtual_env(p))


@cache
def _local_modules() -> frozenset[str]:
    """Names the repository's own files and packages import as (scripts' helper modules too)."""
    names = {p.stem for p in _python_files()}
    names |= {p.parent.name for p in _python_files() if p.name == "__init__.py"}
    return frozenset(names)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level module name, imported at module level?) of every import in a file, with the
    modules named in ``pytest.importorskip("...")`` (never module level)."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name.split(".")[0], top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module.split(".")[0], top))
            elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                  and child.func.attr == "importorskip" and child.args
                  and isinstance(child.args[0], ast.Constant)):
                found.append((str(child.args[0].value).split(".")[0], False))
            visit(child, inner)

    visit(ast.parse(path.read_text(), filename=str(path)), True)
    return found


@cache
def _third_party_imports() -> dict[str, list[tuple[str, bool]]]:
    """module -> [(file, module level?)] for every import that is neither stdlib nor local."""
    out: dict[str, list[tuple[str, bool]]] = {}
    for path in _python_files():
        for module, top in _imports(path):
            if module in sys.stdlib_module_names or module in _local_modules() or module == "__future__":
                continue
            out.setdefault(module, []).append((path.relative_to(REPO).as_posix(), top))
    return out


@cache
def _packages_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def _distribution_of(module: str) -> str:
    dists = _packages_distributions().get(module)
    assert dists, f"{module} is imported but no installed distribution provides it: declare it in pyproject.toml"
    return canonicalize_name(dists[0])


@cache
def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _declared() -> dict[str, set[str]]:
    """group ("core" or an extra) -> canonical names declared in it (the project itself left out)."""
    project = _pyproject()["project"]
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}
    return {group: {canonicalize_name(Requirement(r).name) for r in reqs} - {PROJECT}
            for group, reqs in groups.items()}


def _declared_requirements() -> list[Requirement]:
    project = _pyproject()["project"]
    reqs = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return [r for r in map(Requirement, reqs) if canonicalize_name(r.name) != PROJECT]


@cache
def _lock() -> dict[str, str]:
    """canonical name -> pinned version of every line of requirements.txt (``-e .`` left out)."""
    pins: dict[str, str] = {}
    for number, raw in enumerate((REPO / "requirements.txt").read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line or line == "-e .":
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"requirements.txt:{number}: {raw!r} is not pinned"
        name = canonicalize_name(req.name)
        assert name not in pins, f"requirements.txt:{number}: {req.name} pinned twice"
        pins[name] = specs[0].version
    return pins


def test_every_third_party_import_is_declared():
    declared = set().union(*_declared().values())
    missing = {module: uses[0][0] for module, uses in _third_party_imports().items()
               if _distribution_of(module) not in declared}
    assert not missing, f"imported but not declared in pyproject.toml (module: first file): {missing}"


def test_module_level_imports_of_the_pipeline_are_core_dependencies():
    core = _declared()["core"]
    wrong = sorted((module, path) for module, uses in _third_party_imports().items() for path, top in uses
                   if top and not path.startswith("tests/") and _distribution_of(module) not in core)
    assert not wrong, f"an extra's package imported at module level (import it where it is used): {wrong}"


def test_every_declared_package_is_pinned_within_its_range():
    pins = _lock()
    for req in _declared_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared in pyproject.toml but not pinned in requirements.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} is not {req}"


def test_the_lock_is_complete():
    pins = _lock()
    for name, version in pins.items():
        for text in metadata.requires(name) or ():
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            needed = canonicalize_name(req.name)
            assert needed in pins, f"{name} needs {req}, which requirements.txt does not pin"
            assert req.specifier.contains(pins[needed], prereleases=True), \
                f"{name} needs {req}; requirements.txt pins {needed}=={pins[needed]}"


def test_the_installed_packages_are_the_lock():
    wrong = {name: (version, metadata.version(name)) for name, version in _lock().items()
             if metadata.version(name) != version}
    assert not wrong, f"installed versions differ from requirements.txt (pin, installed): {wrong}: make install"


def test_python_baseline_is_312_everywhere():
    assert _pyproject()["project"]["requires-python"] == ">=3.12"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^MIN_PYTHON := 3\.12$", makefile, re.M)
    readme = (REPO / "README.md").read_text()
    assert "Python 3.12 or newer" in readme and "3.10" not in readme
    assert sys.version_info >= (3, 12)
