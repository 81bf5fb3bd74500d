"""Truncation, padding, collate, bucketed batches and language-model windows."""
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from seqlab.data import (BucketBatchSampler, LanguageModelWindows, PaddedBatch, SequenceCollate,
                         SequenceDataset, pad_batch, padding_fraction, truncate)


class TestTruncate:
    def test_keep_last_keeps_the_ending(self):
        assert truncate([1, 2, 3, 4, 5], keep_last=2) == [4, 5]

    def test_keep_first(self):
        assert truncate([1, 2, 3, 4, 5], keep_first=2) == [1, 2]

    def test_short_sequences_and_no_limit_unchanged(self):
        assert truncate([1, 2], keep_last=5) == [1, 2]
        assert truncate([1, 2, 3]) == [1, 2, 3]

    def test_both_or_non_positive_rejected(self):
        with pytest.raises(ValueError, match="not both"):
            truncate([1], keep_first=1, keep_last=1)
        with pytest.raises(ValueError, match="keep_last must be a positive integer, got 0"):
            truncate([1], keep_last=0)


class TestPadding:
    def test_post_pads_to_the_longest(self):
        batch = pad_batch([[5, 6, 7], [8], [9, 10]])
        assert batch.tokens.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
        assert batch.lengths.tolist() == [3, 1, 2]
        assert batch.mask.tolist() == [[True, True, True], [True, False, False], [True, True, False]]
        assert batch.tokens.dtype == torch.long and batch.mask.dtype == torch.bool

    def test_fixed_length_and_padding_value(self):
        batch = pad_batch([torch.tensor([1, 2]), [3]], length=4, padding_value=-1)
        assert batch.tokens.tolist() == [[1, 2, -1, -1], [3, -1, -1, -1]]
        assert batch.mask.sum().item() == 3

    def test_too_long_for_fixed_length_names_the_fix(self):
        with pytest.raises(ValueError, match="sequence 1 has 3 tokens, more than length=2.*keep_last=2"):
            pad_batch([[1], [1, 2, 3]], length=2)

    def test_mask_comes_from_lengths_even_when_ids_contain_zero(self):
        assert pad_batch([[0, 4], [4]]).mask.tolist() == [[True, True], [True, False]]

    def test_empty_batch_rejected(self):
        with pytest.raises(ValueError, match="empty batch"):
            pad_batch([])


class TestDatasetAndCollate:
    def test_dataset_truncates_once_and_reports_lengths(self):
        dataset = SequenceDataset([[1, 2, 3, 4], [5]], labels=[1, 0], keep_last=3)
        assert dataset[0] == ([2, 3, 4], 1)
        assert dataset.lengths == [3, 1] and len(dataset) == 2

    def test_labels_must_pair_up(self):
        with pytest.raises(ValueError, match="2 sequences but 1 labels"):
            SequenceDataset([[1], [2]], labels=[1])

    def test_collate_labeled_and_unlabeled(self):
        batch, labels = SequenceCollate()([([4, 5], 1), ([6], 0)])
        assert isinstance(batch, PaddedBatch)
        assert batch.tokens.tolist() == [[4, 5], [6, 0]] and labels.tolist() == [1, 0]
        tokens, lengths, mask = SequenceCollate(length=3)([[4], [5, 6]])
        assert tokens.tolist() == [[4, 0, 0], [5, 6, 0]] and lengths.tolist() == [1, 2]

    def test_dataloader_with_workers_and_bucketing(self):
        sequences = [[i + 1] * (1 + i % 7) for i in range(40)]
        dataset = SequenceDataset(sequences, labels=[i % 2 for i in range(40)])
        sampler = BucketBatchSampler(dataset.lengths, batch_size=8, seed=3)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=SequenceCollate(),
                            num_workers=2)
        seen = []
        for batch, labels in loader:
            assert batch.tokens.shape[1] == batch.lengths.max()
            seen += batch.tokens[:, 0].tolist()
            assert labels.tolist() == [(first - 1) % 2 for first in batch.tokens[:, 0].tolist()]
        assert sorted(seen) == list(range(1, 41))


_RNG = random.Random(0)
LENGTHS = [_RNG.randint(1, 300) for _ in range(1000)]


