"""PV output on the design day at the state's site, per unit of the array's DC rating (pvlib).

Clear-sky irradiance (Ineichen, with the configured Linke turbidity) at the site of
``common.config.SITES`` for the 96 intervals of the design day (evaluated at each interval's
middle, standard time), transposed to a fixed array (``PV`` tilt and azimuth, isotropic sky),
cell temperature from the SAPM open-rack model at the season's design ambient temperature, DC
power by PVWatts (temperature coefficient ``gamma_pdc``, system losses) and AC power by the
PVWatts inverter model with its AC rating ``Pmpp * kva_factor``. The result is the PVSystem's
``irradiance`` shape in OpenDSS: with no P-T or efficiency curves, the element's output is
``Pmpp * shape`` [kW], which is exactly the AC power computed here.

Clear sky is the planner's choice for reverse-flow and voltage-rise checks: the day's highest
PV output for its date.

SMART-DS solar scenarios ship their own PV: ``PVSystems.dss`` with ``irradiance=1`` and a
``yearly=`` solar load shape whose file (per unit, one value per 15 min) ``LoadShapes.dss``
names. When the feeder has one and ``PV["use_smartds_solar"]`` is set, :func:`smartds_solar_shape`
cuts the design day from it instead, so the study's PV follows the dataset's own solar profile.

Residential rooftop arrays (``common.config.ROOFTOP_PV``) follow the same shape; :func:`rooftop_pv_kw`
sizes them from the home's annual energy, and :func:`volt_var_commands` writes the IEEE 1547-2018
Category B volt-var control (``common.config.VOLT_VAR``) when ``inverter_control`` is ``volt_var``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pathlib import Path

from common import config, dss

STEPS = config.INTERVALS_PER_DAY


def pv_shape_pu(state: str, date: str, season: str) -> np.ndarray:
    """96 values of AC output per kW of DC rating on ``date`` (YYYY-MM-DD) at the state's site."""
    import pvlib

    site = config.SITES[state]
    pv = config.PV
    starts = pd.date_range(date, periods=STEPS, freq="15min", tz=site["tz"])
    middles = starts + pd.Timedelta(minutes=7.5)
    location = pvlib.location.Location(site["latitude"], site["longitude"], tz=site["tz"],
                                       altitude=site["altitude_m"])
    solar = location.get_solarposition(middles)
    clear = location.get_clearsky(middles, model="ineichen", solar_position=solar,
                                  linke_turbidity=pv["linke_turbidity"])
    poa = pvlib.irradiance.get_total_irradiance(pv["tilt_deg"], pv["azimuth_deg"], solar["apparent_zenith"],
                                                solar["azimuth"], clear["dni"], clear["ghi"], clear["dhi"])
    params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_glass"]
    temp_cell = pvlib.temperature.sapm_cell(poa["poa_global"], pv["ambient_c"][season], 1.0, **params)
    pdc = pvlib.pvsystem.pvwatts_dc(poa["poa_global"], temp_cell, 1.0, pv["gamma_pdc"]) * (1.0 - pv["system_losses"])
    pac = pvlib.inverter.pvwatts(pdc, pv["kva_factor"] / pv["inverter_eff_nom"],  # DC input at the AC rating
                                 eta_inv_nom=pv["inverter_eff_nom"])
    shape = np.clip(np.nan_to_num(np.asarray(pac, dtype=float), nan=0.0), 0.0, None)
    return np.minimum(shape, pv["kva_factor"])


#: the files of a SMART-DS feeder that may define its solar shapes, searched in this order
SHAPE_FILES = ("PVShapes.dss", "LoadShapes.dss")


