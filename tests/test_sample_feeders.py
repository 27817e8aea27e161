"""The sample's feeders with real-world features (sample/real_world.py): generic OpenDSS feeders for
``--feeder-dir`` and the SMART-DS feeder with a tie, regulator, capacitor and a solar scenario.

Every check runs the real engine on the built sample, compiling each master in place through
``common.dss.compile_master`` from a working directory that is not the feeder's.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from common import config, dss
from sample import build_sample as BS
from sample import real_world as RW

GENERIC_MASTERS = {
    "tie_regulator": "tie_regulator/circuit/Master_tie.dss",
    "tie_regulator_variant": "tie_regulator/circuit/Master.dss",
    "utility_a": "utility_a/OpenDSS/Master.dss",
    "utility_b": "utility_b/OpenDSS/Master.dss",
    "legacy_syntax": "legacy_syntax/Master.dss",
}
OPEN_TIE_FEEDERS = ("tie_regulator", "utility_a", "utility_b", "legacy_syntax")
SCENARIOS = ("base_timeseries", RW.SOLAR_SCENARIO)


def _manifest(sample_root: Path) -> dict:
    return json.loads((sample_root / "sample_manifest.json").read_text())


def _generic(sample_root: Path, feeder: str) -> dict:
    entries = {e["feeder"]: e for e in _manifest(sample_root)["generic_feeders"]["feeders"]}
    return entries[feeder]


def _smartds_folder(sample_root: Path, scenario: str) -> Path:
    entry = _manifest(sample_root)["smartds_feature_feeders"][0]
    sd = config.SMARTDS[entry["state"]]
    substation = entry["feeder"].split("--")[0]
    return (sample_root / "oedi" / config.SMARTDS_PREFIX / sd["year"] / entry["city"] / entry["subregion"] /
            "scenarios" / scenario / "opendss" / substation / entry["feeder"])


def _compile_elsewhere(master: Path, cwd: Path, monkeypatch) -> object:
    """Compile ``master`` in place while the process sits in another folder; the folder stays put."""
    monkeypatch.chdir(cwd)
    engine = dss.compile_master(master)
    assert Path(os.getcwd()) == cwd
    return engine


def _snapshot(engine, loadmult: float = 1.0) -> None:
    dss.run_commands(f"Set mode=snapshot loadmult={loadmult}\nSolve")
    assert engine.Solution.Converged()


def _element_state(engine, name: str) -> tuple[bool, bool]:
    """(enabled, any terminal open) of a circuit element."""
    engine.Circuit.SetActiveElement(name)
    assert engine.CktElement.Name().lower() == name.lower(), f"{name} is not in the circuit"
    is_open = any(engine.CktElement.IsOpen(t, 0) for t in (1, 2))
    return bool(engine.CktElement.Enabled()), bool(is_open)


def _energised_v_pu(engine) -> np.ndarray:
    v = engine.Circuit.AllBusMagPu()
    return v[v > config.ENERGISED_PU]


# ------------------------------------------------------------------------------------------- generic feeders
@pytest.mark.parametrize("key", sorted(GENERIC_MASTERS))
def test_generic_feeder_compiles_in_place_and_solves(sample_root, tmp_path, monkeypatch, key):
    master = sample_root / "feeders" / GENERIC_MASTERS[key]
    engine = _compile_elsewhere(master, tmp_path, monkeypatch)
    _snapshot(engine)
    entry = _generic(sample_root, key.removesuffix("_variant"))
    assert engine.Loads.Count() == entry["loads"]
    assert dss.isolated_elements()["loads"] == []
    v = _energised_v_pu(engine)
    assert len(v) == len(engine.Circuit.AllBusMagPu())  # every node energised
    assert 0.95 < v.min() and v.max() < 1.05


@pytest.mark.parametrize("feeder", OPEN_TIE_FEEDERS)
def test_normally_open_tie_is_open_and_isolates_no_load(sample_root, tmp_path, monkeypatch, feeder):
    entry = _generic(sample_root, feeder)
    engine = _compile_elsewhere(sample_root / "feeders" / entry["master"], tmp_path, monkeypatch)
    _snapshot(engine)
    enabled, is_open = _element_state(engine, entry["tie"])
    assert (not enabled) if entry["tie_open_by"] == "enabled=no" else (enabled and is_open)
    if enabled:
        assert np.abs(engine.CktElement.CurrentsMagAng()[0::2]).max() < 1e-3
    ends = list(engine.CktElement.BusNames())
    assert dss.isolated_elements()["loads"] == []
    # both ends of the tie are fed from their own main
    for bus in ends:
        engine.Circuit.SetActiveBus(bus)
        assert engine.Bus.puVmagAngle()[0] > 0.95


@pytest.mark.parametrize("feeder", OPEN_TIE_FEEDERS)
def test_regulator_bank_exists_with_controls(sample_root, tmp_path, monkeypatch, feeder):
    entry = _generic(sample_root, feeder)
    engine = _compile_elsewhere(sample_root / "feeders" / entry["master"], tmp_path, monkeypatch)
    assert len(entry["regulators"]) == 3
    controls = {n.lower() for n in engine.RegControls.AllNames()}
    assert {c.split(".", 1)[1].lower() for c in entry["regcontrols"]} == controls
    for name in entry["regulators"]:
        assert _element_state(engine, name)[0]
    _snapshot(engine)
    engine.RegControls.First()
    assert engine.RegControls.TapNumber() > 0  # the regulator boosts the 1.0 pu source


def test_tie_regulator_has_a_switched_capacitor(sample_root, tmp_path, monkeypatch):
    entry = _generic(sample_root, "tie_regulator")
    engine = _compile_elsewhere(sample_root / "feeders" / entry["master"], tmp_path, monkeypatch)
    assert engine.Capacitors.AllNames() == [entry["capacitor"].split(".", 1)[1]]
    assert [f"CapControl.{n}" for n in engine.CapControls.AllNames()] == [entry["capcontrol"]]
    _snapshot(engine, loadmult=1.0)
    engine.Capacitors.Name(engine.Capacitors.AllNames()[0])
    assert list(engine.Capacitors.States()) == [1]   # on at peak
    _snapshot(engine, loadmult=0.4)
    assert list(engine.Capacitors.States()) == [0]   # off at light load


def test_named_master_and_the_folders_master_are_different_circuits(sample_root, tmp_path, monkeypatch):
    entry = _generic(sample_root, "tie_regulator")
    named = _compile_elsewhere(sample_root / "feeders" / entry["master"], tmp_path, monkeypatch)
    first = (named.Circuit.Name(), named.Circuit.NumCktElements(), _element_state(named, entry["tie"]))
    other = dss.compile_master(sample_root / "feeders" / entry["variant_master"])
    second = (other.Circuit.Name(), other.Circuit.NumCktElements(), _element_state(other, entry["tie"]))
    assert Path(entry["master"]).parent == Path(entry["variant_master"]).parent
    assert first[0] == "tie_regulator" and second[0] == "tie_regulator_closed"
    assert first[1] != second[1]               # the variant has no capacitor
    assert first[2] == (True, True) and second[2] == (True, False)  # tie open / closed


def test_same_named_folders_hold_different_circuits(sample_root, tmp_path, monkeypatch):
    a, b = _generic(sample_root, "utility_a"), _generic(sample_root, "utility_b")
    pa, pb = sample_root / "feeders" / a["master"], sample_root / "feeders" / b["master"]
    assert pa.parent.name == pb.parent.name == "OpenDSS" and pa.name == pb.name == "Master.dss"
    circuits = []
    for path in (pa, pb):
        engine = _compile_elsewhere(path, tmp_path, monkeypatch)
        _snapshot(engine)
        circuits.append((engine.Circuit.Name(), engine.Loads.Count(), round(-engine.Circuit.TotalPower()[0], 3)))
    assert circuits[0][0] == "utility_a" and circuits[1][0] == "utility_b"
    assert circuits[0][1:] != circuits[1][1:]


def test_tie_regulator_layout_reaches_parent_and_subfolders(sample_root):
    master = (sample_root / "feeders" / GENERIC_MASTERS["tie_regulator"]).read_text()
    assert "Redirect ../linecodes/LineCodes.dss" in master
    assert "Redirect loads/Loads.dss" in master
    shapes = dss.read_dss_objects(sample_root / "feeders/tie_regulator/circuit/LoadShapes.dss", ("loadshape",))
    for shape in shapes:
        ref = dss.file_reference(shape.get("mult"))
        assert ref.startswith("../shapes/")
        values = np.loadtxt(sample_root / "feeders/tie_regulator/circuit" / ref)
        assert len(values) == int(shape.get("npts"))
        assert values.max() == pytest.approx(1.0) and values.min() >= 0


def test_tie_regulator_loads_use_yearly_daily_and_no_shapes(sample_root, tmp_path, monkeypatch):
    entry = _generic(sample_root, "tie_regulator")
    engine = _compile_elsewhere(sample_root / "feeders" / entry["master"], tmp_path, monkeypatch)
    npts = {}
    for name in engine.LoadShape.AllNames():
        engine.LoadShape.Name(name)
        npts[name.lower()] = engine.LoadShape.Npts()
    kinds = {"yearly": set(), "daily": set(), "none": set()}
    for name in engine.Loads.AllNames():
        engine.Loads.Name(name)
        yearly, daily = engine.Loads.Yearly().lower(), engine.Loads.Daily().lower()
        if daily:  # the engine also reports a daily-only load's daily shape as its yearly one
            assert npts[daily] == 24 and yearly in ("", daily)
            kinds["daily"].add(name)
        elif yearly:
            assert npts[yearly] == 8760
            kinds["yearly"].add(name)
        else:
            kinds["none"].add(name)
    assert kinds["none"] == set(entry["loads_without_shape"])
    assert kinds["daily"] and len(kinds["yearly"]) > 20


def test_utility_a_reads_its_shapes_with_csvfile(sample_root, tmp_path, monkeypatch):
    entry = _generic(sample_root, "utility_a")
    engine = _compile_elsewhere(sample_root / "feeders" / entry["master"], tmp_path, monkeypatch)
    text = (sample_root / "feeders/utility_a/OpenDSS/LoadShapes.dss").read_text()
    assert "csvfile=../profiles/" in text
    for name in entry["shapes"]["yearly_8760_csvfile"]:
        engine.LoadShape.Name(name)
        assert engine.LoadShape.Npts() == 8760
        assert engine.LoadShape.PMult().max() == pytest.approx(1.0)


def test_legacy_feeder_uses_object_circuit_and_continuations(sample_root, tmp_path, monkeypatch):
    entry = _generic(sample_root, "legacy_syntax")
    master = sample_root / "feeders" / entry["master"]
    text = master.read_text()
    assert "New object=circuit.legacy_1" in text
    assert any(line.startswith("~") for line in text.splitlines())
    assert (master.parent / "Lines.DSS").read_text().count("\n~ ") > 10
    engine = _compile_elsewhere(master, tmp_path, monkeypatch)
    assert engine.Circuit.Name() == "legacy_1"
    daily = []
    for name in engine.Loads.AllNames():
        engine.Loads.Name(name)
        daily.append(engine.Loads.Daily().lower() == "day24")
    assert sum(daily) == entry["loads_with_daily"] > 0


# ------------------------------------------------------------------------------------------- SMART-DS route
def test_smartds_feature_subregion_is_not_studied_by_default(sample_root):
    entry = _manifest(sample_root)["smartds_feature_feeders"][0]
    assert entry["subregion"] not in config.SMARTDS[entry["state"]]["subregions"]
    assert entry["feeder"] not in {f["feeder"] for f in _manifest(sample_root)["feeders"]}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_smartds_feature_feeder_solves_with_tie_open_regulator_and_capacitor(sample_root, tmp_path, monkeypatch,
                                                                              scenario):
    entry = _manifest(sample_root)["smartds_feature_feeders"][0]
    engine = _compile_elsewhere(_smartds_folder(sample_root, scenario) / "Master.dss", tmp_path, monkeypatch)
    _snapshot(engine, loadmult=0.4)
    assert engine.Loads.Count() == entry["loads"]
    assert dss.isolated_elements()["loads"] == []
    assert _element_state(engine, entry["tie"])[0] is False
    for name in entry["regulators"] + [entry["capacitor"]]:
        assert _element_state(engine, name)[0]
    assert len(engine.RegControls.AllNames()) == 3 and len(engine.CapControls.AllNames()) == 1
    v = _energised_v_pu(engine)
    assert 0.9 < v.min() and v.max() <= 1.05
    assert engine.PVsystems.Count() == (entry["pv_systems"] if scenario == RW.SOLAR_SCENARIO else 0)


def test_smartds_feature_feeder_loads_are_half_loads_on_yearly_profiles(sample_root):
    folder = _smartds_folder(sample_root, "base_timeseries")
    loads = dss.read_dss_objects(folder / "Loads.dss", ("load",))
    halves = [ld for ld in loads if ld.name.endswith(("_1", "_2"))]
    assert len(halves) % 2 == 0 and len(halves) > 40
    subregion = folder.parents[4]
    for shape in dss.read_dss_objects(folder / "LoadShapes.dss", ("loadshape",)):
        assert (folder / dss.file_reference(shape.get("mult"))).resolve().is_file()
        cls, _, pid, _ = shape.name.split("_")
        assert (subregion / "load_data" / f"{cls}_{pid}.parquet").is_file()
    assert all(ld.get("yearly") for ld in loads)


def test_solar_scenario_pvshapes_point_into_pv_profiles(sample_root):
    folder = _smartds_folder(sample_root, RW.SOLAR_SCENARIO)
    entry = _manifest(sample_root)["smartds_feature_feeders"][0]
    shapes = dss.read_dss_objects(folder / "PVShapes.dss", ("loadshape",))
    assert sorted(s.name for s in shapes) == sorted(entry["pv_shapes"])
    for shape in shapes:
        ref = dss.file_reference(shape.get("mult"))
        assert ref.startswith("../../../pv-profiles/")
        path = (folder / ref).resolve()
        assert path.parent == (folder.parents[2] / "pv-profiles").resolve()
        values = np.loadtxt(path)
        assert values.shape == (35040,) and 0 <= values.min() and values.max() <= 1.0
    used = {pv.get("yearly") for pv in dss.read_dss_objects(folder / "PVSystems.dss", ("pvsystem",))}
    assert used <= {s.name for s in shapes}
    base = _smartds_folder(sample_root, "base_timeseries")
    assert not (base / "PVShapes.dss").exists() and not (base / "PVSystems.dss").exists()
    assert (base / "Lines.dss").read_bytes() == (folder / "Lines.dss").read_bytes()


# ------------------------------------------------------------------------------------------- build
def test_real_world_feeders_build_deterministically(tmp_path):
    digests = []
    for run in ("a", "b"):
        root = tmp_path / run
        generic = RW.build_generic_feeders(root / "feeders", BS.SAMPLE_SEED)
        smartds = RW.build_smartds_features(root / "oedi", BS.SAMPLE_SEED, config.SMARTDS_PREFIX, "2018", "AUS")
        files = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in sorted(root.rglob("*")) if p.is_file()}
        digests.append((files, json.dumps([generic, smartds], sort_keys=True)))
    assert digests[0] == digests[1]
    assert any(name.endswith("Master_tie.dss") for name in digests[0][0])
