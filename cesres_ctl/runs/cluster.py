"""What cesres-ctl knows about a cluster without connecting to it: its inventory variables (group_vars
plus the job role's defaults, templated exactly as Ansible would) and its ssh settings.

Ansible's own inventory and templating code is used in-process (~0.3 s, no ssh), so the limits checked
here are the ones the playbook will see.
"""

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from cesres_ctl import paths
from cesres_ctl.errors import CesresError
from cesres_ctl.runs import _ansible
from cesres_ctl.runs.resources import Partition, parse_partitions

ROLE = "cesres_job"
DEFAULT_CLUSTER_ENV = "CESRES_CLUSTER"
DEFAULT_CLUSTER = "dragon2"


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
    job_vars: dict[str, Any]  # templated cesres_job_* values (role defaults overlaid by group_vars)


def default_name() -> str:
    return os.environ.get(DEFAULT_CLUSTER_ENV) or DEFAULT_CLUSTER


def _ansible_api() -> tuple[Any, ...]:
    _ansible.init()
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template
    from ansible.vars.manager import VariableManager

    return InventoryManager, DataLoader, Templar, trust_as_template, VariableManager


@cache
def load(name: str) -> Cluster:
    """The cluster `name` as the inventory defines it; CesresError for an unknown name."""
    inventory_manager, data_loader, templar_class, trust, variable_manager = _ansible_api()
    project = paths.project_dir()
    loader = data_loader()
    inventory = inventory_manager(loader=loader, sources=[str(project / "inventory")])
    host = inventory.get_host(name)
    if host is None:
        known = ", ".join(sorted(h.name for h in inventory.get_hosts()))
        raise CesresError(f"unknown cluster {name!r} (clusters in the inventory: {known})")
    host_vars = dict(variable_manager(loader=loader, inventory=inventory).get_vars(host=host))
    role_defaults = yaml.safe_load((project / "roles" / ROLE / "defaults" / "main.yml").read_text()) or {}
    variables = {**role_defaults, **host_vars}
    templar = templar_class(loader=loader, variables=variables)

    def render(value: Any) -> Any:
        try:
            if isinstance(value, str):
                return templar.template(trust(value))
            return templar.template(value)
        except Exception as exc:  # any templating error is a configuration error
            raise CesresError(f"cluster {name}: cannot evaluate its variables: {exc}") from None

    job_vars = {key: render(variables[key]) for key in variables if key.startswith("cesres_job_")}
    partitions = parse_partitions(job_vars.get("cesres_job_partitions") or {})
    return Cluster(name=name, ssh=_ssh_settings(name, variables, render), partitions=partitions, job_vars=job_vars)


def _ssh_settings(name: str, variables: Mapping[str, Any], render: Any) -> SshSettings:
    def get(*keys: str) -> str | None:
        for key in keys:
            if variables.get(key) not in (None, ""):
                return str(render(variables[key]))
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
