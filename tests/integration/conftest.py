"""Fixtures of the run tests (tests/integration/runs_support.py holds their helpers)."""

import json

import pytest

from tests.conftest import mini_repo, run_cli
from tests.integration.runs_support import ROOT, VENV, Cli


@pytest.fixture(scope="module")
def cluster_code(sandbox):
    """The runs' own CESReS checkout and venv on the cluster, provisioned by cesres-ctl setup."""
    # Provisioned by setup itself (the code at the sandbox's published version, a venv marked ready).
    variables = {"cesres_root": ROOT, "cesres_venv": VENV, "cesres_repo_force": True, **mini_repo()}
    done = run_cli("setup", "--cluster", "sandbox", "-e", json.dumps(variables), timeout=1200)
    assert done.returncode == 0, done.stderr
    return sandbox


@pytest.fixture(scope="module")
def cli(tmp_path_factory, cluster_code):
    return Cli(tmp_path_factory.mktemp("state"))
