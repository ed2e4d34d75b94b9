"""``cesres-ctl config init | show | set | unset | path``: the user's settings (cesres_ctl.userconfig)."""

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table

from cesres_ctl import paths, userconfig
from cesres_ctl.app import App
from cesres_ctl.console import echo, note, out
from cesres_ctl.errors import CesresError
from cesres_ctl.options import cluster_option

app = App(
    help="Your settings (fork, version, login alias, paths, models, train's defaults), kept in "
    "$XDG_CONFIG_HOME/cesres-ctl/config.yml: no file of the checkout is edited.",
    no_args_is_help=True,
)

DEFAULT_KEY = "default_cluster"
SHOW_CLUSTER_HELP = "Only this cluster (default: every cluster of the inventory)."


def _known_cluster(name: str, config: userconfig.UserConfig | None = None) -> str:
    """`name` if the project's inventory has it, or `config` makes it the user's own (the user's file is not
    read: it may be the broken one)."""
    from cesres_ctl.inventory import Inventory

    if config is not None and userconfig.OWN_CLUSTER_KEY in userconfig.settings_of(config, name):
        return userconfig.check_cluster_name(name, "--cluster")
    try:
        Inventory(user_config=False).require_cluster(name)
    except CesresError as exc:
        own = f"`cesres-ctl config set {userconfig.OWN_CLUSTER_KEY} ALIAS -C {name}` defines a cluster of your own"
        raise CesresError(f"{exc}; {own}") from None
    return name


def _fits_train(cluster: str, key: str, value: Any) -> None:
    """train checks its resources with resources.resolve: a default it would refuse is refused here, by it."""
    from cesres_ctl.runs import cluster as clusters

    try:
        clusters.check_defaults(cluster, {key: value})
    except CesresError as exc:
        raise CesresError(f"config set {key}: train would refuse it on {cluster}: {exc}") from None


