"""Command-line plumbing shared by every phase script: flags, logging, clear failures.

Bad input ends a script with one line on stderr that names the problem and the flag or file to
change, exit status 2, and no traceback (:class:`UserError`, :func:`run`).
"""

from __future__ import annotations

import argparse
import errno
import functools
import logging
import math
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


# ------------------------------------------------------------------------------------------- argparse types
def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need an integer of at least 1")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (seeds, counts that may be zero)."""
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: need an integer of at least 0")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (time limits, sizes)."""
    value = float(_number(text, float))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: need a positive number")
    return value


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (back-off delays, tolerances that may be zero)."""
    value = float(_number(text, float))
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: need a number of at least 0")
    return value


def share(text: str) -> float:
    """argparse type: a finite fraction in [0, 1]."""
    value = float(_number(text, float))
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: need a fraction between 0 and 1")
    return value


#: errors of the file system that the user fixes (space, permissions, a file where a folder goes)
_USER_OS_ERRORS = {errno.ENOSPC: "no space left on the device: free space or use another --data-dir",
                   errno.EDQUOT: "disk quota exceeded: free space or use another --data-dir",
                   errno.EROFS: "read-only file system: use another --data-dir",
                   errno.EACCES: "permission denied: change the folder's permissions or use another --data-dir",
                   errno.EPERM: "operation not permitted: change the folder's permissions or use another --data-dir",
                   errno.ENOTDIR: "a file stands where a folder is needed: move it or use another --data-dir",
                   errno.EEXIST: "a file stands where a folder is needed: move it or use another --data-dir",
                   errno.EISDIR: "a folder stands where a file is needed: move it or use another --data-dir"}


def os_error_line(exc: OSError) -> str | None:
    """One line for a file-system error the user can fix, or None for any other."""
    fix = _USER_OS_ERRORS.get(exc.errno)
    if fix is None:
        return None
    where = exc.filename if exc.filename is not None else ""
    return f"cannot write {where}: {fix}" if where else f"{exc.strerror or exc}: {fix}"


def entry(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Decorate a script's ``main``: a UserError, an unusable input file (``common.io.InputError``),
    a held step lock, or a file-system error the user fixes (disk full, read-only, permissions, a
    file where a folder goes) becomes one line on stderr and exit status 2."""
    from common.io import InputError, LockHeld

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "dss-xlrm"
        try:
            return main(argv)
        except (UserError, InputError, LockHeld) as exc:
            logging.getLogger(main.__module__).debug("user error", exc_info=True)
            sys.stderr.write(f"{prog}: error: {exc}\n")
            return EXIT_USAGE
        except OSError as exc:
            line = os_error_line(exc)
            if line is None:
                raise
            logging.getLogger(main.__module__).debug("file-system error", exc_info=True)
            sys.stderr.write(f"{prog}: error: {line}\n")
            return EXIT_USAGE
        except SystemExit as exc:  # argparse: --help (0) or a bad flag (2, already reported)
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE

    return wrapper
