"""One table of exit codes for every command (cesres_ctl.errors.ExitCode, docs/cli.md), each command driven into
each outcome it can reach: a usage error, a failure, an unreachable cluster, Ctrl-C. The clusters are on this
machine: `down` refuses connections, `hung` accepts them and never answers (a hung gateway), `here` runs
Ansible's steps locally, where setup's first step and doctor's checks fail. Success is what every other test
of a command asserts."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cesres_ctl.errors import MEANINGS, ExitCode
from cesres_ctl.runs.registry import Registry, Run
from tests.conftest import CESRES_CTL, MINI, PROJECT, run_main
from tests.unit.test_runner import _stop_orphans

CLUSTERS = ("down", "hung", "here")
# Every command and group of the CLI (tests/unit/test_cli.py checks that cli.COMMANDS lists them all).
COMMANDS = (
    "setup", "doctor", "train", "sweep", "predict", "predictions", "runs", "status", "logs", "fetch", "cancel",
    "plot", "compare", "prune", "sandbox", "sandbox up", "sandbox down", "sandbox status", "config", "config init",
    "config set", "config unset", "config path", "config show",
)  # fmt: skip


ON_CPU = ("--", "-d", "cpu")  # the model's option: the clusters here have no GPU


def _on(cluster: str) -> dict[str, tuple[str, ...]]:
    """Each command that asks `cluster` something, with arguments that make it ask (the runs r-CLUSTER, pending,
    and m-CLUSTER, completed, are recorded)."""
    return {
        "setup": ("setup", "-C", cluster),
        "doctor": ("doctor", "-C", cluster),
        "train": ("train", "configs/demo.yaml", "-C", cluster, *ON_CPU),
        "sweep": ("sweep", "configs/demo.yaml", "--vary", "TRAINER.learning_rate=0.1,0.2", "-C", cluster, *ON_CPU),
        "predict": ("predict", f"m-{cluster}", "data/test.txt"),
        "predictions": ("predictions", f"m-{cluster}"),
        "status": ("status", f"r-{cluster}"),
        "logs": ("logs", f"r-{cluster}"),
        "fetch": ("fetch", f"m-{cluster}"),
        "cancel": ("cancel", f"r-{cluster}"),
        "plot": ("plot", f"m-{cluster}"),
        "compare": ("compare", f"m-{cluster}"),
        "prune": ("prune", "-C", cluster),
        "runs": ("runs",),
    }


# The cheapest way each command fails (exit 1): a step or a check that fails, or an input refused.
FAILED = {
    "setup": ("setup", "-C", "here"),
    "doctor": ("doctor", "-C", "here"),
    "train": ("train", "missing.yaml", "-C", "down"),
    "sweep": ("sweep", "configs/demo.yaml", "--vary", "TRAINER.no_such_key=1,2", "-C", "down"),
    "predict": ("predict", "no-such-run", "data/test.txt"),
    "predictions": ("predictions", "no-such-run"),
    "runs": ("runs", "--sweep", "no-such-sweep"),
    "status": ("status", "no-such-run"),
    "logs": ("logs", "no-such-run"),
    "fetch": ("fetch", "no-such-run"),
    "cancel": ("cancel", "m-down"),  # it ended: nothing to cancel
    "plot": ("plot", "no-such-run"),
    "compare": ("compare", "no-such-run"),
    "prune": ("prune", "-C", "down", "--older-than", "-1"),
    "sandbox status": ("sandbox", "status", "--root", "/proc/cesres-none"),
    "config init": ("config", "init", "--cluster", "no-such-cluster"),
    "config set": ("config", "set", "no_such_setting", "1"),
    "config unset": ("config", "unset", "no_such_setting"),
    "config show": ("config", "show", "-C", "no-such-cluster"),
    "config path": ("config", "path", "--inventory"),  # no settings: no overlay
}
# A failure that is the command's report, not an error line: a check that failed.
REPORTS = {"doctor", "sandbox status"}
# sandbox up and down rebuild and stop the shared sandbox: they fail here in this process, before they act.
AS_ROOT_ONLY = ("sandbox up", "sandbox down")

CLUSTER_VARS = """\
cesres_cluster_name: {name}
cesres_cluster_partitions:
  batch: {{max_time: "5-00:00:00", default: true, gpus: 0}}
