"""Where things live: the project (playbooks, roles), the user's state, the sandbox."""

import os
from pathlib import Path

from cesres_ctl.errors import CesresError

DEFAULT_SANDBOX_ROOT = Path("/var/lib/cesres-sandbox")


def project_dir() -> Path:
    """The checkout that holds ansible.cfg, playbooks/ and roles/.

    The package is installed in editable mode from the checkout, so the project is the
    package's parent; CESRES_CTL_PROJECT overrides it for unusual installs.
    """
    override = os.environ.get("CESRES_CTL_PROJECT")
    root = Path(override) if override else Path(__file__).resolve().parent.parent
    if not (root / "playbooks").is_dir() or not (root / "ansible.cfg").is_file():
        raise CesresError(
            f"cannot find the cesres-ctl project (playbooks/, ansible.cfg) in {root}; set CESRES_CTL_PROJECT"
        )
    return root


def state_dir() -> Path:
    """Per-user state (run registry, logs), following the XDG base directory spec."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(base) / "cesres-ctl"
    path.mkdir(parents=True, exist_ok=True)
    return path


def logs_dir() -> Path:
    path = state_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runner_dir() -> Path:
    """The private data of the runs in progress (their inputs, ansible-runner's artifacts), owner-only."""
    path = state_dir() / "runner"
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)  # mkdir's mode goes through the umask, and an older dir may be wider
    return path


def sandbox_root() -> Path:
    """The single directory that holds every piece of sandbox state."""
    return Path(os.environ.get("CESRES_SANDBOX_ROOT") or DEFAULT_SANDBOX_ROOT)
