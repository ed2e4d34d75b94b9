"""A changed slurm.conf reaches the running cluster: `sandbox up` restarts slurmctld and slurmd, only them.

The change is the role's own knob (sandbox_cluster_slurm_conf_extra, passed with `sandbox up -e`), so no
file of the checkout is edited: MessageTimeout goes to 17 s (Slurm's default is 10), then back. Restarts
the Slurm daemons: disruptive, it runs after the other tests.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.sandbox, pytest.mark.disruptive]

CHANGED = {"sandbox_cluster_slurm_conf_extra": ["MessageTimeout=17"]}
SLURM_DAEMONS = {"slurmctld", "slurmd"}


def up(*args: str) -> subprocess.CompletedProcess[str]:
    done = run_cli("sandbox", "up", *args, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    return done


def pids() -> dict[str, int]:
    status = json.loads(run_cli("sandbox", "status", "--json").stdout)
    assert status["healthy"], status
    return {name: daemon["pid"] for name, daemon in status["daemons"].items()}


def message_timeout() -> int:
    """MessageTimeout as the running slurmctld reports it."""
    done = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60, check=True)
    match = re.search(r"^MessageTimeout\s*=\s*(\d+)", done.stdout, re.MULTILINE)
    assert match, done.stdout[-2000:]
    return int(match[1])


def markers(root: Path) -> list[str]:
    restart_dir = Path(json.loads((root / "sandbox.json").read_text())["restart_dir"])
    return sorted(p.name for p in restart_dir.iterdir())


def test_a_changed_slurm_conf_restarts_slurmctld_and_slurmd_and_nothing_else(sandbox):
    up()  # whatever an earlier build marked is restarted now: start from a settled cluster
    before = pids()
    default = message_timeout()
    assert default != 17
    try:
        changed = up("-e", json.dumps(CHANGED))
        assert "sandbox up: restarted slurmctld, slurmd (configuration changed)" in changed.stdout
        after = pids()
        assert {name for name in before if after[name] != before[name]} == SLURM_DAEMONS
        assert "MessageTimeout=17" in Path("/etc/slurm/slurm.conf").read_text()
        assert message_timeout() == 17
        assert markers(sandbox.root) == []
    finally:
        # Back to the role's slurm.conf, whatever happened above.
        restored = up()
    assert "sandbox up: restarted slurmctld, slurmd (configuration changed)" in restored.stdout
    back = pids()
    assert {name for name in before if back[name] != after[name]} == SLURM_DAEMONS
    assert "MessageTimeout" not in Path("/etc/slurm/slurm.conf").read_text()
    assert message_timeout() == default

    # Nothing changed: nothing restarts.
    again = up()
    assert "sandbox up: restarted" not in again.stdout
    assert pids() == back
    assert markers(sandbox.root) == []
    assert sandbox.ssh("sinfo --noheader --format=%T").stdout.strip() in {"idle", "mixed"}
