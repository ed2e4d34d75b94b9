"""roles/cesres_unchanged: its script (files/unchanged.sh, run here by bash with a real git, as on a cluster), the
filter that names what it watches (cesres_unchanged_watch) and the digest of the collection's code.

The integration side (a no-op setup that ends after one command, a change on the sandbox that runs it whole) is in
tests/integration/test_setup.py.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

from cesres_ctl import rules
from tests.conftest import PROJECT, collection_module

SCRIPT = (PROJECT / "roles" / "cesres_unchanged" / "files" / "unchanged.sh").read_text()
RECORD = ".cesres/setup.record"
DIGEST = "a" * 64


def unchanged(home: Path, *args: str) -> str:
    """The script as the role runs it (bash -c SCRIPT NAME ARGS...), with `home` as $HOME: its one line."""
    done = subprocess.run(
        ["bash", "-c", SCRIPT, "cesres-unchanged", *args],
        capture_output=True,
        text=True,
        env={"HOME": str(home), "PATH": os.environ["PATH"]},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def record(home: Path, *paths: Path, git: tuple[str, str, str, str] = ("", "", "", "")) -> None:
    assert unchanged(home, "record", RECORD, DIGEST, *git, *map(str, paths)) == "recorded"


def check(home: Path, digest: str = DIGEST, *more: str) -> str:
    return unchanged(home, "check", RECORD, digest, *more)


def later() -> None:
    """The statuses' times are in seconds: a change must come in a later second to show in them."""
    time.sleep(1.05)


@pytest.fixture
def home(tmp_path):
    (tmp_path / "venv" / "site-packages").mkdir(parents=True)
    (tmp_path / "venv" / ".cesres-ready").write_text("stamp\n")
    return tmp_path


def test_a_recorded_setup_is_unchanged_until_a_watched_path_changes(home):
    venv, stamp = home / "venv" / "site-packages", home / "venv" / ".cesres-ready"
    assert check(home).startswith("changed: no record")
    record(home, venv, stamp, home / "not yet")
    answer = check(home)
    assert answer.split()[0] == "unchanged" and answer.split()[2] == DIGEST
    assert abs(int(answer.split()[1]) - time.time()) < 60
    later()
    (venv / "byhand").mkdir()  # pip adding a distribution
    assert check(home) == "changed: a file that setup provisions changed on the cluster"
    record(home, venv, stamp, home / "not yet")
    assert check(home).startswith("unchanged")
    (home / "not yet").write_text("")  # a watched path that appears
    assert check(home).startswith("changed: a file")
    record(home, venv, stamp)
    stamp.write_text("stamp\n")  # rewritten in place, same size: its change time moves
    later()
    stamp.write_text("other\n")
    assert check(home).startswith("changed: a file")


def test_other_inputs_are_a_change_and_forget_removes_the_record(home):
    record(home, home / "venv")
    assert check(home, "b" * 64) == "changed: the settings or cesres-ctl changed"
    assert (home / RECORD).is_file()  # without "forget": check mode changes nothing
    assert check(home, "b" * 64, "forget").startswith("changed: the settings")
    assert not (home / RECORD).exists()
    assert check(home).startswith("changed: no record")
    record(home, home / "venv")
    assert unchanged(home, "forget", RECORD) == "forgotten"
    assert not (home / RECORD).exists()


def test_paths_with_blanks_and_an_empty_git_environment_are_kept_whole(home):
    odd = home / "a dir\twith blanks"
    odd.mkdir()
    record(home, odd)
    assert check(home).startswith("unchanged")
    later()
    (odd / "new").write_text("")
    assert check(home).startswith("changed: a file")


def git(*args: str, cwd: Path | None = None) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=env).stdout


def test_a_branch_that_moved_on_the_remote_or_a_remote_that_does_not_answer_is_a_change(home, tmp_path_factory):
    remote = tmp_path_factory.mktemp("remote") / "code.git"
    work = tmp_path_factory.mktemp("work")
    git("init", "--quiet", "--bare", str(remote))
    git("init", "--quiet", "-b", "master", cwd=work)
    git("commit", "--quiet", "--allow-empty", "-m", "one", cwd=work)
    git("push", "--quiet", str(remote), "master", cwd=work)
    # git as a module puts it: on PATH, with its libraries (none here).
    git_env = (os.environ["PATH"], "", str(remote), "master")
    record(home, home / "venv", git=git_env)
    assert check(home).startswith("unchanged")
    git("tag", "other", cwd=work)
    git("push", "--quiet", str(remote), "other", cwd=work)  # another name: not master's answer
    assert check(home).startswith("unchanged")
    git("commit", "--quiet", "--allow-empty", "-m", "two", cwd=work)
    git("push", "--quiet", str(remote), "master", cwd=work)
    assert check(home) == "changed: the repository's master moved (or did not answer)"
    record(home, home / "venv", git=git_env)
    assert check(home).startswith("unchanged")
    remote.rename(remote.with_name("gone.git"))
    assert check(home).startswith("changed: the repository's master moved")


