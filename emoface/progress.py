"""Progress that is always visible: a rich bar on a terminal, plain periodic lines otherwise.

Batch jobs (SLURM, ``nohup``, CI) write to files where a live bar shows nothing until it ends (rich)
or fills the log with carriage returns (tqdm). There, :class:`ProgressReport` prints one line every
``EMOFACE_PROGRESS_SECONDS`` seconds (default 30) instead, plus a first and a last line.

Jupyter counts as "not a terminal" too: rich's live display and ipykernel's output stream call each
other when the code under the bar prints (``RecursionError``), and tqdm's notebook bar needs
ipywidgets; plain lines work in every notebook front end.

ETAs are measured from the first item done, not from the start: the first item carries the
start-up (worker processes importing torch, data loaders starting), and counting it as work would
make the first estimate hours long.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import IO, Any

DEFAULT_SECONDS = 30.0


def progress_seconds() -> float:
    """Seconds between plain progress lines: ``$EMOFACE_PROGRESS_SECONDS`` or 30."""
    try:
        return max(0.0, float(os.environ.get("EMOFACE_PROGRESS_SECONDS", DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


def is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default ``sys.stderr``) is an interactive terminal (not a file, a pipe,
    or a Jupyter kernel's output: live bars break or need ipywidgets there)."""
    stream = sys.stderr if stream is None else stream
    if in_notebook_kernel():
        return False  # ipykernel's streams may claim to be a tty (e.g. with a terminal front end)
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def in_notebook_kernel() -> bool:
    """Whether this process is a running Jupyter kernel (not merely a process that imported
    ipykernel, as a test runner executing notebooks does)."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class RateEstimate:
    """Items per second and the time left, measured from the first item done (start-up excluded).

    Args:
        total: number of items (``None``: unknown, no ETA).
    """

    def __init__(self, total: float | None) -> None:
        self.total = total
        self._first: tuple[float, float] | None = None  # (time, items done) at the first update

    def update(self, done: float, now: float) -> None:
        """Record ``done`` items at time ``now`` (the first call sets the reference)."""
        if self._first is None and done > 0:
            self._first = (now, done)

    def remaining_seconds(self, done: float, now: float, total: float | None = None) -> float:
        """Seconds until ``total`` (default: the constructor's) at the rate since the first item;
        ``nan`` while unknown (fewer than two updates, or no total)."""
        total = self.total if total is None else total
        if self._first is None or total is None or not math.isfinite(total):
            return math.nan
        first_time, first_done = self._first
        if done <= first_done or now <= first_time:
            return math.nan
        rate = (done - first_done) / (now - first_time)
        return max(0.0, total - done) / rate


def format_seconds(seconds: float) -> str:
    """``h:mm:ss`` (``--:--:--`` when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressReport:
    """Count work done and show it: a rich bar on a terminal, plain lines otherwise.

    Use as a context manager::

        with ProgressReport("preprocess", total=len(clips), unit="clips") as report:
            for clip in clips:
                ...
                report.advance()

    Args:
        description: what is being done (the lines' prefix).
        total: number of items (``None``: unknown).
        unit: the items' name, plural.
        enabled: ``False`` shows nothing.
        stream: where to write (default ``sys.stderr``).
        every_seconds: seconds between plain lines (default :func:`progress_seconds`).
        bar: ``True``/``False`` forces the rich bar on/off; ``None`` uses it on a terminal.
    """

    def __init__(
        self,
        description: str,
        total: int | None,
        unit: str = "items",
        enabled: bool = True,
        stream: IO[str] | None = None,
        every_seconds: float | None = None,
        bar: bool | None = None,
    ) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.stream = stream
        self.every_seconds = progress_seconds() if every_seconds is None else every_seconds
        self.use_bar = is_terminal(stream) if bar is None else bar
        self.done = 0
        self._start = 0.0
        self._last_line = 0.0
        self._bar: Any = None
        self._task: Any = None
        self._rate = RateEstimate(total)

    # ------------------------------------------------------------------------------------------
    def __enter__(self) -> ProgressReport:
        self._start = self._last_line = time.perf_counter()
        if not self.enabled:
            return self
        if self.use_bar:
            self._bar = _rich_bar(self.description, self.unit, self.stream)
            self._task = self._bar.add_task(self.description, total=self.total)
            self._bar.start()
        else:
            self._line(f"{self.done}/{self._total_text()} {self.unit} to do")
        return self

    def advance(self, count: int = 1) -> None:
        """Record ``count`` more items done."""
        self.done += count
        if not self.enabled:
            return
        now = time.perf_counter()
        self._rate.update(self.done, now)
        if self._bar is not None:
            self._bar.advance(self._task, count)
            return
        if now - self._last_line >= self.every_seconds and (self.total is None or self.done < self.total):
            self._last_line = now
            self._line(self.status())

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        else:
            self._line(f"{self.status()} (finished)" if exc[0] is None else f"{self.status()} (stopped)")

    # ------------------------------------------------------------------------------------------
    def status(self) -> str:
        """``12/66 clips (18%), 2.10 clips/s, elapsed 0:00:06, ETA 0:00:26``."""
        now = time.perf_counter()
        elapsed = now - self._start
        speed = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.done}/{self._total_text()} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        parts.append(f"{speed:.2f} {self.unit}/s")
        parts.append(f"elapsed {format_seconds(elapsed)}")
        remaining = self._rate.remaining_seconds(self.done, now)
        if self.total and self.done < self.total and math.isfinite(remaining):
            parts.append(f"ETA {format_seconds(remaining)}")
        return ", ".join(parts)

    def _total_text(self) -> str:
        return "?" if self.total is None else str(self.total)

    def _line(self, text: str) -> None:
        print(f"{self.description}: {text}", file=self.stream or sys.stderr, flush=True)


def _rich_bar(description: str, unit: str, stream: IO[str] | None) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class SpeedColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.2f} {unit}/s" if speed else f"-- {unit}/s")

    return Progress(
        TextColumn(f"[bold]{description}"),
        BarColumn(),
        MofNCompleteColumn(),
        SpeedColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(file=stream or sys.stderr),
        transient=False,
    )
