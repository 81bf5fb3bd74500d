"""`TimeBudget`: stop training within a number of minutes or batches, preferring whole epochs.

After each epoch, training stops when one more epoch would end past
`max_minutes`. How long the next epoch will take is estimated from the epochs
so far: their mean (`estimate="average"`) or, more cautiously, the slowest
(`estimate="slowest"`). With `stop_mid_epoch=True` (the default) a batch
that ends past the budget, or the `max_steps`-th batch, stops training at
once; that last, partial epoch still validates and checkpoints and counts as
done (a resumed run starts with the next one). The reason it stopped is
`reason` (None while it has not), also said through the progress display.

    >>> budget = TimeBudget(max_minutes=40)
    >>> model.fit(x, y, epochs=100, callbacks=[budget])
    >>> budget.reason        # e.g. "another epoch (~95 s) would overrun the time budget of 40 minutes ..."
"""

from __future__ import annotations

import time
from typing import Any

from seqlab.training.callbacks import Callback

__all__ = ["TimeBudget"]

ESTIMATES = ("average", "slowest")


class TimeBudget(Callback):
    """Stop within `max_minutes` of training or after `max_steps` batches (see the module docstring)."""

    def __init__(self, max_minutes: float | None = None, max_steps: int | None = None, *,
                 estimate: str = "average", stop_mid_epoch: bool = True):
        if estimate not in ESTIMATES:
            raise ValueError(f"estimate must be one of {ESTIMATES}, got {estimate!r}.")
        if max_minutes is not None and max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive (or None for no time budget), got {max_minutes}.")
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer (or None), got {max_steps}.")
        self.max_minutes, self.max_steps = max_minutes, max_steps
        self.estimate, self.stop_mid_epoch = estimate, stop_mid_epoch
        self.on_train_begin()

    @property
    def stopped(self) -> bool:
        """Whether the budget stopped training."""
        return self.reason is not None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started = time.perf_counter()
        self.epoch_started, self.slowest_epoch = self.started, 0.0
        self.steps, self.epochs_done, self.reason = 0, 0, None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps += 1
        if not self.stop_mid_epoch:
            return
        if self.max_minutes is not None and self._minutes() >= self.max_minutes:
            self._stop(f"time budget of {self.max_minutes:g} minutes used, in the middle of an epoch "
                       f"({self.steps} batches)")
        elif self.max_steps is not None and self.steps >= self.max_steps:
            self._stop(f"step budget of {self.max_steps} batches used ({self._minutes():.1f} minutes)")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs_done += 1
        self.slowest_epoch = max(self.slowest_epoch, time.perf_counter() - self.epoch_started)
        if self.max_minutes is None or self.reason is not None or epoch + 1 >= self.params.get("epochs", 0):
            return
        if not self.stop_mid_epoch and self.max_steps is not None and self.steps >= self.max_steps:
            self._stop(f"step budget of {self.max_steps} batches used ({self._minutes():.1f} minutes)")
            return
        next_epoch = self._minutes() / self.epochs_done if self.estimate == "average" else self.slowest_epoch / 60
        if self._minutes() + next_epoch > self.max_minutes:
            self._stop(f"another epoch (~{next_epoch * 60:.0f} s) would overrun the time budget of "
                       f"{self.max_minutes:g} minutes ({self._minutes() * 60:.0f} s used)")

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to go on with the same budget: the time, steps and epochs already spent."""
        return {"seconds": time.perf_counter() - self.started, "steps": self.steps, "epochs_done": self.epochs_done,
                "slowest_epoch": self.slowest_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.started = time.perf_counter() - state["seconds"]  # the minutes already used count
        self.steps, self.epochs_done = state["steps"], state["epochs_done"]
        self.slowest_epoch = state["slowest_epoch"]

    def _minutes(self) -> float:
        return (time.perf_counter() - self.started) / 60

    def _stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.model.stop_training = True
            self.say(f"Stopping: {reason}.")
