"""Scenario discovery on the EMA Workbench: its PRIM follows the documented algorithm (the trajectories the
project's own peel-and-paste and the PRIM 1.0 package gave, recorded), boxes keep only restrictions with
quasi-p <= 0.05, reproducibility from resamples, CART where PRIM finds no box, statuses of groups without one.

Small synthetic arrays only; the end-to-end run on the sample is in ``test_phase7_pipeline.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conftest import load_script

discovery = load_script("7_results_analysis/scenario_discovery.py")
import results_io as rio  # noqa: E402  (phase 7 folder put on sys.path by load_script)

PRIM, _ = discovery.ema_modules()
SETTINGS = {"min_runs": 10, "min_coverage": 0.8, "max_boxes": 1, "peel_alpha": 0.05, "paste_alpha": 0.05,
            "mass_min": 0.05, "significance": 0.05, "resamples": 5, "seed": 3}


def _planted(n: int, seed: int, decimals: int | None = None):
    """The project's PRIM test data: a box in the first two of four inputs, 5 % noise."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4))
    if decimals is not None:
        x = np.round(x, decimals)
    y = ((x[:, 0] > 0.6) & (x[:, 1] < 0.5)) | (rng.random(n) < 0.05)
    return x, y


def _ema_trajectory(x: np.ndarray, y: np.ndarray):
    with discovery.ema_quiet():
        box = PRIM.Prim(pd.DataFrame(x, columns=list("abcd")), y.astype(int), peel_alpha=0.05, paste_alpha=0.05,
                        mass_min=0.05).find_box()
    return box


# ------------------------------------------------------------------------------------------- the algorithm
#: Trajectories (points in the box, failures in the box, restricted inputs) and last limits of two of the
#: project's PRIM test cases, as 7_results_analysis/prim_peeling.py (the hand-written implementation EMA
#: replaces) and the PRIM 1.0 package both gave them: peeling only, and peeling then pasting. On 480 planted
#: cases (n 30-120, continuous and rounded inputs, 12 with pasting) EMA's trajectories were the same step
#: for step, limits included, before prim_peeling.py was removed.
RECORDED = {
    (40, 4, 1): ([(40, 6, 0), (34, 6, 1), (31, 6, 2), (28, 6, 2), (25, 6, 3), (22, 6, 3), (19, 6, 3), (18, 6, 3),
                  (17, 6, 4), (15, 6, 4)], [[0.25, 1.0], [0.25, 0.85], [0.1, 0.85], [0.0, 0.85]]),
    (50, 11, 2): ([(50, 15, 0), (46, 15, 1), (43, 15, 1), (40, 15, 2), (36, 15, 2), (33, 15, 2), (30, 14, 2),
                   (32, 15, 2)], [[0.02, 1.0], [0.025, 0.86], [0.05, 0.96], [0.035, 0.795]]),
}


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_ema_prim_gives_the_recorded_trajectory(case):
    x, y = _planted(*case)
    box = _ema_trajectory(x, y)
    steps, last = RECORDED[case]
    got = box.peeling_trajectory[["n", "k", "res_dim"]].to_numpy(dtype=int)
    assert [tuple(r) for r in got] == steps
    np.testing.assert_allclose(box.box_lims[-1][list("abcd")].to_numpy(dtype=float).T, last, rtol=0, atol=1e-12)
    np.testing.assert_allclose(box.peeling_trajectory["coverage"], [k / y.sum() for _, k, _ in steps], rtol=0, atol=1e-12)
    np.testing.assert_allclose(box.peeling_trajectory["mass"], [n / len(y) for n, _, _ in steps], rtol=0, atol=1e-12)


def test_ema_quasi_p_is_the_one_sided_binomial_of_lifting_one_limit():
    """Bryant and Lempert (2010): with the upper limit of x1 lifted, the box's k of n failures against the
    density of the lifted box, one-sided."""
    from scipy.stats import binomtest

    x, y = _planted(80, 2, 1)
    box = _ema_trajectory(x, y)
    lim = box.box_lims[-1]
    n, k = int(box.peeling_trajectory["n"].iloc[-1]), int(box.peeling_trajectory["k"].iloc[-1])
    lifted = np.ones(len(y), dtype=bool)
    for j, name in enumerate("abcd"):
        high = x[:, j].max() if name == "b" else lim.loc[1, name]
        lifted &= (x[:, j] >= lim.loc[0, name]) & (x[:, j] <= high)
    expected = binomtest(k, n, y[lifted].mean(), alternative="greater").pvalue
    assert box.p_values[-1]["b"][1] == pytest.approx(expected, rel=1e-12)
    assert box.p_values[-1]["b"][0] == -1  # its lower limit is not restricted


def test_select_step_takes_the_densest_box_above_the_coverage():
    trajectory = pd.DataFrame({"coverage": [1.0, 0.9, 0.6], "density": [0.5, 0.6, 0.75], "res_dim": [0, 1, 1]})
    assert discovery.select_step(trajectory, 0.8) == 1
    assert discovery.select_step(trajectory, 0.5) == 2
    assert discovery.select_step(trajectory, 1.0) == 0


