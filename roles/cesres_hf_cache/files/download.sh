# Run as: bash -lc "$(cat download.sh)" download HF_HOME PYTHON RELEASE NMODULES MODULE... ID REVISION ...
# Downloads each model into HF_HOME with huggingface_hub; one line on stderr naming a failure.
set -u
export HF_HOME=$1
py=$2 release=$3 n=$4
shift 4
mods=("${@:1:n}")
shift "$n"
case $py in "~/"*) py=$HOME/${py#"~/"} ;; esac
if [ -n "$release" ]; then
  module purge >/dev/null 2>&1
  module load "$release" >/dev/null 2>&1 && { [ ${#mods[@]} -eq 0 ] || module load "${mods[@]}" >/dev/null 2>&1; } \
    || { echo "cannot load the modules ${mods[*]}" >&2; exit 2; }
fi
"$py" -c 'import huggingface_hub' 2>/dev/null \
  || { echo "huggingface_hub is not importable with $py: add it to the requirements, or give the model a local_path" >&2; exit 2; }
while [ $# -ge 2 ]; do
  "$py" -c 'import sys; from huggingface_hub import snapshot_download; snapshot_download(sys.argv[1], revision=sys.argv[2])' "$1" "$2" \
    >/dev/null 2>"$HF_HOME/cesres-download.err" \
    || { echo "cannot download model $1 (revision $2): $(tail -1 "$HF_HOME/cesres-download.err")" >&2; exit 3; }
  echo "DOWNLOADED $1"
  shift 2
done
