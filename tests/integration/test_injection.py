"""No option injection through the configuration or the environment, end to end (issue 18).

A repository URL or version that git would read as an option must not run a command on the cluster:
not through cesres-ctl (refused before any ssh), not through `ansible-playbook playbooks/setup.yml --check`
run by hand (the play's probe runs git on the login node before any role checks its inputs). A sandbox
root from the environment must not become ssh options on this machine either. Each injected command would
create a marker file; none may appear.
"""

import json
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import PROJECT, run_cli


def marker_on_cluster(sandbox) -> Path:
    # The login node shares this machine's file system: its user's home is under the sandbox root.
    return sandbox.home / f"injected-{uuid.uuid4().hex[:12]}"


def attacks(marker: Path) -> list[dict]:
    touch = f"touch {shlex.quote(str(marker))}"
    return [
        {"cesres_repo_url": f"--upload-pack={touch}"},
        {"cesres_repo_version": f"--upload-pack={touch}"},
        {"cesres_repo_url": f"ext::sh -c {touch.replace(' ', '% ')}"},
    ]


@pytest.mark.sandbox
def test_setup_refuses_a_repository_that_git_would_read_as_an_option(sandbox):
    marker = marker_on_cluster(sandbox)
    for attack in attacks(marker):
        variables = {"cesres_root": "~/cesres-inject", "cesres_venv": "~/cesres-inject-env", **attack}
        for check in (["--check"], []):
            done = run_cli("setup", "--cluster", "sandbox", *check, "-e", json.dumps(variables), timeout=300)
            assert done.returncode != 0, done.stdout
            assert "Traceback" not in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
            assert "cesres_repo_" in done.stderr
            assert not marker.exists(), f"{attack} ran a command on the cluster"


@pytest.mark.sandbox
def test_the_playbook_run_by_hand_in_check_mode_runs_no_configured_command(sandbox):
    """The probe runs git before any role's assert: the cluster-side code itself must refuse."""
    marker = marker_on_cluster(sandbox)
    env = {**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg")}
    for attack in attacks(marker):
        variables = {"cesres_root": "~/cesres-inject", "cesres_venv": "~/cesres-inject-env", **attack}
        done = subprocess.run(
            [
                str(Path(sys.executable).with_name("ansible-playbook")),
                "playbooks/setup.yml",
                "--check",
                "--limit",
                "sandbox",
                "-e",
                json.dumps(variables),
            ],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode != 0, done.stdout[-2000:]
        assert not marker.exists(), f"{attack} ran a command on the cluster in check mode"
    assert sandbox.ssh("test -e ~/cesres-inject/.git").returncode != 0, "check mode cloned something"


def test_a_sandbox_root_from_the_environment_never_becomes_ssh_options(tmp_path):
    marker = tmp_path / "injected"
    # Split as words, this is a valid ssh command line that runs the ProxyCommand: -F /dev/null exists.
    root = f"/dev/null -oProxyCommand=touch${{IFS}}{marker} -oUser=x"
    env = {**os.environ, "CESRES_SANDBOX_ROOT": root, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg")}
    done = run_cli("sandbox", "status", env=env, timeout=120)
    assert done.returncode != 0 and "CESRES_SANDBOX_ROOT" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    # By hand, Ansible reads the variable itself: one -F argument, a file that does not exist, no command.
    by_hand = subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), "sandbox", "-m", "ansible.builtin.ping"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert by_hand.returncode != 0
    assert not marker.exists(), "the sandbox root became ssh options"
