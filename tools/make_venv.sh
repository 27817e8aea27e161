#!/bin/sh
# Make sure VENV is a virtual environment of a Python >= MIN, (re)making it when it is not.
#
# Usage
#     sh tools/make_venv.sh VENV MIN      (make install calls it; PYTHON=... picks the interpreter)
#
# * VENV absent: made with the interpreter tools/find_python.sh finds.
# * VENV a virtual environment whose Python runs and is >= MIN: kept as it is.
# * VENV a virtual environment (it has pyvenv.cfg) whose Python is older than MIN or no longer runs
#   (its base interpreter was removed): one line says so, and it is removed and made again. A
#   virtual environment holds nothing but installed packages, so nothing of yours is lost.
# * VENV something else (a file, a folder without pyvenv.cfg): one line, exit status 2, untouched.
# The packages are installed by the caller (make install: pip install -r requirements.txt).
set -eu

[ $# -eq 2 ] || { echo "usage: make_venv.sh VENV MIN   (e.g. .venv 3.12)" >&2; exit 2; }
VENV=$1
MIN=$2
HERE=$(dirname "$0")

if [ -e "$VENV" ] || [ -L "$VENV" ]; then
    if sh "$HERE/find_python.sh" --check "$VENV/bin/python" "$MIN"; then
        exit 0
    fi
    if [ ! -f "$VENV/pyvenv.cfg" ]; then
        echo "$VENV exists but is not a virtual environment: move it away, or set VENV= to another folder" >&2
        exit 2
    fi
    old=$(sed -n 's/^version\(_info\)\{0,1\} *= *//p' "$VENV/pyvenv.cfg" | head -n 1)
    if "$VENV/bin/python" -c pass >/dev/null 2>&1; then
        echo "$VENV was made by Python ${old:-?}, older than $MIN: removing it to make it again" >&2
    else
        echo "$VENV was made by Python ${old:-?}, which no longer runs: removing it to make it again" >&2
    fi
    rm -rf "$VENV"
fi

base=$(sh "$HERE/find_python.sh" "$MIN") || exit 2
echo "making $VENV with $base ($("$base" -V 2>&1))"
"$base" -m venv "$VENV"