class TestBucketBatchSampler:
    LENGTHS = LENGTHS

    def test_every_example_exactly_once_per_epoch(self):
        sampler = BucketBatchSampler(self.LENGTHS, batch_size=32, seed=1, pool_batches=4)
        for _ in range(3):
            batches = list(sampler)
            assert sorted(i for b in batches for i in b) == list(range(1000))
            assert len(batches) == len(sampler) == 32  # ceil(1000 / 32)
            assert sorted(map(len, batches)) == [8] + [32] * 31  # 1000 = 31 * 32 + 8

    def test_epochs_differ_seed_repeats(self):
        first = BucketBatchSampler(self.LENGTHS, 32, seed=1)
        second = BucketBatchSampler(self.LENGTHS, 32, seed=1)
        epoch0, epoch1 = list(first), list(first)
        assert epoch0 != epoch1
        assert list(second) == epoch0 and list(second) == epoch1
        assert BucketBatchSampler(self.LENGTHS, 32, seed=2).batches(0) != epoch0
        second.set_epoch(1)
        assert list(second) == epoch1

    def test_cuts_padding_compared_with_random_batches(self):
        sampler = BucketBatchSampler(self.LENGTHS, batch_size=32, seed=0)
        order = list(range(1000))
        random.Random(0).shuffle(order)
        random_batches = [order[i : i + 32] for i in range(0, 1000, 32)]
        random_fraction = padding_fraction(self.LENGTHS, random_batches)
        assert random_fraction > 0.45
        assert sampler.padding_fraction() < 0.05  # one pool: sorted globally
        small_pools = BucketBatchSampler(self.LENGTHS, batch_size=32, seed=0, pool_batches=8)
        assert 0.05 < small_pools.padding_fraction(epoch=5) < 0.15

    def test_padding_fraction_value(self):
        assert padding_fraction([1, 3, 2, 2], [[0, 1], [2, 3]]) == pytest.approx(1 - 8 / 10)

    def test_without_shuffle_sorted_by_length(self):
        sampler = BucketBatchSampler([5, 1, 3, 1, 4], batch_size=2, shuffle=False)
        assert list(sampler) == [[1, 3], [2, 4], [0]]

    def test_drop_last_only_drops_the_short_batch(self):
        sampler = BucketBatchSampler(self.LENGTHS, batch_size=32, drop_last=True, pool_batches=3)
        batches = sampler.batches(0)
        assert len(batches) == len(sampler) == 31
        assert all(len(b) == 32 for b in batches)

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.integers(0, 50), min_size=1, max_size=200), st.integers(1, 17),
           st.integers(1, 5), st.integers(0, 3))
    def test_property_partition(self, lengths, batch_size, pool_batches, epoch):
        sampler = BucketBatchSampler(lengths, batch_size, seed=7, pool_batches=pool_batches)
        batches = sampler.batches(epoch)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert max(map(len, batches)) <= batch_size
        assert len(batches) == len(sampler)


class TestLanguageModelWindows:
    def test_non_overlapping_chunks_of_seq_len_plus_one(self):
        windows = LanguageModelWindows(torch.arange(23), seq_len=4)
        assert len(windows) == 4  # 23 // 5, the remainder 20..22 is dropped
        x, y = windows[1]
        assert x.tolist() == [5, 6, 7, 8] and y.tolist() == [6, 7, 8, 9]
        assert x.dtype == y.dtype == torch.long
        assert windows[-1][1].tolist() == [16, 17, 18, 19]

    def test_stride(self):
        windows = LanguageModelWindows(list(range(10)), seq_len=3, stride=2)
        assert len(windows) == 4
        assert [windows[i][0].tolist() for i in range(4)] == [[0, 1, 2], [2, 3, 4], [4, 5, 6], [6, 7, 8]]
        assert windows[3][1].tolist() == [7, 8, 9]

    @settings(max_examples=50, deadline=None)
    @given(st.integers(2, 120), st.integers(1, 10), st.one_of(st.none(), st.integers(1, 7)))
    def test_y_is_x_shifted_by_one(self, length, seq_len, stride):
        ids = torch.randint(0, 50, (length,), generator=torch.Generator().manual_seed(length))
        if length < seq_len + 1:
            with pytest.raises(ValueError, match="too short"):
                LanguageModelWindows(ids, seq_len, stride)
            return
        windows = LanguageModelWindows(ids, seq_len, stride)
        step = stride or seq_len + 1
        assert len(windows) == (length - seq_len - 1) // step + 1
        for i in range(len(windows)):
            x, y = windows[i]
            assert torch.equal(x[1:], y[:-1])
            assert torch.equal(x, ids[i * step : i * step + seq_len])
            assert torch.equal(y, ids[i * step + 1 : i * step + seq_len + 1])

    def test_dataloader_batches(self):
        loader = DataLoader(LanguageModelWindows(torch.arange(101), seq_len=9), batch_size=4)
        x, y = next(iter(loader))
        assert x.shape == y.shape == (4, 9)
        assert torch.equal(x + 1, y)

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="1-D integer tensor.*torch.float32"):
            LanguageModelWindows(torch.zeros(10), seq_len=2)
        with pytest.raises(ValueError, match="has 3 tokens, too short for one window of seq_len \\+ 1 = 4"):
            LanguageModelWindows(torch.arange(3), seq_len=3)
        with pytest.raises(IndexError, match="window 2 is out of range for 2"):
            LanguageModelWindows(torch.arange(6), seq_len=2)[2]
