"""Phase 6b metrics that a distribution planner reads: voltage and current unbalance, the ANSI C84.1 range
limits, and loading per winding, per phase and per 120 V leg (hand-computed cases and tiny real OpenDSS
circuits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common import config, dss
from common.io import write_json
from conftest import load_script

load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")  # puts phase 6 on the path
import daily_power_flow as pf  # noqa: E402

A = np.exp(2j * np.pi / 3)
SOURCE = "New Circuit.t basekV=12.47 pu=1.0 bus1=src R1=1e-5 X1=1e-5 R0=1e-5 X0=1e-5"
HEAD = "New Line.head phases=3 bus1=src bus2=mv r1=0.01 x1=0.01 r0=0.01 x0=0.01 length=0.1 units=km normamps=400"


def _instance(folder: Path, body: str, customers: list[tuple[str, list[str]]], bases: str) -> Path:
    """A Master.dss of ``SOURCE``, ``HEAD`` and ``body`` (loads at a flat daily shape) and the
    scenario_assignments.json phase 6 reads, with the customers' service nodes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Master.dss").write_text(f"""Clear
{SOURCE}
{HEAD}
New Loadshape.day npts=96 interval=0.25 mult=({" ".join(["1.0"] * 96)})
{body}
Set voltagebases=[{bases}]
Calcvoltagebases
""")
    write_json(folder / "scenario_assignments.json", {
        "state": "NC", "season": "winter", "design": "test", "feeder": "t", "case": "0", "design_day": "2018-01-01",
        "head_element": "Line.head", "head_sign": 1.0, "inputs": {}, "realised": {"ev_need_kwh": 0.0},
        "service_nodes": [[name, nodes] for name, nodes in customers],
        "hosts": {"ev": [], "pv": [], "storage": [], "variants": {}}, "forecast_kw": {"ev": [0.0] * 96}})
    return folder


def _simulate(folder: Path) -> dict:
    _, summary, _ = pf.simulate(folder)
    assert summary["status"] == "ok", summary["message"]
    return summary["metrics"]


# ------------------------------------------------------------------------------------------- unbalance
def test_vuf_is_negative_over_positive_sequence_voltage():
    v1, v2, v0 = 7200.0, 144.0 * np.exp(0.7j), 300.0 * np.exp(-0.2j)  # 2 % VUF, with a zero sequence
    phases = np.array([v0 + v1 + v2, v0 + A * A * v1 + A * v2, v0 + A * v1 + A * A * v2])
    assert pf.voltage_unbalance_factor_pct(phases) == pytest.approx(2.0)
    line_to_line = phases - np.roll(phases, -1)  # ab, bc, ca: no zero sequence, the same VUF
    assert pf.voltage_unbalance_factor_pct(line_to_line) == pytest.approx(2.0)
    assert pf.voltage_unbalance_factor_pct(np.array([1.0, A * A, A])) == pytest.approx(0.0, abs=1e-12)


def test_vuf_metrics_count_bus_intervals_above_the_planning_level_and_the_limit():
    vuf = np.array([[0.5, 2.5, np.nan], [2.0, 3.5, np.nan], [3.0, 1.0, np.nan]])
    m = pf.voltage_unbalance_metrics(vuf, planning_pct=2.0, limit_pct=3.0)
    assert m == {"vuf_max_pct": 3.5, "vuf_over_planning_bus_intervals": 3, "vuf_over_limit_bus_intervals": 1}
    assert pf.voltage_unbalance_metrics(np.full((96, 2), np.nan), 2.0, 3.0)["vuf_max_pct"] is None


def test_current_unbalance_is_the_nema_largest_deviation_from_the_mean():
    amps = np.array([[100.0, 90.0, 110.0], [86.0, 98.0, 29.0], [0.0, 0.0, 0.0]])
    u = pf.current_unbalance_pct(amps)
    assert u[0] == pytest.approx(10.0)
    assert u[1] == pytest.approx(100 * (71.0 - 29.0) / 71.0)  # mean 71 A, phase c 42 A below it
    assert np.isnan(u[2])  # no current: undefined


def test_unbalance_of_a_real_feeder_matches_the_engine_and_the_old_imbalance_does_not_see_it(tmp_path):
    """Unequal single-phase loads at unity power factor: the phases share a power factor, so the earlier
    'imbalance' S_sum - S_3ph is almost zero; VUF and head current unbalance are what OpenDSS gives."""
    body = """New Line.feeder phases=3 bus1=mv bus2=far r1=0.3 x1=0.6 r0=0.9 x0=1.8 length=8 units=km normamps=400
