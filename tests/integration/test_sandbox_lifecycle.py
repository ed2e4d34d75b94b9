"""`cesres-ctl sandbox down` stops every daemon of ours; `up` brings the cluster back."""

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.sandbox, pytest.mark.disruptive]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_down_stops_every_daemon_and_up_restarts_them(sandbox):
    before = json.loads(run_cli("sandbox", "status", "--json").stdout)
    pids = [d["pid"] for d in before["daemons"].values()]
    assert all(pids), before

    down = run_cli("sandbox", "down")
    assert down.returncode == 0, down.stderr
    assert not [pid for pid in pids if _alive(pid)], "daemons still running after down"
    stopped = json.loads(run_cli("sandbox", "status", "--json").stdout)
    assert not any(d["running"] for d in stopped["daemons"].values())
    assert not stopped["healthy"]
    assert run_cli("sandbox", "status").returncode == 1
    assert not Path("/run/netns/cesres-compute").exists()

    up = run_cli("sandbox", "up", timeout=1800)
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr
    after = json.loads(run_cli("sandbox", "status", "--json").stdout)
    assert after["healthy"], after
    assert after["login_via_gateway"]
    assert sandbox.ssh("sinfo --noheader --format=%T").stdout.strip() in {"idle", "mixed"}


def test_purge_removes_everything_and_up_rebuilds_from_nothing(sandbox):
    down = run_cli("sandbox", "down", "--purge", timeout=600)
    assert down.returncode == 0, down.stdout[-2000:] + down.stderr
    assert not sandbox.root.exists()
    assert not Path("/etc/slurm/slurm.conf").exists()
    assert not Path("/etc/profile.d/cesres-sandbox.sh").exists()
    assert sandbox.user not in Path("/etc/passwd").read_text()
    assert str(sandbox.root) not in Path("/etc/lmod/modulespath").read_text()

    up = run_cli("sandbox", "up", timeout=1800)
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr
    after = json.loads(run_cli("sandbox", "status", "--json").stdout)
    assert after["healthy"], after
    assert sandbox.ssh("id -un").stdout.strip() == sandbox.user
