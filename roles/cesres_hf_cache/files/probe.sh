# Run as: bash -lc "$(cat probe.sh)" probe HF_HOME ID REVISION [ID REVISION ...]
# Prints "HOME <absolute HF_HOME>", then "MISSING <id>" for each model that cache.sh has not
# recorded at that revision in HF_HOME/cesres-models.list (cached and proven offline).
set -u
h=$1
case $h in "~") h=$HOME ;; "~/"*) h=$HOME/${h#"~/"} ;; esac
while [[ $h =~ \$\{?([A-Za-z_][A-Za-z0-9_]*)\}? ]]; do h=${h/"${BASH_REMATCH[0]}"/${!BASH_REMATCH[1]-}}; done
echo "HOME $h"
shift
while [ $# -ge 2 ]; do
  grep -qxF -- "$1 $2" "$h/cesres-models.list" 2>/dev/null || echo "MISSING $1"
  shift 2
done
