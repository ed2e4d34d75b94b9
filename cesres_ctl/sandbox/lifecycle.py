"""Bring the sandbox cluster up and down, and report on it."""

import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cesres_ctl.errors import CesresError
from cesres_ctl.runner import PlaybookResult, run_playbook
from cesres_ctl.sandbox import daemons, netns
from cesres_ctl.sandbox.manifest import Manifest, load

SSH_TIMEOUT_SECONDS = 20


def require_root() -> None:
    if os.geteuid() != 0:
        raise CesresError("the sandbox cluster is built and run as root on this machine: run with sudo")


def _run_build_playbook(
    playbook: str, *, verbose: bool, quiet: bool, extravars: dict[str, Any] | None = None
) -> PlaybookResult:
    result = run_playbook(playbook, verbose=verbose, title="sandbox", quiet=quiet, extravars=extravars)
    if not result.ok:
        raise CesresError(result.failure or f"{playbook} failed", log_path=str(result.log_path))
    return result


@dataclass(frozen=True)
class UpResult:
    manifest: Manifest
    restarted: list[str]  # daemons that ran and were restarted to read a changed configuration, in start order
    resumed: list["Node"] = field(default_factory=list)  # compute nodes that took no job, as they were


def marked_for_restart(restart_dir: Path) -> set[str]:
    """The daemon names that the role's handlers marked for a restart (one file each)."""
    try:
        return {path.name for path in restart_dir.iterdir() if path.is_file()}
    except FileNotFoundError:
        return set()


def restart_order(daemon_names: Sequence[str], marked: Iterable[str]) -> list[str]:
    """The marked daemons in the order to stop them: the reverse of the start order, so that a daemon
    stops before what it depends on (slurmd before slurmctld before munged). Unknown names are ignored."""
    wanted = set(marked)
    return [name for name in reversed(daemon_names) if name in wanted]


def up(root: Path, *, verbose: bool = False, quiet: bool = False, extravars: dict[str, Any] | None = None) -> UpResult:
    """Build (idempotently) and start the sandbox; restart the daemons whose configuration changed.

    The build playbook's handlers mark each daemon whose configuration file it changed
    (``<restart_dir>/<daemon>``); those are stopped by pid file before the daemons start in order,
    and a daemon's marker is removed once it runs again, so a failed start is retried by the next up.
    """
    require_root()
    _run_build_playbook("playbooks/sandbox.yml", verbose=verbose, quiet=quiet, extravars=extravars)
    manifest = load(root)
    _ensure_run_dirs()
    # First of all: the controller and accounting addresses live on the veth pair, and
    # without it traffic to them would leave the machine by the default route.
    netns.ensure(manifest.netns)
    marked = marked_for_restart(manifest.restart_dir)
    by_name = {daemon.name: daemon for daemon in manifest.daemons}
    stopped = {name for name in restart_order(list(by_name), marked) if daemons.stop(by_name[name])}
    for daemon in manifest.daemons:
        daemons.start(daemon, manifest.netns)
        if daemon.name in marked:
            (manifest.restart_dir / daemon.name).unlink(missing_ok=True)
    for name in marked - set(by_name):
        # A daemon the manifest no longer has: nothing to restart.
        (manifest.restart_dir / name).unlink(missing_ok=True)
    _ensure_accounting(manifest)
    return UpResult(manifest, [name for name in by_name if name in stopped], _resume_nodes())


