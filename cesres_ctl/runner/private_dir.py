"""The private data directory of one ansible-runner run: created fresh and owner-only in the user's state
directory, named by its owner (pid, start time, host), removed on the way out, or by the next run on this
machine when its owner was killed.

A fresh directory per run: runner never rewrites the env/* files of a reused one, so a second run would
silently see the first run's extravars (ansible-runner #172).
"""

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cesres_ctl import paths

# A private data dir without its pid file this long after its creation was left by a killed run.
_UNCLAIMED_SECONDS = 60.0


def _process_start(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot) where /proc tells it: a reused pid differs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def _owner_record() -> str:
    pid = os.getpid()
    return json.dumps({"pid": pid, "start": _process_start(pid), "host": socket.gethostname()}) + "\n"


def _owner_alive(private_dir: Path) -> bool:
    """Whether the run that made `private_dir` may still be running (when unsure: yes)."""
    try:
        record = json.loads((private_dir / "pid").read_text(encoding="utf-8"))
        pid = int(record["pid"])
    except FileNotFoundError:
        # Between mkdtemp and the pid file, or killed right there.
        try:
            return time.time() - private_dir.stat().st_mtime < _UNCLAIMED_SECONDS
        except OSError:
            return False
    except (OSError, ValueError, TypeError, KeyError):
        return True
    if record.get("host") != socket.gethostname():
        return True  # a home shared with another machine: that machine's next run decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = record.get("start")
    return started is None or _process_start(pid) in (None, started)


def sweep_private_dirs() -> None:
    """Remove the private data dirs that killed runs left in the state directory."""
    for entry in paths.runner_dir().iterdir():
        if entry.is_dir() and not entry.is_symlink() and not _owner_alive(entry):
            shutil.rmtree(entry, ignore_errors=True)


@contextmanager
def private_data_dir(stem: str) -> Iterator[Path]:
    """A fresh owner-only directory for one run's private data, removed on the way out.

    In the state directory, not /tmp: runner puts nothing there whose path length matters (its
    ssh-agent socket, the reason for runner's /tmp default (#136), exists only with its ssh_key option,
    which cesres-ctl never passes: ssh uses the user's own keys and agent, and ControlPath is under
    ~/.ansible/cp). A `pid` file names the owner (pid, start time, host), so that the next run on this
    machine removes the directory if this one is killed.
    """
    sweep_private_dirs()
    path = Path(tempfile.mkdtemp(prefix=f"{stem}-", dir=paths.runner_dir()))  # mode 0700
    try:
        write_private(path / "pid", _owner_record())
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_private(path: Path, text: str) -> None:
    """A new owner-only file (its directory owner-only too) holding `text`."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_extravars(private_dir: Path, extravars: Mapping[str, Any]) -> Path:
    """env/extravars of the private data dir, which runner passes as `-e @FILE` (no size limit then)."""
    path = private_dir / "env" / "extravars"
    write_private(path, json.dumps(extravars))
    return path
