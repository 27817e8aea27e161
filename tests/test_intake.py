"""common/intake.py: any OpenDSS feeder taken into the workspace as the engine reads it, verified.

Real files only: the IEEE 13, 34 and 123-bus feeders of ../shared/data in their own layouts, and small
feeders written by the tests in the forms real models use (``../`` references, subfolders, two masters
in one folder, folders with the same name, SMART-DS profiles and PV shapes outside the feeder folder).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import config, dss, intake
from common.paths import FEEDER_INTAKE_RECORD, Workspace
from conftest import IEEE13, SHARED_DATA, load_script, requires_shared

copy_circuits = load_script("1b_smartds_eulp_match/copy_circuits.py")

IEEE = SHARED_DATA / "ieee"
LINES = ("New Linecode.lc nphases=3 r1=0.3 x1=0.6 r0=0.6 x0=1.2 units=km normamps=400\n"
         "New Line.l1 bus1=src bus2=b1 linecode=lc length=2 units=km\n"
         "New Line.l2 bus1=b1 bus2=b2 linecode=lc length=1 units=km\n")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _master(circuit: str = "New Circuit.tiny basekv=12.47 bus1=src pu=1.02", *, body: str = "Redirect Lines.dss\n"
            "New Load.ld1 bus1=b2 phases=3 kV=12.47 kW=500 kvar=100\n") -> str:
    return (f"Clear\n{circuit}\n{body}Set Voltagebases=[12.47]\nCalcvoltagebases\nSolve\n"
            "Export voltages\nPlot profile\n")


def _tiny(folder: Path, name: str = "Master.dss", **kw: str) -> Path:
    _write(folder / "Lines.dss", LINES)
    return _write(folder / name, _master(**kw))


def _same_circuit(original: Path, copy: Path) -> intake.Snapshot:
    """Compile the original in place and the copy, each on its own; assert they are the same circuit."""
    engine = intake.compile_in_place(original)
    reference = intake.snapshot(engine)
    dss.compile_master(copy, strip=False)
    got = intake.snapshot(dss.engine())
    assert intake.differences(reference, got) == []
    np.testing.assert_allclose(np.abs(got.volts), np.abs(reference.volts), rtol=1e-12)
    return got


# ------------------------------------------------------------------------------------------- IEEE feeders
@requires_shared
@pytest.mark.parametrize("master, circuit, copied", [
    (IEEE13, "ieee13nodeckt", {"IEEE13Nodeckt.dss", "IEEELineCodes.DSS", "IEEE13Node_BusXY.csv"}),
    (IEEE / "34Bus" / "ieee34Mod1.dss", "ieee34-1",
     {"34Bus/ieee34Mod1.dss", "34Bus/IEEELineCodes.DSS", "IEEELineCodes.DSS"}),
    (IEEE / "123Bus" / "IEEE123Master.dss", "ieee123",
     {"123Bus/IEEE123Master.dss", "123Bus/IEEELineCodes.DSS", "IEEELineCodes.DSS", "123Bus/IEEE123Regulators.DSS",
      "123Bus/IEEE123Loads.DSS"}),
], ids=["ieee13", "ieee34", "ieee123"])
def test_take_in_ieee_feeder_from_another_directory_compiles_to_the_same_circuit(tmp_path, monkeypatch, master,
                                                                                  circuit, copied):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = intake.take_in(os.path.relpath(master, elsewhere), tmp_path / "feeders")
    assert Path.cwd() == elsewhere
    assert result.circuit == circuit and result.updated
    assert set(result.files) == copied
    assert result.elements["Line"] > 0 and result.elements["Load"] > 0
    _same_circuit(master, result.master)


@requires_shared
def test_ieee13_in_a_layout_with_parent_folder_references(tmp_path):
    """The IEEE 13-node feeder rearranged as utility models often are: master in a subfolder, line codes
    and bus coordinates in sibling folders named through ``..``."""
    root = tmp_path / "ieee13_layout"
    _write(root / "codes" / "IEEELineCodes.DSS", (IEEE13.parent / "IEEELineCodes.DSS").read_text())
    _write(root / "coords" / "IEEE13Node_BusXY.csv", (IEEE13.parent / "IEEE13Node_BusXY.csv").read_text())
    text = IEEE13.read_text().replace("redirect IEEELineCodes.DSS", "redirect ..\\codes\\IEEELineCodes.DSS")
    master = _write(root / "model" / "Master.dss", text.replace("BusCoords IEEE13Node_BusXY.csv",
                                                                "BusCoords ../coords/IEEE13Node_BusXY.csv"))
    result = intake.take_in(master, tmp_path / "feeders")
    assert result.feeder == "ieee13_layout_model"
    assert set(result.files) == {"model/Master.dss", "codes/IEEELineCodes.DSS", "coords/IEEE13Node_BusXY.csv"}
    _same_circuit(IEEE13, result.master)


@requires_shared
def test_ieee13_copy_solves_to_the_reference_total_power(tmp_path):
    result = intake.take_in(IEEE13, tmp_path / "feeders")
    engine = dss.compile_master(result.master, strip=False)
    engine.Solution.Solve()
    kw, kvar = engine.Circuit.TotalPower()
    assert -kw == pytest.approx(3570, rel=0.01) and -kvar == pytest.approx(1740, rel=0.02)


@requires_shared
def test_ieee34_copy_keeps_the_line_codes_one_folder_up_and_needs_nothing_outside(tmp_path):
    result = intake.take_in(IEEE / "34Bus" / "ieee34Mod1.dss", tmp_path / "feeders")
    assert result.master == result.folder / "34Bus" / "ieee34Mod1.dss"
    assert (result.folder / "34Bus" / "IEEELineCodes.DSS").read_text().strip() == "redirect ../IEEELineCodes.DSS"
    assert all(intake._under(f, result.folder) for f in intake.collect(result.master).files)
    assert "Solve" not in result.master.read_text() and "solve" not in result.master.read_text()


@requires_shared
def test_folder_with_two_circuit_masters_asks_for_the_file(tmp_path):
    with pytest.raises(intake.IntakeError, match="IEEE123Master.dss, IEEE123Switches.dss each define a circuit"):
        intake.find_master(IEEE / "123Bus")


# ------------------------------------------------------------------------------------------- masters, ids
def test_named_master_is_studied_not_the_folders_master(tmp_path):
    folder = tmp_path / "8500-Node"
    _tiny(folder, "Master.dss", body="Redirect Lines.dss\nNew Load.bal bus1=b2 phases=3 kV=12.47 kW=900\n")
    unbal = _tiny(folder, "Master-unbal.dss", body="Redirect Lines.dss\nNew Load.a bus1=b2.1 phases=1 kV=7.2 kW=600\n"
                                                    "New Load.b bus1=b2.2 phases=1 kV=7.2 kW=300\n")
    result = intake.take_in(unbal, tmp_path / "feeders")
    assert result.feeder == "8500-Node_Master-unbal"
    assert result.master.name == "Master-unbal.dss" and "Master.dss" not in result.files
    assert not {"solve", "export", "plot"} & {line.split()[0].lower() for line in result.master.read_text().splitlines()
                                              if line.strip()}
    engine = dss.compile_master(result.master, strip=False)
    assert sorted(engine.Loads.AllNames()) == ["a", "b"]
    assert intake.find_master(folder) == folder / "Master.dss"


def test_masters_in_folders_of_the_same_name_get_different_ids(tmp_path):
    a = _tiny(tmp_path / "a" / "OpenDSS", circuit="New Circuit.ca basekv=12.47 bus1=src")
    b = _tiny(tmp_path / "b" / "OpenDSS", circuit="New Circuit.cb basekv=12.47 bus1=src")
    deeper = _tiny(tmp_path / "c" / "a" / "OpenDSS", circuit="New Circuit.cc basekv=12.47 bus1=src")
    feeders = tmp_path / "feeders"
    ra, rb, rc = (intake.take_in(m, feeders) for m in (a, b, deeper))
    assert (ra.feeder, rb.feeder) == ("a_OpenDSS", "b_OpenDSS")
    assert rc.feeder == f"a_OpenDSS_{intake.path_hash(deeper)}"
    assert [intake.read_intake(feeders / r.feeder).circuit for r in (ra, rb, rc)] == ["ca", "cb", "cc"]
    again = intake.take_in(deeper, feeders)
    assert again.feeder == rc.feeder and not again.updated


def test_feeder_name_taken_by_another_source_is_an_error_not_an_overwrite(tmp_path):
    a = _tiny(tmp_path / "a", circuit="New Circuit.ca basekv=12.47 bus1=src")
    b = _tiny(tmp_path / "b", circuit="New Circuit.cb basekv=12.47 bus1=src")
    feeders = tmp_path / "feeders"
    intake.take_in(a, feeders, name="f1")
    before = (feeders / "f1" / FEEDER_INTAKE_RECORD).read_bytes()
    with pytest.raises(intake.IntakeError, match=f"taken in from {a}.*--feeder-name"):
        intake.take_in(b, feeders, name="f1")
    assert (feeders / "f1" / FEEDER_INTAKE_RECORD).read_bytes() == before
    assert json.loads(before)["source"] == str(a)


@pytest.mark.parametrize("name", ["", "_hidden", ".dot", "a b", "x/y", "a" * 101])
def test_bad_feeder_name_is_refused(name):
    with pytest.raises(intake.IntakeError, match="feeder name"):
        intake.check_feeder_name(name)


def test_same_source_again_is_a_no_op_and_a_changed_file_an_update(tmp_path):
    master = _tiny(tmp_path / "f")
    first = intake.take_in(master, tmp_path / "feeders")
    stamp = first.master.stat().st_mtime_ns
    second = intake.take_in(master, tmp_path / "feeders")
    assert not second.updated and second.master.stat().st_mtime_ns == stamp
    _write(tmp_path / "f" / "Lines.dss", LINES + "New Line.l3 bus1=b2 bus2=b3 linecode=lc length=1 units=km\n")
    third = intake.take_in(master, tmp_path / "feeders")
    assert third.updated and third.elements["Line"] == first.elements["Line"] + 1


def test_derived_ids_follow_the_file_or_its_folder():
    assert intake.derived_feeder_id(Path("/x/ieee13/IEEE13Nodeckt.dss")) == "IEEE13Nodeckt"
    assert intake.derived_feeder_id(Path("/x/p12uhs3_1247/p12uhs3_1247--p12udt1234/OpenDSS/Master.dss")) == \
        "p12uhs3_1247--p12udt1234_OpenDSS"
    assert intake.derived_feeder_id(Path("/x/uhs0_1247--udt1021/Master.dss")) == "uhs0_1247--udt1021"


# ------------------------------------------------------------------------------------------- references
def test_missing_redirect_target_is_one_error_naming_the_file_and_line(tmp_path):
    folder = tmp_path / "f"
    master = _tiny(folder, body="Redirect Lines.dss\nRedirect sub/Extra.dss\n")
    extra = _write(folder / "sub" / "Extra.dss", "! capacitors\nRedirect Capacitors.dss\n")
    with pytest.raises(intake.IntakeError) as info:
        intake.take_in(master, tmp_path / "feeders")
    message = str(info.value)
    assert message.startswith(f"{extra} line 2: Redirect Capacitors.dss: {folder / 'sub' / 'Capacitors.dss'} "
                              "does not exist")
    assert "\n" not in message and "does not compile" not in message
    assert not (tmp_path / "feeders").exists() or not any((tmp_path / "feeders").iterdir())


def test_master_that_does_not_compile_in_place_says_so(tmp_path):
    master = _tiny(tmp_path / "f", body="Redirect Lines.dss\nNew Line.bad bus1=b2 bus2=b3 linecode=nowhere\n")
    with pytest.raises(intake.IntakeError, match=f"{master}: does not compile in place: .*nowhere"):
        intake.take_in(master, tmp_path / "feeders")


@pytest.mark.parametrize("circuit", ["New Circuit.tiny basekv=12.47 bus1=src",
                                     "new object=circuit.tiny basekv=12.47 bus1=src",
                                     'New "Circuit.tiny" basekv=12.47 bus1=src',
                                     "NEW OBJECT = Circuit.tiny basekv=12.47 bus1=src"])
def test_every_spelling_of_new_circuit_is_recognised(tmp_path, circuit):
    master = _tiny(tmp_path / "f", "feeder.dss", circuit=circuit)
    assert intake.find_master(tmp_path / "f") == master  # the folder's only file that defines a circuit
    assert intake.collect(master).circuit == (master, 2)
    assert intake.take_in(master, tmp_path / "feeders").circuit == "tiny"


def test_compile_reads_the_rest_of_the_file_from_the_compiled_files_folder(tmp_path):
    folder = tmp_path / "f"
    _write(folder / "sub" / "Lines.dss", LINES)
    _write(folder / "Loads.dss", "New Load.wrong bus1=b1 phases=3 kV=12.47 kW=1\n")
    _write(folder / "sub" / "Loads.dss", "New Load.right bus1=b2 phases=3 kV=12.47 kW=400\n")
    master = _write(folder / "Master.dss", _master(body="Compile sub/Lines.dss\nRedirect Loads.dss\n"))
    assert {f.relative_to(folder).as_posix() for f in intake.collect(master).files} == \
        {"Master.dss", "sub/Lines.dss", "sub/Loads.dss"}
    result = intake.take_in(master, tmp_path / "feeders")
    assert dss.compile_master(result.master, strip=False).Loads.AllNames() == ["right"]


def test_real_world_syntax_finds_every_file(tmp_path):
    folder = tmp_path / "f"
    _write(folder / "sub dir" / "Lines.dss", LINES)
    _write(folder / "shapes" / "shape one.csv", "0.5\n1.0\n0.75\n")
    _write(folder / "curve.csv", "0,0\n1,1\n")
    _write(folder / "coords.csv", "src,0,0\nb1,1,0\nb2,2,0\n")
    _write(folder / "Loads.dss", "new load.ld1 bus1=b2 phases=3 kv=12.47 kw=500 daily=s1  // a comment\n")
    body = ('redirect "sub dir/Lines.dss"   ! quoted, with a space\n'
            "! Redirect commented_out.dss\n"
            "// Redirect commented_too.dss\n"
            "/* Redirect in_a_block.dss\n   Redirect still_in_it.dss */\n"
            "New Loadshape.s1 npts=3 interval=1\n"
            '~ mult=(File="shapes/shape one.csv")\n'
            "New XYcurve.c npts=2 CSVFILE=curve.csv\n"
            "COMPILE [Loads.dss]\n")
    master = _write(folder / "Master.dss", _master(body=body) + "BusCoords coords.csv\n")
    assert {f.relative_to(folder).as_posix() for f in intake.collect(master).files} == \
        {"Master.dss", "sub dir/Lines.dss", "shapes/shape one.csv", "curve.csv", "Loads.dss", "coords.csv"}
    result = intake.take_in(master, tmp_path / "feeders")
    engine = dss.compile_master(result.master, strip=False)
    engine.LoadShape.Name("s1")
    np.testing.assert_allclose(engine.LoadShape.PMult(), [0.5, 1.0, 0.75])


def test_absolute_path_is_copied_and_the_copy_works_without_the_source(tmp_path):
    shapes = _write(tmp_path / "elsewhere" / "s.csv", "0.2\n0.4\n1.0\n")
    master = _tiny(tmp_path / "f", body=f"Redirect Lines.dss\nNew Loadshape.s npts=3 interval=1 mult=(file={shapes})\n"
                                        "New Load.ld1 bus1=b2 phases=3 kV=12.47 kW=500 daily=s\n")
    result = intake.take_in(master, tmp_path / "feeders")
    assert any(f.startswith(intake.EXTERNAL_DIR + "/") for f in result.files)
    (tmp_path / "f").rename(tmp_path / "gone")
    shapes.unlink()
    engine = dss.compile_master(result.master, strip=False)
    engine.LoadShape.Name("s")
    np.testing.assert_allclose(engine.LoadShape.PMult(), [0.2, 0.4, 1.0])


def test_solve_in_a_redirected_file_is_refused_with_file_and_line(tmp_path):
    folder = tmp_path / "f"
    master = _tiny(folder, body="Redirect Lines.dss\nRedirect Run.dss\n")
    run = _write(folder / "Run.dss", "New Load.ld1 bus1=b2 phases=3 kV=12.47 kW=500\nsolve\n")
    with pytest.raises(intake.IntakeError, match=f"{run} line 2: solve in a redirected file"):
        intake.take_in(master, tmp_path / "feeders")


def test_differences_name_what_differs():
    def compiled(extra: str) -> intake.Snapshot:
        dss.run_commands("Clear\nNew Circuit.tiny basekv=12.47 bus1=src\n" + LINES +
                         "New Load.ld1 bus1=b2 phases=3 kV=12.47 kW=500\n" + extra)
        return intake.snapshot(dss.engine())

    found = intake.differences(compiled(""), compiled("New Load.ld2 bus1=b1 phases=3 kV=12.47 kW=800\n"))
    assert found[0] == "Load: 2 in the copy, 1 in the original"
    assert any(f.startswith("snapshot voltage at node ") for f in found)


# ------------------------------------------------------------------------------------------- SMART-DS layout
def _smartds_feeder(root: Path, state: str, feeder: str, *, pv_profile: str = "pv_1.csv", pv_up: int = 3) -> Path:
    """A small SMART-DS feeder in the OEDI layout: LoadShapes.dss into the subregion's profiles/,
    PVShapes.dss ``pv_up`` folders up into a pv-profiles/ folder, as the solar scenarios ship."""
    sd = config.SMARTDS[state]
    subregion = root / sd["year"] / sd["city"] / sd["subregions"][0]
    substation = feeder.split("--")[0]
    folder = subregion / "scenarios" / sd["scenario"] / "opendss" / substation / feeder
    hours = np.arange(96) / 4
    _write(subregion / "profiles" / "res_kw_1_pu.csv",
           "\n".join(f"{0.5 + 0.4 * np.sin(h / 4):.6f}" for h in hours) + "\n")
    _write(folder.parents[pv_up - 1] / "pv-profiles" / "pv_1.csv",
           "\n".join(f"{max(0.0, np.sin(np.pi * (h - 6) / 12)):.6f}" for h in hours) + "\n")
    _write(folder / "Lines.dss", LINES)
    _write(folder / "LoadShapes.dss", "New Loadshape.res_kw_1_pu npts=96 interval=0.25 "
                                      "mult=(file=../../../../../profiles/res_kw_1_pu.csv)\n")
    _write(folder / "PVShapes.dss", f"New Loadshape.pv_1 npts=96 interval=0.25 mult=(file={'../' * pv_up}pv-profiles/"
                                    f"{pv_profile})\n")
    _write(folder / "Loads.dss", "New Load.load_b2_1 bus1=b2.1 phases=1 kV=7.2 kW=5 kvar=1 yearly=res_kw_1_pu\n"
                                 "New Load.load_b2_2 bus1=b2.2 phases=1 kV=7.2 kW=5 kvar=1 yearly=res_kw_1_pu\n")
    _write(folder / "PVSystems.dss", "New PVSystem.pv_b2 bus1=b2.1 phases=1 kV=7.2 kVA=4 Pmpp=4 irradiance=1 "
                                     "yearly=pv_1\n")
    _write(folder / "Master.dss", f"Clear\nNew Circuit.feeder_{feeder} basekv=12.47 bus1=src pu=1.03\n"
                                  "Redirect Lines.dss\nRedirect LoadShapes.dss\nRedirect PVShapes.dss\n"
                                  "Redirect Loads.dss\nRedirect PVSystems.dss\n"
                                  "New Monitor.m1 element=Line.l1 mode=0\nSet Voltagebases=[12.47]\nCalcvoltagebases\n"
                                  "Buscoords Buscoords.dss\nSolve mode=yearly stepsize=15m number=96\n"
                                  "Export monitors m1\nPlot monitor object=m1\n")
    _write(folder / "Buscoords.dss", "src 0 0\nb1 1 0\nb2 2 0\n")
    return folder


def test_smartds_pv_shapes_in_pv_profiles_work_in_the_copy(tmp_path):
    folder = _smartds_feeder(tmp_path / "tree", "TX", "p1uhs9_1247--p1udt9001", pv_up=2)
    result = intake.take_in(folder / "Master.dss", tmp_path / "feeders", name=folder.name, share_outside=True)
    assert result.master == result.folder / "Master.dss"
    assert not [f for f in result.files if f.endswith(".csv")]  # profiles referenced in place, not duplicated
    pv_csv = folder.parents[1] / "pv-profiles" / "pv_1.csv"
    assert pv_csv in result.shared
    engine = dss.compile_master(result.master, strip=False)
    engine.LoadShape.Name("pv_1")
    np.testing.assert_allclose(engine.LoadShape.PMult(), np.loadtxt(pv_csv))
    _same_circuit(folder / "Master.dss", result.master)


def test_copy_circuits_keeps_pv_shapes_working_and_leaves_out_a_feeder_whose_pv_profile_is_missing(tmp_path):
    tree = tmp_path / "tree"
    good = _smartds_feeder(tree, "TX", "p1uhs9_1247--p1udt9001")
    bad = _smartds_feeder(tree, "TX", "p1uhs9_1247--p1udt9002", pv_profile="pv_missing.csv")
    data = tmp_path / "data"
    assert copy_circuits.main(["--data-dir", str(data), "--state", "TX", "--smartds-root", str(tree), "-q"]) == 0
    ws = Workspace(data)
    feeders = pd.read_csv(ws.feeder_list("TX")).set_index("feeder")
    assert feeders.at[good.name, "status"] == "ok"
    assert feeders.at[bad.name, "status"] == "excluded"
    assert f"{bad / 'PVShapes.dss'} line 1" in feeders.at[bad.name, "reason"]
    assert "pv_missing.csv" in feeders.at[bad.name, "reason"]
    assert not ws.feeder_dir("TX", bad.name).exists()
    engine = dss.compile_master(ws.feeder_dir("TX", good.name) / "Master.dss", strip=False)
    engine.LoadShape.Name("pv_1")
    np.testing.assert_allclose(engine.LoadShape.PMult(), np.loadtxt(good.parents[2] / "pv-profiles" / "pv_1.csv"))


def test_one_path_named_twice_and_a_file_read_twice_are_rewritten_once(tmp_path):
    shapes = _write(tmp_path / "elsewhere" / "s.csv", "0.2\n0.4\n1.0\n")
    folder = tmp_path / "f"
    _write(folder / "Shapes.dss", f"New Loadshape.s npts=3 interval=1 mult=(file={shapes}) qmult=(file={shapes})\n")
    master = _tiny(folder, body="Redirect Lines.dss\nRedirect Shapes.dss\nRedirect Shapes.dss\n"
                                "New Load.ld1 bus1=b2 phases=3 kV=12.47 kW=500 daily=s\n")
    result = intake.take_in(master, tmp_path / "feeders")
    assert str(shapes) not in (result.folder / "Shapes.dss").read_text()
    engine = dss.compile_master(result.master, strip=False)
    engine.LoadShape.Name("s")
    np.testing.assert_allclose(engine.LoadShape.QMult(), [0.2, 0.4, 1.0])
