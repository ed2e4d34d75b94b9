# Run as: bash -lc "$(cat probe.sh)" probe HF_HOME ID REVISION [ID REVISION ...]
# Prints "HOME <absolute HF_HOME>", then "MISSING <id>" for each model not in the cache.
set -u
h=$1
case $h in "~") h=$HOME ;; "~/"*) h=$HOME/${h#"~/"} ;; esac
while [[ $h =~ \$\{?([A-Za-z_][A-Za-z0-9_]*)\}? ]]; do h=${h/"${BASH_REMATCH[0]}"/${!BASH_REMATCH[1]-}}; done
echo "HOME $h"
shift
while [ $# -ge 2 ]; do
  dir=$h/hub/models--${1//\//--}
  commit=$(cat "$dir/refs/$2" 2>/dev/null)
  [ -n "$commit" ] && [ -d "$dir/snapshots/$commit" ] || echo "MISSING $1"
  shift 2
done
