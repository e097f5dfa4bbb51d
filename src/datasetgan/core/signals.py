"""SIGINT and SIGTERM as a request to stop at the next safe point.

A long loop runs inside ``with StopFlag() as stop:``, checks ``stop.signum``
between steps, writes a resumable checkpoint and raises ``Interrupted``
(a ``KeyboardInterrupt``, so the command exits with 130). A second SIGINT
while the first is being handled interrupts at once.
"""

from __future__ import annotations

import signal
import threading


class Interrupted(KeyboardInterrupt):
    """Raised after SIGINT/SIGTERM once a resumable checkpoint has been written."""


SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class StopFlag:
    """Within the block, SIGINT/SIGTERM set ``signum`` instead of interrupting
    (signal handlers can only be set in the main thread; elsewhere this does nothing)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    @property
    def name(self) -> str:
        return SIGNAL_NAMES.get(self.signum, "a signal")

    def _handler(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
