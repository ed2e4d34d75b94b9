# Run as: bash -lc "$(cat lib.sh git_sync.sh)" git-sync DEST URL VERSION FORCE RELEASE GIT_MODULE CHECK
# DEST is absolute, expanded by the role (cesres_expand_path).
# Clones or updates DEST at VERSION. Last stdout line: "CESRES_REPO <ok|changed> <commit> <dest>".
# Refusals and errors: one line on stderr, exit 3 (local changes) or 2 (other).
# CHECK=true (check mode) changes nothing, neither DEST nor its .git: it resolves VERSION with
# git ls-remote and says whether the real run would change DEST ("changed", with the commit when
# known, else VERSION), or refuse it. It does not fetch, so commits not on the remote are not looked for.
set -u
dest=$1 url=$2 version=$3 force=$4 release=$5 gitmod=$6 check=${7:-false}
if [ -n "$gitmod" ]; then
  module purge >/dev/null 2>&1
  if [ -n "$release" ]; then module load "$release" >/dev/null 2>&1 || die 2 "cannot load module $release"; fi
  module load "$gitmod" >/dev/null 2>&1 || die 2 "cannot load module $gitmod"
fi
git version >/dev/null 2>&1 || die 2 "no working git on the cluster (set cesres_repo_git_module)"
export GIT_TERMINAL_PROMPT=0

# remote_commit REMOTE: the commit that VERSION names there (empty when it is no branch or tag there).
remote_commit() {
  local refs ref commit=""
  refs=$(git ls-remote "$1" "$version" 2>/dev/null) || die 2 "cannot reach the repository $url from the cluster"
  for ref in "refs/tags/$version^{}" "refs/tags/$version" "refs/heads/$version"; do
    commit=$(awk -v r="$ref" '$2 == r {print $1; exit}' <<<"$refs")
    [ -n "$commit" ] && break
  done
  printf '%s' "$commit"
}

if [ "$check" = true ]; then
  # Not even the index's refresh that git status makes when it can.
  export GIT_OPTIONAL_LOCKS=0
  if [ ! -d "$dest/.git" ]; then
    if [ -e "$dest" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ] && [ "$force" != true ]; then
      die 3 "$dest exists on the cluster and is not a git checkout: move it away or rerun with cesres_repo_force=true"
    fi
    target=$(remote_commit "$url") || exit
    echo "CESRES_REPO changed ${target:-$version} $dest"
    exit 0
  fi
  old=$(git -C "$dest" rev-parse --verify -q HEAD || echo none)
  target=""
  if [[ $version =~ ^[0-9a-f]{40}$ ]] && git -C "$dest" cat-file -e "$version^{commit}" 2>/dev/null; then
    target=$version
  else
    target=$(remote_commit "$url") || exit
  fi
  if [ -n "$target" ] && [ "$target" = "$old" ]; then
    echo "CESRES_REPO ok $target $dest"
    exit 0
  fi
  if [ "$old" != none ] && [ "$force" != true ]; then
    dirty=$(git -C "$dest" status --porcelain --untracked-files=no | awk '{print $2}' | head -20 | tr '\n' ' ')
    [ -z "$dirty" ] || die 3 "local changes in $dest on the cluster would be overwritten: ${dirty% }; commit or stash them, or rerun with cesres_repo_force=true"
  fi
  echo "CESRES_REPO changed ${target:-$version} $dest"
  exit 0
fi

if [ ! -d "$dest/.git" ]; then
  if [ -e "$dest" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
    [ "$force" = true ] || die 3 "$dest exists on the cluster and is not a git checkout: move it away or rerun with cesres_repo_force=true"
    git -C "$dest" init --quiet || die 2 "git init failed in $dest"
    git -C "$dest" remote add origin "$url" 2>/dev/null || git -C "$dest" remote set-url origin "$url"
  else
    mkdir -p "$(dirname "$dest")"
    git clone --quiet --no-checkout "$url" "$dest" 2>&1 >/dev/null | tail -1 >&2
    [ -d "$dest/.git" ] || die 2 "git clone $url failed"
  fi
  old=none
else
  old=$(git -C "$dest" rev-parse --verify -q HEAD || echo none)
fi
cd "$dest" || die 2 "cannot enter $dest"
[ "$(git remote get-url origin 2>/dev/null)" = "$url" ] || git remote set-url origin "$url" 2>/dev/null || git remote add origin "$url"

# The commit to deploy: a full commit id that is already here needs no network.
target=""
if [[ $version =~ ^[0-9a-f]{40}$ ]] && git cat-file -e "$version^{commit}" 2>/dev/null; then
  target=$version
else
  target=$(remote_commit origin) || exit
fi
if [ -n "$target" ] && [ "$target" = "$old" ]; then
  echo "CESRES_REPO ok $target $dest"
  exit 0
fi

# Something will change: refuse to lose local work.
if [ "$old" != none ] && [ "$force" != true ]; then
  dirty=$(git status --porcelain --untracked-files=no | awk '{print $2}' | head -20 | tr '\n' ' ')
  [ -z "$dirty" ] || die 3 "local changes in $dest on the cluster would be overwritten: ${dirty% }; commit or stash them, or rerun with cesres_repo_force=true"
fi
git fetch --quiet --tags origin 2>/dev/null || die 2 "git fetch from $url failed"
if [ -z "$target" ]; then
  target=$(git rev-parse --verify -q "$version^{commit}") || die 2 "version $version not found in $url"
fi
if [ "$old" != none ] && [ "$force" != true ]; then
  unpushed=$(git rev-list -n 5 HEAD --not --remotes --tags | cut -c1-12 | tr '\n' ' ')
  [ -z "$unpushed" ] || die 3 "commits in $dest on the cluster are not on the remote: ${unpushed% }; push them, or rerun with cesres_repo_force=true"
fi
if git show-ref --verify -q "refs/remotes/origin/$version"; then
  git checkout --quiet --force -B "$version" "$target" 2>&1 >/dev/null | tail -1 >&2
  git branch --quiet --set-upstream-to "origin/$version" >/dev/null 2>&1
else
  git checkout --quiet --force --detach "$target" 2>&1 >/dev/null | tail -1 >&2
fi
[ "$(git rev-parse HEAD)" = "$target" ] || die 2 "checkout of $version ($target) failed in $dest"
echo "CESRES_REPO changed $target $dest"