def _ensure_run_dirs() -> None:
    """/run may be a fresh tmpfs after a reboot: recreate what sshd and munged need there."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    munge_run = Path("/run/munge")
    munge_run.mkdir(mode=0o755, exist_ok=True)
    shutil.chown(munge_run, user="munge", group="munge")


def _sacctmgr(*args: str) -> str:
    done = subprocess.run(["sacctmgr", *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise CesresError(f"sacctmgr {' '.join(args)} failed: {reason}")
    return done.stdout


def _ensure_accounting(manifest: Manifest) -> None:
    """Give the cluster user an account, as CÉCI users have (sacct, fair share)."""
    if not _sacctmgr("--noheader", "--parsable2", "show", "account", manifest.account, "format=account").strip():
        _sacctmgr(
            "--immediate",
            "add",
            "account",
            manifest.account,
            "Description=cesres-ctl sandbox",
            "Organization=cesres",
        )
    if not _sacctmgr("--noheader", "--parsable2", "show", "user", manifest.user, "format=user").strip():
        _sacctmgr(
            "--immediate",
            "add",
            "user",
            manifest.user,
            f"Account={manifest.account}",
            f"DefaultAccount={manifest.account}",
        )


def down(root: Path, *, purge: bool = False, verbose: bool = False, quiet: bool = False) -> list[str]:
    """Stop every daemon of the sandbox by pid file; with purge, remove its state too.

    Returns the names of the daemons that were stopped.
    """
    require_root()
    stopped: list[str] = []
    try:
        manifest: Manifest | None = load(root)
    except CesresError:
        manifest = None
    if manifest is not None:
        for daemon in reversed(manifest.daemons):
            if daemons.stop(daemon):
                stopped.append(daemon.name)
        netns.remove(manifest.netns)
    if purge:
        # The purge entry point of the role removes the root too, with everything outside it.
        _run_build_playbook("playbooks/sandbox_purge.yml", verbose=verbose, quiet=quiet)
    return stopped


@dataclass
class Partition:
    name: str
    available: str
    max_time: str
    default: bool


@dataclass(frozen=True)
class Node:
    name: str
    state: str  # sinfo's long form: idle, allocated, draining, drained, down*, ...
    reason: str

    @property
    def usable(self) -> bool:
        """Whether the node takes jobs: not drained, draining, down or failing (a stopped slurmctld or
        slurmd leaves it so until it is resumed)."""
        return not self.state.rstrip("*~#!%$@^-").startswith(("drain", "down", "fail", "inval"))


def _nodes() -> list[Node]:
    """The compute nodes as slurmctld sees them (one line per node; [] when it does not answer)."""
    try:
        done = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--format=%N|%T|%E"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    nodes: dict[str, Node] = {}
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        name, state, reason = [*line.split("|", 2), "", ""][:3]
        nodes.setdefault(name, Node(name, state, "" if reason == "none" else reason))
    return list(nodes.values())


# How long up waits for the compute node to register with a restarted slurmctld.
NODE_WAIT_SECONDS = 30


def _resume_nodes() -> list[Node]:
    """Resume the compute nodes that take no job (drained when slurmctld or slurmd stopped under a job, or
    down): as they were. A restarted slurmctld lists a node as down until its slurmd registers again."""
    deadline = time.monotonic() + NODE_WAIT_SECONDS
    nodes = _nodes()
    while (not nodes or any(node.state.endswith("*") for node in nodes)) and time.monotonic() < deadline:
        time.sleep(1)
        nodes = _nodes()
    resumed = [node for node in nodes if not node.usable]
    for node in resumed:
        done = subprocess.run(
            ["scontrol", "update", f"NodeName={node.name}", "State=RESUME"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise CesresError(f"cannot resume the compute node {node.name} ({node.state}): {reason}")
    return resumed


@dataclass
class SandboxStatus:
    root: str
    built: bool
    daemons: dict[str, dict[str, object]] = field(default_factory=dict)
    login_via_gateway: bool = False
    partitions: list[Partition] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    ssh_config: str | None = None
    host_alias: str | None = None
    gateway_alias: str | None = None
    user: str | None = None

    @property
    def healthy(self) -> bool:
        daemons = all(d["running"] for d in self.daemons.values())
        return self.built and self.login_via_gateway and daemons and all(node.usable for node in self.nodes)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["healthy"] = self.healthy
        return data


def ssh_command(manifest: Manifest, *remote: str) -> list[str]:
    """An ssh command line that reaches the login node through the gateway."""
    return ["ssh", "-F", str(manifest.ssh_config), manifest.login_alias, *remote]


def _login_answers(manifest: Manifest) -> bool:
    try:
        done = subprocess.run(
            ssh_command(manifest, "true"), capture_output=True, timeout=SSH_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _partitions() -> list[Partition]:
    try:
        done = subprocess.run(
            ["sinfo", "--noheader", "--format=%P|%a|%l"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    partitions = []
    for line in done.stdout.splitlines():
        name, available, max_time = line.split("|")
        partitions.append(Partition(name.rstrip("*"), available, max_time, name.endswith("*")))
    return partitions


def status(root: Path) -> SandboxStatus:
    try:
        manifest = load(root)
    except CesresError:
        return SandboxStatus(root=str(root), built=False)
    report = SandboxStatus(
        root=str(root),
        built=True,
        ssh_config=str(manifest.ssh_config),
        host_alias=manifest.login_alias,
        gateway_alias=manifest.gateway_alias,
        user=manifest.user,
    )
    for daemon in manifest.daemons:
        current = daemons.state(daemon)
        report.daemons[daemon.name] = {"running": current.running, "pid": current.pid}
    if report.daemons.get("sshd-gateway", {}).get("running") and report.daemons.get("sshd-login", {}).get("running"):
        report.login_via_gateway = _login_answers(manifest)
    if report.daemons.get("slurmctld", {}).get("running"):
        report.partitions = _partitions()
        report.nodes = _nodes()
    return report
