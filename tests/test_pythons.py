"""The unit tier on the other Pythons that cesres-ctl supports (requires-python: 3.11 to 3.13; this session runs
it on its own), each in a virtualenv with the dev extra, and so with the newest ansible-core that Python takes:
2.19 on 3.11, 2.21 on 3.12 and 3.13 (README.md, Install).

The virtualenvs live in .cache/pythons/, made again only when pyproject.toml changes; pip takes what it
downloaded before from its own cache. The interpreters are the machine's: python3.X on PATH, or pyenv's.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import PROJECT

pytestmark = [pytest.mark.pythons, pytest.mark.index]

SUPPORTED = ("3.11", "3.12", "3.13")
OTHERS = tuple(version for version in SUPPORTED if version != f"{sys.version_info[0]}.{sys.version_info[1]}")
ENVS = PROJECT / ".cache" / "pythons"
# The unit tier of the code that runs on the controller's Python. Left out: the tests of cluster-side code (the
# modules and their module_utils, the probe, cesres-mini), which runs on the cluster's Python (rules.CLUSTER_PYTHON,
# tests/unit/test_cluster_python.py) whatever the controller's is; they are a fifth of the tier's time, which
# this test adds twice to the suite's.
CLUSTER_SIDE = (
    "test_cesres_mini.py",
    "test_cesres_run.py",
    "test_check_mode_scripts.py",
    "test_cluster_python.py",
    "test_requirements_policy.py",
)
TIER = (
    "tests/unit",
    "-q",
    "-p",
    "no:cacheprovider",
    "-m",
    "not sandbox",
    *(f"--ignore=tests/unit/{name}" for name in CLUSTER_SIDE),
)


def interpreter(version: str) -> Path | None:
    """python3.X on PATH if it runs, else the newest of pyenv's 3.X.* (~/.pyenv/versions, or $PYENV_ROOT's).

    pyenv's shim of a version that is installed but not selected is on PATH and fails ("command not found").
    """
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-c", "pass"], capture_output=True, timeout=60, check=False).returncode == 0:
        return Path(found)
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [path for path in versions.glob(f"{version}.*") if re.fullmatch(rf"{version}\.\d+", path.name)]
    newest = max(candidates, key=lambda path: int(path.name.rsplit(".", 1)[1]), default=None)
    return newest / "bin" / f"python{version}" if newest is not None else None


def environment(version: str, python: Path) -> Path:
    """The virtualenv of `version` with cesres-ctl and its dev extra, made again when pyproject.toml changed."""
    venv = ENVS / version
    stamp = venv / ".cesres-ctl-installed"
    wanted = hashlib.sha256((PROJECT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == wanted:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    for argv in (
        [str(python), "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-e", f"{PROJECT}[dev]"],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, cwd=PROJECT, timeout=1200, check=False)
        assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    stamp.write_text(wanted)
    return venv


def unit_tier(venv: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", *TIER],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env=env,
        # A guard against a hang: the whole unit tier took 13 min on 3.11 on a 2-core machine, two side by side more.
        timeout=3600,
        check=False,
    )


def test_the_unit_tier_passes_on_every_other_supported_python():
    # Opt-in: ~20 min, which would bring the full suite past 75 min on a 2-core machine, too near CI's 90.
    if os.environ.get("CESRES_TEST_PYTHONS") != "1":
        pytest.skip("the other Pythons' unit tier runs with CESRES_TEST_PYTHONS=1 (about 20 min)")
    pythons = {version: interpreter(version) for version in OTHERS}
    missing = [version for version, python in pythons.items() if python is None]
    if missing:
        message = f"no Python {', '.join(missing)} on this machine (PATH, pyenv)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI's machine image has them: not a reason to test less
        pytest.skip(message)
    venvs = {version: environment(version, python) for version, python in pythons.items() if python is not None}
    # Side by side: the two cores, while this session waits.
    with ThreadPoolExecutor(max_workers=len(venvs)) as pool:
        results = dict(zip(venvs, pool.map(unit_tier, venvs.values()), strict=True))
    for version, done in results.items():
        ansible = subprocess.run(
            [str(venvs[version] / "bin" / "python"), "-c", "import ansible; print(ansible.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
        assert done.returncode == 0, f"Python {version}, ansible-core {ansible}: {summary}\n{done.stdout[-6000:]}"
