# shellcheck shell=bash
# The play's one login shell (roles/cesres_python's raw step; its entry point check, for cesres-ctl doctor, runs it
# in mode "check"):
#   bash -lc "$(cat probe.sh)" cesres-probe MODE RELEASE MODULE WRAPPER CHECK_RELEASE NCHECK NAME... [NSET MOD...]...
# A login shell is needed for Lmod's "module" and nothing else: everything that needs one is read here,
# once, and printed by bash as ONE JSON object (the last line of stdout; the login shell's own messages may
# come before it), each environment as ENV, base64 of `env -0`, which the filter cesres.ctl.cesres_probe_report
# decodes on the controller (no Python runs here but the chosen one's -V):
#   {"state": "ok|changed|checked", "interpreter": PATH, "version": "3.10.4", "system": "3.6.8", "module": MODULE,
#    "login_env": ENV, "checked_release": CHECK_RELEASE, "checked": [NAME...], "missing": [NAME...],
#    "module_envs": {"MOD MOD...": ENV}, "module_errors": {"MOD MOD...": MESSAGE}}
# or, when no Python can be chosen, {"failed": true, "msg": ONE LINE, "checked_release", "checked", "missing"}.
# - the Python: RELEASE and MODULE loaded, their python3 must be >= $min_python, the cluster-side code's minimum
#   (cesres_ctl.rules.CLUSTER_PYTHON; ansible-core 2.19 itself needs 3.8).
#   MODE "install" writes WRAPPER ($HOME-relative): that interpreter with the module's environment (PATH,
#   LD_LIBRARY_PATH, PYTHONPATH as the module sets them), replaced only when it differs. MODE "plan" (check
#   mode) writes nothing under $HOME: an up-to-date WRAPPER is "ok"; otherwise the wrapper that "install"
#   would write goes to a temporary file ${TMPDIR:-/tmp}/cesres-python-check.XXXXXX, "changed" with that path,
#   for the play to run its checks with and then remove. MODE "check" writes nothing ("checked").
# - login_env: the login shell's environment, before any module command.
# - missing: those of the NCHECK NAMEs that Lmod does not have in CHECK_RELEASE (empty: no check).
# - module_envs: for each group of NSET modules, the environment after "module purge" and loading them in
#   order (the first is the release), for the play's modules to run git, pip and python with, without a
#   login shell; a group that does not load is in module_errors instead. The groups load side by side,
#   each in a subshell of its own started once RELEASE is loaded, while the Python is chosen (every Lmod
#   command takes a while; the environment each captures is the same as one after another).
# The play's one probe, the state of what the later roles provision, is read next by the module cesres_probe
# with the interpreter chosen here and the environments read here.
set -u
# The oldest Python that the modules of cesres-ctl run on (cesres_ctl.rules.CLUSTER_PYTHON; a test keeps them equal).
min_python=3.10
mode=$1 release=$2 module=$3 wrapper=$HOME/$4 check_release=$5 ncheck=$6
shift 6
checks=("${@:1:ncheck}")
shift "$ncheck"
login=$(env -0 | base64 -w0)
system=$(command -v python3 >/dev/null 2>&1 && python3 -V 2>&1 | awk '{print $2}')

