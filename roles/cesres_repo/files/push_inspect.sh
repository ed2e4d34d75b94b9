# Run as: bash -lc "$(cat lib.sh push_inspect.sh)" push-inspect DEST (absolute, expanded by the role)
# Prints "DEST <absolute path>", then one line per finding:
#   MANIFEST            a manifest of the last push exists
#   MODIFIED <file>     changed (or deleted) on the cluster since the last push
#   FOREIGN             DEST is not empty and was not deployed by cesres-ctl
#   GITDIRTY <file>     DEST is a git checkout with modified tracked files
set -u
dest=$1
echo "DEST $dest"
[ -d "$dest" ] || exit 0
cd "$dest" || exit 2
if [ -f .cesres-push.sha256 ]; then
  echo MANIFEST
  sha256sum -c --quiet .cesres-push.sha256 2>/dev/null | sed -n 's/: FAILED.*$//p' | sed 's/^/MODIFIED /'
elif [ -d .git ]; then
  git status --porcelain --untracked-files=no 2>/dev/null | awk '{print "GITDIRTY " $2}'
elif [ -n "$(ls -A . 2>/dev/null)" ]; then
  echo FOREIGN
fi
exit 0
