"""Phase 6: residential rooftop PV and home batteries (issue 14 item 8), and the reverse-flow and
overvoltage metrics they move."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import config, doe, dss
from common.paths import Workspace
from conftest import copy_workspace, load_script
from pipeline import solve_cases

APPLY = "6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py"
load_script(APPLY)  # puts the phase folder on the path for the imports below
import circuit_instance as ci  # noqa: E402  (the phase folder is on the path once its script is loaded)
import daily_power_flow as pf  # noqa: E402
import pv_generation  # noqa: E402
import storage_dispatch as sd  # noqa: E402

MEDIUM = "uhs0_1247--udt2473"
LARGE = "uhs1_1247--udt5219"
UNIT = sd.Fleet(power_kw=5.0, energy_kwh=13.5, eff_charge=0.95, eff_discharge=0.95, reserve=0.2)


def _case(**changes):
    case = {"shares": {"baseline": 1.0, "dm": 0.0, "un": 0.0}, "ev_perc": 0.1, "ev_lvl2_perc": 0.7,
            "ev_split": {"controlled": 0.5, "uncontrolled": 0.5}, "storage_perc_3ph": 0.0, "pv_perc_3ph": 0.0,
            "pv_perc_res": 0.0, "storage_perc_res": 0.0, **doe.placement_seeds(config.DOE_SEED, 0),
            "disjoint_sets": True, "design_point": 1, "placement_replicate": 0}
    return {**case, **changes}


@pytest.fixture(scope="module")
def context(prepared_nc):
    return ci.load_context(Workspace(prepared_nc), "NC", "summer", MEDIUM)


def _home_day(n: int, seed: int = 7) -> np.ndarray:
    """Net loads [kW] of ``n`` homes: a load with evening peaks less a midday PV hump (surplus at noon)."""
    rng = np.random.default_rng(seed)
    t = np.arange(96) * 0.25
    load = 0.8 + 1.5 * np.exp(-((t - 19.0) / 2.0) ** 2) + 0.6 * np.exp(-((t - 7.5) / 1.0) ** 2)
    pv = np.clip(np.sin(np.pi * (t - 6.0) / 13.0), 0.0, None)
    return load[None, :] * rng.uniform(0.5, 2.0, (n, 1)) - pv[None, :] * rng.uniform(0.0, 8.0, (n, 1))


def _stored_kwh(power: np.ndarray, soc_start: np.ndarray, unit: sd.Fleet) -> np.ndarray:
    """State of charge [kWh] at the end of each interval, recomputed from the power with the efficiencies."""
    charge, discharge = np.clip(-power, 0, None), np.clip(power, 0, None)
    delta = (unit.eff_charge * charge - discharge / unit.eff_discharge) * config.INTERVAL_H
    return soc_start[:, None] * unit.energy_kwh + np.cumsum(delta, axis=1)


# ------------------------------------------------------------------------------------------- placement
def test_place_rooftop_hosts_are_nested_in_each_share(context):
    low = ci.place_rooftop(context, _case(pv_perc_res=0.2, storage_perc_res=0.1))
    high = ci.place_rooftop(context, _case(pv_perc_res=0.5, storage_perc_res=0.3))
    assert set(low[0]) < set(high[0]) and set(low[4]) < set(high[4])
    assert all(high[0][h] == kw for h, kw in low[0].items())  # a home keeps its array


def test_place_rooftop_hosts_are_residential_single_phase_and_apart_from_the_three_phase_order(context):
    pool = set(ci.rooftop_pool(context))
    records = context.records
    assert pool and all(records[c]["class"] == "res" and not records[c]["three_phase"] for c in pool)
    one = ci.place_rooftop(context, _case(pv_perc_res=0.4, storage_perc_res=0.2))
    other = ci.place_rooftop(context, _case(pv_perc_res=0.4, storage_perc_res=0.2, pv_perc_3ph=0.2,
                                            storage_perc_3ph=0.2))
    assert one[0] == other[0] and one[4] == other[4]
    assert set(one[0]) <= pool and set(one[4]) <= pool
    assert one[2] == ci.round_half_up(0.4 * len(pool))


# ------------------------------------------------------------------------------------------- sizing
def test_rooftop_pv_kw_is_the_offset_of_annual_energy_capped():
    kw = pv_generation.rooftop_pv_kw(np.array([6500.0, 26000.0, math.nan]), "NC",
                                     {"offset_ratio": 0.8, "specific_yield_kwh_per_kwp": {"NC": 1300.0},
                                      "max_kw": 10.0})
    np.testing.assert_allclose(kw[:2], [4.0, 10.0], rtol=1e-12)  # 0.8 x 6500 / 1300; 16 kW capped at 10
    assert math.isnan(kw[2])  # no annual energy: no size made up


def test_customer_annual_kwh_is_the_profiles_energy_per_peak_times_the_customers_peak():
    months = np.arange(1, 13)
    points = np.array([pd.Period(f"2018-{m:02d}").days_in_month * 96 for m in months])
    stats = pd.DataFrame({"subregion": "s", "shape": "res_a", "month": months, "mean_kw": 1.0 + months / 12,
                          "peak_kw": np.where(months == 7, 5.0, 3.0), "n_points": points,
                          "profile_points": int(points.sum())})
    partial = stats.iloc[:3].assign(shape="res_b", profile_points=int(points[:3].sum()))
    customers = pd.DataFrame({"subregion": ["s", "s"], "shape": ["res_a", "res_b"], "peak_kw": [10.0, 10.0]})
    annual = ci.customer_annual_kwh(customers, pd.concat([stats, partial]))
    expected = 10.0 * float((stats["mean_kw"] * stats["n_points"]).sum() * 0.25) / 5.0
    np.testing.assert_allclose(annual[0], expected, rtol=1e-12)
    assert math.isnan(annual[1])  # three months of profile: no annual energy


def test_rooftop_arrays_are_sized_from_the_sample_customers_annual_energy(context):
    pv_kw, annual, _, unsized, _ = ci.place_rooftop(context, _case(pv_perc_res=0.6))
    assert pv_kw and not unsized
    rooftop = config.ROOFTOP_PV
    for host, kw in pv_kw.items():
        expected = min(rooftop["max_kw"], rooftop["offset_ratio"] * annual[host]
                       / rooftop["specific_yield_kwh_per_kwp"]["NC"])
        assert kw == pytest.approx(expected, rel=1e-12)
        assert 1000.0 < annual[host] < 500000.0  # kWh/yr of a home, not a day's or a peak's
    assert max(pv_kw.values()) == rooftop["max_kw"]  # some large homes reach the cap


# ------------------------------------------------------------------------------------------- dispatch
def test_self_consumption_conserves_energy_and_keeps_the_state_of_charge_in_bounds():
    net = _home_day(40)
    day = sd.self_consumption(net, UNIT)
    stored = _stored_kwh(day.power_kw, day.soc_start, UNIT)
    np.testing.assert_allclose(stored, day.soc * UNIT.energy_kwh, atol=1e-9)
    assert (day.soc >= UNIT.reserve - 1e-9).all() and (day.soc <= 1.0 + 1e-9).all()
    assert (np.abs(day.power_kw) <= UNIT.power_kw + 1e-9).all()
    np.testing.assert_allclose(day.soc[:, -1], day.soc_start, atol=1e-6)  # periodic day
    assert np.clip(day.power_kw, 0, None).sum() > 0  # it does work


def test_self_consumption_never_exports_battery_energy_nor_charges_from_the_grid():
    net = _home_day(40, seed=11)
    power = sd.self_consumption(net, UNIT).power_kw
    discharge, charge = np.clip(power, 0, None), np.clip(-power, 0, None)
    assert (discharge <= np.clip(net, 0, None) + 1e-9).all()   # never more than the home's own net load
    assert (charge <= np.clip(-net, 0, None) + 1e-9).all()     # only from the home's PV surplus


def test_self_consumption_finds_the_periodic_start_a_plain_bisection_finds():
    # the reference: each home's start bisected 60 times on its own, the day simulated step by step in plain Python
    net = _home_day(12, seed=5)
    u = UNIT
    low, high = u.reserve * u.energy_kwh, u.energy_kwh

    def end_kwh(row, e):
        for x in row:
            charge = min(u.power_kw, max(-x, 0.0), max(high - e, 0.0) / (u.eff_charge * config.INTERVAL_H))
            discharge = min(u.power_kw, max(x, 0.0), max(e - low, 0.0) * u.eff_discharge / config.INTERVAL_H)
            e = min(max(e + u.eff_charge * charge * config.INTERVAL_H - discharge * config.INTERVAL_H / u.eff_discharge,
                        low), high)
        return e

    expected = []
    for row in net:
        if end_kwh(row, low) - low <= 1e-12:
            expected.append(low)
        elif end_kwh(row, high) - high >= -1e-12:
            expected.append(high)
        else:
            lo, hi = low, high
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if end_kwh(row, mid) - mid > 0 else (lo, mid)
            expected.append(0.5 * (lo + hi))
    start_kwh = sd.self_consumption(net, u).soc_start * u.energy_kwh
    assert 0 < sum(low < x < high for x in expected) < len(expected)  # homes of every kind
    np.testing.assert_allclose(start_kwh, expected, rtol=0, atol=1e-9)


def test_home_peak_shaving_lowers_each_homes_peak_and_conserves_energy():
    net = _home_day(5, seed=3)
    day = sd.home_peak_shaving(net, UNIT, target_factor=0.5)
    assert ((net - day.power_kw).max(axis=1) < net.max(axis=1) - 0.1).all()
    stored = _stored_kwh(day.power_kw, day.soc_start, UNIT)
    np.testing.assert_allclose(stored, day.soc * UNIT.energy_kwh, atol=1e-6)
    assert (day.soc >= UNIT.reserve - 1e-9).all() and (day.soc <= 1.0 + 1e-9).all()


def test_home_batteries_follow_their_homes_net_load_on_their_own_service(context):
    plan = ci.plan_case(context, _case(pv_perc_res=0.6, storage_perc_res=0.4))
    roof = plan.rooftop
    files = ci.render_files(context, plan, "lhs", "1", context.shared_dir)
    storage = [line for line in files["Storage.dss"].splitlines() if line.startswith("New Storage.bat_")]
    assert len(storage) == len(roof.sto_hosts) > 0
    host = roof.sto_hosts[0]
    record = context.records[host]
    nodes = str(record["nodes"]).split(".")
    assert f"bus1={record['bus']}.{nodes[0]}.{nodes[1]} phases=1 kV=0.24" in storage[0]
    net = ci.customer_day_kw(context, plan.variant_of, [host])[0] - roof.pv_kw.get(host, 0.0) * context.pv_pu
    ev = {h: plan.ev_power[j] for j, h in enumerate(plan.ev_hosts)}
    expected = sd.self_consumption((net + ev.get(host, 0.0))[None, :], roof.unit).power_kw[0]
    np.testing.assert_allclose(roof.dispatch.power_kw[0], expected, atol=1e-9)


# ------------------------------------------------------------------------------------------- volt-var
def _split_phase_circuit(source_pu: float, commands: list[str]) -> None:
    for line in [
        "clear", f"new circuit.t basekv=12.47 pu={source_pu} phases=3",
        "new transformer.sp phases=1 windings=3 wdg=1 bus=sourcebus.1 kv=7.2 kva=50 wdg=2 bus=lv.1.0 kv=0.12 "
        "kva=50 wdg=3 bus=lv.0.2 kv=0.12 kva=50 xhl=2.4 xlt=2.4 xht=1.6",
        "new line.svc bus1=lv.1.2 bus2=c.1.2 phases=2 length=0.03 units=km r1=0.3 x1=0.1 r0=0.3 x0=0.1",
        "new load.h bus1=c.1.2 phases=1 kv=0.24 kw=1 pf=1",
        "new pvsystem.pvres_h bus1=c.1.2 phases=1 kv=0.24 kva=8.8 pmpp=8 irradiance=1 pf=1 %cutin=0.1 %cutout=0.1",
        *commands, "set voltagebases=[12.47 0.208]", "calcvoltagebases", "set maxcontroliter=100", "solve"]:
        dss.run_commands(line)


def test_volt_var_commands_make_an_invcontrol_that_opendss_solves_on_a_split_phase_service():
    commands = pv_generation.volt_var_commands([("PVSystem.pvres_h", "c.1.2", 1, 0.24)])
    assert any(c.startswith("New InvControl.vv_pvres_h") and "mode=VOLTVAR" in c for c in commands)
    q_kvar = {}
    engine = dss.engine()
    for source_pu in (0.90, 1.0, 1.06):
        _split_phase_circuit(source_pu, commands)
        assert engine.Solution.Converged()
        engine.Circuit.SetActiveElement("PVSystem.pvres_h")
        q_kvar[source_pu] = float(np.asarray(engine.CktElement.Powers())[1::2].sum())  # + absorbed
    kva = 8.8
    assert q_kvar[0.90] < -0.3 * kva          # low voltage: injects (IEEE 1547 Cat. B: up to 44 % of kVA)
    assert q_kvar[1.06] > 0.1 * kva           # high voltage: absorbs
    assert abs(q_kvar[1.0]) < 0.05 * kva      # inside the dead band: about nothing


def test_volt_var_setting_writes_invcontrols_into_an_instance_that_solves(context, monkeypatch, tmp_path):
    plan = ci.plan_case(context, _case(pv_perc_res=0.3))
    unity = ci.render_files(context, plan, "lhs", "1", tmp_path)["PV.dss"]
    assert "InvControl" not in unity  # unity power factor by default
    monkeypatch.setitem(config.ROOFTOP_PV, "inverter_control", "volt_var")
    text = ci.render_files(context, plan, "lhs", "1", tmp_path)["PV.dss"]
    assert text.count("New InvControl.") == len(plan.rooftop.pv_kw) and "New XYcurve.vv_ieee1547_cat_b" in text
    # the instance's own PV.dss on the feeder compiles and solves the peak-sun interval with the controls
    engine = dss.engine()
    dss.compile_master(context.base_master, strip=True)
    dss.run_commands(f"New Loadshape.pv_{context.season} npts=96 interval=0.25 "
                     f"mult=({' '.join(f'{v:.6f}' for v in context.pv_pu)})")
    for line in text.splitlines():
        dss.run_commands(line)
    dss.run_commands("Set maxcontroliter=100")
    dss.run_commands(f"Set mode=daily stepsize=15m number=1 hour={int(np.argmax(context.pv_pu)) // 4}")
    dss.run_commands("Solve")
    engine.Circuit.SetActiveClass("InvControl")
    assert engine.Solution.Converged() and engine.ActiveClass.Count() == len(plan.rooftop.pv_kw)


def test_an_unknown_inverter_control_is_refused_naming_the_setting(context, monkeypatch, tmp_path):
    plan = ci.plan_case(context, _case(pv_perc_res=0.3))
    monkeypatch.setitem(config.ROOFTOP_PV, "inverter_control", "volt_watt")
    with pytest.raises(ci.InstanceError, match="ROOFTOP_PV inverter_control = 'volt_watt'"):
        ci.render_files(context, plan, "lhs", "1", tmp_path)


# ------------------------------------------------------------------------------------------- metrics
def test_customer_intervals_above_counts_each_customer_once_per_interval():
    v = np.array([[1.06, 1.07, 1.00],   # customer 0's two nodes both above: one customer-interval
                  [1.04, 1.055, 0.05],  # one node above Range A only; customer 1 de-energised
                  [1.00, 1.00, 1.08]])
    assert pf.customer_intervals_above(v, np.array([0, 0, 1]), 1.05) == 3
    assert pf.customer_intervals_above(v, np.array([0, 0, 1]), 1.0583) == 2


@pytest.fixture(scope="module")
def summer_runs(prepared_nc, tmp_path_factory) -> dict[str, dict]:
    """The sample's large NC feeder in summer: the same case with rooftop PV shares 0, 0.3 and 0.6."""
    data = copy_workspace(prepared_nc, tmp_path_factory.mktemp("rooftop") / "data")
    mixes = doe.load_mixes(Workspace(data).mixes("lhs"))
    cases = {"0": mixes["0"]}
    for key, share in (("1", 0.0), ("2", 0.3), ("3", 0.6)):
        cases[key] = {**_case(pv_perc_res=share), "design_point": int(key)}
    return solve_cases(data, cases, LARGE)


