"""Progress that is always visible: a rich bar on a terminal, plain periodic lines otherwise.

Batch jobs (SLURM, ``nohup``, CI) write to files where a live bar shows nothing until it ends (rich)
or fills the log with carriage returns (tqdm). There, :class:`ProgressReport` prints one line every
``EMOFACE_PROGRESS_SECONDS`` seconds (default 30) instead, plus a first and a last line.
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
    """Whether ``stream`` (default ``sys.stderr``) is an interactive terminal or a notebook's output."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if isatty and isatty():
        return True
    # Jupyter: live bars render there; periodic lines would only add noise
    return stream in (sys.stdout, sys.stderr) and _in_notebook_kernel()


def _in_notebook_kernel() -> bool:
    """Whether this process is a running Jupyter kernel (not merely a process that imported
    ipykernel, as a test runner executing notebooks does)."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


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
        if self._bar is not None:
            self._bar.advance(self._task, count)
            return
        now = time.perf_counter()
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
        elapsed = time.perf_counter() - self._start
        speed = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.done}/{self._total_text()} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        parts.append(f"{speed:.2f} {self.unit}/s")
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if self.total and speed > 0 and self.done < self.total:
            parts.append(f"ETA {format_seconds((self.total - self.done) / speed)}")
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
