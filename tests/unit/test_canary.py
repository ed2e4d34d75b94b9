"""The suite's check that no process leaves the environment in a file under /tmp (tests/conftest.py,
no_environment_in_tmp): wherever a test writes it, the check finds it, pytest's own directories included."""

import secrets
import textwrap
from pathlib import Path

import pytest

from tests.conftest import PROJECT

pytest_plugins = ["pytester"]

INNER = """
import os
import pytest

def canary():
    return os.environ["CESRES_TEST_ENV_CANARY"]

@pytest.fixture(scope="session")
def kept(tmp_path_factory):
    return tmp_path_factory.mktemp("kept")

def test_into_its_tmp_path(tmp_path):
    (tmp_path / "f").write_text(canary())

def test_into_a_directory_of_the_session(kept):
    (kept / "f").write_text(canary())

def test_into_tmp():
    with open({leak!r}, "w") as out:
        out.write(canary())

def test_clean(tmp_path):
    (tmp_path / "f").write_text("nothing")
"""


def test_the_environment_is_found_in_tmp_and_in_pytests_own_directories(pytester: pytest.Pytester, monkeypatch):
    leak = Path("/tmp") / f"cesres-test-leak-{secrets.token_hex(8)}"
    pytester.makeconftest("from tests.conftest import _pytest_temp, no_environment_in_tmp  # noqa: F401\n")
    pytester.makepyfile(test_inner=textwrap.dedent(INNER.format(leak=str(leak))))
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    finally:
        leak.unlink(missing_ok=True)
    output = result.stdout.str()
    result.assert_outcomes(passed=4, errors=3)
    # Each leak blamed where it can be: on its test, or (a fixture's directory) at the session's end.
    for test, path in (
        ("test_into_its_tmp_path", "test_into_its_tmp_path0/f"),
        ("test_into_tmp", str(leak)),
        ("test_clean", "kept0/f"),
    ):
        assert f"ERROR test_inner.py::{test} - " in output, output
        assert path in output, output
