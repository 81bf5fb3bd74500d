"""The engine under seqlab's own `Sequential`: masks from Embedding(mask_zero), regularizers, constraints, saving."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import seqlab
from seqlab import layers
from seqlab.training import Model, SparseCategoricalCrossentropy
from test_training_toys import copy_first_token_data, sign_of_sum_data

pytestmark = pytest.mark.skipif(not issubclass(seqlab.Sequential, Model),
                                reason="Sequential is not built on seqlab.training.Model yet")


def _tagger() -> seqlab.Sequential:
    seqlab.set_seed(0)
    return seqlab.Sequential([layers.Embedding(12, 8, mask_zero=True), layers.LSTM(16, return_sequences=True),
                              layers.Dense(12)])


def test_the_embedding_mask_keeps_padding_out_of_loss_and_accuracy():
    model = _tagger()
    model.compile("adam", SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"], device="cpu")
    x, y = copy_first_token_data(128)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    result = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    logits, labels = torch.from_numpy(model.predict(x)), torch.from_numpy(y)
    keep = torch.from_numpy(x) != 0
    expected = torch.nn.functional.cross_entropy(logits[keep], labels[keep]).item()
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["accuracy"] == pytest.approx((logits.argmax(-1) == labels)[keep].double().mean().item())


def test_a_keras_style_model_learns_and_round_trips_through_load_model(tmp_path):
    seqlab.set_seed(0)
    model = seqlab.Sequential([layers.GRU(16, input_shape=(None, 1)), layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"], device="cpu")
    model.optimizer.learning_rate = 1e-2
    x, y = sign_of_sum_data(800)
    history = model.fit(x, y, batch_size=32, epochs=4, validation_split=0.2, verbose=0)
    assert history.history["val_accuracy"][-1] >= 0.95
    model.save(tmp_path / "model")
    loaded = seqlab.load_model(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(x[:50]), model.predict(x[:50]))
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)


def test_layer_regularizers_add_to_the_loss_and_constraints_hold_after_steps():
    seqlab.set_seed(0)
    model = seqlab.Sequential([layers.Dense(4, input_shape=(3,), kernel_regularizer="l2",
                                            kernel_constraint="non_neg"), layers.Dense(1)])
    model.compile("sgd", "mse", device="cpu")
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    with torch.no_grad():
        data_loss = model(torch.from_numpy(x)).pow(2).mean().item()
        penalty = sum(p.item() for p in model.losses)
    assert penalty > 0 and model.test_on_batch(x, y) == pytest.approx(data_loss + penalty, rel=1e-6)
    for _ in range(3):
        model.train_on_batch(x, y)
    assert (model.layers[0].kernel >= 0).all()