@app.command()
def init(
    cluster: str | None = cluster_option("The cluster to configure, and your default cluster (default: dragon2)."),
    repo: str | None = typer.Option(None, "--repo", metavar="URL", help="Your CESReS repository (cesres_repo_url)."),
    version: str | None = typer.Option(
        None,
        "--version",
        "--repo-version",
        metavar="VERSION",
        help="Branch, tag or commit to deploy (cesres_repo_version).",
    ),
    login_alias: str | None = typer.Option(
        None,
        "--login-alias",
        metavar="ALIAS",
        help="ssh host or alias of the login node (ansible_host), e.g. from ~/.ssh/config.",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing configuration."),
) -> None:
    """Create your configuration: the default cluster and, if given, its repository, version and login alias."""
    path = userconfig.config_path()
    if os.path.lexists(path) and not force:
        raise CesresError(f"{path} exists: change it with `cesres-ctl config set`, or overwrite it with --force")
    name = cluster if cluster is not None else userconfig.BUILTIN_CLUSTER
    given = {"cesres_repo_url": repo, "cesres_repo_version": version, "ansible_host": login_alias}
    names = {"cesres_repo_url": "--repo", "cesres_repo_version": "--version", "ansible_host": "--login-alias"}
    settings = {
        key: userconfig.parse_value(key, value, names[key]) for key, value in given.items() if value is not None
    }
    config = userconfig.UserConfig(path=path, default_cluster=name, clusters={name: settings} if settings else {})
    _known_cluster(name, config)  # with --login-alias, a cluster of the user's own
    userconfig.save(config, exclusive=not force)
    echo(f"wrote {path} (default cluster: {name})")
    note("next: `cesres-ctl config show`, `cesres-ctl config set KEY VALUE`, `cesres-ctl setup`")


@app.command(name="set")
def set_(
    key: str = typer.Argument(
        ..., metavar="KEY", help=f"A setting ({DEFAULT_KEY}, cesres_root, …: `cesres-ctl config show`)."
    ),
    value: str = typer.Argument(..., metavar="VALUE", help="Its value (models: ID[@REVISION],…)."),
    cluster: str | None = cluster_option("The cluster whose setting this is (default: your default cluster)."),
) -> None:
    """Set one setting of a cluster (or default_cluster), creating the configuration if needed."""
    config = userconfig.load()
    if key == DEFAULT_KEY:
        name = _known_cluster(userconfig.check_cluster_name(value, f"config set {DEFAULT_KEY}"), config)
        userconfig.save(userconfig.with_default(config, name))
        echo(f"{DEFAULT_KEY} = {name} ({config.path})")
        return
    parsed = userconfig.parse_value(key, value)
    name = cluster if cluster is not None else userconfig.default_cluster(config)[0]
    updated = userconfig.with_setting(config, name, key, parsed)
    _known_cluster(name, updated)
    if key.startswith("cesres_job_") or key == "cesres_cluster_partitions":
        _fits_train(name, key, parsed)
    userconfig.save(updated)
    echo(f"{name}: {key} = {_format(parsed)} ({config.path})")


@app.command()
def unset(
    key: str = typer.Argument(..., metavar="KEY", help=f"A setting, or {DEFAULT_KEY}."),
    cluster: str | None = cluster_option("The cluster whose setting this is (default: your default cluster)."),
) -> None:
    """Remove one setting: the project's value (group_vars, role default) applies again."""
    config = userconfig.load()
    if key == DEFAULT_KEY:
        removed = config.default_cluster is not None
        if removed:
            userconfig.save(userconfig.with_default(config, None))
        echo(f"{DEFAULT_KEY} {'removed' if removed else 'was not set'}")
        return
    userconfig.check_key(key, "config unset")
    name = cluster if cluster is not None else userconfig.default_cluster(config)[0]
    updated, removed = userconfig.without_setting(config, name, key)
    if removed:
        userconfig.save(updated)
    echo(f"{name}: {key} {'removed' if removed else 'was not set'}")


@app.command()
def path(
    inventory: bool = typer.Option(
        False, "--inventory", help="The generated inventory overlay instead (for ansible-playbook -i)."
    ),
) -> None:
    """Print the configuration file's path (or the overlay's: `ansible-playbook -i inventory -i OVERLAY`)."""
    if not inventory:
        print(userconfig.config_path())
        return
    config = userconfig.load()
    written = userconfig.write_overlay(config)
    if written is None:
        raise CesresError(f"no cluster settings in {config.path}: the project's inventory alone applies")
    print(written)


@app.command()
def show(
    cluster: str | None = cluster_option(SHOW_CLUSTER_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Each cluster's settings: the effective value and where it comes from.

    The sources, last wins: a role default, the project's group_vars, your configuration (user config);
    `setup -e` and train's options override them for one run.
    """
    report = describe(cluster)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=False) + "\n")
        return
    state = "" if report["exists"] else " (absent: `cesres-ctl config init` creates it)"
    echo(f"configuration: {report['config_file']}{state}")
    default = report["default_cluster"]
    echo(f"default cluster: {default['name']} (from {default['source']})")
    if report["overlay"]:
        echo(f"inventory overlay: {report['overlay']}")
    for name, settings in report["clusters"].items():
        table = Table(title=name, title_justify="left", box=None, pad_edge=False)
        for column in ("SETTING", "VALUE", "FROM"):
            table.add_column(column, overflow="fold")
        for key, item in settings.items():
            value = item.get("error") or _format(item["value"])
            table.add_row(key, value, item["source"])
        out.print()
        out.print(table)


def describe(only: str | None = None) -> dict[str, Any]:
    """Each setting of each cluster (or of `only`): its effective value and its source."""
    from cesres_ctl.inventory import Inventory

    config = userconfig.load()
    effective = Inventory()
    names = [only] if only is not None else effective.clusters()
    if only is not None:
        effective.require_cluster(only)
    default_name, default_source = userconfig.default_cluster(config)
    defaults = _role_defaults(effective.project)
    overlay = userconfig.overlay_path() if len(effective.sources) > 1 else None
    clusters: dict[str, Any] = {}
    for name in names:
        values, errors = effective.resolve(name, {}, list(userconfig.SETTINGS), [path for path, _ in defaults])
        failed = dict(error.split(": ", 1) for error in errors)
        mine = userconfig.settings_of(config, name)
        group_sources = _group_sources(effective, name)
        settings: dict[str, Any] = {}
        for key in userconfig.SETTINGS:
            if key in mine:
                source = f"user config ({config.path.name})"
            elif key in group_sources:
                source = group_sources[key]
            else:
                source = next((label for path, label in reversed(defaults) if key in _keys(path)), "unset")
            item: dict[str, Any] = {"value": values.get(key), "source": source}
            if key in failed:
                item["error"] = failed[key]
            settings[key] = item
        clusters[name] = settings
    return {
        "config_file": str(config.path),
        "exists": config.exists,
        "overlay": str(overlay) if overlay else None,
        "default_cluster": {"name": default_name, "source": default_source},
        "clusters": clusters,
    }


def _role_defaults(project: Path) -> list[tuple[Path, str]]:
    roles_dir = paths.collection_dir(project) / "roles"
    roles = sorted(p for p in roles_dir.iterdir() if p.is_dir() and p.name.startswith("cesres_"))
    found = [(role / "defaults" / "main.yml", f"role default ({role.name})") for role in roles]
    return [(path, label) for path, label in found if path.is_file()]


def _keys(path: Path) -> set[str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return set(data) if isinstance(data, dict) else set()


def _group_sources(project: Any, cluster: str) -> dict[str, str]:
    """setting -> the project's group_vars file that gives it to `cluster` (the last one Ansible reads)."""
    from ansible.inventory.helpers import sort_groups

    host = project.inventory.get_host(cluster)
    group_dir = project.project / "inventory" / "group_vars"
    sources: dict[str, str] = {}
    for group in sort_groups(host.get_groups()):
        for suffix in (".yml", ".yaml"):
            file = group_dir / f"{group.name}{suffix}"
            if file.is_file():
                sources.update(dict.fromkeys(_keys(file), f"group_vars/{file.name}"))
    return sources


def _format(value: object) -> str:
    if value is None:
        return "-"
    if value == "":
        return '""'
    if isinstance(value, list):
        return ", ".join(_model(item) for item in value)
    if isinstance(value, Mapping):  # partitions
        return "; ".join(f"{name}: {_format(facts)}" for name, facts in value.items())
    return str(value)


def _model(item: object) -> str:
    if isinstance(item, Mapping):
        revision = item.get("revision")
        return f"{item.get('id')}@{revision}" if revision else str(item.get("id"))
    return str(item)
