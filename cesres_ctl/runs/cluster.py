"""What cesres-ctl knows about a cluster without connecting to it: its inventory variables (group_vars and
the user's settings plus the job role's defaults, templated exactly as Ansible would) and its ssh settings.

cesres_ctl.inventory reads it with Ansible's own code (no ssh), so the limits checked here are the ones
the playbook will see.
"""

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cesres_ctl import inputs, paths, userconfig
from cesres_ctl.errors import CesresError
from cesres_ctl.inventory import Inventory
from cesres_ctl.rules import SSH_VARIABLES, Partition, SshTarget, parse_partitions, ssh_target
from cesres_ctl.runs.resources import RESOURCE_KEYS, Resources, defaults_from_vars, resolve

ROLE = "cesres_job"


@dataclass(frozen=True)
class Cluster:
    name: str
    ssh: SshTarget
    partitions: dict[str, Partition]
    job_vars: dict[str, Any]  # templated cesres_job_* values (role defaults < group_vars < the user's settings)

    @property
    def inventory_sources(self) -> tuple[str, ...]:
        """The inventory sources these values come from (the project's, then the user's overlay, written
        again from the user's settings): the playbook's too. Asked only by the commands that run one."""
        return tuple(userconfig.inventory_sources(paths.project_dir()))


@cache
def load(name: str) -> Cluster:
    """The cluster `name` as the inventory defines it; CesresError for an unknown name.

    Kept in the state directory while nothing it comes from changed (the inventory files, the job role's
    defaults, the user's settings, the environment): Ansible's inventory takes ~0.4 s to load, three times
    the ssh call of `status` itself.
    """
    key = sources_fingerprint(name, [_role_defaults()])
    cache_file = paths.state_dir() / CACHE_NAME
    try:
        loaded = inputs.load_json(inputs.read_text(cache_file, "the cluster cache"), str(cache_file))
    except CesresError:
        loaded = None  # no cache yet, or not one that cesres-ctl wrote: written again
    entries: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
    cached = _cached(name, entries.get(key))
    if cached is not None:
        return cached
    cluster = load_from_inventory(name)
    try:
        entry_text = json.dumps({"ssh": asdict(cluster.ssh), "job_vars": cluster.job_vars})
    except (TypeError, ValueError):
        return cluster  # a value JSON cannot keep: not cached
    entries = dict(list(entries.items())[-(_CACHE_ENTRIES - 1) :])
    entries[key] = json.loads(entry_text)
    partial = cache_file.with_name(f"{cache_file.name}.{os.getpid()}")
    try:
        partial.write_text(json.dumps(entries), encoding="utf-8")
        partial.replace(cache_file)
    except OSError:
        partial.unlink(missing_ok=True)  # a cache: the next command reads the inventory again
    return cluster


def _cached(name: str, entry: object) -> Cluster | None:
    """The cluster of a cache entry, or None when the entry is missing or not as load() writes it."""
    ssh = entry.get("ssh") if isinstance(entry, dict) else None
    job_vars = entry.get("job_vars") if isinstance(entry, dict) else None
    if not isinstance(ssh, dict) or not isinstance(job_vars, dict):
        return None
    host, user, port, options = ssh.get("host"), ssh.get("user"), ssh.get("port"), ssh.get("options")
    if not (
        isinstance(host, str)
        and isinstance(user, str | None)
        and (port is None or (isinstance(port, int) and not isinstance(port, bool)))
        and isinstance(options, list)
        and all(isinstance(option, str) for option in options)
    ):
        return None
    try:
        partitions = parse_partitions(job_vars.get("cesres_job_partitions") or {})
    except (CesresError, AttributeError, TypeError, ValueError):  # partitions of another shape than the inventory's
        return None
    return Cluster(name=name, ssh=SshTarget(host, user, port, tuple(options)), partitions=partitions, job_vars=job_vars)


def load_from_inventory(name: str) -> Cluster:
    """load() without its cache: Ansible's inventory, templated exactly as a playbook would see it."""
    import yaml  # here: a cluster kept in the cache (the usual case) needs no YAML

    inventory = Inventory()
    defaults = _role_defaults()
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
    )


def check_defaults(name: str, changes: Mapping[str, Any]) -> Resources:
    """train's default resources on `name` once `changes` (settings of the user's, about to be saved) apply,
    checked by resources.resolve, as train checks them: CesresError when train would refuse its own defaults."""
    current = load_from_inventory(name)
    job_vars = {**current.job_vars, **{key: value for key, value in changes.items() if key.startswith("cesres_job_")}}
    partitions = current.partitions
    if "cesres_cluster_partitions" in changes:
        partitions = parse_partitions(changes["cesres_cluster_partitions"])
    return resolve(partitions, defaults_from_vars(job_vars, RESOURCE_KEYS), {}, cluster=name)


# The clusters kept (one entry per cluster and state of its sources), in the state directory.
CACHE_NAME = "clusters.json"
_CACHE_ENTRIES = 32


def _role_defaults() -> Path:
    return paths.collection_dir() / "roles" / ROLE / "defaults" / "main.yml"


def sources_fingerprint(name: str, more_files: list[Path]) -> str:
    """A digest of what a cluster's values come from (the inventory, the user's settings, the environment)
    and of `more_files`: equal digests, equal values."""
    project = paths.project_dir()
    files: list[Path] = [userconfig.config_path(), *more_files]
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
    environment = {**os.environ, "ANSIBLE_CONFIG": str(project / "ansible.cfg")}
    parts += sorted(f"{key}={value}" for key, value in environment.items() if key.startswith(("CESRES_", "ANSIBLE_")))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
