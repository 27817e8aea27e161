"""Phase 0's experiment layouts: joint (X and L together) and cross (scenarios over X x policies over L)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from common import config, doe
from common.paths import Workspace
from conftest import load_script

gen = load_script("0_code_xlrm/run_mix_generator.py")
apply = load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")
import circuit_instance as ci  # noqa: E402  (phase 6's folder is on the path once its script is loaded)

MEDIUM = "uhs0_1247--udt2473"
S, R = 5, 2


def _x_values(case: dict) -> tuple[float, ...]:
    """The case's values of the uncertainties as the analysis names them (hp_adoption, X parameters)."""
    flat = doe.flatten_case(case)
    factors = doe.factors_from_shares(flat["shares.baseline"], flat["shares.dm"], flat["shares.un"])[0]
    flat.update(zip((f.name for f in doe.FACTORS), (float(v) for v in factors)))
    return tuple(flat[n] for n in doe.uncertainty_names())


def _lever_values(case: dict) -> dict[str, float]:
    flat = doe.flatten_case(case)
    factors = doe.factors_from_shares(flat["shares.baseline"], flat["shares.dm"], flat["shares.un"])[0]
    flat.update(zip((f.name for f in doe.FACTORS), (float(v) for v in factors)))
    return {n: flat[n] for n in doe.lever_names()}


@pytest.fixture(scope="module")
def cross():
    mixes, cube, subs = doe.build_cross_mixes("lhs", S, config.DOE_SEED, replicates=R)
    return mixes, cube, subs


# ------------------------------------------------------------------------------------------- the split
def test_split_follows_the_parameters_roles():
    x, lever = doe.split_dimensions()
    assert sorted(x + lever) == list(range(len(doe.CUBE_DIMENSIONS)))
    for i in lever:
        dim = doe.CUBE_DIMENSIONS[i]
        assert (doe.PARAMETER_BY_NAME[dim].role if dim in doe.PARAMETER_BY_NAME else "L") == "L"
    roles = {p.name: p.role for p in (*doe.PARAMETERS, *doe.FACTORS)}
    assert all(roles[n] == "X" for n in doe.uncertainty_names())
    assert all(roles[n] == "L" for n in doe.lever_names())
    assert "hp_adoption" in doe.uncertainty_names() and "hp_dm_fraction" in doe.lever_names()
    assert len(doe.uncertainty_names()) == len(x) and len(doe.lever_names()) == len(lever)


# ------------------------------------------------------------------------------------------- full factorial
def test_cross_layout_is_a_full_factorial_with_case_0_the_reference(cross):
    mixes, _, _ = cross
    policies = len(config.POLICIES)
    assert list(mixes) == [str(k) for k in range(1 + S * policies * R)]
    assert (mixes["0"]["scenario"], mixes["0"]["policy"], mixes["0"]["policy_name"]) == (0, 0, doe.REFERENCE_POLICY_NAME)
    cells = sorted((c["scenario"], c["policy"], c["placement_replicate"]) for k, c in mixes.items() if k != "0")
    assert cells == [(s, p, r) for s in range(1, S + 1) for p in range(1, policies + 1) for r in range(R)]
    assert doe.validate_layout(mixes, "test") == "cross"
    for key, case in mixes.items():
        doe.validate_case(case, key)


def test_a_scenario_has_the_same_uncertainties_under_every_policy(cross):
    mixes, _, _ = cross
    by_scenario: dict[int, set] = {}
    for key, case in mixes.items():
        if key != "0":
            by_scenario.setdefault(case["scenario"], set()).add(_x_values(case))
    assert len(by_scenario) == S and all(len(v) == 1 for v in by_scenario.values())
    assert len({next(iter(v)) for v in by_scenario.values()}) == S  # scenarios differ from each other


def test_named_policies_set_their_levers_in_every_scenario(cross):
    mixes, _, _ = cross
    named = dict(doe.named_policies())
    for key, case in mixes.items():
        if key == "0":
            continue
        wanted = named[case["policy_name"]]
        got = _lever_values(case)
        for lever, value in wanted.items():
            if lever == "hp_dm_fraction" and np.isnan(got[lever]):
                continue  # a scenario without heat pumps: the fraction is undefined
            assert got[lever] == pytest.approx(value, abs=1e-12), (key, lever)
    assert mixes["1"]["ev_split"]["controlled"] == 0.0  # read as written: 0, not 5.6e-17


def test_placement_seeds_are_shared_by_scenarios_and_policies_per_replicate(cross):
    mixes, _, _ = cross
    for key, case in mixes.items():
        assert {k: case[k] for k in doe.SEED_KEYS.values()} == doe.placement_seeds(config.DOE_SEED,
                                                                                     case["placement_replicate"])


def test_sampled_policies_are_the_same_in_every_design():
    lhs = doe.build_cross_mixes("lhs", 4, config.DOE_SEED, n_policies=3)[0]
    sobol = doe.build_cross_mixes("sobol", 4, config.DOE_SEED, n_policies=3)[0]
    _, l_cols = doe.split_dimensions()
    levers = lambda mixes: {(c["policy"], tuple(c["unit_cube"][i] for i in l_cols))  # noqa: E731
                            for k, c in mixes.items() if k != "0"}
    assert levers(lhs) == levers(sobol) and len(levers(lhs)) == 3
    assert {c["policy_name"] for k, c in lhs.items() if k != "0"} == {"policy 1", "policy 2", "policy 3"}


