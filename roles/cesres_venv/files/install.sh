# Run as: bash -lc "$(cat common.sh install.sh)" install VENV REQ HASH CACHE ENTRY POLICY NPROTECT PROTECT... NEXTRA EXTRA... RELEASE MODULE...
# Installs the requirements into an existing venv under the module policy (requirements_policy.py,
# passed as POLICY: the module frameworks are never replaced, a line pinning one at another version is
# reported, not installed), with ONE pip run; then pip check and an import check of the entry point's
# imports with the modules loaded. Marks the venv ready only after all of that, holding a lock that
# keeps a second installer out. stdout: "REPORT <line>" for what to show, "CESRES_VENV installed" last.
# "CESRES_VENV ready" instead when another installer, waited for, made it ready.
# Failures: one line on stderr; exit 4 (pip cannot install the file), 5 (disk quota), 6 (pip check),
# 7 (another installation still running after CESRES_VENV_LOCK_WAIT s), 8 (import check), 2 (other).
venv=$1 req=$2 hash=$3 cache=$4 entry=$5 policy=$6 nprotect=$7
shift 7
protect=("${@:1:nprotect}")
shift "$nprotect"
nextra=$1
shift
extra=("${@:1:nextra}")
shift "$nextra"
load_modules "$@"
stamp=$venv/.cesres-ready
log=$venv/cesres-pip.log
plan_dir=$venv/.cesres-plan
py=$venv/bin/python
# One installer at a time per venv. A second setup (another terminal, or a re-run after the first
# controller was killed while its pip runs on) waits for the first; if that one made the venv ready,
# nothing is installed twice. The stamp is removed before and written after, by the lock holder only.
wait_s=${CESRES_VENV_LOCK_WAIT:-1800}
exec 9>>"$venv/.cesres-install.lock" || die 2 "cannot open the lock file in $venv"
if ! flock -n 9; then
  echo "REPORT waited for another installation into $venv (a setup started elsewhere or interrupted)"
  flock -w "$wait_s" 9 || die 7 "another installation into $venv is still running after ${wait_s} s; try again when it ends"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
    echo "CESRES_VENV ready"
    exit 0
  fi
fi
rm -f "$stamp"
pip=("$py" -m pip --disable-pip-version-check --no-input install)
[ -z "$cache" ] || pip+=(--cache-dir "$cache")
pip+=("${extra[@]}")
mkdir -p "$plan_dir" || die 2 "cannot create $plan_dir"
args=(plan "$req" "$plan_dir")
for name in "${protect[@]}"; do args+=(--protect "$name"); done
planned=$("$py" -c "$policy" "${args[@]}" 2>"$plan_dir/stderr") \
  || die 2 "cannot apply the module policy to $req: $(tail -1 "$plan_dir/stderr")"
"$py" -c 'import json, sys
plan = json.loads(sys.argv[1])
for item in plan["kept_module"]:
    print("REPORT " + item["message"])
for warning in plan["warnings"]:
    print("REPORT " + warning)' "$planned" || die 2 "cannot read the module policy's plan"
echo "== pip install -r $plan_dir/requirements.txt -c $plan_dir/constraints.txt (from $req)" >"$log"
if ! "${pip[@]}" -r "$plan_dir/requirements.txt" -c "$plan_dir/constraints.txt" >>"$log" 2>&1; then
  ! grep -q "Disk quota exceeded" "$log" || die 5 "disk quota exceeded while installing into $venv (see $log on the cluster)"
  why=$("$py" -c "$policy" explain-conflict "$log" --requirements "$req" 2>/dev/null | head -1)
  die 4 "cannot install $req: ${why:-pip failed} (pip output: $log on the cluster)"
fi
echo "== pip check" >>"$log"
check=$("$py" -m pip --disable-pip-version-check check 2>&1)
echo "$check" >>"$log"
# Only problems of packages installed in the venv count. Those among the modules' packages
# (a module's own inconsistency) cannot be fixed from the venv: they are reported, not fatal.
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
  [ -z "$line" ] || grep -qxF -- "$line" <<<"$problems" || echo "REPORT pip check, outside the venv: $line"
done <<<"$check"
[ -z "$problems" ] || die 6 "pip check fails in $venv: $(head -1 <<<"$problems") (see $log on the cluster)"
# The import check: every module that the entry point imports at its top, imported as the job will
# (modules loaded, venv active, from the code's directory, GitPython without a git binary).
if [ -n "$entry" ]; then
  [ -f "$entry" ] || die 8 "import check: the entry point $entry is not on the cluster"
  echo "== import check of $entry" >>"$log"
  failed=$(cd "$(dirname "$entry")" && GIT_PYTHON_REFRESH=quiet "$py" - "$entry" 2>>"$log" <<'PY'
import ast, importlib, sys
tree = ast.parse(open(sys.argv[1], encoding="utf-8").read(), sys.argv[1])
names = []
for node in tree.body:
    if isinstance(node, ast.Import):
        names += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
        names.append(node.module)
    elif isinstance(node, ast.Try):
        for inner in node.body:
            if isinstance(inner, ast.Import):
                names += [alias.name for alias in inner.names]
            elif isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                names.append(inner.module)
sys.path.insert(0, ".")
for name in dict.fromkeys(names):
    try:
        importlib.import_module(name)
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{name} ({detail})")
        break
PY
  ) || die 8 "import check of $entry failed to run (see $log on the cluster)"
  [ -z "$failed" ] || die 8 "import check: $entry cannot import $failed with the modules loaded (see $log on the cluster)"
fi
echo "$hash" >"$stamp"
echo "CESRES_VENV installed"
