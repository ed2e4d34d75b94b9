# Run as: bash -lc "$(cat check_modules.sh)" check-modules RELEASE MODULE...
# Prints one line per finding; exit 0 unless the check itself could not run.
if ! type module >/dev/null 2>&1; then
  echo "NOLMOD"
  exit 0
fi
module purge >/dev/null 2>&1
if ! module load "$1" >/dev/null 2>&1; then
  echo "MISSING $1"
  exit 0
fi
release=$1
shift
for name in "$@"; do
  module is-avail "$name" >/dev/null 2>&1 || echo "MISSING $name"
done
echo "CHECKED $release"