json_string() {  # TEXT: as a JSON string
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/\\t}
  s=${s//$'\r'/}
  s=${s//$'\n'/\\n}
  printf '"%s"' "${s//[[:cntrl:]]/}"  # any other control character: not valid in a JSON string
}
json_list() {  # WORD...: a JSON list of strings
  local out="" word
  for word in "$@"; do out+="${out:+, }$(json_string "$word")"; done
  printf '[%s]' "$out"
}
missing_json() {  # the JSON list of the modules that the module check found missing (the "missing" lines)
  local missing=() line
  for line in "${lines[@]+"${lines[@]}"}"; do
    [ "${line%%	*}" != missing ] || missing+=("${line#*	}")
  done
  json_list "${missing[@]+"${missing[@]}"}"
}
fail() {  # MESSAGE: the one JSON line of a failure, with what the module check found (cesres-ctl doctor)
  printf '{"failed": true, "msg": %s, "checked_release": %s, "checked": %s, "missing": %s}\n' "$(json_string "$1")" \
    "$(json_string "$check_release")" "$(json_list "${checks[@]+"${checks[@]}"}")" "$(missing_json)"
  exit 2
}

# Lines for the report: "missing NAME", "env KEY BASE64", "error KEY MESSAGE" (tab-separated).
lines=()
type module >/dev/null 2>&1 || { checks=(); fail "Lmod's module command is not defined in a login shell"; }

# What is loaded since the last "module purge", in order. load_group MOD...: the environment of "module
# purge; module load FIRST; module load REST...", keeping what is loaded when it is the group's beginning
# (every Lmod command takes a while); on failure, why in $load_error.
loaded=()
load_group() {
  local group=("$@") i=0 name prefix=true
  for name in "${loaded[@]+"${loaded[@]}"}"; do
    if [ "$i" -lt "$#" ] && [ "$name" = "${group[i]}" ]; then
      i=$((i + 1))
    else
      prefix=false
      break
    fi
  done
  if [ "$prefix" = false ] || [ "$i" -eq 0 ]; then
    module purge >/dev/null 2>&1
    loaded=()
    module load "${group[0]}" >/dev/null 2>&1 || { load_error="cannot load module ${group[0]}"; return 1; }
    loaded=("${group[0]}")
    i=1
  fi
  if [ "$i" -lt "$#" ]; then
    if ! module load "${group[@]:i}" >/dev/null 2>&1; then
      loaded=()
      load_error="cannot load the modules: ${group[*]:1}"
      return 1
    fi
    loaded=("${group[@]}")
  fi
}

if [ -n "$check_release" ] && [ "$ncheck" -gt 0 ]; then
  if load_group "$check_release"; then
    # One question for all of them, then one a name only if one is missing.
    if ! module is-avail "${checks[@]}" >/dev/null 2>&1; then
      for name in "${checks[@]}"; do
        module is-avail "$name" >/dev/null 2>&1 || lines+=("missing	$name")
      done
    fi
  else
    lines+=("missing	$check_release")
  fi
fi

load_group "$release" || fail "cannot load module $release"

# The module groups: each one's environment, for the play's modules, read by a subshell of its own that
# starts here (from RELEASE loaded: its own "module" commands, as load_group would run them one group after
# another) and prints its line for the report ("env" or "error"); collected in order before the report.
capture_group() {  # MOD...
  if load_group "$@"; then
    printf 'env\t%s\t%s' "$*" "$(env -0 | base64 -w0)"
  else
    printf 'error\t%s\t%s' "$*" "$load_error"
  fi
}
group_fds=()
while [ $# -gt 0 ]; do
  n=$1
  shift
  group=("${@:1:n}")
  shift "$n"
  if [ "$n" -gt 0 ]; then
    exec {fd}< <(capture_group "${group[@]}")
    group_fds+=("$fd")
  fi
done
if [ -n "$module" ]; then
  load_group "$release" "$module" || fail "cannot load module $module"
fi
py=$(command -v python3) || fail "no python3 with ${module:-the release} loaded"
# Its version as it states it ("Python 3.10.4"), compared here: nothing runs on it but this.
version=$("$py" -V 2>&1) && version=${version#Python } || version=
IFS=. read -r major minor _ <<<"$version"
if ! [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] \
  || [ "$major" -lt "${min_python%.*}" ] || { [ "$major" -eq "${min_python%.*}" ] && [ "$minor" -lt "${min_python#*.}" ]; }; then
  fail "$py (module ${module:-none}) is ${version:-not runnable}: cesres-ctl's modules need Python >= $min_python"
fi
# The Python's own environment, for the wrapper and the report below (other modules get loaded meanwhile).
py_path=$PATH py_ld=${LD_LIBRARY_PATH-} py_pythonpath=${PYTHONPATH-}

write_wrapper() {  # FILE: the wrapper's content
  {
    echo '#!/bin/bash'
    echo "# Written by cesres-ctl (roles/cesres_python): Ansible's Python on this cluster, python3 of"
    echo "# the module ${module:-(none)} of $release, with the environment that module sets."
    printf 'export PATH=%q LD_LIBRARY_PATH=%q PYTHONPATH=%q\n' "$py_path" "$py_ld" "$py_pythonpath"
    # shellcheck disable=SC2016  # "$@" is the wrapper's own, literally
    printf 'exec %q "$@"\n' "$py"
  } >"$1" && chmod 0755 "$1"
}
if [ "$mode" = check ]; then
  state=checked interpreter=$py
elif [ "$mode" = plan ]; then
  new=$(mktemp "${TMPDIR:-/tmp}/cesres-python-check.XXXXXX") || fail "cannot create a temporary file"
  write_wrapper "$new" || { rm -f "$new"; fail "cannot write $new"; }
  if cmp -s "$new" "$wrapper"; then
    rm -f "$new"
    state=ok interpreter=$wrapper
  else
    state=changed interpreter=$new
  fi
else
  mkdir -p "$(dirname "$wrapper")" || fail "cannot create $(dirname "$wrapper")"
  new=$(mktemp "$wrapper.XXXXXX") || fail "cannot write next to $wrapper"
  write_wrapper "$new" || { rm -f "$new"; fail "cannot write $wrapper"; }
  if cmp -s "$new" "$wrapper"; then
    rm -f "$new"
    state=ok
  else
    mv -f "$new" "$wrapper" || { rm -f "$new"; fail "cannot write $wrapper"; }
    state=changed
  fi
  interpreter=$wrapper
fi
# The module groups' lines, in their order (each subshell's whole output: one line, no newline).
for fd in "${group_fds[@]+"${group_fds[@]}"}"; do
  line=
  IFS= read -r -d '' line <&"$fd" || true
  exec {fd}<&-
  lines+=("$line")
done

# The report, one JSON line in bash: the environments as base64 of `env -0` (JSON-safe whatever their
# bytes), which the controller decodes (filter cesres.ctl.cesres_probe_report); no code on the cluster but this.
envs="" errors=""
for line in "${lines[@]+"${lines[@]}"}"; do
  kind=${line%%	*} value=${line#*	}
  case $kind in
    env) envs+="${envs:+, }$(json_string "${value%%	*}"): $(json_string "${value#*	}")" ;;
    error) errors+="${errors:+, }$(json_string "${value%%	*}"): $(json_string "${value#*	}")" ;;
  esac
done
printf '{"state": %s, "interpreter": %s, "version": %s, "system": %s, "module": %s, "login_env": %s, ' \
  "$(json_string "$state")" "$(json_string "$interpreter")" "$(json_string "$version")" \
  "$(json_string "${system:-none}")" "$(json_string "$module")" "$(json_string "$login")"
printf '"checked_release": %s, "checked": %s, "missing": %s, "module_envs": %s, "module_errors": %s}\n' \
  "$(json_string "$check_release")" "$(json_list "${checks[@]+"${checks[@]}"}")" "$(missing_json)" "{$envs}" "{$errors}"
