"""Live display of a playbook run, fed with ansible-runner events by the run's consumer thread.

`ProgressState` turns events into display state and has no I/O, so it can be tested with plain dicts;
`ProgressDisplay` only renders that state: an animated bar on a terminal, one plain line per task
otherwise (CI logs must not fill up with redraws). On stderr, with the roles' "Report" lines: stdout holds only
a command's result (`RUN=$(cesres-ctl train ...)`).
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from cesres_ctl import console as cesres_console

# Results that close a task on one host; loop items (runner_item_on_*) are summed up by these.
_RESULT_COUNTERS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


def report_lines(event: Mapping[str, Any]) -> list[str]:
    """What a role tells the user: the message of a debug task named "Report ..." (e.g. module versions kept),
    or "<part> | Report ..." (a task of an imported task file, e.g. "git | Report the version ...").

    In a loop, each item's message (the loop's own result only says "All items completed").
    """
    data = event.get("event_data") or {}
    if event.get("event") not in ("runner_on_ok", "runner_item_on_ok"):
        return []
    if data.get("task_action") not in ("ansible.builtin.debug", "debug"):
        return []
    name = str(data.get("task", "")).rsplit(" | ", 1)[-1]
    if not name.startswith("Report") or "results" in (data.get("res") or {}):
        return []
    msg = (data.get("res") or {}).get("msg")
    messages = msg if isinstance(msg, list) else [msg] if msg else []
    return [f"{data.get('host', '?')}: {text}" for text in messages]


def task_label(event_data: Mapping[str, Any]) -> str:
    """The task as Ansible's TASK header names it: `role : name`, or the module for unnamed tasks."""
    name = event_data.get("task") or event_data.get("task_action") or "?"
    role = event_data.get("role")
    return f"{role} : {name}" if role else str(name)


@dataclass
class ProgressState:
    """What the display shows; `apply` folds one runner event into it."""

    title: str
    tasks_started: int = 0
    task: str = ""
    host: str = ""
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    cancelling: bool = False

    def apply(self, event: Mapping[str, Any]) -> str | None:
        """Update from one runner event; return the plain line to print when a task starts."""
        name = event.get("event")
        data = event.get("event_data") or {}
        if name in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self.task = task_label(data)
            self.host = ""
            # The count is of the play's tasks: handlers run on top of them.
            if name == "playbook_on_task_start":
                self.tasks_started += 1
            kind = "HANDLER" if name == "playbook_on_handler_task_start" else "TASK"
            return f"[{self.title}] {kind} {self.task}"
        if name == "runner_on_start":
            self.host = str(data.get("host", ""))
        elif name in _RESULT_COUNTERS:
            counter = _RESULT_COUNTERS[name]
            # Same arithmetic as Ansible's recap: changed results and ignored failures are also ok.
            if name == "runner_on_failed" and data.get("ignore_errors"):
                counter = "ok"
            setattr(self, counter, getattr(self, counter) + 1)
            if name == "runner_on_ok" and (data.get("res") or {}).get("changed"):
                self.changed += 1
        return None

    def status_line(self) -> str:
        counters = f"ok={self.ok} changed={self.changed} failed={self.failed}"
        if self.unreachable:
            counters += f" unreachable={self.unreachable}"
        if self.cancelling:
            return f"{counters}  cancelling (Ctrl-C)…"
        where = f"{self.host}: " if self.host else ""
        return f"{counters}  {where}{self.task}" if self.task else counters


class _Bar(Progress):
    """A rich Progress with the state's status line under the bar."""

    def __init__(self, state: ProgressState, console: Console) -> None:
        # Set first: Progress.__init__ already renders once.
        self._state = state
        super().__init__(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("tasks: {task.completed}"),
            TimeElapsedColumn(),
            console=console,
        )

    def get_renderables(self) -> Iterator[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        yield Text(self._state.status_line(), no_wrap=True, overflow="ellipsis")


class ProgressDisplay:
    """Context manager that renders a ProgressState; handle/set_total/cancelling come from one thread."""

    def __init__(self, title: str, *, verbose: bool = False, console: Console | None = None) -> None:
        self.state = ProgressState(title)
        self._verbose = verbose
        self._console = console if console is not None else cesres_console.err
        self.animated = self._console.is_terminal and not self._console.is_dumb_terminal
        self._bar: _Bar | None = None
        self._bar_task: TaskID | None = None

    def __enter__(self) -> "ProgressDisplay":
        if self.animated:
            self._bar = _Bar(self.state, self._console)
            # Indeterminate: counting the tasks beforehand would cost a second ansible-playbook (~1 s).
            self._bar_task = self._bar.add_task(self.state.title, total=None)
            self._bar.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None and self._bar_task is not None:
            # The run is over whatever the estimate said: leave a full bar with the final counters.
            done = self.state.tasks_started
            self._bar.update(self._bar_task, total=done, completed=done)
            self._bar.stop()

    def cancelling(self) -> None:
        self.state.cancelling = True
        self._refresh()
        if not self.animated:
            self._print([f"[{self.state.title}] cancelling (Ctrl-C)…"])

    def handle(self, event: Mapping[str, Any], output: Iterable[str] = ()) -> None:
        """Show one event; `output` is its Ansible text, printed as is in verbose mode."""
        line = self.state.apply(event)
        if self._verbose:
            self._print(output)
        else:
            if line is not None and not self.animated:
                self._print([line])
            self._print(report_lines(event))
        self._refresh()

    def _refresh(self) -> None:
        if self._bar is None or self._bar_task is None:
            return
        self._bar.update(self._bar_task, completed=self.state.tasks_started)

    def _print(self, lines: Iterable[str]) -> None:
        # Task names and Ansible output may contain [brackets]: never interpret them as markup.
        for text in lines:
            self._console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
