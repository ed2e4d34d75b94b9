"""``cesres-ctl sandbox up | down | status``."""

import json
import os
from pathlib import Path

import typer

from cesres_ctl import completion, paths
from cesres_ctl.app import App
from cesres_ctl.console import echo
from cesres_ctl.options import VerboseOption
from cesres_ctl.provision.settings import parse_extra_vars
from cesres_ctl.sandbox import lifecycle

app = App(help="The local sandbox cluster that imitates CÉCI dragon2.", no_args_is_help=True)

RootOption = typer.Option(
    None,
    "--root",
    metavar="DIR",
    help="Sandbox root directory (default: $CESRES_SANDBOX_ROOT or /var/lib/cesres-sandbox).",
    autocompletion=completion.files,
)


def _root(root: Path | None) -> Path:
    # The playbooks read the root from the inventory, which reads this variable: setting it here keeps
    # the build, the purge and the daemons on the same directory.
    if root is not None:
        os.environ["CESRES_SANDBOX_ROOT"] = str(root.resolve())
    return paths.sandbox_root()


@app.command()
def up(
    root: Path | None = RootOption,
    verbose: bool = VerboseOption,
    extra_vars: list[str] = typer.Option(  # noqa: B008 - typer's way of declaring a repeatable option
        [],
        "--extra-vars",
        "-e",
        metavar="VARS",
        help="Set a variable of roles/sandbox_cluster (key=value, a JSON mapping, or @file.yml). Repeatable.",
    ),
) -> None:
    """Build the sandbox (idempotent) and start its daemons.

    Only the daemons whose configuration the build changed (slurm.conf, munge key, sshd_config, …) restart.
    """
    extravars = parse_extra_vars(extra_vars)
    result = lifecycle.up(_root(root), verbose=verbose, extravars=extravars)
    if result.restarted:
        echo(f"sandbox up: restarted {', '.join(result.restarted)} (configuration changed)")
    for node in result.resumed:
        echo(f"sandbox up: resumed the compute node {node.name} (it was {node.state}{_because(node)})")
    manifest = result.manifest
    echo(f"sandbox up: ssh -F {manifest.ssh_config} {manifest.login_alias}")


@app.command()
def down(
    root: Path | None = RootOption,
    purge: bool = typer.Option(False, "--purge", help="Also remove the sandbox's state, user and configuration."),
    verbose: bool = VerboseOption,
) -> None:
    """Stop every daemon the sandbox started (by pid file)."""
    stopped = lifecycle.down(_root(root), purge=purge, verbose=verbose)
    what = ", ".join(stopped) if stopped else "nothing was running"
    echo(f"sandbox down: stopped {what}{'; state purged' if purge else ''}")


@app.command()
def status(
    root: Path | None = RootOption,
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Report the daemons, the login node through the gateway, and the partitions.

    Exits 0 when everything is up, 1 otherwise.
    """
    report = lifecycle.status(_root(root))
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_status(report)
    raise typer.Exit(0 if report.healthy else 1)


def _print_status(report: lifecycle.SandboxStatus) -> None:
    if not report.built:
        echo(f"no sandbox at {report.root}: run 'cesres-ctl sandbox up'")
        return
    for name, daemon in report.daemons.items():
        state = f"running (pid {daemon['pid']})" if daemon["running"] else "stopped"
        echo(f"{name:14} {state}")
    gateway = "answers" if report.login_via_gateway else "does not answer"
    echo(f"login node through the gateway: {gateway}")
    for node in report.nodes:
        hint = "" if node.usable else ": it takes no job, `cesres-ctl sandbox up` resumes it"
        echo(f"node {node.name} {node.state}{_because(node)}{hint}")
    for partition in report.partitions:
        default = " (default)" if partition.default else ""
        echo(f"partition {partition.name:6} {partition.available:4} max {partition.max_time}{default}")
    echo(f"connect with: ssh -F {report.ssh_config} {report.host_alias}")


def _because(node: lifecycle.Node) -> str:
    return f", {node.reason}" if node.reason else ""
