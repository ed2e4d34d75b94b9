"""The ``cesres-ctl`` command line: one typer app whose commands live in one module per area (COMMANDS)."""

import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import typer
from typer._click.core import Command as ClickCommand
from typer._click.shell_completion import CompletionItem
from typer.core import TyperGroup

from cesres_ctl import __version__, inputs
from cesres_ctl.app import App
from cesres_ctl.console import note, print_json
from cesres_ctl.errors import MEANINGS, CesresError, ExitCode

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

    def shell_complete(self, ctx: Any, incomplete: str) -> list[CompletionItem]:
        """The command names, and the root's options: typer's would build every command (import every module,
        Ansible's included) for a help line that bash does not show."""
        names = [CompletionItem(name) for name in COMMANDS if name.startswith(incomplete)]
        return [*names, *ClickCommand.shell_complete(self, ctx, incomplete)]


EXIT_CODES_HELP = "Exit codes: " + "; ".join(
    f"{int(code)} {meaning.split(':')[0]}" for code, meaning in MEANINGS.items()
)

app = App(
    name="cesres-ctl",
    cls=LazyGroup,
    help="Provision CÉCI Slurm clusters for CESReS and drive its training runs from your laptop.",
    epilog=f"{EXIT_CODES_HELP} (docs/cli.md). Results go to stdout, progress and notes to stderr.",
    no_args_is_help=True,
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


def main() -> None:
    """Entry point: every expected failure is one line on stderr and a non-zero exit, never a traceback.

    typer runs without its standalone mode, so that its usage errors come here instead of being drawn
    as a multi-line box: they become one line (exit 2). A CesresError keeps its exit code; an OSError
    or RecursionError that no command caught is the last-resort net (exit 1). Exit codes: errors.ExitCode.
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
        code = ExitCode.INTERRUPTED
    except OSError as exc:
        _fail(_os_error(exc), ExitCode.FAILED)
    except RecursionError:
        _fail("the input is nested too deeply to be read: flatten it", ExitCode.FAILED)
    # A command returns None; typer.Exit(code) comes back as its code (typer turns Ctrl-C into 130).
    code = code if isinstance(code, int) else ExitCode.OK
    if code == ExitCode.INTERRUPTED:
        _fail("interrupted", ExitCode.INTERRUPTED)
    sys.exit(code)


def _check_streams() -> None:
    """Stop when started with stdin, stdout or stderr closed (`cesres-ctl runs >&-`): the next file opened
    would take the free descriptor, and the command's output (or ssh's input) would be that file: the
    registry, a log."""
    closed = [name for name in ("stdin", "stdout", "stderr") if getattr(sys, name) is None]
    if closed and sys.stderr is not None:
        _fail(f"started with {' and '.join(closed)} closed: give it a file or /dev/null", ExitCode.FAILED)
    if closed:
        sys.exit(ExitCode.FAILED)


def _fail(message: str, code: int) -> NoReturn:
    # One line even when a message carries another program's multi-line output.
    line = " ".join(message.splitlines())
    note(f"{PROG}: error: {line}")
    if _wants_json(sys.argv[1:]):
        # A script that reads stdout as JSON gets JSON when a command fails too (fields: docs/cli.md).
        outcome = {int(known): known.name.lower() for known in ExitCode}.get(code, "failed")
        print_json({"error": line, "exit_code": code, "outcome": outcome})
    sys.exit(code)


def _wants_json(argv: list[str]) -> bool:
    """--json among the command's own arguments (what follows `--` is the model's)."""
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


def _usage_error(exc: typer.TyperException) -> NoReturn:
    ctx = getattr(exc, "ctx", None)
    # no_args_is_help: its message is the help, for stdout as `--help` prints it.
    if type(exc).__name__ == "NoArgsIsHelpError":
        sys.stdout.write(exc.format_message() + "\n")
        sys.exit(exc.exit_code)
    message = exc.format_message()
    possible = getattr(exc, "possibilities", None)  # NoSuchOption: the command's closest options, best first
    if possible:
        message = f"{getattr(exc, 'message', message)}; did you mean {possible[0]}?"
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    _fail(message + hint, exc.exit_code)


def _os_error(exc: OSError) -> str:
    if not exc.strerror:
        return str(exc)
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror}{where}"
