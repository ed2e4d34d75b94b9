"""`cesres-ctl setup --check` and `ansible-playbook playbooks/setup.yml --check` against the sandbox.

On a provisioned account (the run tests' ~/cesres-it and ~/cesres-it-env): exit 0, changed=0, no file
written. On a fresh account (paths that do not exist): exit 0, the steps that would change are listed,
and none of the paths exists afterwards. In between, an account provisioned by this module (its own root,
pushed from a copy of cesres-mini, with a component): check mode sees exactly what a real run would copy.
Non-disruptive: check mode writes nothing, and the module's own paths are removed at the end.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import MINI, PROJECT, copy_mini, mini_repo, run_cli
from tests.integration.runs_support import ROOT, VENV

pytestmark = pytest.mark.sandbox

BIN = Path(sys.executable).parent
DATASET = PROJECT / "tests" / "data" / "dataset"
# The variables of tests/integration/conftest.py's cluster_code, which provisions the run tests' account.
PROVISIONED = {"cesres_root": ROOT, "cesres_venv": VENV, "cesres_repo_force": True, **mini_repo()}
SUMMARY = re.compile(r"^sandbox: ok=(\d+) changed=(\d+) failed=(\d+) unreachable=(\d+)$", re.MULTILINE)
RECAP = re.compile(r"^sandbox\s*:\s*(.*)$", re.MULTILINE)


def summary(stderr: str) -> dict[str, int]:
    found = SUMMARY.findall(stderr)
    assert found, stderr[-3000:]
    return dict(zip(("ok", "changed", "failed", "unreachable"), map(int, found[-1]), strict=True))


def recap(stdout: str) -> dict[str, int]:
    found = RECAP.findall(stdout)
    assert found, stdout[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found[-1])}


def setup(*args: str, variables: dict, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return run_cli("setup", "--cluster", "sandbox", *args, "-e", json.dumps(variables), timeout=timeout)


def ansible_playbook_check(variables: dict) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "playbooks/setup.yml", "--check", "-l", "sandbox", "-e", json.dumps(variables)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )


def fresh_variables(tag: str) -> dict:
    return {
        "cesres_root": f"~/cesres-fresh-{tag}",
        "cesres_venv": f"~/cesres-fresh-{tag}-env",
        "cesres_hf_home": f"~/hf-fresh-{tag}",
        # A wrapper that does not exist yet: check mode must not write it either.
        "cesres_python_wrapper": f".cesres-fresh-{tag}/python",
        "cesres_data_items": [{"src": f"{DATASET}/", "dest": "data/ds"}],
    }


def existing(sandbox, *paths: str) -> list[str]:
    """Those of the paths ($HOME-relative) that exist on the cluster."""
    quoted = " ".join(f'"$HOME/{p}"' for p in paths)
    done = sandbox.ssh(f'for p in {quoted}; do [ -e "$p" ] && echo "$p"; done; true')
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def check_wrappers(sandbox) -> set[str]:
    """The temporary wrappers of check mode in the login node's /tmp (none is left behind)."""
    return set(sandbox.ssh("ls -d /tmp/cesres-python-check.* 2>/dev/null; true").stdout.split())


def written_since(sandbox, marker: str, *paths: str) -> list[str]:
    """Files under the paths ($HOME-relative) modified after the marker file, but for the run tests' own
    runs and Python's byte-code caches (jobs of other tests may write those meanwhile)."""
    quoted = " ".join(f'"$HOME/{p}"' for p in paths)
    done = sandbox.ssh(
        f"find {quoted} -newer \"$HOME/{marker}\" -not -path '*/runs/*' -not -path '*/__pycache__*' 2>/dev/null; true"
    )
    return done.stdout.split()


# --- a provisioned account ------------------------------------------------------------------------


def test_check_on_a_provisioned_account_changes_nothing(cluster_code):
    sandbox = cluster_code
    marker = f".cesres-check-marker-{uuid.uuid4().hex[:8]}"
    assert sandbox.ssh(f'touch "$HOME/{marker}" && sleep 1').returncode == 0
    try:
        done = setup("--check", variables=PROVISIONED)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr
        stats = summary(done.stderr)
        assert stats["changed"] == 0 and stats["failed"] == 0, done.stderr
        assert "setup --check of sandbox: nothing would change" in done.stdout
        assert "would change:" not in done.stdout

        via_playbook = ansible_playbook_check(PROVISIONED)
        assert via_playbook.returncode == 0, via_playbook.stdout[-3000:]
        assert recap(via_playbook.stdout)["changed"] == 0
        # Not ~/.cesres or the shared Hugging Face cache: test_setup.py resets those, maybe meanwhile.
        assert written_since(sandbox, marker, ROOT[2:], VENV[2:]) == []
    finally:
        sandbox.ssh(f'rm -f "$HOME/{marker}"')


# --- a fresh account ------------------------------------------------------------------------------


