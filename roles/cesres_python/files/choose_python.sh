# Shared by roles/cesres_python (mode "install", or "plan" in check mode) and cesres-ctl doctor (mode "check"):
#   bash -lc "$(cat choose_python.sh)" choose-python MODE RELEASE MODULE WRAPPER
# Loads RELEASE and MODULE (Lmod), checks that their python3 is >= 3.8 (ansible-core 2.19's minimum),
# and prints "CESRES_PYTHON <ok|changed|checked> <path> <version> <system python3 version>". With
# "install" it writes WRAPPER ($HOME-relative): that interpreter with the module's environment
# (PATH, LD_LIBRARY_PATH, PYTHONPATH as the module sets them), replaced only when it differs.
# With "plan" it writes nothing under $HOME: an up-to-date WRAPPER is "ok"; otherwise the wrapper that
# "install" would write goes to a temporary file ${TMPDIR:-/tmp}/cesres-python-check.XXXXXX, printed
# as "changed" with that path, for the play to run its checks with and then remove.
# Failures: one line on stderr, exit 2.
set -u
mode=$1 release=$2 module=$3 wrapper=$HOME/$4
system=$(command -v python3 >/dev/null 2>&1 && python3 -V 2>&1 | awk '{print $2}')
type module >/dev/null 2>&1 || { echo "Lmod's module command is not defined in a login shell" >&2; exit 2; }
module purge >/dev/null 2>&1
module load "$release" >/dev/null 2>&1 || { echo "cannot load module $release" >&2; exit 2; }
if [ -n "$module" ]; then
  module load "$module" >/dev/null 2>&1 || { echo "cannot load module $module" >&2; exit 2; }
fi
py=$(command -v python3) || { echo "no python3 with ${module:-the release} loaded" >&2; exit 2; }
version=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3]); sys.exit(sys.version_info < (3, 8))' 2>/dev/null) \
  || { echo "$py (module ${module:-none}) is ${version:-not runnable}: Ansible needs Python >= 3.8" >&2; exit 2; }
if [ "$mode" = check ]; then
  echo "CESRES_PYTHON checked $py $version ${system:-none}"
  exit 0
fi
write_wrapper() {  # FILE: the wrapper's content
  {
    echo '#!/bin/bash'
    echo "# Written by cesres-ctl (roles/cesres_python): Ansible's Python on this cluster, python3 of"
    echo "# the module ${module:-(none)} of $release, with the environment that module sets."
    printf 'export PATH=%q LD_LIBRARY_PATH=%q PYTHONPATH=%q\n' "$PATH" "${LD_LIBRARY_PATH-}" "${PYTHONPATH-}"
    printf 'exec %q "$@"\n' "$py"
  } >"$1" && chmod 0755 "$1"
}
if [ "$mode" = plan ]; then
  new=$(mktemp "${TMPDIR:-/tmp}/cesres-python-check.XXXXXX") || { echo "cannot create a temporary file" >&2; exit 2; }
  write_wrapper "$new" || { rm -f "$new"; echo "cannot write $new" >&2; exit 2; }
  if cmp -s "$new" "$wrapper"; then
    rm -f "$new"
    echo "CESRES_PYTHON ok $wrapper $version ${system:-none}"
  else
    echo "CESRES_PYTHON changed $new $version ${system:-none}"
  fi
  exit 0
fi
mkdir -p "$(dirname "$wrapper")" || { echo "cannot create $(dirname "$wrapper")" >&2; exit 2; }
new=$(mktemp "$wrapper.XXXXXX") || { echo "cannot write next to $wrapper" >&2; exit 2; }
write_wrapper "$new" || { rm -f "$new"; echo "cannot write $wrapper" >&2; exit 2; }
if cmp -s "$new" "$wrapper"; then
  rm -f "$new"
  state=ok
else
  mv -f "$new" "$wrapper" || { rm -f "$new"; echo "cannot write $wrapper" >&2; exit 2; }
  state=changed
fi
echo "CESRES_PYTHON $state $wrapper $version ${system:-none}"
