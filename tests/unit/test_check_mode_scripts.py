"""The roles' cluster-side code in check mode, run here: it says what would change, changes nothing.

roles/cesres_python's login shell (files/probe.sh) by a local bash; the modules' shared code
(the collection's module_utils provision.py) imported as the modules run it.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import collection_module

PROJECT = Path(__file__).resolve().parent.parent.parent
ROLES = PROJECT / "roles"
setup = collection_module("plugins.module_utils.provision")
probe_report = collection_module("plugins.filter.cesres").FilterModule().filters()["cesres_probe_report"]
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


def choose(home: Path, mode: str, tmp: Path, *extra: str, env: dict | None = None) -> dict:
    """files/probe.sh's JSON as the play reads it (filter cesres_probe_report): no module check, no probe, then
    `extra` (module groups)."""
    done = run_probe(home, mode, tmp, *extra, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return probe_report(done.stdout)


def run_probe(home: Path, mode: str, tmp: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    script = (ROLES / "cesres_python" / "files" / "probe.sh").read_text()
    env = {"PATH": f"{home / 'bin'}:/usr/bin:/bin", "TMPDIR": str(tmp), **(env or {})}
    return run_script(
        script, mode, "releases/2022a", "Python/3.10.4", ".cesres/python", "", "0", *extra, home=home, env=env
    )


def test_python_plan_writes_nothing_in_the_home_and_a_temporary_wrapper_that_is_the_real_one(python_home, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    planned = choose(python_home, "plan", tmp)
    path = planned["interpreter"]
    assert planned["state"] == "changed" and Path(path).parent == tmp
    assert Path(path).name.startswith("cesres-python-check.")
    assert not (python_home / ".cesres").exists()
    assert subprocess.run([path, "-c", "print(6 * 7)"], capture_output=True, text=True, check=True).stdout == "42\n"

    installed = choose(python_home, "install", tmp)
    assert [installed["state"], installed["interpreter"]] == ["changed", str(python_home / ".cesres" / "python")]
    assert (python_home / ".cesres" / "python").read_text() == Path(path).read_text()

    again = choose(python_home, "plan", tmp)
    assert [again["state"], again["interpreter"]] == ["ok", str(python_home / ".cesres" / "python")]
    assert sorted(p.name for p in tmp.iterdir()) == [Path(path).name]  # the handler removes the first one


def test_the_login_shell_reports_its_environment_and_the_module_groups_as_json(python_home, tmp_path):
    """One JSON object: the login environment (before any module command), and each group's environment."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    report = choose(python_home, "check", tmp, "2", "releases/2022a", "git/2.23", "0")
    assert report["state"] == "checked" and report["module"] == "Python/3.10.4"
    assert report["login_env"]["HOME"] == str(python_home) and report["login_env"]["TMPDIR"] == str(tmp)
    assert list(report["module_envs"]) == ["releases/2022a git/2.23"] and report["module_errors"] == {}
    assert report["module_envs"]["releases/2022a git/2.23"]["HOME"] == str(python_home)
    assert not (python_home / ".cesres").exists()


def test_the_login_shell_prints_any_environment_as_valid_json(python_home, tmp_path):
    """Bash writes the report: values with quotes, backslashes, newlines, control characters and bytes that are
    not UTF-8 reach the play unchanged (or, for invalid bytes, replaced), never break the JSON."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    tricky = 'a "quoted" \\ back\nslash\n\tline\x01\x1b[0m end'
    done = run_probe(python_home, "check", tmp, env={"TRICKY": tricky})
    last = done.stdout.splitlines()[-1]
    assert json.loads(last)["state"] == "checked"  # valid JSON as printed
    assert probe_report(done.stdout)["login_env"]["TRICKY"] == tricky


def test_the_login_shell_refuses_a_python_older_than_the_modules_need(python_home, tmp_path):
    """The version is read from `python3 -V` (no code is passed to it): 3.9 fails in one line, 3.10 passes."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    fake = python_home / "bin" / "python3"
    fake.unlink()
    fake.write_text('#!/bin/sh\necho "Python 3.9.18"\n')
    fake.chmod(0o755)
    done = run_probe(python_home, "check", tmp)
    assert done.returncode == 2
    failure = json.loads(done.stdout.splitlines()[-1])
    assert failure["failed"] and failure["msg"].endswith("is 3.9.18: cesres-ctl's modules need Python >= 3.10")
    fake.write_text('#!/bin/sh\necho "Python 3.11.2"\n')
    assert choose(python_home, "check", tmp)["version"] == "3.11.2"