def test_check_on_a_fresh_account_lists_the_changes_and_creates_nothing(sandbox):
    tag = uuid.uuid4().hex[:8]
    variables = fresh_variables(tag)
    paths = [v[2:] for k, v in variables.items() if k in ("cesres_root", "cesres_venv", "cesres_hf_home")]
    paths.append(f".cesres-fresh-{tag}")
    wrappers = check_wrappers(sandbox)

    done = setup("--check", variables=variables)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    stats = summary(done.stderr)
    assert stats["changed"] > 0 and stats["failed"] == 0, done.stderr
    assert f"{stats['changed']} steps would change something" in done.stdout
    would = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("would change:")]
    assert len(would) == stats["changed"], done.stdout
    for role in ("cesres_python", "cesres_repo", "cesres_venv", "cesres_data", "cesres_hf_cache"):
        assert any(f"sandbox: {role} :" in line for line in would), (role, would)
    # The roles' reports of what they would do: notes, on stderr.
    home = f"{sandbox.home}/"
    assert "sandbox: would deploy master (" in done.stderr and f"into {home}cesres-fresh-{tag}" in done.stderr
    assert f"sandbox: would create the virtualenv {home}cesres-fresh-{tag}-env" in done.stderr
    assert "(the file is not on the cluster yet)" in done.stderr
    assert f"sandbox: would cache Enoch/graphcodebert-py in {home}hf-fresh-{tag}" in done.stderr
    assert existing(sandbox, *paths) == []
    assert check_wrappers(sandbox) == wrappers

    # The playbook itself, pushing a local checkout this time.
    pushed = {**variables, "cesres_repo_local_path": str(MINI)}
    via_playbook = ansible_playbook_check(pushed)
    assert via_playbook.returncode == 0, via_playbook.stdout[-3000:]
    stats = recap(via_playbook.stdout)
    assert stats["changed"] > 0 and stats["failed"] == 0
    output = " ".join(via_playbook.stdout.split())  # Ansible folds long messages
    assert f"would copy {MINI} into {home}cesres-fresh-{tag}, which does not exist yet" in output
    assert existing(sandbox, *paths) == []
    assert check_wrappers(sandbox) == wrappers


# --- check mode sees what a real run would copy ---------------------------------------------------


@pytest.fixture
def own_account(sandbox, tmp_path):
    """An account provisioned by a real setup: its own root pushed from a copy of cesres-mini, a component."""
    tag = uuid.uuid4().hex[:8]
    checkout = tmp_path / "cesres-mini"
    copy_mini(checkout)
    dataset = tmp_path / "dataset"
    shutil.copytree(DATASET, dataset)
    variables = {
        "cesres_root": f"~/cesres-check-{tag}",
        "cesres_venv": f"~/cesres-check-{tag}-env",
        "cesres_hf_home": f"~/hf-check-{tag}",
        "cesres_repo_local_path": str(checkout),
        "cesres_data_items": [{"src": f"{dataset}/", "dest": "data/ds"}],
    }
    paths = [variables[k][2:] for k in ("cesres_root", "cesres_venv", "cesres_hf_home")]
    try:
        done = setup(variables=variables)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr
        yield sandbox, variables, checkout, dataset, paths
    finally:
        quoted = " ".join(f'"$HOME/{p}"' for p in paths)
        sandbox.ssh(f"rm -rf {quoted}")


def test_check_reports_exactly_what_a_real_run_would_copy(own_account):
    sandbox, variables, checkout, dataset, paths = own_account
    unchanged = setup("--check", variables=variables)
    assert unchanged.returncode == 0, unchanged.stdout[-3000:] + unchanged.stderr
    assert summary(unchanged.stderr)["changed"] == 0

    (dataset / "train.txt").write_text((dataset / "train.txt").read_text() + "one more line\n")
    (checkout / "README.md").write_text((checkout / "README.md").read_text() + "\nA local edit.\n")
    remote = sandbox.ssh(f'cd "$HOME/{paths[0]}" && sha256sum README.md data/ds/train.txt').stdout
    changed = setup("--check", variables=variables)
    assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr
    assert summary(changed.stderr)["changed"] == 3, changed.stdout  # the push, its record, the component
    assert "would change: sandbox: cesres_repo : push | Copy the changed files" in changed.stdout
    assert "would change: sandbox: cesres_repo : push | Report the record of the push" in changed.stdout
    assert "would change: sandbox: cesres_data : copy | Copy the changed parts of each component" in changed.stdout
    assert sandbox.ssh(f'cd "$HOME/{paths[0]}" && sha256sum README.md data/ds/train.txt').stdout == remote

    # A file changed on the cluster since the push: check mode refuses as the real run would.
    assert sandbox.ssh(f'echo "# on the cluster" >> "$HOME/{paths[0]}/tools/make_dataset.py"').returncode == 0
    refused = setup("--check", variables=variables)
    assert refused.returncode == 1
    assert "would be overwritten: tools/make_dataset.py" in refused.stderr
