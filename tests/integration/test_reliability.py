"""Issue 11 against the sandbox: what a hostile user found lost, half done or misleading.

Each test names the defect it covers; each failed on the code before the fix (see the closing note of
issue 11 for which ones).
"""

import hashlib
import json
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.runs_support import MINI, SETS, Cli, cluster_runs, demo_config_with, one_error_line

pytestmark = pytest.mark.sandbox

# A job that runs until it is stopped (cancelled by each test that starts one).
LONG = ("--partition", "batch", "--time", "00:05:00")
LONG_MODEL = ("--", "-l", "100000", "-d", "cpu")
QUICK = ("--partition", "batch")
QUICK_MODEL = ("--", "-l", "1", "-d", "cpu")


def tag(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def cluster_jobs(sandbox, name: str) -> list[str]:
    """Ids of the jobs of that name that Slurm knows, live (squeue) or ended (sacct, which lags)."""
    quoted = shlex.quote(name)
    done = sandbox.ssh(f"squeue -h -n {quoted} -o %i; sacct -X -n -P -S now-1hour -o JobID --name={quoted}; true")
    return sorted(set(done.stdout.split()))


@pytest.fixture
def own_cli(tmp_path, cluster_code):
    return Cli(tmp_path / "state")


# --- 1. a local path is a literal path ---------------------------------------------------------------


@pytest.mark.parametrize("variable", ["alt", None], ids=["variable-set", "variable-unset"])
def test_a_dollar_in_a_local_data_path_stages_that_very_file(own_cli, sandbox, tmp_path, variable):
    # $USER: a variable that Ansible's own environment keeps, so that its expansion would show.
    data = tmp_path / "data"
    data.mkdir()
    literal = data / "$USER.txt"
    literal.write_text((MINI / "data" / "train.txt").read_text())
    # What Ansible's expansion of $USER would pick instead: another valid data file.
    (data / "alt.txt").write_text((MINI / "data" / "validation.txt").read_text())
    config = demo_config_with(tmp_path, '"data/train.txt"', json.dumps(str(literal)))
    if variable:
        own_cli.env["USER"] = variable
    else:
        own_cli.env.pop("USER", None)
    name = tag("literal")
    done = own_cli("train", config, *SETS, "--name", name, *QUICK, "--json", *QUICK_MODEL)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    staged = sandbox.ssh(f"sha256sum {shlex.quote(run['remote_dir'])}/inputs/training.txt").stdout.split()[0]
    assert staged == hashlib.sha256(literal.read_bytes()).hexdigest()
    own_cli.wait_final(run["run_id"])


# --- 10. nothing half done on the cluster --------------------------------------------------------------


def test_a_refused_submission_leaves_no_run_directory_and_no_record(own_cli, sandbox):
    name = tag("refused")
    # Only sbatch itself refuses this (an unknown node feature): staging has happened by then.
    done = own_cli(
        "train", "configs/demo.yaml", *SETS, "--name", name, *QUICK, "--sbatch=--constraint=nofeature", *QUICK_MODEL
    )
    assert done.returncode == 1
    line = one_error_line(done, among_others=True)  # after the play's progress lines (stderr, docs/cli.md)
    assert "sbatch" in line and "feature" in line.lower(), line
    assert cluster_runs(sandbox, name) == []
    assert own_cli.json("runs") == []


# --- 4. a job is never submitted without being recorded -------------------------------------------------


def test_a_corrupt_registry_stops_train_before_anything_is_sent(own_cli, sandbox, tmp_path):
    registry = tmp_path / "state" / "cesres-ctl" / "runs.sqlite"
    registry.parent.mkdir(parents=True)
    registry.write_bytes(b"SQLite format 3\x00" + b"\x13" * 8000)
    name = tag("corrupt")
    done = own_cli("train", "configs/demo.yaml", *SETS, "--name", name, *QUICK, *QUICK_MODEL)
    assert done.returncode == 1
    line = one_error_line(done)
    assert str(registry) in line, line
    assert cluster_runs(sandbox, name) == []
    assert cluster_jobs(sandbox, name) == []


def test_a_submission_that_cannot_be_recorded_names_its_job_and_is_recovered(cluster_code, tmp_path, monkeypatch):
    from cesres_ctl.errors import CesresError
    from cesres_ctl.runs.registry import Registry
    from cesres_ctl.runs.submit import prepare, submit

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(MINI)
    name = tag("unrecorded")
    prepared = prepare(
        Path("configs/demo.yaml"),
        cluster="sandbox",
        name=name,
        overrides={"partition": "batch"},
        model_args=["-l", "1", "-d", "cpu"],
        new=False,
        settings=[item for item in SETS if item != "--set"],
    )

    class FullDisk(Registry):
        def record_submissions(self, runs):
            raise CesresError(f"run registry {self.path}: database or disk is full")

    with pytest.raises(CesresError) as failed:
        submit(prepared, quiet=True, registry=FullDisk())
    message = str(failed.value)
    jobs = cluster_jobs(cluster_code, name)
    assert len(jobs) == 1, jobs
    job_id = jobs[0]
    assert f"job {job_id}" in message and f"{name}-" in message, message
    # The next command records it.
    listed = Registry().list("sandbox")
    assert [(run.name, run.job_id) for run in listed] == [(name, job_id)]
    Cli(tmp_path / "state").wait_final(listed[0].run_id)


# --- 9. interrupted waits, stale states ----------------------------------------------------------------


def start_wait(cli: Cli, name: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cesres_ctl",
            "train",
            "configs/demo.yaml",
            *SETS,
            "--name",
            name,
            *LONG,
            "--wait",
            *extra,
            *LONG_MODEL,
        ],
        cwd=MINI,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt_once_following(cli: Cli, process: subprocess.Popen[str], name: str) -> tuple[str, str]:
    deadline = time.monotonic() + 120
    while not [r for r in cli.json("runs") if r["name"] == name]:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "train --wait never recorded its run"
        time.sleep(0.5)
    time.sleep(2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    return out, err


def test_ctrl_c_during_wait_says_the_job_runs_on_and_how_to_follow_it(own_cli, sandbox):
    name = tag("interrupted")
    process = start_wait(own_cli, name)
    _, err = interrupt_once_following(own_cli, process, name)
    run = next(r for r in own_cli.json("runs") if r["name"] == name)
    assert f"job {run['job_id']} is still" in err, err
    for command in ("logs -f", "fetch", "cancel"):
        assert f"cesres-ctl {command} {run['run_id']}" in err, err
    assert not own_cli.json("status", run["run_id"])["final"]
    own_cli("cancel", run["run_id"])


def test_ctrl_c_during_wait_with_cancel_on_interrupt_cancels_the_job(own_cli, sandbox):
    name = tag("interrupted")
    process = start_wait(own_cli, name, "--cancel-on-interrupt")
    _, err = interrupt_once_following(own_cli, process, name)
    run = next(r for r in own_cli.json("runs") if r["name"] == name)
    assert f"cancelled {run['run_id']}" in err, err
    assert own_cli.wait_final(run["run_id"], timeout=60)["state"] == "CANCELLED"


def test_runs_refreshes_states_that_changed_on_the_cluster(own_cli, sandbox):
    name = tag("stale")
    done = own_cli("train", "configs/demo.yaml", *SETS, "--name", name, *LONG, "--json", *LONG_MODEL)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    # Cancelled behind cesres-ctl's back: the registry still says PENDING or RUNNING.
    assert sandbox.ssh(f"scancel {run['job_id']}").returncode == 0
    deadline = time.monotonic() + 60
    while True:
        listed = {r["run_id"]: r for r in own_cli.json("runs")}
        if listed[run["run_id"]]["state"] == "CANCELLED":
            break
        assert time.monotonic() < deadline, listed[run["run_id"]]
        time.sleep(2)
    assert listed[run["run_id"]]["final"] is True


# --- 10. exit codes of jobs that were stopped ----------------------------------------------------------


def test_a_cancelled_job_does_not_report_exit_code_0(own_cli, sandbox):
    name = tag("stopped")
    done = own_cli("train", "configs/demo.yaml", *SETS, "--name", name, *LONG, "--json", *LONG_MODEL)
    run = json.loads(done.stdout)
    deadline = time.monotonic() + 60
    while own_cli.json("status", run["run_id"])["state"] == "PENDING" and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(3)
    assert own_cli.json("cancel", run["run_id"])["cancelled"] is True
    status = own_cli.wait_final(run["run_id"], timeout=60)
    assert status["state"] == "CANCELLED"
    written = sandbox.ssh(f"cat {shlex.quote(run['remote_dir'])}/exit_code").stdout.strip()
    assert written and written != "0", written
    assert status["exit_code"] == written
    assert {r["run_id"]: r for r in own_cli.json("runs")}[run["run_id"]]["exit_code"] == written
    line = own_cli("status", run["run_id"]).stdout
    assert "exit code 0" not in line and f"exit code {written}" in line, line


# --- 7. host keys --------------------------------------------------------------------------------------


def test_a_changed_gateway_host_key_is_named_as_such(own_cli, sandbox, tmp_path):
    # A copy of the sandbox's client files whose known_hosts holds another key for the gateway.
    root = tmp_path / "root"
    (root / "ssh").mkdir(parents=True)
    known = root / "ssh" / "known_hosts"
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    other_key = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    lines = (sandbox.root / "ssh" / "known_hosts").read_text().splitlines()
    known.write_text(
        "".join(
            f"{sandbox.gateway_alias} {other_key}\n" if line.split()[0] == sandbox.gateway_alias else line + "\n"
            for line in lines
        )
    )
    config = (sandbox.root / "ssh" / "ssh_config").read_text()
    config = config.replace(str(sandbox.root / "ssh" / "known_hosts"), str(known))
    config = config.replace(str(sandbox.root / "ssh" / "cm-%C"), str(root / "ssh" / "cm-%C"))
    (root / "ssh" / "ssh_config").write_text(config)
    own_cli.env["CESRES_SANDBOX_ROOT"] = str(root)
    # A state directory of its own, short enough to hold the ssh master sockets: a master connection
    # opened before the key changed would rightly go on working.
    state = Path(tempfile.mkdtemp(prefix="hk", dir="/tmp"))
    own_cli.env["XDG_STATE_HOME"] = str(state)
    own_cli.env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(state / "cp")

    try:
        registry = state / "cesres-ctl" / "runs.sqlite"
        registry.parent.mkdir(parents=True)
        from cesres_ctl.runs.registry import Registry, Run

        Registry(registry).record_submission(
            Run("sandbox", "hostkey-0123456789", "hostkey", "1", "/nowhere", "2026-01-01T00:00:00Z", "RUNNING")
        )
        for args in (
            ("status", "hostkey-0123456789"),
            ("logs", "hostkey-0123456789"),
            ("doctor", "--cluster", "sandbox"),
            ("setup", "--cluster", "sandbox"),
        ):
            done = own_cli(*args)
            assert done.returncode != 0
            text = done.stderr + done.stdout
            assert "kex_exchange_identification" not in text, text
            assert f"host key verification failed for {sandbox.gateway_alias}" in text, text
            assert "ssh-keygen" in text or "known_hosts" in text, text
        assert sqlite3.connect(registry).execute("select count(*) from runs").fetchone()[0] == 1
    finally:
        shutil.rmtree(state, ignore_errors=True)
