"""The ``cesres-ctl`` command line: one typer app, one sub-app per area."""

import sys

import typer

from cesres_ctl import __version__
from cesres_ctl.console import err
from cesres_ctl.errors import CesresError
from cesres_ctl.provision.commands import app as provision_app
from cesres_ctl.runs.commands import register as register_run_commands
from cesres_ctl.sandbox.commands import app as sandbox_app

app = typer.Typer(
    name="cesres-ctl",
    help="Provision CÉCI Slurm clusters for CESReS and drive its training runs from your laptop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(sandbox_app, name="sandbox")
register_run_commands(app)
app.add_typer(provision_app)  # setup, doctor: top-level commands


def _version(value: bool) -> None:
    if value:
        print(f"cesres-ctl {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """cesres-ctl: CESReS on CÉCI clusters."""


def main() -> None:
    """Entry point: expected failures become one line on stderr and a non-zero exit.

    Usage errors are typer's (exit 2); typer lets other exceptions through, so a
    CesresError raised by any command is turned into one line here.
    """
    try:
        app()
    except CesresError as exc:
        err.print(f"cesres-ctl: error: {exc}", markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
