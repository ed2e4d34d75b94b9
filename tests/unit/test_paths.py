"""Where cesres-ctl finds the Ansible project: the checkout, the copy in an installed wheel, or the override."""

import importlib.util
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from cesres_ctl import paths
from cesres_ctl.errors import CesresError
from tests.conftest import PROJECT


def make_project(root: Path) -> Path:
    (root / "playbooks").mkdir(parents=True)
    (root / "ansible.cfg").write_text("[defaults]\n")
    return root


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A cesres_ctl package directory at tmp_path/site/cesres_ctl, as paths.py sees itself."""
    package = tmp_path / "site" / "cesres_ctl"
    package.mkdir(parents=True)
    monkeypatch.setattr(paths, "__file__", str(package / "paths.py"))
    monkeypatch.delenv("CESRES_CTL_PROJECT", raising=False)
    return package


def test_this_checkout_is_the_project_when_run_from_it():
    assert paths.project_dir() == Path(__file__).resolve().parents[2]


def test_the_checkout_beside_the_package_comes_first(package):
    make_project(package / paths.BUNDLED_PROJECT)
    checkout = make_project(package.parent)
    assert paths.project_dir() == checkout


def test_an_installed_wheel_uses_its_own_copy(package):
    bundled = make_project(package / paths.BUNDLED_PROJECT)
    assert paths.project_dir() == bundled


def test_the_override_wins(package, tmp_path, monkeypatch):
    make_project(package / paths.BUNDLED_PROJECT)
    other = make_project(tmp_path / "other")
    monkeypatch.setenv("CESRES_CTL_PROJECT", str(other))
    assert paths.project_dir() == other


def test_no_project_is_one_error_naming_where_it_looked(package):
    with pytest.raises(
        CesresError, match=r"cannot find the cesres-ctl project .* in .*_project; set CESRES_CTL_PROJECT"
    ):
        paths.project_dir()


def _hatch_build(monkeypatch: pytest.MonkeyPatch) -> Any:
    """hatch_build.py, imported without hatchling (which only a build installs): its hook's base stubbed."""
    interface = types.ModuleType("hatchling.builders.hooks.plugin.interface")
    interface.BuildHookInterface = object  # type: ignore[attr-defined]
    for name in ("hatchling", "hatchling.builders", "hatchling.builders.hooks", "hatchling.builders.hooks.plugin"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, interface.__name__, interface)
    spec = importlib.util.spec_from_file_location("hatch_build", PROJECT / "hatch_build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_wheel_carries_the_collection_where_ansible_cfg_finds_it(monkeypatch):
    """Every tracked file of the collection (galaxy.yml, meta/, plugins/, roles/) goes into the wheel under
    cesres_ctl/_project/collections/ansible_collections/cesres/ctl/, where a checkout has its link; the CLI's
    rules (a link to the collection's) are in the package as a file."""
    hatch_build = _hatch_build(monkeypatch)
    table = hatch_build.project_files(PROJECT)
    tracked = subprocess.run(
        ["git", "ls-files", *hatch_build.COLLECTION_FILES], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked
    in_wheel = set(table.values())
    missing = [name for name in tracked if f"{hatch_build.BUNDLE}/{paths.COLLECTION.as_posix()}/{name}" not in in_wheel]
    assert not missing
    assert paths.COLLECTION.as_posix() == hatch_build.COLLECTION
    assert (PROJECT / "cesres_ctl" / "rules.py").resolve() == PROJECT / "plugins" / "module_utils" / "rules.py"
