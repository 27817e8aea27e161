"""Phase 6 upgrade step (6_instantiate_circuits/upgrade_circuit.py): thermal and voltage upgrades and their cost.

Each test writes a tiny feeder instance (its .dss files and the assignments the power flow reads), solves it
with the power flow, then upgrades it with NREL DISCO's unit-cost tables from ../shared/data/upgrade_costs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA, load_script, requires_shared
from faults import one_line

up = load_script("6_instantiate_circuits/upgrade_circuit.py")
pf = load_script("6_instantiate_circuits/daily_power_flow.py")

COSTS = SHARED_DATA / "upgrade_costs"

#: a daily shape: 0.3 pu at night, 1.0 pu from 17:00 to 20:00
SHAPE = [1.0 if 68 <= k < 80 else 0.3 for k in range(96)]


def _instance(folder: Path, body: str, service_nodes: list[list], head: str = "Line.l1",
              shape: list[float] | None = None) -> Path:
    """Write an instance folder: Master.dss (source, the ``body``, the daily shape) and the assignments."""
    folder.mkdir(parents=True, exist_ok=True)
    mult = " ".join(f"{m:g}" for m in (SHAPE if shape is None else shape))
    (folder / "Master.dss").write_text(
        "Clear\n"
        "New Circuit.tiny bus1=src basekV=12.47 pu=1.0 R1=1e-05 X1=1e-05 R0=1e-05 X0=1e-05\n"
        f"New Loadshape.day npts=96 interval=0.25 mult=({mult})\n"
        "New Linecode.lc3 nphases=3 r1=0.1 x1=0.1 r0=0.3 x0=0.3 units=km normamps=100 emergamps=150\n"
        + body +
        "Set Voltagebases=[12.47, 0.208]\nCalcvoltagebases\nSet maxcontroliter=100 maxiterations=100\n")
    assignments = {"state": "NC", "season": "winter", "design": "lhs", "feeder": "tiny", "case": "1",
                   "design_day": "2018-01-02", "inputs": {}, "realised": {"ev_need_kwh": 0.0},
                   "inputs_digest": "x", "mixes_digest": "", "shared_digest": "", "service_nodes": service_nodes,
                   "hosts": {"ev": [], "storage": [], "pv": []}, "forecast_kw": {"ev": [0.0] * 96},
                   "head_element": head, "head_sign": 1.0, "unrated_lines": []}
    (folder / "scenario_assignments.json").write_text(json.dumps(assignments))
    table, summary, _ = pf.simulate(folder)
    summary = pf.write_outputs(folder, table, summary)
    assert summary["status"] == "ok", summary["message"]
    return folder


#: one 25 kVA split-phase service transformer (7.2 kV / 120-240 V) serving 32.5 kW at the peak: 1.3 pu
XF_BODY = ("New Line.l1 bus1=src.1.2.3 bus2=b1.1.2.3 linecode=lc3 length=0.1 units=km\n"
           "New Transformer.t1 phases=1 windings=3 %loadloss=0.8 %noloadloss=0 XHL=2.4 XLT=2.4 XHT=1.6 "
           "wdg=1 conn=wye bus=b1.1 kV=7.2 kva=25 %r=0.27 wdg=2 conn=wye bus=lv.1.0 kV=0.12 kva=25 %r=0.53 "
           "wdg=3 conn=wye bus=lv.0.2 kV=0.12 kva=25 %r=0.53\n"
           "New Load.c1 bus1=lv.1.2 phases=1 kV=0.24 kW=32.5 pf=1 model=1 daily=day\n")
#: a 100 A three-phase line carrying 3 MW at the peak (139 A: 1.39 pu)
LINE_BODY = ("New Line.l1 bus1=src.1.2.3 bus2=b1.1.2.3 linecode=lc3 length=0.2 units=km\n"
             "New Load.c1 bus1=b1.1.2.3 phases=3 kV=12.47 kW=3000 pf=1 model=1 daily=day\n")
#: a 1:1 regulator at the head set too low (vreg 113 V): the customer is below Range A all day
REG_BODY = ("New Transformer.reg1 phases=3 windings=2 buses=(src.1.2.3, r1.1.2.3) conns=(wye, wye) "
            "kvs=(12.47, 12.47) kvas=(10000, 10000) XHL=0.01 %loadloss=0.0001\n"
            "New RegControl.reg1 transformer=reg1 winding=2 vreg=113 band=1 ptratio=60\n"
            "New Line.l1 bus1=r1.1.2.3 bus2=b1.1.2.3 linecode=lc3 length=0.1 units=km\n"
            "New Load.c1 bus1=b1.1.2.3 phases=3 kV=12.47 kW=300 pf=1 model=1 daily=day\n")


@pytest.fixture
def tables():
    if not COSTS.is_dir():
        pytest.skip("../shared/data/upgrade_costs (NREL DISCO's cost tables) is not beside this checkout")
    return up.load_cost_tables(COSTS)


def test_choose_size_takes_the_smallest_size_reaching_the_design_loading():
    choice = up.choose_size([10, 25, 50, 75], rating=25, required=25 * 1.3 / 0.75, oversize_limit=2, parallel_limit=4)
    assert (choice.action, choice.size, choice.n) == ("replace", 50, 1)


def test_choose_size_goes_parallel_when_no_size_is_large_enough():
    choice = up.choose_size([10, 25, 50], rating=50, required=180, oversize_limit=2, parallel_limit=4)
    assert (choice.action, choice.size, choice.n) == ("parallel", 50, 3)  # 50 + 3 x 50 = 200 >= 180


@requires_shared
def test_transformer_overload_gets_the_next_catalogue_size_and_its_cost(tmp_path, tables):
    folder = _instance(tmp_path / "xf", XF_BODY, [["c1", ["lv.1", "lv.2"]]])
    result, commands, _ = up.upgrade_run(folder, tables)
    [record] = result["upgrades"]
    assert record["element"] == "transformer.t1" and record["action"] == "replace"
    assert (record["before"]["kva"], record["after"]["kva"]) == (25.0, 50.0)
    assert record["cost_usd"] == 7000.0 and record["cost_basis"] == "exact row"  # 1-ph 7.2/0.12 kV 50 kVA, wye-wye
    # 1.3 pu from 17:00: the 2-h moving average first exceeds 100 % in the window ending 18:15-18:30
    assert record["trigger_loading_pct"] > 125.0 and record["trigger_interval_start"] == "18:15"
    assert "2-h moving average above 100 %" in record["reason"]
    assert result["all_violations_removed"] and result["after"]["transformers_over_limit"] == 0


@requires_shared
def test_sustained_overload_below_disco_limit_is_upgraded_by_the_planning_criteria(tmp_path, tables, monkeypatch):
    # 1.2 pu for three hours: fails the 2-h criterion, never reaches DISCO's 1.25 pu
    folder = _instance(tmp_path / "xf", XF_BODY.replace("kW=32.5", "kW=30"), [["c1", ["lv.1", "lv.2"]]])
    summary = json.loads((folder / "summary.json").read_text())["metrics"]
    assert summary["transformer_ma_overload_intervals"] > 0 and summary["worst_transformer_loading_pct"] < 125.0
    result, _, _ = up.upgrade_run(folder, tables)
    [record] = result["upgrades"]
    assert (record["before"]["kva"], record["after"]["kva"]) == (25.0, 50.0)  # 1.2 x 25 / 0.75 = 40 kVA
    assert result["all_violations_removed"]
    monkeypatch.setitem(up.UPGRADES, "trigger", "disco")
    result, _, _ = up.upgrade_run(folder, tables)
    assert result["status"] == "not needed" and result["upgrades"] == []


@requires_shared
def test_short_peak_inside_the_thermal_time_constant_is_not_upgraded(tmp_path, tables, monkeypatch):
    # 1.3 pu for one 15-min interval: DISCO's 1.25 pu limit upgrades it, the 2-h average and 150 % do not
    shape = [1.0 if k == 72 else 0.3 for k in range(96)]
    folder = _instance(tmp_path / "xf", XF_BODY, [["c1", ["lv.1", "lv.2"]]], shape=shape)
    result, _, _ = up.upgrade_run(folder, tables)
    assert result["status"] == "not needed" and result["day_solves"] == 0
    monkeypatch.setitem(up.UPGRADES, "trigger", "disco")
    result, _, _ = up.upgrade_run(folder, tables)
    [record] = result["upgrades"]
    assert record["element"] == "transformer.t1" and record["trigger_interval_start"] == "18:00"
    assert "UPGRADES transformer_upper_limit_pu" in record["reason"]


def test_an_unknown_upgrade_trigger_is_refused_in_one_line(monkeypatch):
    monkeypatch.setitem(up.UPGRADES, "trigger", "instantaneous")
    with pytest.raises(up.InputError, match=r"UPGRADES\['trigger'\] is 'instantaneous': give one of planning_criteria, disco"):
        up.violates({})


@requires_shared
def test_line_overload_gets_the_smallest_conductor_that_clears_it(tmp_path, tables):
    folder = _instance(tmp_path / "line", LINE_BODY, [["c1", ["b1.1", "b1.2", "b1.3"]]])
    result, _, _ = up.upgrade_run(folder, tables)
    [record] = result["upgrades"]
    # 139 A / 0.75 = 185 A; the 3-phase 7.2 kV overhead rows: 325 A is the smallest at least that
    assert record["element"] == "line.l1" and (record["before"]["amps"], record["after"]["amps"]) == (100.0, 325.0)
    per_m = float(pd.read_csv(COSTS / "lines.csv").query(
        "upgrade_type == 'reconductored_line' and phases == 3 and voltage_kV == 7.2 and ampere_rating == 325 "
        "and line_placement == 'overhead'")["cost_per_m"].iloc[0])
    assert record["cost_usd"] == pytest.approx(per_m * 200.0, abs=0.005)
    assert record["before"]["placement_source"].startswith("assumed")  # lc3 names no placement: recorded
    assert result["all_violations_removed"]


@requires_shared
def test_undervoltage_is_fixed_by_a_regulator_setting_change(tmp_path, tables):
    folder = _instance(tmp_path / "reg", REG_BODY, [["c1", ["b1.1", "b1.2", "b1.3"]]], head="Line.l1")
    result, _, _ = up.upgrade_run(folder, tables)
    assert result["before"]["ansi_a_under_node_intervals"] > 0
    [record] = result["upgrades"]
    change = float(pd.read_csv(COSTS / "control_changes.csv").set_index("type").loc[
        "Change voltage regulator controller settings", "cost"])
    assert record["kind"] == "regulator_control" and record["cost_usd"] == change
    assert record["after"]["vreg_v"] > 113.0
    assert result["all_violations_removed"] and result["after"]["ansi_a_under_node_intervals"] == 0


@requires_shared
def test_upgraded_instance_solves_with_plain_opendss_and_no_violation(tmp_path, tables):
    import opendssdirect as odd

    folder = _instance(tmp_path / "xf", XF_BODY, [["c1", ["lv.1", "lv.2"]]])
    block, _, skipped = up.run_upgrade(folder, tables)
    assert not skipped and block["cost_usd"] == 7000.0
    odd.Basic.AllowChangeDir(True)
    try:
        odd.Text.Command(f"Compile [{folder / 'upgraded' / 'Master.dss'}]")
    finally:
        odd.Basic.AllowChangeDir(False)
    odd.Text.Command("Set mode=daily stepsize=15m number=1")
    worst, v_min = 0.0, 2.0
    for _ in range(96):
        odd.Solution.Solve()
        assert odd.Solution.Converged()
        odd.Circuit.SetActiveElement("Transformer.t1")
        s = np.asarray(odd.CktElement.Powers())
        worst = max(worst, abs(complex(s[0], s[1])) / 50.0)
        v_min = min(v_min, min(odd.Circuit.AllBusMagPu()))
    assert 0.5 < worst < 1.25 and v_min >= 0.95
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["upgrades"]["cost_transformers_usd"] == 7000.0 and summary["upgrades"]["all_violations_removed"]


@requires_shared
def test_run_without_violation_costs_zero_and_is_not_solved_again(tmp_path, tables):
    body = XF_BODY.replace("kW=32.5", "kW=10")
    folder = _instance(tmp_path / "ok", body, [["c1", ["lv.1", "lv.2"]]])
    (folder / "Master.dss").write_text("this is not OpenDSS\n")  # a solve would now fail
    block, _, _ = up.run_upgrade(folder, tables)
    assert block["status"] == "not needed" and block["cost_usd"] == 0.0 and block["day_solves"] == 0
    assert not (folder / "upgraded").exists()
    assert json.loads((folder / "upgrades.json").read_text())["upgrades"] == []


@requires_shared
def test_malformed_cost_table_is_one_line_and_exit_2(tmp_path, capsys):
    folder = _instance(tmp_path / "xf", XF_BODY, [["c1", ["lv.1", "lv.2"]]])
    costs = tmp_path / "costs"
    shutil.copytree(COSTS, costs)
    table = pd.read_csv(costs / "transformers.csv", dtype=str)
    table.loc[3, "cost"] = "n/a"
    table.to_csv(costs / "transformers.csv", index=False)
    before = (folder / "summary.json").read_bytes()
    assert up.main(["--instance", str(folder), "--cost-tables", str(costs), "--data-dir", str(tmp_path / "data")]) == 2
    line = one_line(capsys, costs / "transformers.csv")
    assert "'cost'" in line and "row 5" in line
    assert (folder / "summary.json").read_bytes() == before and not (folder / "upgrades.json").exists()


def test_missing_cost_tables_are_refused_in_one_line(tmp_path, capsys):
    folder = _instance(tmp_path / "xf", XF_BODY.replace("kW=32.5", "kW=10"), [["c1", ["lv.1", "lv.2"]]])
    assert up.main(["--instance", str(folder), "--data-dir", str(tmp_path / "data")]) == 2
    one_line(capsys, tmp_path / "data" / "upgrade_costs")


def test_results_table_carries_the_upgrade_cost_only_where_the_step_ran():
    from common import doe, schema

    agg = load_script("7_results_analysis/append_experiment_results.py")
    base = {"state": "NC", "season": "winter", "design": "lhs", "feeder": "s--f1", "design_day": "2018-01-17",
            "inputs": {**{p.name: 0.1 for p in doe.PARAMETERS}, "disjoint_sets": True},
            "realised": {"n_customers": 10}, "status": "ok", "message": "", "inputs_digest": "abc",
            "metrics": {name: ("x" if unit == "text" else 1) for name, (unit, _) in schema.METRICS.items()}}
    block = {"status": "upgraded", "cost_usd": 7500.0, "cost_transformers_usd": 7000.0, "cost_lines_usd": 0.0,
             "cost_voltage_usd": 500.0, "n_transformer_upgrades": 1, "n_line_upgrades": 0, "n_voltage_upgrades": 1,
             "n_unsolved": 0}
    rows = [agg.run_row({**base, "case": "1", "upgrades": block}), agg.run_row({**base, "case": "2"})]
    frame = agg.results_frame(rows)
    assert frame["upgrade_cost_usd"].tolist()[0] == 7500.0 and np.isnan(frame["upgrade_cost_usd"].tolist()[1])
    assert frame["upgrade_cost_voltage_usd"].iloc[0] == 500.0 and str(frame["upgrade_transformers"].dtype) == "Int64"
    assert "upgrade_cost_usd" not in agg.results_frame([rows[1]]).columns  # no upgraded run: no column


def test_sample_builder_copies_the_cost_tables_with_their_source(tmp_path):
    from common.paths import UPGRADE_COST_FILES, Workspace
    from sample import build_sample

    ws = Workspace(tmp_path / "data")
    assert build_sample.copy_upgrade_costs(ws, source=tmp_path / "absent") is None  # no ../shared: nothing copied
    if not COSTS.is_dir():
        pytest.skip("../shared/data/upgrade_costs (NREL DISCO's cost tables) is not beside this checkout")
    target = build_sample.copy_upgrade_costs(ws)
    for name in UPGRADE_COST_FILES.values():
        assert (target / name).read_bytes() == (COSTS / name).read_bytes()  # as published
    record = json.loads((target / "SOURCE.json").read_text())
    assert "BSD 3-Clause" in record["licence"] and set(record["files"]) == set(UPGRADE_COST_FILES.values())


@requires_shared
def test_batch_upgrades_every_failing_run_and_a_plain_resolve_drops_them(prepared_nc, tmp_path):
    """The phase 6 driver's --upgrades on the sample's medium NC feeder in winter: every ok run gets an
    ``upgrades`` block (upgraded with a cost and upgrades.json, or not needed at 0 USD); solving the runs again
    without --upgrades removes the upgrade outputs with the block."""
    from common.paths import Workspace
    from conftest import copy_workspace

    apply = load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")
    data = copy_workspace(prepared_nc, tmp_path / "data")
    argv = ["--data-dir", str(data), "--state", "NC", "--season", "winter", "--design", "lhs", "--run", "-q",
            "--feeders", "uhs0_1247--udt2473", "--workers", "1"]
    shutil.copytree(COSTS, Workspace(data).upgrade_costs_dir)  # what the sample builder does for make run
    assert apply.main([*argv, "--upgrades"]) == 0
    design_dir = Workspace(data).instance_dir("NC", "winter", "lhs", "uhs0_1247--udt2473", "1").parent
    summaries = {p.parent: json.loads(p.read_text()) for p in sorted(design_dir.rglob("summary.json"))
                 if p.parent.parent == design_dir}
    assert summaries
    statuses = set()
    for folder, summary in summaries.items():
        block = summary["upgrades"]
        statuses.add(block["status"])
        if block["status"] == "not needed":
            assert block["cost_usd"] == 0 and not (folder / "upgraded").exists()
            assert json.loads((folder / "upgrades.json").read_text())["upgrades"] == []
        else:
            assert block["status"] == "upgraded" and block["cost_usd"] > 0, block
            assert (folder / "upgrades.json").is_file() and (folder / "upgraded" / "Master.dss").is_file()
    assert "upgraded" in statuses  # the medium feeder overloads service transformers in winter
    assert apply.main([*argv, "--force"]) == 0
    for folder in summaries:
        assert "upgrades" not in json.loads((folder / "summary.json").read_text())
        assert not (folder / "upgrades.json").exists() and not (folder / "upgraded").exists()


def test_batch_upgrade_starts_from_the_run_day_and_decides_as_the_standalone_step(prepared_nc, tmp_path, tables,
                                                                                 monkeypatch):
    """The batch's upgrade step takes the run's own day as the day before upgrades (``before_day`` "run": no
    solve of it again) and the equipment of the run's cached feeder (no compile before the first upgrade); the
    standalone step, which compiles and solves it, upgrades the same elements to the same sizes at the same
    cost, with the same before and after figures to 1e-9."""
    from common.paths import Workspace
    from conftest import copy_workspace

    apply = load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")
    data = copy_workspace(prepared_nc, tmp_path / "data")
    shutil.copytree(COSTS, Workspace(data).upgrade_costs_dir)
    from common import dss

    compiles = []  # every instance compiled from its Master.dss (one worker: the batch runs in this process)
    compile_master = dss.compile_master
    monkeypatch.setattr(dss, "compile_master", lambda master, *a, **k: compiles.append(Path(master)) or
                        compile_master(master, *a, **k))
    assert apply.main(["--data-dir", str(data), "--state", "NC", "--season", "winter", "--design", "lhs", "--run",
                       "-q", "--feeders", "uhs0_1247--udt2473", "--workers", "1", "--upgrades"]) == 0
    in_batch = list(compiles)
    design_dir = Workspace(data).instance_dir("NC", "winter", "lhs", "uhs0_1247--udt2473", "1").parent
    batch = {p.parent: json.loads(p.read_text()) for p in sorted(design_dir.glob("*/upgrades.json"))}
    upgraded = {folder: r for folder, r in batch.items() if r["status"] == "upgraded"}
    assert upgraded
    for folder, from_run in upgraded.items():
        assert from_run["before_day"] == "run", folder.name
        compiles.clear()
        alone, _, _ = up.upgrade_run(folder, up.load_cost_tables(Workspace(data).upgrade_costs_dir))
        assert alone["before_day"] == "solved" and alone["day_solves"] == from_run["day_solves"] + 1
        # the batch's run and upgrade step compiled the instance once fewer than the standalone step alone: the
        # run on the cached feeder, the upgrade step from its equipment (no compile before the first upgrade)
        master = folder / "Master.dss"
        assert in_batch.count(master) == compiles.count(master) - 1 >= 1, folder.name
        assert alone["upgrades"] == from_run["upgrades"] and alone["unsolved"] == from_run["unsolved"], folder.name
        for when in ("before", "after"):
            assert alone[when].keys() == from_run[when].keys()
            for name, value in alone[when].items():
                assert from_run[when][name] == pytest.approx(value, rel=1e-9, abs=0.0), f"{folder.name} {when} {name}"


@requires_shared
def test_parallel_transformer_units_are_connected_to_the_original_buses(tmp_path, tables):
    # a 150 kVA unit carrying 1.7 pu for three hours: 255 / 0.75 = 340 kVA is above the catalogue's largest
    # single-phase 7.2 kV unit (300 kVA), so a parallel unit is added; OpenDSS's like= does not copy buses
    body = XF_BODY.replace("kva=25", "kva=150").replace("kW=32.5", "kW=255")
    folder = _instance(tmp_path / "xf", body, [["c1", ["lv.1", "lv.2"]]])
    result, commands, _ = up.upgrade_run(folder, tables)
    [record] = [r for r in result["upgrades"] if r["kind"] == "transformer"]
    assert record["action"] == "parallel" and record["after"]["total_kva"] >= 340.0
    units = [c for c in commands if c.startswith("New Transformer.upg_t1_p")]
    assert len(units) == record["units"] and all("buses=(b1.1, lv.1.0, lv.0.2)" in c for c in units)
    assert result["after"]["transformers_over_limit"] == 0
    assert not [u for u in result["unsolved"] if u["element"].startswith("transformer.")]
