"""`FollowEpochs`: tell epoch-aware batch sources which epoch `fit` is in.

`fit` reads a re-iterable of batches by iterating it, once per epoch, without
saying which epoch that is; an `EpochBatches` (seqlab.data.epoch_batches)
reads epoch e's order when told e through `set_epoch(e)`. This callback says
it at the start of every epoch, a resumed run's first included, so the order
of each epoch is a function of (seed, epoch) and resume reads the same
batches as an uninterrupted run. (When `fit` passes the epoch to its data
itself, this callback only repeats it.)

    >>> batches = chunk_batches(x, y, batch_size=64, shuffle_buffer=10_000, seed=0)
    >>> model.fit(batches, epochs=20, callbacks=[FollowEpochs(batches)])
"""

from __future__ import annotations

from typing import Any

from seqlab.training import Callback

__all__ = ["FollowEpochs"]


class FollowEpochs(Callback):
    """Calls `source.set_epoch(epoch)` on each source at the start of each of fit's epochs."""

    def __init__(self, *sources: Any):
        for source in sources:
            if not callable(getattr(source, "set_epoch", None)):
                raise TypeError(f"FollowEpochs needs batch sources with set_epoch(epoch), got "
                                f"{type(source).__name__}.")
        self.sources = sources

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        for source in self.sources:
            source.set_epoch(epoch)
