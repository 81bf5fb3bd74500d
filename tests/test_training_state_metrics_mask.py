"""fit's training metrics count the same elements as evaluate's: the padding mask reaches both.

Issue 21, bug 2: the training step handed `y_pred.detach()` to the metrics, and `detach()`
drops the mask a layer carries on its output (`_keras_mask`), so padded steps counted in
the training accuracy and bits per character but not in the validation ones.
"""

from __future__ import annotations

import pytest
import torch

from seqlab.layers import LSTM, Dense, Embedding
from seqlab.model import Sequential
from seqlab.seeding import set_seed
from seqlab.training import SGD, SparseCategoricalCrossentropy


def _half_padded_rows() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(1, 8, (32, 10), generator=generator)
    x[:, 5:] = 0  # the second half of every row is padding
    return x, x.clone()


def test_training_metrics_equal_evaluation_metrics_on_the_same_data_when_nothing_changes():
    set_seed(0)
    model = Sequential([Embedding(8, 8, mask_zero=True), LSTM(8, return_sequences=True), Dense(8)])
    model.compile(SGD(learning_rate=0.0), SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy", "bpc"], device="cpu")  # a zero rate: the weights stay as they are
    x, y = _half_padded_rows()
    logs = {name: values[-1] for name, values in
            model.fit(x, y, batch_size=16, epochs=1, validation_data=(x, y), verbose=0).history.items()}
    assert logs["loss"] == pytest.approx(logs["val_loss"], rel=1e-6)
    assert logs["accuracy"] == pytest.approx(logs["val_accuracy"], rel=1e-9)
    assert logs["bpc"] == pytest.approx(logs["val_bpc"], rel=1e-6)
    evaluated = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert logs["accuracy"] == pytest.approx(evaluated["accuracy"], rel=1e-9)
