"""What cesres-ctl knows about a cluster without connecting to it: its inventory variables (group_vars and
the user's settings plus the job role's defaults, templated exactly as Ansible would) and its ssh settings.

cesres_ctl.inventory reads it with Ansible's own code (no ssh), so the limits checked here are the ones
the playbook will see.
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from cesres_ctl import paths, userconfig
from cesres_ctl.errors import CesresError
from cesres_ctl.inventory import Inventory
from cesres_ctl.rules import SSH_VARIABLES, Partition, SshTarget, parse_partitions, ssh_target

ROLE = "cesres_job"


@dataclass(frozen=True)
class Cluster:
    name: str
    ssh: SshTarget
    partitions: dict[str, Partition]
    job_vars: dict[str, Any]  # templated cesres_job_* values (role defaults < group_vars < the user's settings)
    # The inventory sources these values come from (the project's, then the user's overlay): the playbook's too.
    inventory_sources: tuple[str, ...] = ()


@cache
def load(name: str) -> Cluster:
    """The cluster `name` as the inventory defines it; CesresError for an unknown name."""
    inventory = Inventory()
    defaults = paths.project_dir() / "roles" / ROLE / "defaults" / "main.yml"
    role_defaults = yaml.safe_load(defaults.read_text(encoding="utf-8")) or {}
    job_keys = sorted(key for key in {*role_defaults, *inventory.host_vars(name)} if key.startswith("cesres_job_"))
    values, errors = inventory.resolve(name, {}, [*job_keys, *SSH_VARIABLES], defaults)
    if errors:
        raise CesresError(f"cluster {name}: cannot evaluate its variables: {errors[0]}")
    job_vars = {key: values[key] for key in job_keys if key in values}
    partitions = parse_partitions(job_vars.get("cesres_job_partitions") or {})
    return Cluster(
        name=name,
        ssh=ssh_target(values, name),
        partitions=partitions,
        job_vars=job_vars,
        inventory_sources=tuple(inventory.sources),
    )


# At most this many clusters' ssh settings are cached (one per cluster and state of its sources).
_SSH_CACHE_ENTRIES = 32


def ssh(name: str) -> SshTarget:
    """The cluster's ssh settings (what status, logs, fetch and cancel need), cached in the state directory
    while nothing they come from changed: Ansible's inventory takes ~0.4 s to load, three times the ssh call
    of `status` itself. The key covers the inventory files, the user's settings and the environment."""
    key = _sources_fingerprint(name)
    cache_file = paths.state_dir() / "ssh-settings.json"
    entries: dict[str, Any] = {}
    try:
        loaded = json.loads(cache_file.read_text(encoding="utf-8"))
        entries = loaded if isinstance(loaded, dict) else {}
        entry = entries[key]
        return SshTarget(str(entry["host"]), entry["user"], entry["port"], tuple(entry["options"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache yet, or not for these sources: load the inventory
    target = load(name).ssh
    entries = dict(list(entries.items())[-(_SSH_CACHE_ENTRIES - 1) :])
    entries[key] = asdict(target)
    partial = cache_file.with_name(f"{cache_file.name}.{os.getpid()}")
    try:
        partial.write_text(json.dumps(entries), encoding="utf-8")
        partial.replace(cache_file)
    except OSError:
        partial.unlink(missing_ok=True)  # a cache: the next command loads the inventory again
    return target


def _sources_fingerprint(name: str) -> str:
    project = paths.project_dir()
    files: list[Path] = [userconfig.config_path()]
    for top in ("inventory", "group_vars"):
        files += sorted(path for path in (project / top).rglob("*") if path.is_file())
    parts = [name, str(project)]
    for path in files:
        try:
            info = path.stat()
        except OSError:
            parts.append(f"{path} -")
            continue
        parts.append(f"{path} {info.st_mtime_ns} {info.st_size}")
    # The inventory may read the environment (lookup('env', ...)): every variable of ours and Ansible's.
    # ANSIBLE_CONFIG as it will be once Ansible is initialised (inventory.init_ansible sets it).
    environment = {**os.environ, "ANSIBLE_CONFIG": os.environ.get("ANSIBLE_CONFIG", str(project / "ansible.cfg"))}
    parts += sorted(f"{key}={value}" for key, value in environment.items() if key.startswith(("CESRES_", "ANSIBLE_")))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
