#!/usr/bin/python
"""Ansible module cesres_prune: free the space of finished runs and unused data on the cluster.

Runs on the cluster with the Python that roles/cesres_python chose; the rules (paths, run layout, job
states) come from the collection's module_utils rules.py (the CLI's cesres_ctl.rules), sent along with it.
"""

import fcntl
import shutil
import time
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cesres.ctl.plugins.module_utils.cluster import (
    RunError,
    first_line,
    login_environment,
    slurm_state,
)
from ansible_collections.cesres.ctl.plugins.module_utils.rules import (
    JOBID_FILE,
    RUNS_DIR,
    TERMINAL_STATES,
    RuleError,
    expand_path,
    is_run_id,
    store_dir,
)

DOCUMENTATION = r"""
module: cesres_prune
short_description: Remove finished CESReS run directories and data no run uses any more
description:
  - Removes the run directories named in O(runs) whose job has ended (never a pending or running one),
    and, with O(without_job), the run directories that never got a job (a staging that failed),
    unless another submission holds their lock or they are younger than O(min_age_minutes).
  - Then removes the entries of the content-addressed data store that no run links to any more.
  - In check mode, reports what it would remove and the space it would free, and removes nothing.
  - Always reports how much space the runs and the store take.
options:
  roots:
    description: The CESReS checkouts whose runs/ directories are looked at (C(~) and variables allowed).
    type: list
    elements: str
    required: true
  runs:
    description:
      - Run directories to remove, each C(<root>/runs/<run id>) of one of O(roots) (absolute or as
        configured). Their results must be safe elsewhere - the caller decides (cesres-ctl removes only
        runs whose results it fetched).
    type: list
    elements: str
    default: []
  without_job:
    description: Also remove the run directories of O(roots) that never got a job.
    type: bool
    default: false
  min_age_minutes:
    description: A run directory without a job, or a store entry, younger than this is left alone.
    type: int
    default: 60
version_added: 0.1.0
author: cesres-ctl team (@cesres)
attributes:
  check_mode:
    support: full
    description: Reports what it would remove and the space it would free; removes nothing.
"""

EXAMPLES = r"""
- name: Remove the runs whose results were fetched, and the data no run uses
  cesres.ctl.cesres_prune:
    roots: [~/cesres]
    runs: [~/cesres/runs/demo-0123456789]
"""

RETURN = r"""
removed:
  description: The run directories removed (would be, in check mode), with why and the bytes freed.
  type: list
  elements: dict
  returned: always
kept:
  description: The runs asked for that were kept, with why (a live job, not a run directory...).
  type: list
  elements: dict
  returned: always
store_removed:
  description: The store entries removed (would be), with their size.
  type: list
  elements: dict
  returned: always
freed_bytes:
  description: The bytes freed (would be freed) in all.
  type: int
  returned: always
usage:
  description: For each root, the bytes its runs and its store take (after the removals).
  type: list
  elements: dict
  returned: always
"""


def own_bytes(directory: Path) -> int:
    """The bytes of the files under `directory` that no other path links to (the store's data does not count)."""
    total = 0
    for path in directory.rglob("*"):
        info = path.lstat()
        if path.is_file() and not path.is_symlink() and info.st_nlink == 1:
            total += info.st_size
    return total


def links_into(directory: Path) -> dict[int, int]:
    """{inode: number of hard links under `directory`} of its files that also have other links."""
    counts: dict[int, int] = {}
    for path in directory.rglob("*"):
        info = path.lstat()
        if path.is_file() and not path.is_symlink() and info.st_nlink > 1:
            counts[info.st_ino] = counts.get(info.st_ino, 0) + 1
    return counts


