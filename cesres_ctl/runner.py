"""Run one of the project's playbooks through ansible-runner, with live progress and a kept log.

Every call gets a fresh private data dir: runner never rewrites the env/* files of a reused one, so a
second run would silently see the first run's extravars (ansible-runner #172). It lives in the user's
state directory (owner-only), holds the extra vars as a file (a command line argument is limited to
128 KiB) and is removed on the way out, or by the next run when a run was killed. Ansible gets only
the environment it needs: runner would pass it all and write it to artifacts/<ident>/command. The
event handler only enqueues (a slow handler makes runner time out, #1343); a consumer thread writes the
log and drives the display.
"""

import json
import os
import queue
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from cesres_ctl import interrupts, paths, sshdiag
from cesres_ctl.errors import CesresError, ExitCode
from cesres_ctl.progress import ProgressDisplay, task_label

if TYPE_CHECKING:
    import ansible_runner

MAX_FAILURE_CHARS = 300

# HostStats field -> key of the playbook_on_stats event data.
_SET_FACT = frozenset({"set_fact", "ansible.builtin.set_fact", "ansible.legacy.set_fact"})
_STATS_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failed": "failures",
    "unreachable": "dark",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}

# cryptography deprecates DSA, whose key classes ansible-core's ssh-agent client imports whether it uses them or
# not: a warning at the start of every Ansible run's output and log that no user can act on. Filtered for that
# import only, in the Ansible processes cesres-ctl starts (cryptography stays unbounded, for its security fixes).
QUIET_WARNINGS = "ignore:DSA is deprecated:Warning:ansible._internal._ssh._ssh_agent"


def python_warnings() -> str:
    """PYTHONWARNINGS for an Ansible process: the user's filters, then QUIET_WARNINGS."""
    return ",".join(filter(None, [os.environ.get("PYTHONWARNINGS", ""), QUIET_WARNINGS]))


# The command module's message for a non-zero exit status: ansible-core 2.19's, 2.21's.
_NON_ZERO_RC = frozenset({"non-zero return code", "The command exited with a non-zero return code."})
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# "Finalization of task args … failed: Error while resolving value for 'argv': The filter plugin 'X' failed: REASON"
_FILTER_FAILURE = re.compile(r"The filter plugin '[^']+' failed: (?P<reason>.+)$")


@dataclass(frozen=True)
class HostStats:
    ok: int
    changed: int
    failed: int
    unreachable: int
    skipped: int
    rescued: int
    ignored: int


@dataclass(frozen=True)
class PlaybookResult:
    status: str  # runner status: successful / failed / canceled / timeout
    rc: int
    hosts: dict[str, HostStats]
    log_path: Path  # full Ansible output of this run, kept after the run
    failure: str | None  # one line describing the first failure, None when successful
    changed: tuple[str, ...] = ()  # `<host>: <task>` of each task that reported changed (would change, in check mode)
    # The facts that set_fact tasks set, per host (the playbook's outcome, e.g. cesres_job_outcome).
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The stop signal that came during the run ("" if none): it cancelled the run, or waited for a held task.
    interrupted: str = ""
    log_error: str = ""  # why the log stops early (a full disk), "" when it is whole
    # A task of the run's hold_actions started: what it did may not have been reported when the run failed.
    held_task_started: bool = False
    lost_track: bool = False  # the events stopped coming (runner could not write them): the outcome is unknown

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    @property
    def exit_code(self) -> ExitCode:
        """The exit status of a command that ends with this run: interrupted, unreachable, or failed."""
        if self.ok:
            return ExitCode.OK
        if self.status == "canceled":
            return ExitCode.INTERRUPTED
        if any(stats.unreachable for stats in self.hosts.values()):
            return ExitCode.UNREACHABLE
        return ExitCode.FAILED


# --- pure helpers: events in, display text out --------------------------------------------------


def parse_stats(event_data: Mapping[str, Any]) -> dict[str, HostStats]:
    """Per-host counters from a playbook_on_stats event's data (hosts absent from a counter have 0)."""
    hosts: set[str] = set()
    for key in (*_STATS_KEYS.values(), "processed"):
        hosts.update(event_data.get(key) or {})
    return {
        host: HostStats(**{name: int((event_data.get(key) or {}).get(host, 0)) for name, key in _STATS_KEYS.items()})
        for host in sorted(hosts)
    }


