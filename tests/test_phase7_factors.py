"""The independent factors of the heat-pump shares (common.doe.FACTORS) and their use in phase 7.

``hp_adoption`` = 1 - baseline and ``hp_dm_fraction`` = dm / (dm + un) are each a function of ONE
cube dimension of phase 0 (the square-root simplex map), so they are independent on any design that
draws its cube dimensions independently; the shares dm and un are not (rank correlation about -0.5).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from common import doe
from conftest import load_script

sensitivity = load_script("7_results_analysis/sensitivity_analysis.py")
discovery = load_script("7_results_analysis/scenario_discovery.py")
long_format = load_script("7_results_analysis/append_xlrm_long_format.py")
import results_io as rio  # noqa: E402  (phase 7 folder put on sys.path by load_script)

N_LARGE = 4096


def _large_design() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cube = doe.sample_lhs(N_LARGE, seed=11)
    shares = doe.simplex_from_cube(cube[:, 0], cube[:, 1])
    return cube, shares, doe.factors_from_shares(shares[:, 0], shares[:, 1], shares[:, 2])


def test_factors_are_exact_functions_of_one_cube_dimension_each():
    cube, _, factors = _large_design()
    np.testing.assert_allclose(factors[:, 0], np.sqrt(cube[:, 0]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(factors[:, 1], 1.0 - cube[:, 1], rtol=0, atol=1e-12)


def test_factors_are_rank_uncorrelated_on_a_large_design():
    _, _, factors = _large_design()
    rho = spearmanr(factors[:, 0], factors[:, 1]).statistic
    assert abs(rho) < 0.03  # about 2 standard errors (1 / sqrt(4096) = 0.016) of independent columns


def test_shares_dm_and_un_are_rank_correlated_by_construction():
    _, shares, _ = _large_design()
    rho = spearmanr(shares[:, 1], shares[:, 2]).statistic
    assert -0.55 < rho < -0.4


def test_hp_dm_fraction_is_undefined_without_heat_pumps():
    factors = doe.factors_from_shares([1.0, 0.25], [0.0, 0.5], [0.0, 0.25])
    assert factors[0, 0] == 0.0 and np.isnan(factors[0, 1])
    np.testing.assert_allclose(factors[1], [0.75, 2 / 3], rtol=0, atol=1e-15)


def test_factor_roles_match_the_shares_roles():
    assert doe.FACTOR_BY_NAME["hp_adoption"].role == doe.PARAMETER_BY_NAME["shares.un"].role == "X"
    assert doe.FACTOR_BY_NAME["hp_dm_fraction"].role == doe.PARAMETER_BY_NAME["shares.dm"].role == "L"


def test_independent_inputs_use_the_factors_not_the_shares():
    assert {"hp_adoption", "hp_dm_fraction"} <= set(rio.INDEPENDENT_INPUTS)
    assert not {n for n in rio.INDEPENDENT_INPUTS if n.startswith("shares.")}
    assert all(n in rio.INPUT_BY_NAME for n in rio.INDEPENDENT_INPUTS)


def _results(n: int = 6) -> pd.DataFrame:
    cube = doe.sample_lhs(n, seed=3)
    cases = doe.cube_to_cases(cube)
    rows = [{"state": "NC", "feeder": "s--f1", "season": "winter", "design": "lhs", "case": i, "design_day": "",
             **doe.flatten_case(c), "disjoint_sets": True, "status": "ok", "peak_kw": 100.0 + i,
             "n_customers": 10} for i, c in enumerate(cases, start=1)]
    reference = {**rows[0], "case": 0, "shares.baseline": 1.0, "shares.dm": 0.0, "shares.un": 0.0}
    return pd.DataFrame([reference, *rows])


def test_with_factors_keeps_the_shares_and_adds_the_factors_after_the_inputs():
    frame = rio.with_factors(_results())
    columns = list(frame.columns)
    assert {"shares.baseline", "shares.dm", "shares.un"} <= set(columns)
    at = columns.index(rio.INPUTS[-1])  # the last input (storage_perc_res since issue 14 item 8)
    assert columns[at + 1:at + 3] == ["hp_adoption", "hp_dm_fraction"]
    np.testing.assert_allclose(frame["hp_adoption"], 1.0 - frame["shares.baseline"], rtol=0, atol=1e-15)
    assert np.isnan(frame.loc[frame["case"] == 0, "hp_dm_fraction"]).all()
    assert rio.with_factors(frame).equals(frame)


def test_long_table_has_factor_rows_with_roles_and_shares_kept():
    long = long_format.long_table(_results())
    roles = long.drop_duplicates("variable").set_index("variable")["role"]
    assert roles["hp_adoption"] == "X" and roles["hp_dm_fraction"] == "L"
    assert roles["shares.dm"] == "L" and roles["shares.un"] == "X"
    reference = long[(long["case"] == 0) & (long["variable"] == "hp_dm_fraction")]
    assert reference["value"].isna().all()


def test_sensitivity_groups_leave_out_a_run_without_heat_pumps():
    results = rio.with_factors(_results())
    results.loc[results["case"] == 2, ["shares.baseline", "shares.dm", "shares.un"]] = [1.0, 0.0, 0.0]
    results = rio.with_factors(results)
    tasks, skips = sensitivity.analysis_groups(results, ["peak_kw"])
    feeder = next(t for t in tasks if t["scope"] == "feeder")
    assert len(feeder["y"]) == 5 and np.isfinite(feeder["x"]).all()
    assert any("without heat pumps" in s["reason"] and s["n_runs"] == 1 for s in skips)


def test_discovery_groups_leave_out_a_run_without_heat_pumps():
    results = rio.with_factors(_results())
    results.loc[results["case"] == 2, ["shares.baseline", "shares.dm", "shares.un"]] = [1.0, 0.0, 0.0]
    results = rio.with_factors(results)
    runs = discovery.design_runs(results)  # what every PRIM group is drawn from
    assert 2 not in set(runs["case"]) and 0 not in set(runs["case"]) and len(runs)
