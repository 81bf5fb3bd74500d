"""The apps' batch sources: each epoch's order a function of (seed, epoch), so a resumed run reads the same batches.

Before the batchers moved to `seqlab.data.epoch_batches`, sentiment's and
translate's counted their own iterations: a run resumed at epoch 2 read
epoch 0's order, so its weights differed from an uninterrupted run's.
"""

from __future__ import annotations

import numpy as np
import torch

from seqlab.apps.charlm import chunk_batches
from seqlab.apps.sentiment import review_batches
from seqlab.apps.translate import pair_batches
from seqlab.data import BucketBatchSampler
from seqlab.data.epoch_batches import BufferedShuffle, EpochBatches, InOrder, buffered_shuffle_order
from seqlab.layers import GRU, Dense, Embedding
from seqlab.model import Sequential
from seqlab.seeding import derive_seed, set_seed
from seqlab.training import SGD, ModelCheckpoint


def reviews(count: int = 96, seed: int = 0) -> tuple[list[list[int]], list[int]]:
    rng = np.random.default_rng(seed)
    sequences = [rng.integers(1, 20, size=int(rng.integers(2, 12))).tolist() for _ in range(count)]
    return sequences, [int(s[0] > 10) for s in sequences]


def pairs(count: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-padded source, target_in and target_out ids of `count` pairs of 1 to 6 tokens."""
    rng = np.random.default_rng(0)
    arrays = np.zeros((3, count, 6), dtype=np.int64)
    for row in range(count):
        arrays[:, row, : int(rng.integers(1, 7))] = rng.integers(1, 9)
    return arrays[0], arrays[1], arrays[2]


def flat(batches, epoch: int) -> list[list[int]]:
    return [_inputs(batch).flatten().tolist() for batch in batches.epoch(epoch)]


def _inputs(batch) -> torch.Tensor:
    while isinstance(batch, tuple):
        batch = batch[0]
    return batch


def test_epoch_order_is_a_function_of_seed_and_epoch_only():
    sequences, labels = reviews()
    sources = [review_batches(sequences, labels, 16, bucket=True, seed=3),
               chunk_batches(torch.arange(50)[:, None], torch.arange(50)[:, None], 8, shuffle_buffer=5, seed=3),
               pair_batches(*pairs(), batch_size=4, seed=3)]
    for source in sources:
        later = flat(source, 2)
        for epoch in (0, 1, 5):
            flat(source, epoch)
        assert flat(source, 2) == later                 # reading other epochs changes nothing
        source.set_epoch(2)
        assert [_inputs(b).flatten().tolist() for b in source] == later   # plain iteration reads the set epoch
        assert flat(source, 1) != later


def test_orders_are_the_ones_the_apps_read_before():
    lengths = [len(s) for s in reviews()[0]]
    sampler = BucketBatchSampler(lengths, 16, seed=3, pool_batches=50)
    assert review_batches(reviews()[0], None, 16, bucket=True, seed=3).batch_indices(4) == sampler.batches(4)
    order = buffered_shuffle_order(50, 5, np.random.default_rng(derive_seed(3, 4))).tolist()
    assert BufferedShuffle(50, 8, 5, seed=3).batches(4) == [order[i:i + 8] for i in range(0, 50, 8)]
    assert InOrder(5, 2).batches(7) == [[0, 1], [2, 3], [4]] and len(InOrder(5, 2)) == 3
    batches = EpochBatches(InOrder(3, 2), lambda rows: torch.tensor(rows))
    assert batches.steps == 2 and batches.first().tolist() == [0, 1]


def _classifier(seed: int) -> Sequential:
    set_seed(seed)
    model = Sequential([Embedding(20, 8), GRU(8), Dense(1, activation="sigmoid")])
    model.compile(SGD(learning_rate=0.5), "binary_crossentropy", device="cpu")
    return model


def test_sentiment_batches_resume_exactly(tmp_path):
    sequences, labels = reviews()
    straight = _classifier(0)
    batches = review_batches(sequences, labels, 16, bucket=True, seed=1)
    straight.fit(batches, epochs=3, verbose=0, seed=1)

    first = _classifier(0)
    batches = review_batches(sequences, labels, 16, bucket=True, seed=1)
    first.fit(batches, epochs=2, callbacks=[ModelCheckpoint(tmp_path, save_best=False)],
              verbose=0, seed=1)
    resumed = _classifier(5)
    batches = review_batches(sequences, labels, 16, bucket=True, seed=1)
    resumed.fit(batches, epochs=3, callbacks=[ModelCheckpoint(tmp_path, save_best=False)],
                resume_from=tmp_path, verbose=0, seed=1)
    for expected, got in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(got, expected)
