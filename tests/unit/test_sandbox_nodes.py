"""The sandbox's compute node: `sandbox status` reports one that takes no job (drained when slurmctld or slurmd
stopped under a job), and `sandbox up` resumes it. With stand-ins for sinfo and scontrol: nothing here
touches the real sandbox (tests/integration/test_controller_faults.py does)."""

import os

import pytest

from cesres_ctl.sandbox import lifecycle
from tests import fake_slurm

SINFO = """#!/bin/bash
cat "$FAKE_NODES"
"""
SCONTROL = """#!/bin/bash
echo "$*" >> "$FAKE_SCONTROL_LOG"
sed -i "s/|drain[a-z]*|[^|]*\\$/|idle|none/; s/|down\\*\\?|[^|]*\\$/|idle|none/" "$FAKE_NODES"
"""


@pytest.fixture
def nodes(tmp_path, monkeypatch):
    bin_dir = fake_slurm.install(tmp_path / "bin", sinfo=SINFO, scontrol=SCONTROL)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NODES", str(tmp_path / "nodes"))
    monkeypatch.setenv("FAKE_SCONTROL_LOG", str(tmp_path / "scontrol.log"))

    def listing(*lines: str) -> None:
        # sinfo --Node lists a node once per partition.
        (tmp_path / "nodes").write_text("".join(f"{line}\n{line}\n" for line in lines))

    return listing, tmp_path / "scontrol.log"


@pytest.mark.parametrize(
    ("state", "usable"),
    [
        ("idle", True),
        ("allocated", True),
        ("mixed", True),
        ("idle*", True),  # not responding yet: up waits for it
        ("draining", False),
        ("drained", False),
        ("drained*", False),
        ("down*", False),
        ("fail", False),
    ],
)
def test_a_node_takes_jobs_unless_drained_or_down(state, usable):
    assert lifecycle.Node("n", state, "").usable is usable


def test_status_lists_each_node_once_with_its_reason(nodes):
    listing, _ = nodes
    listing("sbxnode01|draining|Kill task failed")
    assert lifecycle._nodes() == [lifecycle.Node("sbxnode01", "draining", "Kill task failed")]
    listing("sbxnode01|idle|none")
    assert lifecycle._nodes() == [lifecycle.Node("sbxnode01", "idle", "")]


def test_up_resumes_a_drained_node_and_leaves_a_working_one(nodes):
    listing, log = nodes
    listing("sbxnode01|drained|Not responding")
    assert [node.name for node in lifecycle._resume_nodes()] == ["sbxnode01"]
    assert log.read_text() == "update NodeName=sbxnode01 State=RESUME\n"
    assert lifecycle._nodes()[0].usable
    log.unlink()
    assert lifecycle._resume_nodes() == []
    assert not log.exists()


def test_a_sandbox_with_a_drained_node_is_not_healthy():
    report = lifecycle.SandboxStatus(root="/r", built=True, login_via_gateway=True)
    report.daemons = {"slurmctld": {"running": True, "pid": 1}}
    assert report.healthy
    report.nodes = [lifecycle.Node("sbxnode01", "drained", "Not responding")]
    assert not report.healthy
