"""The project's inventory as Ansible reads it, in-process and without connecting anywhere.

`cesres-ctl setup` validates its variables and `cesres-ctl train` checks a run's resources with the values
the playbooks will see: role defaults < inventory group_vars < the user's settings (host vars of the overlay
that cesres_ctl.userconfig generates, the same sources every playbook run gets) < extra vars, templated by
Ansible's own Templar (~0.3 s, no ssh).
"""

import difflib
import json
import os
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from cesres_ctl import paths, userconfig
from cesres_ctl.errors import CesresError


@cache
def init_ansible() -> None:
    """Initialise Ansible's Python API once per process, with the project's ansible.cfg.

    Ansible reads its configuration at import time, so ANSIBLE_CONFIG is set before the first import. It is
    the project's whatever the environment says, as for every playbook cesres-ctl runs (runner/environment.py): the
    checks made here are those of the playbook (and ANSIBLE_CONFIG=/dev/null would stop Ansible's import).
    """
    os.environ["ANSIBLE_CONFIG"] = str(paths.project_dir() / "ansible.cfg")
    from ansible.plugins.loader import init_plugin_loader

    init_plugin_loader()


class Inventory:
    """The project's inventory as Ansible reads it (group_vars included), without connecting anywhere.

    With ``user_config`` (the default) the user's overlay is read after it, as every playbook run reads it;
    a cluster of the user's configuration that the project does not know is an error.
    """

    def __init__(self, project: Path | None = None, *, user_config: bool = True) -> None:
        init_ansible()
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager

        self.project = project or paths.project_dir()
        config = userconfig.load() if user_config else None
        self.sources = (
            userconfig.inventory_sources(self.project, config)
            if config is not None
            else [str(self.project / "inventory")]
        )
        self.loader = DataLoader()
        self.loader.set_basedir(str(self.project))
        self.inventory = InventoryManager(loader=self.loader, sources=self.sources)
        self.variables = VariableManager(loader=self.loader, inventory=self.inventory)
        self._host_vars: dict[str, dict[str, Any]] = {}
        if config is not None:
            known = self.clusters()
            for name in config.clusters:
                if name not in known:
                    raise CesresError(
                        f"config file {config.path}: clusters.{name}: unknown cluster{_did_you_mean(name, known)}; "
                        f"known clusters: {', '.join(known)} (a cluster of your own needs its "
                        f"{userconfig.OWN_CLUSTER_KEY}: the ssh alias of its login node)"
                    )

    def clusters(self) -> list[str]:
        return [host.name for host in self.inventory.get_hosts(userconfig.CLUSTER_GROUP)]

    def require_cluster(self, cluster: str) -> None:
        known = self.clusters()
        if cluster not in known:
            raise CesresError(
                f"unknown cluster {cluster!r}{_did_you_mean(cluster, known)}; known clusters: {', '.join(known)}"
            )

    def host_vars(self, cluster: str) -> dict[str, Any]:
        """The cluster's inventory variables (group_vars included), untemplated."""
        if cluster not in self._host_vars:
            self.require_cluster(cluster)
            host = self.inventory.get_host(cluster)
            self._host_vars[cluster] = dict(self.variables.get_vars(host=host, include_hostvars=False))
        return self._host_vars[cluster]

    def resolve(
        self,
        cluster: str,
        extravars: Mapping[str, Any],
        names: Sequence[str],
        defaults: Path | Sequence[Path] | None = None,
    ) -> tuple[dict[str, Any], list[str]]:
        """The values of ``names`` for ``cluster``: role defaults (files in order) < inventory < extra vars,
        templated."""
        from ansible.template import Templar, trust_as_template

        merged: dict[str, Any] = {}
        for path in [defaults] if isinstance(defaults, Path) else defaults or []:
            if path.is_file():
                merged.update(self.loader.load_from_file(str(path), trusted_as_template=True) or {})
        merged.update(self.host_vars(cluster))
        # Extra vars are trusted templates for ansible-playbook too.
        merged.update({k: _trust(v, trust_as_template) for k, v in extravars.items()})
        templar = Templar(loader=self.loader, variables=merged)
        values: dict[str, Any] = {}
        errors: list[str] = []
        for name in names:
            if name not in merged:
                continue
            try:
                values[name] = _plain(templar.template(merged[name]))
            except Exception as exc:  # any templating error becomes one line
                errors.append(f"{name}: {' '.join(str(exc).split())[:200]}")
        return values, errors


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    hint = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {hint[0]}?)" if hint else ""


def _trust(value: Any, trust: Any) -> Any:
    if isinstance(value, str):
        return trust(value)
    if isinstance(value, list):
        return [_trust(v, trust) for v in value]
    if isinstance(value, dict):
        return {k: _trust(v, trust) for k, v in value.items()}
    return value


def _plain(value: Any) -> Any:
    """Ansible's tagged containers and strings as plain Python values."""
    return json.loads(json.dumps(value, default=str))
