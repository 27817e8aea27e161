"""What phase 6 writes and phase 7 reads: the run files' columns, keys, metrics and their units.

One table per contract between the phases, named once so that the writer and the reader cannot
drift apart (a test checks phase 6's output against it):

* :data:`HEAD_COLUMNS`, :data:`EXTRA_SERIES`, :data:`SERIES_COLUMNS`: the columns of a run's
  ``timeseries.parquet`` (96 rows, one per 15-min interval of the design day);
* :data:`SUMMARY_KEYS`, :data:`STATUSES`: the keys and statuses of a run's ``summary.json``;
* :data:`METRICS`: every outcome (XLRM M) of a run with its unit and meaning, ``summary.json`` key
  ``metrics``; :data:`REALISED`: the realised counts of an instance, key ``realised``;
* :data:`CIRCUIT_FILTER_STATUSES`: the statuses of ``circuit_filter.csv``.

A unit of ``"text"`` marks a value that is not a number. Nothing here reads or writes files.
"""

from __future__ import annotations

from pathlib import Path

#: Feeder-head columns of a run's timeseries.parquet (the earlier workflow's m2 monitor schema):
#: apparent power [kVA] and angle [deg] per phase, active [kW] and reactive [kVAr] power per phase,
#: their three-phase sums, |sum of S| and sum of |S| (their difference is not an unbalance measure: see
#: METRICS ``s_phase_sum_minus_total_max_kva``).
#: A list, so that ``frame[HEAD_COLUMNS]`` selects the columns.
HEAD_COLUMNS = ["S1 (kVA)", "Ang1", "S2 (kVA)", "Ang2", "S3 (kVA)", "Ang3", "P1 (kW)", "Q1 (kVAr)", "P2 (kW)",
                "Q2 (kVAr)", "P3 (kW)", "Q3 (kVAr)", "P_3ph (kW)", "Q_3ph (kVAr)", "S_3ph (kVA)", "S_sum_3ph (kVA)"]

#: the time columns of a run's series: ``hour`` = end of the 15-min interval [h] (0.25 ... 24),
#: ``interval_start`` = the interval's start on the design day (timestamp, no time zone)
TIME_COLUMNS = ("hour", "interval_start")

#: the other series columns of a run, with their units: EV charging, PV output and storage power
#: [kW] (storage positive when discharging), storage state of charge [-] (NaN without storage),
#: circuit losses [kW], lowest and highest energised node voltage [pu], convergence of the step
EXTRA_SERIES: dict[str, str] = {
    "ev_kw": "kW",
    "pv_kw": "kW",
    "storage_kw": "kW",
    "storage_soc": "-",
    "losses_kw": "kW",
    "v_min_pu": "pu",
    "v_max_pu": "pu",
    "converged": "bool",
}

#: every column of a run's timeseries.parquet, in the order phase 6 writes them
SERIES_COLUMNS = (*TIME_COLUMNS, *HEAD_COLUMNS, *EXTRA_SERIES)

#: summary.json keys every run has (``status`` one of :data:`STATUSES`)
SUMMARY_KEYS = ("state", "season", "design", "feeder", "case", "design_day", "inputs", "realised", "inputs_digest",
                "mixes_digest", "shared_digest", "metric_settings_digest", "timeseries_sha256", "status", "message",
                "metrics", "packages")
#: summary.json keys a run has only when a step after the power flow ran on it (``upgrades``: the
#: upgrade-cost step, 6_instantiate_circuits/upgrade_circuit.py, batch runner ``--upgrades``), or when it
#: was solved on several design days (``worst_day``, ``days``: phase 6 ``--days``, worst_day.py), or also on
#: its feeder's light-load day (``light_load``: date, rank, folder, status, digests; light_load.py)
OPTIONAL_SUMMARY_KEYS = ("upgrades", "worst_day", "days", "light_load")
STATUSES = ("ok", "failed")

#: statuses of circuit_filter.csv: only ``pass`` feeders are instantiated
CIRCUIT_FILTER_STATUSES = ("pass", "fail", "skipped")
CIRCUIT_FILTER_COLUMNS = ("state", "season", "feeder", "status", "reason")

