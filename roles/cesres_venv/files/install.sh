# Run as: bash -lc "$(cat common.sh install.sh)" install VENV REQ HASH CACHE PIN RETRY NEXTRA EXTRA... RELEASE MODULE...
# Installs the requirements into an existing venv; marks it ready only when all installed.
# stdout ends with "CESRES_VENV installed"; failures: one line on stderr, exit 4 (lines that
# cannot install), 5 (disk quota), 6 (pip check), 2 (other).
venv=$1 req=$2 hash=$3 cache=$4 pin=$5 retry=$6 nextra=$7
shift 7
extra=("${@:1:nextra}")
shift "$nextra"
load_modules "$@"
stamp=$venv/.cesres-ready
log=$venv/cesres-pip.log
constraints=$venv/cesres-constraints.txt
rm -f "$stamp"
py=$venv/bin/python
pip=("$py" -m pip --disable-pip-version-check --no-input install)
[ -z "$cache" ] || pip+=(--cache-dir "$(expand "$cache")")
pip+=("${extra[@]}")
: >"$constraints"
if [ "$pin" = true ]; then
  # Every distribution that comes from a module (PYTHONPATH entries, EasyBuild roots),
  # pinned at its version: pip may use it but never replace it.
  "$py" - >"$constraints" <<'PY' || die 2 "cannot list the packages of the modules"
import importlib.metadata as md, os, sys
roots = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
roots += [v for k, v in os.environ.items() if k.startswith("EBROOT") and v]
roots = [os.path.realpath(r) for r in roots]
seen = set()
for dist in md.distributions():
    name = (dist.metadata["Name"] or "").strip()
    where = os.path.realpath(str(dist.locate_file("")))
    key = name.lower().replace("_", "-")
    if not name or key in seen or key == "pip" or where.startswith(os.path.realpath(sys.prefix)):
        continue
    if any(where == r or where.startswith(r + os.sep) for r in roots):
        seen.add(key)
        print(f"{name}=={dist.version}")
PY
fi
quota_check() { ! grep -q "Disk quota exceeded" "$log" || die 5 "disk quota exceeded while installing into $venv (see $log on the cluster)"; }
echo "== pip install -r $req" >"$log"
if "${pip[@]}" -c "$constraints" -r "$req" >>"$log" 2>&1; then
  :
else
  quota_check
  [ "$retry" = true ] || die 4 "pip install -r $req failed (see $log on the cluster)"
  failed=()
  n=0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    spec=${line%%#*}
    spec=$(echo "$spec" | xargs)
    [ -n "$spec" ] || continue
    case $spec in -*) continue ;; esac
    echo "== retry line $n: $spec" >>"$log"
    "${pip[@]}" -c "$constraints" "$spec" >>"$log" 2>&1 || failed+=("line $n: $spec")
  done <"$req"
  quota_check
  if [ ${#failed[@]} -gt 0 ]; then
    msg=$(printf '%s; ' "${failed[@]}")
    die 4 "cannot install requirement(s) of $req: ${msg%; } (pip output: $log on the cluster)"
  fi
fi
echo "== pip check" >>"$log"
check=$("$py" -m pip --disable-pip-version-check check 2>&1)
echo "$check" >>"$log"
# Only problems of packages installed in the venv count. Those among the modules' packages
# (a module's own inconsistency) or the OS packages that --system-site-packages exposes
# (e.g. Debian's python3-gi) cannot be fixed from the venv: they are reported, not fatal.
ours=$("$py" - <<'PY'
import importlib.metadata as md, os, sys
roots = [os.path.realpath(sys.prefix)]
for dist in md.distributions():
    where = os.path.realpath(str(dist.locate_file("")))
    if any(where == r or where.startswith(r + os.sep) for r in roots):
        print((dist.metadata["Name"] or "").lower().replace("_", "-"))
PY
)
problems=$(while IFS= read -r line; do
  name=$(cut -d' ' -f1 <<<"$line" | tr '[:upper:]_' '[:lower:]-')
  [ -n "$line" ] && grep -qxF -- "$name" <<<"$ours" && echo "$line"
done <<<"$check")
while IFS= read -r line; do
  [ -z "$line" ] || grep -qxF -- "$line" <<<"$problems" || echo "WARNING pip check, outside the venv: $line"
done <<<"$check"
[ -z "$problems" ] || die 6 "pip check fails in $venv: $(head -1 <<<"$problems") (see $log on the cluster)"
echo "$hash" >"$stamp"
echo "CESRES_VENV installed"
