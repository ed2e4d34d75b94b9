# Run as: bash -lc "$(cat common.sh probe.sh)" probe VENV REQUIREMENTS ENTRY CONFIG RELEASE MODULE...
# (paths absolute, expanded by the role: cesres_expand_path).
# Prints: VENV <path>, REQ <path>, ENTRY <path>, HASH <hash of CONFIG + Python version + requirements>,
# STATE <ready|stale|missing|recreate>. Changes nothing.
# With CESRES_VENV_CHECK=true (check mode, where cesres_repo has not deployed anything yet), a requirements
# file that is not there is no error: HASH is "none" and a venv cannot be ready.
venv=$1 req=$2 entry=$3 config=$4
shift 4
load_modules "$@"
py=$(python3 -c 'import sys; print(sys.version.split()[0])') || die 2 "python3 does not run with the modules loaded"
if [ -r "$req" ]; then
  hash=$({ printf 'cesres_venv v1\n%s\npython %s\n' "$config" "$py"; cat "$req"; } | sha256sum | cut -d' ' -f1)
elif [ "${CESRES_VENV_CHECK:-false}" = true ]; then
  hash=none
else
  die 2 "requirements file $req not found on the cluster (is the repository deployed?)"
fi
echo "VENV $venv"
echo "REQ $req"
echo "ENTRY $entry"
echo "HASH $hash"
if [ ! -e "$venv/pyvenv.cfg" ]; then
  state=missing
elif ! grep -Eq "^version(_info)? *= *$py(\\.|$| )" "$venv/pyvenv.cfg" || ! "$venv/bin/python" -c '' 2>/dev/null; then
  state=recreate
elif [ "$(cat "$venv/.cesres-ready" 2>/dev/null)" = "$hash" ]; then
  state=ready
else
  state=stale
fi
echo "STATE $state"
