set -u
die() { echo "$2" >&2; exit "$1"; }
# load_modules RELEASE MODULE...: the configured environment, or one line naming what failed.
load_modules() {
  type module >/dev/null 2>&1 || die 2 "the module command is not defined in a login shell"
  module purge >/dev/null 2>&1
  module load "$1" >/dev/null 2>&1 || die 2 "cannot load module $1"
  shift
  [ $# -eq 0 ] || module load "$@" >/dev/null 2>&1 || die 2 "cannot load the modules: $*"
}
