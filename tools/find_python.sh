#!/bin/sh
# Find a Python interpreter that runs and is at least a given version (the project's baseline).
#
# Usage
#     sh tools/find_python.sh MIN              print the interpreter's path (its sys.executable)
#     sh tools/find_python.sh --check PY MIN   exit 0 when PY runs and is at least MIN, else 1
#
# Candidates, first that runs and reports >= MIN wins:
#     $PYTHON when set (and then only it: a Python you named is never silently swapped for another),
#     python3.13, python3.12, python3 on PATH,
#     pyenv's installed versions, `pyenv root`/versions/3.1[2-9]*/bin/python3 (or $PYENV_ROOT, or
#     ~/.pyenv, when pyenv is not on PATH), oldest first, the baseline before newer ones (pyenv's
#     `python3.12` shim fails with "command not found" unless PYENV_VERSION is set, but the versions
#     folder holds the real interpreters).
# A candidate is tried by running it, so a broken shim or a removed interpreter does not count.
# The path printed is the interpreter's own sys.executable (a shim resolves to the real binary); when
# earlier candidates were passed over, one line on stderr says which and why.
#
# Nothing found: one line on stderr saying what was tried and what to install, exit status 2.
set -u

# "MAJOR MINOR EXECUTABLE" of a candidate, or nothing when it does not run
probe() {
    "$1" -c 'import sys; print(sys.version_info[0], sys.version_info[1], sys.executable)' 2>/dev/null </dev/null
}

# is "MAJOR MINOR" at least MIN (X.Y)?
at_least() {
    min_major=${3%%.*}
    min_minor=${3#*.}
    [ "$1" -gt "$min_major" ] || { [ "$1" -eq "$min_major" ] && [ "$2" -ge "$min_minor" ]; }
}

if [ "${1:-}" = "--check" ]; then
    [ $# -eq 3 ] || { echo "usage: find_python.sh --check PY MIN" >&2; exit 2; }
    MIN=$3
    found=$(probe "$2") || exit 1
    [ -n "$found" ] || exit 1
    set -- $found
    at_least "$1" "$2" "$MIN" 2>/dev/null && exit 0
    exit 1
fi

[ $# -eq 1 ] || { echo "usage: find_python.sh MIN   (e.g. 3.12)" >&2; exit 2; }
MIN=$1
tried=""

# try CANDIDATE: print its executable and exit 0 when it is good, else note why it is not
try() {
    found=$(probe "$1")
    if [ -z "$found" ]; then
        tried="$tried${tried:+, }$1 (does not run)"
        return 1
    fi
    set -- "$1" $found
    if at_least "$2" "$3" "$MIN"; then
        [ -z "$tried" ] || echo "Python $2.$3 at $4 (passed over: $tried)" >&2
        echo "$4"
        exit 0
    fi
    tried="$tried${tried:+, }$1 ($2.$3)"
    return 1
}

if [ -n "${PYTHON:-}" ]; then
    try "$PYTHON"
    echo "PYTHON=$PYTHON is not a Python $MIN or newer that runs ($tried): set PYTHON to one, or unset it to search" >&2
    exit 2
fi

for name in python3.13 python3.12 python3; do
    if command -v "$name" >/dev/null 2>&1; then
        try "$(command -v "$name")" || true
    fi
done

pyenv_root=""
if command -v pyenv >/dev/null 2>&1; then
    pyenv_root=$(pyenv root 2>/dev/null) || pyenv_root=""
fi
[ -n "$pyenv_root" ] || pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}  # pyenv installed but not on PATH
if [ -n "$pyenv_root" ]; then
    for candidate in "$pyenv_root"/versions/3.1[2-9]*/bin/python3; do
        [ -x "$candidate" ] && { try "$candidate" || true; }
    done
fi

echo "no Python $MIN or newer found (tried: ${tried:-nothing on PATH}): install Python $MIN (e.g. pyenv install $MIN, or apt-get install python$MIN) or set PYTHON=/path/to/python$MIN" >&2
exit 2
