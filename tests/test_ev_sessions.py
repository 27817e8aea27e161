"""EV sessions (phase 6, ``ev_charging``): the arrival drawn first, then the dwell time from its own
distribution per charger level, so that every EV leaves after it arrives; the statistics file's checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.paths import Workspace
from conftest import load_script, make_workspace

ev = load_script("6_instantiate_circuits/ev_charging.py")
apply = load_script("6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py")

N = 40_000


@pytest.fixture(scope="module")
def stats_file(sample_root) -> Path:
    return sample_root / "ev" / "ev_session_stats.csv"


@pytest.fixture(scope="module")
def stats(stats_file):
    return ev.load_session_stats(stats_file)


@pytest.fixture(scope="module")
def sessions(stats) -> dict:
    return {level: ev.draw_sessions(np.full(N, level), stats, np.random.default_rng(11 + i))
            for i, level in enumerate(ev.LEVELS)}


def _write_without_dwell(stats_file: Path, folder: Path, relabel: bool) -> Path:
    """The sample's file with its dwell_h rows removed, or relabelled departure_hour (the earlier format)."""
    frame = pd.read_csv(stats_file)
    dwell = frame["quantity"] == "dwell_h"
    frame = frame.assign(quantity=frame["quantity"].where(~dwell, "departure_hour")) if relabel else frame[~dwell]
    path = folder / "ev_session_stats.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("level", ["L1", "L2"])
def test_every_ev_leaves_after_it_arrives(sessions, level):
    s = sessions[level]
    assert s.dwell_steps.min() >= 1 and s.dwell_steps.max() <= 95
    arrival_h = s.arrival_step * 0.25
    departure_h = arrival_h + s.dwell_steps * 0.25  # past 24 h: the next morning
    assert (departure_h > arrival_h).all() and (departure_h - arrival_h < 24).all()
    # the plug-in window runs from arrival to departure on the periodic day
    for i in range(0, N, 997):
        window = s.window(i)
        assert window[0] == s.arrival_step[i] and len(window) == s.dwell_steps[i]
        assert (window[-1] + 1) % 96 == round(departure_h[i] * 4) % 96


@pytest.mark.parametrize("level", ["L1", "L2"])
def test_dwell_follows_the_files_distribution_of_its_level(stats, sessions, level):
    table = stats[(level, "dwell_h")]
    dwell_h = sessions[level].dwell_steps * 0.25
    edges = np.r_[table["bin_low"].to_numpy(), table["bin_high"].to_numpy()[-1]]
    observed = np.histogram(dwell_h, bins=edges)[0] / N
    expected = table["probability"].to_numpy()
    # binomial standard error of a share p with N draws is at most 0.0025: 4 of them
    np.testing.assert_allclose(observed, expected, atol=0.01)
    mean_file = float((expected * (table["bin_low"] + table["bin_high"] - 0.25) / 2).sum())
    assert dwell_h.mean() == pytest.approx(mean_file, abs=0.05)


def test_departure_is_the_arrival_plus_a_dwell_that_does_not_depend_on_it(sessions):
    # an overnight session from a late arrival leaves later in the morning than one from an early arrival:
    # the dwell does not depend on the arrival, the departure does
    s = sessions["L2"]
    overnight = s.dwell_steps >= 40
    late = overnight & (s.arrival_step >= 80)
    early = overnight & (s.arrival_step <= 64)
    departure = (s.arrival_step + s.dwell_steps) % 96
    assert late.sum() > 500 and early.sum() > 500
    assert departure[late].mean() > departure[early].mean() + 12  # more than 3 h later


def test_arrival_and_dwell_lie_on_the_15_min_grid_inside_their_bins(stats):
    table = pd.DataFrame({"bin_low": [0.1, 5.0], "bin_high": [0.6, 5.3], "probability": [0.5, 0.5]})
    values = ev._draw_binned(np.random.default_rng(2), table, 4000, 0.25)
    assert set(np.round(values, 6)) == {0.25, 0.5, 5.0, 5.25}


def test_a_file_with_departure_but_no_dwell_is_refused_in_one_line(stats_file, tmp_path):
    path = _write_without_dwell(stats_file, tmp_path, relabel=True)
    with pytest.raises(ev.SessionStatsError) as caught:
        ev.load_session_stats(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert str(path) in message and "departure_hour" in message and "dwell_h" in message
    assert "build_sample.py --force" in message


def test_a_file_without_dwell_rows_is_refused_in_one_line(stats_file, tmp_path):
    path = _write_without_dwell(stats_file, tmp_path, relabel=False)
    with pytest.raises(ev.SessionStatsError) as caught:
        ev.load_session_stats(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and str(path) in message and "no dwell_h rows for charger level L1" in message


@pytest.mark.parametrize("change,fault", [
    (lambda f: f.assign(quantity=f["quantity"].replace("energy_kwh", "energy_kWh")), "'energy_kWh'"),
    (lambda f: f.assign(bin_high=np.where(f["quantity"] == "dwell_h", f["bin_high"] + 1, f["bin_high"])),
     "not a range within 0-24"),
    (lambda f: f.assign(bin_low=f["bin_low"].astype(str).replace("3.0", "x")), "not a finite number"),
])
def test_a_malformed_file_is_refused_in_one_line(stats_file, tmp_path, change, fault):
    path = tmp_path / "stats.csv"
    change(pd.read_csv(stats_file)).to_csv(path, index=False)
    with pytest.raises(ev.SessionStatsError) as caught:
        ev.load_session_stats(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and str(path) in message and fault in message


def test_phase6_refuses_a_departure_file_with_exit_2_and_one_line(sample_root, stats_file, tmp_path, capsys):
    data = make_workspace(tmp_path / "data", sample_root)
    assert load_script("0_code_xlrm/run_mix_generator.py").main(["--data-dir", str(data), "--n-cases", "2", "-q"]) == 0
    path = _write_without_dwell(stats_file, tmp_path, relabel=True)
    capsys.readouterr()
    code = apply.main(["--data-dir", str(data), "--state", "NC", "--season", "winter", "--design", "lhs", "-q",
                       "--feeder-dir", str(sample_root / "feeders" / "legacy_syntax" / "Master.dss"),
                       "--ev-stats", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and str(path) in err[0] and "dwell_h" in err[0]
    assert not Workspace(data).circuit_filter("NC").exists()
