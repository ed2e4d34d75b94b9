set -u
expand() {  # ~ and $NAME / ${NAME} of the login shell, without eval
  local p=$1
  case $p in "~") p=$HOME ;; "~/"*) p=$HOME/${p#"~/"} ;; esac
  while [[ $p =~ \$\{?([A-Za-z_][A-Za-z0-9_]*)\}? ]]; do
    p=${p/"${BASH_REMATCH[0]}"/${!BASH_REMATCH[1]-}}
  done
  printf '%s' "$p"
}
die() { echo "$2" >&2; exit "$1"; }
# load_modules RELEASE MODULE...: the configured environment, or one line naming what failed.
load_modules() {
  type module >/dev/null 2>&1 || die 2 "the module command is not defined in a login shell"
  module purge >/dev/null 2>&1
  module load "$1" >/dev/null 2>&1 || die 2 "cannot load module $1"
  shift
  [ $# -eq 0 ] || module load "$@" >/dev/null 2>&1 || die 2 "cannot load the modules: $*"
}
