"""``cesres-ctl setup`` and ``cesres-ctl doctor``: registered at the top level of the CLI."""

import hashlib
import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table

from cesres_ctl import paths, userconfig
from cesres_ctl.app import App
from cesres_ctl.console import echo, note, out, print_json
from cesres_ctl.errors import CesresError, ExitCode
from cesres_ctl.inventory import Inventory
from cesres_ctl.options import VerboseOption, cluster_option
from cesres_ctl.provision import doctor as doctor_checks
from cesres_ctl.provision import facts
from cesres_ctl.provision.settings import SETUP_PLAYBOOK, parse_extra_vars, validate_setup_vars
from cesres_ctl.runner import PlaybookResult, format_summary, run_playbook
from cesres_ctl.runs import cluster as clusters

app = App()

ClusterOption = cluster_option()


@app.command()
def setup(
    cluster: str | None = ClusterOption,
    verbose: bool = VerboseOption,
    extra_vars: list[str] = typer.Option(  # noqa: B008 - typer's way of declaring a repeatable option
        [],
        "--extra-vars",
        "-e",
        metavar="VARS",
        help="Set a variable as with ansible-playbook: key=value, a JSON mapping, or @file.yml. Repeatable.",
    ),
    check: bool = typer.Option(
        False, "--check", help="Report what would change and change nothing (ansible-playbook --check)."
    ),
    full: bool = typer.Option(
        False, "--full", help="Run every step, even when nothing changed since the last setup that succeeded."
    ),
) -> None:
    """Provision CESReS on a cluster: modules, code, virtualenv, components, offline models.

    Runs playbooks/setup.yml. A re-run with nothing changed changes nothing (and does not run pip): when
    nothing changed since the last setup that succeeded (the settings, cesres-ctl, what it provisioned on the
    cluster, the repository's branch), one command on the cluster says so and the play ends there; --full
    runs every step all the same. With --check, lists the steps that would change something and changes nothing.
    """
    cluster = userconfig.cluster_or_default(cluster)
    extravars = parse_extra_vars(extra_vars)
    sources = _validated_sources(cluster, extravars)
    if full:
        extravars = {**extravars, "cesres_unchanged_shortcut": False}
    title = f"setup --check {cluster}" if check else f"setup {cluster}"
    result = run_playbook(
        SETUP_PLAYBOOK,
        limit=cluster,
        extravars=extravars,
        verbose=verbose,
        title=title,
        inventory=sources,
        check=check,
    )
    _summarise(result)
    if not result.ok:
        raise CesresError(result.failure or "setup failed", log_path=str(result.log_path), exit_code=result.exit_code)
    unchanged = _unchanged_since(result, cluster)
    if unchanged and not check:
        echo(f"setup of {cluster}: nothing changed since its last setup ({unchanged}): no step ran")
        return
    if not check:
        echo(f"setup of {cluster} done (log: {result.log_path})")
        return
    for line in check_report(cluster, result):
        echo(line)


def _validated_sources(cluster: str, extravars: dict[str, Any]) -> list[str]:
    """The inventory sources of the run, once the settings are known valid: checked with Ansible's inventory
    (~0.35 s), or found checked before with the very same sources, role specs and extra vars (a stamp in the
    state directory, named by their digest)."""
    project = paths.project_dir()
    roles = paths.collection_dir(project) / "roles"
    specs = sorted(roles.glob("*/meta/argument_specs.yml")) + sorted(roles.glob("*/defaults/main.yml"))
    digest = clusters.sources_fingerprint(cluster, specs)
    digest = hashlib.sha256(f"{digest}:{json.dumps(extravars, sort_keys=True, default=str)}".encode()).hexdigest()
    stamp = paths.state_dir() / "validated" / digest
    if stamp.is_file():
        return userconfig.inventory_sources(project)
    inventory = Inventory()
    problems = validate_setup_vars(cluster, extravars, inventory)
    if problems:
        raise CesresError(f"invalid settings for {cluster}: " + "; ".join(problems))
    try:
        stamp.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp.touch()
    except OSError:
        pass  # a stamp: the next setup checks again
    return list(inventory.sources)


