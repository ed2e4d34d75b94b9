"""Issue 8: configured cluster paths mean what the cluster's login shell says, by one rule
(cesres_ctl.rules.expand_path through roles/cesres_login and the shared filter); an unset variable
is an error naming it, never a path under /."""

import json

import pytest

from tests.conftest import mini_repo, run_cli
from tests.integration.runs_support import MINI, Cli, one_error_line

pytestmark = pytest.mark.sandbox


def test_setup_with_an_unset_variable_in_a_path_names_it_and_creates_nothing(cluster_code):
    variables = {"cesres_root": "~/cesres-it", "cesres_venv": "$CESRES_UNSET_VENV_BASE/env", **mini_repo()}
    done = run_cli("setup", "--cluster", "sandbox", "-e", json.dumps(variables), timeout=900)
    assert done.returncode == 1
    line = one_error_line(done, among_others=True)
    assert "the variable $CESRES_UNSET_VENV_BASE is not set in a login shell on the cluster" in line, line
    assert cluster_code.ssh("ls -d /env ~/env 2>/dev/null; true").stdout.strip() == ""


def test_setup_expands_a_login_shell_variable(cluster_code):
    """$GLOBALSCRATCH is set by the sandbox's login shell: the venv lands there, as a CÉCI user means it."""
    variables = {
        "cesres_root": "~/cesres-it",
        "cesres_venv": "~/cesres-it-env",
        "cesres_hf_home": "$GLOBALSCRATCH/hf-it",
        **mini_repo(),
    }
    done = run_cli("setup", "--cluster", "sandbox", "-e", json.dumps(variables), timeout=1200)
    assert done.returncode == 0, done.stderr
    scratch = cluster_code.login_shell('printf %s "$GLOBALSCRATCH"').stdout.strip()
    assert scratch.startswith("/"), scratch
    listed = cluster_code.ssh(f"cat {scratch}/hf-it/cesres-models.list; rm -rf {scratch}/hf-it").stdout
    assert "Enoch/graphcodebert-py" in listed, listed


def test_train_with_an_unset_variable_in_a_path_names_it_and_submits_nothing(cluster_code, tmp_path):
    cli = Cli(tmp_path / "state")
    done = cli(
        "train",
        "configs/demo.yaml",
        "--set",
        "root=$CESRES_UNSET_ROOT/cesres",
        "--set",
        "venv=~/cesres-it-env",
        "--name",
        "unsetvar",
        "--partition",
        "batch",
        "--",
        "-d",
        "cpu",
        cwd=MINI,
    )
    assert done.returncode == 1
    line = one_error_line(done, among_others=True)
    assert "the variable $CESRES_UNSET_ROOT is not set in a login shell on the cluster" in line, line
    assert cli.json("runs") == []
