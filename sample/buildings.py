"""Synthetic building physics for the embedded sample: residential and commercial end-use loads.

One simple model serves both sides of the sample, so that SMART-DS customer profiles and EULP
buildings come from the same population and can be matched:

* a first-order thermal model (UA, a smoothed outdoor temperature standing in for thermal mass,
  internal and solar gains) with thermostat schedules: heating setback at night and a morning
  recovery, so that heating peaks on cold mornings; cooling on hot afternoons;
* heating equipment (gas or propane furnace, electric resistance, air-source heat pump with
  temperature-dependent capacity and COP and resistance backup) and cooling equipment (central or
  room AC, heat pump), with the heat-pump upgrades of the EULP releases:
  upgrade 1 ENERGY STAR heat pump with electric backup, upgrade 4 the same keeping the existing
  system (fuel) as backup below a switch-over temperature; commercial upgrade 1 heat-pump rooftop
  unit and upgrade 8 heat-pump boiler, both with electric backup;
* occupancy-driven plug loads, lighting, water heating and appliance events with noise.

Every function works on a batch of buildings at once: parameters are arrays of shape (n,), time
series (n, 35040) in kW averaged over each 15-min interval. The numbers are synthetic and
physically plausible, not calibrated to any real building.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sample.weather import N_INTERVALS, time_axes

END_USES = ("heating", "heating_hp_bkup", "heating_fans_pumps", "cooling", "cooling_fans_pumps",
            "water_systems", "plug_loads", "lighting_interior")
#: reactive power per end use: tan(phi) of its power factor (motors ~0.85, electronics ~0.95)
TAN_PHI = {"heating": 0.62, "heating_hp_bkup": 0.0, "heating_fans_pumps": 0.75, "cooling": 0.62,
           "cooling_fans_pumps": 0.75, "water_systems": 0.0, "plug_loads": 0.33, "lighting_interior": 0.33}
#: heating systems: kind -> (in.heating_fuel, in.hvac_heating_type_and_fuel)
RES_HEATING = {
    "gas_furnace": ("Natural Gas", "Natural Gas Fuel Furnace"),
    "propane_furnace": ("Propane", "Propane Fuel Furnace"),
    "elec_resistance": ("Electricity", "Electricity Electric Furnace"),
    "ashp": ("Electricity", "Electricity ASHP"),
    "none": ("None", "None"),
}
RES_HEATING_MIX = {
    "NC": {"gas_furnace": 0.36, "propane_furnace": 0.05, "elec_resistance": 0.17, "ashp": 0.42},
    "TX": {"gas_furnace": 0.35, "elec_resistance": 0.38, "ashp": 0.25, "none": 0.02},
    "CA": {"gas_furnace": 0.68, "elec_resistance": 0.17, "ashp": 0.08, "none": 0.07},
}
RES_COOLING_MIX = {  # for homes without a heat pump: central AC, room AC, none
    "NC": (0.86, 0.09, 0.05), "TX": (0.92, 0.06, 0.02), "CA": (0.45, 0.20, 0.35),
}
ELECTRIC_WATER_HEATER = {"NC": 0.55, "TX": 0.50, "CA": 0.20}
#: building type (RECS), ACS type, share, median floor area [sqft]
RES_TYPES = (
    ("Single-Family Detached", "Single-Family Detached", 0.63, 1900.0),
    ("Single-Family Attached", "Single-Family Attached", 0.10, 1500.0),
    ("Multi-Family with 2 - 4 Units", "3 or 4 Unit", 0.09, 1050.0),
    ("Multi-Family with 5+ Units", "20 to 49 Unit", 0.13, 850.0),
    ("Mobile Home", "Mobile Home", 0.05, 1100.0),
)
INCOME_BINS = ("0-30%", "30-60%", "60-80%", "80-100%", "100-120%", "120-150%", "150%+")
INCOME_WEIGHTS = (0.12, 0.15, 0.12, 0.14, 0.12, 0.14, 0.21)

#: ComStock-style types: type, median sqft, lighting W/sf, plug W/sf, open hour, close hour,
#: open on weekends, hydronic (boiler) heating
COM_TYPES = (
    ("SmallOffice", 6000.0, 0.75, 0.80, 7, 18, False, False),
    ("MediumOffice", 30000.0, 0.80, 0.90, 7, 19, False, True),
    ("RetailStandalone", 15000.0, 1.10, 0.45, 9, 21, True, False),
    ("Warehouse", 30000.0, 0.45, 0.20, 6, 18, False, False),
    ("QuickServiceRestaurant", 2800.0, 1.00, 5.00, 6, 23, True, False),
)
COM_TYPE_WEIGHTS = (0.32, 0.12, 0.26, 0.15, 0.15)


@dataclass
class ResidentialBatch:
    """Parameters of n homes (arrays of shape (n,) unless noted)."""

    building_type: np.ndarray     # RECS names
    building_type_acs: np.ndarray
    sqft: np.ndarray
    ua_kw_k: np.ndarray           # envelope conductance [kW/K]
    tau_h: np.ndarray             # thermal time constant [h]
    heat_sp_c: np.ndarray
    setback_c: np.ndarray
    cool_sp_c: np.ndarray
    occupants: np.ndarray         # 0 for vacant units
    heating_kind: np.ndarray
    cooling_kind: np.ndarray      # "central", "room", "heat_pump", "none"
    electric_wh: np.ndarray       # bool
    plug_base_kw: np.ndarray
    plug_amp_kw: np.ndarray
    vacant: np.ndarray            # bool
    income: np.ndarray
    seed: np.ndarray              # per-building noise seed

    def __len__(self) -> int:
        return len(self.sqft)


@dataclass
class CommercialBatch:
    building_type: np.ndarray
    sqft: np.ndarray
    lpd_w_sf: np.ndarray
    plug_w_sf: np.ndarray
    open_h: np.ndarray
    close_h: np.ndarray
    weekends: np.ndarray
    hydronic: np.ndarray
    ua_kw_k: np.ndarray
    vent_kw_k: np.ndarray
    seed: np.ndarray

    def __len__(self) -> int:
        return len(self.sqft)


# ------------------------------------------------------------------------------------------- draws
def draw_residential(state: str, n: int, rng: np.random.Generator, vacancy: float = 0.0) -> ResidentialBatch:
    types = rng.choice(len(RES_TYPES), size=n, p=np.array([t[2] for t in RES_TYPES]))
    median = np.array([RES_TYPES[t][3] for t in types])
    sqft = np.round(median * np.exp(rng.normal(0, 0.28, n)), -1).clip(500, 4500)
    envelope = np.exp(rng.normal(0, 0.18, n)) * np.where(types == 4, 1.45, 1.0) * np.where(types >= 2, 0.8, 1.0)
    mix = RES_HEATING_MIX[state]
    kinds = np.array(sorted(mix))
    heating = rng.choice(kinds, size=n, p=np.array([mix[k] for k in kinds]))
    central, room, _ = RES_COOLING_MIX[state]
    cooling = rng.choice(np.array(["central", "room", "none"]), size=n, p=[central, room, 1 - central - room])
    cooling = np.where(heating == "ashp", "heat_pump", cooling)
    vacant = rng.random(n) < vacancy
    occupants = np.where(vacant, 0, rng.integers(1, 6, n))
    return ResidentialBatch(
        building_type=np.array([RES_TYPES[t][0] for t in types]),
        building_type_acs=np.array([RES_TYPES[t][1] for t in types]),
        sqft=sqft,
        ua_kw_k=sqft * 1.6e-4 * envelope,
        tau_h=rng.uniform(14, 30, n),
        heat_sp_c=np.where(vacant, 13.0, rng.uniform(19.5, 22.0, n)),
        setback_c=np.where(rng.random(n) < 0.55, rng.uniform(1.0, 3.5, n), 0.0),
        cool_sp_c=np.where(vacant, 29.0, rng.uniform(23.0, 26.0, n)),
        occupants=occupants,
        heating_kind=heating,
        cooling_kind=cooling,
        electric_wh=rng.random(n) < ELECTRIC_WATER_HEATER[state],
        plug_base_kw=np.where(vacant, 0.05, 0.12 + sqft * 6e-5 * rng.uniform(0.7, 1.3, n)),
        plug_amp_kw=np.where(vacant, 0.0, 0.25 + 0.15 * occupants * rng.uniform(0.6, 1.4, n)),
        vacant=vacant,
        income=rng.choice(np.array(INCOME_BINS), size=n, p=np.array(INCOME_WEIGHTS)),
        seed=rng.integers(0, 2**31 - 1, n),
    )


def draw_commercial(n: int, rng: np.random.Generator) -> CommercialBatch:
    types = rng.choice(len(COM_TYPES), size=n, p=np.array(COM_TYPE_WEIGHTS))
    spec = [COM_TYPES[t] for t in types]
    sqft = np.round(np.array([s[1] for s in spec]) * np.exp(rng.normal(0, 0.3, n)), -2).clip(1500, 60000)
    return CommercialBatch(
        building_type=np.array([s[0] for s in spec]),
        sqft=sqft,
        lpd_w_sf=np.array([s[2] for s in spec]) * rng.uniform(0.8, 1.2, n),
        plug_w_sf=np.array([s[3] for s in spec]) * rng.uniform(0.8, 1.2, n),
        open_h=np.array([s[4] for s in spec], dtype=float),
        close_h=np.array([s[5] for s in spec], dtype=float),
        weekends=np.array([s[6] for s in spec]),
        hydronic=np.array([s[7] for s in spec]),
        ua_kw_k=sqft * 9e-5 * np.exp(rng.normal(0, 0.15, n)),
        vent_kw_k=sqft * 7e-5 * np.exp(rng.normal(0, 0.15, n)),
        seed=rng.integers(0, 2**31 - 1, n),
    )


# ------------------------------------------------------------------------------------------- helpers
def smooth(x: np.ndarray, tau_h: float) -> np.ndarray:
    """First-order lag of a (T,) series with time constant ``tau_h`` [h] (thermal mass stand-in)."""
    from scipy.signal import lfilter

    alpha = 0.25 / (tau_h + 0.25)
    y, _ = lfilter([alpha], [1.0, -(1.0 - alpha)], x, zi=[(1.0 - alpha) * x[:96].mean()])
    return y


def _hp_capacity_fraction(temp_c: np.ndarray, cold_climate: bool = False) -> np.ndarray:
    """Heat-pump heating capacity relative to its rating at 8.3 C (47 F)."""
    at_minus_8 = 0.80 if cold_climate else 0.60
    return np.clip(at_minus_8 + (1 - at_minus_8) * (temp_c + 8.3) / 16.6, 0.30, 1.15)


def _hp_cop_heating(temp_c: np.ndarray, efficiency: float = 1.0) -> np.ndarray:
    """Heat-pump heating COP: ~3.6 at 8.3 C, ~2.2 at -8.3 C (ENERGY STAR class)."""
    return efficiency * np.clip(2.2 + 1.4 * (temp_c + 8.3) / 16.6, 1.3, 4.3)


def _cop_cooling(temp_c: np.ndarray, cop_at_35: float) -> np.ndarray:
    return np.clip(cop_at_35 + 0.06 * (35.0 - temp_c), 1.8, 6.0)


def _occupancy_res(hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """Residential activity shape in [0, 1]: morning and evening peaks, flatter on weekends."""
    weekend = weekday >= 5
    morning = np.exp(-0.5 * ((hour - np.where(weekend, 9.0, 7.0)) / 1.2) ** 2)
    evening = np.exp(-0.5 * ((hour - 19.5) / 2.2) ** 2)
    midday = np.where(weekend, 0.45, 0.2) * np.exp(-0.5 * ((hour - 13.0) / 3.0) ** 2)
    return np.clip(0.55 * morning + 1.0 * evening + midday, 0, 1)


def _darkness(hour: np.ndarray, day: np.ndarray) -> np.ndarray:
    """1 when it is dark and people are awake (lighting), longer in winter."""
    winter = 0.5 * (1 + np.cos(2 * np.pi * (day - 355) / 365.0))
    sunset = 19.5 - 2.5 * winter
    sunrise = 6.0 + 1.2 * winter
    evening = (hour > sunset - 0.5) & (hour < 23.5)
    morning = (hour > 5.5) & (hour < sunrise + 0.5)
    return (evening | morning).astype(float)


def _events(rng: np.random.Generator, n: int, prob_per_day: float, start_mu: float, start_sd: float,
            duration_h: float, kw: float) -> np.ndarray:
    """Appliance events (cooking, drying): random days, start times and fixed power."""
    days = N_INTERVALS // 96
    out = np.zeros((n, N_INTERVALS))
    for b in range(n):
        on = np.nonzero(rng.random(days) < prob_per_day)[0]
        starts = (on * 96 + np.clip(rng.normal(start_mu, start_sd, len(on)), 0, 23) * 4).astype(int)
        length = int(round(duration_h * 4))
        for s in starts:
            out[b, s:s + length] += kw
    return out


# ------------------------------------------------------------------------------------------- models
def residential_loads(b: ResidentialBatch, weather: dict[str, np.ndarray], upgrade: int) -> dict[str, np.ndarray]:
    """End-use electricity [kW] of n homes for one upgrade (0 baseline, 1 HP electric backup,
    4 HP with existing backup), plus ``natural_gas`` and ``fuel`` [kW thermal input]."""
    temp = weather["temp_c"]
    ghi = weather["ghi_w_m2"]
    day, hour, weekday = time_axes()
    n = len(b)
    col = lambda a: np.asarray(a, dtype=float)[:, None]  # noqa: E731

    t_eff = smooth(temp, 3.0)[None, :]
    occ = _occupancy_res(hour, weekday)[None, :]
    setback_on = ((hour >= 23) | (hour < 5))[None, :]
    heat_sp = col(b.heat_sp_c) - col(b.setback_c) * setback_on
    rng = np.random.default_rng(int(b.seed.sum() % (2**31)))  # the same noise in every upgrade

    # plug loads, lighting and appliance events (identical in every upgrade)
    noise = np.exp(rng.normal(0, 0.18, (n, N_INTERVALS)) - 0.5 * 0.18**2)
    plug = (col(b.plug_base_kw) + col(b.plug_amp_kw) * occ) * noise
    occupied = col(b.occupants > 0)
    plug = plug + occupied * (_events(rng, n, 0.45, 18.0, 0.8, 0.75, 2.4) + _events(rng, n, 0.30, 14.0, 4.0, 1.0, 3.8))
    lighting = occupied * col(b.sqft * 4.5e-4) * _darkness(hour, day)[None, :] * (0.5 + 0.5 * occ)
    # water heating: thermal need follows draws, more in winter (colder inlet water)
    winter = 0.5 * (1 + np.cos(2 * np.pi * (day - 20) / 365.0))[None, :]
    draws = np.exp(-0.5 * ((hour - 7.0) / 1.0) ** 2) + 0.8 * np.exp(-0.5 * ((hour - 19.5) / 1.5) ** 2) + 0.08
    draws = draws / draws.reshape(-1, 96).sum(axis=1).repeat(96) * 4  # sums to 1 kWh/day per unit
    wh_kwh_day = col(b.occupants * 2.6) * (1 + 0.35 * winter) * rng.uniform(0.8, 1.2, (n, 365)).repeat(96, axis=1)
    water_thermal = wh_kwh_day * draws[None, :]
    water = np.where(col(b.electric_wh), water_thermal / 0.93, 0.0)

    # space conditioning demand [kW thermal]
    gains = 0.8 * (plug + lighting) + 0.08 * col(b.occupants) * occ + col(b.sqft) * 1.0e-6 * ghi[None, :]
    q_heat = np.clip(col(b.ua_kw_k) * (heat_sp - t_eff) - gains, 0, None)
    capacitance = col(b.ua_kw_k * b.tau_h)  # [kWh/K]
    recovery_kwh = np.minimum(capacitance * col(b.setback_c) * 0.45, col(b.ua_kw_k * b.setback_c) * 6)
    recovery_window = ((hour >= 5.0) & (hour < 6.5))[None, :]
    q_heat = q_heat + recovery_window * (q_heat > 0) * recovery_kwh / 1.5
    q_cool = np.clip(col(b.ua_kw_k) * (t_eff - col(b.cool_sp_c)) + gains - 0.4, 0, None)
    q_cool = np.where(t_eff > col(b.cool_sp_c) - 4.0, q_cool, 0.0)

    # equipment sizing (rated at 8.3 C): the design cooling load, at least 1.5 tons
    design_cool = col(b.ua_kw_k) * (36.0 - col(b.cool_sp_c)) + 1.5
    hp_rated = np.maximum(design_cool * 1.15, 5.3)

    kind = b.heating_kind[:, None]
    heating = np.zeros((n, N_INTERVALS))
    backup = np.zeros_like(heating)
    fans_h = np.zeros_like(heating)
    gas = np.zeros_like(heating)
    fuel = np.zeros_like(heating)
    fuel_kind = np.isin(kind, ["gas_furnace", "propane_furnace"])
    if upgrade == 0:
        furnace_fan = 0.035 * q_heat
        heating = np.where(kind == "elec_resistance", q_heat, 0.0)
        fans_h = np.where(fuel_kind | (kind == "elec_resistance"), furnace_fan, 0.0)
        hp_out = np.minimum(q_heat, hp_rated * _hp_capacity_fraction(t_eff)) * (kind == "ashp")
        heating = heating + hp_out / _hp_cop_heating(t_eff, 0.85)
        backup = (kind == "ashp") * (q_heat - hp_out)
        fans_h = fans_h + (kind == "ashp") * 0.03 * q_heat
        fuel = np.where(fuel_kind, q_heat / 0.80, 0.0)
        gas = np.where(kind == "gas_furnace", fuel, 0.0)
    else:
        capacity = hp_rated * _hp_capacity_fraction(t_eff)
        if upgrade == 4:
            switchover = -3.0
            hp_on = np.where(fuel_kind, t_eff >= switchover, True)
        else:
            hp_on = np.ones_like(q_heat, dtype=bool)
        hp_out = np.where(hp_on, np.minimum(q_heat, capacity), 0.0)
        rest = q_heat - hp_out
        heating = hp_out / _hp_cop_heating(t_eff, 1.0)
        fans_h = 0.03 * hp_out
        if upgrade == 4:
            backup = np.where(fuel_kind, 0.0, rest)
            fuel = np.where(fuel_kind, rest / 0.80, 0.0)
            fans_h = fans_h + np.where(fuel_kind, 0.035 * rest, 0.0)
            gas = np.where(kind == "gas_furnace", fuel, 0.0)
        else:
            backup = rest

    ckind = b.cooling_kind[:, None]
    if upgrade == 0:
        cooling = np.select(
            [ckind == "central", ckind == "heat_pump", ckind == "room"],
            [q_cool / _cop_cooling(t_eff, 3.2), q_cool / _cop_cooling(t_eff, 3.0),
             np.minimum(q_cool, 3.5) / _cop_cooling(t_eff, 2.6)], 0.0)
    else:
        cooling = q_cool / _cop_cooling(t_eff, 3.8)
    fans_c = 0.05 * cooling
    return {"heating": heating, "heating_hp_bkup": backup, "heating_fans_pumps": fans_h, "cooling": cooling,
            "cooling_fans_pumps": fans_c, "water_systems": water, "plug_loads": plug,
            "lighting_interior": lighting, "natural_gas": gas, "fuel": fuel}


def _open_mask(b: CommercialBatch, hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    weekend = (weekday >= 5)[None, :]
    open_ = (hour[None, :] >= b.open_h[:, None]) & (hour[None, :] < b.close_h[:, None])
    return open_ & (~weekend | b.weekends[:, None])


def commercial_loads(b: CommercialBatch, weather: dict[str, np.ndarray], upgrade: int) -> dict[str, np.ndarray]:
    """End-use electricity [kW] of n commercial buildings for upgrade 0 (gas heat, DX cooling),
    1 (heat-pump RTU, electric backup; not for hydronic buildings) or 8 (heat-pump boiler,
    electric backup; hydronic buildings only). A non-applicable upgrade returns the baseline."""
    temp = weather["temp_c"]
    ghi = weather["ghi_w_m2"]
    day, hour, weekday = time_axes()
    n = len(b)
    col = lambda a: np.asarray(a, dtype=float)[:, None]  # noqa: E731
    rng = np.random.default_rng(int(b.seed.sum() % (2**31)))
    t_eff = smooth(temp, 2.0)[None, :]
    open_ = _open_mask(b, hour, weekday).astype(float)
    # start-up one hour before opening: HVAC morning warm-up / pull-down
    warmup = _open_mask(CommercialBatch(**{**b.__dict__, "open_h": b.open_h - 1.0, "close_h": b.open_h}),
                        hour, weekday).astype(float)
    noise = np.exp(rng.normal(0, 0.08, (n, N_INTERVALS)) - 0.5 * 0.08**2)
    lighting = col(b.sqft * b.lpd_w_sf / 1000) * (0.12 + 0.88 * open_)
    plug = col(b.sqft * b.plug_w_sf / 1000) * (0.30 + 0.70 * open_) * noise
    sp_heat = np.where(open_ + warmup > 0, 21.0, 15.5)
    sp_cool = np.where(open_ + warmup > 0, 23.5, 29.0)
    ua = col(b.ua_kw_k) + col(b.vent_kw_k) * open_
    gains = 0.9 * (lighting + plug) + col(b.sqft) * 6e-7 * ghi[None, :]
    q_heat = np.clip(ua * (sp_heat - t_eff) - gains, 0, None) * (1 + 0.6 * warmup)
    q_cool = np.clip(ua * (t_eff - sp_cool) + gains, 0, None) * (1 + 0.3 * warmup)
    fans = col(b.sqft * 0.45 / 1000) * np.clip(open_ + warmup, 0, 1)
    cooling_base = q_cool / _cop_cooling(t_eff, 3.0)
    hydronic = b.hydronic[:, None]
    applicable = {0: np.ones(n, bool), 1: ~b.hydronic, 8: b.hydronic}[upgrade][:, None]
    design_heat = col(b.ua_kw_k + b.vent_kw_k) * (21.0 + 8.0)
    if upgrade == 1:
        capacity = design_heat * 0.75 * _hp_capacity_fraction(t_eff, cold_climate=True)
        cop = _hp_cop_heating(t_eff, 1.0)
        cool_cop = 3.6
    elif upgrade == 8:
        capacity = design_heat * 0.70 * _hp_capacity_fraction(t_eff)
        cop = _hp_cop_heating(t_eff, 0.80)
        cool_cop = 3.0
    else:
        capacity = np.zeros_like(q_heat)
        cop = np.ones_like(q_heat)
        cool_cop = 3.0
    hp_out = np.minimum(q_heat, capacity)
    heating_up = hp_out / cop
    backup_up = q_heat - hp_out
    heating = np.where(applicable & (upgrade != 0), heating_up, 0.0)
    backup = np.where(applicable & (upgrade != 0), backup_up, 0.0)
    gas = np.where(applicable & (upgrade != 0), 0.0, q_heat / np.where(hydronic, 0.82, 0.80))
    cooling = np.where(applicable & (upgrade != 0), q_cool / _cop_cooling(t_eff, cool_cop), cooling_base)
    pumps = np.where(hydronic, 0.015 * q_heat, 0.0)
    return {"heating": heating, "heating_hp_bkup": backup, "heating_fans_pumps": fans * (q_heat > 0) + pumps,
            "cooling": cooling, "cooling_fans_pumps": fans * (q_heat <= 0),
            "water_systems": col(b.sqft * 0.02 / 1000) * open_, "plug_loads": plug,
            "lighting_interior": lighting, "natural_gas": gas, "fuel": gas}


def total_kw(loads: dict[str, np.ndarray]) -> np.ndarray:
    return sum(loads[k] for k in END_USES)


def reactive_kvar(loads: dict[str, np.ndarray]) -> np.ndarray:
    return sum(loads[k] * TAN_PHI[k] for k in END_USES)
