"""What the cesres modules do on the cluster besides the rules (module_utils/cesres_rules.py): read the login
environment, checksum files, ask Slurm for a job's state. Sent by Ansible with the modules that import it;
runs on the cluster's Python (3.10 on dragon2)."""

import hashlib
import os
import subprocess
from pathlib import Path

from ansible.module_utils.cesres_rules import EXIT_CODE_FILE, path_variables


class RunError(Exception):
    """A reason to stop, as one line for the user."""


def login_environment(paths: list[str]) -> dict[str, str]:
    """The environment the configured paths are expanded with: a login shell's when one of them names a
    variable (login scripts set $GLOBALSCRATCH, $CECIHOME...), else this process's ($HOME, for ~)."""
    if not any(path_variables(path) for path in paths):
        return dict(os.environ)
    done = subprocess.run(
        ["bash", "-lc", "env -0"], stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RunError(f"cannot read the login shell's environment: {done.stderr.decode(errors='replace').strip()}")
    pairs = (item.partition("=") for item in done.stdout.decode("utf-8", errors="replace").split("\0") if item)
    return {key: value for key, _, value in pairs}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline().strip()
    except OSError:
        return ""


def slurm_state(job: str, directory: Path) -> str:
    """squeue while Slurm still lists the job, then sacct (squeue forgets it MinJobAge after it ended),
    then the exit code file the job script writes; UNKNOWN when nothing says."""
    for argv in (["squeue", "-h", "-j", job, "-o", "%T"], ["sacct", "-X", "-n", "-P", "-j", job, "-o", "State"]):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        words = done.stdout.split("\n", 1)[0].split() if done.returncode == 0 else []
        if words:
            return words[0]
    code = first_line(directory / EXIT_CODE_FILE)
    if code:
        return "COMPLETED" if code == "0" else "FAILED"
    return "UNKNOWN"
