"""The ``cesres-ctl`` command line: one typer app, one sub-app per area."""

import sys
from typing import NoReturn

import typer

from cesres_ctl import __version__
from cesres_ctl.config_commands import app as config_app
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
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        print(f"cesres-ctl {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """cesres-ctl: CESReS on CÉCI clusters."""


PROG = "cesres-ctl"
EXIT_INTERRUPTED = 130


def main() -> None:
    """Entry point: every expected failure is one line on stderr and a non-zero exit, never a traceback.

    typer runs without its standalone mode, so that its usage errors come here instead of being drawn
    as a multi-line box: they become one line (exit 2). A CesresError keeps its exit code; an OSError
    or RecursionError that no command caught is the last-resort net (exit 1).
    """
    try:
        code = app(standalone_mode=False, prog_name=PROG)
    except CesresError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.TyperException as exc:  # typer's own click: usage errors (exit 2), file errors
        _usage_error(exc)
    except (typer.Abort, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
    except OSError as exc:
        _fail(_os_error(exc), 1)
    except RecursionError:
        _fail("the input is nested too deeply to be read: flatten it", 1)
    # A command returns None; typer.Exit(code) comes back as its code (typer turns Ctrl-C into 130).
    code = code if isinstance(code, int) else 0
    if code == EXIT_INTERRUPTED:
        _fail("interrupted", EXIT_INTERRUPTED)
    sys.exit(code)


def _fail(message: str, code: int) -> NoReturn:
    # One line even when a message carries another program's multi-line output.
    err.print(f"{PROG}: error: {' '.join(message.splitlines())}", markup=False, soft_wrap=True)
    sys.exit(code)


def _usage_error(exc: typer.TyperException) -> NoReturn:
    ctx = getattr(exc, "ctx", None)
    # no_args_is_help: typer has printed the help on stdout already.
    if type(exc).__name__ == "NoArgsIsHelpError":
        sys.exit(exc.exit_code)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    _fail(exc.format_message() + hint, exc.exit_code)


def _os_error(exc: OSError) -> str:
    if not exc.strerror:
        return str(exc)
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror}{where}"
