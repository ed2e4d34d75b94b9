"""The stop signals (Ctrl-C, SIGTERM, SIGHUP), held while cesres-ctl does what must not be cut short.

Inside held(), a stop signal only sets a flag. The code that holds them decides what it means: the runner
cancels a playbook when it may (runner.run_playbook), a submission finishes and records what sbatch accepted
(runs/submit.py), and then says which happened and stops with exit status 130 (errors.ExitCode.INTERRUPTED).
"""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


@dataclass
class Interrupts:
    """The stop signals that came while held: `event` is set by the first, `by` names it."""

    event: threading.Event = field(default_factory=threading.Event)
    by: str = ""


@contextmanager
def held() -> Iterator[Interrupts]:
    """Hold the stop signals for the duration of the block. Signal handlers can only be set from the main
    thread: elsewhere the block runs with the signals as they are."""
    interrupts = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield interrupts
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only set a flag: a signal handler must not take locks (queue, console, SQLite) that the main thread
        # may hold.
        if not interrupts.by:
            interrupts.by = STOP_SIGNALS.get(signal.Signals(signum), "a signal")
        interrupts.event.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        yield interrupts
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
