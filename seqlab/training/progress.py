"""Progress display for fit/evaluate/predict: a rich bar on a terminal, one plain line per epoch elsewhere.

`verbose` as in Keras: 0 silent; 1 or "auto" a live bar (loss, metrics,
speed, time left) when stderr is a terminal and otherwise (CI, logs piped to
a file) one line per epoch; 2 always one line per epoch:

    Epoch 3/10 - 2.1s - 4,800 samples/s - loss: 0.4123 - accuracy: 0.8123 - val_loss: 0.4410

Speed counts tokens (non-padded target steps) for sequence outputs and
samples otherwise. Only the main process of a distributed run displays.

    >>> progress = make_progress(verbose=2)
    >>> progress.begin("Epoch 1/3", steps=10); progress.advance({"loss": 0.5}, 32, "samples")
    >>> progress.end({"loss": 0.5})
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["PlainProgress", "Progress", "RichProgress", "format_logs", "make_progress"]


class Progress:
    """Silent base: `begin(description, steps)`, `advance(logs, units, unit)` per batch, `end(logs)`.

        >>> Progress().begin("Epoch 1/1", None)   # verbose=0: prints nothing
    """

    def __init__(self) -> None:
        self.description, self.steps = "", None
        self.started = time.perf_counter()
        self.units, self.unit = 0, "samples"

    def begin(self, description: str, steps: int | None) -> None:
        self.description, self.steps = description, steps
        self.started, self.units = time.perf_counter(), 0

    def advance(self, logs: dict[str, float], units: int, unit: str) -> None:
        self.units += units
        self.unit = unit

    def end(self, logs: dict[str, float]) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def speed(self) -> str:
        elapsed = self.elapsed()
        rate = self.units / elapsed if elapsed > 0 else 0.0
        return f"{rate:,.0f} {self.unit}/s"

    def summary(self, logs: dict[str, float]) -> str:
        """`Epoch 3/10 - 2.1s - 4,800 samples/s - loss: 0.4123 - ...`: the line an epoch leaves behind."""
        parts = [self.description, f"{self.elapsed():.1f}s"]
        if self.units:
            parts.append(self.speed())
        if logs:
            parts.append(format_logs(logs))
        return " - ".join(parts)


class PlainProgress(Progress):
    """One line per `end()`: description, seconds, speed, logs (for CI and log files).

        >>> PlainProgress(sys.stdout)
    """

    def __init__(self, stream: TextIO):
        super().__init__()
        self.stream = stream

    def end(self, logs: dict[str, float]) -> None:
        self.message(self.summary(logs))

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class RichProgress(Progress):
    """A live rich bar during each epoch (steps, elapsed and remaining time, speed, running logs),
    replaced by the epoch's summary line when it ends.

        >>> RichProgress(sys.stderr)
    """

    def __init__(self, stream: TextIO):
        super().__init__()
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bars, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.bars = Bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TimeElapsedColumn(), TextColumn("<"), TimeRemainingColumn(),
                         TextColumn("{task.fields[speed]}"), TextColumn("{task.fields[logs]}"),
                         console=Console(file=stream), transient=False)
        self.task = None
        self.bars.start()

    def begin(self, description: str, steps: int | None) -> None:
        super().begin(description, steps)
        self.task = self.bars.add_task(description, total=steps, speed="", logs="")

    def advance(self, logs: dict[str, float], units: int, unit: str) -> None:
        super().advance(logs, units, unit)
        self.bars.update(self.task, advance=1, speed=self.speed(), logs=format_logs(logs))

    def end(self, logs: dict[str, float]) -> None:
        self.bars.remove_task(self.task)
        self.bars.refresh()
        self.message(self.summary(logs))

    def message(self, text: str) -> None:
        self.bars.console.print(text, markup=False, highlight=False, soft_wrap=True)  # never cut at the width

    def close(self) -> None:
        self.bars.stop()


def make_progress(verbose: int | str, *, stream: TextIO | None = None, is_main: bool = True,
                  live_by_default: bool = True) -> Progress:
    """The display for a Keras `verbose` value (see the module docstring); silent off the main process."""
    if verbose == "auto":
        verbose = 1 if live_by_default else 0
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}.")
    stream = stream or sys.stderr
    if verbose == 0 or not is_main:
        return Progress()
    if verbose == 1 and _is_terminal(stream):
        return RichProgress(stream)
    return PlainProgress(stream)


def format_logs(logs: dict[str, float]) -> str:
    """`loss: 0.4123 - accuracy: 0.8123` (small values such as learning rates in scientific notation)."""
    return " - ".join(f"{name}: {_format_value(value)}" for name, value in logs.items())


def _format_value(value: float) -> str:
    value = float(value)
    return f"{value:.4e}" if value != 0 and abs(value) < 1e-3 else f"{value:.4f}"


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