# --------------------------------------------------------------------------------------------
# Variable tables: name -> (unit, meaning). "text" marks a value that is not a number.
# --------------------------------------------------------------------------------------------
#: Outcomes (XLRM M) of a run, ``summary.json`` key ``metrics`` (6_instantiate_circuits/daily_power_flow.py).
#: Counts of "node-intervals" count each customer service node once per 15-min interval it is out of
#: range; "element-intervals" likewise per element. A metric that is undefined for a run (e.g. the
#: losses share of a day without energy) is ``null``; a number is always finite.
METRICS: dict[str, tuple[str, str]] = {
    "peak_kw": ("kW", "feeder-head peak active power (15-min average)"),
    "peak_time": ("text", "start of the interval of the feeder-head peak, hh:mm"),
    "energy_kwh": ("kWh", "feeder-head energy of the design day"),
    "losses_kwh": ("kWh", "circuit losses of the day"),
    "losses_pct": ("%", "losses as a share of the feeder-head energy"),
    "s_phase_sum_minus_total_max_kva": ("kVA", "largest S_sum_3ph - S_3ph at the head (sum of the phases' |S| "
                                                "minus |sum of S|; zero whenever the phases share a power factor, "
                                                "however unequal their loads: not an unbalance measure, kept for "
                                                "compatibility with the earlier workflow's 'imbalance')"),
    "s_phase_sum_minus_total_mean_kva": ("kVA", "mean S_sum_3ph - S_3ph at the head (see the max)"),
    "vuf_max_pct": ("%", "highest voltage unbalance factor |V2| / |V1| of any energised three-phase bus in any "
                         "interval (null without a three-phase bus)"),
    "vuf_over_2pct_bus_intervals": ("count", "three-phase bus-intervals with VUF above 2 % (the planning level; "
                                             "common.config.VOLTAGE_UNBALANCE_PCT)"),
    "vuf_over_3pct_bus_intervals": ("count", "three-phase bus-intervals with VUF above 3 % (ANSI C84.1 Annex D: "
                                             "at most 3 % at the service)"),
    "head_current_unbalance_max_pct": ("%", "highest phase current unbalance at the feeder head, NEMA MG 1: largest "
                                            "deviation of a phase current from the mean of the three over the mean "
                                            "(null for a head of fewer than three phases)"),
    "v_min_pu": ("pu", "lowest voltage of any energised node"),
    "v_max_pu": ("pu", "highest voltage of any energised node"),
    "v_min_customer_pu": ("pu", "lowest voltage at a customer service node"),
    "v_max_customer_pu": ("pu", "highest voltage at a customer service node"),
    "ansi_a_under_node_intervals": ("count", "customer node-intervals below ANSI C84.1 Range A"),
    "ansi_a_over_node_intervals": ("count", "customer node-intervals above ANSI C84.1 Range A"),
    "ansi_a_violation_node_intervals": ("count", "customer node-intervals outside ANSI C84.1 Range A"),
    "ansi_a_customers_affected": ("count", "customers with any node outside Range A"),
    "ansi_a_under_max_consecutive_intervals": ("count", "longest run of consecutive 15-min intervals any customer "
                                                        "spends below ANSI C84.1 Range A (periodic design day)"),
    "ansi_b_under_node_intervals": ("count", "customer node-intervals below ANSI C84.1 Range B"),
    "ansi_b_over_node_intervals": ("count", "customer node-intervals above ANSI C84.1 Range B"),
    "ansi_b_violation_node_intervals": ("count", "customer node-intervals outside ANSI C84.1 Range B"),
    "ansi_b_customers_affected": ("count", "customers with any node outside Range B"),
    "worst_line_loading_pct": ("%", "highest current of any phase conductor of a line as a share of NormAmps"),
    "worst_line": ("text", "the line with the highest loading"),
    "overloaded_line_intervals": ("count", "line element-intervals above 100 % of NormAmps"),
    "overloaded_lines": ("count", "lines above 100 % of NormAmps at least once"),
    "line_ma_overload_intervals": ("count", "line element-intervals whose moving average exceeds the "
                                            "THERMAL line threshold (1 h above 100 % of NormAmps)"),
    "worst_transformer_loading_pct": ("%", "highest transformer loading: per winding and phase (three-phase: each "
                                           "phase's |S| against kVA / 3; split-phase centre-tap: each 120 V leg "
                                           "against half the kVA rating), and in total (|S| at winding 1 against "
                                           "kVA)"),
    "worst_transformer": ("text", "the transformer with the highest loading"),
    "overloaded_transformer_intervals": ("count", "transformer element-intervals above 100 % of rating"),
    "overloaded_transformers": ("count", "transformers above 100 % of rating at least once"),
    "transformer_ma_overload_intervals": ("count", "transformer element-intervals whose moving average "
                                                   "exceeds the THERMAL transformer threshold (2 h above "
                                                   "100 % of nameplate)"),
    "transformer_emergency_intervals": ("count", "transformer element-intervals above the emergency limit "
                                                 "(THERMAL transformer emergency_pct, 150 %; instantaneous)"),
    "reverse_flow_intervals": ("count", "15-min intervals with power flowing back into the substation"),
    "head_reverse_flow_intervals_phase1": ("count", "15-min intervals with phase 1's active power at the feeder "
                                                    "head flowing towards the substation"),
    "head_reverse_flow_intervals_phase2": ("count", "the same for phase 2"),
    "head_reverse_flow_intervals_phase3": ("count", "the same for phase 3"),
    "n_service_transformers": ("count", "service transformers of the feeder (last winding at most "
                                        "SERVICE_TRANSFORMER_MAX_KV, 1 kV)"),
    "service_transformers_reverse_flow": ("count", "service transformers with reverse flow (active power at the "
                                                   "primary winding towards the primary) in any interval"),
    "service_transformer_reverse_flow_intervals": ("count", "service transformer-intervals with reverse flow"),
    "ansi_a_over_customer_intervals": ("count", "customer-intervals with any energised service node above ANSI "
                                                "C84.1 Range A (1.05 pu, 126 V on 120 V)"),
    "ansi_b_over_customer_intervals": ("count", "customer-intervals with any energised service node above ANSI "
                                                "C84.1 Range B (1.0583 pu, 127 V on 120 V)"),
    "peak_without_storage_kw": ("kW", "feeder-head peak of the same day with the batteries disabled"),
    "storage_peak_reduction_kw": ("kW", "peak without storage minus peak with storage"),
    "storage_peak_reduction_pct": ("%", "storage peak reduction as a share of the peak without storage"),
    "storage_discharged_kwh": ("kWh", "energy the batteries discharged"),
    "storage_charged_kwh": ("kWh", "energy the batteries charged"),
    "ev_energy_requested_kwh": ("kWh", "energy the EVs asked for"),
    "ev_energy_delivered_kwh": ("kWh", "energy the chargers delivered"),
    "ev_energy_unserved_kwh": ("kWh", "EV energy not delivered (sessions too short or voltage too low)"),
    "pv_energy_kwh": ("kWh", "PV energy of the day"),
    "non_converged_steps": ("count", "15-min steps whose power flow did not converge"),
    "n_unrated_lines": ("count", "lines with no rating of their own (OpenDSS's default 400 A): left out of line "
                                 "loading and overload counts"),
    "control_warning_steps": ("count", "15-min steps that converged with a control-iteration warning (OpenDSS #485: "
                                       "regulators or capacitors still moving at the iteration limit)"),
    "control_warning": ("text", "the first control-iteration warning of the day, as OpenDSS worded it"),
}
#: The run's metrics on its feeder's light-load day (the lowest daytime load of the season,
#: ``common.config.LIGHT_LOAD_SEASONS``; phase 6 light_load.py): the PV-relevant subset of METRICS, each named
#: ``light_load_<metric>``, in ``summary.json`` ``metrics`` of a run of such a season only (the peak day's
#: metrics stay under their own names), and the feeder head's lowest active power of that day.
LIGHT_LOAD_SOURCE_METRICS = ("reverse_flow_intervals", "head_reverse_flow_intervals_phase1",
                             "head_reverse_flow_intervals_phase2", "head_reverse_flow_intervals_phase3",
                             "service_transformers_reverse_flow", "service_transformer_reverse_flow_intervals",
                             "ansi_a_over_node_intervals", "ansi_b_over_node_intervals",
                             "ansi_a_over_customer_intervals", "ansi_b_over_customer_intervals",
                             "v_max_pu", "v_max_customer_pu", "pv_energy_kwh")
