#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine (as root) to run cesres-ctl from this checkout:
# the few Debian packages the controller needs, then a virtualenv in .venv with the
# project and its development tools. Idempotent; sourced by demo.sh and test.sh.
set -euo pipefail

project_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$project_dir/.venv"

if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: run as root (the sandbox cluster is built with Debian packages): sudo $0" >&2
    exit 1
fi

# The lint tests (tests/test_lint.py) check every piece of shell of the project with shellcheck.
controller_packages=(python3 python3-venv python3-pip python3-apt openssh-client rsync git iproute2 util-linux shellcheck)
missing=()
for package in "${controller_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "bootstrap: creating $venv"
    /usr/bin/python3 -m venv "$venv"
fi
stamp="$venv/.cesres-ctl-installed"
if [ ! -f "$stamp" ] || [ "$project_dir/pyproject.toml" -nt "$stamp" ]; then
    echo "bootstrap: installing cesres-ctl and its development tools into $venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e "${project_dir}[dev]"
    touch "$stamp"
fi
# The bytecode of the package and of the callback plugin Ansible loads on this machine, as pip writes it
# for an installed package: an editable install leaves it to the first run, which never writes it where
# PYTHONDONTWRITEBYTECODE is set, and a quick command that compiles its modules each time spends ~10 ms
# of its ~80 on it. Up-to-date files are skipped. (Ansible compiles a collection's plugins itself, with no
# bytecode cache.)
"$venv/bin/python" -m compileall -q "$project_dir/cesres_ctl" "$project_dir/playbooks/callback_plugins" >/dev/null
export PATH="$venv/bin:$PATH"
