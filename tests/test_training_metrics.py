"""Metrics: accuracy variants, perplexity, bits per character, masks, and name resolution."""

from __future__ import annotations

import math

import pytest
import torch

from seqlab.training import losses, metrics
from seqlab.training.metrics import (BinaryAccuracy, BitsPerCharacter, Perplexity, SparseCategoricalAccuracy)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    perplexity = Perplexity(from_logits=True)
    perplexity.update(torch.randint(0, 7, (3, 5)), torch.zeros(3, 5, 7))
    assert perplexity.result() == pytest.approx(7.0, rel=1e-6)


def test_bits_per_character_of_uniform_over_32_symbols_is_5():
    bpc = BitsPerCharacter(from_logits=True)
    bpc.update(torch.randint(0, 32, (4, 10)), torch.zeros(4, 10, 32))
    assert bpc.result() == pytest.approx(5.0, rel=1e-6)


def test_perplexity_is_exp_of_the_mean_token_crossentropy_across_batches():
    perplexity = Perplexity(from_logits=True)
    total, count = 0.0, 0
    for seed in range(3):
        logits = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(seed))
        labels = torch.randint(0, 6, (2, 4), generator=torch.Generator().manual_seed(seed + 10))
        perplexity.update(labels, logits)
        total += torch.nn.functional.cross_entropy(logits.reshape(-1, 6), labels.reshape(-1), reduction="sum").item()
        count += 8
    assert perplexity.result() == pytest.approx(math.exp(total / count), rel=1e-6)


def test_sparse_accuracy_ignores_padding_and_weighs_batches_by_tokens():
    accuracy = SparseCategoricalAccuracy(ignore_class=0)
    logits = torch.zeros(1, 4, 3)
    logits[0, :, 1] = 1.0  # always predicts 1
    accuracy.update(torch.tensor([[1, 2, 0, 0]]), logits)  # 1 of 2 real tokens right
    accuracy.update(torch.tensor([[1, 1, 1, 1]]), logits)  # 4 of 4
    assert accuracy.result() == pytest.approx(5 / 6)


def test_binary_accuracy_thresholds_probabilities_or_logits():
    targets = torch.tensor([1.0, 0.0, 1.0])
    probs = BinaryAccuracy()
    probs.update(targets, torch.tensor([[0.7], [0.2], [0.4]]))
    logits = BinaryAccuracy(from_logits=True)
    logits.update(targets, torch.tensor([[2.0], [-1.0], [-0.5]]))
    assert probs.result() == pytest.approx(2 / 3) and logits.result() == pytest.approx(2 / 3)


def test_metric_weights_divide_by_the_weight_sum():
    accuracy = BinaryAccuracy()
    accuracy.update(torch.tensor([1.0, 1.0]), torch.tensor([[0.9], [0.1]]), sample_weight=torch.tensor([3.0, 1.0]))
    assert accuracy.result() == pytest.approx(0.75)
    accuracy.reset()
    assert accuracy.result() == 0.0


def test_accuracy_resolves_against_the_loss_keeping_the_requested_name():
    sparse = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    resolved = metrics.get("accuracy", sparse)
    assert isinstance(resolved, SparseCategoricalAccuracy) and resolved.ignore_class == 0
    assert resolved.name == "accuracy"
    binary = metrics.get("acc", losses.BinaryCrossentropy(from_logits=True))
    assert isinstance(binary, BinaryAccuracy) and binary.from_logits and binary.name == "acc"
    perplexity = metrics.get("perplexity", sparse)
    assert perplexity.crossentropy.from_logits and perplexity.ignore_class == 0


def test_accuracy_with_a_regression_loss_asks_to_name_it():
    with pytest.raises(ValueError, match="Name it: 'binary_accuracy'"):
        metrics.get("accuracy", losses.MeanSquaredError())
    with pytest.raises(ValueError, match="Unknown metric 'f1'"):
        metrics.get("f1")
