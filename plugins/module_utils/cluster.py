"""What the cesres modules do on the cluster besides the rules (module_utils/rules.py): read the login
environment, checksum files, ask Slurm for a job's state. Sent by Ansible with the modules that import it;
runs on the cluster's Python (3.10 on dragon2; 3.8 at least: annotations are not evaluated at import)."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
from pathlib import Path

from ansible_collections.cesres.ctl.plugins.module_utils.rules import EXIT_CODE_FILE, job_state, path_variables


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


def first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline().strip()
    except OSError:
        return ""


def slurm_state(job: str, directory: Path) -> str:
    """The job's state by the rule the CLI applies too (rules.job_state), from squeue, then sacct
    (squeue forgets a job MinJobAge after it ended), then the exit code file the job script writes."""
    # squeue -j of one job it no longer lists fails with this message: the controller did answer.
    queue = _ask(["squeue", "-h", "-j", job, "-o", "%T"], answered="Invalid job id")
    accounting = None if queue else _ask(["sacct", "-X", "-n", "-P", "-j", job, "-o", "State"])
    return job_state(queue, accounting, first_line(directory / EXIT_CODE_FILE))[0]


def _ask(argv: list[str], answered: str = "") -> str | None:
    """The first line of a Slurm command's answer ("" when it answered nothing); None when it did not
    answer (a daemon down, no accounting, the command missing)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return "" if answered and answered in done.stderr else None
    return done.stdout.split("\n", 1)[0].strip()


# Where module environments are kept between runs, next to roles/cesres_python's wrapper ($HOME-relative).
MODULE_ENV_DIR = ".cesres/module-env"


def module_environment(modules: list[str], probe: list[str]) -> dict[str, str] | None:
    """The environment that `module load` of `modules` (in order) gives, for running `probe` (a command
    that must succeed in it, e.g. ["git", "--version"]); None when they cannot be loaded.

    A login shell with Lmod costs about a third of a second on a login node: the environment is captured
    once and kept in ~/.cesres/module-env/, used again while `probe` succeeds in it."""
    names = [name for name in modules if name]
    key = hashlib.sha256("\0".join(names).encode()).hexdigest()[:16]
    kept = Path.home() / MODULE_ENV_DIR / f"{key}.json"
    try:
        env = json.loads(kept.read_text(encoding="utf-8"))
        if isinstance(env, dict) and _succeeds(probe, env):
            return env
    except (OSError, ValueError):
        pass
    loads = " && ".join(f"module load {shlex.quote(name)}" for name in names) or "true"
    done = subprocess.run(
        ["bash", "-lc", f"{loads} >/dev/null 2>&1 && env -0"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        return None
    pairs = (item.partition("=") for item in done.stdout.decode("utf-8", errors="replace").split("\0") if item)
    env = {key: value for key, _, value in pairs if not key.startswith("BASH_FUNC_")}
    if not _succeeds(probe, env):
        return None
    kept.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = kept.with_name(f"{kept.name}.{os.getpid()}")
    partial.write_text(json.dumps(env), encoding="utf-8")
    partial.replace(kept)
    return env


def _succeeds(argv: list[str], env: dict[str, str]) -> bool:
    try:
        return subprocess.run(argv, env=env, capture_output=True, timeout=60, check=False).returncode == 0
    except OSError:
        return False
