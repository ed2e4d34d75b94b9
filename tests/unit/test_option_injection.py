"""No value from the configuration or the environment is read as an option by git, ssh or rsync (issue 18).

The cluster-side git code (the collection's module_utils provision.py) runs here with the machine's real git on a real
repository: an injected command would create a marker file, which must never appear. The rules that the
CLI, `config set`, `setup -e` and the roles apply are checked on the values an attacker or a slip would give.
"""

import shlex
import subprocess
from pathlib import Path

import pytest

from cesres_ctl import paths, rules
from cesres_ctl.errors import CesresError
from tests.conftest import PROJECT, collection_module

cesres_setup = collection_module("plugins.module_utils.provision")


@pytest.fixture
def repo(tmp_path):
    """A published repository with one commit on master, and an isolated git configuration that allows
    every transport (as a careless ~/.gitconfig could): the code's own allow-list must hold regardless."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[protocol]\n\tallow = always\n[user]\n\tname = t\n\temail = t@t\n")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1"}
    src = tmp_path / "src"
    subprocess.run(["git", "init", "-q", "-b", "master", str(src)], check=True, env=env)
    subprocess.run(["git", "-C", str(src), "commit", "-q", "--allow-empty", "-m", "one"], check=True, env=env)
    return src, env


def injections(marker: Path) -> list[str]:
    command = f"touch {shlex.quote(str(marker))}"
    return [
        f"--upload-pack={command}",
        f"-u{command}",
        f"--config=core.sshCommand={command}",
        f"ext::sh -c {command.replace(' ', '% ')}",
        "fd::17",
    ]


@pytest.mark.parametrize("step", ["plan", "sync"])
@pytest.mark.parametrize("where", ["url", "version"])
def test_git_never_reads_a_configured_value_as_an_option(repo, tmp_path, step, where):
    src, env = repo
    marker = tmp_path / "injected"
    for value in injections(marker):
        url, version = (value, "master") if where == "url" else (str(src), value)
        for dest in (tmp_path / f"dest-{step}-{where}", tmp_path / "existing"):
            if dest.name == "existing" and not dest.exists():
                subprocess.run(["git", "clone", "-q", str(src), str(dest)], check=True, env=env)
            function = cesres_setup.git_plan if step == "plan" else cesres_setup.git_sync
            try:
                function(str(dest), url, version, False, env)
            except cesres_setup.SetupError:
                pass
            else:
                # A version without a leading '-' is only a name that the repository lacks.
                assert where == "version" and not value.startswith("-"), f"{value!r} as the {where} was accepted"
            assert not marker.exists(), f"{value!r} as the {where} ran a command ({step}, {dest.name})"


def test_a_plain_url_and_version_still_deploy(repo, tmp_path):
    src, env = repo
    dest = tmp_path / "code"
    assert cesres_setup.git_plan(str(dest), str(src), "master", False, env)["changed"] is True
    assert cesres_setup.git_sync(str(dest), str(src), "master", False, env)["changed"] is True
    assert cesres_setup.git_plan(str(dest), str(src), "master", False, env)["changed"] is False


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/you/CESReS.git",
        "git@github.com:you/CESReS.git",
        "ssh://git@host:2222/CESReS.git",
        "git+ssh://host/CESReS.git",
        "/var/lib/cesres-sandbox/git/cesres.git",
        "~/repos/cesres.git",
        "file:///srv/cesres.git",
    ],
)
def test_repository_urls_that_may_reach_git(url):
    assert rules.repo_url_error(url) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("--upload-pack=touch x", "starts with '-'"),
        ("-uevil", "starts with '-'"),
        ("ext::sh -c touch% x", "whitespace"),
        ("ext::sh", "remote helper 'ext'"),
        ("fd::3", "remote helper 'fd'"),
        ("ftp://host/repo.git", "transport 'ftp'"),
        ("https://host/a\nb", "control character"),
        ("", "is empty"),
    ],
)
def test_repository_urls_that_may_not(url, words):
    assert words in (rules.repo_url_error(url) or "")


@pytest.mark.parametrize(
    "version", ["master", "v1.2", "feature/x", "af5c2b58ece2fc40bc65970ceb42739110eb9b29", "r_1+b"]
)
def test_versions_that_may_reach_git(version):
    assert rules.git_ref_error(version) is None


@pytest.mark.parametrize(
    "version", ["--upload-pack=x", "-b", "a b", "a..b", "HEAD~1", "x^{commit}", "a:b", "x.lock", "@{-1}", "", "a//b"]
)
def test_versions_that_may_not(version):
    assert rules.git_ref_error(version)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("cesres_repo_url", "--upload-pack=touch /tmp/x", "starts with '-'"),
        ("cesres_repo_url", "ext::sh", "remote helper"),
        ("cesres_repo_version", "--output=/tmp/x", "starts with '-'"),
        ("cesres_repo_version", "main~2", "not a branch, tag or commit name"),
    ],
)
def test_config_set_refuses_what_git_would_read_as_an_option(key, value, words):
    from cesres_ctl import userconfig

    with pytest.raises(CesresError, match=words):
        userconfig.parse_value(key, value)


def test_setup_extra_vars_are_refused_before_any_ssh():
    from cesres_ctl.provision import settings

    problems = settings.validate_setup_vars("sandbox", {"cesres_repo_url": "--upload-pack=touch /tmp/x"})
    assert problems == [
        "cesres_repo: cesres_repo_url '--upload-pack=touch /tmp/x' starts with '-' (git would read it as an option)"
    ]
    assert settings.validate_setup_vars("sandbox", {"cesres_repo_version": "-x"})
    # Push mode sends no URL to git: the URL is not looked at.
    assert not settings.validate_setup_vars("sandbox", {"cesres_repo_local_path": str(PROJECT)})


@pytest.mark.parametrize(
    "root",
    [
        "/tmp/x -oProxyCommand=touch /tmp/m",
        "relative/root",
        "-oProxyCommand=x",
        "/srv/with space",
        "/srv/per%cent",
        "/tmp",
        "/",
    ],
)
def test_a_sandbox_root_that_its_files_cannot_hold_is_one_line(monkeypatch, root):
    monkeypatch.setenv("CESRES_SANDBOX_ROOT", root)
    with pytest.raises(CesresError, match="CESRES_SANDBOX_ROOT"):
        paths.sandbox_root()


def test_the_sandbox_inventory_quotes_its_ssh_config_path(monkeypatch):
    """ansible-playbook run by hand reads CESRES_SANDBOX_ROOT itself: the path stays one ssh argument."""
    from cesres_ctl.runs import cluster

    root = "/tmp/x -oProxyCommand=touch /tmp/m"
    monkeypatch.setenv("CESRES_SANDBOX_ROOT", root)
    assert cluster.load_from_inventory("sandbox").ssh.options == ("-F", f"{root}/ssh/ssh_config")
