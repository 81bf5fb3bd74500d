"""From encoded sequences to padded tensor batches, for torch.utils.data.

- `truncate` keeps a sequence's last (or first) N tokens.
- `SequenceDataset` holds encoded examples (and labels) as a map-style Dataset.
- `SequenceCollate` / `pad_batch` pad a batch to its longest member (or a fixed
  length) and return `PaddedBatch(tokens, lengths, mask)`.
- `BucketBatchSampler` groups examples of similar length to cut padding.
- `LanguageModelWindows` cuts a long token stream into `(x, y)` windows.

`BucketBatchSampler.batches(epoch)` is also an order for
`seqlab.data.epoch_batches.EpochBatches`, which turns it into `fit` data
whose epoch e reads the batches of (seed, e).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class PaddedBatch(NamedTuple):
    """A batch of sequences padded to one length.

    tokens: LongTensor (batch, time), real tokens then `padding_value`.
    lengths: LongTensor (batch,), the number of real tokens per row.
    mask: BoolTensor (batch, time), True on real tokens.
    """

    tokens: torch.Tensor
    lengths: torch.Tensor
    mask: torch.Tensor


def truncate(sequence: Sequence[Any], keep_first: int | None = None,
             keep_last: int | None = None) -> Sequence[Any]:
    """The first `keep_first` or the last `keep_last` items (at most one of the two)."""
    if keep_first is not None and keep_last is not None:
        raise ValueError("pass keep_first or keep_last, not both")
    if keep_first is not None:
        _check_positive("keep_first", keep_first)
        return sequence[:keep_first]
    if keep_last is not None:
        _check_positive("keep_last", keep_last)
        return sequence[-keep_last:]  # the tutorial keeps each review's ending
    return sequence


def pad_batch(sequences: Sequence[Sequence[int] | torch.Tensor], length: int | None = None,
              padding_value: int = 0) -> PaddedBatch:
    """Post-pad `sequences` to the longest one, or to a fixed `length`.

    Example:
        batch = pad_batch([[5, 6, 7], [8]])
        batch.tokens   # tensor([[5, 6, 7], [8, 0, 0]])
        batch.lengths  # tensor([3, 1]); batch.mask[1] == tensor([True, False, False])
    """
    if len(sequences) == 0:
        raise ValueError("cannot pad an empty batch: got 0 sequences")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    longest = int(lengths.max())
    if length is None:
        length = longest
    elif longest > length:
        row = int(lengths.argmax())
        raise ValueError(
            f"sequence {row} has {longest} tokens, more than length={length}; truncate first "
            f"(keep_last={length} or keep_first={length}) or raise length"
        )
    tokens = torch.full((len(sequences), length), padding_value, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
    mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    return PaddedBatch(tokens, lengths, mask)


class SequenceDataset(Dataset):
    """Encoded examples (lists of token ids), optionally with integer labels.

    Items are `ids` or `(ids, label)`; truncation happens once, here, so that
    `lengths` (used by `BucketBatchSampler`) are the lengths the model sees.

    Example:
        dataset = SequenceDataset(vocab.encode_batch(texts), labels, keep_last=100)
        sampler = BucketBatchSampler(dataset.lengths, batch_size=32, seed=0)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=SequenceCollate())
    """

    def __init__(self, sequences: Sequence[Sequence[int]], labels: Sequence[int] | None = None,
                 keep_first: int | None = None, keep_last: int | None = None) -> None:
        if labels is not None and len(labels) != len(sequences):
            raise ValueError(f"got {len(sequences)} sequences but {len(labels)} labels; "
                             "give one label per sequence")
        self.sequences = [list(truncate(s, keep_first, keep_last)) for s in sequences]
        self.labels = list(labels) if labels is not None else None

    @property
    def lengths(self) -> list[int]:
        return [len(s) for s in self.sequences]

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> list[int] | tuple[list[int], int]:
        if self.labels is None:
            return self.sequences[index]
        return self.sequences[index], self.labels[index]


class SequenceCollate:
    """`collate_fn` for a DataLoader: pads a list of examples into tensors.

    Unlabeled examples (`ids`) give a `PaddedBatch(tokens, lengths, mask)`;
    labeled ones (`(ids, label)`) give `(PaddedBatch, labels)` with labels a
    tensor (long for integer labels, float for float labels).

    Example:
        collate = SequenceCollate()
        batch, labels = collate([([4, 5], 1), ([6], 0)])
        batch.tokens  # tensor([[4, 5], [6, 0]]); labels: tensor([1, 0])
    """

    def __init__(self, length: int | None = None, padding_value: int = 0) -> None:
        self.length = length
        self.padding_value = padding_value

    def __call__(self, examples: Sequence[Any]) -> PaddedBatch | tuple[PaddedBatch, torch.Tensor]:
        if len(examples) > 0 and isinstance(examples[0], tuple):
            sequences, labels = zip(*examples)
            return pad_batch(sequences, self.length, self.padding_value), torch.tensor(labels)
        return pad_batch(examples, self.length, self.padding_value)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of examples of similar length: less padding, same examples.

    Each epoch the examples are shuffled, cut into pools of
    `batch_size * pool_batches`, sorted by length inside each pool and cut into
    batches; the batch order is then shuffled. Every example appears exactly
    once per epoch. Epoch `e` depends only on `(seed, e)`; iterating the
    sampler advances the epoch, so successive epochs differ and a rerun with
    the same seed repeats them. `shuffle=False` sorts all examples by length.

    Example:
        sampler = BucketBatchSampler(dataset.lengths, batch_size=32, seed=0)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=SequenceCollate())
        sampler.padding_fraction()  # e.g. 0.03 instead of 0.5 for random batches
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False, pool_batches: int = 50) -> None:
        _check_positive("batch_size", batch_size)
        _check_positive("pool_batches", pool_batches)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.pool_batches = pool_batches
        self.epoch = 0

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches (lists of example indices) of epoch `epoch`."""
        if not self.shuffle:
            return self._cut(np.argsort(self.lengths, kind="stable"))
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        pool_size = self.batch_size * self.pool_batches
        batches = []
        for start in range(0, len(order), pool_size):
            pool = order[start : start + pool_size]
            batches += self._cut(pool[np.argsort(self.lengths[pool], kind="stable")])
        return [batches[i] for i in rng.permutation(len(batches))]

    def _cut(self, ordered: np.ndarray) -> list[list[int]]:
        batches = [ordered[i : i + self.batch_size].tolist()
                   for i in range(0, len(ordered), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()  # pools are whole batches, so only the very last can be short
        return batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches(self.epoch)
        self.epoch += 1
        return iter(batches)

    def __len__(self) -> int:
        count = len(self.lengths) / self.batch_size
        return math.floor(count) if self.drop_last else math.ceil(count)

    def padding_fraction(self, epoch: int | None = None) -> float:
        """Share of padding in the batches of `epoch` (default: the next one)."""
        return padding_fraction(self.lengths, self.batches(self.epoch if epoch is None else epoch))


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Padded positions / all positions when each batch pads to its longest member."""
    lengths = np.asarray(lengths)
    total = sum(int(lengths[b].max()) * len(b) for b in batches if len(b))
    real = sum(int(lengths[b].sum()) for b in batches)
    return 1.0 - real / total if total else 0.0


class LanguageModelWindows(Dataset):
    """`(x, y)` training windows from one long token stream, `y` = `x` shifted by one.

    Window `i` covers `ids[i*stride : i*stride + seq_len + 1]`; `x` is its first
    `seq_len` tokens, `y` its last `seq_len`. The default stride `seq_len + 1`
    gives the tutorial's non-overlapping chunks (a trailing remainder shorter
    than a chunk is dropped); `stride=1` gives every position.
    Shapes: `x`, `y` are LongTensors (seq_len,); a DataLoader batches them
    to (batch, seq_len).

    Example:
        windows = LanguageModelWindows(torch.tensor(vocab.encode(text)), seq_len=40)
        x, y = windows[0]   # x = ids[0:40], y = ids[1:41]
        loader = DataLoader(windows, batch_size=64, shuffle=True)
    """

    def __init__(self, ids: torch.Tensor | Sequence[int], seq_len: int,
                 stride: int | None = None) -> None:
        _check_positive("seq_len", seq_len)
        self.ids = torch.as_tensor(ids)
        if self.ids.dim() != 1 or self.ids.is_floating_point() or self.ids.is_complex():
            raise ValueError(
                f"ids must be a 1-D integer tensor of token ids, got dtype {self.ids.dtype} "
                f"and shape {tuple(self.ids.shape)}; flatten the encoded text first"
            )
        self.ids = self.ids.long()
        self.seq_len = seq_len
        self.stride = seq_len + 1 if stride is None else stride
        _check_positive("stride", self.stride)
        if len(self.ids) < seq_len + 1:
            raise ValueError(
                f"the token stream has {len(self.ids)} tokens, too short for one window of "
                f"seq_len + 1 = {seq_len + 1}; use a longer text or a smaller seq_len"
            )

    def __len__(self) -> int:
        return (len(self.ids) - self.seq_len - 1) // self.stride + 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} is out of range for {len(self)} windows")
        start = (index % len(self)) * self.stride
        window = self.ids[start : start + self.seq_len + 1]
        return window[:-1], window[1:]


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
