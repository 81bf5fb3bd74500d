"""`EpochTimer`: the wall time of each epoch, training and validation included.

The seconds go to `seconds` (one entry per epoch of the run, a resumed one's too) and, unless
`log_key=None`, into each epoch's logs under `log_key` (so `History`, a
`CSVLogger` placed after it and checkpoints see them).

    >>> timer = EpochTimer()
    >>> history = model.fit(x, y, epochs=3, callbacks=[timer])
    >>> timer.seconds, history.history["seconds"]      # the same three numbers
"""

from __future__ import annotations

import time
from typing import Any

from seqlab.training.callbacks import Callback

__all__ = ["EpochTimer"]


class EpochTimer(Callback):
    """Records each epoch's seconds in `seconds` and (unless `log_key=None`) in the epoch's logs."""

    def __init__(self, log_key: str | None = "seconds"):
        self.log_key = log_key
        self.seconds: list[float] = []
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self.started
        self.seconds.append(seconds)
        if logs is not None and self.log_key is not None:
            logs[self.log_key] = seconds

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": list(self.seconds)}  # a resumed run reports every epoch's seconds

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seconds = list(state["seconds"])
