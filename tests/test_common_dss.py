"""common/dss.py: compile, strip, daily solve, whole-array reads, DSS text parsing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from common import config, dss
from conftest import IEEE13, SHARED_SMARTDS_FEEDER, requires_shared


def _sample_feeders(sample_root: Path) -> list[Path]:
    folders = []
    for state in config.STATES:
        sd = config.SMARTDS[state]
        sub = sample_root / "oedi" / config.SMARTDS_PREFIX / sd["year"] / sd["city"] / sd["subregions"][0]
        folders += sorted(p.parent for p in sub.glob("scenarios/*/opendss/*/*/Master.dss"))
    return folders


# ------------------------------------------------------------------------------------------- parsing
def test_tokenize_handles_spaces_around_equals_and_file_groups():
    tokens = dss.tokenize("New Loadshape.res_kw_7_pu npts=96 interval=0.25 mult = (file=../p/res_kw_7_pu.csv) "
                          "qmult=(file=../p/res_kvar_7_pu.csv)")
    assert tokens[0] == (None, "New")
    assert tokens[1] == (None, "Loadshape.res_kw_7_pu")
    assert ("mult", "(file=../p/res_kw_7_pu.csv)") in tokens
    assert dss.file_reference("(file=../p/res_kw_7_pu.csv)") == "../p/res_kw_7_pu.csv"


def test_parse_keeps_names_with_parentheses_and_continuations():
    text = """! a comment
New Line.l(r:p1udt1-p1udt2) Units=km Length=0.1 bus1=p1udt1.1.2 bus2=p1udt2.1.2  ! trailing comment
~ phases=2 Linecode=1P_OH_AL_4/0_Zuzara
New Load.load_x_1 bus1=x.1 kV=0.12 kW=5 // another comment
"""
    objs = dss.parse_dss_text(text)
    assert [(o.cls, o.name) for o in objs] == [("line", "l(r:p1udt1-p1udt2)"), ("load", "load_x_1")]
    assert objs[0].get("phases") == "2"
    assert objs[0].get("linecode") == "1P_OH_AL_4/0_Zuzara"
    assert objs[1].get("kw") == "5"


def test_file_reference_is_none_for_inline_values():
    assert dss.file_reference("(0.1 0.2 0.3)") is None
    assert dss.file_reference(None) is None


def test_bus_helpers():
    assert dss.bus_name("p1ulv2723.1.2") == "p1ulv2723"
    assert dss.bus_nodes("p1ulv2723.1.2") == (1, 2)
    assert dss.bus_nodes("sourcebus") == ()


def test_strip_master_text_drops_solve_export_plot_and_continuations():
    text = "Clear\nNew Circuit.x\nSolve mode=yearly\n~ number=10\nExport monitors m1\nplot profile\nset maxcontroliter=50\n"
    kept, dropped = dss.strip_master_text(text)
    assert kept == "Clear\nNew Circuit.x\nset maxcontroliter=50\n"
    assert len(dropped) == 4


# ------------------------------------------------------------------------------------------- engine
@requires_shared
def test_ieee13_total_power_matches_reference():
    dss.compile_master(IEEE13)  # the shipped Solve line is stripped: nothing is solved yet
    engine = dss.engine()
    engine.Solution.Solve()
    assert engine.Solution.Converged()
    p_kw, q_kvar = engine.Circuit.TotalPower()
    assert p_kw == pytest.approx(-3567, rel=0.01)
    assert q_kvar == pytest.approx(-1736, rel=0.02)


@requires_shared
def test_compile_does_not_change_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dss.compile_master(SHARED_SMARTDS_FEEDER / "Master.dss")
    assert Path(os.getcwd()) == tmp_path
    assert dss.engine().Circuit.Name() == "feeder_p1udt5257-p1uhs21_1247x"
    assert list(tmp_path.iterdir()) == []  # no exported monitor or plot files


@requires_shared
def test_real_smartds_feeder_step_loop_matches_engine_daily_solve():
    """Our per-step loop gives the same feeder-head power as OpenDSS's own 96-step solve."""
    engine = dss.engine()
    dss.compile_master(SHARED_SMARTDS_FEEDER / "Master.dss")
    head = "Line.l(r:p1udt5257-p1uhs21_1247)"
    ours = []

    def read(k):
        engine.Circuit.SetActiveElement(head)
        ours.append(sum(engine.CktElement.Powers()[0:6:2]))

    converged = dss.solve_daily(read, mode="yearly")
    assert converged.all()
    dss.compile_master(SHARED_SMARTDS_FEEDER / "Master.dss")
    dss.run_commands("Solve mode=yearly stepsize=15m number=96")
    engine.Monitors.Name("m2")
    monitor = engine.Monitors.AsMatrix()  # hour, sec, S1, ang1, S2, ang2, S3, ang3 (polar)
    p_monitor = sum(monitor[:, 2 + 2 * i] * np.cos(np.radians(monitor[:, 3 + 2 * i])) for i in range(3))
    np.testing.assert_allclose(ours, p_monitor, rtol=1e-5)
    assert np.ptp(ours) > 10  # the day's shape, not a constant load


def test_compile_error_carries_engine_message(tmp_path):
    master = tmp_path / "Master.dss"
    master.write_text("Clear\nNew Circuit.t basekV=12.47\nRedirect Missing.dss\n")
    with pytest.raises(dss.DSSError, match="Missing.dss"):
        dss.compile_master(master)


