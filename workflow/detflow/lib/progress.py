"""Progress of a long step (frames extracted, training steps, images and frames predicted): done of total,
the rate and the time left.

On a terminal the line is rewritten in place a few times a second; in a log
file (a Snakemake job's stderr) a line is written at most every ``interval``
seconds, so a log shows the step moving without a line per item. The last
line always says the totals.
"""
import logging
import sys
import time

log = logging.getLogger(__name__)

TERMINAL_INTERVAL = 0.5  # seconds between rewrites of the line on a terminal
LOG_INTERVAL = 15.0  # seconds between lines in a log file


def duration(seconds):
    """``7 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Counts items of one step: ``update()`` after each, ``done()`` at the end (or use it as a context)."""

    def __init__(self, what, total=None, unit="items", *, stream=None, interval=None, clock=time.monotonic):
        self.what, self.total, self.unit = what, total, unit
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.interval = interval if interval is not None else (TERMINAL_INTERVAL if self.terminal else LOG_INTERVAL)
        self.clock = clock
        self.count = 0
        self.started = self.shown = clock()

    def line(self):
        """What the step has done so far, in words."""
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.count / elapsed
        done = f"{self.count}/{self.total}" if self.total else f"{self.count}"
        text = f"{self.what}: {done} {self.unit}"
        if self.total:
            text += f" ({100 * self.count / self.total:.0f}%)"
        text += f", {rate:.1f} {self.unit}/s"
        if self.total and rate > 0 and self.count < self.total:
            text += f", {duration((self.total - self.count) / rate)} left"
        elif self.count:
            text += f", {duration(elapsed)}"
        return text

    def update(self, count=1):
        self.count += count
        now = self.clock()
        if now - self.shown >= self.interval:
            self.shown = now
            self._show(self.line())

    def done(self):
        """The final line: the totals and the time the step took."""
        self._show(self.line(), final=True)

    def _show(self, text, final=False):
        if self.terminal:
            self.stream.write(f"\r\033[K{text}" + ("\n" if final else ""))
            self.stream.flush()
        else:
            log.info("%s", text)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.done()
        elif self.terminal:
            self.stream.write("\n")  # leave the last progress line, and let the error start on its own
        return False
