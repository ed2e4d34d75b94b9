"""The unit tier on the other Pythons that cesres-ctl supports (requires-python: 3.11 to 3.13), each in a
virtualenv with the dev extra, and so with the newest ansible-core that Python takes: 2.19 on 3.11, 2.21 on 3.12
and 3.13 (README.md, Install).

The tiers run beside the rest of the session: when their test (marked pythons) is selected, the session starts
them as it begins (tests/conftest.py, pytest_collection_finish), in a CPU group of low weight, so that they take
the cores the other tests leave idle (the integration tier mostly waits on ssh and Slurm) rather than the other
tests' time; the test itself runs last and collects their results. Interrupting the session ends them.

The virtualenvs live in .cache/pythons/, made again only when pyproject.toml changes; pip takes what it
downloaded before from its own cache. Each tier's output goes to .cache/pythons/<version>.log as it runs. The
interpreters are the machine's: python3.X on PATH, or pyenv's.
"""

import contextlib
import hashlib
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from pathlib import Path
from types import FrameType

import pytest

from tests.conftest import PROJECT

SUPPORTED = ("3.11", "3.12", "3.13")
OTHERS = tuple(version for version in SUPPORTED if version != f"{sys.version_info[0]}.{sys.version_info[1]}")
ENVS = PROJECT / ".cache" / "pythons"
# The unit tier of the code that runs on the controller's Python. Left out: the tests of cluster-side code (the
# modules and their module_utils, the probe, cesres-mini), which runs on the cluster's Python (rules.CLUSTER_PYTHON,
# tests/unit/test_cluster_python.py) whatever the controller's is.
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
# The tiers' CPU group (cgroup v1's cpu controller, as on the machine image), one per session. Its weight against
# a process group of the session's own (1024; autogroups make each session one): about a tenth of a core that
# another busy process wants, all of an idle one. Not nice(1) alone, the fallback where there is no such group: a
# nice process in a session of its own, as ansible-runner's and several tests' children are, competes as a whole
# session. Not cpu.idle: a tier starved outright through a busy stretch would miss its own tests' deadlines (1 to
# 30 s in tests/unit).
CPU_GROUPS = Path("/sys/fs/cgroup/cpu")
CPU_SHARES = 128
# How long the test waits for the tiers once every other test has run: the two side by side took 13 min beside
# the full suite on a 2-core machine (9 min beside the unit tier alone); a loaded machine may take several times
# that.
COLLECT_TIMEOUT = 3600


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


class Background:
    """The processes of the tiers: in a CPU group of low weight (or, where there is none, at the lowest priority
    of their session), and ended together, descendants in other sessions included (the group lists them)."""

    def __init__(self) -> None:
        self.group: Path | None = CPU_GROUPS / f"cesres-test-pythons-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.group.mkdir()
            (self.group / "cpu.shares").write_text(str(CPU_SHARES))
        except OSError:
            self.group = None
        self.processes: list[subprocess.Popen[bytes]] = []
        self.lock = threading.RLock()  # stop() may run in a signal handler
        self.stopped = False

    def run(self, argv: list[str], log: Path, env: dict[str, str]) -> int:
        """argv's exit status; its output appended to log."""
        with self.lock:
            if self.stopped:
                return -signal.SIGKILL
            with log.open("ab") as out:
                process = subprocess.Popen(
                    self.lowered(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=PROJECT,
                    env=env,
                    start_new_session=True,
                )
            self.processes.append(process)
            if self.group is None:
                with contextlib.suppress(OSError):
                    Path(f"/proc/{process.pid}/autogroup").write_text("19")  # the weight of its whole session
        return process.wait()

    def lowered(self, argv: list[str]) -> list[str]:
        if self.group is None:
            return ["nice", "-n", "19", *argv]
        # The program joins the group before it starts: all it starts stays there.
        return ["sh", "-c", 'echo "$$" > "$0" && exec "$@"', str(self.group / "cgroup.procs"), *argv]

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            if self.group is None:  # their descendants by parent: those orphaned already are out of reach
                kill(descendants({process.pid for process in self.processes if process.poll() is None}))
                return
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                kill({int(pid) for pid in (self.group / "cgroup.procs").read_text().split()})
                try:
                    self.group.rmdir()
                    self.group = None
                    return
                except OSError:  # busy until the killed processes are reaped
                    time.sleep(0.1)


def descendants(roots: set[int]) -> set[int]:
    """The processes roots and all their descendants (by their parents in /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            # The name, between parentheses, may hold spaces: the parent is the second field after it.
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    found, pending = set(roots), list(roots)
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Tiers:
    """Each other Python's virtualenv, then its unit tier, in the background: (venv, exit status, log) each."""

    def __init__(self, pythons: dict[str, Path]) -> None:
        self.background = Background()
        self.pool = ThreadPoolExecutor(max_workers=len(pythons) or 1, thread_name_prefix="pythons")
        ENVS.mkdir(parents=True, exist_ok=True)
        self.results: dict[str, Future[tuple[Path, int, Path]]] = {
            version: self.pool.submit(self.tier, version, python) for version, python in pythons.items()
        }

    def tier(self, version: str, python: Path) -> tuple[Path, int, Path]:
        log = ENVS / f"{version}.log"
        log.write_text("")
        venv = ENVS / version
        # Not the session's: its own test run's setting, environment canary and configuration are its conftest's.
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "VIRTUAL_ENV", "CESRES_TEST_ENV_CANARY", "CESRES_CTL_CONFIG")
        }
        status = self.environment(venv, python, log, env)
        if status != 0:
            return venv, status, log
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
        return venv, self.background.run([str(venv / "bin" / "python"), "-m", "pytest", *TIER], log, env), log

    def environment(self, venv: Path, python: Path, log: Path, env: dict[str, str]) -> int:
        """The virtualenv of `version` with cesres-ctl and its dev extra, made again when pyproject.toml changed."""
        stamp = venv / ".cesres-ctl-installed"
        wanted = hashlib.sha256((PROJECT / "pyproject.toml").read_bytes()).hexdigest()
        if stamp.is_file() and stamp.read_text() == wanted:
            return 0
        shutil.rmtree(venv, ignore_errors=True)
        for argv in (
            [str(python), "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-e", f"{PROJECT}[dev]"],
        ):
            status = self.background.run(argv, log, env)
            if status != 0:
                return status
        stamp.write_text(wanted)
        return 0

    def collect(self, timeout: float) -> dict[str, tuple[Path, int, Path]]:
        """The tiers' outcomes, once they are done; after `timeout`, a hang: they are ended and fail."""
        wait_for(self.results.values(), timeout=timeout)
        self.stop()
        return {version: result.result() for version, result in self.results.items()}

    def stop(self) -> None:
        self.background.stop()
        self.pool.shutdown(wait=True)