New Load.a bus1=far.1 phases=1 kV=7.2 kW=860 pf=1 model=1 vminpu=0.7 daily=day
New Load.b bus1=far.2 phases=1 kV=7.2 kW=980 pf=1 model=1 vminpu=0.7 daily=day
New Load.c bus1=far.3 phases=1 kV=7.2 kW=290 pf=1 model=1 vminpu=0.7 daily=day"""
    folder = _instance(tmp_path / "u", body, [("a", ["far.1"]), ("b", ["far.2"]), ("c", ["far.3"])], "12.47")
    m = _simulate(folder)
    engine = dss.engine()  # still holding the last step's solution (every step is the same)
    vuf = []
    for bus in engine.Circuit.AllBusNames():
        engine.Circuit.SetActiveBus(bus)
        seq = engine.Bus.SeqVoltages()
        vuf.append(100.0 * seq[2] / seq[1])
    assert max(vuf) > 1.0
    # every step is the same day up to the solver's tolerance (1e-4 pu): the steps' VUF differ in the 4th digit
    assert m["vuf_max_pct"] == pytest.approx(max(vuf), rel=1e-3)
    limit = config.VOLTAGE_UNBALANCE_PCT
    assert m["vuf_over_2pct_bus_intervals"] == 96 * sum(x > limit["planning_pct"] for x in vuf)
    assert m["vuf_over_3pct_bus_intervals"] == 96 * sum(x > limit["limit_pct"] for x in vuf)
    engine.Circuit.SetActiveElement("Line.head")
    amps = np.asarray(engine.CktElement.CurrentsMagAng())[0:6:2]
    nema = 100.0 * np.abs(amps - amps.mean()).max() / amps.mean()
    assert nema > 40.0 and m["head_current_unbalance_max_pct"] == pytest.approx(nema, rel=1e-3)
    assert m["s_phase_sum_minus_total_max_kva"] < 0.02 * m["peak_kw"]


# ------------------------------------------------------------------------------------------- ANSI ranges
@pytest.mark.parametrize("band, inside, outside", [
    (config.ANSI_RANGE_A, (0.95, 1.05), (0.9499, 1.0501)),
    (config.ANSI_RANGE_B, (0.9167, 1.0583), (0.9166, 1.0584)),
])
def test_ansi_range_limits_are_inside_and_just_beyond_is_outside(band, inside, outside):
    v = np.array([[inside[0], inside[1], outside[0], outside[1]]])
    result = pf.voltage_violations(v, np.array([0, 1, 2, 3]), band)
    assert result == {"under_node_intervals": 1, "over_node_intervals": 1, "node_intervals": 2,
                      "customers_affected": 2}


def test_ansi_ranges_are_the_c84_1_service_voltages_on_120_v():
    assert config.ANSI_RANGE_A == (0.95, 1.05)  # 114-126 V
    assert config.ANSI_RANGE_B == (0.9167, 1.0583)  # 110-127 V
    assert config.ANSI_RANGE_B[0] == pytest.approx(110 / 120, abs=1e-4)
    assert config.ANSI_RANGE_B[1] == pytest.approx(127 / 120, abs=1e-4)


# ------------------------------------------------------------------------------------------- loading
def test_centre_tap_transformer_is_checked_per_leg_against_half_its_rating():
    columns = pf.transformer_columns(pf.TransformerWindings(phases=1, kva=(50.0, 50.0, 50.0),
                                                            buses=("mv", "lv", "lv"), conductors=2))
    assert columns == [([0, 1], 50.0), ([2, 3], 25.0), ([4, 5], 25.0)]
    three = pf.transformer_columns(pf.TransformerWindings(phases=3, kva=(90.0, 90.0), buses=("mv", "lv"),
                                                          conductors=4))
    assert three == [([0, 1, 2, 3], 90.0), ([0], 30.0), ([1], 30.0), ([2], 30.0), ([4], 30.0), ([5], 30.0),
                     ([6], 30.0)]


def test_centre_tap_transformer_loaded_150_and_30_pct_on_its_legs_reports_150_pct(tmp_path):
    """A SMART-DS split-phase service transformer (50 kVA, two 120 V legs of 25 kVA each) with 37.5 kW on
    one leg and 7.5 kW on the other: 90 % in total, 150 % on its worst leg."""
    body = """New Transformer.ct phases=1 windings=3 %loadloss=0.8 %noloadloss=0.47
