"""The SMART-DS route on a feeder with real-world features (the sample's AUS subregion P2U: a
normally-open tie, a regulator bank and a switched capacitor, half loads on yearly shapes, and a solar
scenario whose PVShapes.dss points into pv-profiles/): phases 1b, 2-5 and 6 run on it as published,
selected by editing the state's row of common.config.SMARTDS, as a user would."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from common import config, doe
from common.paths import Workspace
from conftest import load_script, make_workspace
from pipeline import run_phase1b, run_profiles, sample_eulp_root

FEEDER = "p2uhs4_1247--p2udt6108"
SOLAR = "solar_medium_batteries_none_timeseries"


@pytest.mark.parametrize("scenario", ["base_timeseries", SOLAR])
def test_feature_feeder_runs_through_phases_1b_to_6(sample_root, tmp_path, monkeypatch, scenario):
    monkeypatch.setitem(config.SMARTDS, "TX", {**config.SMARTDS["TX"], "subregions": ("P2U",), "scenario": scenario})
    data = make_workspace(tmp_path / "data", sample_root)
    assert load_script("0_code_xlrm/run_mix_generator.py").main(["--data-dir", str(data), "--n-cases", "2", "-q"]) == 0
    run_phase1b(data, "TX")
    run_profiles(data, "TX", eulp_root=sample_eulp_root(data))
    ws = Workspace(data)
    apply = load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")
    assert apply.main(["--data-dir", str(data), "--state", "TX", "--season", "winter", "--design", "lhs", "--run",
                       "--workers", "1", "-q"]) == 0
    filt = pd.read_csv(ws.circuit_filter("TX")).set_index("feeder").loc[FEEDER]
    assert filt["status"] == "pass" and filt["n_isolated_branches"] >= 1  # the open tie
    index = pd.read_csv(ws.batch_index("TX", "winter", "lhs"))
    assert (index["status"] == "ok").all() and len(index) == len(doe.load_mixes(ws.mixes("lhs")))
    customers = pd.read_parquet(ws.customers("TX"))
    assert (customers["service"] == "split_phase").any()  # x_1 / x_2 halves are one customer
    a = json.loads((ws.instance_dir("TX", "winter", "lhs", FEEDER, "1") / "scenario_assignments.json").read_text())
    if scenario == SOLAR:
        assert a["pv_source"].startswith("SMART-DS solar shape")  # read through PVShapes.dss into pv-profiles/
    else:
        assert a["pv_source"].startswith("pvlib")
