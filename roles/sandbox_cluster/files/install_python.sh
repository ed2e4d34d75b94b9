#!/usr/bin/env bash
# Install a copy of the CPython 3.10 at SOURCE (an installation prefix) as the Python module's prefix,
# relocated there as if it had been built for it (EasyBuild builds each Python in its own prefix): the
# files that name SOURCE (sysconfig's data, which compilers of C extensions read, python3.10-config,
# pkg-config files, the scripts' #! lines) name PREFIX instead. The cluster user cannot read SOURCE
# (pyenv's under /root, say). Its own site-packages starts empty: the module's packages go there. A
# PREFIX copied from another SOURCE is replaced whole. Writes STAMP when done (the role's `creates`).
#   install_python.sh SOURCE PREFIX STAMP
set -euo pipefail
source=${1%/} prefix=${2%/} stamp=$3
site=lib/python3.10/site-packages

rm -rf "$prefix"
mkdir -p "$prefix/$site"
rsync --archive --exclude="/$site/" --exclude=/lib/python3.10/test/ -- "$source/" "$prefix/"

mapfile -t named < <(grep -rlIF --exclude-dir=site-packages -- "$source" "$prefix/bin" "$prefix/lib" || true)
for file in "${named[@]}"; do
    [ -L "$file" ] && continue
    sed -i "s|$source|$prefix|g" "$file"
    case "$file" in
        *.py) rm -f "$(dirname "$file")/__pycache__/$(basename "$file" .py)".*.pyc ;;
    esac
done
# The relocated modules compiled again, as the cluster user cannot write their bytecode.
LD_LIBRARY_PATH="$prefix/lib" "$prefix/bin/python3.10" -m compileall -q "$prefix/lib/python3.10" >/dev/null || true
printf '%s\n' "$source" >"$stamp"
