"""Solve one circuit instance's design day and write its feeder-head series and planning metrics.

Description
    Compiles the instance's ``Master.dss`` with opendssdirect (no change of directory), solves the
    96 x 15-min day one step at a time with a convergence check at every step and whole-array reads
    (node voltages in pu, element powers and loadings), and writes, atomically:

    * ``timeseries.parquet``: the feeder-head series in the earlier workflow's schema
      (``S1..S3 (kVA)``, ``Ang1..Ang3``, ``P1..P3 (kW)``, ``Q1..Q3 (kVAr)``, ``P_3ph (kW)``,
      ``Q_3ph (kVAr)``, ``S_3ph (kVA)``, ``S_sum_3ph (kVA)``) with ``hour`` (interval end) and
      ``interval_start``, plus EV, PV and storage power, the fleet's state of charge, losses,
      the lowest and highest node voltage and the step's convergence;
    * ``summary.json``: the case's inputs, realised counts, and the metrics of
      ``daily_power_flow.py`` (peak, energy, losses, voltage and current unbalance, ANSI Range A/B violations and
      customers affected, worst line and transformer loading and overloads, reverse flow, storage
      peak reduction, EV energy delivered and unserved, non-converged steps), status (``ok`` /
      ``failed`` with the OpenDSS message), runtime and package versions.

    The batch runner of ``instantiate_circuits_and_runs_APPLYFILTER.py --run`` does the same for
    every instance; this script runs one by hand.

Inputs
    an instance folder of instantiate_circuits_and_runs_APPLYFILTER.py (Master.dss,
    scenario_assignments.json, the case's .dss files, and the shared files they point to)

Outputs (in the instance folder)
    timeseries.parquet, summary.json

Settings read
    common.config: ANSI_RANGE_A, ANSI_RANGE_B, THERMAL, RUN_TIMEOUT_S

Usage
    python 6_instantiate_circuits/power_flow_sim_daily_EV_STO_DG_deploy.py --instance DIR [--timeout S]
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Sequence

import circuit_instance
import daily_power_flow
from common import cli, config
from common.io import exclusive_step, read_json
from common.paths import INSTANCE_FILES

logger = logging.getLogger(__name__)


def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.split("\n\n")[0], prog="power_flow_sim_daily_EV_STO_DG_deploy.py")
    parser.add_argument("--instance", required=True, help="instance folder (holds Master.dss and scenario_assignments.json)")
    parser.add_argument("--timeout", type=cli.positive_float, default=config.RUN_TIMEOUT_S,
                        help=f"time limit [s] (default {config.RUN_TIMEOUT_S:g})")
    cli.add_verbosity(parser)
    return parser


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.setup_logging(args)
    folder = Path(args.instance).expanduser().resolve()
    for name in ("master", "assignments"):
        if not (folder / INSTANCE_FILES[name]).is_file():
            raise cli.UserError(f"--instance {folder}: {INSTANCE_FILES[name]} not found (make instances with "
                                "6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py)")
    try:
        read_json(folder / INSTANCE_FILES["assignments"])
    except (ValueError, UnicodeDecodeError) as exc:
        raise cli.UserError(f"{folder / INSTANCE_FILES['assignments']}: not valid JSON ({exc}): instantiate the "
                            "case again") from None
    try:
        n_profiles = circuit_instance.check_instance_profiles(folder)
    except circuit_instance.InstanceError as exc:
        raise cli.UserError(f"{exc} (instance {folder})") from None
    logger.debug("%d daily profiles checked", n_profiles)
    with exclusive_step(folder, "phase 6 run"):
        table, summary, runtime_s = daily_power_flow.simulate(folder, deadline=time.monotonic() + args.timeout)
        summary = daily_power_flow.write_outputs(folder, table, summary)
    m = summary["metrics"]
    if summary["status"] == "ok":
        logger.info("%s case %s: peak %.0f kW at %s, v %.3f-%.3f pu, %d customers outside ANSI Range A, worst "
                    "transformer %.0f %% (%.2f s) -> %s", summary["feeder"], summary["case"], m["peak_kw"],
                    m["peak_time"], m["v_min_pu"], m["v_max_pu"], m["ansi_a_customers_affected"],
                    m["worst_transformer_loading_pct"], runtime_s, folder)
        return 0
    logger.error("%s case %s failed: %s", summary["feeder"], summary["case"], summary["message"])
    return 1


if __name__ == "__main__":
    sys.exit(main())