def format_summary(result: PlaybookResult) -> str:
    """One line per host, e.g. `sandbox: ok=12 changed=0 failed=0 unreachable=0`."""
    return "\n".join(
        f"{host}: ok={s.ok} changed={s.changed} failed={s.failed} unreachable={s.unreachable}"
        for host, s in result.hosts.items()
    )


def is_failure_event(event: Mapping[str, Any]) -> bool:
    name = event.get("event")
    if name == "runner_on_unreachable":
        return True
    return name == "runner_on_failed" and not (event.get("event_data") or {}).get("ignore_errors")


def first_failure(events: Iterable[Mapping[str, Any]]) -> str | None:
    """The failure line of the first unreachable host or non-ignored failed task, if any."""
    for event in events:
        if is_failure_event(event):
            return describe_failure(event)
    return None


def set_facts(event: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(host, facts) of a set_fact task that ran; None for any other event."""
    data = event.get("event_data") or {}
    if event.get("event") != "runner_on_ok" or data.get("task_action") not in _SET_FACT:
        return None
    facts = (data.get("res") or {}).get("ansible_facts")
    return (str(data.get("host") or ""), dict(facts)) if isinstance(facts, Mapping) else None


def changed_task(event: Mapping[str, Any]) -> str | None:
    """`<host>: <task>` when the event is a task result that reports changed, else None."""
    data = event.get("event_data") or {}
    if event.get("event") != "runner_on_ok" or not (data.get("res") or {}).get("changed"):
        return None
    return f"{data.get('host') or '?'}: {task_label(data)}"


def describe_failure(event: Mapping[str, Any]) -> str:
    """`<host>: <task>: <message>` for a runner_on_failed / runner_on_unreachable event."""
    data = event.get("event_data") or {}
    host = str(data.get("host") or "?")
    unreachable = event.get("event") == "runner_on_unreachable"
    message = _failure_message(host, data.get("res") or {}, unreachable=unreachable)
    return _one_line(f"{host}: {task_label(data)}: {message}")


def failure_from_output(text: str) -> str | None:
    """Failure line of a run that failed outside any task (syntax error, ansible-playbook missing, …)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # Ansible prints the reason on the [ERROR] line; what follows is context (origin, source excerpt).
    for line in lines:
        if line.startswith("[ERROR]:"):
            return _one_line(line.removeprefix("[ERROR]:"))
    return _one_line(lines[-1]) if lines else None


def _failure_message(host: str, res: Mapping[str, Any], *, unreachable: bool) -> str:
    if "censored" in res:
        # no_log: the result holds nothing we may show.
        return "failed (output hidden by no_log)"
    msg = _first_line(res.get("msg")).removeprefix("Task failed: ")
    filtered = _FILTER_FAILURE.search(msg)
    if filtered:
        # A rule of cesres_ctl.rules refused a value: its own line, not Ansible's wrapping around it.
        return filtered.group("reason")
    results = res.get("results")
    if isinstance(results, list) and (not msg or msg.startswith("One or more items failed")):
        # A loop: the reason is in the first failed item.
        failed_items = [item for item in results if isinstance(item, Mapping) and item.get("failed")]
        if failed_items:
            return _failure_message(host, failed_items[0], unreachable=unreachable)
    outputs = [_text(res.get(key)) for key in ("msg", "stderr", "stdout", "module_stderr", "module_stdout")]
    if any("Disk quota exceeded" in text for text in outputs):
        return "disk quota exceeded on the cluster (free some space; `quota` shows your usage)"
    if unreachable:
        # The whole message: ssh's first line is often a banner of @, its last a generic one.
        explanation = sshdiag.explain(_text(res.get("msg")), host)
        if explanation:
            return explanation
    if msg.startswith("MODULE FAILURE"):
        # The module crashed: its own stderr says why, "MODULE FAILURE" does not.
        detail = _last_line(res.get("module_stderr")) or _last_line(res.get("module_stdout"))
        return f"module failure: {detail}" if detail else msg
    if msg in _NON_ZERO_RC:
        detail = _last_line(res.get("stderr")) or _last_line(res.get("stdout"))
        rc = res.get("rc")
        return f"command failed (rc={rc}): {detail}" if detail else f"command failed (rc={rc})"
    return msg or _last_line(res.get("stderr")) or _last_line(res.get("stdout")) or "failed without a message"


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _first_line(value: object) -> str:
    return next((line.strip() for line in _text(value).splitlines() if line.strip()), "")


def _last_line(value: object) -> str:
    return next((line.strip() for line in reversed(_text(value).splitlines()) if line.strip()), "")


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_FAILURE_CHARS else text[: MAX_FAILURE_CHARS - 1] + "…"


def event_output(event: Mapping[str, Any]) -> list[str]:
    """The Ansible output lines an event carries, as the terminal would show them, without colours."""
    stdout = event.get("stdout")
    # Verbose events are raw output lines, so an empty one is a real blank line; for the others an
    # empty stdout (runner_on_start, …) means the event printed nothing.
    if not stdout and event.get("event") != "verbose":
        return []
    return _ANSI_ESCAPE.sub("", stdout or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")


# --- private data and the run's environment -----------------------------------------------------

# What Ansible may inherit from cesres-ctl's environment; everything else (tokens, cloud credentials, …)
# stays out of it, and so out of every file runner writes (artifacts/<ident>/command, fact caches).
_ENV_NAMES = frozenset(
    {
        # Who and where: ssh reads ~/.ssh and runs ProxyCommand with $SHELL; temporary files.
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TMPDIR",
        "TERM",
        "TZ",
        # A venv made from a module-loaded Python (a login node) may need it to find libpython.
        "LD_LIBRARY_PATH",
        # Ansible needs a UTF-8 locale (LC_* by prefix below); ssh sends LANG and LC_* to the cluster.
        "LANG",
        "LANGUAGE",
        # The user's keys through their agent, and Kerberos tickets for GSSAPI logins.
        "SSH_AUTH_SOCK",
        "KRB5CCNAME",
        "KRB5_CONFIG",
        # Local tasks that reach the network (the sandbox's apt) behind a proxy or a private CA.
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        # Read by the playbooks: lookup('ansible.builtin.env', …) in group_vars/cluster_sandbox.yml.
        "CESRES_SANDBOX_ROOT",
    }
)
# LC_*: the locale; ANSIBLE_*: the user's Ansible settings; XDG_*: base directories.
_ENV_PREFIXES = ("LC_", "ANSIBLE_", "XDG_")
# A private data dir without its pid file this long after its creation was left by a killed run.
_UNCLAIMED_SECONDS = 60.0


def _inherits(name: str) -> bool:
    return name in _ENV_NAMES or name.startswith(_ENV_PREFIXES)


def run_environment(envvars: Mapping[str, str]) -> dict[str, str]:
    """The environment of a process cesres-ctl runs Ansible in: the allowed part of ours, then `envvars`."""
    return {**{name: value for name, value in os.environ.items() if _inherits(name)}, **envvars}


def _runner_environment(built: Mapping[str, str], envvars: Mapping[str, str]) -> dict[str, str]:
    """Runner's environment for the run without what it copied from ours and is not allowed.

    Runner starts from a copy of os.environ (it has no option not to), then adds `envvars` and its own
    variables (callback plugin, artifact dir, fact cache): those differ from ours or are new, and stay.
    """
    return {
        name: value
        for name, value in built.items()
        if _inherits(name) or name in envvars or os.environ.get(name) != value
    }


def _process_start(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot) where /proc tells it: a reused pid differs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def _owner_record() -> str:
    pid = os.getpid()
    return json.dumps({"pid": pid, "start": _process_start(pid), "host": socket.gethostname()}) + "\n"


def _owner_alive(private_dir: Path) -> bool:
    """Whether the run that made `private_dir` may still be running (when unsure: yes)."""
    try:
        record = json.loads((private_dir / "pid").read_text(encoding="utf-8"))
        pid = int(record["pid"])
    except FileNotFoundError:
        # Between mkdtemp and the pid file, or killed right there.
        try:
            return time.time() - private_dir.stat().st_mtime < _UNCLAIMED_SECONDS
        except OSError:
            return False
    except (OSError, ValueError, TypeError, KeyError):
        return True
    if record.get("host") != socket.gethostname():
        return True  # a home shared with another machine: that machine's next run decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = record.get("start")
    return started is None or _process_start(pid) in (None, started)


def _open_under(directory: Path) -> bool:
    """Whether a process holds a file under `directory` open (runner keeps artifacts/<ident>/stdout open)."""
    prefix = f"{directory}{os.sep}"
    try:
        processes = [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    except OSError:
        return True  # cannot tell: keep it
    for process in processes:
        try:
            fds = list((process / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if str(fd.readlink()).startswith(prefix):
                    return True
            except OSError:
                continue
    return False


def sweep_private_dirs() -> None:
    """Remove the private data that killed runs left: ours, and the /tmp/cesres-* of earlier versions."""
    for entry in paths.runner_dir().iterdir():
        if entry.is_dir() and not entry.is_symlink() and not _owner_alive(entry):
            shutil.rmtree(entry, ignore_errors=True)
    # Earlier versions kept it in the temporary directory, where a killed run left its environment.
    for entry in Path(tempfile.gettempdir()).glob("cesres-*"):
        try:
            info = entry.lstat()
        except OSError:
            continue
        if (
            entry.is_dir()
            and not entry.is_symlink()
            and info.st_uid == os.getuid()
            and (entry / "artifacts").is_dir()
            and time.time() - info.st_mtime > _UNCLAIMED_SECONDS
            and not _open_under(entry)
        ):
            shutil.rmtree(entry, ignore_errors=True)


@contextmanager
def private_data_dir(stem: str) -> Iterator[Path]:
    """A fresh owner-only directory for one run's private data, removed on the way out.

    In the state directory, not /tmp: runner puts nothing there whose path length matters (its
    ssh-agent socket, the reason for runner's /tmp default (#136), exists only with its ssh_key option,
    which cesres-ctl never passes: ssh uses the user's own keys and agent, and ControlPath is under
    ~/.ansible/cp). A `pid` file names the owner (pid, start time, host), so that the next run on this
    machine removes the directory if this one is killed; that next run also removes what earlier versions
    left in /tmp.
    """
    sweep_private_dirs()
    path = Path(tempfile.mkdtemp(prefix=f"{stem}-", dir=paths.runner_dir()))  # mode 0700
    try:
        _write_private(path / "pid", _owner_record())
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_extravars(private_dir: Path, extravars: Mapping[str, Any]) -> Path:
    """env/extravars of the private data dir, which runner passes as `-e @FILE` (no size limit then)."""
    path = private_dir / "env" / "extravars"
    _write_private(path, json.dumps(extravars))
    return path


def _drop_command_artifact(status: Mapping[str, Any], runner_config: Any) -> None:
    # Runner writes the command line and the whole environment to artifacts/<ident>/command before it
    # starts Ansible, and reads it nowhere: remove it as soon as Ansible runs.
    if status.get("status") == "running":
        Path(runner_config.artifact_dir, "command").unlink(missing_ok=True)


def run_ansible(private_dir: Path, *, envvars: Mapping[str, str], **kwargs: Any) -> "ansible_runner.Runner":
    """ansible_runner.run in `private_dir`, with only the environment the run needs; returns runner's Runner.

    Inputs go in env/extravars (write_extravars), never in `extravars`: runner puts those on the command line.
    """
    if "extravars" in kwargs:
        raise TypeError("pass extra vars through write_extravars, not on the command line")
    if "settings" in kwargs:
        # Runner reads its settings from env/settings only: without that file it drops the ones passed in.
        _write_private(private_dir / "env" / "settings", json.dumps(kwargs.pop("settings")))
    # Imported here, not with the module: ansible_runner takes ~25 ms to import, and the quick commands
    # (status, logs, cancel) that import this module's helpers never run a playbook.
    import ansible_runner.interface

    # As ansible_runner.run does (init_runner, then run), with the environment filtered in between.
    runner = ansible_runner.interface.init_runner(
        private_data_dir=str(private_dir),
        envvars=dict(envvars),
        suppress_env_files=True,
        status_handler=_drop_command_artifact,
        **kwargs,
    )
    runner.config.env = _runner_environment(runner.config.env, envvars)
    runner.run()
    return runner


# --- the run ------------------------------------------------------------------------------------


class _Hold:
    """Whether a cancel must wait: while a task of one of `actions` runs, and to the end of the play once
    one of them reported a change (a job that sbatch accepted must reach the caller, who records it).

    Fed by the event handler, in runner's own thread: when runner asks whether to cancel, every event it has
    read is counted (the consumer thread may lag behind)."""

    def __init__(self, actions: frozenset[str]) -> None:
        self.actions = actions
        self.running = 0
        self.started = False
        self.to_the_end = False

    def see(self, event: Mapping[str, Any]) -> None:
        data = event.get("event_data") or {}
        if str(data.get("task_action") or "").rpartition(".")[2] not in self.actions:
            return
        name = event.get("event")
        if name == "runner_on_start":
            self.running += 1
            self.started = True
        elif name in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped"):
            self.running = max(0, self.running - 1)
            self.to_the_end = self.to_the_end or bool((data.get("res") or {}).get("changed"))

    @property
    def active(self) -> bool:
        return self.running > 0 or self.to_the_end


class _Recorder:
    """Consumer side of the event queue: log file, display, first failure and final stats."""

    def __init__(self, log: TextIO, display: ProgressDisplay | None, cancel: threading.Event) -> None:
        self.log = log
        self.display = display
        self.cancel = cancel
        self.failure: str | None = None
        self.unexplained_host = ""  # unreachable for a reason ssh did not show (see _diagnosed)
        self.hosts: dict[str, HostStats] = {}
        self.changed: list[str] = []
        self.facts: dict[str, dict[str, Any]] = {}
        self.log_error: OSError | None = None

    def consume(self, events: "queue.Queue[Mapping[str, Any] | None]") -> None:
        cancel_shown = False
        while True:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                event = {}
            if event is None:
                return
            if self.display is not None and self.cancel.is_set() and not cancel_shown:
                cancel_shown = True
                self.display.cancelling()
            if event:
                self.record(event)

    def record(self, event: Mapping[str, Any]) -> None:
        lines = event_output(event)
        if lines and self.log_error is None:
            try:
                self.log.write("\n".join(lines) + "\n")
                # Flushed per event so the log is complete up to a crash of cesres-ctl itself.
                self.log.flush()
            except OSError as exc:
                # A full disk: the log stops here, the run's outcome (its facts) must still come through.
                self.log_error = exc
        if self.failure is None and is_failure_event(event):
            self.failure = describe_failure(event)
            data = event.get("event_data") or {}
            res = data.get("res") or {}
            if event.get("event") == "runner_on_unreachable" and not sshdiag.explain(_text(res.get("msg")), "?"):
                self.unexplained_host = str(data.get("host") or "")
        change = changed_task(event)
        if change is not None:
            self.changed.append(change)
        facts = set_facts(event)
        if facts is not None:
            self.facts.setdefault(facts[0], {}).update(facts[1])
        if event.get("event") == "playbook_on_stats":
            self.hosts = parse_stats(event.get("event_data") or {})
        if self.display is not None:
            self.display.handle(event, lines)


@contextmanager
def _log_file(path: Path) -> Iterator[TextIO]:
    """The run's log, opened for writing; closed without complaint if the disk is full (_Recorder stops
    writing it then, and says so)."""
    log = path.open("w", encoding="utf-8")
    try:
        yield log
    finally:
        with suppress(OSError):
            log.close()


def run_playbook(
    playbook: str,
    *,
    limit: str | None = None,
    extravars: dict[str, Any] | None = None,
    tags: Sequence[str] = (),
    skip_tags: Sequence[str] = (),
    verbose: bool = False,
    title: str | None = None,
    inventory: str | Sequence[str] | None = None,
    quiet: bool = False,
    check: bool = False,
    held: interrupts.Interrupts | None = None,
    hold_actions: frozenset[str] = frozenset(),
) -> PlaybookResult:
    """Run `playbook` (relative to the project) and return its outcome; never raises on a failed run.

    inventory: one source or several, read in order (the project's, then the user's overlay); None: ansible.cfg's.
    check: ansible-playbook --check, the roles report what would change and change nothing.
    Ctrl-C, SIGTERM and SIGHUP cancel the run (held: the caller holds them already, for longer), except while a
    task of `hold_actions` (module names) runs, or after one reported a change: then the play runs to its end.
    """
    project = paths.project_dir()
    if not (project / playbook).is_file():
        raise CesresError(f"no playbook {playbook} in {project}")
    inventory_paths: list[str] = []
    for source in [inventory] if isinstance(inventory, str) else inventory or []:
        resolved = Path(source) if Path(source).is_absolute() else project / source
        if not resolved.exists():
            raise CesresError(f"inventory {source} not found")
        inventory_paths.append(str(resolved))
    extravars = dict(extravars or {})
    stem = Path(playbook).stem
    ident = f"{stem}-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}"
    log_path = paths.logs_dir() / f"{ident}.log"
    envvars = {
        "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
        # The master connections of cesres-ctl's own ssh and rsync: one per cluster for all of them.
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(paths.control_dir()),
        # Runner forces host key checking off unless it is set explicitly; we always check.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # Ansible runs under runner's pty and would colour its output: keep the log plain text.
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "PYTHONWARNINGS": python_warnings(),
        # The ansible-playbook of the venv cesres-ctl runs from, even if that venv is not activated.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
    }
    events: queue.Queue[Mapping[str, Any] | None] = queue.Queue()
    hold = _Hold(hold_actions)

    def on_event(event: Mapping[str, Any]) -> bool:
        hold.see(event)
        events.put(event)
        return True

    kwargs: dict[str, Any] = {
        "project_dir": str(project),
        "playbook": playbook,
        "ident": ident,
        "quiet": True,
        "event_handler": on_event,
        # Cancel is polled once per pexpect wait: 1 s instead of 5 s keeps Ctrl-C responsive.
        # idle_timeout stays unset: quiet tasks (pip install, sbatch --wait) must not be killed.
        # No artifacts/<ident>/stdout: the log is ours, and one writer fewer on a disk that fills up.
        "settings": {"pexpect_timeout": 1, "suppress_output_file": True},
    }
    if inventory_paths:
        # A list: runner passes one -i per source (a comma string would be written out as an inventory).
        kwargs["inventory"] = inventory_paths
    if limit:
        kwargs["limit"] = limit
    if tags:
        kwargs["tags"] = ",".join(tags)
    if skip_tags:
        kwargs["skip_tags"] = ",".join(skip_tags)
    if check:
        kwargs["cmdline"] = "--check"
    display = None if quiet else ProgressDisplay(title or stem, verbose=verbose)

    with ExitStack() as cleanup:
        log = cleanup.enter_context(_log_file(log_path))
        # Entered first, so removed last: after Ansible and the task listing are gone.
        private_dir = cleanup.enter_context(private_data_dir(stem))
        if extravars:
            write_extravars(private_dir, extravars)
        if display is not None:
            cleanup.enter_context(display)
        # Ansible runs in its own session under runner's pty, so it does not get the terminal's SIGINT: runner
        # kills it once cancel_callback says so. SIGTERM and SIGHUP would end cesres-ctl at once, leaving the
        # run's private data behind and Ansible running (runner starts it ignoring SIGHUP): held, they cancel
        # the same way.
        stop = held if held is not None else cleanup.enter_context(interrupts.held())
        kwargs["cancel_callback"] = lambda: stop.event.is_set() and not hold.active
        recorder = _Recorder(log, display, stop.event)
        consumer = threading.Thread(target=recorder.consume, args=(events,), daemon=True)
        consumer.start()
        # Runs last on the way out: every queued event is logged and shown before the display closes.
        cleanup.callback(consumer.join)
        cleanup.callback(events.put, None)
        lost = ""
        try:
            runner = run_ansible(private_dir, envvars=envvars, **kwargs)
        except OSError as exc:
            # Runner could not write its files (a full disk): the events read so far say what happened.
            runner = None
            lost = f"cesres-ctl lost track of the run ({_os_error(exc)})"

    if runner is not None:
        status, rc = str(runner.status), runner.rc if isinstance(runner.rc, int) else -1
    else:
        # The play's end (its stats) was read: its outcome is known, only runner's bookkeeping failed.
        ended = bool(recorder.hosts) and not any(host.failed or host.unreachable for host in recorder.hosts.values())
        status, rc = ("successful", 0) if ended else ("failed", -1)
    failure = None
    if status == "failed" and runner is None:
        failure = recorder.failure or lost
    elif status != "successful" or rc != 0:
        if status == "canceled":
            failure = f"interrupted ({stop.by or 'Ctrl-C'})"
        elif recorder.unexplained_host:
            failure = _diagnosed(recorder.unexplained_host) or recorder.failure
        else:
            failure = recorder.failure or failure_from_output(_read_log(log_path))
            failure = failure or f"ansible-playbook ended with status {status} (rc={rc})"
    return PlaybookResult(
        status=status,
        rc=rc,
        hosts=recorder.hosts,
        log_path=log_path,
        failure=failure,
        changed=tuple(recorder.changed),
        facts=recorder.facts,
        interrupted=stop.by,
        log_error=_os_error(recorder.log_error) if recorder.log_error else "",
        held_task_started=hold.started,
        lost_track=runner is None and not recorder.hosts,
    )


def _os_error(exc: OSError) -> str:
    return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc.strerror or exc)


def _read_log(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _diagnosed(host: str) -> str | None:
    """`host: reason` from a direct ssh connection: through Ansible's master connection, ssh does not
    show why a gateway hop failed (a changed host key reads "Connection closed by UNKNOWN port")."""
    from cesres_ctl.runs.remote import diagnose_cluster  # only on this failure path

    reason = diagnose_cluster(host)
    return f"{host}: {reason}" if reason else None