cesres_job_partition: batch
cesres_job_gpus: 0
cesres_job_time: "00:30:00"
"""


class Clusters:
    """A project (CESRES_CTL_PROJECT) whose inventory has down, hung and here, the listening sockets of the first
    two, and a state directory with two runs on each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # A port nobody listens on refuses at once: one the system gave a socket, closed again.
        self.down_port = self._free_port()
        self.hung = socket.create_server(("127.0.0.1", 0))
        self.connected = threading.Event()
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()
        self._project()
        self._runs()

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.hung.accept()
            except OSError:
                return
            self._held.append(connection)  # held open, never a byte: ssh waits for the server's banner
            self.connected.set()

    def close(self) -> None:
        self.hung.close()
        for connection in self._held:
            connection.close()

    def _project(self) -> None:
        self.project = self.root / "project"
        self.project.mkdir()
        for entry in PROJECT.iterdir():
            if entry.name not in ("inventory", "group_vars", ".git", ".venv", ".cache"):
                (self.project / entry.name).symlink_to(entry)
        group_vars = self.project / "group_vars"
        group_vars.mkdir()
        (group_vars / "ceci.yml").symlink_to(PROJECT / "group_vars" / "ceci.yml")
        (self.project / "inventory").mkdir()
        (self.project / "inventory" / "group_vars").symlink_to("../group_vars")
        hosts = {f"cluster_{name}": {"hosts": {name: None}} for name in CLUSTERS}
        (self.project / "inventory" / "hosts.yml").write_text(
            json.dumps({"all": {"children": {"ceci": {"children": hosts}}}})
        )
        ssh = "ansible_host: 127.0.0.1\nansible_ssh_common_args: -F /dev/null -o BatchMode=yes\n"
        ports = {"down": self.down_port, "hung": self.hung.getsockname()[1]}
        for name in CLUSTERS:
            where = "ansible_connection: local\n" if name == "here" else f"{ssh}ansible_port: {ports[name]}\n"
            (group_vars / f"cluster_{name}.yml").write_text(CLUSTER_VARS.format(name=name) + where)

    def _runs(self) -> None:
        registry = Registry(self.root / "state" / "cesres-ctl" / "runs.sqlite")
        for cluster in ("down", "hung"):
            for name, state in (("r", "PENDING"), ("m", "COMPLETED")):
                run_id = f"{name}-{cluster}"
                registry.record_submission(
                    Run(cluster, run_id, run_id, "7", f"/cesres/runs/{run_id}", "2026-01-01T00:00:00Z", state)
                )

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("XDG_", "CESRES_"))}
        return {
            **env,
            "CESRES_CTL_PROJECT": str(self.project),
            "CESRES_CTL_CONFIG": str(self.root / "config.yml"),
            "XDG_STATE_HOME": str(self.root / "state"),
            "HOME": str(self.root / "home"),
            "PYTHONPATH": str(PROJECT),
        }

    def start(self, *args: str) -> subprocess.Popen[str]:
        # A session of its own, as a shell's job: Ctrl-C reaches the whole process group, ssh included.
        return subprocess.Popen(
            [*CESRES_CTL, *args],
            cwd=MINI,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        process = self.start(*args)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            _kill(process)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _kill(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def clusters(tmp_path_factory) -> Iterator[Clusters]:
    found = Clusters(tmp_path_factory.mktemp("clusters"))
    yield found
    found.close()


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("cesres-ctl: error: ")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    return lines[0]


def test_every_command_of_the_cli_is_driven_here():
    from cesres_ctl import cli

    groups = {name: cli.typer.main.get_group(cli.app).get_command(None, name) for name in cli.GROUPS}
    listed = {*cli.COMMANDS, *(f"{group} {name}" for group, command in groups.items() for name in command.commands)}
    assert listed == set(COMMANDS)
    assert {*FAILED, *AS_ROOT_ONLY, *cli.GROUPS} == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_usage_error_exits_2(clusters, command):
    done = clusters.run(*command.split(), "--bogus")
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert "--bogus" in error_line(done)
    assert done.stdout == ""


@pytest.mark.parametrize("command", sorted(FAILED))
def test_a_failure_exits_1(clusters, command):
    done = clusters.run(*FAILED[command])
    assert done.returncode == ExitCode.FAILED, done.stderr[-2000:]
    if command not in REPORTS:
        error_line(done)


@pytest.mark.parametrize("command", AS_ROOT_ONLY)
def test_sandbox_up_and_down_fail_with_1_for_a_user(monkeypatch, capsys, command):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    code, out, err = run_main(monkeypatch, capsys, *command.split())
    assert code == ExitCode.FAILED and out == ""
    assert err.startswith("cesres-ctl: error: the sandbox cluster is built and run as root"), err


@pytest.mark.parametrize("command", sorted(set(_on("down")) - {"runs"}))
def test_an_unreachable_cluster_exits_3(clusters, command):
    done = clusters.run(*_on("down")[command])
    assert done.returncode == ExitCode.UNREACHABLE, done.stderr[-2000:]
    if command not in REPORTS:
        assert "cannot reach" in error_line(done) or "unreachable" in error_line(done).lower()


def test_runs_answers_from_the_registry_when_a_cluster_cannot_be_asked(clusters):
    done = clusters.run("runs", "-C", "down", "--json")
    assert done.returncode == ExitCode.OK, done.stderr
    assert "note: could not ask down" in done.stderr
    assert {run["run_id"]: run["state"] for run in json.loads(done.stdout)}["r-down"] == "PENDING"


@pytest.mark.parametrize("command", sorted(_on("hung")))
def test_ctrl_c_while_a_cluster_does_not_answer_exits_130(clusters, command):
    clusters.connected.clear()
    process = clusters.start(*_on("hung")[command])
    try:
        assert clusters.connected.wait(120), f"{command} never connected"
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        _kill(process)
        # A cancelled ansible-playbook (a session of its own) can outlive its cesres-ctl, waiting on its workers.
        _stop_orphans(clusters.root)
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert done.returncode == ExitCode.INTERRUPTED, stderr[-2000:]
    assert "interrupted" in error_line(done)


def test_the_docs_show_the_table_of_exit_codes():
    text = (PROJECT / "docs" / "cli.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert [(int(row.split("|")[1]), row.split("|")[2].strip()) for row in rows] == [
        (int(code), meaning) for code, meaning in MEANINGS.items()
    ]
