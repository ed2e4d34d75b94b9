# Shared by the role's remote scripts (prepended to each before it runs in bash -lc).
die() { echo "$2" >&2; exit "$1"; }