def test_the_login_shell_passes_no_code_to_python():
    """No code travels as a string on the probe path: the chosen Python is only asked its version."""
    script = (ROLES / "cesres_python" / "files" / "probe.sh").read_text()
    assert not re.search(r"\s-c\s", script.replace("bash -lc", "")), "probe.sh runs code given as a string"
    assert re.findall(r'"\$py" (\S+)', script) == ["-V"]


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


def git_sync(home: Path, dest: str, url: Path, *, check: bool, force: bool = False) -> dict:
    """The module cesres_git's work: {"changed", "commit", "path"}, or {"refused", "msg"}."""
    # The role passes the destination expanded (cesres_expand_path).
    dest = dest.replace("~", str(home), 1)
    sync = setup.git_plan if check else setup.git_sync
    try:
        return sync(dest, str(url), "master", force, dict(os.environ, HOME=str(home)))
    except setup.SetupError as exc:
        return {"refused": exc.kind == "refused", "msg": str(exc)}


def test_git_check_mode_reports_a_clone_and_creates_nothing(tmp_path, origin):
    home = tmp_path / "home"
    home.mkdir()
    done = git_sync(home, "~/code", origin, check=True)
    assert done == {"changed": True, "commit": git("rev-parse", "HEAD", cwd=origin), "path": str(home / "code")}
    assert not (home / "code").exists()


def test_git_check_mode_on_a_deployed_checkout(tmp_path, origin):
    home = tmp_path / "home"
    home.mkdir()
    assert git_sync(home, "~/code", origin, check=False)["changed"]
    code = home / "code"
    first = git("rev-parse", "HEAD", cwd=code)
    up_to_date = git_sync(home, "~/code", origin, check=True)
    assert (up_to_date["changed"], up_to_date["commit"]) == (False, first)
    assert not git_sync(home, "~/code", origin, check=False)["changed"]

    (origin / "model.py").write_text("two\n")
    git("commit", "-q", "-am", "two", cwd=origin)
    before = tree(code)
    newer = git_sync(home, "~/code", origin, check=True)
    assert (newer["changed"], newer["commit"]) == (True, git("rev-parse", "HEAD", cwd=origin))
    assert tree(code) == before and git("rev-parse", "HEAD", cwd=code) == first  # not even fetched

    (code / "model.py").write_text("edited on the cluster\n")
    refused = git_sync(home, "~/code", origin, check=True)
    assert refused["refused"] and "local changes" in refused["msg"] and "model.py" in refused["msg"]
    assert git_sync(home, "~/code", origin, check=False)["refused"]
    forced = git_sync(home, "~/code", origin, check=True, force=True)
    assert forced["changed"]
    assert (code / "model.py").read_text() == "edited on the cluster\n"
    assert git_sync(home, "~/code", origin, check=False, force=True)["commit"] == git("rev-parse", "HEAD", cwd=origin)
    assert (code / "model.py").read_text() == "two\n"


def test_git_check_mode_refuses_a_foreign_directory_as_the_real_run_does(tmp_path, origin):
    home = tmp_path / "home"
    (home / "code").mkdir(parents=True)
    (home / "code" / "notes.txt").write_text("mine\n")
    for check in (True, False):
        done = git_sync(home, "~/code", origin, check=check)
        assert done["refused"] and "not a git checkout" in done["msg"]
    assert sorted(p.name for p in (home / "code").iterdir()) == ["notes.txt"]