LIGHT_LOAD_METRICS: dict[str, tuple[str, str]] = {
    **{f"light_load_{name}": (METRICS[name][0], f"on the light-load day: {METRICS[name][1]}")
       for name in LIGHT_LOAD_SOURCE_METRICS},
    "light_load_head_min_kw": ("kW", "on the light-load day: lowest feeder-head three-phase active power (15-min "
                                     "average; negative: the feeder exports to the substation)"),
}
#: metrics phase 6 also writes that are not outcomes (kept once, under REALISED)
NOT_OUTCOMES = ("n_customers",)

#: Realised counts of an instance (``summary.json`` key ``realised``; nested dictionaries flattened
#: with a dot, as the inputs are).
REALISED: dict[str, tuple[str, str]] = {
    "n_customers": ("count", "customers of the feeder"),
    "n_residential": ("count", "residential customers"),
    "n_three_phase": ("count", "three-phase customers (three-phase PV and storage hosts)"),
    "customers_per_variant.baseline": ("count", "customers on their existing heating and cooling"),
    "customers_per_variant.dm": ("count", "customers with demand-managed heat pumps"),
    "customers_per_variant.un": ("count", "customers with uncontrolled heat pumps"),
    "n_evs": ("count", "EVs (one per EV host)"),
    "n_evs_level2": ("count", "EVs charging at Level 2"),
    "n_evs_controlled": ("count", "EVs in managed charging"),
    "ev_charger_kw_total": ("kW", "sum of the EV charger ratings"),
    "ev_need_kwh": ("kWh", "energy the EV sessions need"),
    "ev_scheduled_kwh": ("kWh", "energy the charging schedules deliver"),
    "ev_unserved_kwh": ("kWh", "EV energy the sessions cannot take in their dwell time"),
    "n_pv": ("count", "PV systems"),
    "pv_kw": ("kW", "PV rating (Pmpp) of all systems"),
    "n_storage": ("count", "batteries"),
    "n_storage_wanted": ("count", "batteries the storage share asked for"),
    "storage_kw": ("kW", "battery power rating of the three-phase fleet"),
    "storage_kwh": ("kWh", "battery energy rating of the three-phase fleet"),
    "storage_shortfall": ("text", "why fewer batteries than wanted were placed, if so"),
    "n_rooftop_pool": ("count", "residential customers that are not three-phase (rooftop PV and home-battery "
                                "hosts)"),
    "n_pv_res": ("count", "rooftop PV arrays"),
    "n_pv_res_wanted": ("count", "rooftop PV hosts the share asked for"),
    "pv_res_kw": ("kW", "rooftop PV rating (Pmpp, kW DC) of all arrays"),
    "pv_res_shortfall": ("text", "why fewer rooftop arrays than wanted were placed, if so"),
    "pv_res_inverter_control": ("text", "rooftop inverters' control: unity_pf or volt_var (IEEE 1547 Cat. B)"),
    "n_storage_res": ("count", "home batteries"),
    "storage_res_kw": ("kW", "power rating of all home batteries"),
    "storage_res_kwh": ("kWh", "energy rating of all home batteries"),
    "storage_res_dispatch": ("text", "home batteries' dispatch: self_consumption or peak_shaving"),
}


