"""Ansible's events, read: per-host stats, the tasks that changed, the facts set, the one-line failure text
and the output lines to log; Recorder, the consumer of a run's event queue, keeps them as they come."""

import json
import queue
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from cesres_ctl import sshdiag
from cesres_ctl.progress import ProgressDisplay, task_label

MAX_FAILURE_CHARS = 300

# The set_fact module's names: its results carry the facts a playbook reports (Recorder.facts).
_SET_FACT = frozenset({"set_fact", "ansible.builtin.set_fact", "ansible.legacy.set_fact"})
# HostStats field -> key of the playbook_on_stats event data.
_STATS_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failed": "failures",
    "unreachable": "dark",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}
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


def parse_stats(event_data: Mapping[str, Any]) -> dict[str, HostStats]:
    """Per-host counters from a playbook_on_stats event's data (hosts absent from a counter have 0)."""
    hosts: set[str] = set()
    for key in (*_STATS_KEYS.values(), "processed"):
        hosts.update(event_data.get(key) or {})
    return {
        host: HostStats(**{name: int((event_data.get(key) or {}).get(host, 0)) for name, key in _STATS_KEYS.items()})
        for host in sorted(hosts)
    }


def is_failure_event(event: Mapping[str, Any]) -> bool:
    name = event.get("event")
    if name == "runner_on_unreachable":
        return True
    return name == "runner_on_failed" and not (event.get("event_data") or {}).get("ignore_errors")


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


class Recorder:
    """Consumer side of a run's event queue: log file, display, first failure, changes, facts and final stats."""

    def __init__(self, log: TextIO, display: ProgressDisplay | None, cancel: threading.Event) -> None:
        self.log = log
        self.display = display
        self.cancel = cancel
        self.failure: str | None = None
        self.unexplained_host = ""  # unreachable for a reason ssh did not show (run_playbook then asks ssh itself)
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
