"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class CesresError(Exception):
    """An expected failure: bad input, an unreachable host, a failed playbook.

    The message is a single line meant for a researcher; ``log_path`` points at the
    full log when there is one, and ``exit_code`` is what the process returns.
    """

    def __init__(self, message: str, *, log_path: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.log_path = log_path
        self.exit_code = exit_code

    def __str__(self) -> str:
        text = super().__str__()
        if self.log_path:
            return f"{text} (full log: {self.log_path})"
        return text
