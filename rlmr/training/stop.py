"""Stopping a run cleanly on SIGINT or SIGTERM (Ctrl-C, `kill`, a scheduler's preemption).

    with StopSignals() as stop:
        run_training(cfg, services, run, rows, stop=stop)

The first signal lets the step in progress finish; the loop then evaluates,
writes a checkpoint and returns, and the caller stops the actors and the Ray
instance it started. A second signal stops at once (KeyboardInterrupt): the
last complete checkpoint is still the one `--resume` uses, because a
checkpoint becomes visible only when it is whole.
"""

from __future__ import annotations

import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Records the first SIGINT/SIGTERM in `received` (its name); handlers only in the main
    thread, restored on exit."""

    def __init__(self):
        self.received: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            # None: the previous handler was not installed from Python (Ray's, in C++).
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            raise KeyboardInterrupt(f"{name} received a second time: stopping now")
        self.received = name
        print(
            f"rlmr: {name} received: finishing the step in progress, then checkpoint and stop "
            "(send it again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process a signal ended."""
        return 128 + signal.Signals[self.received].value if self.received else 0
