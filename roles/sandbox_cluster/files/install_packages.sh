#!/usr/bin/env bash
# Install a module's Python packages, exact versions and no dependencies (EasyBuild lists each one), as
# EasyBuild lays them out: into TARGET (a prefix's site-packages, on the module's PYTHONPATH), or into
# the interpreter's own site-packages when TARGET is "-". Offline from the wheel cache WHEELS first;
# only what it lacks is fetched (a wheel from the index, or built from the sdist when there is none),
# so a second build of the sandbox, or of another sandbox on this machine, downloads nothing.
# Writes STAMP when done (the role's `creates`). The distributions named in $BUILD_FROM_SOURCE (comma-
# separated) are built from their sdists as EasyBuild builds them: with the module's own setuptools, no
# isolated build environment (protobuf 3.19's setup.py needs pkg_resources, which today's setuptools lacks).
#   install_packages.sh PYTHON WHEELS TARGET STAMP REQUIREMENT...
set -euo pipefail
python=$1 wheels=$2 target=$3 stamp=$4
shift 4
mkdir -p "$wheels"
pip=("$python" -m pip --disable-pip-version-check --no-input)
where=()
[ "$target" = - ] || where=(--target "$target" --upgrade)

offline() {
    "${pip[@]}" install --quiet --no-deps --no-index --find-links "$wheels" "${where[@]}" "$@"
}

# Resolution fails before anything is installed when the cache lacks a file: then fill it and retry.
if ! offline "$@" 2>/dev/null; then
    # --use-pep517: an sdist is built in an isolated environment with its own build requirements.
    "${pip[@]}" wheel --quiet --no-deps --use-pep517 --wheel-dir "$wheels" --find-links "$wheels" \
        ${BUILD_FROM_SOURCE:+--no-binary "$BUILD_FROM_SOURCE" --no-build-isolation} "$@"
    offline "$@"
fi
printf '%s\n' "$@" >"$stamp"
