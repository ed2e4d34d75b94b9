"""Build hook: a wheel of cesres-ctl carries the Ansible project that the CLI drives.

An installed (non-editable) cesres-ctl has no checkout beside it, so the wheel holds a copy of what the
playbooks, the roles and the CLI read at run time, in the checkout's layout, under cesres_ctl/_project/
(cesres_ctl/paths.py looks there), the collection's files where a checkout links to itself. The checkout
stays the only source: nothing is copied in git. An editable install reads the checkout itself and gets no
copy.
"""

import os
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUNDLE = "cesres_ctl/_project"
# What the CLI and the playbooks read at run time, relative to the checkout: ansible.cfg and the inventory
# (runner/, inventory.py), the playbooks, and the payloads of the sandbox that playbooks/sandbox.yml and the
# sandbox_cluster role copy from `playbook_dir`/../sandbox.
PROJECT = (
    "ansible.cfg",
    "playbooks",
    "inventory",
    "group_vars",
    "sandbox/cesres-fork",
    "sandbox/cesres-mini",
    "sandbox/hub",
)
# The collection cesres.ctl (galaxy.yml): the roles, the modules, what they share and the filters. The
# project's ansible.cfg has Ansible find it under collections/ (cesres_ctl.paths.COLLECTION), where a checkout
# has a link to itself: the wheel has the collection's own files there.
COLLECTION = "collections/ansible_collections/cesres/ctl"
COLLECTION_FILES = ("galaxy.yml", "meta", "plugins", "roles")
# The checkout's symlinks, each copied from its target: a wheel cannot hold a symlink, and an sdist built
# by hatchling leaves this one out (its target is in the sdist already).
LINKS = {"inventory/group_vars": "group_vars"}
# Local outputs that a run of the demo or of the tests may leave in a checkout (.gitignore).
SKIPPED_DIRS = frozenset({"__pycache__", ".ruff_cache", "cesres-runs"})


def project_files(root: Path) -> dict[str, str]:
    """{source file: its path in the wheel} for the bundled project of the checkout (or sdist) at `root`."""
    files: dict[str, str] = {}
    for top in PROJECT:
        add_tree(root, root / top, f"{BUNDLE}/{top}", files)
    for top in COLLECTION_FILES:
        add_tree(root, root / top, f"{BUNDLE}/{COLLECTION}/{top}", files)
    for link, target in LINKS.items():
        # One entry for the whole directory: hatchling keys its table by source, and each file of the
        # target is already there under its own path.
        files[str(root / target)] = f"{BUNDLE}/{link}"
    return files


def add_tree(root: Path, source: Path, destination: str, files: dict[str, str]) -> None:
    if source.is_file():
        files[str(source)] = destination
        return
    if not source.is_dir():
        raise FileNotFoundError(f"the wheel needs {source.relative_to(root)}, which is missing")
    # Linked directories are not followed: LINKS copies each one from its target.
    for directory, subdirs, names in os.walk(source):
        here = Path(directory)
        for name in subdirs:
            if (here / name).is_symlink() and str((here / name).relative_to(root)) not in LINKS:
                raise ValueError(f"{(here / name).relative_to(root)} is a symlink: add it to LINKS in hatch_build.py")
        subdirs[:] = sorted(name for name in subdirs if name not in SKIPPED_DIRS and not (here / name).is_symlink())
        for name in sorted(names):
            if not name.endswith(".pyc"):
                files[str(here / name)] = f"{destination}/{(here / name).relative_to(source).as_posix()}"


class ProjectBundleHook(BuildHookInterface):
    """Adds the project files to a standard wheel."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name == "wheel" and version != "editable":
            build_data["force_include"].update(project_files(Path(self.root)))
