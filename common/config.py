"""The constants a user edits per state and season, as documented tables.

Every phase script takes its defaults from here; command-line flags override them for one run.
Tables are keyed by state (``NC``, ``TX``, ``CA``) or season (``summer``, ``winter``): a new state or
season is a new row, never an ``if state == ...`` branch in a script. Sources and reasoning are given
next to each value; "assumption" marks a modelling choice the user may want to revisit.
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------
# Study scope
# --------------------------------------------------------------------------------------------
STATES = ("NC", "TX", "CA")
SEASONS = ("summer", "winter")
DESIGNS = ("lhs", "sobol")
#: heat-pump variants: baseline equipment, demand-managed heat pumps, uncontrolled heat pumps
VARIANTS = ("baseline", "dm", "un")
#: customer classes as SMART-DS names its load shapes (``res_kw_<id>_pu``, ``com_kw_<id>_pu``)
CLASSES = ("res", "com")

DEFAULT_STATE = "NC"
DEFAULT_SEASON = "winter"
DEFAULT_DESIGN = "lhs"

#: environment variable that overrides the default workspace folder (``./data``)
DATA_DIR_ENV = "DSS_XLRM_DATA"

# --------------------------------------------------------------------------------------------
# NREL SMART-DS v1.0 (formats.md section 1): which feeders each state studies
# --------------------------------------------------------------------------------------------
#: OEDI bucket prefix of SMART-DS v1.0; below it: <year>/<city>/<subregion>/...
SMARTDS_PREFIX = "SMART-DS/v1.0"
SMARTDS = {
    # city: Greensboro NC (GSO) names elements without a region prefix; Austin (AUS) and the
    # Bay Area (SFO) prefix them with the subregion (p1u...). subregions: the ones studied.
    "NC": {"year": "2018", "city": "GSO", "subregions": ("urban-suburban",), "scenario": "base_timeseries"},
    "TX": {"year": "2018", "city": "AUS", "subregions": ("P1U",), "scenario": "base_timeseries"},
    "CA": {"year": "2018", "city": "SFO", "subregions": ("P1U",), "scenario": "base_timeseries"},
}

#: Feeders excluded by hand, per state: {feeder folder name: reason}. The circuit filter of
#: phase 6 finds broken feeders by itself; this table is for deliberate exclusions.
SKIP_CIRCUITS: dict[str, dict[str, str]] = {"NC": {}, "TX": {}, "CA": {}}

#: Location of each state's study area, for solar position and clear-sky irradiance (phase 6).
#: Coordinates of the SMART-DS cities; time zones as fixed offsets because EULP and SMART-DS
#: time series are in standard time with no daylight saving (formats.md section 2).
SITES = {
    "NC": {"name": "Greensboro", "latitude": 36.07, "longitude": -79.79, "altitude_m": 270.0, "tz": "Etc/GMT+5"},
    "TX": {"name": "Austin", "latitude": 30.27, "longitude": -97.74, "altitude_m": 150.0, "tz": "Etc/GMT+6"},
    "CA": {"name": "San Francisco", "latitude": 37.77, "longitude": -122.42, "altitude_m": 20.0, "tz": "Etc/GMT+8"},
}

# --------------------------------------------------------------------------------------------
# NREL End-Use Load Profiles (formats.md section 2)
# --------------------------------------------------------------------------------------------
EULP_PREFIX = "nrel-pds-building-stock/end-use-load-profiles-for-us-building-stock"
#: Default public source of both datasets: the OEDI bucket over HTTPS.
OEDI_SOURCE = "https://oedi-data-lake.s3.amazonaws.com"

#: The release each customer class is matched against, per state. The sample pipeline and its
#: tests run on these; another release of the table below is chosen here or, for phase 1c, with
#: ``--release`` (e.g. ``--release 2024/comstock_amy2018_release_2``).
#: Both classes use the same weather year, AMY 2018, the year of SMART-DS's 2018 feeders and load
#: profiles: a feeder sums residential and commercial curves, and two weather years in one sum make
#: an artificial residential-commercial coincidence (a cold TMY3 morning under a mild 2018 one).
#: ResStock 2024 release 2 is published with both TMY3 and AMY2018 weather and the same upgrade ids;
#: ComStock 2024 release 1 is AMY2018 only. Phases 1c, 1b and 2 (find_max_day_curve.py, on the
#: releases of feeder_buildings.csv) refuse a pairing of two weather years (``weather`` of
#: EULP_RELEASES) unless ALLOW_MIXED_WEATHER is True (``common.eulp.check_one_weather_year``).
EULP_RELEASE = {
    "NC": {"res": "2024/resstock_amy2018_release_2", "com": "2024/comstock_amy2018_release_1"},
    "TX": {"res": "2024/resstock_amy2018_release_2", "com": "2024/comstock_amy2018_release_1"},
    "CA": {"res": "2024/resstock_amy2018_release_2", "com": "2024/comstock_amy2018_release_1"},
}
#: True allows a state's residential and commercial releases (EULP_RELEASE, or phase 1c's
#: ``--release``) to have different weather years, e.g. ResStock TMY3 with ComStock AMY2018 (the
#: earlier default); every phase that pairs them then logs a warning naming both releases.
#: False (default): such a pairing is refused with one line naming both releases.
ALLOW_MIXED_WEATHER = False

#: Layout of every supported release (formats.md section 2): one row each, no string surgery in
#: the code. ``timeseries``: path of one building's 15-min file below the release folder, formatted
#: with upgrade, state, county and bldg_id; ``partition``: how the time series are partitioned.
#: ``metadata_partition``: how the metadata are kept, ``national`` (one file per upgrade),
#: ``by_state`` (one file per state and upgrade) or ``by_state_and_county`` (one file per county
#: and upgrade; ``common.eulp`` lists a state's county partitions and reads them as one table);
#: ``metadata_baseline`` / ``metadata_upgrade``: the baseline and per-upgrade metadata files,
#: formatted with upgrade, state and county. ``upgrades``: id -> meaning, as published with the
#: release; only ids documented in formats.md are listed, and a comment says where ids are unknown.
#: ``weather``: the weather year of the release's simulations (``TMY3``, a typical year assembled
#: from several years' months; ``AMY2018``, the actual weather of 2018; ``AMY2012``), as in the
#: release's name.
_TIMESERIES_BY_STATE = ("timeseries_individual_buildings/by_state/upgrade={upgrade}/state={state}/"
                        "{bldg_id}-{upgrade}.parquet")
_BY_STATE_AND_COUNTY = "metadata_and_annual_results/by_state_and_county/full/parquet/state={state}/county={county}/"
_BY_STATE = "metadata_and_annual_results/by_state/full/parquet/state={state}/"
#: formats.md gives ids for ComStock 2024 release 1 only; 2024.2 keeps the same heat-pump ids here
_COMSTOCK_2024_HEAT_PUMPS = {
    0: "baseline",
    1: "variable-speed heat-pump rooftop unit, electric backup",
    2: "variable-speed heat-pump rooftop unit, original-fuel backup",
    8: "heat-pump boiler, electric backup",
    9: "heat-pump boiler, gas backup",
}
#: the 2025 ComStock releases share one layout
_COMSTOCK_2025 = {
    "stock": "comstock",
    "class": "com",
    "weather": "AMY2018",
    "partition": "by_state",
    "timeseries": _TIMESERIES_BY_STATE,
    "metadata_partition": "by_state_and_county",
    "metadata_baseline": _BY_STATE_AND_COUNTY + "{state}_{county}_upgrade0.parquet",
    "metadata_upgrade": _BY_STATE_AND_COUNTY + "{state}_{county}_upgrade{upgrade}.parquet",
    "building_type_column": "in.comstock_building_type",
    "upgrades": {0: "baseline"},
}
EULP_RELEASES = {
    "2024/resstock_tmy3_release_2": {
        "stock": "resstock",
        "class": "res",
        "weather": "TMY3",
        "partition": "by_state",
        "timeseries": _TIMESERIES_BY_STATE,
        "metadata_partition": "national",
        "metadata_baseline": "metadata/baseline.parquet",
        "metadata_upgrade": "metadata/upgrade{upgrade:02d}.parquet",
        "building_type_column": "in.geometry_building_type_recs",
        "upgrades": {
            0: "baseline",
            1: "ENERGY STAR heat pump with electric backup",
            2: "high-efficiency cold-climate heat pump with electric backup",
            3: "ultra-high-efficiency heat pump with electric backup",
            4: "ENERGY STAR heat pump with existing system as backup",
            5: "geothermal heat pump",
        },
    },
    "2024/resstock_amy2018_release_2": {
        "stock": "resstock",
        "class": "res",
        "weather": "AMY2018",
        "partition": "by_state",
        "timeseries": _TIMESERIES_BY_STATE,
        "metadata_partition": "national",
        "metadata_baseline": "metadata/baseline.parquet",
        "metadata_upgrade": "metadata/upgrade{upgrade:02d}.parquet",
        "building_type_column": "in.geometry_building_type_recs",
        "upgrades": {
            0: "baseline",
            1: "ENERGY STAR heat pump with electric backup",
            2: "high-efficiency cold-climate heat pump with electric backup",
            3: "ultra-high-efficiency heat pump with electric backup",
            4: "ENERGY STAR heat pump with existing system as backup",
            5: "geothermal heat pump",
        },
    },
    "2022/resstock_amy2018_release_1": {
        "stock": "resstock",
        "class": "res",
        "weather": "AMY2018",
        "partition": "by_state",
        "timeseries": _TIMESERIES_BY_STATE,
        "metadata_partition": "national",
        "metadata_baseline": "metadata/baseline.parquet",
        "metadata_upgrade": "metadata/upgrade{upgrade:02d}.parquet",
        "building_type_column": "in.geometry_building_type_recs",
        "upgrades": {
            0: "baseline",
            3: "minimum-efficiency heat pump with electric backup",
            4: "high-efficiency heat pump with electric backup",
            5: "high-efficiency heat pump with existing heating as backup",
        },
    },
    "2021/resstock_amy2018_release_1": {
        "stock": "resstock",
        "class": "res",
        "weather": "AMY2018",
        "partition": "by_county",
        "timeseries": "timeseries_individual_buildings/by_county/upgrade={upgrade}/county={county}/{bldg_id}-{upgrade}.parquet",
        "metadata_partition": "national",
        "metadata_baseline": "metadata/metadata.parquet",
        "metadata_upgrade": None,
        "building_type_column": "in.geometry_building_type_recs",
        "upgrades": {0: "baseline"},
    },
    # ResStock 2025 release 1, AMY 2018 and AMY 2012 weather (the names published on OEDI;
    # formats.md names none): metadata and annual results per state, the baseline as upgrade 0.
    # Its heat-pump and demand-flexibility (load shifting, load shedding) upgrade ids are NOT known
    # from formats.md: only the baseline is listed. Add the release's ids here (from its upgrade
    # list) before using it with the heat-pump variants; until then phase 1c runs it with
    # ``--upgrades 0``.
    "2025/resstock_amy2018_release_1": {
        "stock": "resstock",
        "class": "res",
        "weather": "AMY2018",
        "partition": "by_state",
        "timeseries": _TIMESERIES_BY_STATE,
        "metadata_partition": "by_state",
        "metadata_baseline": _BY_STATE + "{state}_upgrade0.parquet",
        "metadata_upgrade": _BY_STATE + "{state}_upgrade{upgrade}.parquet",
        "building_type_column": "in.geometry_building_type_recs",
        "upgrades": {0: "baseline"},
    },
    "2025/resstock_amy2012_release_1": {
        "stock": "resstock",
        "class": "res",
        "weather": "AMY2012",
        "partition": "by_state",
        "timeseries": _TIMESERIES_BY_STATE,
        "metadata_partition": "by_state",
        "metadata_baseline": _BY_STATE + "{state}_upgrade0.parquet",
        "metadata_upgrade": _BY_STATE + "{state}_upgrade{upgrade}.parquet",
        "building_type_column": "in.geometry_building_type_recs",
        "upgrades": {0: "baseline"},
    },
    "2024/comstock_amy2018_release_1": {
        "stock": "comstock",
        "class": "com",
        "weather": "AMY2018",
        "partition": "by_state",
        "timeseries": _TIMESERIES_BY_STATE,
        "metadata_partition": "national",
        "metadata_baseline": "metadata/baseline.parquet",
        "metadata_upgrade": "metadata/upgrade{upgrade:02d}.parquet",
        "building_type_column": "in.comstock_building_type",
        "upgrades": {
            **_COMSTOCK_2024_HEAT_PUMPS,
            19: "thermostat setback load shed (demand flexibility)",
            20: "thermostat load shift (demand flexibility)",
        },
    },
    # ComStock 2024 release 2: metadata per county (``<XX>_<GXXXXXXX>_baseline.parquet``,
    # ``_upgradeNN``); a building can fill several rows of a county file (split weights). Heat-pump
    # ids as in release 1 (not confirmed for release 2 by formats.md); its demand-flexibility ids
    # are not known from formats.md and are not listed.
    "2024/comstock_amy2018_release_2": {
        "stock": "comstock",
        "class": "com",
        "weather": "AMY2018",
        "partition": "by_state",
        "timeseries": _TIMESERIES_BY_STATE,
        "metadata_partition": "by_state_and_county",
        "metadata_baseline": _BY_STATE_AND_COUNTY + "{state}_{county}_baseline.parquet",
        "metadata_upgrade": _BY_STATE_AND_COUNTY + "{state}_{county}_upgrade{upgrade:02d}.parquet",
        "building_type_column": "in.comstock_building_type",
        "upgrades": dict(_COMSTOCK_2024_HEAT_PUMPS),
    },
    # ComStock 2025 releases 1 to 3 (the names published on OEDI; formats.md names none): metadata
    # per county, every upgrade (the baseline is upgrade 0) as ``<XX>_<GXXXXXXX>_upgrade<N>.parquet``.
    # Heat-pump and demand-flexibility ids are NOT known from formats.md: only the baseline is
    # listed (add the release's ids before using it with the heat-pump variants; until then phase
    # 1c runs it with ``--upgrades 0``).
    "2025/comstock_amy2018_release_1": dict(_COMSTOCK_2025),
    "2025/comstock_amy2018_release_2": dict(_COMSTOCK_2025),
    "2025/comstock_amy2018_release_3": dict(_COMSTOCK_2025),
}

#: Which upgrade each heat-pump variant uses, by customer class and building-type group, with the
#: reason. ``load_shift``: apply the load-shift model of LOAD_SHIFT to the heating and cooling
#: end uses (phase 4). A release with a demand-flexibility upgrade that acts on heat pumps would
#: name it here with load_shift False; none of the listed ids is one: ComStock 2024 upgrades 19
#: and 20 shift the *existing* HVAC of gas-heated buildings, so using them as "demand-managed heat
#: pumps" would compare unelectrified buildings with electrified ones. The 2025 releases publish
#: load-shifting and load-shedding upgrades, but their ids are not in EULP_RELEASES yet (not known
#: from formats.md). The rules hold for every release of a class: they name upgrades 0, 1 and 8,
#: which the default releases (EULP_RELEASE) and ComStock 2024 release 2 have; phase 1c refuses a
#: release without them unless ``--upgrades`` is given.
#: Groups are matched on the building type (first match wins; "*" matches any).
HEAT_PUMP_VARIANT_RULES = {
    "res": [
        {
            "building_types": ("*",),
            "baseline": {"upgrade": 0, "load_shift": False, "reason": "existing equipment"},
            "un": {"upgrade": 1, "load_shift": False,
                   "reason": "ENERGY STAR heat pump with electric-resistance backup: the backup strips "
                             "set the cold-morning peak, the planner's worst case"},
            "dm": {"upgrade": 1, "load_shift": True,
                   "reason": "the same heat pump under a pre-heat/pre-cool load-shift programme: the "
                             "release has no demand-flexibility heat-pump upgrade"},
        },
    ],
    "com": [
        {
            "building_types": ("LargeOffice", "MediumOffice", "Hospital", "LargeHotel", "SecondarySchool", "PrimarySchool"),
            "baseline": {"upgrade": 0, "load_shift": False, "reason": "existing equipment"},
            "un": {"upgrade": 8, "load_shift": False,
                   "reason": "hydronic (boiler) buildings: heat-pump boiler with electric backup"},
            "dm": {"upgrade": 8, "load_shift": True,
                   "reason": "the same heat-pump boiler under the load-shift programme"},
        },
        {
            "building_types": ("*",),
            "baseline": {"upgrade": 0, "load_shift": False, "reason": "existing equipment"},
            "un": {"upgrade": 1, "load_shift": False,
                   "reason": "rooftop-unit buildings: variable-speed heat-pump RTU with electric backup"},
            "dm": {"upgrade": 1, "load_shift": True,
                   "reason": "the same heat-pump RTU under the load-shift programme"},
        },
    ],
}

#: EULP time-series columns (kWh per 15-min interval ending at ``timestamp``)
EULP_TIMESTAMP = "timestamp"
EULP_TOTAL_KWH = "out.electricity.total.energy_consumption"
#: end uses that the load-shift model moves (heating, heat-pump backup, cooling and their fans)
EULP_HVAC_KWH = (
    "out.electricity.heating.energy_consumption",
    "out.electricity.heating_hp_bkup.energy_consumption",
    "out.electricity.heating_fans_pumps.energy_consumption",
    "out.electricity.cooling.energy_consumption",
    "out.electricity.cooling_fans_pumps.energy_consumption",
)

# --------------------------------------------------------------------------------------------
# Seasons and design days (phases 2-5)
# --------------------------------------------------------------------------------------------
#: months searched for each season's design day (the day of the highest 15-min feeder peak)
SEASON_MONTHS = {"summer": (6, 7, 8), "winter": (12, 1, 2)}
#: How phase 2 picks each feeder's design day per season (DESIGN_DAY_RULES): ``highest_variant``,
#: the day of the highest 15-min peak of the three all-variant feeder curves (every building
#: baseline, every building demand-managed, every building with uncontrolled heat pumps), so that
#: the day studied is the worst one of the variant that loads the feeder most; ``baseline``, the
#: day of the baseline curve's peak (the earlier rule), which can miss it: on the sample, winter,
#: the highest variant peak on the baseline's day is 11 % (NC udt1021) and 12 % (TX p1udt4106)
#: below the highest one (the uncontrolled heat pumps' peak, on another day). design_days.csv
#: records every variant's peak day and peak either way (find_max_day_curve.py --design-day-rule).
DESIGN_DAY_RULE = "highest_variant"
DESIGN_DAY_RULES = ("highest_variant", "baseline")
#: How many design days phases 2-6 study per feeder and season (``--days K`` of find_max_day_curve.py and
#: of phase 6): the K highest DISTINCT peak days of the curves of DESIGN_DAY_RULE (all three variants for
#: ``highest_variant``, the baseline curve for ``baseline``), ranked by the day's highest 15-min peak of
#: those curves, rank 1 being the design day of the rule. 1 is the one-day study (outputs byte-identical
#: to the study before the option existed); K > 1 adds a ``rank`` column to design_days.csv, day profiles
#: for ranks 2..K and, in phase 6, one instance per day (``<case>/day<k>/``) with the run's worst day.
DESIGN_DAYS = 1
#: What makes a day a run's worst when phase 6 solves several (``--days``): the day with the highest value
#: of this metric of ``common.schema.METRICS`` (``peak_kw``: the feeder-head peak; a tie goes to the lower
#: rank). The run's summary.json reports that day's metrics and series, ``worst_day`` and every day's peak.
WORST_DAY_METRIC = "peak_kw"
#: The light-load day for rooftop PV (phase 2 ``--light-load-seasons``, phase 6): per feeder and season of
#: LIGHT_LOAD_SEASONS, the day of the season's months (SEASON_MONTHS) holding the LOWEST 15-min value, among the
#: intervals starting within LIGHT_LOAD_DAY_WINDOW_H [h, local standard time, as the EULP and PV series: 10:00 up to 16:00], of the three all-variant
#: feeder curves (baseline, dm, un: the lightest the feeder gets in any variant). Reverse flow and voltage rise of
#: rooftop PV are worst at the lightest daytime load, not on the peak day: interconnection and hosting-capacity
#: screens use the daytime minimum load (FERC Order 792, Small Generator Interconnection Procedures, supplemental
#: review screen 2.4.4.1.1, "daytime minimum load", 10 a.m. to 4 p.m. for fixed panels; EPRI hosting-capacity
#: practice likewise). design_days.csv records it as one more row per feeder and season (rank K+1 after the K
#: peak days, ``kind`` light_load); phases 3-5 cut every profile on it and phase 6 solves every run of the season
#: on it as well (``<case>/light_load/``), its PV-relevant metrics named ``light_load_<metric>`` beside the peak
#: day's (common.schema.LIGHT_LOAD_METRICS). Summer only by default: the season of the daytime solar peak (winter
#: middays are loaded by heating and have less sun), and it keeps make run's time (one more solve per summer run
#: only); add "winter" to study its light day too. The search stays in the season's months: the year's lowest
#: daytime load falls in spring, outside both seasons (sample, NC baseline curves: 5-9 % below June-August's,
#: late April to early May), so the summer light-load day understates the year's worst case for rooftop PV.
LIGHT_LOAD_DAY_WINDOW_H = (10, 16)
LIGHT_LOAD_SEASONS = ("summer",)
INTERVALS_PER_DAY = 96
INTERVAL_H = 0.25

#: Demand-managed heat pumps (phase 4): within the window, shed ``shed_fraction`` of the HVAC
#: load; the shed energy is put back before the window (pre-heat / pre-cool, ``pre_share``) over
#: ``pre_hours`` and after it (rebound) over ``rebound_hours``, so the day's energy is kept.
#: Windows follow the utilities' winter-morning and summer-afternoon peak periods (assumption:
#: Duke Energy Carolinas, Austin Energy and PG&E peak windows, rounded to the hour).
LOAD_SHIFT = {
    "winter": {"window_hours": ((6, 9), (17, 20)), "shed_fraction": 0.5, "pre_hours": 3.0,
               "rebound_hours": 3.0, "pre_share": 0.6, "energy_penalty": 0.0},
    "summer": {"window_hours": ((15, 19),), "shed_fraction": 0.5, "pre_hours": 3.0,
               "rebound_hours": 3.0, "pre_share": 0.6, "energy_penalty": 0.0},
}
#: Staggered demand management (phase 4): every building's windows, with their pre-heat and rebound
#: periods, move by the building's own offset, drawn uniformly on the ``step_h`` grid in
#: [-spread_h, +spread_h] from ``seed`` and the building (numpy SeedSequence; the same offset in every
#: season and on every feeder). One clock for every building makes the pre-heat of all of them coincide
#: just before the window, a new feeder peak; utilities dispatch load-shift programmes in groups with
#: staggered start and end times so that the groups' pre-heat and rebound (snap-back) do not coincide.
#: The +/- 2 h spread in 15-min steps is an assumption (it keeps every shifted window inside the
#: utilities' wider peak periods), not a value from a programme. ``spread_h`` 0 gives the earlier
#: behaviour: one shared clock.
LOAD_SHIFT_STAGGER = {"spread_h": 2.0, "step_h": 0.25, "seed": 20240317}

#: kVAr/kW (phase 3): below this kW the ratio is not measured and DEFAULT_POWER_FACTOR is used;
#: the same power factor applies when a profile has no load_data file.
KW_NEAR_ZERO = 1e-3
DEFAULT_POWER_FACTOR = {"res": 0.98, "com": 0.95}

# --------------------------------------------------------------------------------------------
# Matching SMART-DS profiles to EULP buildings (phase 1b)
# --------------------------------------------------------------------------------------------
MATCH = {
    #: relative peak-error tiers; a candidate's tier is the smallest one its errors fit in
    "tolerance_tiers": {"res": (0.05, 0.10, 0.20, 0.35, 0.50, 0.75, 0.95),
                        "com": (0.05, 0.10, 0.20, 0.35, 0.50)},
    #: candidates kept per profile
    "n_candidates": 25,
    #: score = peak_weight * mean |log peak ratio| + shape_weight * shape distance
    #:         + type_penalty (building type known on both sides and different)
    "peak_weight": 1.0,
    "shape_weight": 0.5,
    "type_penalty": 0.25,
}
#: income tiers from in.area_median_income (percent of area median income)
INCOME_TIERS = {"low": (0.0, 80.0), "mid": (80.0, 120.0), "high": (120.0, float("inf"))}
INCOME_PREFERENCE = ("mid", "high", "low")
#: Building-type quotas of the representative family: the largest share of profiles that one
#: type may take before other types within the same tolerance tier are preferred (assumption:
#: close to the stock mix of the SMART-DS cities).
BUILDING_TYPE_QUOTAS = {
    "res": {"Single-Family Detached": 0.70, "Single-Family Attached": 0.15,
            "Multi-Family with 2 - 4 Units": 0.15, "Multi-Family with 5+ Units": 0.20,
            "Mobile Home": 0.10},
    "com": {"SmallOffice": 0.35, "MediumOffice": 0.25, "RetailStandalone": 0.30,
            "RetailStripmall": 0.30, "Warehouse": 0.25, "QuickServiceRestaurant": 0.20,
            "FullServiceRestaurant": 0.20, "PrimarySchool": 0.15, "LargeOffice": 0.15},
}
SELECT_SEED = 20240601

# --------------------------------------------------------------------------------------------
# Design of experiments (phase 0): see common/doe.py for the parameter table
# --------------------------------------------------------------------------------------------
#: points per design of the joint layout (`make run LAYOUT=joint`): 32, because smaller designs of the 9
#: dimensions hold a column pair correlated above DOE_MAX_ABS_CORR below (32 is about 4 points per
#: dimension), and 2 x 32 runs per feeder and season are the fewest at which the sample's winter-peak driver
#: (hp_adoption) stands above the dummy on every NC feeder
N_CASES = 32
DOE_SEED = 123
#: placement replicates per design point (phase 0 --replicates): 1 measures no placement noise; 2 or more
#: repeat every point with independent host orders, so the analysis can say how much placement alone moves
#: each metric
PLACEMENT_REPLICATES = 1
#: largest |Pearson correlation| between two columns of a design's unit cube that phase 0 accepts without a
#: warning: above it the design confounds the two inputs' effects (9 dimensions: at 32 points the least
#: correlated of 64 Sobol scrambles, common.doe.least_correlated_sobol, reaches about 0.19 and the Latin
#: hypercube about 0.1; at 16 points neither gets below 0.5; the cross layout's 6 uncertainty dimensions need
#: about 32 scenarios)
DOE_MAX_ABS_CORR = 0.3
#: bounds of the linearly sampled inputs [fraction]; the heat-pump shares span the whole simplex
DOE_BOUNDS = {
    "ev_perc": (0.05, 0.80),              # residential customers with an EV
    "ev_lvl2_perc": (0.50, 0.99),         # EVs charging at Level 2
    "ev_split.controlled": (0.20, 0.80),  # EVs in managed charging
    "storage_perc_3ph": (0.0, 0.20),      # three-phase customers with a battery
    "pv_perc_3ph": (0.0, 0.20),           # three-phase customers with PV
    # residential customers with rooftop PV (X): 0-60 %. US residential PV reached a few % of homes
    # nationally and 15-30 % in the most penetrated ZIP codes of California, Arizona and Hawaii by the
    # mid-2020s (LBNL Tracking the Sun; utility interconnection queues); 60 % is the planners' "high
    # adoption" stress case of hosting-capacity studies (assumption), where reverse flow and voltage rise
    # show on most feeders
    "pv_perc_res": (0.0, 0.60),
    # residential customers with a home battery in a utility programme (L): 0-40 %. Battery attachment
    # to new residential PV is 10-60 % depending on the market (LBNL Tracking the Sun: about 60 % in
    # California under net billing, under 15 % in most other states); a utility's bring-your-own-battery
    # or battery-subsidy programme is the lever that moves it. 40 % of all homes is the upper end
    # (assumption: a programme enrolling about two thirds of the homes of a 60 %-PV feeder)
    "storage_perc_res": (0.0, 0.40),
}
#: Reference case "0", kept from the earlier study so that results stay comparable.
REFERENCE_CASE = {
    "shares": {"baseline": 1.0, "dm": 0.0, "un": 0.0},
    "ev_perc": 0.10,
    "ev_lvl2_perc": 0.80,
    "ev_split": {"controlled": 0.5, "uncontrolled": 0.5},
    "storage_perc_3ph": 0.05,
    "pv_perc_3ph": 0.05,
    # the earlier study had no rooftop PV and no home batteries: case "0" keeps that meaning
    "pv_perc_res": 0.0,
    "storage_perc_res": 0.0,
}
#: Phase 0's experiment layout (``--layout``): "joint" samples X and L together (N_CASES points per design);
#: "cross" crosses CROSS_SCENARIOS scenarios over the X dimensions with the policies below (or sampled ones)
LAYOUT = "joint"
#: scenarios per design of a cross layout (``--scenarios``; Sobol rounds up to a power of two)
CROSS_SCENARIOS = 8
#: Named policies of phase 0's cross layout (``--layout cross`` without ``--policies N``): each sets every
#: lever (an L input of common.doe.PARAMETERS / FACTORS; a lever left out is an error naming it, so a new
#: lever is decided for every policy) to a fraction, with its reason. Order = policy ids 1..P.
POLICIES = {
    "no programme": {
        "levers": {"hp_dm_fraction": 0.0, "ev_split.controlled": 0.0, "storage_perc_3ph": 0.0,
                   "storage_perc_res": 0.0},
        "reason": "the utility does nothing: no heat pump in demand management, no managed charging, no "
                  "storage; the baseline every lever is judged against"},
    "managed charging 80 %": {
        "levers": {"hp_dm_fraction": 0.0, "ev_split.controlled": 0.8, "storage_perc_3ph": 0.0,
                   "storage_perc_res": 0.0},
        "reason": "a managed-charging programme alone, at the top of the joint design's range (80 % of EVs "
                  "enrolled: programmes with default enrolment and an opt-out reach about that)"},
    "storage 20 %": {
        "levers": {"hp_dm_fraction": 0.0, "ev_split.controlled": 0.0, "storage_perc_3ph": 0.2,
                   "storage_perc_res": 0.2},
        "reason": "batteries alone: peak-shaving ones at 20 % of three-phase customers (the top of the joint "
                  "design's range) and a home-battery programme reaching 20 % of residential customers (half "
                  "its range)"},
    "all levers": {
        "levers": {"hp_dm_fraction": 1.0, "ev_split.controlled": 0.8, "storage_perc_3ph": 0.2,
                   "storage_perc_res": 0.4},
        "reason": "every lever at the top of its design range: every heat pump demand-managed, 80 % managed "
                  "charging, storage at 20 % of three-phase and 40 % of residential customers; the most the "
                  "study lets a utility do"},
}
DISJOINT_SETS = True

# --------------------------------------------------------------------------------------------
# Devices (phase 6)
# --------------------------------------------------------------------------------------------
EV = {
    #: EV hosts are residential customers; set True to let commercial customers host EVs too
    "commercial_hosts": False,
    #: charger power [kW] drawn uniformly in these ranges. Level 1: 120 V at 12-16 A;
    #: Level 2: 240 V at 27.5-48 A (SAE J1772 ranges of home chargers).
    "level1_kw": (1.4, 1.9),
    "level2_kw": (6.6, 11.5),
    "level1_kv": 0.12,
    "level2_kv": 0.24,
    #: below ``vminpu`` [pu] a constant-power charger (OpenDSS load model 1) draws less than its
    #: setting: its current falls linearly to the constant-impedance current at ``vlowpu`` and is a
    #: constant impedance below that (OpenDSS Load.pas); the EV energy delivered accounts for it
    "vminpu": 0.85,
    "vlowpu": 0.50,
    "vmaxpu": 1.2,
    #: controlled-charging scheduler: best-response passes of the valley filling. Each pass can only
    #: lower the feeder peak; on the sample the first pass gives the whole peak reduction and a
    #: second changes the peak by < 0.1 %, at twice the cost
    "scheduler_passes": 1,
}
PV = {
    #: three-phase PV hosts (dimension pv_perc_3ph); residential rooftop PV is ROOFTOP_PV below
    "size_factor": 0.30,        # x host annual peak kW
    "min_kw": 10.0,
    "kva_factor": 1.1,          # inverter kVA / Pmpp
    "tilt_deg": 20.0,
    "azimuth_deg": 180.0,
    "linke_turbidity": 3.0,     # clear-sky Ineichen model (assumption: rural-suburban air)
    "gamma_pdc": -0.0037,       # PVWatts temperature coefficient [1/C]
    "inverter_eff_nom": 0.96,   # PVWatts nominal inverter efficiency
    "system_losses": 0.14,      # PVWatts default system losses
    "ambient_c": {"summer": 30.0, "winter": 5.0},
    #: a SMART-DS solar scenario's own solar shape (PVSystems.dss) replaces the pvlib day when present
    "use_smartds_solar": True,
}
#: Residential rooftop PV (dimension ``pv_perc_res``, phase 6). Hosts are residential customers that are
#: not three-phase (the three-phase PV hosts are a separate pool), drawn from their own seeded order.
#: A host's array [kW DC] = min(max_kw, offset_ratio x the customer's annual energy [kWh/yr] /
#: specific_yield [kWh per kW DC and year]); the annual energy is the customer's own, from its SMART-DS
#: yearly profile (phase 1b's ``profile_monthly_stats.parquet``: the profile's annual kWh over its annual
#: peak, times the customer's annual peak kW); a customer without a whole year of profile gets no array,
#: and the instance records how many (``pv_res_shortfall``), never a default size. Connected like a
#: Level-2 charger (240 V across both legs of a split-phase service).
ROOFTOP_PV = {
    #: share of the home's annual energy the array is sized to produce (assumption: installers size to
    #: 80-100 % of the past year's bills under net metering; 0.8 leaves room for shading and roof limits)
    "offset_ratio": 0.8,
    #: annual AC energy per kW DC [kWh/kWp/yr] of a fixed roof array, 20 deg tilt, south, 14 % losses
    #: (NREL PVWatts at the SITES, rounded; assumption): Greensboro about 1,300, Austin 1,450, San
    #: Francisco 1,450
    "specific_yield_kwh_per_kwp": {"NC": 1300.0, "TX": 1450.0, "CA": 1450.0},
    #: largest array [kW DC] (assumption: the upper end of US residential systems, median about 7 kW DC
    #: (LBNL Tracking the Sun), and the 10-kW limit of many utilities' simplified residential
    #: interconnection); keeps a large all-electric home from a commercial-size array
    "max_kw": 10.0,
    #: inverter kVA / kW DC: 1.1 lets the inverter give IEEE 1547-2018 Category B's 44 % reactive power at
    #: rated active power (sqrt(1 + 0.44^2) = 1.09)
    "kva_factor": 1.1,
    #: inverter control: "unity_pf" (default: pf = 1, what most installed residential inverters run) or
    #: "volt_var" (IEEE 1547-2018 Category B default volt-var curve, VOLT_VAR below, one OpenDSS InvControl
    #: per array, monitoring the array's own service voltage: 240 V across the legs)
    "inverter_control": "unity_pf",
}
#: IEEE 1547-2018 Table 8, Category B default volt-var settings (V_ref = 1 pu): reactive power [pu of the
#: inverter's kVA, + injection] at the voltages [pu]; flat outside V1 and V4 (OpenDSS XYcurve, extended to
#: 0.5 and 1.5 pu so the curve covers every voltage)
VOLT_VAR = {"v_pu": (0.5, 0.92, 0.98, 1.02, 1.08, 1.5), "q_pu": (0.44, 0.44, 0.0, 0.0, -0.44, -0.44)}
#: Home batteries (dimension ``storage_perc_res``, phase 6): residential customers that are not three-phase,
#: drawn from their own seeded order, separate from the three-phase fleet (STORAGE). Each battery sits on its
#: home's service (240 V across both legs of a split-phase service) and is dispatched on the home's own net
#: load (its load, its EV, minus its rooftop PV) by ``dispatch``:
#: "self_consumption" (default): charge only from the home's PV surplus, discharge only to cover the home's
#: own net load (never exporting battery energy); "peak_shaving": shave the home's own net-load peak
#: (``storage_dispatch.peak_shaving`` on that home, charging in its own valleys, never below
#: ``peak_target_factor`` x its peak).
HOME_STORAGE = {
    "kw": 5.0,                  # continuous power (a Tesla Powerwall 2 class unit: 5 kW / 13.5 kWh)
    "kwh": 13.5,                # usable-capacity class of the same unit [kWh]
    "kva_factor": 1.0,          # inverter kVA / kW
    "eff_charge": 0.95,         # one-way efficiencies: about 90 % round trip (manufacturers' data sheets)
    "eff_discharge": 0.95,
    "reserve": 0.20,            # lowest state of charge kept for backup (assumption, as STORAGE)
    "dispatch": "self_consumption",
    #: peak_shaving only: never shave below this x the home's own peak net load (assumption: half the
    #: peak keeps the battery from flattening the whole day and from exporting)
    "peak_target_factor": 0.5,
}
#: the dispatch rules of HOME_STORAGE["dispatch"]
HOME_STORAGE_DISPATCHES = ("self_consumption", "peak_shaving")
#: the inverter controls of ROOFTOP_PV["inverter_control"]
PV_INVERTER_CONTROLS = ("unity_pf", "volt_var")
STORAGE = {
    "size_factor": 0.75,        # kW rating x host annual peak kW
    "min_kw": 5.0,
    "duration_h": 4.0,
    "kva_factor": 1.0 / 0.9,    # kVA = kW / 0.9
    "eff_charge": 0.95,
    "eff_discharge": 0.95,
    "reserve": 0.20,            # lowest state of charge
    "peak_target_factor": 0.8,  # never shave below this x the day's peak without storage
}

#: Feeders that are not SMART-DS (``--feeder-dir``, e.g. the IEEE 13-node feeder): each load is
#: a customer, residential when its kW is at most ``residential_max_kw``; loads without a daily
#: shape of their own follow ``daily_shape_pu`` (24 hourly values, per unit of the load's kW:
#: assumption, a typical residential-dominated feeder day); the design day of each season is
#: ``design_days`` (for the PV position of the sun). Heat-pump variants need EULP matching and
#: are not applied to such feeders (every customer stays on baseline equipment).
GENERIC_FEEDER = {
    "residential_max_kw": 200.0,
    #: the design day of each season when no load brings a yearly shape of a whole year; with such
    #: shapes it is the day of the feeder's highest 15-min load in SEASON_MONTHS (phase 2's rule), on
    #: the calendar of ``shape_year`` (the year a yearly shape's first value is taken to start)
    "design_days": {"summer": "2018-07-17", "winter": "2018-01-17"},
    "shape_year": 2018,
    "daily_shape_pu": {
        "summer": (0.52, 0.47, 0.44, 0.42, 0.42, 0.45, 0.52, 0.60, 0.66, 0.71, 0.76, 0.81,
                   0.86, 0.90, 0.94, 0.97, 1.00, 1.00, 0.97, 0.92, 0.85, 0.76, 0.66, 0.58),
        "winter": (0.62, 0.58, 0.56, 0.56, 0.60, 0.72, 0.90, 1.00, 0.93, 0.80, 0.72, 0.67,
                   0.64, 0.62, 0.62, 0.66, 0.75, 0.88, 0.96, 0.95, 0.90, 0.82, 0.74, 0.67),
    },
}

# --------------------------------------------------------------------------------------------
# Planning limits (phase 6b), formats.md section 4
# --------------------------------------------------------------------------------------------
#: ANSI C84.1 service voltage ranges [pu of the nominal service voltage], on a 120 V base:
#: Range A 114-126 V (0.95-1.05), Range B 110-127 V (110/120 = 0.9167, 127/120 = 1.0583). A voltage exactly
#: at a limit is inside the range.
ANSI_RANGE_A = (0.95, 1.05)
ANSI_RANGE_B = (0.9167, 1.0583)
#: reverse flow (phase 6): a service transformer is one whose last winding is at a utilization voltage, at
#: most this [kV] (ANSI C84.1's low-voltage class, up to 1 kV: 120/240 V, 208Y/120 V, 480Y/277 V); it sees
#: reverse flow in an interval when the active power at its primary winding flows towards the primary
#: (into the feeder), by more than REVERSE_FLOW_TOLERANCE_KW (1 W: an unloaded lossless winding reads
#: +/- rounding noise); the same tolerance applies to each phase at the feeder head
SERVICE_TRANSFORMER_MAX_KV = 1.0
REVERSE_FLOW_TOLERANCE_KW = 1e-3
#: Voltage unbalance factor VUF = |V2| / |V1| [%] that phase 6 counts bus-intervals above, at every
#: three-phase bus: ANSI C84.1 Annex D recommends that supply systems limit the voltage unbalance at the
#: service to 3 % (``limit_pct``; the annex states it as the largest deviation of the three phase-to-phase
#: voltages from their average over that average, which for small unbalance lies between 0.87 and 1 times
#: VUF, so counting VUF is slightly conservative), and
#: utilities plan their systems to 2 % (``planning_pct``; also the compatibility level of IEC 61000-2-2 for
#: the negative-sequence voltage). The metric names carry these values (``vuf_over_2pct_bus_intervals``,
#: ``vuf_over_3pct_bus_intervals``): change them together.
VOLTAGE_UNBALANCE_PCT = {"planning_pct": 2.0, "limit_pct": 3.0}
#: When a run "fails" a planning limit (phase 6 counts, phase 7 flags: ``results_io.planning_failures``,
#: scenario discovery, plots, report). One row per criterion: its thresholds, the phase 6 metrics it reads
#: and the reason. Phase 6 counts the thermal ones at these thresholds (changing one means solving phase 6
#: again); the undervoltage duration is applied by phase 7 to the longest run phase 6 records (changing it
#: needs phase 7 only). A run fails the union ``fails`` when it fails any criterion.
FAILURE_CRITERIA = {
    # IEEE C57.91 (loading guide for mineral-oil-immersed transformers): loading above nameplate is allowed
    # for as long as the top-oil and hot-spot temperatures stay within limits, and those follow the load
    # with the oil's thermal time constant, about 2-3 h for distribution transformers. A planner therefore
    # compares the load averaged over a window of that order with the nameplate (normal life expectancy
    # loading): 2-h moving average above 100 %. A short peak well above nameplate is also a failure
    # whatever the average: instantaneous (one 15-min interval) above the emergency limit, 150 % by default
    # (assumption: a typical utility short-time emergency rating of distribution transformers, below the
    # guide's 180 C short-time hot-spot limit at normal ambient and preload).
    "transformer_overload": {
        "window_h": 2.0,
        "threshold_pct": 100.0,        # of nameplate kVA, on the window's moving average
        "emergency_pct": 150.0,        # of nameplate kVA, any single 15-min interval
        "metrics": ("transformer_ma_overload_intervals", "transformer_emergency_intervals"),
        "standard": "IEEE C57.91 (transformer loading guide)",
    },
    # NormAmps is the conductor's normal (continuous) rating; overhead conductors heat with time constants of
    # minutes to tens of minutes (IEEE 738) and cables more slowly, so a current averaged over 1 h above the
    # normal rating is a sustained overload, while a shorter excursion stays within the emergency rating
    # (EmergAmps). Lines without a rating of their own (OpenDSS's default 400 A) are left out (phase 6).
    "line_overload": {
        "window_h": 1.0,
        "threshold_pct": 100.0,        # of NormAmps, on the window's moving average
        "metrics": ("line_ma_overload_intervals",),
        "standard": "NormAmps (continuous rating), 1-h average (conductor heating: IEEE 738)",
    },
    # ANSI C84.1: supply systems are designed so that most service voltages are within Range A
    # (ANSI_RANGE_A) and voltages outside it are infrequent (in Range B, corrected within a reasonable
    # time); the standard sets no duration. One 15-min interval is the resolution of the load profiles (a
    # customer's peak interval moves by an interval between equally plausible profiles), so a single
    # interval below Range A is within the model's noise; two consecutive intervals (30 min) are a
    # sustained condition a planner acts on (assumption: 2; 1 gives the earlier "any interval" rule).
    # A customer is below Range A in an interval when any of its energised service nodes is; the longest
    # run is counted on the periodic design day, like the thermal moving averages (phase 6).
    "undervoltage": {
        "range_pu": ANSI_RANGE_A,
        "min_consecutive_intervals": 2,
        "metrics": ("ansi_a_under_max_consecutive_intervals",),
        "standard": "ANSI C84.1 Range A (service voltage)",
    },
}
#: moving-average windows [h] and thresholds [% of normal rating] phase 6 counts overloads with (from
#: FAILURE_CRITERIA: one source), the transformer emergency limit, and the instantaneous limit of the
#: overloaded_* counts and worst loadings [% of rating]
THERMAL = {
    "transformer": {key: FAILURE_CRITERIA["transformer_overload"][key]
                    for key in ("window_h", "threshold_pct", "emergency_pct")},
    "line": {key: FAILURE_CRITERIA["line_overload"][key] for key in ("window_h", "threshold_pct")},
    "overload_pct": 100.0,
}
#: circuit filter: a feeder whose design-day peak solve leaves this band is left out
FILTER_VOLTAGE_BAND = (0.80, 1.15)
#: OpenDSS solver limits of every instance and of the circuit filter: the larger of these and the feeder's
#: own ``Set`` values is used. The engine's defaults (15 iterations, 10 control iterations) stop real
#: feeders with many regulators and capacitors (the IEEE 8500-node feeder needs 50 control iterations).
SOLVER = {"maxiterations": 100, "maxcontroliter": 100}
#: a node below this voltage [pu] is de-energised (not served): left out of voltage metrics and,
#: at a customer's service point, a reason for the circuit filter to leave the feeder out
ENERGISED_PU = 0.1
#: per-run time limit [s] of the batch runner
RUN_TIMEOUT_S = 300.0
#: how long phase 6 tries to reach a Dask scheduler (--scheduler) before it gives up [s]
DASK_CONNECT_TIMEOUT_S = 30.0
#: a run whose pool worker died (killed, out of memory) is tried this many more times, then failed
RUN_RETRIES_LOST_WORKER = 1
#: compiled feeders a phase 6 worker keeps (6_instantiate_circuits/feeder_cache.py: a case is applied to its
#: feeder compiled once, not compiled again); the least recently used is dropped first. Each holds one
#: OpenDSS circuit with the candidate devices of its chunk (with every candidate device, 60-70 MB measured for the
#: 1,965-customer sample feeder)
FEEDER_CACHE_SIZE = 4
#: a feeder whose chunk needs more candidate devices than this (EV loads, PV systems and batteries the cached
#: circuit holds, disabled, at the hosts the chunk's cases use) is compiled for every case instead: OpenDSS still
#: spends time on a disabled device at every step, and the more there are the more (with a candidate at every
#: host a case could use, on the 1,965-customer sample feeder, 5,720 candidates, a cached day's engine steps
#: cost 10-17 % more than the compiled instance's; on the benchmark's 3,110-customer, 8,419-node feeder, 9,060
#: candidates, 34-56 % more and a cached run 1.08 of a compiled one; with the chunk's candidates only, the large
#: feeder is cached and both feeders' cached runs are cheaper than compiled ones: the README's figures,
#: benchmarks/bench_power_flow.py --part 1 [--large-feeder])
FEEDER_CACHE_MAX_DEVICES = 7500
#: at most this many runs of one feeder go to a worker together (a chunk), so that a worker solves a
#: feeder's cases one after the other on the feeder it compiled; a feeder's runs are split evenly over the
#: workers up to this size (smaller chunks balance the load, larger ones keep more locality)
FEEDER_CHUNK_MAX_RUNS = 16

# --------------------------------------------------------------------------------------------
# Automated upgrades and their cost (phase 6, 6_instantiate_circuits/upgrade_circuit.py; issue 17)
# --------------------------------------------------------------------------------------------
#: The upgrade step follows NREL DISCO's automated upgrade-cost analysis and its defaults
#: (disco/extensions/upgrade_simulation: upgrade_parameters.toml, fixed_upgrade_parameters.py, thermal and
#: voltage upgrade functions):
#: * a transformer or line whose loading [pu of nameplate kVA / NormAmps] exceeds ``*_upper_limit_pu`` in
#:   any 15-min interval of the run's day is upgraded to ``*_design_pu`` of its highest loading: the
#:   smallest catalogue size (transformers: same phases, voltages, windings and connections; lines: same
#:   phases, voltage and placement) whose rating is at least the highest loading / design pu and at most
#:   ``oversize_limit`` times that; else parallel units of one catalogue size (the fewest that reach it,
#:   at most ``parallel_*_limit`` new ones; beyond that the element stays unsolved, reported). Above
#:   ``extreme_loading_pu`` DISCO sizes for loading x 0.5 more (it avoids iterations); so does this step.
#:   The day is solved again after each round, at most ``thermal_iterations`` rounds (DISCO's 5);
#: * voltage: customers outside ANSI C84.1 Range A (ANSI_RANGE_A) after the thermal upgrades: the settings
#:   of existing voltage-controlled capacitors are swept (ON / OFF [V on 120 V] widened by
#:   ``capacitor_sweep_gap_v`` per step from ``capacitor_on_off_v``), then those of existing regulators and
#:   LTCs (vreg in ``regulator_vreg_step_v`` steps across Range A, each band of ``regulator_bands_v``; all
#:   regulators at once, as DISCO sweeps them), each setting one day solve, the first removing every
#:   violation (else the best) kept; then up to ``max_new_regulators`` new regulators are placed at the
#:   deepest primary line common to the customers still in violation, each with its vreg swept;
#:   what remains is reported;
#: * costs from the unit-cost tables in ``cost_tables_dir`` (None: the workspace copy of NREL DISCO's
#:   generic database, ``Workspace.upgrade_costs_dir``, written by sample/build_sample.py from
#:   ../shared/data/upgrade_costs; a folder of a utility's own tables of the same columns may be named
#:   here or with ``--cost-tables``). A size without an exact row is priced at the nearest row of the
#:   same class and recorded as such (``cost_basis`` in upgrades.json), as DISCO does.
#: Which limits trigger a thermal upgrade (``trigger``): ``planning_criteria`` (default), the study's own
#: thermal planning criteria (FAILURE_CRITERIA: a transformer whose 2-h moving-average loading exceeds 100 %
#: of nameplate or whose loading exceeds the 150 % emergency limit in any interval, IEEE C57.91; a line whose
#: 1-h moving average exceeds 100 % of NormAmps), so that every run phase 7 counts as failing a thermal
#: criterion is upgraded and priced, and an element that passes them (a single 15-min interval at 1.3 pu,
#: well inside its thermal time constant) is not; ``disco``, DISCO's own rule: loading above
#: ``*_upper_limit_pu`` in any interval. Either way an upgraded element is sized to ``*_design_pu`` of its
#: highest loading (DISCO's sizing) and the voltage trigger is DISCO's (any customer node-interval outside
#: Range A, which contains the undervoltage criterion).
#: A line whose line code or geometry names neither overhead nor underground is priced as
#: ``line_placement_default`` (assumption; recorded per line). ``cost_threshold_usd``: the cost above which
#: phase 7 would count a run as "too costly" (assumption: for the lead's sensitivity and PRIM hooks).
UPGRADES = {
    "trigger": "planning_criteria",
    "transformer_upper_limit_pu": 1.25,
    "transformer_design_pu": 0.75,
    "line_upper_limit_pu": 1.25,
    "line_design_pu": 0.75,
    "oversize_limit": 2.0,
    "extreme_loading_pu": 2.25,
    "parallel_transformers_limit": 4,
    "parallel_lines_limit": 4,
    "thermal_iterations": 5,
    "capacitor_on_off_v": (119.5, 120.5),
    "capacitor_sweep_gap_v": 1.0,
    "regulator_bands_v": (1.0, 2.0),
    "regulator_vreg_step_v": 0.5,
    "max_new_regulators": 4,
    "new_regulator_kva": 10000.0,
    "line_placement_default": "overhead",
    "cost_tables_dir": None,
    "cost_threshold_usd": 100000.0,
}
UPGRADE_TRIGGERS = ("planning_criteria", "disco")
