"""Phase 6 on feeders as utilities and OpenDSS publish them (route ``--feeder-dir``): the IEEE 13, 34 and
123-bus feeders in their own layouts, and the sample's feeders with open ties, regulators and capacitors,
``../`` line codes, subfolders, yearly and daily shapes, older syntax and same-named folders. The day is
checked against a plain opendssdirect solve of the original feeder where the feeder brings its own shapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import config, doe, dss, intake
from common.io import write_json
from common.paths import Workspace
from conftest import IEEE13, SHARED_DATA, load_script, make_workspace, requires_shared

apply = load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")
import daily_power_flow as pf  # noqa: E402

P2U = Path("oedi/SMART-DS/v1.0/2018/AUS/P2U/scenarios/base_timeseries/opendss/p2uhs4_1247/p2uhs4_1247--p2udt6108")


@pytest.fixture(scope="module")
def base(tmp_path_factory, sample_root) -> Path:
    """A workspace with a design of a reference case and a case with no EV, PV or storage (case 1)."""
    data = make_workspace(tmp_path_factory.mktemp("real-feeders") / "data", sample_root)
    assert load_script("0_code_xlrm/run_mix_generator.py").main(["--data-dir", str(data), "--n-cases", "2", "-q"]) == 0
    ws = Workspace(data)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    bare = {**mixes["1"], "ev_perc": 0.0, "pv_perc_3ph": 0.0, "storage_perc_3ph": 0.0, "pv_perc_res": 0.0,
            "storage_perc_res": 0.0}
    write_json(ws.mixes("lhs"), {"0": mixes["0"], "1": bare})
    return data


def _study(data: Path, master: Path, *extra: str, season: str = "winter") -> tuple[pd.DataFrame, dict]:
    assert apply.main(["--data-dir", str(data), "--state", "NC", "--season", season, "--design", "lhs", "--run",
                       "--workers", "1", "-q", "--feeder-dir", str(master), *extra]) == 0
    ws = Workspace(data)
    index = pd.read_csv(ws.batch_index("NC", season, "lhs"))
    feeder = pd.read_csv(ws.batch_timings("NC", season, "lhs"))["feeder"].iloc[0]  # this batch's feeder
    summary = json.loads((ws.instance_dir("NC", season, "lhs", feeder, "1") / "summary.json").read_text())
    return index[index["feeder"] == feeder], summary


def _plain_day_peak_kw(master: Path, day_of_year: int) -> float:
    """The original feeder compiled in place and solved by plain opendssdirect in yearly mode over the
    96 intervals of ``day_of_year``: the highest total power drawn from the source [kW]."""
    engine = dss.engine()
    dss.compile_master(master)
    engine.Text.Command(f"Set mode=yearly stepsize=15m number=1 maxcontroliter={config.SOLVER['maxcontroliter']} "
                        f"maxiterations={config.SOLVER['maxiterations']}")
    peak = -np.inf
    for k in range(96):
        seconds = day_of_year * 86400 + k * 900
        engine.Solution.Hour(int(seconds // 3600))
        engine.Solution.Seconds(float(seconds % 3600))
        engine.Solution.Solve()
        assert engine.Solution.Converged()
        peak = max(peak, -float(engine.Circuit.TotalPower()[0]))
    return peak


# ------------------------------------------------------------------------------------------- IEEE feeders
@requires_shared
@pytest.mark.parametrize("master", ["ieee13/IEEE13Nodeckt.dss", "ieee/34Bus/ieee34Mod1.dss",
                                    "ieee/123Bus/IEEE123Master.dss"])
def test_ieee_feeders_run_as_published_from_any_working_directory(base, master, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository, not the feeder's folder
    index, summary = _study(base, SHARED_DATA / master)
    assert (index["status"] == "ok").all(), index["message"].tolist()
    m = summary["metrics"]
    assert m["non_converged_steps"] == 0 and m["n_unrated_lines"] >= 0
    # the configured day peaks at 1.0 per unit: every load at its published kW at that interval
    engine = dss.engine()
    dss.compile_master(SHARED_DATA / master)
    engine.Text.Command(f"Set maxcontroliter={config.SOLVER['maxcontroliter']}")
    engine.Solution.Solve()
    snapshot_kw = -float(engine.Circuit.TotalPower()[0])
    assert m["peak_kw"] == pytest.approx(snapshot_kw, rel=0.01)


@requires_shared
@pytest.mark.parametrize("master", ["ieee/34Bus/ieee34Mod1.dss", "ieee/123Bus/IEEE123Master.dss"])
def test_regulated_ieee_feeders_run_on_the_cached_feeder_with_the_compiled_results(base, master):
    """The IEEE 34 (two regulator banks, capacitors) and 123-bus feeders (four regulators) are solved on the
    worker's compiled feeder, their taps put back between cases, and every run equals a compile of its files."""
    index, _ = _study(base, SHARED_DATA / master, "--force")  # solved here even if an earlier test solved them
    ws = Workspace(base)
    feeder = index["feeder"].iloc[0]
    timings = pd.read_csv(ws.batch_timings("NC", "winter", "lhs"))
    assert (timings[timings["feeder"] == feeder]["engine_path"] == "cached").all()
    for key in ("0", "1"):
        folder = ws.instance_dir("NC", "winter", "lhs", feeder, key)
        cached = json.loads((folder / "summary.json").read_text())["metrics"]
        _, compiled, _ = pf.simulate(folder)
        assert compiled["metrics"].keys() == cached.keys()
        for name, a in compiled["metrics"].items():
            if isinstance(a, float):
                np.testing.assert_allclose(cached[name], a, rtol=1e-9, atol=0.0, err_msg=f"case {key}: {name}")
            else:
                assert cached[name] == a, f"case {key}: {name}"