def test_a_policy_that_leaves_a_lever_out_is_named_in_one_line():
    lever = doe.lever_names()[-1]
    policies = {"thin": {"levers": {n: 0.0 for n in doe.lever_names() if n != lever}, "reason": "test"}}
    with pytest.raises(doe.MixesError, match=f"'thin'.*does not set lever '{lever}'"):
        doe.named_policies(policies)
    with pytest.raises(doe.MixesError, match="'ev_perc' is not a lever"):
        doe.named_policies({"odd": {"levers": {**{n: 0.0 for n in doe.lever_names()}, "ev_perc": 0.1}}})


def test_every_configured_policy_sets_every_lever_with_a_reason():
    assert [name for name, _ in doe.named_policies()] == list(config.POLICIES)
    assert all(spec["reason"] for spec in config.POLICIES.values())


# ------------------------------------------------------------------------------------------- the script
def test_script_writes_cross_mixes_and_checks_each_sub_design(tmp_path):
    assert gen.main(["--data-dir", str(tmp_path), "--layout", "cross", "--scenarios", "8", "--policies", "4",
                     "--design", "lhs", "-q"]) == 0
    ws = Workspace(tmp_path)
    mixes = doe.load_mixes(ws.mixes("lhs"))
    assert doe.validate_layout(mixes, "lhs") == "cross" and len(mixes) == 1 + 8 * 4
    summary = pd.read_csv(ws.lhs_vs_sobol_summary)
    assert set(summary["layout"]) == {"cross"}
    pair = summary["max_abs_corr_pair"].iloc[0]
    assert pair.split(":")[0] in ("scenarios", "policies")
    sub = gen.sub_designs(np.zeros((1, len(doe.CUBE_DIMENSIONS))),
                          doe.build_cross_mixes("lhs", 8, config.DOE_SEED, n_policies=4)[2])
    expected = max(doe.max_abs_correlation(c, names)[0] for c, names in sub.values())
    assert summary["max_abs_corr"].iloc[0] == pytest.approx(expected)
    long = pd.read_csv(ws.mixes_compare_long)
    assert {"scenario", "policy"} <= set(long.columns)
    manifest = json.loads((ws.phase("0") / doe.PHASE0_MANIFEST).read_text())
    assert manifest["settings"]["layout"] == "cross" and manifest["settings"]["scenarios"] == 8


def test_joint_layout_keeps_its_schema(tmp_path):
    assert gen.main(["--data-dir", str(tmp_path), "--n-cases", "4", "--design", "lhs", "-q"]) == 0
    mixes = doe.load_mixes(Workspace(tmp_path).mixes("lhs"))
    assert doe.validate_layout(mixes, "lhs") == "joint"
    assert not any(k in case for case in mixes.values() for k in doe.LAYOUT_KEYS)


def test_flags_of_the_other_layout_are_refused_in_one_line(tmp_path, capsys):
    assert gen.main(["--data-dir", str(tmp_path), "--layout", "cross", "--n-cases", "8", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--scenarios" in err
    assert gen.main(["--data-dir", str(tmp_path), "--policies", "3", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--layout cross" in err
    assert not (tmp_path / "0_code_xlrm" / "mixes_lhs.json").exists()


# ------------------------------------------------------------------------------------------- instances
@pytest.fixture(scope="module")
def medium_context(prepared_nc):
    return ci.load_context(Workspace(prepared_nc), "NC", "winter", MEDIUM)


def test_instances_of_one_scenario_differ_only_in_the_policys_devices(medium_context):
    """Phase 6's circuit_instance plans one scenario under "no programme" and "all levers" (and managed
    charging): the same heat-pump adopters, EV hosts, levels, legs and sessions, PV hosts and sizes;
    only demand management, managed charging and the batteries differ."""
    mixes, _, _ = doe.build_cross_mixes("lhs", 4, config.DOE_SEED)
    names = list(config.POLICIES)
    for scenario in range(1, 5):
        cases = {c["policy_name"]: c for k, c in mixes.items() if k != "0" and c["scenario"] == scenario}
        plans = {name: ci.plan_case(medium_context, cases[name]) for name in names}
        none, every = plans["no programme"], plans["all levers"]
        adopters = lambda plan: set(np.nonzero(plan.variant_of != "baseline")[0].tolist())  # noqa: E731
        for name, plan in plans.items():
            assert adopters(plan) == adopters(none), (scenario, name)
            assert plan.ev_hosts == none.ev_hosts and list(plan.levels) == list(none.levels), (scenario, name)
            np.testing.assert_array_equal(plan.legs, none.legs)
            for field in ("charger_kw", "arrival_step", "dwell_steps", "need_kwh"):
                np.testing.assert_array_equal(getattr(plan.sessions, field), getattr(none.sessions, field))
            assert plan.pv_kw == none.pv_kw
        assert not (none.variant_of == "dm").any() and not none.controlled.any() and not none.sto_kw
        if adopters(none):
            assert (every.variant_of[list(adopters(every))] == "dm").all()
        if none.ev_hosts:
            assert plans["managed charging 80 %"].controlled.any()
            assert not plans["storage 20 %"].controlled.any()
        assert every.sto_kw and plans["storage 20 %"].sto_kw
