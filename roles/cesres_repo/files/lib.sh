# Shared by the role's remote scripts (prepended to each before it runs in bash -lc).
expand() {  # ~ and $NAME / ${NAME} of the login shell, without eval
  local p=$1
  case $p in "~") p=$HOME ;; "~/"*) p=$HOME/${p#"~/"} ;; esac
  while [[ $p =~ \$\{?([A-Za-z_][A-Za-z0-9_]*)\}? ]]; do
    p=${p/"${BASH_REMATCH[0]}"/${!BASH_REMATCH[1]-}}
  done
  printf '%s' "$p"
}
die() { echo "$2" >&2; exit "$1"; }
