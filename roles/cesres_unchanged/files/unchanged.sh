# shellcheck shell=bash
# Has anything changed on the cluster since the last setup that succeeded? (roles/cesres_unchanged; the short
# cut of `cesres-ctl setup` runs it too.) No login shell, no module, no Python: it reads its own record.
#   bash -c "$(cat unchanged.sh)" cesres-unchanged check RECORD DIGEST [forget]
#   bash -c "$(cat unchanged.sh)" cesres-unchanged record RECORD DIGEST GIT_PATH GIT_LD URL VERSION PATH...
#   bash -c "$(cat unchanged.sh)" cesres-unchanged forget RECORD
# RECORD is $HOME-relative; DIGEST, that of the play's inputs (the controller's). "record" keeps DIGEST, the
# status of each PATH (inode, size, modification and change times; nothing when it is missing) and, when URL is
# not empty, a digest of what git ls-remote answers for VERSION there (git from PATH=GIT_PATH, with
# LD_LIBRARY_PATH=GIT_LD: the environment of the role cesres_repo's modules). It prints "recorded".
# "check" prints one line: "unchanged SECONDS DIGEST" (when the record was written, in seconds since the epoch) when the
# record holds DIGEST and every status and the remote's answer are as recorded; else "changed: WHY", and with
# "forget" it removes the record first (a setup that runs whole and fails must leave none behind). "forget"
# alone removes it and prints "forgotten".
set -u
mode=$1 record=$HOME/$2
if [ "$mode" = forget ]; then
  rm -f "$record" && echo forgotten
  exit
fi
digest=$3
shift 3

statuses() {  # PATH...: the digest of their status lines (one stat for all; a missing path has no line)
  { [ $# -eq 0 ] || stat -c '%n %i %s %Y %Z' -- "$@" 2>/dev/null; } | sha256sum | cut -d' ' -f1
}
remote() {  # GIT_PATH GIT_LD URL VERSION: the digest of what the remote answers for VERSION ("failed": no answer)
  local answer
  answer=$(PATH=$1 LD_LIBRARY_PATH=$2 GIT_TERMINAL_PROMPT=0 git ls-remote -- "$3" "$4" 2>/dev/null) || answer=failed
  printf '%s' "$answer" | sha256sum | cut -d' ' -f1
}
# A field of the record: base64 of "x" and the text, never empty (read splits the record's lines on blanks).
b64() { printf 'x%s' "$1" | base64 -w0; }
unb64() {
  local text
  text=$(printf '%s' "$1" | base64 -d)
  printf '%s' "${text#x}"
}

if [ "$mode" = record ]; then
  git_path=$1 git_ld=$2 url=$3 version=$4
  shift 4
  mkdir -p "$(dirname "$record")" || exit 1
  new=$(mktemp "$record.XXXXXX") || exit 1
  {
    echo "cesres-unchanged 1"
    echo "digest $digest"
    echo "when $(date +%s)"
    if [ -n "$url" ]; then
      echo "remote $(b64 "$git_path") $(b64 "$git_ld") $(b64 "$url") $(b64 "$version") $(remote "$git_path" "$git_ld" "$url" "$version")"
    fi
    # The paths in one field, separated by NUL (read back by one base64 -d).
    echo "watch $(if [ $# -gt 0 ]; then printf '%s\0' "$@"; fi | base64 -w0)"
    echo "statuses $(statuses "$@")"
  } >"$new" || { rm -f "$new"; exit 1; }
  mv -f "$new" "$record" || { rm -f "$new"; exit 1; }
  echo recorded
  exit 0
fi

forget=${1-}
changed() {  # WHY
  if [ "$forget" = forget ]; then rm -f "$record"; fi
  echo "changed: $1"
  exit 0
}
[ -f "$record" ] || changed "no record of a setup that succeeded"
when="" recorded_digest="" recorded_statuses="" remote_line="" paths=()
while read -r key value; do
  case $key in
    digest) recorded_digest=$value ;;
    when) when=$value ;;
    remote) remote_line=$value ;;
    watch) mapfile -d '' -t paths < <(printf '%s' "$value" | base64 -d) ;;
    statuses) recorded_statuses=$value ;;
  esac
done <"$record"
[ "$recorded_digest" = "$digest" ] || changed "the settings or cesres-ctl changed"
if [ -z "$recorded_statuses" ] || [ "$(statuses "${paths[@]+"${paths[@]}"}")" != "$recorded_statuses" ]; then
  changed "a file that setup provisions changed on the cluster"
fi
if [ -n "$remote_line" ]; then
  read -r git_path git_ld url version answer <<<"$remote_line"
  [ "$(remote "$(unb64 "$git_path")" "$(unb64 "$git_ld")" "$(unb64 "$url")" "$(unb64 "$version")")" = "$answer" ] \
    || changed "the repository's $(unb64 "$version") moved (or did not answer)"
fi
echo "unchanged $when $digest"
