"""Run every step of the pipeline in order, each as a subprocess: what ``make run`` calls.

Description
    Walks the step table (``common/steps.py``): the embedded sample, phase 0, then for each state
    phases 1c, 1b, 1c again, 2-5 and phase 6 for every season and design, then phase 7. Each step
    runs as ``<this Python> <repository>/<script> <flags>`` in the current folder (so relative
    ``--data-dir`` and ``--source`` mean the same to every step), with a heading before each stage
    as ``make run`` has always printed. The run stops at the first step that fails: one line
    on stderr names the step, its state/season/design and its exit status, and that status is the
    run's (2 for a problem the step reported as the user's to fix). Steps already done are cheap to
    run again: every phase skips or redoes work by its own rules.

Inputs and Outputs
    those of the steps (README's phase table); this script writes nothing itself.

Settings read
    common.config: STATES, SEASONS, DESIGNS (choices and defaults of --states, --seasons, --designs)

Usage
    python run_pipeline.py --data-dir data --states NC --seasons winter --designs lhs --n-cases 4 --replicates 2 \\
        --workers 2 --source data/sample/oedi
    python run_pipeline.py --data-dir data --layout cross --scenarios 8 ...   scenarios x named policies
    python run_pipeline.py --days 3 ...       each run on its feeder's 3 highest peak days, reporting the worst
    python run_pipeline.py --data-dir data --upgrades ...   phase 6 also upgrades and prices failing runs
    python run_pipeline.py --dry-run ...      print the commands, run nothing
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
from typing import Sequence

from common import cli, config, doe
from common.paths import REPO_ROOT
from common.steps import plan

logger = logging.getLogger(__name__)


def build_parser() -> cli.Parser:
    parser = cli.build_parser(__doc__.splitlines()[0], prog="run_pipeline.py")
    parser.add_argument("--states", nargs="+", choices=config.STATES, default=list(config.STATES),
                        metavar="STATE", help=f"states, in this order (default: {' '.join(config.STATES)})")
    parser.add_argument("--seasons", nargs="+", choices=config.SEASONS, default=list(config.SEASONS),
                        metavar="SEASON", help=f"seasons of phase 6 (default: {' '.join(config.SEASONS)})")
    parser.add_argument("--designs", nargs="+", choices=config.DESIGNS, default=list(config.DESIGNS),
                        metavar="DESIGN", help=f"designs of phase 6 (default: {' '.join(config.DESIGNS)})")
    parser.add_argument("--n-cases", type=cli.positive_int, default=None,
                        help="cases per design of phase 0 (default: the script's, common.config.N_CASES)")
    parser.add_argument("--replicates", type=cli.positive_int, default=None,
                        help="placement replicates per design point of phase 0 (default: the script's, "
                             "common.config.PLACEMENT_REPLICATES)")
    parser.add_argument("--layout", choices=doe.LAYOUTS, default=None,
                        help="phase 0's experiment layout: joint (X and L sampled together, --n-cases) or cross "
                             "(--scenarios x policies; default: the script's, common.config.LAYOUT)")
    parser.add_argument("--scenarios", type=cli.positive_int, default=None,
                        help="cross layout: scenarios per design (default: the script's, common.config.CROSS_SCENARIOS)")
    parser.add_argument("--policies", type=cli.positive_int, default=None,
                        help="cross layout: sampled policies (default: the named ones of common.config.POLICIES)")
    parser.add_argument("--days", type=cli.positive_int, default=None,
                        help="design days per feeder and season (phase 2's find_max_day_curve.py and phase 6): the K "
                             "highest distinct peak days, each run reporting its worst (default: theirs, "
                             "common.config.DESIGN_DAYS)")
    parser.add_argument("--workers", type=cli.positive_int, default=None,
                        help="worker processes of phase 6 and the sensitivity analysis (default: theirs)")
    parser.add_argument("--source", default=None,
                        help="where phase 1c downloads from: a folder mirroring the bucket, or a URL "
                             "(default: the scripts' own, the OEDI bucket)")
    parser.add_argument("--smartds-root", default=None,
                        help="a SMART-DS tree on disk for phase 1b's copy_circuits.py (default: <data>/smartds)")
    parser.add_argument("--eulp-root", default=None,
                        help="an EULP tree on disk for phases 1b, 2, 4 and 5 (default: <data>/1c_eulp_downloads)")
    parser.add_argument("--upgrades", action="store_true",
                        help="phase 6 also upgrades and prices every run that violates a planning limit "
                             "(6_instantiate_circuits/upgrade_circuit.py, common.config.UPGRADES; off by default, "
                             "make study turns it on)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and run none")
    cli.add_standard(parser)
    return parser


def _status(returncode: int) -> int:
    """A step's exit status as the run's: a step killed by signal N gives 128 + N, as a shell does."""
    return returncode if returncode >= 0 else 128 - returncode


@cli.entry
def main(argv: Sequence[str] | None = None) -> int:
    args, ws = cli.start(build_parser(), argv)
    commands = plan(ws.root, states=args.states, seasons=args.seasons, designs=args.designs,
                    n_cases=args.n_cases, replicates=args.replicates, layout=args.layout, scenarios=args.scenarios,
                    policies=args.policies, days=args.days, workers=args.workers, source=args.source,
                    smartds_root=args.smartds_root, eulp_root=args.eulp_root, upgrades=args.upgrades,
                    quiet=args.quiet)
    heading = None
    for number, command in enumerate(commands, start=1):
        line = [sys.executable, str(REPO_ROOT / command.step.script), *command.argv]
        shown = shlex.join([command.step.script, *command.argv])
        if command.heading != heading:
            heading = command.heading
            print(f"== {heading}", flush=True)
        if args.dry_run:
            print(shown, flush=True)
            continue
        logger.debug("step %d/%d: %s", number, len(commands), shlex.join(line))
        try:
            returncode = subprocess.run(line).returncode  # in the caller's folder: relative flags hold
        except KeyboardInterrupt:
            sys.stderr.write(f"run_pipeline.py: interrupted during step {number}/{len(commands)} "
                             f"{command.step.name}{' (' + command.where + ')' if command.where else ''}\n")
            return 130
        if returncode != 0:
            where = f" for {command.where}" if command.where else ""
            sys.stderr.write(f"run_pipeline.py: error: step {number}/{len(commands)} {command.step.name}{where} "
                             f"failed with exit status {_status(returncode)}; later steps not run "
                             f"(its own message is above; rerun it with: python {shown})\n")
            return _status(returncode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
