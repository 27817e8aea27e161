"""Command-line plumbing shared by every phase script: flags, logging, clear failures.

Bad input ends a script with one line on stderr that names the problem and the flag or file to
change, exit status 2, and no traceback (:class:`UserError`, :func:`run`).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from common import config
from common.paths import Workspace, resolve_data_dir

EXIT_USAGE = 2
EXIT_FAILED = 1


class UserError(Exception):
    """A problem the user can fix: bad flag, missing or malformed input. Exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (and exit 2) instead of the usage block."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


def build_parser(description: str, *, prog: str | None = None) -> Parser:
    return Parser(prog=prog, description=description,
                  formatter_class=argparse.RawDescriptionHelpFormatter)


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None,
                        help=f"workspace folder (default: ${config.DATA_DIR_ENV} or ./data)")


def add_state(parser: argparse.ArgumentParser, *, multiple: bool = False) -> None:
    if multiple:
        parser.add_argument("--state", nargs="+", choices=config.STATES, default=[config.DEFAULT_STATE],
                            metavar="{" + ",".join(config.STATES) + "}",
                            help=f"state(s) to process (default: {config.DEFAULT_STATE})")
    else:
        parser.add_argument("--state", choices=config.STATES, default=config.DEFAULT_STATE,
                            help=f"state (default: {config.DEFAULT_STATE})")


def add_season(parser: argparse.ArgumentParser, *, multiple: bool = False) -> None:
    if multiple:
        parser.add_argument("--season", nargs="+", choices=config.SEASONS, default=list(config.SEASONS),
                            metavar="{" + ",".join(config.SEASONS) + "}",
                            help="season(s) (default: all)")
    else:
        parser.add_argument("--season", choices=config.SEASONS, default=config.DEFAULT_SEASON,
                            help=f"season (default: {config.DEFAULT_SEASON})")


def add_design(parser: argparse.ArgumentParser, *, multiple: bool = False) -> None:
    if multiple:
        parser.add_argument("--design", nargs="+", choices=config.DESIGNS, default=list(config.DESIGNS),
                            metavar="{" + ",".join(config.DESIGNS) + "}",
                            help="design(s) of experiments (default: all)")
    else:
        parser.add_argument("--design", choices=config.DESIGNS, default=config.DEFAULT_DESIGN,
                            help=f"design of experiments (default: {config.DEFAULT_DESIGN})")


def add_standard(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``-v/-q``: the flags every phase script takes."""
    add_data_dir(parser)
    add_verbosity(parser)


def add_eulp_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eulp-root", default=None,
                        help="EULP tree below the EULP prefix (<release>/...); default <data>/1c_eulp_downloads")


def eulp_root(args: argparse.Namespace, ws: Workspace) -> Path:
    return Path(args.eulp_root).expanduser().resolve() if getattr(args, "eulp_root", None) else ws.eulp_root


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")


def setup_logging(args: argparse.Namespace | None = None) -> None:
    level = logging.INFO
    if args is not None and getattr(args, "verbose", False):
        level = logging.DEBUG
    elif args is not None and getattr(args, "quiet", False):
        level = logging.WARNING
    root = logging.getLogger()
    if not any(getattr(h, "_dss_xlrm", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._dss_xlrm = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("matplotlib", "PIL", "urllib3", "distributed", "fsspec", "asyncio"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def workspace(args: argparse.Namespace, *, must_exist: bool = False) -> Workspace:
    """The workspace named by ``--data-dir`` (or its defaults), checked for use."""
    root = resolve_data_dir(getattr(args, "data_dir", None))
    if root.exists() and not root.is_dir():
        raise UserError(f"data folder {root} is a file, not a folder: change --data-dir")
    if must_exist and not root.is_dir():
        raise UserError(f"data folder {root} does not exist: change --data-dir or run the earlier phases")
    if root.is_dir() and not os.access(root, os.R_OK | os.X_OK):
        raise UserError(f"data folder {root} is not readable: change --data-dir or its permissions")
    if root.is_dir() and not os.access(root, os.W_OK):
        raise UserError(f"data folder {root} is not writable: change --data-dir or its permissions")
    return Workspace(root)


def start(parser: argparse.ArgumentParser, argv: Sequence[str] | None, *, must_exist: bool = False
          ) -> tuple[argparse.Namespace, Workspace]:
    """Parse the flags, set up logging and resolve the workspace: the first lines of every main."""
    args = parser.parse_args(argv)
    setup_logging(args)
    return args, workspace(args, must_exist=must_exist)


def record(script_file: str, folder: Path, args: argparse.Namespace, **extra: object) -> Path:
    """Write ``manifest_<script>.json`` beside a script's outputs: its flags (the data folder left
    out, so the record does not depend on where the workspace sits), the settings it used, the
    package versions and the git revision (common.io.write_manifest)."""
    from common.io import write_manifest
    from common.paths import REPO_ROOT

    script = Path(script_file).resolve()
    try:
        name = script.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        name = script.name
    flags = {k: v for k, v in sorted(vars(args).items()) if k not in ("data_dir", "verbose", "quiet")}
    return write_manifest(folder, name, {"flags": flags, **extra}, name=f"manifest_{script.stem}.json")


def require(path: Path, producer: str) -> Path:
    """Fail clearly when an input is missing, naming the script that makes it."""
    if not Path(path).exists():
        raise UserError(f"missing input {path}: run {producer} first")
    return Path(path)


def parse_int_list(text: str, flag: str) -> list[int]:
    """``"1-8,12"`` -> [1, ..., 8, 12]; a malformed list is a UserError naming the flag."""
    values: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                values.update(range(lo, hi + 1))
            else:
                values.add(int(part))
        except ValueError:
            raise UserError(f"{flag} {text!r}: {part!r} is not a number or a range like 1-8") from None
    if not values:
        raise UserError(f"{flag} {text!r} names nothing")
    return sorted(values)


def entry(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Decorate a script's ``main``: a UserError becomes one line on stderr and exit status 2."""

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        try:
            return main(argv)
        except UserError as exc:
            prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "dss-xlrm"
            logging.getLogger(main.__module__).debug("user error", exc_info=True)
            sys.stderr.write(f"{prog}: error: {exc}\n")
            return EXIT_USAGE
        except SystemExit as exc:  # argparse: --help (0) or a bad flag (2, already reported)
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE

    return wrapper
