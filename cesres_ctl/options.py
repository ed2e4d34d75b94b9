"""Options shared by several commands, declared once so that they read the same everywhere."""

from typing import Any

import typer

from cesres_ctl import userconfig

# --verbose/-v, for the commands that show Ansible's own output on demand: declared once, it reads the same in each.
VerboseOption = typer.Option(False, "--verbose", "-v", help="Show Ansible's own output.")

CLUSTER_HELP = (
    "Cluster: a host of the inventory (dragon2, sandbox, …). "
    f"Default: ${userconfig.CLUSTER_ENV}, else the configured default_cluster (cesres-ctl config show), "
    f"else {userconfig.BUILTIN_CLUSTER}."
)


def cluster_option(help_text: str = CLUSTER_HELP) -> Any:
    """--cluster/-C with $CESRES_CLUSTER: the cluster of a command (None: the configured default).

    Any, as typer.Option itself: the value is a parameter's default, whatever the parameter's type.
    """
    return typer.Option(
        None, "--cluster", "-C", metavar="CLUSTER", envvar=userconfig.CLUSTER_ENV, show_envvar=False, help=help_text
    )
