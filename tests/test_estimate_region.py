"""benchmarks/estimate_region.py: a region's feeders and customers from its own tree, and the cost fit."""

from __future__ import annotations

import pytest

from conftest import load_script

est = load_script("benchmarks/estimate_region.py")


def _feeder(root, name: str, loads: str) -> None:
    folder = root / "sub_1247" / name
    folder.mkdir(parents=True)
    (folder / "Master.dss").write_text("Clear\n")
    (folder / "Loads.dss").write_text(loads)


def test_region_feeders_count_the_half_loads_of_a_service_as_one_customer(tmp_path):
    _feeder(tmp_path, "sub_1247--f1",
            "New Load.load_a_1 bus1=a.1 kV=0.12 kW=1\nNew Load.load_a_2 bus1=a.2 kV=0.12 kW=1\n"
            "new load.load_b_1 bus1=b.1 kV=0.12 kW=1\nNew Load.load_b_2 bus1=b.2 kV=0.12 kW=1\n"
            "New Load.load_c bus1=c.1.2.3 kV=0.48 kW=30\n! New Load.commented bus1=d.1\n")
    _feeder(tmp_path, "sub_1247--f2", "New Load.load_x_1 bus1=x.1.2 kV=0.208 kW=5\n")  # two nodes: its own
    (tmp_path / "sub_1247" / "Master.dss").write_text("Clear\n")  # the substation's master: not a feeder
    rows = est.region_feeders(tmp_path)
    assert [(r["feeder"], r["customers"]) for r in rows] == [("sub_1247--f1", 3), ("sub_1247--f2", 1)]
    assert all(r["bytes"] > 0 for r in rows)


def test_cost_fit_recovers_a_linear_cost_per_customer():
    rows = [{"customers": c, "s_per_run": 0.2 + 0.003 * c} for c in (30, 300, 2000)]
    a, b = est.fit(rows)
    assert a == pytest.approx(0.2) and b == pytest.approx(0.003)


def test_cost_fit_needs_two_feeder_sizes():
    with pytest.raises(SystemExit, match="at least two sizes"):
        est.fit([{"customers": 30, "s_per_run": 1.0}, {"customers": 30, "s_per_run": 2.0}])