def smartds_solar_shape(feeder_dir: Path, day_of_year: int) -> tuple[np.ndarray, str] | None:
    """The design day (96 values) of the solar shape of a SMART-DS feeder's first PVSystem, and the
    shape's name; None when the feeder ships no PV (``PVSystems.dss`` absent or empty)."""
    pv_file = Path(feeder_dir) / "PVSystems.dss"
    if not pv_file.is_file():
        return None
    systems = dss.read_dss_objects(pv_file, ("pvsystem",))
    named = [o.get("yearly") or o.get("daily") for o in systems if o.get("yearly") or o.get("daily")]
    if not named:
        return None
    shape = sorted(named)[0]
    shapes = {}
    for name in SHAPE_FILES:  # SMART-DS keeps solar shapes in PVShapes.dss; older copies in LoadShapes.dss
        if (Path(feeder_dir) / name).is_file():
            for o in dss.read_dss_objects(Path(feeder_dir) / name, ("loadshape",)):
                shapes.setdefault(o.name.lower(), (o, name))
    if shape.lower() not in shapes:
        raise ValueError(f"{pv_file}: solar shape {shape!r} is in none of {', '.join(SHAPE_FILES)}")
    obj, where = shapes[shape.lower()]
    ref = dss.file_reference(obj.get("mult"))
    if ref is None:
        raise ValueError(f"{feeder_dir}/{where}: solar shape {shape!r} has no mult=(file=...)")
    path = Path(ref.replace("\\", "/"))
    path = path if path.is_absolute() else (Path(feeder_dir) / path).resolve()
    values = np.loadtxt(path, delimiter=",", usecols=0, ndmin=1)
    if len(values) < (day_of_year + 1) * STEPS:
        raise ValueError(f"{path}: {len(values)} values do not reach day {day_of_year} of the year")
    return np.clip(values[day_of_year * STEPS:(day_of_year + 1) * STEPS], 0.0, None), shape


# ------------------------------------------------------------------------------------------- rooftop PV
def rooftop_pv_kw(annual_kwh: np.ndarray, state: str, rooftop: dict = config.ROOFTOP_PV) -> np.ndarray:
    """Rooftop array [kW DC] of homes whose annual energy is ``annual_kwh`` [kWh/yr]: the array that
    produces ``offset_ratio`` of it at the state's specific yield [kWh/kWp/yr], capped at ``max_kw``. NaN
    (annual energy unknown) stays NaN: no size is made up."""
    annual_kwh = np.asarray(annual_kwh, dtype=float)
    yield_kwh_per_kw = float(rooftop["specific_yield_kwh_per_kwp"][state])
    return np.minimum(rooftop["offset_ratio"] * annual_kwh / yield_kwh_per_kw, rooftop["max_kw"])


#: name of the IEEE 1547-2018 Category B volt-var curve in an instance
VOLT_VAR_CURVE = "vv_ieee1547_cat_b"


def volt_var_commands(arrays: list[tuple[str, str, int, float]], curve: dict = config.VOLT_VAR) -> list[str]:
    """OpenDSS lines of the volt-var control of rooftop arrays ``(element, bus1, phases, kV)``: the
    XYcurve (voltage [pu] -> reactive power [pu of the inverter kVA], + injection) and one InvControl per
    array (``RefReactivePower=VARMAX``: the curve's values are per unit of the kvar limit, the inverter's
    kVA). An array across two nodes with one phase (240 V across the legs of a split-phase service)
    monitors that voltage (``monBus`` with its own base: the InvControl would otherwise see each conductor's
    voltage to ground, 120 V, as 0.5 pu)."""
    if not arrays:
        return []
    lines = [f"New XYcurve.{VOLT_VAR_CURVE} npts={len(curve['v_pu'])} "
             f"Xarray=[{' '.join(f'{v:g}' for v in curve['v_pu'])}] Yarray=[{' '.join(f'{q:g}' for q in curve['q_pu'])}]"]
    for element, bus1, phases, kv in arrays:
        nodes = [n for n in bus1.split(".")[1:] if n]
        monitor = (f" monBus=[{bus1}] MonBusesVbase=[{kv * 1000:g}]" if phases == 1 and len(nodes) == 2 else "")
        lines.append(f"New InvControl.vv_{element.split('.', 1)[1]} DERList=[{element}] mode=VOLTVAR "
                     f"vvc_curve1={VOLT_VAR_CURVE} voltage_curvex_ref=rated RefReactivePower=VARMAX{monitor}")
    return lines
