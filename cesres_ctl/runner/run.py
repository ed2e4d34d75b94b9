"""One run of ansible-runner: run_ansible, the call itself with a filtered environment, and run_playbook, which
runs one of the project's playbooks with live progress and a kept log and returns its PlaybookResult.

The event handler only enqueues (a slow handler makes runner time out, #1343): a consumer thread
(events.Recorder) writes the log and drives the display.
"""

import json
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from cesres_ctl import interrupts, paths
from cesres_ctl.errors import CesresError, ExitCode
from cesres_ctl.progress import ProgressDisplay
from cesres_ctl.runner.environment import allowed_environment, playbook_envvars
from cesres_ctl.runner.events import HostStats, Recorder, failure_from_output
from cesres_ctl.runner.private_dir import private_data_dir, write_extravars, write_private

if TYPE_CHECKING:
    import ansible_runner


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


def format_summary(result: PlaybookResult) -> str:
    """One line per host, e.g. `sandbox: ok=12 changed=0 failed=0 unreachable=0`."""
    return "\n".join(
        f"{host}: ok={s.ok} changed={s.changed} failed={s.failed} unreachable={s.unreachable}"
        for host, s in result.hosts.items()
    )


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


@contextmanager
def _log_file(path: Path) -> Iterator[TextIO]:
    """The run's log, opened for writing; closed without complaint if the disk is full (events.Recorder stops
    writing it then, and says so)."""
    log = path.open("w", encoding="utf-8")
    try:
        yield log
    finally:
        with suppress(OSError):
            log.close()


def _drop_command_artifact(status: Mapping[str, Any], runner_config: Any) -> None:
    # Runner writes the command line and the whole environment to artifacts/<ident>/command before it
    # starts Ansible, and reads it nowhere: remove it as soon as Ansible runs.
    if status.get("status") == "running":
        Path(runner_config.artifact_dir, "command").unlink(missing_ok=True)


def run_ansible(
    private_dir: Path,
    *,
    envvars: Mapping[str, str],
    cancel_callback: Callable[[], bool] | None = None,
    event_handler: Callable[[Mapping[str, Any]], bool] | None = None,
    **kwargs: Any,
) -> "ansible_runner.Runner":
    """Run Ansible through ansible-runner in `private_dir` (kwargs: RunnerConfig's) with only the environment the
    run needs; returns runner's Runner. Without cancel_callback, the stop signals cancel the run.

    Inputs go in env/extravars (write_extravars), never in `extravars`: runner puts those on the command line.
    """
    if "extravars" in kwargs:
        raise TypeError("pass extra vars through write_extravars, not on the command line")
    if "settings" in kwargs:
        # Runner reads its settings from env/settings only: without that file it drops the ones passed in.
        write_private(private_dir / "env" / "settings", json.dumps(kwargs.pop("settings")))
    # Imported here, not with the module: ansible_runner takes ~25 ms to import, and the quick commands
    # (status, logs, cancel) never run a playbook.
    import ansible_runner

    class Config(ansible_runner.RunnerConfig):  # type: ignore[misc]  # ansible-runner ships no types
        """RunnerConfig, whose documented use is to be extended: its environment filtered once built."""

        env: dict[str, str]

        def prepare_env(self) -> None:
            super().prepare_env()
            self.env = allowed_environment(self.env, envvars)

    config = Config(private_data_dir=str(private_dir), envvars=dict(envvars), **kwargs)
    config.prepare()
    with ExitStack() as stack:
        if cancel_callback is None:
            cancel_callback = stack.enter_context(interrupts.held()).event.is_set
        runner = ansible_runner.Runner(
            config,
            event_handler=event_handler,
            status_handler=_drop_command_artifact,
            cancel_callback=cancel_callback,
        )
        runner.run()
    return runner


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
    stem = Path(playbook).stem
    ident = f"{stem}-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}"
    log_path = paths.logs_dir() / f"{ident}.log"
    kwargs = _playbook_args(
        project, playbook, ident, inventory=inventory, limit=limit, tags=tags, skip_tags=skip_tags, check=check
    )
    events: queue.Queue[Mapping[str, Any] | None] = queue.Queue()
    hold = _Hold(hold_actions)

    def on_event(event: Mapping[str, Any]) -> bool:
        hold.see(event)
        events.put(event)
        return True

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
        recorder = Recorder(log, display, stop.event)
        consumer = threading.Thread(target=recorder.consume, args=(events,), daemon=True)
        consumer.start()
        # Runs last on the way out: every queued event is logged and shown before the display closes.
        cleanup.callback(consumer.join)
        cleanup.callback(events.put, None)
        runner = None
        lost = ""
        try:
            runner = run_ansible(
                private_dir,
                envvars=playbook_envvars(project),
                event_handler=on_event,
                cancel_callback=lambda: stop.event.is_set() and not hold.active,
                **kwargs,
            )
        except OSError as exc:
            # Runner could not write its files (a full disk): the events read so far say what happened.
            lost = f"cesres-ctl lost track of the run ({_os_error(exc)})"

    status, rc, failure = _outcome(runner, recorder, lost=lost, interrupted=stop.by, log_path=log_path)
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


def _playbook_args(
    project: Path,
    playbook: str,
    ident: str,
    *,
    inventory: str | Sequence[str] | None,
    limit: str | None,
    tags: Sequence[str],
    skip_tags: Sequence[str],
    check: bool,
) -> dict[str, Any]:
    """RunnerConfig's arguments for a run of `playbook`; CesresError for an inventory source that is not there."""
    kwargs: dict[str, Any] = {
        "project_dir": str(project),
        "playbook": playbook,
        "ident": ident,
        "quiet": True,
        # Cancel is polled once per pexpect wait: 1 s instead of 5 s keeps Ctrl-C responsive.
        # idle_timeout stays unset: quiet tasks (pip install, sbatch --wait) must not be killed.
        # No artifacts/<ident>/stdout: the log is ours, and one writer fewer on a disk that fills up.
        "settings": {"pexpect_timeout": 1, "suppress_output_file": True},
    }
    inventory_paths: list[str] = []
    for source in [inventory] if isinstance(inventory, str) else inventory or []:
        resolved = Path(source) if Path(source).is_absolute() else project / source
        if not resolved.exists():
            raise CesresError(f"inventory {source} not found")
        inventory_paths.append(str(resolved))
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
    return kwargs


def _outcome(
    runner: "ansible_runner.Runner | None", recorder: Recorder, *, lost: str, interrupted: str, log_path: Path
) -> tuple[str, int, str | None]:
    """(status, rc, failure line) of a run; runner None: runner failed (lost says why), its events tell the rest."""
    if runner is not None:
        status, rc = str(runner.status), runner.rc if isinstance(runner.rc, int) else -1
    else:
        # The play's end (its stats) was read: its outcome is known, only runner's bookkeeping failed.
        ended = bool(recorder.hosts) and not any(host.failed or host.unreachable for host in recorder.hosts.values())
        status, rc = ("successful", 0) if ended else ("failed", -1)
    if status == "successful" and rc == 0:
        return status, rc, None
    if runner is None:
        return status, rc, recorder.failure or lost
    if status == "canceled":
        return status, rc, f"interrupted ({interrupted or 'Ctrl-C'})"
    if recorder.unexplained_host:
        return status, rc, _diagnosed(recorder.unexplained_host) or recorder.failure
    failure = recorder.failure or failure_from_output(_read_log(log_path))
    return status, rc, failure or f"ansible-playbook ended with status {status} (rc={rc})"


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