@requires_shared
def test_ieee13_in_a_layout_with_parent_redirects_is_the_same_feeder(base, tmp_path):
    layout = tmp_path / "utility" / "feeders" / "ieee13"
    (tmp_path / "utility" / "codes").mkdir(parents=True)
    layout.mkdir(parents=True)
    (tmp_path / "utility" / "codes" / "IEEELineCodes.DSS").write_bytes((IEEE13.parent / "IEEELineCodes.DSS").read_bytes())
    text = IEEE13.read_text().replace("IEEELineCodes.DSS", "../../codes/IEEELineCodes.DSS")
    (layout / "IEEE13Nodeckt.dss").write_text(text)
    for extra in IEEE13.parent.glob("*.csv"):
        (layout / extra.name).write_bytes(extra.read_bytes())
    _, flat = _study(base, IEEE13, "--feeder-name", "ieee13_flat")
    _, nested = _study(base, layout / "IEEE13Nodeckt.dss", "--feeder-name", "ieee13_nested")
    assert nested["metrics"]["peak_kw"] == pytest.approx(flat["metrics"]["peak_kw"], rel=1e-9)


# ------------------------------------------------------------------------------------------- sample feeders
def test_named_master_with_open_tie_regulator_and_own_shapes(base, sample_root):
    master = sample_root / "feeders" / "tie_regulator" / "circuit" / "Master_tie.dss"
    index, summary = _study(base, master)
    assert (index["status"] == "ok").all(), index["message"].tolist()
    ws = Workspace(base)
    feeder = index["feeder"].iloc[0]
    taken = intake.read_intake(ws.generic_feeders_dir("NC") / feeder)
    assert taken.source == master and taken.circuit == "tie_regulator"  # the named master, not Master.dss
    filt = pd.read_csv(ws.circuit_filter("NC")).set_index("feeder").loc[feeder]
    assert filt["status"] == "pass" and filt["n_isolated_branches"] >= 1  # the open tie is fine
    assignments = json.loads((ws.instance_dir("NC", "winter", "lhs", feeder, "1") / "scenario_assignments.json")
                             .read_text())
    assert any("own yearly shapes" in note for note in assignments["notes"])
    month = pd.Timestamp(assignments["design_day"]).month
    assert month in config.SEASON_MONTHS["winter"]


