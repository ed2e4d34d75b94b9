"""Where things live: the project (playbooks, roles), the user's state, the sandbox."""

import os
import tempfile
from pathlib import Path

from cesres_ctl import rules
from cesres_ctl.errors import CesresError

DEFAULT_SANDBOX_ROOT = Path("/var/lib/cesres-sandbox")
# Where a wheel puts its copy of the project, inside the package (hatch_build.py writes it there).
BUNDLED_PROJECT = "_project"
# Where a project keeps the collection cesres.ctl (galaxy.yml: the roles, the modules and the filters), as
# Ansible finds it there (ansible.cfg's collections_path): in a checkout, a link to the checkout itself; in
# a wheel, the collection's files (hatch_build.py).
COLLECTION = Path("collections", "ansible_collections", "cesres", "ctl")


def project_dir() -> Path:
    """The Ansible project that the CLI drives: ansible.cfg, inventory/, playbooks/ and roles/.

    Run from a checkout (an editable install, or the checkout on PYTHONPATH), it is the checkout, the
    package's parent. An installed wheel carries a copy of it in the package, under _project/ (see
    hatch_build.py). CESRES_CTL_PROJECT overrides both.
    """
    override = os.environ.get("CESRES_CTL_PROJECT")
    if override:
        root = Path(override)
    else:
        package = Path(__file__).resolve().parent
        root = package.parent if _is_project(package.parent) else package / BUNDLED_PROJECT
    if not _is_project(root):
        raise CesresError(
            f"cannot find the cesres-ctl project (playbooks/, ansible.cfg) in {root}; set CESRES_CTL_PROJECT"
        )
    return root


def collection_dir(project: Path | None = None) -> Path:
    """The collection cesres.ctl of `project` (default: project_dir()), its link resolved."""
    return ((project or project_dir()) / COLLECTION).resolve()


def _is_project(root: Path) -> bool:
    return (root / "playbooks").is_dir() and (root / "ansible.cfg").is_file()


def state_path() -> Path:
    """Where the per-user state lives ($XDG_STATE_HOME/cesres-ctl), without creating it."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cesres-ctl"


def state_dir() -> Path:
    """Per-user state (run registry, logs), following the XDG base directory spec."""
    return ensure_dir(state_path(), "the state directory", "set XDG_STATE_HOME to a writable directory")


def logs_dir() -> Path:
    return ensure_dir(state_dir() / "logs", "the log directory", "set XDG_STATE_HOME to a writable directory")


def ensure_dir(path: Path, what: str, hint: str) -> Path:
    """Create the directory `path` (parents too), checked first with check_dir."""
    check_dir(path, what, hint)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # checked a moment ago: only a race gets here
        raise CesresError(f"cannot use {path} as {what}: {exc.strerror or exc}; {hint}") from None
    return path


def check_dir(path: Path, what: str, hint: str) -> Path:
    """Check, creating nothing, that `path` is a directory or can be made one, and that files can be
    written there. A failure is one line: what the directory is for, the path, why, then `hint`."""
    path = path.absolute()
    existing = next(p for p in (path, *path.parents) if os.path.lexists(p))
    if not existing.is_dir():
        raise CesresError(f"cannot use {path} as {what}: {existing} is a file, not a directory; {hint}")
    try:
        # Permission bits do not stop root, and /proc or /sys refuse new files anyway: try one. An
        # unnamed temporary file leaves nothing behind.
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        reason = exc.strerror or exc
        raise CesresError(f"cannot use {path} as {what}: cannot write in {existing} ({reason}); {hint}") from None
    return path


def runner_dir() -> Path:
    """The private data of the runs in progress (their inputs, ansible-runner's artifacts), owner-only."""
    path = state_dir() / "runner"
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)  # mkdir's mode goes through the umask, and an older dir may be wider
    return path


def sandbox_root() -> Path:
    """The single directory that holds every piece of sandbox state."""
    root = os.environ.get("CESRES_SANDBOX_ROOT") or str(DEFAULT_SANDBOX_ROOT)
    error = rules.sandbox_root_error(root)
    if error:
        raise CesresError(f"the sandbox root {root!r} (CESRES_SANDBOX_ROOT) {error}")
    return Path(root)


# Unix socket paths are limited to ~104 bytes; %C is 40 hex characters.
_MAX_CONTROL_DIR = 40


def control_dir() -> Path:
    """The master connections of cesres-ctl's ssh, rsync and Ansible (ANSIBLE_SSH_CONTROL_PATH_DIR of its runs)."""
    base = state_dir() / "cm"
    if len(str(base)) > _MAX_CONTROL_DIR:
        base = Path(tempfile.gettempdir()) / f"cesres-cm-{os.getuid()}"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    return base
