"""Synthetic weather for the embedded sample: 15-min outdoor temperature and global irradiance.

Not measured weather. A seasonal cycle, a diurnal cycle and day-to-day "synoptic" anomalies (an
AR(1) process, stronger in winter, which gives cold snaps and heat waves) are combined per state
with climate constants close to the SMART-DS cities' normals (NOAA 1991-2020: Greensboro January
mean ~4 C, July ~26 C; Austin ~11 C / ~30 C; San Francisco ~11 C / ~17 C). The year is 2018 in
standard time; index ``i`` is the 15-min interval that starts at ``i * 15`` minutes after
2018-01-01 00:00.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

YEAR = 2018
N_INTERVALS = 35040
DAYS = 365


@dataclass(frozen=True)
class Climate:
    mean_c: float          # annual mean temperature
    seasonal_amp_c: float  # half the July - January difference
    diurnal_amp_c: float   # half the afternoon - dawn difference
    synoptic_sd_c: float   # day-to-day anomaly standard deviation (winter; summer is 60 %)
    latitude: float
    clearness: tuple[float, float]  # daily clearness index range


CLIMATES = {
    "NC": Climate(mean_c=15.0, seasonal_amp_c=11.0, diurnal_amp_c=6.0, synoptic_sd_c=5.0, latitude=36.07,
                  clearness=(0.30, 0.80)),
    "TX": Climate(mean_c=20.5, seasonal_amp_c=9.5, diurnal_amp_c=6.5, synoptic_sd_c=4.5, latitude=30.27,
                  clearness=(0.35, 0.82)),
    "CA": Climate(mean_c=14.0, seasonal_amp_c=3.5, diurnal_amp_c=4.5, synoptic_sd_c=2.0, latitude=37.77,
                  clearness=(0.35, 0.80)),
}


def time_axes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Day of year (0-based), hour of day at the interval's middle, weekday (0 = Monday)."""
    i = np.arange(N_INTERVALS)
    day = i // 96
    hour = (i % 96) * 0.25 + 0.125
    weekday = (day + 0) % 7  # 2018-01-01 was a Monday
    return day, hour, weekday


def temperature_c(climate: Climate, rng: np.random.Generator) -> np.ndarray:
    """15-min outdoor dry-bulb temperature [C]."""
    day, hour, _ = time_axes()
    t_days = day + hour / 24.0
    seasonal = climate.mean_c - climate.seasonal_amp_c * np.cos(2 * np.pi * (t_days - 20.0) / 365.0)
    diurnal = climate.diurnal_amp_c * np.cos(2 * np.pi * (hour - 15.0) / 24.0)
    # day-to-day anomaly: AR(1), stronger in winter, interpolated smoothly between daily noon values
    winter_weight = 0.5 * (1 + np.cos(2 * np.pi * (np.arange(DAYS + 1) - 20.0) / 365.0))
    sd = climate.synoptic_sd_c * (0.6 + 0.4 * winter_weight)
    anomaly = np.zeros(DAYS + 1)
    phi = 0.75
    for d in range(1, DAYS + 1):
        anomaly[d] = phi * anomaly[d - 1] + np.sqrt(1 - phi**2) * rng.normal() * sd[d]
    synoptic = np.interp(t_days, np.arange(DAYS + 1) + 0.5, anomaly)
    # clear nights are colder: a larger diurnal swing on days with a cold anomaly
    swing = 1.0 + 0.15 * np.clip(-synoptic / max(climate.synoptic_sd_c, 1e-6), -1, 2)
    return seasonal + diurnal * swing + synoptic


def solar_elevation_sin(latitude: float) -> np.ndarray:
    """Sine of the solar elevation at each interval's middle (local solar time)."""
    day, hour, _ = time_axes()
    decl = np.radians(23.44) * np.sin(2 * np.pi * (284 + day + 1) / 365.0)
    lat = np.radians(latitude)
    hour_angle = np.radians(15.0 * (hour - 12.0))
    return np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)


def ghi_w_m2(climate: Climate, rng: np.random.Generator) -> np.ndarray:
    """Global horizontal irradiance [W/m2]: extraterrestrial x clearness of the day."""
    s = np.clip(solar_elevation_sin(climate.latitude), 0, None)
    lo, hi = climate.clearness
    daily = rng.uniform(lo, hi, size=DAYS)
    day, _, _ = time_axes()
    return 1361.0 * s * daily[day]


def build_weather(state: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    climate = CLIMATES[state]
    return {"temp_c": temperature_c(climate, rng), "ghi_w_m2": ghi_w_m2(climate, rng)}
