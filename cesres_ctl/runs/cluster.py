"""What cesres-ctl knows about a cluster without connecting to it: its inventory variables (group_vars and
the user's settings plus the job role's defaults, templated exactly as Ansible would) and its ssh settings.

cesres_ctl.inventory reads it with Ansible's own code (no ssh), so the limits checked here are the ones
the playbook will see.
"""

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from cesres_ctl import paths
from cesres_ctl.errors import CesresError
from cesres_ctl.inventory import Inventory
from cesres_ctl.rules import Partition, parse_partitions

ROLE = "cesres_job"


@dataclass(frozen=True)
class SshSettings:
    """How to reach a cluster with plain ssh/rsync, from the inventory's ansible_* connection vars."""

    host: str
    user: str | None = None
    port: int | None = None
    options: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Cluster:
    name: str
    ssh: SshSettings
    partitions: dict[str, Partition]
    job_vars: dict[str, Any]  # templated cesres_job_* values (role defaults < group_vars < the user's settings)
    # The inventory sources these values come from (the project's, then the user's overlay): the playbook's too.
    inventory_sources: tuple[str, ...] = ()


# The inventory's connection variables that plain ssh/rsync need, in order of preference.
_SSH_KEYS = (
    "ansible_host",
    "ansible_ssh_host",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
)


@cache
def load(name: str) -> Cluster:
    """The cluster `name` as the inventory defines it; CesresError for an unknown name."""
    inventory = Inventory()
    defaults = paths.project_dir() / "roles" / ROLE / "defaults" / "main.yml"
    role_defaults = yaml.safe_load(defaults.read_text(encoding="utf-8")) or {}
    job_keys = sorted(key for key in {*role_defaults, *inventory.host_vars(name)} if key.startswith("cesres_job_"))
    values, errors = inventory.resolve(name, {}, [*job_keys, *_SSH_KEYS], defaults)
    if errors:
        raise CesresError(f"cluster {name}: cannot evaluate its variables: {errors[0]}")
    job_vars = {key: values[key] for key in job_keys if key in values}
    partitions = parse_partitions(job_vars.get("cesres_job_partitions") or {})
    return Cluster(
        name=name,
        ssh=_ssh_settings(name, values),
        partitions=partitions,
        job_vars=job_vars,
        inventory_sources=tuple(inventory.sources),
    )


def _ssh_settings(name: str, values: Mapping[str, Any]) -> SshSettings:
    def get(*keys: str) -> str | None:
        for key in keys:
            if values.get(key) not in (None, ""):
                return str(values[key])
        return None

    options: list[str] = []
    for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        value = get(key)
        if value:
            options += shlex.split(value)
    key_file = get("ansible_ssh_private_key_file", "ansible_private_key_file")
    if key_file:
        options += ["-i", str(Path(key_file).expanduser())]
    port = get("ansible_port", "ansible_ssh_port")
    return SshSettings(
        host=get("ansible_host", "ansible_ssh_host") or name,
        user=get("ansible_user", "ansible_ssh_user"),
        port=int(port) if port else None,
        options=tuple(options),
    )