def test_high_rooftop_pv_shows_reverse_flow_that_no_rooftop_pv_does_not(summer_runs):
    none, high = summer_runs["1"]["metrics"], summer_runs["3"]["metrics"]
    assert summer_runs["3"]["realised"]["pv_res_kw"] > 0 and summer_runs["1"]["realised"]["n_pv_res"] == 0
    assert none["reverse_flow_intervals"] == 0 and none["service_transformers_reverse_flow"] == 0
    assert high["reverse_flow_intervals"] > 0
    assert any(high[f"head_reverse_flow_intervals_phase{i}"] > 0 for i in (1, 2, 3))
    assert high["service_transformers_reverse_flow"] > 0 and high["service_transformer_reverse_flow_intervals"] > 0
    assert high["n_service_transformers"] >= high["service_transformers_reverse_flow"]


def test_more_rooftop_pv_never_lowers_reverse_flow_or_the_highest_voltage(summer_runs):
    runs = [summer_runs[k]["metrics"] for k in ("1", "2", "3")]
    for name in ("reverse_flow_intervals", "service_transformers_reverse_flow",
                 "service_transformer_reverse_flow_intervals", "ansi_a_over_customer_intervals",
                 "ansi_b_over_customer_intervals", "pv_energy_kwh"):
        values = [m[name] for m in runs]
        assert values == sorted(values), (name, values)
    vmax = [m["v_max_customer_pu"] for m in runs]
    assert vmax[0] < vmax[1] < vmax[2]  # voltage rise from rooftop PV
    assert all(m["ansi_b_over_customer_intervals"] <= m["ansi_a_over_customer_intervals"] for m in runs)
