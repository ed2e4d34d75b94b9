"""Start, stop and probe the sandbox daemons by pid file.

Every daemon is started once, tracked only through its own pid file, and stopped by
that pid after checking the process really is the expected program, so a recycled pid
or another instance of the same program on the machine is never signalled.
"""

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cesres_ctl.errors import CesresError
from cesres_ctl.sandbox.manifest import Daemon, Netns

POLL_SECONDS = 0.1


@dataclass(frozen=True)
class DaemonState:
    name: str
    pid: int | None

    @property
    def running(self) -> bool:
        return self.pid is not None


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _is_alive(pid: int) -> bool:
    """True for a live process; zombies count as dead (no init reaps them quickly here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _runs_program(pid: int, exe: str) -> bool:
    try:
        target = str(Path(f"/proc/{pid}/exe").readlink())
    except OSError:
        return False
    # Debian installs some daemons behind symlinks (slurmctld -> slurmctld-wlm), and
    # after a package upgrade the link reads "/usr/sbin/x (deleted)".
    expected = os.path.realpath(exe)
    return target == expected or target.startswith(expected + " ")


def running_pid(daemon: Daemon) -> int | None:
    pid = _read_pid(daemon.pidfile)
    if pid is not None and _is_alive(pid) and _runs_program(pid, daemon.exe):
        return pid
    return None


def state(daemon: Daemon) -> DaemonState:
    return DaemonState(daemon.name, running_pid(daemon))


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def is_ready(daemon: Daemon) -> bool:
    check = daemon.ready
    if "tcp" in check:
        host, port = check["tcp"]
        return _tcp_open(host, int(port))
    try:
        done = subprocess.run(check["command"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if done.returncode != 0:
        return False
    if "stdout" in check:
        return check["stdout"] in done.stdout
    if "stdout_any" in check:
        return any(word in done.stdout for word in check["stdout_any"])
    return True


def _last_log_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def start(daemon: Daemon, netns: Netns, *, timeout: float = 60.0) -> bool:
    """Start the daemon unless it runs; wait until it is ready. True if it was started."""
    if running_pid(daemon) is not None:
        wait_ready(daemon, timeout=timeout)
        return False
    if daemon.exclusive and is_ready(daemon):
        if "tcp" in daemon.ready:
            host, port = daemon.ready["tcp"]
            raise CesresError(f"cannot start {daemon.name}: {host}:{port} is already in use by another program")
        raise CesresError(
            f"cannot start {daemon.name}: another {daemon.name} that the sandbox did not start already answers; "
            "stop it first (the sandbox never takes over a service it did not configure)"
        )
    daemon.pidfile.unlink(missing_ok=True)
    # nsenter joins the network namespace only; "ip netns exec" would also remount /sys,
    # hiding /sys/fs/cgroup, without which slurmd refuses to start.
    argv = ["nsenter", f"--net=/run/netns/{netns.name}", *daemon.argv] if daemon.netns else daemon.argv
    if daemon.detach:
        # Foreground programs get their own session so they outlive cesres-ctl.
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    else:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise CesresError(f"{daemon.name} failed to start: {reason} (log: {daemon.log})")
    wait_ready(daemon, timeout=timeout)
    return True


def wait_ready(daemon: Daemon, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_ready(daemon) and running_pid(daemon) is not None:
            return
        time.sleep(POLL_SECONDS)
    detail = _last_log_line(daemon.log)
    suffix = f": {detail}" if detail else ""
    raise CesresError(f"{daemon.name} did not become ready within {timeout:.0f} s{suffix} (log: {daemon.log})")


def stop(daemon: Daemon, *, timeout: float = 15.0) -> bool:
    """Stop the daemon named by its pid file. True if a process was stopped."""
    pid = running_pid(daemon)
    if pid is None:
        daemon.pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _is_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(POLL_SECONDS)
    daemon.pidfile.unlink(missing_ok=True)
    return True
