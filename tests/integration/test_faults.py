"""Issue 11's fault tests: a controller killed during pip, slurmctld down at submit, the login node down.

They stop sandbox daemons (and start them again), so they run after the other sandbox tests.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from cesres_ctl.runs.registry import Registry, Run
from cesres_ctl.sandbox import daemons
from cesres_ctl.sandbox import manifest as manifests
from tests.conftest import PROJECT, mini_repo
from tests.integration.runs_support import ROOT, SETS, Cli, cluster_runs, one_error_line

pytestmark = [pytest.mark.sandbox, pytest.mark.disruptive]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@contextmanager
def stopped(sandbox, name: str, *, sessions: bool = False) -> Iterator[None]:
    """The sandbox daemon `name` stopped for the block (with its open sessions, for an sshd), then started."""
    manifest = manifests.load(sandbox.root)
    daemon = next(d for d in manifest.daemons if d.name == name)
    pid = daemons.running_pid(daemon)
    assert pid is not None, f"{name} is not running"
    # An sshd serves each connection in a child process that outlives the listener: a node that is
    # down has none (and a ControlMaster connection must not keep reaching it).
    served = _children(pid) if sessions else []
    daemons.stop(daemon)
    for child in served:
        with suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    try:
        yield
    finally:
        daemons.start(daemon, manifest.netns)


# --- slurmctld down at submit ----------------------------------------------------------------------------


def test_slurmctld_down_at_submit_records_nothing_and_leaves_nothing(cluster_code, tmp_path):
    cli = Cli(tmp_path / "state")
    name = f"noctld-{uuid.uuid4().hex[:6]}"
    with stopped(cluster_code, "slurmctld"):
        done = cli(
            "train", "configs/demo.yaml", *SETS, "--name", name, "--partition", "batch", "--", "-d", "cpu", timeout=300
        )
    assert done.returncode == 1
    line = one_error_line(done, among_others=True)  # after the play's progress lines (stderr, docs/cli.md)
    assert "sbatch" in line and "slurm" in line.lower(), line
    assert cli.json("runs") == []
    assert cluster_runs(cluster_code, name) == []


# --- the login node down ----------------------------------------------------------------------------------


def test_the_login_node_down_gives_one_line_for_every_quick_command(cluster_code, tmp_path):
    cli = Cli(tmp_path / "state")
    registry = Registry(tmp_path / "state" / "cesres-ctl" / "runs.sqlite")
    run_id = f"down-{uuid.uuid4().hex[:10]}"
    registry.record_submission(
        Run("sandbox", run_id, "down", "999999", f"/{ROOT}/runs/{run_id}", "2026-01-01T00:00:00Z", "RUNNING")
    )
    dest = tmp_path / "fetched"
    with stopped(cluster_code, "sshd-login", sessions=True):
        for args in (("status", run_id), ("logs", run_id), ("fetch", run_id, "--dest", str(dest)), ("cancel", run_id)):
            done = cli(*args, timeout=120)
            assert done.returncode != 0, args
            line = one_error_line(done)
            assert "cannot reach" in line and "connection" in line.lower(), (args, line)
        listed = cli("runs", "--json")
    assert not dest.exists(), "fetch created its destination for a cluster it could not reach"
    assert listed.returncode == 0
    assert "could not ask sandbox" in listed.stderr
    assert json.loads(listed.stdout)[0]["state"] == "RUNNING"


# --- setup killed during pip ------------------------------------------------------------------------------


VENV = f"~/cesres-fault-{uuid.uuid4().hex[:6]}-env"


def _setup() -> subprocess.Popen[str]:
    variables = {"cesres_root": ROOT, "cesres_venv": VENV, **mini_repo()}
    return subprocess.Popen(
        [sys.executable, "-m", "cesres_ctl", "setup", "--cluster", "sandbox", "-e", json.dumps(variables)],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _installers(sandbox) -> tuple[int, bool]:
    """(pip installs running into the venv, the venv's ready stamp exists), in one look."""
    venv = VENV.replace("~", "$HOME", 1)
    name = venv.split("/")[-1]
    # [c]esres-…: the pattern must not match the shell that runs pgrep, whose command line holds it.
    script = (
        f'n=$(pgrep -u "$(id -u)" -f "[{name[0]}]{name[1:]}/bin/python -m pip .*install" | wc -l); '
        f'if [ -e "{venv}/.cesres-ready" ]; then echo "$n ready"; else echo "$n none"; fi'
    )
    count, stamp = sandbox.ssh(script).stdout.split()
    return int(count), stamp == "ready"


def test_setup_killed_during_pip_then_rerun_installs_once_and_is_ready_only_when_complete(cluster_code):
    sandbox = cluster_code
    started: list[subprocess.Popen[str]] = []
    try:
        first = _setup()
        started.append(first)
        deadline = time.monotonic() + 600
        while _installers(sandbox)[0] == 0:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "pip never started"
            time.sleep(0.3)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        second = _setup()
        started.append(second)
        seen = []
        while second.poll() is None:
            count, ready = _installers(sandbox)
            seen.append((count, ready))
            assert count <= 1, f"two pip installs into one venv: {seen}"
            assert not (count and ready), f"the venv read ready while pip was installing: {seen}"
            time.sleep(0.3)
        _out, err = second.communicate()
        assert second.returncode == 0, err
        count, ready = _installers(sandbox)
        assert (count, ready) == (0, True)
        # What the requirements install, and the import check found importable, is there.
        listed = sandbox.ssh(f"ls {VENV}/lib/python3*/site-packages").stdout.split()
        assert {"transformers", "git", "tabulate"} <= set(listed), listed
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        name = VENV.split("/")[-1]
        sandbox.ssh(f'pkill -u "$(id -u)" -f "[{name[0]}]{name[1:]}/bin/python"; rm -rf {VENV}')
