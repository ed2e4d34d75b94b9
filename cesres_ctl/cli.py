"""The ``cesres-ctl`` command line: one typer app whose commands live in one module per area (COMMANDS)."""

import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from cesres_ctl import __version__, inputs
from cesres_ctl.console import note
from cesres_ctl.errors import CesresError

# Each command's module, imported only when the command runs (or the help lists them all): `status` and
# `logs` must start in a fraction of one ssh call (issue 9), and Ansible, the job templates, the sandbox's
# manifests and rich's tables cost more than that. A name whose module holds a group of its own (sandbox,
# config) is that group; any other is the command of that name in its module's app.
COMMANDS: dict[str, str] = {
    "sandbox": "cesres_ctl.sandbox.commands",
    "train": "cesres_ctl.runs.train_commands",
    "sweep": "cesres_ctl.runs.train_commands",
    "runs": "cesres_ctl.runs.job_commands",
    "status": "cesres_ctl.runs.job_commands",
    "logs": "cesres_ctl.runs.job_commands",
    "fetch": "cesres_ctl.runs.result_commands",
    "cancel": "cesres_ctl.runs.job_commands",
    "plot": "cesres_ctl.runs.result_commands",
    "compare": "cesres_ctl.runs.result_commands",
    "prune": "cesres_ctl.runs.result_commands",
    "predict": "cesres_ctl.runs.train_commands",
    "predictions": "cesres_ctl.runs.train_commands",
    "setup": "cesres_ctl.provision.commands",
    "doctor": "cesres_ctl.provision.commands",
    "config": "cesres_ctl.config_commands",
}
GROUPS = {"sandbox", "config"}


# Values: click commands, of the click that typer vendors privately (typer._click): typed Any.
class _LazyCommands(Mapping[str, Any]):
    """COMMANDS as the click commands typer's group looks up, each built from its module on first use."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            module_app = importlib.import_module(COMMANDS[name]).app
            group = typer.main.get_group(module_app)
            if name in GROUPS:
                group.name = name
                self._built[name] = group
            else:
                self._built[name] = group.commands[name]
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class LazyGroup(TyperGroup):
    """The root group: every command of COMMANDS, its module imported when the command is looked up."""

    def __init__(self, **attrs: object) -> None:
        super().__init__(**attrs)  # type: ignore[arg-type]
        self.commands = _LazyCommands()  # type: ignore[assignment]

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names only: listing imports nothing


app = typer.Typer(
    name="cesres-ctl",
    cls=LazyGroup,
    help="Provision CÉCI Slurm clusters for CESReS and drive its training runs from your laptop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
    _check_streams()
    try:
        inputs.check_command_line(sys.argv[1:], os.environ)
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


def _check_streams() -> None:
    """Stop when started with stdin, stdout or stderr closed (`cesres-ctl runs >&-`): the next file opened
    would take the free descriptor, and the command's output (or ssh's input) would be that file: the
    registry, a log."""
    closed = [name for name in ("stdin", "stdout", "stderr") if getattr(sys, name) is None]
    if closed and sys.stderr is not None:
        _fail(f"started with {' and '.join(closed)} closed: give it a file or /dev/null", 1)
    if closed:
        sys.exit(1)


def _fail(message: str, code: int) -> NoReturn:
    # One line even when a message carries another program's multi-line output.
    note(f"{PROG}: error: {' '.join(message.splitlines())}")
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
