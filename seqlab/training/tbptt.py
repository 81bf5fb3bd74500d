"""Truncated backpropagation through time (TBPTT) for stateful recurrent models.

A long stream is laid out as parallel rows `x (streams, time, ...)`, `y`
likewise (`batchify` does it for one 1-D token stream). `fit(x, y, tbptt=k)`
walks the time axis in consecutive windows of k steps; each window is one
batch holding every row, and row r of window j+1 continues row r of window j.
Stateful layers carry their final state into the next window, detached from
the graph, so gradients reach back at most k steps while the state sees the
whole stream:

    h_{jk} = RNN(x_{(j-1)k .. jk-1}, stop_gradient(h_{(j-1)k}))

States are reset (`reset_states()`) at the start of every epoch and of every
evaluation, where the stream starts over. Windows are never shuffled.

    >>> x, y = batchify(ids[:-1], 32), batchify(ids[1:], 32)   # (32, len // 32) each
    >>> model.fit(x, y, tbptt=100, epochs=10)
"""

from __future__ import annotations

import math
from typing import Iterator

import torch

from seqlab.training.data_adapter import ArrayData, Batch, map_tensors
from seqlab.training.distributed import ProcessGroup
from seqlab.training.module_walk import outermost_modules_with

__all__ = ["WindowBatches", "batchify", "detach_states", "reset_states"]


class WindowBatches:
    """Consecutive time windows of `window` steps over all rows (this process's rows) of `data`.

        >>> windows = WindowBatches(ArrayData(x, y), window=50)
        >>> [batch.x.shape for batch in windows.epoch(0)][:1]
        [torch.Size([32, 50])]
    """

    def __init__(self, data: ArrayData, window: int, group: ProcessGroup = ProcessGroup()):
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"tbptt must be a window length in time steps (a positive int), got {window!r}.")
        x = data.x[0] if isinstance(data.x, tuple) else data.x
        if x.dim() < 2:
            raise ValueError(f"tbptt needs streams laid out as (streams, time, ...), got x of shape "
                             f"{tuple(x.shape)}. For one long 1-D stream use batchify(stream, streams).")
        if data.rows < group.world_size:
            raise ValueError(f"{data.rows} streams cannot be shared by {group.world_size} processes; "
                             "use at least one stream per process.")
        self.data, self.window, self.group = data, window, group
        self.time_steps = x.shape[1]
        self.steps = math.ceil(self.time_steps / window)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        rows = self.group.shard(self.data.rows)
        for start in range(0, self.time_steps, self.window):
            window = slice(start, start + self.window)
            yield map_tensors(lambda t: _window(t[rows], window), self.data.take(slice(None)))

    def first(self) -> Batch:
        return next(iter(self.epoch(0)))


def _window(tensor: torch.Tensor, window: slice) -> torch.Tensor:
    return tensor[:, window] if tensor.dim() >= 2 else tensor  # per-stream weights have no time axis


def batchify(stream: torch.Tensor, streams: int) -> torch.Tensor:
    """Cut a stream `(time, ...)` into `streams` consecutive rows `(streams, time // streams, ...)`.

    Row r holds steps `[r·L, (r+1)·L)` with L = time // streams; the tail that
    does not fill a row is dropped.

        >>> batchify(torch.arange(10), 3)
        tensor([[0, 1, 2],
                [3, 4, 5],
                [6, 7, 8]])
    """
    stream = torch.as_tensor(stream)
    length = stream.shape[0] // streams
    if length == 0:
        raise ValueError(f"A stream of {stream.shape[0]} steps cannot fill {streams} rows.")
    return stream[: length * streams].reshape(streams, length, *stream.shape[1:])


def reset_states(model: torch.nn.Module) -> None:
    """Zero the carried state of every stateful layer (`reset_states()` of the outermost modules having it)."""
    for module in outermost_modules_with(model, "reset_states"):
        module.reset_states()


def detach_states(model: torch.nn.Module) -> None:
    """Cut the graph behind carried states (`detach_states()` where a module defines it)."""
    for module in outermost_modules_with(model, "detach_states"):
        module.detach_states()