# --- cesres_venv --------------------------------------------------------------------------------


def test_venv_state_in_check_mode_accepts_requirements_not_deployed_yet(python_home):
    env = {"PATH": f"{python_home / 'bin'}:/usr/bin:/bin", "HOME": str(python_home)}
    checked = setup.venv_state(f"{python_home}/env", f"{python_home}/code/req.txt", "config", env, check=True)
    assert checked["hash"] == "none" and checked["state"] == "missing"
    with pytest.raises(setup.SetupError, match="not found on the cluster"):
        setup.venv_state(f"{python_home}/env", f"{python_home}/code/req.txt", "config", env, check=False)


# --- cesres_data --------------------------------------------------------------------------------


def test_data_lists_the_missing_directories_and_creates_none(tmp_path):
    home = tmp_path / "home"
    (home / "root" / "old").mkdir(parents=True)
    assert setup.dirs_missing(f"{home}/root", ["old", "data/train", ""]) == ["data/train"]
    assert sorted(p.name for p in (home / "root").iterdir()) == ["old"]
    assert setup.dirs_missing(f"{home}/new", ["data"]) == ["", "data"]
    assert not (home / "new").exists()


# --- the play's one probe -------------------------------------------------------------------------


def test_the_probe_reads_each_part_and_names_an_unexpandable_path(tmp_path, origin):
    """As roles/cesres_python runs it: paths expanded with the login environment by the shared rule, each part
    with the environment of its module group."""
    home = tmp_path / "home"
    (home / "hf").mkdir(parents=True)
    # Recorded by this venv (its ready stamp "s1"), and by another one (another transformers, another layout).
    (home / "hf" / "cesres-models.list").write_text("a/b main s1\nc/d main s0\n")
    (home / "env" / "bin").mkdir(parents=True)
    (home / "env" / ".cesres-ready").write_text("s1\n")
    login = {"HOME": str(home), "PATH": os.environ["PATH"]}
    git_set = ["releases/2022a", "git/2.23.0"]
    envs = {"login": login, "modules": {" ".join(git_set): {**login, "GIT_SET": "1"}}, "errors": {"x y": "no x"}}
    request = {
        "repo": {"mode": "git", "path": "~/code", "what": "cesres_repo_dest", "url": str(origin), "set": git_set},
        "hf_cache": {"home": "~/hf", "python": "~/env/bin/python", "models": [["a/b", "main"], ["c/d", "main"]]},
        "data": {"dest": "$UNSET/x", "what": "cesres_data_dest", "dirs": ["data"]},
        "venv": {"path": "~/env", "requirements": "~/req.txt", "config": "c", "set": ["x", "y"]},
    }
    state = setup.probe_with(request, envs)
    assert state["repo"]["changed"] and state["repo"]["path"] == str(home / "code")
    # What roles/cesres_unchanged watches of each part: the model cache's list and directories, the code's .git.
    hf = home / "hf"
    watch = [str(hf), str(hf / "cesres-models.list"), str(hf / "transformers")]
    assert state["hf_cache"] == {"home": str(hf), "missing": ["c/d"], "watch": watch}
    assert state["repo"]["watch"] == [str(home / "code" / ".git"), str(home / "code" / ".git" / "refs" / "heads")]
    assert state["repo"]["remote"] == {"url": str(origin), "version": "master"}
    assert state["data"]["expand_error"] and "cesres_data_dest" in state["data"]["error"]
    assert "UNSET" in state["data"]["error"]
    assert state["venv"] == {"error": "no x", "expand_error": False}
    assert not (home / "code").exists()


# --- the venv's lock and ready stamp (module_utils/provision.py venv_install) -----------------------