def test_same_named_folders_are_two_feeders(base, sample_root):
    a, _ = _study(base, sample_root / "feeders" / "utility_a" / "OpenDSS" / "Master.dss")
    b, _ = _study(base, sample_root / "feeders" / "utility_b" / "OpenDSS" / "Master.dss")
    assert a["feeder"].iloc[0] != b["feeder"].iloc[0]
    assert (a["status"] == "ok").all() and (b["status"] == "ok").all()
    ws = Workspace(base)
    sources = {intake.read_intake(ws.generic_feeders_dir("NC") / f).source
               for f in (a["feeder"].iloc[0], b["feeder"].iloc[0])}
    assert len(sources) == 2


def test_older_syntax_feeder_runs(base, sample_root):
    index, summary = _study(base, sample_root / "feeders" / "legacy_syntax" / "Master.dss")
    assert (index["status"] == "ok").all(), index["message"].tolist()
    assert summary["metrics"]["peak_kw"] > 0


def test_smartds_feeder_with_yearly_shapes_matches_a_plain_solve_of_its_design_day(base, sample_root):
    """A SMART-DS feeder with regulators, a capacitor, an open tie and half loads on yearly shapes, taken
    in as it is: its case without EVs, PV or storage peaks where plain opendssdirect says the original
    peaks on the same day, and its half loads are one customer each."""
    master = sample_root / P2U / "Master.dss"
    index, summary = _study(base, master)
    assert (index["status"] == "ok").all(), index["message"].tolist()
    assignments = json.loads((Workspace(base).instance_dir("NC", "winter", "lhs", index["feeder"].iloc[0], "1") /
                              "scenario_assignments.json").read_text())
    day = pd.Timestamp(assignments["design_day"]).day_of_year - 1
    assert summary["metrics"]["peak_kw"] == pytest.approx(_plain_day_peak_kw(master, day), rel=1e-3)
    engine = dss.engine()
    dss.compile_master(master)
    n_loads = engine.Loads.Count()
    assert summary["realised"]["n_customers"] < n_loads  # x_1 / x_2 halves are one customer


def test_feeder_name_already_held_by_another_source_is_one_line(base, sample_root, capsys):
    _study(base, sample_root / "feeders" / "legacy_syntax" / "Master.dss", "--feeder-name", "held")
    capsys.readouterr()
    assert apply.main(["--data-dir", str(base), "--state", "NC", "--season", "winter", "--design", "lhs", "-q",
                       "--feeder-dir", str(sample_root / "feeders" / "utility_b" / "OpenDSS" / "Master.dss"),
                       "--feeder-name", "held"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'held'" in err[0] and "--feeder-name" in err[0]


# ------------------------------------------------------------------------------------------- engine
def _tiny_regulated(folder: Path, extra: str = "", settings: str = "") -> Path:
    """A 12.47 kV source, a regulator bank, a line and a 480 V customer (150 kW, half load for 12 h)."""
    from test_phase6_runs import _tiny_instance

    folder = _tiny_instance(folder, 150.0, extra=extra)
    master = folder / "Master.dss"
    text = master.read_text().replace(
        "New Line.head bus1=src bus2=mv linecode=mv length=0.1 units=km",
        "New Transformer.reg phases=3 windings=2 buses=[src srcr] conns=[wye wye] kVs=[12.47 12.47] kVAs=[5000 5000] "
        "xhl=0.1 %loadloss=0.01\nNew RegControl.creg transformer=reg winding=2 vreg=124 band=1 ptratio=60\n"
        "New Line.head bus1=srcr bus2=mv linecode=mv length=0.1 units=km")
    master.write_text(text.replace("Calcvoltagebases", "Calcvoltagebases\n" + settings))
    return folder


def test_storage_peak_reduction_on_a_regulated_feeder_is_a_full_day_without_storage(tmp_path):
    storage = ("New Loadshape.sd npts=96 interval=0.25 mult=(" + " ".join(["0"] * 60 + ["1"] * 8 + ["0"] * 28) + ")\n"
               "New Storage.s bus1=cust.1.2.3 phases=3 kV=0.48 kWrated=30 kWhrated=120 kVA=33 %stored=80 "
               "%reserve=20 dispmode=follow daily=sd")
    folder = _tiny_regulated(tmp_path / "tiny", extra=storage)
    a = json.loads((folder / "scenario_assignments.json").read_text())
    a["hosts"]["storage"] = [{"element": "Storage.s", "kwh": 120.0}]
    write_json(folder / "scenario_assignments.json", a)
    _, summary, _ = pf.simulate(folder)
    assert summary["status"] == "ok"
    engine = dss.engine()
    dss.compile_master(folder / "Master.dss", strip=False)
    engine.Text.Command("BatchEdit Storage..* enabled=no")
    head = []
    dss.solve_daily(lambda k: head.append(-float(engine.Circuit.TotalPower()[0])))
    m = summary["metrics"]
    assert m["peak_without_storage_kw"] == pytest.approx(max(head), rel=1e-3)
    assert m["storage_peak_reduction_kw"] == pytest.approx(m["peak_without_storage_kw"] - m["peak_kw"])


def _fused_with_storage(folder: Path, fuse_amps: float) -> Path:
    """The tiny feeder with a fuse on its service line and a 30 kW battery discharging 15:00-17:00."""
    from test_phase6_runs import _tiny_instance

    extra = ("New Fuse.f1 monitoredobj=Line.service monitoredterm=1 ratedcurrent=" + f"{fuse_amps:g}\n"
             "New Loadshape.sd npts=96 interval=0.25 mult=(" + " ".join(["0"] * 60 + ["1"] * 8 + ["0"] * 28) + ")\n"
             "New Storage.s bus1=cust.1.2.3 phases=3 kV=0.48 kWrated=30 kWhrated=120 kVA=33 %stored=80 "
             "%reserve=20 dispmode=follow daily=sd")
    folder = _tiny_instance(folder, 150.0, extra=extra)
    a = json.loads((folder / "scenario_assignments.json").read_text())
    a["hosts"]["storage"] = [{"element": "Storage.s", "kwh": 120.0}]
    write_json(folder / "scenario_assignments.json", a)
    return folder


def _plain_peak_without_storage_kw(folder: Path) -> float:
    engine = dss.engine()
    dss.compile_master(folder / "Master.dss", strip=False)
    engine.Text.Command("BatchEdit Storage..* enabled=no")
    head = []
    dss.solve_daily(lambda k: head.append(-float(engine.Circuit.TotalPower()[0])))
    return max(head)


@pytest.mark.parametrize("fuse_amps, full_day", [(400.0, False), (70.0, True)])
def test_storage_peak_reduction_on_a_fused_feeder_re_solves_the_day_only_when_a_fuse_operates(
        tmp_path, monkeypatch, fuse_amps, full_day):
    # a fuse that never operates keeps the steps independent: the battery's intervals are re-solved alone;
    # one that blows (70 A: it holds the 95 A of the half load, blows at the 190 A of the full load from 12:00) makes
    # the day stateful: the whole day is solved again. Equal to a plain solve to the engine's tolerance, as above
    folder = _fused_with_storage(tmp_path / "tiny", fuse_amps)
    calls = []
    real = pf.full_day_peak_without_storage
    monkeypatch.setattr(pf, "full_day_peak_without_storage", lambda *a, **k: calls.append(1) or real(*a, **k))
    _, summary, _ = pf.simulate(folder)
    assert summary["status"] == "ok"
    assert bool(calls) is full_day
    m = summary["metrics"]
    assert m["peak_without_storage_kw"] == pytest.approx(_plain_peak_without_storage_kw(folder), rel=1e-3)
    assert m["storage_peak_reduction_kw"] == pytest.approx(m["peak_without_storage_kw"] - m["peak_kw"])


def test_a_fuse_that_blows_only_without_the_batteries_makes_the_day_without_them_solved_whole(tmp_path, monkeypatch):
    # the customer is at full load (190 A on a 70 A fuse) only 15:00-17:00, while a 75 kW battery discharges and
    # keeps the fuse at the 95 A it holds: with the batteries no fuse operates, without them it blows, so the
    # intervals re-solved alone are not the day without batteries: the whole day is solved again
    from test_phase6_runs import _tiny_instance

    window = ["0.5"] * 60 + ["1.0"] * 8 + ["0.5"] * 28
    extra = ("New Fuse.f1 monitoredobj=Line.service monitoredterm=1 ratedcurrent=70\n"
             f"New Loadshape.peak npts=96 interval=0.25 mult=({' '.join(window)})\n"
             "Edit Load.load_cust daily=peak\n"
             "New Loadshape.sd npts=96 interval=0.25 mult=(" + " ".join(["0"] * 60 + ["1"] * 8 + ["0"] * 28) + ")\n"
             "New Storage.s bus1=cust.1.2.3 phases=3 kV=0.48 kWrated=75 kWhrated=300 kVA=80 %stored=80 "
             "%reserve=20 dispmode=follow daily=sd")
    folder = _tiny_instance(tmp_path / "tiny", 150.0, extra=extra)
    a = json.loads((folder / "scenario_assignments.json").read_text())
    a["hosts"]["storage"] = [{"element": "Storage.s", "kwh": 300.0}]
    write_json(folder / "scenario_assignments.json", a)
    calls = []
    real = pf.full_day_peak_without_storage
    monkeypatch.setattr(pf, "full_day_peak_without_storage", lambda *a, **k: calls.append(1) or real(*a, **k))
    _, summary, _ = pf.simulate(folder)
    assert summary["status"] == "ok"
    engine = dss.engine()
    dss.compile_master(folder / "Master.dss", strip=False)
    dss.solve_daily()
    assert not dss.protection_operated(engine)  # with the batteries the fuse holds
    assert calls == [1]
    assert summary["metrics"]["peak_without_storage_kw"] == pytest.approx(_plain_peak_without_storage_kw(folder),
                                                                          rel=1e-3)


def _branched_with_storage(folder: Path, extra: str = "", fuses: tuple[str, ...] = ("service", "side"),
                           side_kw: float = 20.0) -> Path:
    """The tiny feeder with a second lateral (Line.side to bus side, a ``side_kw`` load) and a 75 kW battery at the
    customer discharging 15:00-17:00, a 70 A fuse on each lateral of ``fuses``: Line.service above the battery,
    Line.side on the other lateral."""
    from test_phase6_runs import _tiny_instance

    extra = ("New Line.side bus1=lv bus2=side linecode=lv length=0.05 units=km\n"
             f"New Load.side bus1=side.1.2.3 phases=3 kV=0.48 kW={side_kw:g} pf=1 model=1 daily=day\n"
             + "".join(f"New Fuse.f_{line} monitoredobj=Line.{line} monitoredterm=1 ratedcurrent=70\n" for line in fuses)
             + "New Loadshape.sd npts=96 interval=0.25 mult=(" + " ".join(["0"] * 60 + ["1"] * 8 + ["0"] * 28) + ")\n"
             "New Storage.s bus1=cust.1.2.3 phases=3 kV=0.48 kWrated=75 kWhrated=300 kVA=80 %stored=80 "
             "%reserve=20 %IdlingkW=0 dispmode=follow daily=sd\n" + extra)
    folder = _tiny_instance(folder, 60.0, extra=extra)
    a = json.loads((folder / "scenario_assignments.json").read_text())
    a["hosts"]["storage"] = [{"element": "Storage.s", "kwh": 300.0}]
    write_json(folder / "scenario_assignments.json", a)
    return folder


def _solved_day(folder: Path):
    engine = dss.engine()
    dss.compile_master(folder / "Master.dss", strip=False)
    a = json.loads((folder / "scenario_assignments.json").read_text())
    circuit = pf._Circuit(engine, a)
    return engine, circuit, pf.solve_day(engine, circuit, a, None)


def test_fuse_must_solve_flags_the_intervals_a_battery_downstream_of_a_fuse_could_blow_it(tmp_path):
    # 60 kW at the customer: 36-72 A on the 70 A service fuse, which operates from 140 A (the tlink curve starts
    # at 2 x); without the 75 kW battery's 90 A its current could reach 72 + 2 x 90 A while it discharges: those
    # intervals are solved; the side fuse carries 12-24 A and no battery: never
    engine, circuit, day = _solved_day(_branched_with_storage(tmp_path / "tiny"))
    must = pf.fuse_must_solve(engine, circuit, day)
    assert must is not None and must.tolist() == [False] * 60 + [True] * 8 + [False] * 28


def test_fuse_must_solve_leaves_out_a_fuse_no_battery_is_downstream_of(tmp_path):
    # the side fuse alone: its current is the side load's, whatever the battery at the customer does
    engine, circuit, day = _solved_day(_branched_with_storage(tmp_path / "tiny", fuses=("side",)))
    assert pf.fuse_must_solve(engine, circuit, day).tolist() == [False] * 96


def test_a_battery_charging_from_pv_that_exports_through_a_fuse_makes_its_intervals_solved(tmp_path):
    # 160 kW of PV at the customer 10:00-12:00 exports through the 70 A fuse (operating from 140 A), 75 kW of it
    # into a charging battery: with the battery 78 A, without it the export blows the fuse. The charging
    # intervals are solved, the fuse found blown, the day solved whole, where the customer's PV, cut off, has no
    # solution: the run says the storage peak reduction cannot be measured (a bound alone would have given one)
    from test_phase6_runs import _tiny_instance

    pv = " ".join(["0"] * 40 + ["1"] * 8 + ["0"] * 48)
    charge = " ".join(["0"] * 40 + ["-1"] * 8 + ["0"] * 20 + ["0.4"] * 8 + ["0"] * 20)
    folder = _tiny_instance(tmp_path / "tiny", 40.0, extra=(
        "Edit Transformer.tx kVAs=[500 500]\nEdit Linecode.lv r1=0.1 r0=0.1 normamps=400\nEdit Load.load_cust vminpu=0.8\n"
        f"New Fuse.f1 monitoredobj=Line.service monitoredterm=1 ratedcurrent=70\n"
        f"New Loadshape.pvs npts=96 interval=0.25 mult=({pv})\nNew Loadshape.sd npts=96 interval=0.25 mult=({charge})\n"
        "New PVSystem.pv bus1=cust.1.2.3 phases=3 kV=0.48 kVA=170 Pmpp=160 irradiance=1 pf=1 %cutin=0.1 %cutout=0.1 "
        "daily=pvs\nNew Storage.s bus1=cust.1.2.3 phases=3 kV=0.48 kWrated=75 kWhrated=300 kVA=80 %stored=20 "
        "%reserve=10 %IdlingkW=0 dispmode=follow daily=sd"))
    a = json.loads((folder / "scenario_assignments.json").read_text())
    a["hosts"]["storage"] = [{"element": "Storage.s", "kwh": 300.0}]
    write_json(folder / "scenario_assignments.json", a)
    engine, circuit, day = _solved_day(folder)
    assert not dss.protection_operated(engine)
    assert pf.fuse_must_solve(engine, circuit, day)[40:48].all()
    _, summary, _ = pf.simulate(folder)
    assert summary["status"] == "failed" and "storage peak reduction cannot be measured" in summary["message"]


def test_a_fuse_near_its_operating_current_is_solved_for_whatever_battery_is_taken_away(tmp_path):
    # the side fuse has no battery below it, but its 80 kW load draws 96 A at full load, and as much as 1 / 0.7 of
    # that if the voltage sagged to the lowest vminpu (0.7, the customer's) before the loads turn to constant
    # impedance: above 0.9 x 140 A, so the full-load half of the day is solved; the half-load half is not
    engine, circuit, day = _solved_day(_branched_with_storage(tmp_path / "tiny", fuses=("side",), side_kw=80.0))
    must = pf.fuse_must_solve(engine, circuit, day)
    assert not must[:48].any() and must[48:].all()


def test_a_second_source_gives_no_fuse_bound(tmp_path):
    folder = _branched_with_storage(tmp_path / "tiny", "New Generator.g bus1=side phases=3 kV=0.48 kW=10 pf=1")
    engine, circuit, day = _solved_day(folder)
    assert pf.fuse_must_solve(engine, circuit, day) is None


def test_loads_held_at_constant_power_below_0_8_pu_make_every_active_interval_solved(tmp_path, monkeypatch):
    solves = []
    real = dss.solve_interval
    monkeypatch.setattr(dss, "solve_interval", lambda *a, **k: solves.append(1) or real(*a, **k))
    counts = {}
    morning = " ".join(["0"] * 20 + ["1"] * 8 + ["0"] * 68)  # 5 kW 05:00-07:00, at half load: far from the peak
    for vminpu in (0.7, 0.8):
        folder = _branched_with_storage(tmp_path / f"v{vminpu}", f"Edit Load.load_cust vminpu={vminpu}\n"
                                        f"Edit Loadshape.sd mult=({morning})\nEdit Storage.s kWrated=5 kVA=6", fuses=())
        solves.clear()
        _, summary, _ = pf.simulate(folder)
        assert summary["status"] == "ok"
        counts[vminpu] = len(solves)
    assert counts == {0.7: 8, 0.8: 0}  # the battery's eight intervals, or none: no bound tops the afternoon peak


def test_fuse_must_solve_gives_no_bound_on_a_feeder_with_a_loop(tmp_path):
    folder = _branched_with_storage(tmp_path / "tiny", "New Line.tie bus1=side bus2=cust linecode=lv length=0.05 "
                                                      "units=km")
    engine, circuit, day = _solved_day(folder)
    assert pf.fuse_must_solve(engine, circuit, day) is None


def test_an_open_tie_is_no_loop_for_the_fuse_bound(tmp_path):
    folder = _branched_with_storage(tmp_path / "tiny", "New Line.tie bus1=side bus2=cust linecode=lv length=0.05 "
                                                      "units=km\nOpen Line.tie 1")
    engine, circuit, day = _solved_day(folder)
    assert pf.fuse_must_solve(engine, circuit, day) is not None


def test_control_iteration_warning_is_recorded_and_the_day_goes_on(tmp_path):
    """A regulator that needs several tap changes with a control-iteration limit of 1: OpenDSS raises
    #485 at the steps where it cannot settle, the power flow converged, and the run records it."""
    folder = _tiny_regulated(tmp_path / "tiny", settings="Set maxcontroliter=1")
    _, summary, _ = pf.simulate(folder)
    assert summary["status"] == "ok", summary["message"]
    assert summary["metrics"]["control_warning_steps"] > 0
    assert "485" in summary["metrics"]["control_warning"]


def test_unrated_lines_are_out_of_the_overload_counts(tmp_path):
    """The tiny feeder's service line has its own 150 A rating and is overloaded at full load; with no
    rating of its own (the engine's default 400 A) it is reported unrated and not overloaded."""
    from test_phase6_runs import _tiny_instance

    folder = _tiny_instance(tmp_path / "rated", 150.0)
    _, rated, _ = pf.simulate(folder)
    a = json.loads((folder / "scenario_assignments.json").read_text())
    a["unrated_lines"] = ["Line.service"]
    write_json(folder / "scenario_assignments.json", a)
    _, unrated, _ = pf.simulate(folder)
    assert rated["metrics"]["overloaded_lines"] == 1 and rated["metrics"]["n_unrated_lines"] == 0
    assert unrated["metrics"]["overloaded_lines"] == 0 and unrated["metrics"]["n_unrated_lines"] == 1
    assert unrated["metrics"]["worst_line"] != "Line.service"


def test_unrated_lines_are_found_from_the_circuit():
    engine = dss.engine()
    engine.Text.Command("Clear")
    engine.Text.Commands("New Circuit.t basekv=12.47 bus1=src\n"
                         "New Linecode.a nphases=3 r1=0.1 x1=0.2 units=km\n"
                         "New Linecode.b nphases=3 r1=0.1 x1=0.2 units=km normamps=300\n"
                         "New Line.l1 bus1=src bus2=b1 linecode=a length=1\n"
                         "New Line.l2 bus1=b1 bus2=b2 linecode=b length=1\n"
                         "New Line.l3 bus1=b2 bus2=b3 linecode=a length=1 normamps=400\n"
                         "New Line.l4 bus1=b3 bus2=b4 r1=0.1 x1=0.2 length=1\n"
                         "New Line.l5 bus1=b4 bus2=b5 r1=0.1 x1=0.2 length=1 normamps=250\n"
                         "New Line.l6 bus1=b5 bus2=b6 like=l5\n")
    assert dss.unrated_lines() == ["Line.l1", "Line.l4"]
