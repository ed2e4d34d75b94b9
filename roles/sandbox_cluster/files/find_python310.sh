#!/usr/bin/env bash
# Print the installation prefix of a CPython 3.10 on this machine, for the sandbox's Python module
# (dragon2's Python/3.10.4-GCCcore-11.3.0), which gets a copy of it. Tried in order: $1 (a python
# executable or a prefix), python3.10 on PATH, pyenv's versions, uv's managed Pythons, then
# `uv python install 3.10` where the network allows it. A candidate counts only when it is 3.10 and
# has what CESReS and pip need (ssl, sqlite3, venv, ensurepip, bz2, lzma, ctypes, zlib).
# Prints nothing and exits 1, with one line on stderr, when there is none.
set -uo pipefail

check='import sys, ssl, sqlite3, venv, ensurepip, bz2, lzma, ctypes, zlib
assert sys.version_info[:2] == (3, 10), sys.version
print(sys.base_prefix)'

try() {
    local python=$1 prefix
    [ -x "$python" ] || return 1
    prefix=$("$python" -c "$check" 2>/dev/null) || return 1
    [ -x "$prefix/bin/python3.10" ] || return 1
    printf '%s\n' "$prefix"
    exit 0
}

if [ -n "${1:-}" ]; then
    try "$1"
    try "$1/bin/python3.10"
    echo "sandbox_cluster_python_source $1 is not a CPython 3.10 with ssl, sqlite3, venv, bz2, lzma and ctypes" >&2
    exit 1
fi

if command -v python3.10 >/dev/null 2>&1; then
    try "$(command -v python3.10)"
fi

for root in "${PYENV_ROOT:-}" "$HOME/.pyenv" "$(pyenv root 2>/dev/null)"; do
    [ -n "$root" ] || continue
    for python in $(printf '%s\n' "$root"/versions/3.10.*/bin/python3.10 | sort -rV); do
        try "$python"
    done
done

if command -v uv >/dev/null 2>&1; then
    found=$(uv python find --no-python-downloads 3.10 2>/dev/null) && try "$found"
    # Downloads a relocatable CPython build (from GitHub): only where the network allows it.
    if timeout 300 uv python install --quiet 3.10 >/dev/null 2>&1; then
        found=$(uv python find --no-python-downloads 3.10 2>/dev/null) && try "$found"
    fi
fi

echo "no CPython 3.10 on this machine for the sandbox's Python module: install one (pyenv install 3.10, or uv python install 3.10) or set sandbox_cluster_python_source" >&2
exit 1
