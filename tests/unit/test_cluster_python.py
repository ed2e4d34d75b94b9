"""The oldest Python that cesres-ctl's code on the cluster runs on is declared once (rules.CLUSTER_PYTHON) and
held everywhere: the probe refuses an older one, ruff lints for it, the docs say it, and every file that runs
on the cluster imports under a real interpreter of that version (found as the sandbox finds its Python 3.10)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import ansible
import pytest

from cesres_ctl import rules
from tests.conftest import PROJECT

MINIMUM = ".".join(map(str, rules.CLUSTER_PYTHON))
FIND_PYTHON = PROJECT / "roles" / "sandbox_cluster" / "files" / "find_python310.sh"
# Everything that runs on the cluster: the collection's modules and what they share (the programs that the
# venv's Python runs, requirements_policy.py and cache_models.py, included).
CLUSTER_FILES = sorted([*PROJECT.glob("plugins/modules/*.py"), *PROJECT.glob("plugins/module_utils/*.py")])


@pytest.fixture(scope="module")
def oldest_python() -> str:
    assert rules.CLUSTER_PYTHON == (3, 10), "find_python310.sh looks for this version: change both"
    done = subprocess.run(["bash", str(FIND_PYTHON)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"no CPython {MINIMUM} on this machine (the sandbox needs one too): {done.stderr}"
    return f"{done.stdout.strip()}/bin/python{MINIMUM}"


def test_every_cluster_side_file_imports_under_the_oldest_python(oldest_python, tmp_path):
    # Ansible sends the collection's module_utils as ansible_collections.cesres.ctl.plugins.module_utils.<name>,
    # beside its own ansible.module_utils (basic, common, ...).
    shutil.copytree(Path(ansible.__file__).parent / "module_utils", tmp_path / "ansible" / "module_utils")
    (tmp_path / "ansible" / "__init__.py").write_text("")
    shared = tmp_path.joinpath("ansible_collections", "cesres", "ctl", "plugins", "module_utils")
    shutil.copytree(PROJECT / "plugins" / "module_utils", shared, ignore=shutil.ignore_patterns("__pycache__"))
    script = (
        "import importlib.util, sys\n"
        "for number, path in enumerate(sys.argv[1:]):\n"
        "    spec = importlib.util.spec_from_file_location(f'cluster_file_{number}', path)\n"
        "    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(module)\n"
        "print(sys.version_info[:2])\n"
    )
    done = subprocess.run(
        [oldest_python, "-c", script, *map(str, CLUSTER_FILES)],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(rules.CLUSTER_PYTHON)
    assert len(CLUSTER_FILES) >= 10


def test_the_probe_refuses_an_older_python():
    probe = (PROJECT / "roles" / "cesres_python" / "files" / "probe.sh").read_text()
    assert re.search(rf"^min_python={re.escape(MINIMUM)}$", probe, re.MULTILINE)


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda path: str(path.relative_to(PROJECT)))
def test_ruff_lints_each_cluster_side_file_for_it(path):
    config = next(parent / "ruff.toml" for parent in path.parents if (parent / "ruff.toml").exists())
    assert config.parent != PROJECT, f"{path.relative_to(PROJECT)} is linted for the CLI's Python, not the cluster's"
    assert f'target-version = "py{MINIMUM.replace(".", "")}"' in config.read_text()


def test_the_docs_name_it_and_no_other():
    texts = [
        (path, path.read_text())
        for path in [*PROJECT.glob("roles/*/README.md"), *PROJECT.glob("docs/*.md"), PROJECT / "pyproject.toml"]
    ]
    named = [(path.name, version) for path, text in texts for version in re.findall(r"Python >= (3\.\d+)", text)]
    assert named, "the docs say nowhere which Python the cluster needs"
    # ansible-core's own minimum (3.8) may be named, as such; cesres-ctl's is CLUSTER_PYTHON.
    assert {version for _name, version in named} == {MINIMUM}, named
    assert sys.version_info >= rules.CLUSTER_PYTHON  # the CLI's own Python is newer still
