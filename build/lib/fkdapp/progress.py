"""One progress display for every long job: a live line on a terminal, a plain flushed line every few seconds in a
log (output piped to a file), with the elapsed time and, where the total is known, the ETA."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


def clock(seconds: float) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """``advance(n)`` counts work done out of ``total`` (None: unknown); ``update(text)`` shows a status text.

    On a terminal the line is redrawn in place at most every ``interval`` seconds; elsewhere (a log file, a pipe)
    a whole line is written and flushed at most every ``log_interval`` seconds, so a log shows progress while it
    runs. ``enabled=False`` shows nothing.
    """

    def __init__(self, total: int | None = None, label: str = "", stream: TextIO | None = None,
                 enabled: bool = True, interval: float = 0.25, log_interval: float = 10.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total, self.label, self.enabled = total, label, enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else log_interval
        self.done, self.start, self._last, self._width, self._text = 0, time.monotonic(), -math.inf, 0, ""

    def line(self) -> str:
        """The current status: label, count and percentage, elapsed time and ETA, then the text."""
        elapsed = time.monotonic() - self.start
        if self.total:
            frac = min(self.done / self.total, 1.0)
            eta = f", ETA {clock(elapsed * (1 - frac) / frac)}" if frac > 0 else ""
            parts = [f"{100 * frac:5.1f}% ({self.done}/{self.total}), {clock(elapsed)} elapsed{eta}"]
        else:
            parts = [f"{clock(elapsed)} elapsed"]
        if self._text:
            parts.append(self._text)
        return (f"{self.label}: " if self.label else "") + "  ".join(parts)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._show(self.total is not None and self.done >= self.total)

    __call__ = advance

    def update(self, text: str, force: bool = False) -> None:
        self._text = text
        self._show(force)

    def _show(self, force: bool) -> None:
        now = time.monotonic()
        if not self.enabled or not (force or now - self._last >= self.interval):
            return
        self._last = now
        text = self.line()
        if self.tty:
            self._width = max(self._width, len(text))
            self.stream.write("\r" + text.ljust(self._width))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the live line (a terminal) and start the next display afresh."""
        if self.enabled and self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
        self._width, self._last, self._text = 0, -math.inf, ""
