# Probe the cluster before staging a run: check the code, the venv and the models, read the code
# version and checksum the data files already on the cluster. Runs in a login shell (module).
# Arguments: ROOT VENV HF_HOME MODULES_RELEASE GIT_MODULE ENTRY_POINT CLUSTER MODELS [GIVEN PATH ...]
# (paths absolute, expanded by the role with the login shell's environment; MODELS: the model ids
# separated by spaces; GIVEN PATH: each cluster data file as configured and as expanded).
# Prints one line: CESRES_RESULT {json}
set -u
root=$1
venv=$2
hf_home=$3
release=$4
git_module=$5
entry=$6
cluster=$7
read -ra models <<<"$8"
shift 8

errors=()
version=""
if [ ! -d "$root" ]; then
    errors+=("the CESReS code is not on the cluster at $root (run cesres-ctl setup first)")
elif [ ! -f "$root/$entry" ]; then
    errors+=("$root has no $entry: is it a CESReS checkout?")
else
    if ! git version >/dev/null 2>&1 && [ -n "$git_module" ] && command -v module >/dev/null 2>&1; then
        if [ -n "$release" ]; then module load "$release" >/dev/null 2>&1; fi
        module load "$git_module" >/dev/null 2>&1
    fi
    if git version >/dev/null 2>&1 && head=$(git -C "$root" rev-parse HEAD 2>/dev/null); then
        version=$head
        # Modified tracked files make another code version (untracked runs/ does not).
        if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
            version="$version+dirty.$(git -C "$root" diff HEAD 2>/dev/null | sha256sum | cut -c1-12)"
        fi
    else
        # Not a git checkout (pushed with rsync): the file list with sizes and times.
        version="tree.$(cd "$root" && find . -path ./runs -prune -o -path ./.git -prune -o -type f \
            -printf '%P %s %T@\n' 2>/dev/null | LC_ALL=C sort | sha256sum | cut -c1-40)"
    fi
fi
if [ ! -f "$venv/bin/activate" ]; then
    errors+=("no virtualenv at $venv (run cesres-ctl setup first)")
elif [ ! -s "$venv/.cesres-ready" ]; then
    # setup writes the stamp only after pip, pip check and the import check passed.
    errors+=("the virtualenv $venv is not ready (its installation failed or is still running): run cesres-ctl setup")
fi
# Models: what roles/cesres_hf_cache cached and proved loadable offline.
for model in "${models[@]}"; do
    if ! awk -v m="$model" '$1 == m { found = 1 } END { exit !found }' "$hf_home/cesres-models.list" 2>/dev/null; then
        errors+=("model $model, named by the config, is not in the cluster's model cache ($hf_home): cache it with cesres-ctl setup --cluster $cluster -e '{\"cesres_hf_models\": [{\"id\": \"$model\"}]}'")
    fi
done

inputs=""
while [ $# -ge 2 ]; do
    given=$1 path=$2
    shift 2
    sum=""
    if [ -f "$path" ] && [ -r "$path" ]; then
        sum=$(sha256sum -- "$path" | cut -d' ' -f1)
    else
        errors+=("data file cluster:$given not found on the cluster ($path)")
    fi
    inputs+="${inputs:+,}{\"given\":$(cesres_json_str "$given"),\"path\":$(cesres_json_str "$path"),\"sha256\":\"$sum\"}"
done

errs=""
for e in "${errors[@]}"; do errs+="${errs:+,}$(cesres_json_str "$e")"; done
printf 'CESRES_RESULT {"home":%s,"root":%s,"venv":%s,"hf_home":%s,"code_version":%s,"inputs":[%s],"errors":[%s]}\n' \
    "$(cesres_json_str "$HOME")" "$(cesres_json_str "$root")" "$(cesres_json_str "$venv")" \
    "$(cesres_json_str "$hf_home")" "$(cesres_json_str "$version")" "$inputs" "$errs"