@pytest.fixture(scope="module")
def small_venv(tmp_path_factory):
    """A real venv (no packages to install: pip runs offline) and an empty requirements file."""
    root = tmp_path_factory.mktemp("venv")
    venv = root / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    requirements = root / "req.txt"
    requirements.write_text("# nothing\n")
    return venv, requirements


def test_venv_install_marks_ready_only_when_done_and_waits_for_another_installer(small_venv):
    import fcntl

    venv, requirements = small_venv
    env = dict(os.environ, PIP_NO_INDEX="1")
    stamp = venv / setup.VENV_STAMP
    stamp.unlink(missing_ok=True)
    # Another installer holds the lock: this one waits, then fails in one line; the stamp is not written.
    lock = os.open(venv / ".cesres-install.lock", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with pytest.raises(setup.SetupError, match="still running after 1 s") as refused:
            setup.venv_install(str(venv), str(requirements), "h1", env, wait_s=1)
        assert refused.value.kind == "locked" and not stamp.exists()
    finally:
        os.close(lock)
    done = setup.venv_install(str(venv), str(requirements), "h1", env)
    assert done["installed"] and stamp.read_text() == "h1\n"
    # The module policy ran as a file (the collection's module_utils), left beside the plan it wrote.
    policy = PROJECT / "plugins" / "module_utils" / "requirements_policy.py"
    assert (venv / ".cesres-plan" / policy.name).read_bytes() == policy.read_bytes()
    assert setup.venv_state(str(venv), str(requirements), "c", env)["state"] in ("stale", "recreate")


def test_a_waiting_installer_installs_nothing_when_the_other_one_made_the_venv_ready(small_venv):
    import fcntl
    import threading

    venv, requirements = small_venv
    env = dict(os.environ, PIP_NO_INDEX="1")
    lock = os.open(venv / ".cesres-install.lock", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)

    def the_other_one_finishes() -> None:
        (venv / setup.VENV_STAMP).write_text("h2\n")
        os.close(lock)

    timer = threading.Timer(0.5, the_other_one_finishes)
    timer.start()
    try:
        done = setup.venv_install(str(venv), str(requirements), "h2", env, wait_s=30)
    finally:
        timer.join()
    assert done["installed"] is False and any("waited for another installation" in r for r in done["reports"])


def test_the_import_check_names_the_first_module_that_the_entry_point_cannot_import(small_venv, tmp_path):
    venv, requirements = small_venv
    code = tmp_path / "code"
    code.mkdir()
    (code / "helper.py").write_text("")  # found in the entry point's directory, as the job finds it
    (code / "model.py").write_text(
        "import json\nimport helper\ntry:\n    import no_such_module\nexcept ImportError:\n    pass\n"
    )
    env = dict(os.environ, PIP_NO_INDEX="1")
    with pytest.raises(setup.SetupError, match=r"cannot import no_such_module \(No module named") as failed:
        setup.venv_install(str(venv), str(requirements), "h3", env, entry=str(code / "model.py"))
    assert failed.value.kind == "imports" and not (venv / setup.VENV_STAMP).exists()


def test_push_state_reads_the_record_of_the_last_push(tmp_path):
    dest = tmp_path / "code"
    dest.mkdir()
    (dest / "a.py").write_text("one\n")
    record = f"{setup.sha256_of(str(dest / 'a.py'))}  a.py\n"
    (dest / setup.PUSH_MANIFEST).write_text(record)
    state = setup.push_state(str(dest))
    assert state["manifest"] and state["modified"] == [] and not state["foreign"]
    import hashlib

    assert state["manifest_sha256"] == hashlib.sha256(record.encode()).hexdigest()
    (dest / "a.py").write_text("edited on the cluster\n")
    assert setup.push_state(str(dest))["modified"] == ["a.py"]
    assert setup.push_state(str(tmp_path / "none")) == {
        "path": str(tmp_path / "none"),
        "exists": False,
        "manifest": False,
        "modified": [],
        "foreign": False,
        "gitdirty": [],
    }
