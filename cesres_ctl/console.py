"""The CLI's output: results on stdout, errors and summaries on stderr.

echo and note print one plain line: a path, a run id or a state stays exactly as it is (never wrapped,
marked up or turned into an emoji), copy-pastable and greppable in CI logs. `out` and `err` are rich
consoles for tables, live views and progress, built on first use (PEP 562): rich takes ~16 ms to import,
a sixth of a quick command such as `status`. Off a terminal rich would assume 80 columns and squeeze
tables; logs and pipes get a wide console instead.
"""

import json
import math
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

_PIPE_WIDTH = 200


def echo(text: str) -> None:
    """One line of a command's result on stdout."""
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    """One line for the user on stderr (an error, a note), out of the way of the result."""
    sys.stderr.write(text + "\n")


def print_json(data: Any) -> None:
    """A command's --json answer on stdout (fields: docs/runs.md), strict JSON: a NaN or an infinity (a
    diverged loss in a run's metrics) is null, where Python would write NaN, which no JSON reader takes."""
    sys.stdout.write(json.dumps(_finite(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


def _finite(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(value) for value in data]
    return data


def __getattr__(name: str) -> "Console":
    if name not in ("out", "err"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    stream = sys.stdout if name == "out" else sys.stderr
    console = Console(
        stderr=name == "err", highlight=False, soft_wrap=True, width=None if stream.isatty() else _PIPE_WIDTH
    )
    globals()[name] = console  # built once: later lookups find it without this function
    return console
