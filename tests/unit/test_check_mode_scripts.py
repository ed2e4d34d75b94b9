"""The roles' cluster-side scripts in check mode, run by a local bash: they say what would change, change nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parent.parent.parent / "roles"
# Lmod stand-in: every purge and load works.
MODULE_FN = "module() { return 0; }\nexport -f module\n"


def run_script(script: str, *args: str, home: Path, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", MODULE_FN + script, "script", *args],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(home), **(env or {})},
        check=False,
        cwd=home,
    )


def tree(path: Path) -> dict[str, float]:
    """Every file and directory under path with its modification time."""
    return {str(p): p.lstat().st_mtime for p in [path, *path.rglob("*")]} if path.exists() else {}


# --- cesres_python ------------------------------------------------------------------------------


@pytest.fixture
def python_home(tmp_path):
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "python3").symlink_to(sys.executable)
    return home


def choose(home: Path, mode: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    script = (ROLES / "cesres_python" / "files" / "choose_python.sh").read_text()
    env = {"PATH": f"{home / 'bin'}:/usr/bin:/bin", "TMPDIR": str(tmp)}
    return run_script(script, mode, "releases/2022a", "Python/3.10.4", ".cesres/python", home=home, env=env)


def test_python_plan_writes_nothing_in_the_home_and_a_temporary_wrapper_that_is_the_real_one(python_home, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    planned = choose(python_home, "plan", tmp)
    assert planned.returncode == 0, planned.stderr
    state, path = planned.stdout.split()[1:3]
    assert state == "changed" and Path(path).parent == tmp and Path(path).name.startswith("cesres-python-check.")
    assert not (python_home / ".cesres").exists()
    assert subprocess.run([path, "-c", "print(6 * 7)"], capture_output=True, text=True, check=True).stdout == "42\n"

    installed = choose(python_home, "install", tmp)
    assert installed.stdout.split()[1:3] == ["changed", str(python_home / ".cesres" / "python")]
    assert (python_home / ".cesres" / "python").read_text() == Path(path).read_text()

    again = choose(python_home, "plan", tmp)
    assert again.stdout.split()[1:3] == ["ok", str(python_home / ".cesres" / "python")]
    assert sorted(p.name for p in tmp.iterdir()) == [Path(path).name]  # the handler removes the first one


# --- cesres_repo (git mode) ---------------------------------------------------------------------


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@x"
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=env).stdout.strip()


@pytest.fixture
def origin(tmp_path):
    repo = tmp_path / "origin"
    repo.mkdir()
    git("init", "-q", "-b", "master", cwd=repo)
    (repo / "model.py").write_text("one\n")
    git("add", "model.py", cwd=repo)
    git("commit", "-q", "-m", "one", cwd=repo)
    return repo


def git_sync(home: Path, dest: str, url: Path, *, check: bool, force: bool = False) -> subprocess.CompletedProcess[str]:
    files = ROLES / "cesres_repo" / "files"
    script = (files / "lib.sh").read_text() + (files / "git_sync.sh").read_text()
    # The role passes the destination expanded (cesres_expand_path).
    dest = dest.replace("~", str(home), 1)
    return run_script(script, dest, str(url), "master", str(force).lower(), "", "", str(check).lower(), home=home)


def test_git_check_mode_reports_a_clone_and_creates_nothing(tmp_path, origin):
    home = tmp_path / "home"
    home.mkdir()
    done = git_sync(home, "~/code", origin, check=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["CESRES_REPO", "changed", git("rev-parse", "HEAD", cwd=origin), str(home / "code")]
    assert not (home / "code").exists()


def test_git_check_mode_on_a_deployed_checkout(tmp_path, origin):
    home = tmp_path / "home"
    home.mkdir()
    assert git_sync(home, "~/code", origin, check=False).returncode == 0
    code = home / "code"
    first = git("rev-parse", "HEAD", cwd=code)
    up_to_date = git_sync(home, "~/code", origin, check=True)
    assert up_to_date.stdout.split()[:3] == ["CESRES_REPO", "ok", first]

    (origin / "model.py").write_text("two\n")
    git("commit", "-q", "-am", "two", cwd=origin)
    before = tree(code)
    newer = git_sync(home, "~/code", origin, check=True)
    assert newer.stdout.split()[:3] == ["CESRES_REPO", "changed", git("rev-parse", "HEAD", cwd=origin)]
    assert tree(code) == before and git("rev-parse", "HEAD", cwd=code) == first  # not even fetched

    (code / "model.py").write_text("edited on the cluster\n")
    refused = git_sync(home, "~/code", origin, check=True)
    assert refused.returncode == 3 and "local changes" in refused.stderr
    forced = git_sync(home, "~/code", origin, check=True, force=True)
    assert forced.returncode == 0 and forced.stdout.split()[1] == "changed"
    assert (code / "model.py").read_text() == "edited on the cluster\n"


def test_git_check_mode_refuses_a_foreign_directory_as_the_real_run_does(tmp_path, origin):
    home = tmp_path / "home"
    (home / "code").mkdir(parents=True)
    (home / "code" / "notes.txt").write_text("mine\n")
    for check in (True, False):
        done = git_sync(home, "~/code", origin, check=check)
        assert done.returncode == 3 and "not a git checkout" in done.stderr
    assert sorted(p.name for p in (home / "code").iterdir()) == ["notes.txt"]


# --- cesres_venv --------------------------------------------------------------------------------


def venv_probe(home: Path, check: bool) -> subprocess.CompletedProcess[str]:
    files = ROLES / "cesres_venv" / "files"
    script = (files / "common.sh").read_text() + "\n" + (files / "probe.sh").read_text()
    env = {"PATH": f"{home / 'bin'}:/usr/bin:/bin", "CESRES_VENV_CHECK": str(check).lower()}
    # The role passes the paths expanded (cesres_expand_path).
    return run_script(
        script,
        f"{home}/env",
        f"{home}/code/req.txt",
        f"{home}/code/m.py",
        "config",
        "releases/2022a",
        home=home,
        env=env,
    )


def test_venv_probe_in_check_mode_accepts_requirements_not_deployed_yet(python_home):
    checked = venv_probe(python_home, check=True)
    assert checked.returncode == 0, checked.stderr
    assert "HASH none" in checked.stdout.splitlines() and "STATE missing" in checked.stdout.splitlines()
    real = venv_probe(python_home, check=False)
    assert real.returncode == 2 and "not found on the cluster" in real.stderr


# --- cesres_data --------------------------------------------------------------------------------


def test_data_mkdirs_in_check_mode_lists_the_directories_and_creates_none(tmp_path):
    tasks = yaml.safe_load((ROLES / "cesres_data" / "tasks" / "main.yml").read_text())
    script = next(t for t in tasks if t["name"] == "Create the destination directories on the cluster")["vars"][
        "__cesres_data_mkdirs"
    ]
    home = tmp_path / "home"
    (home / "root" / "old").mkdir(parents=True)
    checked = run_script(script, "true", f"{home}/root", "old", "data/train", "", home=home)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines() == [f"DEST {home}/root", "CREATED data/train"]
    assert sorted(p.name for p in (home / "root").iterdir()) == ["old"]
    fresh = run_script(script, "true", f"{home}/new", "data", home=home)
    assert fresh.stdout.splitlines() == [f"DEST {home}/new", "CREATED ", "CREATED data"]
    assert not (home / "new").exists()
    real = run_script(script, "false", f"{home}/new", "data", home=home)
    assert real.stdout.splitlines() == [f"DEST {home}/new", "CREATED ", "CREATED data"]
    assert (home / "new" / "data").is_dir()