_tiers: Tiers | None = None


def found_pythons() -> dict[str, Path | None]:
    return {version: interpreter(version) for version in OTHERS}


def start(config: pytest.Config) -> None:
    """Start the tiers, ended with the session (or at a SIGTERM, which would otherwise end it with no cleanup)."""
    global _tiers
    pythons = found_pythons()
    if None in pythons.values():  # the test fails or skips at once
        return
    _tiers = Tiers({version: python for version, python in pythons.items() if python is not None})
    config.add_cleanup(_tiers.stop)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if _tiers is not None:
                _tiers.stop()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        signal.signal(signal.SIGTERM, on_sigterm)


@pytest.mark.pythons
@pytest.mark.index
def test_the_unit_tier_passes_on_every_other_supported_python(pytestconfig: pytest.Config):
    pythons = found_pythons()
    missing = [version for version, python in pythons.items() if python is None]
    if missing:
        message = f"no Python {', '.join(missing)} on this machine (PATH, pyenv)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI's machine image has them: not a reason to test less
        pytest.skip(message)
    if _tiers is None:  # not started with the session (the test called by another way than collection)
        start(pytestconfig)
    assert _tiers is not None
    for version, (venv, status, log) in _tiers.collect(COLLECT_TIMEOUT).items():
        ansible = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import ansible; print(ansible.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        output = log.read_text(errors="replace").strip()
        summary = output.splitlines()[-1] if output else f"exit status {status}, no output"
        assert status == 0, f"Python {version}, ansible-core {ansible or '?'}: {summary} ({log})\n{output[-6000:]}"


def sleeping(seconds: str) -> set[int]:
    """The processes `sleep seconds`."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if cmdline.read_bytes().split(b"\0")[:2] == [b"sleep", seconds.encode()]:
                found.add(int(cmdline.parent.name))
    return found


@pytest.mark.parametrize("cpu_groups", [CPU_GROUPS, Path("/nonexistent")], ids=["cpu group", "no cpu group"])
def test_stopping_the_tiers_ends_what_they_started_in_sessions_of_their_own(tmp_path, monkeypatch, cpu_groups):
    monkeypatch.setattr(sys.modules[__name__], "CPU_GROUPS", cpu_groups)
    background = Background()
    group = background.group
    seconds = f"{600 + secrets.randbelow(10**6) / 10**7:.7f}"  # a sleep of its own, to find
    argv = ["bash", "-c", f"setsid sleep {shlex.quote(seconds)} & exec sleep {shlex.quote(seconds)}"]
    statuses: list[int] = []
    thread = threading.Thread(target=lambda: statuses.append(background.run(argv, tmp_path / "log", dict(os.environ))))
    thread.start()
    deadline = time.monotonic() + 30
    while len(sleeping(seconds)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sleeping(seconds)) == 2, (tmp_path / "log").read_text()
    background.stop()
    thread.join(timeout=60)
    assert statuses == [-signal.SIGKILL]
    assert not sleeping(seconds)
    assert group is None or not group.exists()
