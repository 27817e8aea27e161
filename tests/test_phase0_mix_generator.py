"""Phase 0: designs of experiments (run_mix_generator.py and common/doe.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import config, doe
from conftest import REPO, load_script

gen = load_script("0_code_xlrm/run_mix_generator.py")

OUTPUTS = ("mixes_lhs.json", "mixes_sobol.json", "mixes_compare_long.csv", "lhs_vs_sobol_summary.csv",
           "unit_cube_pairs.png", "ev_vs_pv.png", "histograms_lhs_vs_sobol.png", "manifest.json")


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def phase0(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("p0")
    assert gen.main(["--data-dir", str(data), "--n-cases", "12", "-q"]) == 0
    return data / "0_code_xlrm"


def test_main_writes_declared_outputs(phase0):
    for name in OUTPUTS:
        assert (phase0 / name).is_file(), name
    long = pd.read_csv(phase0 / "mixes_compare_long.csv")
    assert list(long.columns) == ["design", "case", "design_point", "placement_replicate", "parameter", "value",
                                  "unit", "role"]
    summary = pd.read_csv(phase0 / "lhs_vs_sobol_summary.csv")
    assert {"design", "parameter", "n", "mean", "std", "min", "max", "discrepancy"} <= set(summary.columns)
    assert np.isfinite(summary["discrepancy"]).all()


def test_mixes_keep_prior_schema(phase0):
    mixes = json.loads((phase0 / "mixes_lhs.json").read_text())
    assert list(mixes)[:3] == ["0", "1", "2"]
    for case in mixes.values():
        for key in ("shares", "ev_perc", "ev_lvl2_perc", "ev_split", "storage_perc_3ph", "pv_perc_3ph",
                    "heating_seed", "ev_seed", "storage_seed", "pv_seed", "disjoint_sets"):
            assert key in case
        assert set(case["shares"]) == {"baseline", "dm", "un"}
        assert set(case["ev_split"]) == {"controlled", "uncontrolled"}


def test_case_zero_is_reference_case(phase0):
    for design in config.DESIGNS:
        case0 = json.loads((phase0 / f"mixes_{design}.json").read_text())["0"]
        for key, value in config.REFERENCE_CASE.items():
            assert case0[key] == value


def test_rerun_is_byte_identical(phase0, tmp_path):
    assert gen.main(["--data-dir", str(tmp_path), "--n-cases", "12", "-q"]) == 0
    assert _digests(tmp_path / "0_code_xlrm") == _digests(phase0)


def test_outputs_do_not_depend_on_pythonhashseed(tmp_path):
    digests = []
    for hashseed in ("1", "9999"):
        out = tmp_path / hashseed
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        subprocess.run([sys.executable, str(REPO / "0_code_xlrm/run_mix_generator.py"), "--data-dir", str(out),
                        "--n-cases", "5", "-q"], check=True, env=env, cwd=REPO)
        digests.append((out / "0_code_xlrm" / "mixes_sobol.json").read_bytes())
    assert digests[0] == digests[1]


def test_sobol_rounds_up_to_power_of_two_without_truncation(phase0):
    sobol = doe.load_mixes(phase0 / "mixes_sobol.json")
    assert len(sobol) == 1 + 16  # 12 requested -> 16 drawn, plus the reference case


def test_sample_sobol_is_the_full_balanced_sequence():
    cube = doe.sample_sobol(8, seed=5)
    # every half of every dimension holds exactly half of a power-of-two Sobol sample
    assert cube.shape == (8, len(doe.CUBE_DIMENSIONS))
    assert ((cube < 0.5).sum(axis=0) == 4).all()


def test_sample_lhs_has_one_point_per_stratum():
    n = 20
    cube = doe.sample_lhs(n, seed=7)
    strata = np.floor(cube * n).astype(int)
    for column in strata.T:
        assert sorted(column) == list(range(n))


def test_simplex_from_cube_sums_to_one_and_is_uniform():
    rng = np.random.default_rng(0)
    shares = doe.simplex_from_cube(rng.random(200000), rng.random(200000))
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-12)
    assert (shares >= 0).all()
    # a uniform point on the 2-simplex has each coordinate ~ Beta(1, 2): mean 1/3, P(x > 1/2) = 1/4
    np.testing.assert_allclose(shares.mean(axis=0), 1 / 3, atol=0.005)
    np.testing.assert_allclose((shares > 0.5).mean(axis=0), 0.25, atol=0.005)


def test_parameters_stay_within_bounds(phase0):
    for design in config.DESIGNS:
        for key, case in doe.load_mixes(phase0 / f"mixes_{design}.json").items():
            flat = doe.flatten_case(case)
            for name, (low, high) in config.DOE_BOUNDS.items():
                assert low - 1e-12 <= flat[name] <= high + 1e-12, (design, key, name)


def test_placement_seeds_are_distinct_per_purpose_and_replicate():
    seeds = [doe.placement_seeds(123, r) for r in range(30)]
    flat = [s for rep in seeds for s in rep.values()]
    assert len(set(flat)) == len(flat)
    assert set(seeds[0]) == set(doe.SEED_KEYS.values())


def test_every_case_of_a_replicate_shares_its_seeds_in_both_designs(phase0):
    """Common random numbers: the seeds are the replicate's, not the case's (nor the design's)."""
    seen = set()
    for design in config.DESIGNS:
        for case in doe.load_mixes(phase0 / f"mixes_{design}.json").values():
            seen.add(tuple(case[k] for k in doe.SEED_KEYS.values()))
    assert seen == {tuple(doe.placement_seeds(config.DOE_SEED, 0).values())}


def test_replicates_repeat_each_point_with_its_own_seeds(tmp_path):
    assert gen.main(["--data-dir", str(tmp_path), "--n-cases", "4", "--replicates", "3", "-q"]) == 0
    mixes = doe.load_mixes(tmp_path / "0_code_xlrm" / "mixes_lhs.json")
    assert len(mixes) == 1 + 4 * 3
    for key, case in mixes.items():
        k = int(key)
        assert k == doe.case_key(case["design_point"], case["placement_replicate"], 3)
        assert case[doe.SEED_KEYS["ev_hosts"]] == doe.placement_seeds(config.DOE_SEED, case["placement_replicate"])["ev_seed"]
    point2 = [c for c in mixes.values() if c["design_point"] == 2]
    assert sorted(c["placement_replicate"] for c in point2) == [0, 1, 2]
    assert all(c["unit_cube"] == point2[0]["unit_cube"] for c in point2)
    assert len({c["pv_seed"] for c in point2}) == 3
    summary = pd.read_csv(tmp_path / "0_code_xlrm" / "lhs_vs_sobol_summary.csv")
    assert set(summary["n"]) == {4}  # the design's own points, not their repeats


def test_disjoint_sets_true_by_default(phase0):
    assert all(case["disjoint_sets"] for case in doe.load_mixes(phase0 / "mixes_lhs.json").values())


def test_n_cases_below_one_exits_2(tmp_path, capsys):
    assert gen.main(["--data-dir", str(tmp_path), "--n-cases", "0"]) == 2
    err = capsys.readouterr().err
    assert "--n-cases" in err and "Traceback" not in err
    assert not (tmp_path / "0_code_xlrm").exists()


def test_unknown_design_exits_2(tmp_path, capsys):
    assert gen.main(["--data-dir", str(tmp_path), "--design", "halton"]) == 2
    assert "--design" in capsys.readouterr().err


def test_data_dir_that_is_a_file_exits_2(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("x")
    assert gen.main(["--data-dir", str(target)]) == 2
    assert "--data-dir" in capsys.readouterr().err


def test_cli_bad_flag_prints_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "0_code_xlrm/run_mix_generator.py"), "--n-cases", "-3",
                             "--data-dir", str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_load_mixes_names_the_missing_field(tmp_path):
    mixes, _ = doe.build_mixes("lhs", 3, 1)
    del mixes["2"]["pv_perc_3ph"]
    path = tmp_path / "mixes.json"
    path.write_text(json.dumps(mixes))
    with pytest.raises(doe.MixesError, match=r"case 2: missing key 'pv_perc_3ph'"):
        doe.load_mixes(path)


def test_load_mixes_rejects_values_out_of_range(tmp_path):
    mixes, _ = doe.build_mixes("lhs", 3, 1)
    mixes["1"]["ev_perc"] = 1.7
    path = tmp_path / "mixes.json"
    path.write_text(json.dumps(mixes))
    with pytest.raises(doe.MixesError, match=r"case 1: ev_perc = 1.7 is outside"):
        doe.load_mixes(path)


# ------------------------------------------------------------------------------------------- hardening
def _reference_mixes(tmp_path):
    assert gen.main(["--data-dir", str(tmp_path), "--n-cases", "2", "-q"]) == 0
    return tmp_path / "0_code_xlrm" / "mixes_lhs.json"


@pytest.mark.parametrize("key, value", [("ev_seed", True), ("ev_seed", 1.5), ("ev_perc", True), ("ev_perc", "0.3")])
def test_load_mixes_rejects_booleans_and_strings_as_numbers(tmp_path, key, value):
    path = _reference_mixes(tmp_path)
    data = json.loads(path.read_text())
    data["1"][key] = value
    path.write_text(json.dumps(data))
    with pytest.raises(doe.MixesError, match=key if "seed" in key else "not a number"):
        doe.load_mixes(path)


def test_manifest_vouches_for_the_mixes_files_it_wrote(tmp_path):
    path = _reference_mixes(tmp_path)
    assert doe.mixes_provenance(path) == "phase 0"
    path.write_text(path.read_text().replace('"ev_perc": 0.1,', '"ev_perc": 0.2,', 1))
    assert "edited by hand" in doe.mixes_provenance(path)


def test_interrupted_phase0_leaves_no_manifest_vouching_for_its_mixes(tmp_path, capsys):
    path = _reference_mixes(tmp_path)
    sobol = path.parent / "mixes_sobol.json"
    sobol.unlink()
    sobol.mkdir()  # the second design cannot be written: phase 0 stops after the first
    assert gen.main(["--data-dir", str(tmp_path), "--n-cases", "4", "-q"]) == 2
    assert "mixes_sobol.json" in capsys.readouterr().err
    assert not (path.parent / "manifest.json").exists()
    assert "interrupted" in doe.mixes_provenance(path)
    assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.parametrize("flag", [["--seed", "true"], ["--seed", "-1"], ["--n-cases", "0"], ["--n-cases", "nan"]])
def test_bad_numbers_are_rejected(tmp_path, capsys, flag):
    assert gen.main(["--data-dir", str(tmp_path), *flag]) == 2
    assert flag[0] in capsys.readouterr().err


def test_summary_reports_largest_correlation_of_each_design(phase0):
    summary = pd.read_csv(phase0 / "lhs_vs_sobol_summary.csv")
    for design in config.DESIGNS:
        mixes = doe.load_mixes(phase0 / f"mixes_{design}.json")
        cube = np.array([case["unit_cube"] for key, case in mixes.items() if key != "0"])
        expected, pair = doe.max_abs_correlation(cube)
        rows = summary[summary["design"] == design]
        np.testing.assert_allclose(rows["max_abs_corr"], expected, rtol=1e-12)
        assert set(rows["max_abs_corr_pair"]) == {pair}
        assert ((rows["max_abs_rank_corr"] >= 0) & (rows["max_abs_rank_corr"] <= 1)).all()


def test_max_abs_correlation_finds_the_correlated_pair():
    rng = np.random.default_rng(1)
    a, b, c = rng.random((3, 200))
    value, pair = doe.max_abs_correlation(np.column_stack([a, b, 1 - a + 0.01 * c]), names=("a", "b", "c"))
    assert pair == "a~c" and value > 0.99


def test_sample_lhs_is_optimised_for_centred_discrepancy():
    from scipy.stats import qmc

    plain = qmc.LatinHypercube(d=len(doe.CUBE_DIMENSIONS), rng=np.random.default_rng(123)).random(16)
    assert doe.discrepancy(doe.sample_lhs(16, seed=123)) < doe.discrepancy(plain)


def test_compare_long_holds_the_factors_with_case_zero_undefined(phase0):
    long = pd.read_csv(phase0 / "mixes_compare_long.csv")
    factors = long[long["parameter"].isin([f.name for f in doe.FACTORS])]
    assert set(factors["role"]) == {"X", "L"}
    zero = factors[(factors["case"] == 0)].set_index(["design", "parameter"])["value"]
    assert (zero.xs("hp_adoption", level="parameter") == 0).all()
    assert zero.xs("hp_dm_fraction", level="parameter").isna().all()


def test_a_confounded_design_is_flagged_and_warned(tmp_path, caplog):
    """16 Sobol points in 7 dimensions always hold a column pair near |r| = 0.75."""
    with caplog.at_level("WARNING"):
        assert gen.main(["--data-dir", str(tmp_path), "--n-cases", "16", "--design", "sobol", "-q"]) == 0
    summary = pd.read_csv(tmp_path / "0_code_xlrm" / "lhs_vs_sobol_summary.csv")
    assert summary["confounded"].all() and (summary["max_abs_corr"] > config.DOE_MAX_ABS_CORR).all()
    assert any("cannot tell their effects apart" in r.getMessage() for r in caplog.records)


def test_a_larger_design_is_not_flagged(tmp_path):
    assert gen.main(["--data-dir", str(tmp_path), "--n-cases", "64", "-q"]) == 0
    summary = pd.read_csv(tmp_path / "0_code_xlrm" / "lhs_vs_sobol_summary.csv")
    assert not summary["confounded"].any()


def test_sobol_design_is_the_least_correlated_of_its_scrambles():
    from scipy.stats import qmc

    chosen = doe._max_abs_corr(doe.least_correlated_sobol(9, 5, 123))
    others = [doe._max_abs_corr(qmc.Sobol(d=9, scramble=True, rng=np.random.default_rng(child)).random_base2(5))
              for child in np.random.SeedSequence(123).spawn(doe.SOBOL_SCRAMBLES)]
    assert chosen == min(others) and chosen < float(np.median(others))


def test_joint_sobol_design_of_32_points_is_not_confounded():
    # 9 dimensions at 32 points: most single scrambles have a pair above DOE_MAX_ABS_CORR
    cube = doe.sample_sobol(32, config.DOE_SEED)
    assert doe._max_abs_corr(cube) <= config.DOE_MAX_ABS_CORR
