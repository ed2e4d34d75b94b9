"""Options shared by several commands, declared once so that they read the same everywhere."""

import typer

from cesres_ctl import userconfig

CLUSTER_HELP = (
    "Cluster: a host of the inventory (dragon2, sandbox, …). "
    f"Default: ${userconfig.CLUSTER_ENV}, else the configured default_cluster (cesres-ctl config show), "
    f"else {userconfig.BUILTIN_CLUSTER}."
)


def cluster_option(help_text: str = CLUSTER_HELP) -> typer.models.OptionInfo:
    """--cluster/-C with $CESRES_CLUSTER: the cluster of a command (None: the configured default)."""
    return typer.Option(None, "--cluster", "-C", envvar=userconfig.CLUSTER_ENV, show_envvar=False, help=help_text)
