# Run as: bash -c "$(cat probe.sh)" probe HF_HOME ID REVISION [ID REVISION ...]
# HF_HOME is absolute (expanded by the role). Prints "MISSING <id>" for each model that cache.sh has
# not recorded at that revision in HF_HOME/cesres-models.list (cached and proven offline).
set -u
h=$1
shift
while [ $# -ge 2 ]; do
  grep -qxF -- "$1 $2" "$h/cesres-models.list" 2>/dev/null || echo "MISSING $1"
  shift 2
done
