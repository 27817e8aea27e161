"""Phase 7 sensitivity: verdicts, convergence subsamples, placement spread, and heat pumps driving the NC
winter peak on a small run.

The unit tests build their inputs here (no pipeline). The last test runs the pipeline on NC winter only
(phase 0 with ``N_CASES`` cases per design, phase 6 on every NC feeder of the sample, phase 7's results
table and sensitivity analysis) and checks issue #13 item 6: heat-pump adoption's delta index of the winter
peak lies above the dummy input's interval on every NC feeder. ``N_CASES`` is make run's 32 per design (64
runs per feeder): at 12-16 the dummy's interval is about +/- 0.12 and no feeder clears it. The check is on
delta; PAWN with 64 runs in 10 slices does not yet separate adoption from the dummy on the 30-customer
feeder (0.20 against a dummy interval reaching 0.27 when measured), whose winter peak follows the
uncontrolled share hp_adoption x (1 - hp_dm_fraction) more than adoption alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common import config
from conftest import copy_workspace, load_script

SA = load_script("7_results_analysis/sensitivity_analysis.py")
import gsa_methods as gsa  # noqa: E402
import results_io as rio  # noqa: E402

N_CASES = 32


# ------------------------------------------------------------------------------------------- verdicts
def _rows(indices: dict[str, tuple[float, float, float]], group: str = "NC winter pooled") -> pd.DataFrame:
    return pd.DataFrame([{"group": group, "scope": "pooled", "state": "NC", "season": "winter", "feeder": "",
                          "metric": "peak_kw", "method": "delta", "input": name, "index": i, "conf_low": lo,
                          "conf_high": hi, "n_runs": 40} for name, (i, lo, hi) in indices.items()])


def test_no_input_above_the_dummy_interval_says_too_few_runs():
    table = SA.add_verdicts(_rows({"hp_adoption": (0.20, 0.08, 0.32), "ev_perc": (0.1, 0.0, 0.2),
                                   gsa.DUMMY: (0.05, -0.05, 0.15)}))
    assert set(table["group_verdict"]) == {gsa.TOO_FEW}
    assert table.set_index("input")["verdict"].to_dict() == {"hp_adoption": gsa.AT_FLOOR, "ev_perc": gsa.AT_FLOOR,
                                                             gsa.DUMMY: gsa.FLOOR}


def test_an_interval_above_the_dummy_interval_is_ranked_with_the_dummy_beside_it():
    table = SA.add_verdicts(_rows({"hp_adoption": (0.40, 0.30, 0.50), "ev_perc": (0.1, 0.0, 0.2),
                                   gsa.DUMMY: (0.05, -0.05, 0.15)}))
    assert set(table["group_verdict"]) == {"above the noise floor: hp_adoption"}
    hp = table.set_index("input").loc["hp_adoption"]
    assert hp["verdict"] == gsa.ABOVE and (hp["dummy_index"], hp["dummy_conf_high"]) == (0.05, 0.15)


def test_overlapping_intervals_above_the_floor_are_ranked_but_their_order_not_resolved():
    verdict = gsa.group_verdict(["a", "b"], np.array([0.5, 0.45]), np.array([0.4, 0.3]), np.array([0.6, 0.55]), 0.2)
    assert verdict == "above the noise floor: a > b (order not resolved: intervals overlap)"


def test_placement_alone_above_the_floor_ranks_no_input():
    table = SA.add_verdicts(_rows({"hp_adoption": (0.1, 0.0, 0.2), SA.REPLICATE: (0.5, 0.4, 0.6),
                                   gsa.DUMMY: (0.05, -0.05, 0.15)}))
    assert set(table["group_verdict"]) == {f"{gsa.TOO_FEW}; {SA.REPLICATE} above the noise floor"}


# ------------------------------------------------------------------------------------------- subsamples
def test_sobol_subsample_is_the_head_of_the_sequence_and_lhs_a_nested_random_subset():
    design = np.array(["sobol"] * 16 + ["lhs"] * 16)
    point = np.concatenate([np.arange(1, 17), np.arange(1, 17)])
    sizes = {"sobol": 16, "lhs": 16}
    quarter = SA.subsample_mask(design, point, 0.25, sizes, seed=1)
    half = SA.subsample_mask(design, point, 0.5, sizes, seed=1)
    assert point[quarter & (design == "sobol")].tolist() == [1, 2, 3, 4]
    assert point[half & (design == "sobol")].tolist() == list(range(1, 9))
    lhs_quarter, lhs_half = set(point[quarter & (design == "lhs")]), set(point[half & (design == "lhs")])
    assert len(lhs_quarter) == 4 and len(lhs_half) == 8 and lhs_quarter < lhs_half
    assert lhs_half != set(range(1, 9))  # a random subset, not the first points
    np.testing.assert_array_equal(SA.subsample_mask(design, point, 0.5, sizes, seed=1), half)


def test_subsample_keeps_every_replicate_of_a_chosen_design_point():
    design = np.array(["sobol"] * 8)
    point = np.repeat(np.arange(1, 5), 2)
    mask = SA.subsample_mask(design, point, 0.5, {"sobol": 4}, seed=1)
    assert point[mask].tolist() == [1, 1, 2, 2]


def test_ranking_stability_words():
    def part(half, full):
        rows = []
        for label, above in (("N/2", half), ("N", full)):
            for name in ("a", "b"):
                rows.append({"subsample": label, "input": name, "index": 0.5 if name in above else 0.1,
                             "verdict": gsa.ABOVE if name in above else gsa.AT_FLOOR})
        return pd.DataFrame(rows)
    assert SA.ranking_stability(part(["a"], ["a"])).startswith("stable")
    assert SA.ranking_stability(part([], ["a"])) == "changed from N/2 to N: [] -> [a]"
    assert SA.ranking_stability(part([], [])).startswith("nothing to rank")


# ------------------------------------------------------------------------------------------- placement
def _spread_task(y, replicate, point):
    n = len(y)
    return {"group": "NC winter f", "scope": "feeder", "state": "NC", "season": "winter", "feeder": "f",
            "metric": "peak_kw", "basis": "kW", "y": np.asarray(y, dtype=float), "run_design": np.array(["lhs"] * n),
            "run_point": np.asarray(point), "run_replicate": np.asarray(replicate), "run_feeder": np.array(["f"] * n)}


def test_placement_spread_is_the_median_sd_across_replicates_beside_the_design_point_sd():
    y = [10.0, 12.0, 20.0, 26.0, 30.0, 31.0]
    row = SA.placement_spread([_spread_task(y, [0, 1] * 3, [1, 1, 2, 2, 3, 3])]).iloc[0]
    sds = [np.std([10, 12], ddof=1), np.std([20, 26], ddof=1), np.std([30, 31], ddof=1)]
    assert row["replicates"] == 2 and row["design_points"] == 3
    assert row["placement_sd_median"] == pytest.approx(np.median(sds))
    assert row["placement_sd"] == pytest.approx(np.sqrt(np.mean(np.square(sds))))
    assert row["placement_to_design_sd"] == pytest.approx(row["placement_sd"] / row["design_point_sd"])
    assert row["placement_range_median"] == pytest.approx(2.0) and row["placement_sd_max"] == pytest.approx(max(sds))
    assert row["design_point_sd"] == pytest.approx(np.std([11.0, 23.0, 30.5], ddof=1))


def test_one_replicate_says_placement_noise_was_not_measured():
    row = SA.placement_spread([_spread_task([1.0, 2.0, 4.0], [0, 0, 0], [1, 2, 3])]).iloc[0]
    assert np.isnan(row["placement_sd_median"]) and row["note"] == SA.NOT_MEASURED
    assert row["design_point_sd"] == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))


def _results(replicates: int | None) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for case in range(0, 25):
        values = {name: rng.random() for name in rio.INPUTS}
        values.update({"shares.baseline": 0.5, "shares.dm": 0.25, "shares.un": 0.25} if case else
                      {"shares.baseline": 1.0, "shares.dm": 0.0, "shares.un": 0.0})
        rows.append({"state": "NC", "feeder": "f", "season": "winter", "design": "lhs", "case": case,
                     "status": "ok", "n_customers": 10, "peak_kw": 100 + 50 * values["ev_perc"] + rng.random(), **values})
    frame = pd.DataFrame(rows)
    if replicates is not None:
        frame["design_point"] = ((frame["case"] + 1) // 2).astype("int64")
        frame["placement_replicate"] = np.where(frame["case"] == 0, 0, (frame["case"] + 1) % 2).astype("int64")
    return rio.with_factors(frame)


def test_a_table_without_placement_columns_is_one_replicate_and_says_so():
    tasks, skips = SA.analysis_groups(_results(None), ["peak_kw"])
    assert all(SA.REPLICATE not in t["names"] for t in tasks)
    assert (tasks[0]["run_replicate"] == 0).all() and (tasks[0]["run_point"] == np.arange(1, 25)).all()
    assert any(s["input"] == SA.REPLICATE and s["reason"] == SA.NOT_MEASURED for s in skips)


def test_two_replicates_put_placement_replicate_beside_the_inputs():
    tasks, skips = SA.analysis_groups(_results(2), ["peak_kw"])
    feeder = next(t for t in tasks if t["scope"] == "feeder")
    assert feeder["names"][-1] == SA.REPLICATE and feeder["bounds"][-1] == (0.0, 2.0)
    column = feeder["x"][:, -1]
    np.testing.assert_array_equal(np.floor(column), feeder["run_replicate"])
    assert not any(s["input"] == SA.REPLICATE for s in skips)


# ------------------------------------------------------------------------------------------- small run
@pytest.fixture(scope="module")
def nc_winter(prepared_nc, tmp_path_factory):
    """NC winter, both designs, N_CASES per design, phase 6 on every NC feeder, then phase 7's results table
    and the sensitivity analysis (the other phase 7 steps do not bear on it)."""
    data = copy_workspace(prepared_nc, tmp_path_factory.mktemp("p7s") / "data")
    assert load_script("0_code_xlrm/run_mix_generator.py").main(
        ["--data-dir", str(data), "--n-cases", str(N_CASES), "-q"]) == 0
    apply = load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")
    for design in config.DESIGNS:
        assert apply.main(["--data-dir", str(data), "--state", "NC", "--season", "winter", "--design", design,
                           "--run", "--workers", "2", "-q"]) == 0
    for name, extra in (("append_experiment_results", []), ("sensitivity_analysis", ["--resamples", "40"])):
        assert load_script(f"7_results_analysis/{name}.py").main(["--data-dir", str(data), "-q", *extra]) == 0
    return data


def test_heat_pump_adoption_drives_the_winter_peak_on_every_nc_feeder(nc_winter):
    method = "delta"
    from common.paths import Workspace

    ws = Workspace(nc_winter)
    table = pd.read_csv(rio.results_path(ws, "sensitivity"), keep_default_na=False)
    feeders = table[(table["scope"] == "feeder") & (table["season"] == "winter") & (table["metric"] == "peak_kw")
                    & (table["method"] == method)]
    studied = set(pd.read_parquet(rio.results_path(ws, "xlrm_results"))["feeder"])
    assert set(feeders["feeder"]) == studied and len(studied) >= 3
    hp = feeders[feeders["input"] == "hp_adoption"].set_index("feeder")
    floor = feeders[feeders["input"] == gsa.DUMMY].set_index("feeder")
    gaps = {f: (float(hp.at[f, "index"]), float(floor.at[f, "conf_high"])) for f in sorted(studied)}
    assert all(index > high for index, high in gaps.values()), gaps


def test_no_effect_inputs_stay_at_the_floor_when_points_repeat():
    """32 design points repeated on 3 feeders x 2 replicates (a pooled group): the dummy is drawn per design
    point and the bootstrap resamples whole points, so inputs without effect do not clear the floor while
    the one that drives the output does (drawn per run, 2-6 of 6 no-effect inputs cleared it)."""
    rng = np.random.default_rng(1)
    n, copies = 32, 6
    cleared = {"delta": 0, "pawn": 0}
    for trial in range(3):
        x = np.vstack([rng.random((n, 7))] * copies)
        y = x[:, 0] + rng.normal(0, 0.02, len(x))
        task = {"group": f"g{trial}", "scope": "pooled", "state": "NC", "season": "winter", "feeder": "",
                "metric": "peak_kw", "basis": "", "x": x, "y": y, "names": [f"x{i}" for i in range(7)],
                "bounds": [(0.0, 1.0)] * 7, "n_feeders": 3, "designs": "lhs", "min_runs": 20, "resamples": 60,
                "seed": 7, "run_design": np.full(len(y), "lhs"), "run_point": np.tile(np.arange(1, n + 1), copies)}
        rows, _ = gsa.analyse(task)
        for method in cleared:
            by_input = {r["input"]: r for r in rows if r["method"] == method}
            floor = by_input[gsa.DUMMY]["conf_high"]
            assert by_input["x0"]["conf_low"] > floor
            cleared[method] += sum(by_input[f"x{i}"]["conf_low"] > floor for i in range(1, 7))
    assert cleared["delta"] == 0 and cleared["pawn"] <= 1, cleared


def _repeated_task():
    rng = np.random.default_rng(3)
    n, copies = 32, 4
    x = np.vstack([rng.random((n, 7))] * copies)
    y = x[:, 0] + rng.normal(0, 0.02, len(x))
    return {"group": "g", "scope": "pooled", "state": "NC", "season": "winter", "feeder": "", "metric": "peak_kw",
            "basis": "", "x": x, "y": y, "names": [f"x{i}" for i in range(7)], "bounds": [(0.0, 1.0)] * 7,
            "n_feeders": 2, "designs": "lhs", "min_runs": 20, "resamples": 20, "seed": 7,
            "run_design": np.full(len(y), "lhs"), "run_point": np.tile(np.arange(1, n + 1), copies),
            "run_replicate": np.repeat([0, 1, 0, 1], n), "run_feeder": np.repeat(["a", "a", "b", "b"], n)}


def test_the_worker_pool_gets_each_run_s_design_point():
    """The pool path strips the bulky run columns but keeps the design point the dummy and bootstrap use."""
    task = _repeated_task()
    direct = gsa.analyse(task)[0]
    pooled = SA._outcomes([task, _repeated_task()], workers=2)[0][0]
    assert [r["index"] for r in pooled] == [r["index"] for r in direct]
    assert [r["conf_high"] for r in pooled] == [r["conf_high"] for r in direct]


def test_convergence_subsamples_keep_the_design_point_of_their_runs():
    task = _repeated_task()
    subs = SA.convergence_tasks([task], {"lhs": 32}, seed=5)
    for sub in subs:
        assert len(sub["run_point"]) == len(sub["y"]) == len(sub["x"])
        points = sub["run_point"]
        assert all((points == p).sum() == 4 for p in np.unique(points))  # every copy of a point kept together
