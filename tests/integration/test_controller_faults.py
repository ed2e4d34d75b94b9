"""Issue 18's controller faults: `status` while slurmctld does not answer, and a compute node left drained.

They stop slurmctld and drain the sandbox's compute node (and put both back), so they run after the other
sandbox tests.
"""

import json
import subprocess
import time
import uuid

import pytest

from tests.conftest import run_cli
from tests.integration.runs_support import Cli
from tests.integration.test_faults import stopped

pytestmark = [pytest.mark.sandbox, pytest.mark.disruptive]


def _running(cli: Cli, name: str) -> str:
    """A run of `name` whose job runs long (many loops), once it runs; its run id."""
    run = cli._train(("--name", name, "--partition", "batch", "--time", "00:10:00"), ("-d", "cpu", "-l", "100000"))
    deadline = time.monotonic() + 180
    while cli.json("status", run["run_id"])["state"] != "RUNNING":
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(2)
    return str(run["run_id"])


def test_status_says_when_the_controller_does_not_answer(cluster_code, tmp_path):
    cli = Cli(tmp_path / "state")
    run_id = _running(cli, f"noctl-{uuid.uuid4().hex[:6]}")
    # With the controller down, status answers from accounting, which records the start a moment after squeue.
    job = cli.json("status", run_id)["job_id"]
    deadline = time.monotonic() + 60
    while "RUNNING" not in cluster_code.ssh(f"sacct -n -X -o State -j {job}").stdout:
        assert time.monotonic() < deadline, "accounting did not record the start"
        time.sleep(2)
    try:
        with stopped(cluster_code, "slurmctld"):
            done = cli("status", run_id, timeout=120)
            status = cli.json("status", run_id, timeout=120)
            listed = cli("runs", timeout=120)
        assert done.returncode == 0, done.stderr
        said = done.stdout + done.stderr
        assert "the Slurm controller does not answer: as accounting last saw it" in said, said
        assert (status["state"], status["controller"], status["final"]) == ("RUNNING", False, False)
        assert "the Slurm controller of sandbox does not answer" in listed.stderr
        # Answering again: the state is squeue's, without the hint.
        deadline = time.monotonic() + 60
        while not cli.json("status", run_id)["controller"]:
            assert time.monotonic() < deadline, "slurmctld did not answer again"
            time.sleep(2)
    finally:
        cli("cancel", run_id, timeout=120)


def _node_report() -> tuple[int, dict]:
    done = run_cli("sandbox", "status", "--json", timeout=120)
    return done.returncode, json.loads(done.stdout)


def test_sandbox_status_reports_a_drained_node_and_up_resumes_it(sandbox):
    _, before = _node_report()
    [node] = before["nodes"]
    subprocess.run(
        ["scontrol", "update", f"NodeName={node['name']}", "State=DRAIN", "Reason=cesres-ctl test"], check=True
    )
    try:
        code, report = _node_report()
        assert code == 1 and not report["healthy"], report
        assert report["nodes"][0]["state"].startswith("drain") and report["nodes"][0]["reason"] == "cesres-ctl test"
        text = run_cli("sandbox", "status", timeout=120).stdout
        assert f"node {node['name']} drained, cesres-ctl test: it takes no job" in text, text
        up = run_cli("sandbox", "up", timeout=1800)
        assert up.returncode == 0, up.stderr
        resumed = f"sandbox up: resumed the compute node {node['name']} (it was drained, cesres-ctl test)"
        assert resumed in up.stdout + up.stderr, up.stdout + up.stderr
        # The resumed node answers the controller's next ping a moment later ("idle*" until then).
        deadline = time.monotonic() + 90
        code, after = _node_report()
        while after["nodes"][0]["state"] not in ("idle", "mixed", "allocated") and time.monotonic() < deadline:
            time.sleep(3)
            code, after = _node_report()
        assert code == 0 and after["healthy"] and after["nodes"][0]["state"] in ("idle", "mixed", "allocated"), after
    finally:
        subprocess.run(["scontrol", "update", f"NodeName={node['name']}", "State=RESUME"], check=False)
