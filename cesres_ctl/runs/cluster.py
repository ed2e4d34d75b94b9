"""What cesres-ctl knows about a cluster without connecting to it: its inventory variables (group_vars and
the user's settings plus the job role's defaults, templated exactly as Ansible would) and its ssh settings.

cesres_ctl.inventory reads it with Ansible's own code (no ssh), so the limits checked here are the ones
the playbook will see.
"""

from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from cesres_ctl import paths
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
