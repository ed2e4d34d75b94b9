"""cesres-ctl installed like any Python tool: `pip install <checkout>` (not editable) into a fresh venv, then
used from a directory outside the checkout, against the sandbox.

The wheel carries the Ansible project (hatch_build.py puts it under cesres_ctl/_project/); the installed
cesres-ctl must find it there, not in the checkout, and run `sandbox status`, `doctor`, `setup` and
`train --dry-run` with it. Setup provisions the runs' own root and venv with the same variables as the
run tests' cluster_code fixture, so it changes nothing they rely on. pip reuses its cache: the first run
downloads ansible-core and the other dependencies (a minute or two), later ones take seconds.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MINI, PROJECT, mini_repo
from tests.integration.runs_support import ROOT, SETS, VENV

pytestmark = [pytest.mark.sandbox, pytest.mark.index]


def bundled(name: str = "PROJECT") -> tuple[str, ...]:
    """What the wheel carries, in the checkout's layout: hatch_build.py's PROJECT (or COLLECTION_FILES, the
    collection's files), read without hatchling."""
    tree = ast.parse((PROJECT / "hatch_build.py").read_text())
    value = next(
        n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id == name
    )
    return tuple(ast.literal_eval(value))


class Installed:
    """A venv with cesres-ctl installed from the checkout, and a working directory outside the checkout."""

    def __init__(self, venv: Path, cwd: Path, state: Path) -> None:
        self.venv = venv
        self.cwd = cwd
        self.python = venv / "bin" / "python"
        self.cesres_ctl = venv / "bin" / "cesres-ctl"
        # Nothing that points into the checkout: no PYTHONPATH, no project override, no activated venv.
        hidden = {"PYTHONPATH", "CESRES_CTL_PROJECT", "VIRTUAL_ENV", "ANSIBLE_CONFIG"}
        self.env = {k: v for k, v in os.environ.items() if k not in hidden}
        self.env["XDG_STATE_HOME"] = str(state)

    def run(self, *argv: str | Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.cwd,
            env=self.env,
        )

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return self.run(self.cesres_ctl, *args, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory, sandbox) -> Installed:
    base = tmp_path_factory.mktemp("install")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    cwd = base / "work"
    cwd.mkdir()
    installed = Installed(venv, cwd, base / "state")
    done = installed.run(installed.python, "-m", "pip", "install", "--quiet", PROJECT, timeout=1800)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return installed


def bundle_of(installed: Installed) -> Path:
    done = installed.run(installed.python, "-c", "from cesres_ctl import paths; print(paths.project_dir())")
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def tree(root: Path) -> dict[str, bytes]:
    """{relative path: content} of every file under root, following symlinks, without bytecode or the local
    caches that the build leaves out (hatch_build.py SKIPPED_DIRS)."""
    files = {}
    for directory, subdirs, names in os.walk(root, followlinks=True):
        subdirs[:] = [d for d in subdirs if d not in {"__pycache__", ".ruff_cache", "cesres-runs"}]
        for name in names:
            if not name.endswith(".pyc"):
                path = Path(directory, name)
                files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in root.rglob("*")
        if "__pycache__" not in p.parts
    }


def test_the_wheel_carries_the_project_outside_the_checkout(installed):
    bundle = bundle_of(installed)
    site_packages = next((installed.venv / "lib").glob("python3*/site-packages"))
    assert bundle == site_packages / "cesres_ctl" / "_project"
    assert not bundle.is_relative_to(PROJECT)
    # The checkout's layout, file for file, with inventory/group_vars a real copy of group_vars.
    for top in bundled():
        source, copy = PROJECT / top, bundle / top
        if source.is_file():
            assert copy.read_bytes() == source.read_bytes(), top
        else:
            assert tree(copy) == tree(source), top
    # The collection cesres.ctl where the checkout has its link (ansible.cfg's collections_path finds it there).
    collection = bundle / "collections" / "ansible_collections" / "cesres" / "ctl"
    for top in bundled("COLLECTION_FILES"):
        source, copy = PROJECT / top, collection / top
        if source.is_file():
            assert copy.read_bytes() == source.read_bytes(), top
        else:
            assert tree(copy) == tree(source), top
    assert (PROJECT / "inventory" / "group_vars").is_symlink()
    assert not any(p.is_symlink() for p in bundle.rglob("*"))
    assert (bundle / "inventory" / "group_vars" / "cluster_sandbox.yml").is_file()


def test_installed_cli_drives_the_sandbox_from_outside_the_checkout(installed):
    bundle = bundle_of(installed)
    before = snapshot(bundle)

    done = installed.cli("sandbox", "status", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["healthy"] is True, done.stdout

    done = installed.cli("doctor", "--cluster", "sandbox", timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    # The run tests' own root and venv, with the variables of their cluster_code fixture.
    variables = {"cesres_root": ROOT, "cesres_venv": VENV, "cesres_repo_force": True, **mini_repo()}
    done = installed.cli("setup", "--cluster", "sandbox", "-e", json.dumps(variables), timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "sandbox: ok=" in done.stdout + done.stderr

    # A config and its data copied next to each other, away from the checkout.
    shutil.copytree(MINI / "configs", installed.cwd / "configs")
    shutil.copytree(MINI / "data", installed.cwd / "data")
    done = installed.cli("train", "configs/demo.yaml", "--cluster", "sandbox", *SETS, "--dry-run", "--json")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    dry = json.loads(done.stdout)
    assert dry["dry_run"] is True and dry["cluster"] == "sandbox"
    assert f"{installed.cwd}/data/train.txt -> inputs/training.txt" in dry["text"]
    assert "#SBATCH --partition=gpu" in dry["text"]

    # Ansible wrote nothing into the installed project (no retry files, caches or artifacts).
    assert snapshot(bundle) == before
