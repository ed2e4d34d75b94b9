"""The one exception type the CLI turns into a one-line error, and the exit codes of every command."""

from enum import IntEnum


class ExitCode(IntEnum):
    """What a command's exit status says, the same for every command (docs/cli.md shows MEANINGS)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    UNREACHABLE = 3
    INTERRUPTED = 130


# The table of docs/cli.md and of `cesres-ctl --help` (a test keeps the docs equal to it).
MEANINGS = {
    ExitCode.OK: "done: the result is on stdout",
    ExitCode.FAILED: (
        "failed: a step, a job or a check failed, or an input (a config, a data file, a run id, a value) "
        "was refused before anything was sent"
    ),
    ExitCode.USAGE: "usage: the command line itself is wrong (an unknown option, a missing argument, a bad number)",
    ExitCode.UNREACHABLE: "unreachable: ssh could not reach the cluster (through its gateway), or timed out",
    ExitCode.INTERRUPTED: "interrupted: Ctrl-C, SIGTERM or SIGHUP stopped the command",
}


class CesresError(Exception):
    """An expected failure: bad input, an unreachable host, a failed playbook.

    The message is a single line meant for a researcher; ``log_path`` points at the
    full log when there is one, and ``exit_code`` is what the process returns.
    """

    def __init__(self, message: str, *, log_path: str | None = None, exit_code: int = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.log_path = log_path
        self.exit_code = exit_code

    def __str__(self) -> str:
        text = super().__str__()
        if self.log_path:
            return f"{text} (full log: {self.log_path})"
        return text
