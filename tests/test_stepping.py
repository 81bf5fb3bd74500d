"""Stateful single-step execution gives exactly what the full prefix gives."""

from __future__ import annotations

import pytest
import torch

import seqlab
from seqlab import layers
from seqlab.kernels.stepping import Stepper


@pytest.mark.parametrize("cell", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_steps_equal_running_the_whole_prefix(cell):
    torch.manual_seed(0)
    extra = {"reset_after": False} if cell is layers.GRU else {}
    model = seqlab.Sequential([layers.Embedding(12, 5), cell(7, return_sequences=True, **extra),
                               layers.Dropout(0.3), cell(6, return_sequences=True), layers.Dense(12)])
    model.build((None, None))
    model.eval()
    ids = torch.randint(0, 12, (3, 9))
    full = model(ids)
    stepper = Stepper(model, batch_size=3)
    torch.testing.assert_close(stepper.prime(ids[:, :4]), full[:, 3], rtol=1e-5, atol=1e-6)
    for t in range(4, 9):
        torch.testing.assert_close(stepper.step(ids[:, t]), full[:, t], rtol=1e-5, atol=1e-6)
    stepper.reset()
    for t in range(9):
        outputs = stepper.step(ids[:, t])
    torch.testing.assert_close(outputs, full[:, -1], rtol=1e-5, atol=1e-6)


def test_stepper_rejects_models_it_cannot_step():
    with pytest.raises(ValueError, match="starts with an Embedding"):
        Stepper(seqlab.Sequential([layers.LSTM(3)]))
    bidirectional = seqlab.Sequential([layers.Embedding(5, 2), layers.Bidirectional(layers.LSTM(3, return_sequences=True))])
    with pytest.raises(ValueError, match="at least one recurrent layer"):
        Stepper(bidirectional)
    backwards = seqlab.Sequential([layers.Embedding(5, 2), layers.LSTM(3, go_backwards=True)])
    backwards.build((None, None))
    with pytest.raises(ValueError, match="reads backwards"):
        Stepper(backwards)