def _unchanged_since(result: PlaybookResult, cluster: str) -> str:
    """When the play ended at once, nothing having changed since the last setup (roles/cesres_unchanged): when
    that setup was recorded, as local time; else ""."""
    found = result.facts.get(cluster, {}).get("cesres_unchanged_found")
    if not isinstance(found, dict):
        return ""
    try:
        since = datetime.fromtimestamp(int(found.get("since", 0)), tz=UTC).astimezone()
    except (TypeError, ValueError, OverflowError, OSError):
        return "recorded at an unknown time"
    return f"recorded {since:%Y-%m-%d %H:%M %Z}"


def check_report(cluster: str, result: PlaybookResult) -> list[str]:
    """What `setup --check` tells: each step that would change something, or that nothing would."""
    log = f"(log: {result.log_path})"
    if not result.changed:
        return [f"setup --check of {cluster}: nothing would change {log}"]
    count = len(result.changed)
    return [
        f"setup --check of {cluster}: {count} step{'s' if count > 1 else ''} would change something {log}:",
        *(f"  would change: {change}" for change in result.changed),
    ]


def _summarise(result: PlaybookResult) -> None:
    summary = format_summary(result)
    if summary:
        note(summary)


@app.command()
def doctor(
    cluster: str | None = ClusterOption,
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
    save_facts: bool = typer.Option(
        False, "--save-facts", help="Keep the partitions Slurm states as yours for this cluster (your configuration)."
    ),
) -> None:
    """Check that a cluster is ready for setup (ssh, Python, Lmod, modules, partitions, space).

    Checks ssh through the gateway, the Python version, Lmod and every configured module, the partitions,
    free space and quota of $HOME and $GLOBALSCRATCH. Uses only Ansible's raw module (no Python needed
    on the cluster). Exits 1 if a check fails, 3 if ssh did not reach the cluster.

    The partitions as Slurm states them (time limits, GPUs per node, the default one, default memory) are
    compared with those train enforces: a difference is a warning, which --save-facts settles.
    """
    cluster = userconfig.cluster_or_default(cluster)
    diagnosis = doctor_checks.diagnose(cluster, inventory=Inventory())
    checks = diagnosis.checks
    code = doctor_checks.exit_code(checks)
    found = diagnosis.facts
    saved = save_facts and found is not None
    if save_facts and found is not None:
        _save_facts(cluster, facts.as_setting(found, diagnosis.enforced))
    if as_json:
        print_json(
            {
                "cluster": cluster,
                "ok": code == ExitCode.OK,
                "checks": doctor_checks.checks_as_dicts(checks),
                "partitions": {name: asdict(part) for name, part in (found or {}).items()},
                "facts_saved": saved,
            }
        )
    else:
        table = Table(title=f"cesres-ctl doctor: {cluster}", title_justify="left")
        table.add_column("check", no_wrap=True)
        table.add_column("result")
        table.add_column("detail / hint", overflow="fold")
        styles = {"pass": "green", "fail": "bold red", "warn": "yellow"}
        for check in checks:
            text = check.detail + (f"\n→ {check.hint}" if check.hint else "")
            table.add_row(check.id, f"[{styles.get(check.status, '')}]{check.status}[/]", text)
        out.print(table)
    if save_facts and not saved:
        # After the report (it says why: ssh, sinfo), not an error object besides it under --json.
        note(f"note: no facts read from {cluster}: nothing saved")
        raise typer.Exit(max(code, ExitCode.FAILED))
    raise typer.Exit(code)


def _save_facts(cluster: str, partitions: dict[str, Any]) -> None:
    """The partitions as the user's setting, checked as `config set` checks it; a note when train's defaults
    do not fit them any more (train would refuse them until changed)."""
    key = "cesres_cluster_partitions"
    config = userconfig.load()
    value = userconfig.check_value(key, partitions, f"the partitions of {cluster}")
    path = userconfig.save(userconfig.with_setting(config, cluster, key, value))
    note(f"saved the partitions of {cluster} as yours ({key} in {path}): train follows them")
    try:
        clusters.check_defaults(cluster, {})
    except CesresError as exc:
        fix = f"cesres-ctl config set cesres_job_… -C {cluster}"
        note(f"note: train's defaults on {cluster} do not fit them: {exc} ({fix})")
