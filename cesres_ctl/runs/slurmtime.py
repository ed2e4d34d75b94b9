"""Slurm time strings (`--time`): parse to seconds and format canonically.

Accepted forms, as sbatch documents them: "minutes", "minutes:seconds", "hours:minutes:seconds",
"days-hours", "days-hours:minutes", "days-hours:minutes:seconds". The same parser exists as a filter
in roles/cesres_job/filter_plugins so the role checks limits by itself; tests keep them in step.
"""

import re

from cesres_ctl.errors import CesresError

_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_seconds(text: str) -> int:
    """Seconds of a Slurm time string; CesresError on anything else (incl. 0 and UNLIMITED)."""
    value = str(text).strip()
    match = _TIME.match(value)
    if not match:
        raise CesresError(
            f"invalid time {text!r}: use minutes, HH:MM:SS, D-HH or D-HH:MM:SS (e.g. 02:00:00 or 1-12:00:00)"
        )
    days, first, second, third = match.groups()
    if days is not None:
        # days-hours[:minutes[:seconds]]
        seconds = int(days) * 86400 + int(first) * 3600 + int(second or 0) * 60 + int(third or 0)
    elif third is not None:
        seconds = int(first) * 3600 + int(second) * 60 + int(third)
    elif second is not None:
        seconds = int(first) * 60 + int(second)
    else:
        seconds = int(first) * 60
    if seconds <= 0:
        raise CesresError(f"invalid time {text!r}: must be more than zero")
    return seconds


def format_seconds(seconds: int) -> str:
    """Canonical `D-HH:MM:SS` (or `HH:MM:SS` under a day), as sinfo prints limits."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock
