"""Shared fixtures: the sandbox cluster that integration tests run against, and no environment in /tmp."""

import importlib
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

PROJECT = Path(__file__).resolve().parent.parent
CESRES_CTL = [sys.executable, "-m", "cesres_ctl"]
# The stand-in CESReS checkout: the demo's code, configs and data.
MINI = PROJECT / "sandbox" / "cesres-mini"


def copy_mini(dst: Path) -> Path:
    """A copy of cesres-mini as git has it: without what its .gitignore names (outputs, and the results that
    commands run from it fetch into cesres-runs/, thousands of files after the suite's long runs)."""
    ignored = [line.strip().rstrip("/") for line in (MINI / ".gitignore").read_text().splitlines() if line.strip()]
    shutil.copytree(MINI, dst, ignore=shutil.ignore_patterns(*ignored))
    return dst


def collection_module(name: str) -> ModuleType:
    """A module of the collection cesres.ctl (e.g. "plugins.module_utils.provision"), imported as Ansible
    imports it: through its collection loader, configured by the project's ansible.cfg."""
    from cesres_ctl.inventory import init_ansible

    init_ansible()
    return importlib.import_module(f"ansible_collections.cesres.ctl.{name}")


# Every process the tests start inherits this variable; no file under /tmp may hold it after a test
# (issue 11: a run's environment, tokens included, must not reach a file).
ENV_CANARY = f"canary-{secrets.token_hex(16)}"
os.environ["CESRES_TEST_ENV_CANARY"] = ENV_CANARY
SYSTEM_TMP = Path("/tmp")
_SCAN_MAX_BYTES = 5 * 1024 * 1024
_reported_leaks: set[Path] = set()


def files_containing(root: Path, needle: bytes, since: float, skip: Path | None = None) -> list[Path]:
    """Regular files under `root` modified at `since` or later that contain `needle` (symlinks not followed),
    outside the directory `skip`.

    Files over 5 MB, unreadable files, sockets and pipes are skipped.
    """
    found = []
    pending = [str(root)]
    skipped = str(skip) if skip is not None else None
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                listed = list(entries)
        except OSError:
            continue
        for entry in listed:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.path != skipped:
                        pending.append(entry.path)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
                if info.st_mtime < since or info.st_size > _SCAN_MAX_BYTES:
                    continue
                if needle in Path(entry.path).read_bytes():
                    found.append(Path(entry.path))
            except OSError:
                continue
    return sorted(found)


def _report_leaks(paths: list[Path]) -> None:
    leaks = [path for path in paths if path not in _reported_leaks]
    _reported_leaks.update(leaks)
    if leaks:
        pytest.fail("the environment of a process reached files under /tmp: " + ", ".join(map(str, leaks)))


@pytest.fixture(scope="session")
def _pytest_temp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pytest's own temporary directories (every session's), and at the session's end their leaks.

    The check after each test leaves them out but for the test's own tmp_path (below): they grow to some
    200,000 files over the suite, and walking them after every test took most of the unit tier's time.
    """
    started = time.time() - 1
    base = tmp_path_factory.getbasetemp()
    yield base.parent
    # Every file this session wrote there since: what the session's fixtures keep (made by mktemp, which no
    # test's own scan covers) and what was written after its test's scan.
    _report_leaks(files_containing(base, ENV_CANARY.encode(), started))


@pytest.fixture(autouse=True)
def no_environment_in_tmp(request: pytest.FixtureRequest, _pytest_temp: Path) -> Iterator[None]:
    """After each test, no file it wrote under /tmp holds the environment (the canary variable's value).

    Of pytest's own directories, the test's tmp_path only; the rest at the session's end (_pytest_temp).
    """
    # Asked for here, before the test, so that it is torn down after this check.
    own = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    started = time.time() - 1  # file times may lag the clock by a tick
    yield
    # Each file once: the margin above would otherwise blame the next test too.
    leaks = files_containing(SYSTEM_TMP, ENV_CANARY.encode(), started, skip=_pytest_temp)
    if own is not None:
        leaks += files_containing(own, ENV_CANARY.encode(), started)
    _report_leaks(leaks)


@dataclass(frozen=True)
class Sandbox:
    """How tests reach the sandbox cluster: an ssh command line and its facts."""

    root: Path
    ssh_config: Path
    alias: str
    gateway_alias: str
    user: str

    @property
    def home(self) -> Path:
        return self.root / "home" / self.user

    def ssh_argv(self, command: str, *options: str) -> list[str]:
        return ["ssh", "-F", str(self.ssh_config), *options, self.alias, command]

    def ssh(self, command: str, *options: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command on the login node (a plain, non-login shell, as ssh does)."""
        return subprocess.run(
            self.ssh_argv(command, *options), capture_output=True, text=True, timeout=timeout, check=False
        )

    def login_shell(self, script: str, *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a script in a login shell on the login node, where `module` is defined."""
        return self.ssh(f"bash -lc {shlex.quote(script)}", timeout=timeout)


def mini_repo() -> dict[str, str]:
    """setup's variable that deploys cesres-mini, the quick stand-in that the sandbox publishes beside the real
    CESReS (its default repository, which tests/integration/test_real_cesres.py sets up): for the tests of
    cesres-ctl's own mechanics, which the real program's minutes of installation would only slow down."""
    from cesres_ctl import paths

    return {"cesres_repo_url": str(paths.sandbox_root() / "git" / "cesres-mini.git")}


def run_cli(
    *args: str, timeout: float = 900, cwd: Path = PROJECT, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """cesres-ctl as a subprocess; env (default: this process's) replaces the whole environment."""
    return subprocess.run(
        [*CESRES_CTL, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env
    )


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """cesres-ctl's main() in this process: (exit code, stdout, stderr)."""
    from cesres_ctl import cli, paths

    # `sandbox … --root` sets CESRES_SANDBOX_ROOT for the playbooks: restored after the test.
    monkeypatch.setenv("CESRES_SANDBOX_ROOT", str(paths.sandbox_root()))
    monkeypatch.setattr(sys, "argv", ["cesres-ctl", *argv])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def _sandbox_status() -> dict:
    done = run_cli("sandbox", "status", "--json", timeout=120)
    return json.loads(done.stdout)


_CONFIG_DIR = tempfile.mkdtemp(prefix="cesres-test-config-")


def pytest_configure(config: pytest.Config) -> None:
    # The developer's own settings (cesres-ctl config) must not change what the tests see: every test and
    # every cesres-ctl the tests start read a configuration that does not exist, unless a test says otherwise.
    os.environ["CESRES_CTL_CONFIG"] = str(Path(_CONFIG_DIR) / "none.yml")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_CONFIG_DIR, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that stop the sandbox run after the others, so that those share one running cluster; the other
    # Pythons' unit tiers are collected last, having run beside everything else (tests/test_pythons.py).
    items.sort(
        key=lambda item: (
            item.get_closest_marker("pythons") is not None,
            item.get_closest_marker("disruptive") is not None,
        )
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    # The other Pythons' unit tiers start with the session, only when their test is selected.
    if session.config.option.collectonly:
        return
    for item in session.items:
        if isinstance(item, pytest.Function) and item.get_closest_marker("pythons") is not None:
            item.module.start(session.config)
            return


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    """The running sandbox cluster, brought up once per session if it is not up."""
    if os.geteuid() != 0:
        pytest.fail("the sandbox tests run as root (the sandbox is built and started as root)")
    status = _sandbox_status()
    if not status.get("healthy"):
        done = run_cli("sandbox", "up", timeout=1800)
        assert done.returncode == 0, f"sandbox up failed:\n{done.stdout}\n{done.stderr}"
        status = _sandbox_status()
        assert status["healthy"], status
    return Sandbox(
        root=Path(status["root"]),
        ssh_config=Path(status["ssh_config"]),
        alias=status["host_alias"],
        gateway_alias=status["gateway_alias"],
        user=status["user"],
    )