def test_restriction_qp_takes_the_larger_of_the_restricted_limits():
    assert discovery.restriction_qp({"a": [0.01, -1], "b": [0.2, 0.03], "c": [-1, -1]}) == {"a": 0.01, "b": 0.2}


# ------------------------------------------------------------------------------------------- one group
def _group(n: int = 120, seed: int = 1, noise: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Runs over the seven independent inputs; failures where hp_adoption > 0.6 (and ``noise`` at random)."""
    rng = np.random.default_rng(seed)
    runs = pd.DataFrame(rng.random((n, len(rio.INDEPENDENT_INPUTS))), columns=list(rio.INDEPENDENT_INPUTS))
    y = (runs["hp_adoption"].to_numpy() > 0.6) | (rng.random(n) < noise)
    return runs, y


def _head(group: str = "NC winter") -> dict:
    return {"group": group, "scope": "pooled", "criterion": "fails", "state": "NC", "season": "winter", "feeder": "",
            "reference": "", "feeders_left_out": ""}


def test_box_restricts_only_inputs_with_quasi_p_at_most_the_significance():
    """40 runs (a feeder group's size), 10 % noise: the densest qualifying step also restricts inputs that
    do not matter; every one of them above 0.05 is dropped, the planted input stays."""
    runs, y = _group(n=40, seed=3, noise=0.1)
    boxes, steps = discovery.discover(_head(), runs, y, list(rio.INDEPENDENT_INPUTS), **SETTINGS)
    box = boxes[0]
    assert box["status"] == "box" and box["method"] == "prim"
    qp = {n: box[f"{n}.qp"] for n in rio.INDEPENDENT_INPUTS if math.isfinite(box[f"{n}.qp"])}
    assert "hp_adoption" in qp and max(qp.values()) <= 0.05
    assert box["n_restricted"] == len(qp)
    # restricted = limits inside the data's range; exactly the inputs with a quasi-p value
    for name in rio.INDEPENDENT_INPUTS:
        inside = box[f"{name}.min"] > runs[name].min() or box[f"{name}.max"] < runs[name].max()
        assert inside == (name in qp), name
    trajectory = pd.DataFrame(steps)
    assert (trajectory["phase"] == "drop").any()  # something insignificant was there to drop
    assert trajectory["selected"].sum() == 1 and trajectory[trajectory["selected"]]["phase"].item() == "drop"


def test_box_reports_reproducibility_from_seeded_resamples():
    runs, y = _group()
    first, _ = discovery.discover(_head(), runs, y, list(rio.INDEPENDENT_INPUTS), **SETTINGS)
    again, _ = discovery.discover(_head(), runs, y, list(rio.INDEPENDENT_INPUTS), **SETTINGS)
    box = first[0]
    assert box["rule"].startswith("hp_adoption >= 0.6")
    assert box["hp_adoption.repro_density"] == 100.0 and box["reproducibility_pct"] == 100.0
    assert all(0.0 <= box[f"{n}.repro_{s}"] <= 100.0 for n in rio.INDEPENDENT_INPUTS for s in ("coverage", "density"))
    assert first == again


def test_group_without_a_significant_box_gets_the_cart_view():
    """Failures at random: nothing PRIM keeps is significant; the row says so and gives CART's densest leaf."""
    runs, y = _group(n=60, seed=4)
    y = np.random.default_rng(9).random(len(y)) < 0.3
    boxes, steps = discovery.discover(_head(), runs, y, list(rio.INDEPENDENT_INPUTS), **SETTINGS)
    row = boxes[0]
    assert row["status"] == "no_box" and row["method"] == "cart" and not steps
    assert row["rule"].startswith(("CART", "PRIM finds no restriction"))
    assert all(math.isnan(row.get(f"{n}.qp", math.nan)) for n in rio.INDEPENDENT_INPUTS)
    if row["rule"].startswith("CART"):
        assert 0 < row["coverage"] <= 1 and row["density"] > len(y[y]) / len(y)
        assert row["n_in_box"] >= discovery.MIN_LEAF_RUNS


def test_discover_records_groups_without_a_box():
    runs, _ = _group(n=12)
    names = list(rio.INDEPENDENT_INPUTS)
    none, _ = discovery.discover(_head(), runs, np.zeros(12, bool), names, **SETTINGS)
    assert none[0]["status"] == "no_failures"
    every, _ = discovery.discover(_head(), runs, np.ones(12, bool), names, **SETTINGS)
    assert every[0]["status"] == "all_failures"
    few, _ = discovery.discover(_head(), runs.head(5), np.ones(5, bool), names, **SETTINGS)
    assert few[0]["status"] == "too_few_runs"
    assert {r[0]["n_runs"] for r in (none, every)} == {12}


def test_box_columns_hold_every_status_row_key():
    runs, y = _group()
    boxes, steps = discovery.discover(_head(), runs, y, list(rio.INDEPENDENT_INPUTS), **SETTINGS)
    assert set(boxes[0]) <= set(discovery.box_columns())
    assert set(steps[0]) <= set(discovery.trajectory_columns())
    assert set(discovery.STATUSES) >= {"box", "no_box", "fails_before_adoption", "no_failures", "all_failures",
                                       "too_few_runs"}
