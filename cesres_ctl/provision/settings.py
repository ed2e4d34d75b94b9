"""The variables of a setup run, checked against the roles' own argument_specs before any SSH.

One source of truth: the specs in ``roles/*/meta/argument_specs.yml`` are the ones Ansible validates at
role entry; here they are fed to ansible-core's public ``ArgumentSpecValidator`` with the values Ansible
would see (role defaults < inventory group_vars < ``-e`` extra vars), templated by Ansible's own Templar.
"""

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from cesres_ctl import inputs, paths, rules
from cesres_ctl.errors import CesresError
from cesres_ctl.inventory import Inventory

SETUP_PLAYBOOK = "playbooks/setup.yml"
# The roles of playbooks/setup.yml that take settings, in play order (cesres_login, after cesres_python,
# takes none).
SETUP_ROLES = ("cesres_python", "cesres_modules", "cesres_repo", "cesres_venv", "cesres_data", "cesres_hf_cache")


def parse_extra_vars(items: Sequence[str]) -> dict[str, Any]:
    """``-e`` values as ansible-playbook reads them: ``key=value`` (a string), a JSON/YAML mapping, or ``@file``."""
    result: dict[str, Any] = {}
    for item in items:
        text = item.strip()
        if text.startswith("@"):
            path = rules.expand_user(text[1:], "-e file")
            loaded = inputs.read_json_or_yaml(path, "-e file")
            if not isinstance(loaded, dict):
                raise CesresError(f"-e {item}: {path} does not hold a mapping of variables")
            result.update(loaded)
        elif text.startswith("{"):
            loaded = inputs.load_json_or_yaml(text, f"-e {_shown(text)}")
            if not isinstance(loaded, dict):
                raise CesresError(f"-e {item}: not a mapping")
            result.update(loaded)
        elif "=" in text:
            # Several key=value pairs may share one -e, as with ansible-playbook.
            for pair in text.split():
                key, sep, value = pair.partition("=")
                if not sep or not key:
                    raise CesresError(f"-e {item}: expected key=value")
                result[key] = value
        else:
            raise CesresError(f"-e {item}: expected key=value, a JSON mapping or @file")
    for key in result:
        if not key.isidentifier():
            raise CesresError(f"-e: {key!r} is not a valid variable name")
    return result


def _shown(text: str) -> str:
    """An inline -e value in messages: its start (it may hold a whole YAML document)."""
    return text if len(text) <= 40 else f"{text[:40]}..."


@dataclass(frozen=True)
class RoleSpec:
    role: str
    options: dict[str, Any]
    defaults_file: Path


@cache
def role_specs(project: Path | None = None) -> tuple[RoleSpec, ...]:
    project = project or paths.project_dir()
    specs = []
    for role in SETUP_ROLES:
        role_dir = paths.collection_dir(project) / "roles" / role
        # libyaml's loader when PyYAML has it: every setup pays for these six files before any ssh.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load((role_dir / "meta" / "argument_specs.yml").read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
        options = data["argument_specs"]["main"].get("options") or {}
        specs.append(RoleSpec(role, options, role_dir / "defaults" / "main.yml"))
    return tuple(specs)


def validate_setup_vars(cluster: str, extravars: Mapping[str, Any], inventory: Inventory | None = None) -> list[str]:
    """Every problem, one line each, that the roles' argument_specs would report for this run."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    inventory = inventory or Inventory()
    inventory.require_cluster(cluster)
    problems: list[str] = []
    specs = role_specs(inventory.project)
    known = {name for spec in specs for name in spec.options}
    prefixes = tuple(f"{spec.role}_" for spec in specs)
    for key in extravars:
        if key.startswith(prefixes) and key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            problems.append(f"unknown variable {key}" + (f" (did you mean {close[0]}?)" if close else ""))
    for spec in specs:
        values, errors = inventory.resolve(cluster, extravars, list(spec.options), spec.defaults_file)
        problems += [f"{spec.role}: {error}" for error in errors]
        result = ArgumentSpecValidator(spec.options).validate(values)
        problems += [f"{spec.role}: {message}" for message in result.error_messages]
        problems += [f"{spec.role}: {message}" for message in _rule_problems(spec.role, values)]
    return problems


def _rule_problems(role: str, values: Mapping[str, Any]) -> list[str]:
    """What the role's own asserts would refuse beyond its argument_specs, by the same rules."""
    if role == "cesres_repo" and not values.get("cesres_repo_local_path") and values.get("cesres_repo_url"):
        try:
            rules.check_repo_source(str(values["cesres_repo_url"]), str(values.get("cesres_repo_version") or ""))
        except rules.RuleError as exc:
            return [str(exc)]
    return []