# --- what the record watches: the filter cesres_unchanged_watch ---------------------------------------------

cesres_unchanged_watch = collection_module("plugins.filter.cesres").FilterModule().filters()["cesres_unchanged_watch"]

GIT_SET = ["releases/2022a", "git/2.23.0-GCCcore-8.3.0-nodocs"]


def probe(**parts) -> dict:
    """cesres_python_probe as roles/cesres_python sets it: the login shell's report and the play's probe."""
    return {
        "interpreter": "/home/u/.cesres/python",
        "login_env": {"HOME": "/home/u"},
        "module_envs": {
            " ".join(GIT_SET): {
                "PATH": "/sw/git/bin:/usr/bin",
                "LD_LIBRARY_PATH": "/sw/git/lib",
                "_LMFILES_": "/sw/mf/releases/2022a.lua:/sw/mf/git/2.23.0.lua",
            },
            "releases/2022a Python/3.10.4": {"_LMFILES_": "/sw/mf/releases/2022a.lua:/sw/mf/Python/3.10.4.lua"},
        },
        "probe": parts,
    }


REPO = {
    "changed": False,
    "commit": "c" * 40,
    "path": "/home/u/cesres",
    "watch": ["/home/u/cesres/.git"],
    "remote": {"url": "https://example.org/cesres.git", "version": "master"},
}
VENV = {"path": "/home/u/cesres_env", "state": "ready", "watch": ["/home/u/cesres_env"]}


def test_the_record_watches_the_wrapper_the_module_files_the_login_files_and_each_part():
    watched = cesres_unchanged_watch(probe(repo=REPO, venv=VENV), GIT_SET)
    paths = watched["paths"]
    assert paths[0] == "/home/u/.cesres/python"
    assert paths.count("/sw/mf/releases/2022a.lua") == 1  # each once, though two groups load it
    assert {"/sw/mf/git/2.23.0.lua", "/sw/mf/Python/3.10.4.lua"} <= set(paths)
    assert {"/home/u/.bashrc", "/home/u/.bash_profile", "/etc/profile.d"} <= set(paths)
    assert {"/home/u/cesres/.git", "/home/u/cesres_env"} <= set(paths)
    # git as cesres_repo runs it: the environment of its modules.
    assert watched["git"] == {
        "path": "/sw/git/bin:/usr/bin",
        "ld": "/sw/git/lib",
        "url": "https://example.org/cesres.git",
        "version": "master",
    }


def test_a_pinned_commit_is_not_asked_again():
    pinned = {key: value for key, value in REPO.items() if key != "remote"}
    assert cesres_unchanged_watch(probe(repo=pinned, venv=VENV), GIT_SET)["git"] == {}


@pytest.mark.parametrize(
    ("parts", "why"),
    [
        ({"repo": {"path": "/home/u/cesres", "exists": True, "manifest": True}, "venv": VENV}, "a push"),
        ({"venv": VENV, "data": {"dest": "/home/u/cesres", "missing": []}}, "components"),
        ({"repo": {"path": "/home/u/cesres", "refused": True, "msg": "local changes"}}, "a refusal"),
        ({"venv": {"path": "/v", "error": "python3 does not run"}}, "an error"),
        ({}, "no probe"),
    ],
)
def test_nothing_is_recorded_when_a_part_cannot_be_watched(parts, why):
    assert cesres_unchanged_watch(probe(**parts), GIT_SET) == {}, why


def test_a_remote_without_the_environment_of_gits_modules_is_not_recorded():
    assert cesres_unchanged_watch(probe(repo=REPO), ["releases/2022a", "git/other"]) == {}


def test_the_code_digest_follows_every_file_of_the_collections_code(tmp_path):
    for top in rules.CODE_DIRS:
        (tmp_path / top).mkdir()
    (tmp_path / "roles" / "main.yml").write_text("a: 1\n")
    before = rules.code_digest(tmp_path)
    (tmp_path / "roles" / "__pycache__").mkdir()
    (tmp_path / "roles" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (tmp_path / "README.md").write_text("not code\n")
    assert rules.code_digest(tmp_path) == before
    (tmp_path / "roles" / "main.yml").write_text("a: 2\n")
    assert rules.code_digest(tmp_path) != before
    (tmp_path / "roles" / "main.yml").write_text("a: 1\n")
    (tmp_path / "plugins" / "new.py").write_text("")
    assert rules.code_digest(tmp_path) != before
