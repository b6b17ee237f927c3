"""Ending a run that reads frames (a stream, a camera, a long video) on request, with its outputs
complete: Ctrl+C or SIGTERM set a reason that the run checks at its next frame, instead of an
exception that would leave half-written files behind."""
import signal


class Stopper:
    """Ctrl+C (SIGINT) and SIGTERM end the run at the next frame instead of interrupting it."""

    def __init__(self):
        self.reason = None
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self._stop)

    def _stop(self, number, _frame):
        self.reason = "stopped by Ctrl+C" if number == signal.SIGINT else "stopped by SIGTERM"