def staging_in_progress(directory: Path) -> bool:
    """Whether a train holds the run's lock right now (it is staging or submitting it)."""
    lock = directory / ".submit.lock"
    if not lock.exists():
        return False
    with lock.open("a", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


class Prune:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        p = module.params
        env = login_environment([*p["roots"], *p["runs"]])
        self.roots = [Path(expand_path(root, env, what="cesres_root")) for root in p["roots"]]
        self.runs = [Path(expand_path(run, env, what="a run directory")) for run in p["runs"]]
        self.min_age: int = p["min_age_minutes"] * 60
        self.now = time.time()

    def old_enough(self, path: Path) -> bool:
        return self.now - path.lstat().st_ctime >= self.min_age

    def choose(self) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        removable: list[dict[str, Any]] = []
        kept: list[dict[str, str]] = []
        runs_dirs = {root / RUNS_DIR for root in self.roots}
        for run in self.runs:
            if run.parent not in runs_dirs or not is_run_id(run.name):
                kept.append({"path": str(run), "reason": "not a run directory of the given roots"})
                continue
            if not run.is_dir():
                kept.append({"path": str(run), "reason": "not on the cluster (already removed?)"})
                continue
            job = first_line(run / JOBID_FILE)
            state = slurm_state(job, run) if job else ""
            if job and state not in TERMINAL_STATES:
                kept.append({"path": str(run), "reason": f"job {job} is {state}: a live run is never removed"})
            elif staging_in_progress(run):
                kept.append({"path": str(run), "reason": "a train is staging or submitting it"})
            else:
                removable.append({"path": str(run), "reason": f"job {job} {state}" if job else "no job"})
        if self.module.params["without_job"]:
            chosen = {item["path"] for item in removable} | {item["path"] for item in kept}
            for runs_dir in sorted(runs_dirs):
                for run in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
                    if (
                        str(run) not in chosen
                        and run.is_dir()
                        and is_run_id(run.name)
                        and not first_line(run / JOBID_FILE)
                        and self.old_enough(run)
                        and not staging_in_progress(run)
                    ):
                        removable.append({"path": str(run), "reason": "never got a job"})
        return removable, kept

    def main(self) -> dict[str, Any]:
        removable, kept = self.choose()
        released: dict[int, int] = {}  # store links that the removed runs held
        for item in removable:
            run = Path(item["path"])
            item["bytes"] = own_bytes(run)
            for inode, count in links_into(run).items():
                released[inode] = released.get(inode, 0) + count
            if not self.module.check_mode:
                shutil.rmtree(run)
        store_removed: list[dict[str, Any]] = []
        for root in self.roots:
            store = Path(store_dir(str(root)))
            for entry in sorted(store.iterdir()) if store.is_dir() else []:
                info = entry.lstat()
                links_left = info.st_nlink - (released.get(info.st_ino, 0) if self.module.check_mode else 0)
                # Young entries are left: a train may be about to link the data it just stored.
                if links_left <= 1 and entry.is_file() and self.old_enough(entry):
                    store_removed.append({"path": str(entry), "bytes": info.st_size})
                    if not self.module.check_mode:
                        entry.unlink()
        usage = []
        for root in self.roots:
            runs_dir, store = root / RUNS_DIR, Path(store_dir(str(root)))
            runs = [run for run in runs_dir.iterdir() if is_run_id(run.name)] if runs_dir.is_dir() else []
            store_files = [entry for entry in store.iterdir() if entry.is_file()] if store.is_dir() else []
            usage.append(
                {
                    "root": str(root),
                    "runs": len(runs),
                    "runs_bytes": sum(own_bytes(run) for run in runs),
                    "store_files": len(store_files),
                    "store_bytes": sum(entry.lstat().st_size for entry in store_files),
                }
            )
        freed = sum(item["bytes"] for item in removable) + sum(item["bytes"] for item in store_removed)
        return {
            "changed": bool(removable or store_removed),
            "removed": removable,
            "kept": kept,
            "store_removed": store_removed,
            "freed_bytes": freed,
            "usage": usage,
        }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "roots": {"type": "list", "elements": "str", "required": True},
            "runs": {"type": "list", "elements": "str", "default": []},
            "without_job": {"type": "bool", "default": False},
            "min_age_minutes": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**Prune(module).main())
    except (RunError, RuleError, OSError) as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
