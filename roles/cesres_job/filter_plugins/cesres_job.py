"""Filters of the cesres_job role: Slurm time strings (same rules as cesres_ctl.runs.slurmtime)."""

import re

from ansible.errors import AnsibleFilterError

_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def cesres_slurm_seconds(value: object) -> int:
    """Seconds of a Slurm --time string: minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    match = _TIME.match(str(value).strip())
    if not match:
        raise AnsibleFilterError(f"invalid Slurm time {value!r}: use HH:MM:SS or D-HH:MM:SS")
    days, first, second, third = match.groups()
    if days is not None:
        return int(days) * 86400 + int(first) * 3600 + int(second or 0) * 60 + int(third or 0)
    if third is not None:
        return int(first) * 3600 + int(second) * 60 + int(third)
    if second is not None:
        return int(first) * 60 + int(second)
    return int(first) * 60


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"cesres_slurm_seconds": cesres_slurm_seconds}