~ wdg=1 conn=wye bus=mv.1 kv=7.2 kva=50 %r=0.27 wdg=2 conn=wye bus=lv.1.0 kv=0.12 kva=50 %r=0.53 wdg=3 conn=wye bus=lv.0.2 kv=0.12 kva=50 %r=0.53
~ XHL=2.4 XLT=2.4 XHT=1.6
New Load.leg1 bus1=lv.1 phases=1 kV=0.12 kW=37.5 pf=1 model=1 vminpu=0.7 daily=day
New Load.leg2 bus1=lv.2 phases=1 kV=0.12 kW=7.5 pf=1 model=1 vminpu=0.7 daily=day"""
    m = _simulate(_instance(tmp_path / "ct", body, [("leg1", ["lv.1"]), ("leg2", ["lv.2"])], "12.47, 0.208"))
    assert m["worst_transformer"] == "Transformer.ct"
    assert m["worst_transformer_loading_pct"] == pytest.approx(150.0, abs=0.01)
    assert m["overloaded_transformer_intervals"] == 96 and m["transformer_ma_overload_intervals"] == 96
    engine = dss.engine()
    engine.Circuit.SetActiveElement("Transformer.ct")
    total = abs(complex(*engine.CktElement.Powers()[0:2]) + complex(*engine.CktElement.Powers()[2:4]))
    assert 90.0 < 100.0 * total / 50.0 < 92.0  # the aggregate loading at winding 1 the worst leg hides


def test_three_phase_transformer_is_checked_per_phase_of_each_winding(tmp_path):
    """A 100 kVA delta-wye transformer with 30 kW on one secondary phase: 30 % in total, 90 % of that
    phase's third of the rating (the delta side's line currents see less)."""
    body = """New Transformer.t3 phases=3 windings=2 buses=[mv lv] conns=[delta wye] kVs=[12.47 0.48] kVAs=[100 100]
~ %rs=[0.5 0.5] xhl=2
New Load.a bus1=lv.1 phases=1 kV=0.277 kW=30 pf=1 model=1 vminpu=0.7 daily=day"""
    m = _simulate(_instance(tmp_path / "t3", body, [("a", ["lv.1"])], "12.47, 0.48"))
    assert m["worst_transformer"] == "Transformer.t3"
    assert m["worst_transformer_loading_pct"] == pytest.approx(90.0, abs=0.01)


def test_line_loading_is_the_highest_phase_conductor_current_against_normamps(tmp_path):
    """A three-phase line rated 100 A per conductor feeding one single-phase load: its loading is the
    loaded conductor's current, as OpenDSS rates it, not a three-phase average."""
    body = """New Transformer.t3 phases=3 windings=2 buses=[mv lv] conns=[delta wye] kVs=[12.47 0.48] kVAs=[300 300]
~ %rs=[0.5 0.5] xhl=2
New Line.service phases=3 bus1=lv bus2=cust r1=0.2 x1=0.05 r0=0.2 x0=0.05 length=0.05 units=km normamps=100
New Load.a bus1=cust.1 phases=1 kV=0.277 kW=20 pf=1 model=1 vminpu=0.7 daily=day"""
    m = _simulate(_instance(tmp_path / "line", body, [("a", ["cust.1"])], "12.47, 0.48"))
    engine = dss.engine()
    engine.Circuit.SetActiveElement("Line.service")
    amps = np.asarray(engine.CktElement.CurrentsMagAng())[0:6:2]
    assert m["worst_line"] == "Line.service"
    assert m["worst_line_loading_pct"] == pytest.approx(amps.max(), rel=1e-5)  # NormAmps 100: amps = per cent
    assert amps.max() > 60.0 and amps.mean() < 30.0


def test_vuf_is_the_same_for_a_bus_with_its_phases_rolled():
    a = np.exp(2j * np.pi / 3)
    abc = np.array([1.0, 0.98 * a * a, 1.01 * a])       # positive sequence, slightly unbalanced
    rolled = abc[[0, 2, 1]]                               # nodes 1-3-2: the other rotation
    np.testing.assert_allclose(pf.voltage_unbalance_factor_pct(rolled), pf.voltage_unbalance_factor_pct(abc),
                               rtol=1e-12)
    assert 0 < float(pf.voltage_unbalance_factor_pct(abc)) < 3