def is_text(unit: str) -> bool:
    """True for the unit of a value that is not a number."""
    return unit == "text"


def metric_settings_digest() -> str:
    """SHA-256 of the ``common.config`` settings phase 6's metrics are computed with (ANSI ranges, thermal
    windows, thresholds and emergency limit, the energised threshold, EV voltage limits, the voltage
    unbalance levels, the service-transformer voltage and the reverse-flow tolerance): a run's summary records it, so a run solved under other settings is redone by phase 6
    and stale for phase 7. What only phase 7 applies (the undervoltage duration ``min_consecutive_intervals``,
    the criteria's descriptions) is left out: changing it needs phase 7 only."""
    import hashlib
    import json

    from common import config

    settings = {"ANSI_RANGE_A": config.ANSI_RANGE_A, "ANSI_RANGE_B": config.ANSI_RANGE_B,
                "THERMAL": config.THERMAL,
                "ENERGISED_PU": config.ENERGISED_PU, "EV_VMIN": config.EV.get("vminpu"),
                "EV_VLOW": config.EV.get("vlowpu"),
                "VOLTAGE_UNBALANCE_PCT": config.VOLTAGE_UNBALANCE_PCT,
                "SERVICE_TRANSFORMER_MAX_KV": config.SERVICE_TRANSFORMER_MAX_KV,
                "REVERSE_FLOW_TOLERANCE_KW": config.REVERSE_FLOW_TOLERANCE_KW}
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def upgrade_settings_digest() -> str:
    """SHA-256 of the ``common.config`` settings the upgrade step's result depends on besides the run and the
    cost tables (``UPGRADES`` but the cost threshold, which phase 7 applies; ANSI Range A; the energised
    threshold; with the ``planning_criteria`` trigger the thermal criteria ``THERMAL``): the ``upgrades``
    block of a run's summary records it, so phase 6 upgrades a run again, and phase 7 refuses its cost, when
    the settings changed."""
    import hashlib
    import json

    from common import config

    upgrades = {k: v for k, v in config.UPGRADES.items() if k != "cost_threshold_usd"}
    settings = {"UPGRADES": upgrades, "RANGE_A": config.ANSI_RANGE_A, "ENERGISED_PU": config.ENERGISED_PU,
                **({"THERMAL": config.THERMAL} if upgrades.get("trigger") == "planning_criteria" else {})}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def cost_tables_digest(folder: Path | str) -> str | None:
    """SHA-256 of the upgrade step's unit-cost tables in ``folder`` (the SHA-256 of each file of
    ``common.paths.UPGRADE_COST_FILES``, by file name): what a run's ``upgrades`` block records as
    ``cost_tables_digest``. None when a table is missing."""
    import json

    from common.io import sha256_bytes, sha256_file
    from common.paths import UPGRADE_COST_FILES

    folder = Path(folder)
    paths = {name: folder / name for name in UPGRADE_COST_FILES.values()}
    if not all(p.is_file() for p in paths.values()):
        return None
    digests = {name: sha256_file(path) for name, path in paths.items()}
    return sha256_bytes(json.dumps(digests, sort_keys=True).encode("utf-8"))


def missing_metrics(metrics: dict) -> list[str]:
    """The :data:`METRICS` a run's ``metrics`` lack (a summary written by an older phase 6)."""
    return sorted(name for name in METRICS if name not in metrics)
