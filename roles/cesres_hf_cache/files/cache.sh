# Run as: bash -lc "$(cat cache.sh)" cache HF_HOME PYTHON LOADER ENDPOINT RELEASE NMODULES MODULE... ID REVISION ...
# (HF_HOME and PYTHON absolute, expanded by the role).
# Caches each model with the venv's own loaders (LOADER: the source of cache_models.py), proves
# that it loads offline, then records it. One line on stderr naming a failure.
set -u
export HF_HOME=$1
py=$2 loader=$3 endpoint=$4 release=$5 n=$6
shift 6
mods=("${@:1:n}")
shift "$n"
if [ -n "$release" ]; then
  module purge >/dev/null 2>&1
  module load "$release" >/dev/null 2>&1 && { [ ${#mods[@]} -eq 0 ] || module load "${mods[@]}" >/dev/null 2>&1; } \
    || { echo "cannot load the modules ${mods[*]}" >&2; exit 2; }
fi
[ -x "$py" ] || { echo "no Python at $py: run the virtualenv's role (cesres_venv) first" >&2; exit 2; }
mkdir -p "$HF_HOME" || { echo "cannot create HF_HOME $HF_HOME" >&2; exit 2; }
# Online: a site mirror or the sandbox's imitation of the hub when ENDPOINT is set.
if [ -n "$endpoint" ]; then export HF_ENDPOINT=$endpoint; fi
err=$("$py" -c "$loader" load "$@" 2>&1 >/dev/null) \
  || { echo "cannot cache model $(tail -1 <<<"$err")" >&2; exit 3; }
# Offline, as on a compute node.
unset HF_ENDPOINT
err=$(TRANSFORMERS_OFFLINE=1 HF_HUB_OFFLINE=1 "$py" -c "$loader" load "$@" 2>&1 >/dev/null) \
  || { echo "model cached but not loadable offline: $(tail -1 <<<"$err")" >&2; exit 3; }
"$py" -c "$loader" record "$HF_HOME" "$@" || { echo "cannot record the models in $HF_HOME" >&2; exit 2; }
while [ $# -ge 2 ]; do echo "CACHED $1"; shift 2; done
