"""Download ComStock metadata and per-building 15-min time series (commercial) for one state.

Description
    Fetches, from the OEDI bucket or a local folder with the same keys (``--source``), the metadata
    of a ComStock release (baseline and one file per upgrade) and the 15-min time series of the
    chosen commercial buildings for upgrade 0 and every upgrade the heat-pump variants use (or
    ``--upgrades``).
    Every file is streamed to ``<file>.part``, checked (byte count, MD5 against a single-part ETag,
    parquet footer) and renamed into place; a re-run fetches only what is not verified yet. The
    shared logic lives in ``eulp_download.py`` and ``oedi_client.py`` beside this script.

    Buildings: the list of phase 1b by default, or ``--bldg-ids``, ``--sample N`` or
    ``--metadata-only`` (run this first: phase 1b needs the metadata to choose the buildings).

Inputs
    the source (``--source``; default the OEDI bucket over HTTPS)
    <data>/1b_smartds_eulp_match/<STATE>/<STATE>_bldg_ids_com.txt   bldg_id per line (phase 1b; only
        without --bldg-ids, --sample, --metadata-only)

Outputs (under ``<data>/1c_eulp_downloads/``; read by phase 1b and phases 2, 4, 5)
    <release>/metadata/baseline.parquet, <release>/metadata/upgradeNN.parquet
        (ComStock 2024 release 2 and 2025: one file per county and upgrade, listed first, under
        <release>/metadata_and_annual_results/by_state_and_county/full/parquet/state=<XX>/)
    <release>/timeseries_individual_buildings/by_state/upgrade=<u>/state=<XX>/<bldg_id>-<u>.parquet
        timestamp (end of the 15-min interval), out.electricity.<end use>.energy_consumption [kWh]
    <release>/download_<STATE>.json   the run's settings: upgrades, building ids, seed, source,
                                       package versions, git revision
    manifest.csv   key, size [bytes], checksum [MD5 hex], source, time [UTC ISO 8601], status
                   (ok / missing / failed: <reason>), one row per bucket key

    Exit status 0 when every file is verified, 1 when some are missing or failed (listed in the
    manifest and in the final summary line), 2 for bad input or an unreachable source.

Settings read
    common.config: STATES, DEFAULT_STATE, EULP_PREFIX, EULP_RELEASE, EULP_RELEASES, ALLOW_MIXED_WEATHER,
    HEAT_PUMP_VARIANT_RULES, OEDI_SOURCE

Usage
    python 1c_eulp_downloads/download_parquets_commercial.py --state NC --metadata-only
    python 1c_eulp_downloads/download_parquets_commercial.py --state NC            # phase 1b's buildings
    python 1c_eulp_downloads/download_parquets_commercial.py --state NC --sample 5 --source data/sample/oedi
    python 1c_eulp_downloads/download_parquets_commercial.py --bldg-ids 101,102 --upgrades 0,1,8 --workers 16
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

import eulp_download
from common import cli

logger = logging.getLogger(__name__)

#: customer class, as SMART-DS names load shapes (com_kw_<id>_pu)
CUSTOMER_CLASS = "com"


def build_parser() -> cli.Parser:
    return eulp_download.build_parser(CUSTOMER_CLASS, prog="download_parquets_commercial.py",
                                      description=__doc__.split("\n\n")[0])


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    return eulp_download.run(CUSTOMER_CLASS, args, ws)


if __name__ == "__main__":
    sys.exit(main())