def test_missing_master_is_a_clear_error(tmp_path):
    with pytest.raises(dss.DSSError, match="Master file not found"):
        dss.compile_master(tmp_path / "nope" / "Master.dss")


def _tiny(tmp_path: Path, load_kw: float) -> Path:
    master = tmp_path / "Master.dss"
    master.write_text(f"""Clear
New Circuit.tiny basekV=12.47 pu=1.0 bus1=src
New Linecode.lc nphases=3 r1=0.3 x1=0.6 units=km normamps=400
New Line.l1 bus1=src bus2=b2 linecode=lc length=2 units=km
New Loadshape.s npts=96 interval=0.25 mult=({' '.join(['0.5'] * 48 + ['1.0'] * 48)})
New Load.x bus1=b2 kV=12.47 kW={load_kw} pf=0.95 model=1 daily=s
Set voltagebases=[12.47]
Calcvoltagebases
Solve
""")
    return master


def test_solve_daily_checks_every_step_and_reads_arrays(tmp_path):
    dss.compile_master(_tiny(tmp_path, 1000))
    engine = dss.engine()
    vmin = []
    converged = dss.solve_daily(lambda k: vmin.append(engine.Circuit.AllBusMagPu().min()))
    assert converged.all() and len(vmin) == 96
    assert vmin[0] > vmin[-1]  # half load in the morning, full load in the afternoon


def test_stateful_control_classes_names_every_class_with_an_element_disabled_ones_too(tmp_path):
    dss.compile_master(_tiny(tmp_path, 1000))
    engine = dss.engine()
    assert dss.stateful_control_classes() == []
    engine.Text.Command("New Fuse.f1 monitoredobj=Line.l1 monitoredterm=1 ratedcurrent=100 enabled=no")
    engine.Text.Command("New Capacitor.c1 bus1=b2 kvar=300 kV=12.47")
    engine.Text.Command("New CapControl.cc capacitor=c1 element=Line.l1 type=time ONsetting=8 OFFsetting=20")
    assert dss.stateful_control_classes() == ["capcontrol", "fuse"]


def test_solve_daily_reports_non_convergence_with_step(tmp_path):
    dss.compile_master(_tiny(tmp_path, 5e6))  # far beyond the line's transfer limit
    converged = dss.solve_daily()
    assert not converged.all()
    first = int(np.argmin(converged)) + 1
    with pytest.raises(dss.DSSError, match=rf"tiny, step {first} of 96: power flow did not converge"):
        dss.solve_daily(stop_on_divergence=True)


def test_sample_feeders_compile_and_converge_except_the_broken_one(sample_root):
    """Every sample feeder compiles and solves at a typical load; the broken one has isolated loads."""
    engine = dss.engine()
    broken = []
    for folder in _sample_feeders(sample_root):
        dss.compile_master(folder / "Master.dss")
        dss.run_commands("Set mode=snapshot loadmult=0.4\nSolve")
        assert engine.Solution.Converged(), folder.name
        isolated = dss.isolated_elements()
        if isolated["loads"]:
            broken.append(folder.name)
            assert all(name.lower().startswith("load.") for name in isolated["loads"])
        else:
            v = engine.Circuit.AllBusMagPu()
            assert 0.9 < v.min() and v.max() <= 1.05, folder.name
    assert broken == ["uhs1_1247--udt7745"]


def test_pd_layout_indexes_whole_array_reads(tmp_path):
    dss.compile_master(_tiny(tmp_path, 1000))
    engine = dss.engine()
    engine.Solution.Solve()
    layout = dss.pd_layout()
    powers = dss.complex_array(engine.PDElements.AllPowers())
    i = layout.names.index("Line.l1")
    terminal1 = powers[layout.start[i]: layout.start[i] + layout.n_conductors[i]]
    assert terminal1.real.sum() == pytest.approx(1000 + 1000 * 0.0, rel=0.05)
    assert layout.is_line[i] and not layout.is_transformer[i]


def test_element_batch_reads_every_battery_state_of_charge_as_the_engine_does():
    engine = dss.engine()
    engine.Text.Command("clear")
    engine.Text.Command("New Circuit.t bus1=a basekV=12.47 pu=1.0")
    engine.Text.Command("New Loadshape.s npts=4 interval=1 mult=(1 -1 0.5 0)")
    for i, stored in enumerate((50, 80, 20)):
        engine.Text.Command(f"New Storage.b{i} bus1=a phases=3 kV=12.47 kWrated={100 * (i + 1)} kWhrated=400 "
                            f"%stored={stored} %reserve=10 dispmode=follow daily=s")
    engine.Text.Command("set mode=daily stepsize=1h number=1")
    batch = dss.ElementBatch([f"Storage.b{i}" for i in range(3)], dss=engine)
    index = dss.property_index(engine, "Storage.b0", "%stored")
    seen = []
    for _ in range(4):
        engine.Solution.Solve()
        expected = []
        for i in range(3):
            engine.Storages.Name(f"b{i}")
            expected.append(engine.Storages.puSOC())
        got = batch.property_values(index) / 100.0
        assert np.allclose(got, expected, rtol=1e-12, atol=0.0)
        seen.append(got)
    assert len({tuple(np.round(s, 9)) for s in seen}) > 2  # the states moved: the read is live, not the input
