"""One job-state rule (rules.job_state) for the CLI (status, runs, train --wait) and for the cluster modules
(cesres_run decides by it whether to submit a run again): for every answer squeue, sacct and the run's
exit_code file can give, both say the same state, and none of them makes cesres_run submit again a job
that may still run. The CLI's real shell commands and the module's real code run against fake squeue and
sacct (tests/fake_slurm.py)."""

import itertools
import os
import subprocess

import pytest

from cesres_ctl import rules
from cesres_ctl.runs import remote
from cesres_ctl.runs.registry import Run
from tests import fake_slurm
from tests.conftest import collection_module

QUEUE = [None, "", "PENDING", "RUNNING", "COMPLETING", "SUSPENDED", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"]
ACCOUNTING = [None, "", "PENDING", "RUNNING", "REQUEUED", "COMPLETED", "FAILED", "CANCELLED by 1001", "TIMEOUT"]
ACCOUNTING += ["OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED"]
EXIT_CODES = ["", "0", "2", "143"]
LIVE = {"PENDING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED"}


@pytest.fixture(scope="module")
def cluster_module():
    """The collection's module_utils cluster.py, imported as the modules import it (its rules included)."""
    return collection_module("plugins.module_utils.cluster")


def _env(bin_dir, queue, accounting):
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env["FAKE_SQUEUE"] = "down" if queue is None else queue
    env["FAKE_SACCT"] = "none" if accounting is None else accounting
    return env


def may_still_run(queue, accounting):
    """The oracle, independent of the rule: a job may run while the controller lists it live, or when the
    controller does not answer and accounting has not recorded its end."""
    if queue is None:
        return not accounting or accounting.split()[0] not in rules.TERMINAL_STATES
    return queue in LIVE


def test_the_cli_and_the_cluster_module_decide_every_state_alike(tmp_path, monkeypatch, cluster_module):
    bin_dir = fake_slurm.install(tmp_path / "bin")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run = Run("c", "r-0123456789", "r", "42", str(run_dir), "now", "PENDING")
    differ, resubmitted = [], []
    for queue, accounting, code in itertools.product(QUEUE, ACCOUNTING, EXIT_CODES):
        (run_dir / rules.EXIT_CODE_FILE).unlink(missing_ok=True)
        if code:
            (run_dir / rules.EXIT_CODE_FILE).write_text(code + "\n")
        env = _env(bin_dir, queue, accounting)
        one = subprocess.run(["bash", "-c", remote.status_command(run)], env=env, capture_output=True, text=True)
        many = subprocess.run(["bash", "-c", remote.statuses_command([run])], env=env, capture_output=True, text=True)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        module_state = cluster_module.slurm_state(run.job_id, run_dir)
        cli_state = remote.parse_status(one.stdout).state
        cli_many = remote.parse_statuses(many.stdout, [run])[run.run_id].state
        case = (queue, accounting, code)
        if not cli_state == cli_many == module_state:
            differ.append((case, cli_state, cli_many, module_state))
        if rules.may_resubmit(run.job_id, module_state) and may_still_run(queue, accounting):
            resubmitted.append((case, module_state))
    assert differ == []
    assert resubmitted == []


@pytest.mark.parametrize(
    ("queue", "accounting", "code", "state"),
    [
        # Accounting lags behind the job's end (no record yet): only a success is final.
        ("", "", "1", "UNKNOWN"),
        ("", "", "0", "COMPLETED"),
        # Killed by a signal (scancel, the time limit, a preemption): only accounting can say how it ended.
        ("", None, "143", "UNKNOWN"),
        ("", None, "137", "UNKNOWN"),
        # No accounting on the cluster, the controller no longer lists it: the file is all there will be.
        ("", None, "2", "FAILED"),
        # The controller does not answer: accounting's last word, or nothing final.
        (None, "RUNNING", "", "RUNNING"),
        (None, None, "2", "UNKNOWN"),
        (None, "", "1", "UNKNOWN"),
        (None, "CANCELLED by 1001", "", "CANCELLED"),
        # squeue lists it: its word, even when a previous job's exit code is there (a requeued job).
        ("RUNNING", "FAILED", "1", "RUNNING"),
    ],
)
def test_the_rule(queue, accounting, code, state):
    assert rules.job_state(queue, accounting, code)[0] == state


def test_the_cli_says_when_the_controller_does_not_answer(tmp_path):
    from cesres_ctl.runs import jobs

    bin_dir = fake_slurm.install(tmp_path / "bin")
    run = Run("c", "r-0123456789", "r", "42", str(tmp_path), "now", "PENDING")
    done = subprocess.run(
        ["bash", "-c", remote.status_command(run)], env=_env(bin_dir, None, "RUNNING"), capture_output=True, text=True
    )
    job = remote.parse_status(done.stdout)
    assert (job.state, job.controller) == ("RUNNING", False)
    assert jobs.describe(job).endswith("(the Slurm controller does not answer: as accounting last saw it)")
    done = subprocess.run(
        ["bash", "-c", remote.status_command(run)], env=_env(bin_dir, "RUNNING", None), capture_output=True, text=True
    )
    assert remote.parse_status(done.stdout).controller


@pytest.mark.parametrize(
    ("job", "state", "resubmitted"),
    [
        ("", "", True),  # no job yet
        ("7", "FAILED", True),
        ("7", "TIMEOUT", True),
        ("7", "CANCELLED", True),
        ("7", "PENDING", False),
        ("7", "RUNNING", False),
        ("7", "COMPLETED", False),
        ("7", "UNKNOWN", False),  # nothing says it ended: never risk a duplicate
    ],
)
def test_a_run_is_submitted_again_only_when_its_job_ended_without_completing(job, state, resubmitted):
    assert rules.may_resubmit(job, state) is resubmitted
