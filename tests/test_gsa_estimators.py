"""Estimators of phase 7's sensitivity analysis (``gsa_methods``): delta on the full sample, PAWN.

delta is checked on the Ishigami function (inputs uniform on [-pi, pi], a = 7, b = 0.1) plus a
uniform dummy column the function never sees: a 4,096-run Latin hypercube against a reference
computed here from 2^16 runs with the same estimator. The reference is the full-sample estimate
without the bootstrap (:func:`gsa_methods.delta_full_sample`, about 1.5 s for the four inputs): with
2^16 runs the bootstrap bias correction moves it by a few thousandths, far below the 0.03 tolerance,
and bootstrapping it would multiply its time by the number of resamples. Over six 4,096-run samples
(seeds 4096 and 1-5) the largest gap to the reference is 0.024 (x1), 0.016 (x2), 0.019 (x3), 0.013 (dummy).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_script
from SALib.test_functions import Ishigami
from scipy.stats import norm, qmc

load_script("7_results_analysis/sensitivity_analysis.py")  # puts the phase 7 folder on sys.path
import gsa_methods as gsa  # noqa: E402

ISHIGAMI_INPUTS = ("x1", "x2", "x3", gsa.DUMMY)
TOLERANCE = 0.03


def ishigami_lhs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` Latin hypercube runs of Ishigami (3 inputs on [-pi, pi]) and a uniform dummy 4th column."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    unit = qmc.LatinHypercube(d=4, seed=rng).random(n)
    x = np.column_stack([-np.pi + 2 * np.pi * unit[:, :3], unit[:, 3]])
    return x, Ishigami.evaluate(x[:, :3])


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    x, y = ishigami_lhs(2**16, seed=20130)
    return gsa.delta_full_sample(x, y)


@pytest.fixture(scope="module")
def estimate_4096() -> gsa.DeltaResult:
    x, y = ishigami_lhs(4096, seed=4096)
    return gsa.delta_indices(x, y, resamples=30, seed=7)


@pytest.mark.parametrize("j", [0, 1, 2, 3], ids=ISHIGAMI_INPUTS)
def test_delta_indices_ishigami_4096_within_tolerance_of_2_16_reference(j, reference, estimate_4096):
    assert abs(estimate_4096.index[j] - reference[j]) <= TOLERANCE, (estimate_4096.index, reference)


def _two_classes(n: int) -> np.ndarray:
    return np.array([0, n // 2, n])


def test_delta_separation_of_two_disjoint_uniforms_is_one_half():
    # Y ~ U(0, 1) below the input's median, U(1, 2) above: each half is 1 away in L1 from f_Y = U(0, 2);
    # 0.478 here (the smoothed distribution functions round the jumps), SALib's kernel integral 0.445
    rng = np.random.default_rng(3)
    x = rng.random(2000)
    y = np.where(x < 0.5, rng.random(2000), 1 + rng.random(2000))
    assert gsa.delta_estimate(x[:, None], y, _two_classes(2000))[0] == pytest.approx(0.5, abs=0.03)


def test_delta_counts_a_point_mass_class_as_separation():
    # Y = 0 below the median, U(0, 1) above: delta = 1/2 (each class is 1 away in L1); SALib's
    # kernel estimator skips the constant class and reports about 0.14
    rng = np.random.default_rng(3)
    x = rng.random(2000)
    y = np.where(x < 0.5, 0.0, rng.random(2000))
    assert gsa.delta_estimate(x[:, None], y, _two_classes(2000))[0] == pytest.approx(0.5, abs=0.05)


def test_delta_of_an_output_equal_to_its_input_is_one():
    # the mean adjustment moves each class to one input value; without it 12 classes give 1 - 1/12
    x = np.random.default_rng(5).random(2000)
    assert gsa.delta_estimate(x[:, None], x.copy())[0] == pytest.approx(1.0, abs=0.01)


def test_delta_reference_ranks_ishigami_inputs(reference):
    assert list(np.argsort(-reference)) == [1, 0, 2, 3]
    assert reference[3] < 0.05


def test_delta_estimate_does_not_change_with_the_seed():
    x, y = ishigami_lhs(512, seed=1)
    results = [gsa.delta_indices(x, y, resamples=20, seed=seed) for seed in (1, 2, 3)]
    for result in results:
        np.testing.assert_array_equal(result.estimate, gsa.delta_full_sample(x, y))
    assert not np.array_equal(results[0].bootstrap, results[1].bootstrap)


def test_delta_index_moves_with_the_seed_only_by_the_bootstrap_mean_error():
    # SALib 1.6's delta.analyze on this sample: SD 0.026 to 0.031 over 10 seeds (its estimate is a resample)
    x, y = ishigami_lhs(512, seed=1)
    indices = np.array([gsa.delta_indices(x, y, resamples=40, seed=seed).index for seed in range(1, 5)])
    assert indices.std(axis=0, ddof=1).max() < 0.01


def test_delta_index_is_plischke_bias_correction_with_normal_interval():
    x, y = ishigami_lhs(256, seed=3)
    result = gsa.delta_indices(x, y, resamples=20, seed=5)
    boot = result.bootstrap
    np.testing.assert_allclose(result.index, result.estimate - (boot.mean(axis=0) - result.estimate),
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(result.half_width, norm.ppf(0.975) * boot.std(axis=0, ddof=1), rtol=0, atol=1e-15)
    assert (result.low <= result.index).all() and (result.index <= result.high).all()


def test_delta_bias_correction_lowers_the_no_effect_input():
    x, y = ishigami_lhs(256, seed=3)
    result = gsa.delta_indices(x, y, resamples=20, seed=5)
    assert 0 < result.estimate[3] and abs(result.index[3]) < result.estimate[3]


def test_delta_indices_same_seed_same_values():
    x, y = ishigami_lhs(128, seed=9)
    first, again = (gsa.delta_indices(x, y, resamples=10, seed=11) for _ in range(2))
    for field in ("estimate", "index", "half_width", "bootstrap"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))


def test_delta_indices_constant_input_is_nan_with_a_note():
    x, y = ishigami_lhs(64, seed=2)
    x[:, 2] = 0.5
    result = gsa.delta_indices(x, y, resamples=5, seed=1)
    assert np.isnan(result.index[2]) and np.isnan(result.half_width[2])
    assert "constant" in result.notes[2]
    assert np.isfinite(result.index[[0, 1, 3]]).all()


def test_delta_indices_reject_fewer_than_two_resamples():
    x, y = ishigami_lhs(64, seed=2)
    with pytest.raises(ValueError, match="resamples 1"):
        gsa.delta_indices(x, y, resamples=1, seed=1)


def _task(x, y):
    return {"group": "NC winter pooled", "scope": "pooled", "state": "NC", "season": "winter", "feeder": "",
            "metric": "peak_kw", "basis": "kW", "x": x, "y": y, "names": ["x1", "x2", "x3"],
            "bounds": [(-np.pi, np.pi)] * 3, "n_feeders": 1, "designs": "lhs", "min_runs": 20, "resamples": 20,
            "seed": 123}


def _with_dummy(task):
    dummy = np.random.default_rng(gsa.task_seed(task["seed"], task["group"], task["metric"], gsa.DUMMY)).random(
        len(task["y"]))
    return np.column_stack([task["x"], dummy])


def test_analyse_reports_the_bias_corrected_full_sample_delta():
    x, y = ishigami_lhs(200, seed=4)
    task = _task(x[:, :3], y)
    rows, _ = gsa.analyse(task)
    seed = gsa.task_seed(task["seed"], task["group"], task["metric"], "delta")
    expected = gsa.delta_indices(_with_dummy(task), y, resamples=task["resamples"], seed=seed)
    delta = [r for r in rows if r["method"] == "delta"]
    assert [r["input"] for r in delta] == list(ISHIGAMI_INPUTS)
    np.testing.assert_array_equal([r["index"] for r in delta], expected.index)
    np.testing.assert_array_equal([r["conf_low"] for r in delta], expected.low)
    np.testing.assert_array_equal([r["conf_high"] for r in delta], expected.high)


def test_analyse_pawn_is_salib_median_ks_with_the_dummy():
    from SALib.analyze import pawn

    x, y = ishigami_lhs(200, seed=4)
    task = _task(x[:, :3], y)
    rows, _ = gsa.analyse(task)
    slices = gsa.pawn_slices(len(y))
    expected = pawn.analyze(gsa.problem(list(ISHIGAMI_INPUTS), [(-np.pi, np.pi)] * 3 + [(0, 1)]), _with_dummy(task),
                            y, S=slices)["median"]
    found = [r for r in rows if r["method"] == "pawn"]
    assert [r["input"] for r in found] == list(ISHIGAMI_INPUTS)
    np.testing.assert_allclose([r["index"] for r in found], expected, rtol=0, atol=1e-12)
    assert all(r["pawn_slices"] == slices for r in found)


def test_a_subsample_has_its_own_seeds_and_the_full_sample_keeps_its_own():
    full = gsa.task_seed(123, "NC winter pooled", "peak_kw", "delta")
    assert gsa.task_seed(123, "NC winter pooled", "peak_kw", "delta", "") == full
    halves = {gsa.task_seed(123, "NC winter pooled", "peak_kw", "delta", label) for label in ("N/4", "N/2")}
    assert len(halves) == 2 and full not in halves
