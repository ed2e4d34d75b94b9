"""Stand-ins for squeue, sacct and sbatch on PATH, for tests that run the real status commands and the real
cluster modules on this machine. What each one answers comes from the environment (FAKE_SQUEUE, FAKE_SACCT:
see install) or, for sbatch, from the files under its state directory."""

import stat
from pathlib import Path

# FAKE_SQUEUE: "down" (the controller does not answer), "" (it no longer lists the job), or the job's state.
# FAKE_SACCT: "none" (no accounting to ask), "" (no record yet), or the job's State field.
_SQUEUE = r"""#!/bin/bash
format=%T job=
while [ $# -gt 0 ]; do
    case "$1" in -o) format=$2; shift;; -j) job=$2; shift;; esac
    shift
done
case "${FAKE_SQUEUE-}" in
    down) echo "slurm_load_jobs error: Unable to contact slurm controller (connect failure)" >&2; exit 1;;
    "") echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1;;
esac
line=${format//%i/${job%%,*}}
line=${line//%T/$FAKE_SQUEUE}
line=${line//%r/None}
line=${line//%M/1:00}
line=${line//%l/30:00}
printf '%s\n' "$line"
"""
_SACCT = r"""#!/bin/bash
fields=State job=
while [ $# -gt 0 ]; do
    case "$1" in -o) fields=$2; shift;; -j) job=$2; shift;; esac
    shift
done
case "${FAKE_SACCT-}" in
    none) echo "sacct: error: Problem talking to the database: Connection refused" >&2; exit 1;;
    "") exit 0;;
esac
out=
IFS=, read -ra names <<< "$fields"
for name in "${names[@]}"; do
    case "$name" in
        JobID) value=${job%%,*};; State) value=$FAKE_SACCT;; ExitCode) value=0:0;;
        Elapsed) value=00:01:00;; Timelimit) value=00:30:00;; *) value=None;;
    esac
    out=${out:+$out|}$value
done
printf '%s\n' "$out"
"""


def install(bin_dir: Path, **scripts: str) -> Path:
    """Write the fake squeue and sacct (and any other `name=script`) into `bin_dir`; return it."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, text in {"squeue": _SQUEUE, "sacct": _SACCT, **scripts}.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir
