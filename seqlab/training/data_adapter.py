"""What `fit`, `evaluate` and `predict` accept, turned into `Batch(x, y, sample_weight, mask)`s.

Accepted data:

- arrays: `x` (a tensor, NumPy array or nested list; or a tuple of them for
  several inputs), `y`, `sample_weight`, all with the same first dimension;
  batched by `batch_size` (32 by default), in a new seeded order each epoch
  when shuffling;
- a map-style `torch.utils.data.Dataset` of `(x, y)` items, batched the same way;
- a `DataLoader` or any re-iterable of batches: `x`, `(x, y)`,
  `(x, y, sample_weight)` or dicts with keys `x`, `y`, `sample_weight`, `mask`.

A batch's `mask` (True: keep; `(batch,)` or `(batch, time)` for sequences) takes
elements out of the loss, its denominator included; `sample_weight` weighs
elements as in Keras. A boolean `sample_weight` is read as the mask, here at the
boundary (`make_batch`), so that past it a weight is always a weight.

Epoch e's order is a function of `(seed, e)` for every source: arrays and
datasets draw `randperm(n)` from a generator seeded with `derive_seed(seed, e)`;
a DataLoader (or its sampler) with `set_epoch` is told e before it is iterated
(`seqlab.data.BucketBatchSampler`, torch's `DistributedSampler`). Independent of
the global RNG, so a resumed run reads the same batches as an uninterrupted one.

    >>> batches = adapt(x, y, batch_size=32, shuffle=True, seed=7)
    >>> first = next(iter(batches.epoch(0))); first.x.shape, first.mask
    (torch.Size([32, 10]), None)
"""

from __future__ import annotations

import collections.abc
import itertools
import math
import numbers
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, default_collate

from seqlab.seeding import derive_seed
from seqlab.training.distributed import ProcessGroup

__all__ = ["ArrayData", "Batch", "Batches", "EmptyDataError", "adapt", "make_batch", "map_tensors", "rows_of",
           "to_tensor"]


class Batch(NamedTuple):
    """One batch: inputs `x`, targets `y`, float `sample_weight` and boolean `mask` (True: keep), each optional
    but `x`; each a tensor (or, for `x`, a structure of tensors) with the batch first."""

    x: Any
    y: Any = None
    sample_weight: Any = None
    mask: Any = None


def make_batch(x: Any, y: Any = None, sample_weight: Any = None, mask: Any = None) -> Batch:
    """A `Batch`, with a boolean `sample_weight` (how a mask was passed before batches had one) moved to `mask`."""
    if isinstance(sample_weight, torch.Tensor) and sample_weight.dtype == torch.bool:
        if mask is not None:
            raise ValueError("This batch has a boolean sample_weight (read as a mask) and a mask; pass the "
                             "mask once, as mask, and float sample weights as sample_weight.")
        sample_weight, mask = None, sample_weight
    return Batch(x, y, sample_weight, mask)


class EmptyDataError(ValueError):
    """The data given to fit/evaluate/predict holds no samples or produces no batches."""


class Batches(Protocol):
    """A source of batches: `epoch(e)` iterates epoch e's batches; `steps` counts them if known."""

    steps: int | None

    def epoch(self, epoch: int) -> Iterator[Batch]: ...

    def first(self) -> Batch:
        """A batch to build a lazily built model on (without using up the data)."""
        ...


# ------------------------------------------------------------------ conversions
def to_tensor(value: Any) -> Any:
    """NumPy arrays and lists become tensors (float64 → float32, integers → int64); tuples are mapped."""
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple):
        items = [to_tensor(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    array = np.asarray(value)
    if array.dtype == object:
        raise TypeError(f"Cannot make a tensor from {type(value).__name__} of ragged or non-numeric "
                        "items; pad the sequences to one length first (see seqlab.data).")
    if array.dtype.kind == "f":
        return torch.as_tensor(array, dtype=torch.float32)
    if array.dtype.kind in "iu":
        return torch.as_tensor(array, dtype=torch.int64)
    return torch.as_tensor(array)


def map_tensors(fn: Callable[[torch.Tensor], torch.Tensor], value: Any) -> Any:
    """Apply `fn` to every tensor in a nested tuple/list/dict structure."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple such as seqlab.data's PaddedBatch
        return type(value)(*(map_tensors(fn, v) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(map_tensors(fn, v) for v in value)
    if isinstance(value, dict):
        return {k: map_tensors(fn, v) for k, v in value.items()}
    return value


def rows_of(value: Any) -> int:
    """The batch dimension of the first tensor in `value`."""
    if isinstance(value, torch.Tensor):
        return value.shape[0] if value.dim() else 1
    if isinstance(value, (tuple, list)) and value:
        return rows_of(value[0])
    if isinstance(value, dict) and value:
        return rows_of(next(iter(value.values())))
    raise TypeError(f"Cannot find a batch dimension in {type(value).__name__}.")


# ----------------------------------------------------------------- array data
class ArrayData:
    """In-memory `x`, `y`, `sample_weight`, `mask` tensors with one row per sample.

        >>> data = ArrayData(np.zeros((10, 5)), np.ones(10))
        >>> train, valid = data.split_last(0.2); len(valid)
        2
    """

    def __init__(self, x: Any, y: Any = None, sample_weight: Any = None, mask: Any = None, *, role: str = "x"):
        self.x, self.y, self.sample_weight, self.mask = make_batch(
            to_tensor(x), to_tensor(y), to_tensor(sample_weight), to_tensor(mask))
        self.rows = rows_of(self.x)
        for name, value in (("y", self.y), ("sample_weight", self.sample_weight), ("mask", self.mask)):
            if value is not None and rows_of(value) != self.rows:
                raise ValueError(f"{role} has {self.rows} samples but {name} has {rows_of(value)}; "
                                 "they must have the same first dimension (one row per sample).")
        if self.rows == 0:
            raise EmptyDataError(f"{role} holds no samples (its first dimension is 0). Check that "
                                 "the dataset was loaded and not filtered down to nothing.")

    def __len__(self) -> int:
        return self.rows

    def take(self, index: torch.Tensor | slice) -> Batch:
        return map_tensors(lambda t: t[index], Batch(self.x, self.y, self.sample_weight, self.mask))

    def split_last(self, fraction: float) -> tuple["ArrayData", "ArrayData"]:
        """`(first, last)` with the last `fraction` of the rows, as Keras' `validation_split` (before shuffling)."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation_split must be in (0, 1), got {fraction}.")
        cut = int(self.rows * (1.0 - fraction))
        if cut == 0 or cut == self.rows:
            raise EmptyDataError(f"validation_split={fraction} of {self.rows} samples leaves "
                                 f"{cut} for training and {self.rows - cut} for validation; "
                                 "use more data or another fraction.")
        first, last = self.take(slice(0, cut)), self.take(slice(cut, self.rows))
        return ArrayData(*first, role="training data"), ArrayData(*last, role="validation data")


class DatasetSource:
    """A map-style torch Dataset read by index lists and collated into batches."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.rows = len(dataset)
        if self.rows == 0:
            raise EmptyDataError("The dataset is empty (len(dataset) == 0).")

    def __len__(self) -> int:
        return self.rows

    def take(self, index: torch.Tensor) -> Batch:
        items = default_collate([self.dataset[int(i)] for i in index])
        return make_batch(*_unpack(items))


class IndexedBatches:
    """Batches of `batch_size` rows of an `ArrayData` or `DatasetSource`, each epoch in a seeded order."""

    def __init__(self, source: ArrayData | DatasetSource, batch_size: int, shuffle: bool, seed: int,
                 group: ProcessGroup):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer (rows per batch; None for 32), "
                             f"got {batch_size!r}.")
        self.source, self.batch_size, self.shuffle, self.seed, self.group = source, batch_size, shuffle, seed, group
        self.steps = math.ceil(len(source) / batch_size)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        rows = len(self.source)
        if self.shuffle:
            order = torch.randperm(rows, generator=torch.Generator().manual_seed(derive_seed(self.seed, epoch)))
        else:
            order = torch.arange(rows)
        for start in range(0, rows, self.batch_size):
            index = order[start:start + self.batch_size]
            if len(index) < self.group.world_size:
                continue  # a tail too small to give every process a row
            yield self.source.take(index[self.group.shard(len(index))])

    def first(self) -> Batch:
        return self.source.take(torch.arange(min(self.batch_size, len(self.source))))


class IterableBatches:
    """Batches read from a DataLoader or another re-iterable; each process keeps its rows of each.

    Before epoch e is read, `set_epoch(e)` is called where the iterable, its `sampler` or its
    `batch_sampler` has one, so that a shuffling sampler's order is epoch e's, in a resumed run too.
    """

    def __init__(self, iterable: Iterable, group: ProcessGroup):
        self.iterable, self.group = iterable, group
        self.one_shot = isinstance(iterable, collections.abc.Iterator)
        self.steps = len(iterable) if hasattr(iterable, "__len__") else None
        self._epochs_started = 0
        self._peeked: list[Any] = []  # a one-shot iterator's first item, read by first()

    def epoch(self, epoch: int) -> Iterator[Batch]:
        if self.one_shot and self._epochs_started:
            raise ValueError("The training data is an iterator, used up by the first epoch. Pass a "
                             "re-iterable instead (a list of batches, a DataLoader, or an object whose "
                             "__iter__ starts over).")
        self._epochs_started += 1
        for epoch_aware in _epoch_aware_parts(self.iterable):
            epoch_aware.set_epoch(epoch)
        items = itertools.chain(self._peeked, self.iterable) if self.one_shot else self.iterable
        self._peeked = []
        for item in items:
            batch = make_batch(*(to_tensor(part) for part in _unpack(item)))
            rows = rows_of(batch.x)
            if rows < self.group.world_size:
                continue
            shard = self.group.shard(rows)
            yield map_tensors(lambda t: t[shard], batch)

    def first(self) -> Batch:
        if not self.one_shot:
            item = next(iter(self.iterable), None)
        else:
            self._peeked = self._peeked or [next(self.iterable, None)]
            item = self._peeked[0]
        if item is None:
            raise EmptyDataError("The data iterable is empty: it produced no batches.")
        return make_batch(*(to_tensor(part) for part in _unpack(item)))


def _epoch_aware_parts(iterable: Iterable) -> list[Any]:
    """The iterable and its samplers that have `set_epoch`, each once (a DataLoader's sampler and batch sampler)."""
    parts = [iterable, getattr(iterable, "sampler", None), getattr(iterable, "batch_sampler", None)]
    unique = {id(part): part for part in parts if callable(getattr(part, "set_epoch", None))}
    return list(unique.values())


def _unpack(item: Any) -> tuple[Any, Any, Any, Any]:
    """`(x, y, sample_weight, mask)` of one item an iterable of batches yields."""
    if isinstance(item, dict):
        unknown = set(item) - set(Batch._fields)
        if unknown or "x" not in item:
            raise ValueError(f"A batch dict needs key 'x' and may have 'y', 'sample_weight', 'mask'; "
                             f"got {sorted(item)}.")
        return item["x"], item.get("y"), item.get("sample_weight"), item.get("mask")
    if isinstance(item, (tuple, list)) and 1 <= len(item) <= 3:
        return tuple(item) + (None,) * (4 - len(item))
    if isinstance(item, (torch.Tensor, np.ndarray)):
        return item, None, None, None
    raise ValueError(f"A batch must be x, (x, y) or (x, y, sample_weight); got {type(item).__name__}"
                     + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "") + ".")


# ---------------------------------------------------------------------- adapt
def is_batch_iterable(x: Any) -> bool:
    """Whether `x` is a DataLoader/iterable of batches rather than arrays."""
    if isinstance(x, (torch.Tensor, np.ndarray, tuple, Dataset)):
        return False
    if isinstance(x, list):
        return bool(x) and isinstance(x[0], (tuple, dict)) and not isinstance(x[0], str)
    return hasattr(x, "__iter__")


def adapt(x: Any, y: Any = None, sample_weight: Any = None, *, batch_size: int | None = None,
          shuffle: bool = False, seed: int = 0, group: ProcessGroup = ProcessGroup(),
          role: str = "x") -> Batches:
    """Batches for any accepted form of data (see the module docstring)."""
    rows = 32 if batch_size is None else batch_size  # for arrays and datasets; batch iterables bring their own
    if isinstance(x, ArrayData):
        return IndexedBatches(x, rows, shuffle, seed, group)
    if isinstance(x, IterableDataset):
        raise TypeError(f"{role} is an IterableDataset, which yields single samples: wrap it in "
                        "torch.utils.data.DataLoader(dataset, batch_size=...) to get batches.")
    if is_batch_iterable(x):
        _no_arrays_beside(y, sample_weight, batch_size, role)
        return IterableBatches(x, group)
    if isinstance(x, Dataset):
        _no_arrays_beside(y, sample_weight, None, role)
        return IndexedBatches(DatasetSource(x), rows, shuffle, seed, group)
    if x is None:
        raise ValueError(f"No data given: pass arrays (x, y), a Dataset or a DataLoader as {role}.")
    return IndexedBatches(ArrayData(x, y, sample_weight, role=role), rows, shuffle, seed, group)


def _no_arrays_beside(y: Any, sample_weight: Any, batch_size: int | None, role: str) -> None:
    if y is not None or sample_weight is not None:
        raise ValueError(f"{role} is a dataset or an iterable of batches, which carries its own targets: "
                         "do not pass y or sample_weight beside it.")
    if batch_size is not None:
        raise ValueError(f"{role} is an iterable of batches, which sets its own batch size: do not pass "
                         "batch_size (set it on the DataLoader).")
