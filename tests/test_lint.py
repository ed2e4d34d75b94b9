"""Static checks are tests: ansible-lint (production profile), yamllint, ruff and mypy."""

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.lint


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=PROJECT, capture_output=True, text=True, timeout=900, check=False
    )


def test_ansible_lint_production_profile():
    done = run("ansible-lint", "--profile", "production", "--nocolor")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


def test_yamllint():
    done = run("yamllint", "--strict", ".")
    assert done.returncode == 0, done.stdout[-6000:]


def test_ruff_check():
    done = run("ruff", "check", ".")
    assert done.returncode == 0, done.stdout[-6000:]


def test_ruff_format():
    done = run("ruff", "format", "--check", ".")
    assert done.returncode == 0, done.stdout[-6000:]


def test_mypy():
    # [tool.mypy] in pyproject.toml: strict, on cesres_ctl/.
    assert (BIN / "mypy").exists(), f"mypy is not in {BIN}: pip install -e '.[dev]'"
    done = run("mypy")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
