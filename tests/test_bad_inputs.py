"""Bad inputs get a clear error instead of a silent substitute (issue 22's matrix, Python API part).

Before: `LSTM(2.5)` built 2 units and `fit(batch_size=0)` trained with 32.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqlab.layers import GRU, LSTM, Dense, SimpleRNN
from seqlab.model import Sequential
from seqlab.training.losses import BinaryCrossentropy


@pytest.mark.parametrize("layer", [LSTM, GRU, SimpleRNN, Dense])
@pytest.mark.parametrize("units", [2.5, 0, -3, True])
def test_units_must_be_a_positive_whole_number(layer, units):
    with pytest.raises(ValueError, match=r"positive number of units \(a whole number\), got"):
        layer(units)


def test_whole_numbers_of_any_integer_type_are_units():
    assert LSTM(np.int64(3)).cell.units == 3 and Dense(4.0).units == 4


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_fit_refuses_a_batch_size_that_is_not_a_positive_integer(batch_size):
    model = Sequential([Dense(1)])
    model.compile("sgd", "mse", device="cpu")
    x, y = np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.fit(x, y, batch_size=batch_size, verbose=0)
    assert len(model.fit(x, y, batch_size=np.int64(2), verbose=0).history["loss"]) == 1


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("labels", [[0.0, 2.0], [-1.0, 1.0], [float("nan"), 1.0]])
def test_binary_crossentropy_refuses_targets_outside_zero_and_one(from_logits, labels):
    """Before: labels 2 or -1 trained silently (towards a loss below zero)."""
    loss = BinaryCrossentropy(from_logits=from_logits)
    with pytest.raises(ValueError, match=r"needs targets in \[0, 1\].*Map the labels to 0 and 1"):
        loss(torch.tensor(labels), torch.full((2, 1), 0.5))


def test_binary_crossentropy_takes_soft_labels_inside_zero_and_one():
    value = BinaryCrossentropy()(torch.tensor([0.1, 0.9]), torch.full((2, 1), 0.5))
    assert float(value) == pytest.approx(math.log(2), rel=1e-6)
