"""Batches whose order is a function of `(seed, epoch)` only: `fit`'s `Batches.epoch(e)` for in-memory data.

An `EpochBatches` pairs an *order*, which example indices form each batch of
epoch e, with a *collate*, indices → the batch (pad, cut, stack). Because
epoch e's order depends on nothing but the seed and e, a run resumed at epoch
e reads exactly the batches an uninterrupted run reads. The orders:

- `BucketBatchSampler` (seqlab.data.batching): pools of similar lengths, shuffled each epoch;
- `InOrder(count, batch_size)`: consecutive batches, the same every epoch;
- `BufferedShuffle(count, batch_size, buffer_size, seed)`: the order `tf.data`'s
  `Dataset.shuffle(buffer_size)` reads items in, a new one each epoch;
- `EqualLengths(lengths, batch_size)`: batches of examples of one length only, so
  nothing is padded (inference for models whose answer padding would change).

`epoch(e)` iterates epoch e (the `Batches` protocol of
seqlab.training.data_adapter); `set_epoch(e)` chooses the epoch that plain
iteration reads (PyTorch's sampler convention), for loops that only iterate.

    >>> batches = EpochBatches(BufferedShuffle(len(x), 64, 10_000, seed=0), lambda rows: (x[rows], y[rows]))
    >>> first_batch_of_epoch_3 = next(iter(batches.epoch(3)))
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from seqlab.seeding import derive_seed

__all__ = ["BatchOrder", "BufferedShuffle", "EpochBatches", "EqualLengths", "InOrder", "buffered_shuffle_order", "rows"]


class BatchOrder(Protocol):
    """Which example indices form each batch of an epoch; `len` is the batches per epoch."""

    def batches(self, epoch: int) -> list[list[int]]: ...

    def __len__(self) -> int: ...


class EpochBatches:
    """Re-iterable batches: `collate(indices)` for each index batch of `order.batches(epoch)`."""

    def __init__(self, order: BatchOrder, collate: Callable[[list[int]], Any]):
        self.order, self.collate = order, collate
        self.current_epoch = 0

    @property
    def steps(self) -> int:
        return len(self.order)

    def __len__(self) -> int:
        return len(self.order)

    def batch_indices(self, epoch: int | None = None) -> list[list[int]]:
        """The index batches of `epoch` (default: the current one)."""
        return self.order.batches(self.current_epoch if epoch is None else epoch)

    def epoch(self, epoch: int) -> Iterator[Any]:
        for indices in self.order.batches(epoch):
            yield self.collate(indices)

    def set_epoch(self, epoch: int) -> None:
        self.current_epoch = epoch

    def __iter__(self) -> Iterator[Any]:
        return self.epoch(self.current_epoch)

    def first(self) -> Any:
        """Epoch 0's first batch (to build a lazily built model on)."""
        return self.collate(self.order.batches(0)[0])


class InOrder:
    """Consecutive batches of `batch_size` indices, the last possibly shorter; every epoch the same."""

    def __init__(self, count: int, batch_size: int):
        _check_batch_size(batch_size)
        self.count, self.batch_size = count, batch_size

    def batches(self, epoch: int) -> list[list[int]]:
        return [list(range(start, min(start + self.batch_size, self.count)))
                for start in range(0, self.count, self.batch_size)]

    def __len__(self) -> int:
        return math.ceil(self.count / self.batch_size)


class EqualLengths:
    """Batches of at most `batch_size` indices that all have the same length, shortest first; every epoch the same.

    Nothing is padded, so an unmasked model gives each example the answer it
    gives it alone.

        >>> EqualLengths([3, 1, 3, 3], batch_size=2).batches(0)
        [[1], [0, 2], [3]]
    """

    def __init__(self, lengths: Sequence[int], batch_size: int):
        _check_batch_size(batch_size)
        by_length: dict[int, list[int]] = {}
        for index, length in enumerate(lengths):
            by_length.setdefault(int(length), []).append(index)
        self._batches = [group[start:start + batch_size] for _, group in sorted(by_length.items())
                         for start in range(0, len(group), batch_size)]

    def batches(self, epoch: int) -> list[list[int]]:
        return [list(batch) for batch in self._batches]

    def __len__(self) -> int:
        return len(self._batches)


class BufferedShuffle:
    """Consecutive batches of `buffered_shuffle_order`, drawn from `derive_seed(seed, epoch)` each epoch."""

    def __init__(self, count: int, batch_size: int, buffer_size: int | None = None, seed: int = 0):
        _check_batch_size(batch_size)
        self.count, self.batch_size, self.buffer_size, self.seed = count, batch_size, buffer_size, seed

    def batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng(derive_seed(self.seed, epoch))
        order = buffered_shuffle_order(self.count, self.buffer_size, rng).tolist()
        return [order[start:start + self.batch_size] for start in range(0, self.count, self.batch_size)]

    def __len__(self) -> int:
        return math.ceil(self.count / self.batch_size)


def buffered_shuffle_order(count: int, buffer_size: int | None, rng: np.random.Generator) -> np.ndarray:
    """The order `tf.data.Dataset.shuffle(buffer_size)` reads `count` items in.

    A buffer holds the next `buffer_size` items; each output is a uniformly
    drawn buffer slot, refilled with the next unread item. `None` (or a
    buffer ≥ count) is a full uniform permutation.

        >>> buffered_shuffle_order(5, 1, np.random.default_rng(0)).tolist()
        [0, 1, 2, 3, 4]
    """
    if buffer_size is None or buffer_size >= count:
        return rng.permutation(count)
    buffer = list(range(buffer_size))
    draws = rng.integers(0, np.iinfo(np.int64).max, size=count)
    order = np.empty(count, dtype=np.int64)
    upcoming = buffer_size
    for position in range(count):
        slot = int(draws[position] % len(buffer))
        order[position] = buffer[slot]
        if upcoming < count:
            buffer[slot] = upcoming
            upcoming += 1
        else:
            buffer[slot] = buffer[-1]
            buffer.pop()
    return order


def rows(tensors: Sequence[torch.Tensor]) -> Callable[[list[int]], tuple[torch.Tensor, ...]]:
    """A collate taking the same rows of each tensor: `rows((x, y))(indices) == (x[indices], y[indices])`."""
    def take(indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return tuple(tensor[index] for tensor in tensors)

    return take


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
