"""Where cesres-ctl finds the Ansible project: the checkout, the copy in an installed wheel, or the override."""

from pathlib import Path

import pytest

from cesres_ctl import paths
from cesres_ctl.errors import CesresError


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
