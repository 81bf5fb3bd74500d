"""Parity of losses, metrics, optimizers and schedules with real TensorFlow-Keras (the oracle).

Skipped with a reason when TensorFlow is not installed; on CI (CI=1) a missing oracle fails.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keras_oracle import keras  # noqa: E402  (real TensorFlow-Keras, or a skip)

from seqlab.training import losses, metrics, optimizers, schedules  # noqa: E402

pytestmark = pytest.mark.keras
RNG = np.random.default_rng(0)


def _ours(loss, y_true, y_pred, **kwargs):
    tensors = {k: torch.as_tensor(v) for k, v in kwargs.items()}
    return loss(torch.as_tensor(y_true), torch.as_tensor(y_pred), **tensors).item()


def _keras(loss, y_true, y_pred, **kwargs):
    return float(keras.ops.convert_to_numpy(loss(y_true, y_pred, **kwargs)))


def test_sparse_crossentropy_with_ignore_class_on_sequences():
    logits = RNG.normal(size=(3, 5, 7)).astype(np.float32)
    labels = RNG.integers(0, 7, (3, 5))
    labels[:, 3:] = 0
    ours = _ours(losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0), labels, logits)
    theirs = _keras(keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0), labels, logits)
    assert ours == pytest.approx(theirs, rel=1e-5)


@pytest.mark.parametrize("ours, theirs, make_targets", [
    (losses.BinaryCrossentropy(), keras.losses.BinaryCrossentropy(),
     lambda p: RNG.integers(0, 2, p.shape).astype(np.float32)),
    (losses.CategoricalCrossentropy(), keras.losses.CategoricalCrossentropy(),
     lambda p: np.eye(p.shape[-1], dtype=np.float32)[RNG.integers(0, p.shape[-1], p.shape[0])]),
    (losses.MeanSquaredError(), keras.losses.MeanSquaredError(), lambda p: RNG.normal(size=p.shape).astype(np.float32)),
])
def test_probability_losses_with_sample_weights(ours, theirs, make_targets):
    probs = RNG.uniform(0.0, 1.0, (6, 3)).astype(np.float32)
    probs[0, 0] = 0.0  # exercises the clipping to [epsilon, 1 - epsilon]
    if isinstance(ours, losses.CategoricalCrossentropy):
        probs /= probs.sum(-1, keepdims=True)
    targets, weights = make_targets(probs), RNG.uniform(0, 2, 6).astype(np.float32)
    assert _ours(ours, targets, probs, sample_weight=weights) == pytest.approx(
        _keras(theirs, targets, probs, sample_weight=weights), rel=1e-5)


def test_sparse_accuracy_with_sample_weights():
    logits, labels = RNG.normal(size=(20, 4)).astype(np.float32), RNG.integers(0, 4, 20)
    weights = RNG.uniform(0, 1, 20).astype(np.float32)
    ours = metrics.SparseCategoricalAccuracy()
    ours.update(torch.as_tensor(labels), torch.as_tensor(logits), sample_weight=torch.as_tensor(weights))
    theirs = keras.metrics.SparseCategoricalAccuracy()
    theirs.update_state(labels, logits, sample_weight=weights)
    assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-6)


@pytest.mark.parametrize("name, kwargs", [
    ("Adam", {"learning_rate": 0.01}),
    ("Adam", {"learning_rate": 0.01, "clipnorm": 0.5}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("Adamax", {"learning_rate": 0.01}),
])
def test_optimizer_updates_match_keras(name, kwargs):
    start = RNG.normal(size=(4, 3)).astype(np.float32)
    gradients = [RNG.normal(size=(4, 3)).astype(np.float32) for _ in range(5)]
    weight = torch.nn.Parameter(torch.tensor(start))
    holder = torch.nn.Module()
    holder.weight = weight
    ours = getattr(optimizers, name)(**kwargs)
    ours.bind(holder)
    variable = keras.Variable(start)
    theirs = getattr(keras.optimizers, name)(**kwargs)
    for gradient in gradients:
        weight.grad = torch.tensor(gradient)
        ours.step(holder)
        theirs.apply_gradients([(keras.ops.convert_to_tensor(gradient), variable)])
    # PyTorch adds epsilon after bias correction, Keras before: they differ where gradients are tiny.
    np.testing.assert_allclose(weight.detach().numpy(), keras.ops.convert_to_numpy(variable), rtol=1e-5, atol=1e-5)


def test_schedules_match_keras():
    ours = schedules.CosineDecay(1e-4, decay_steps=50, alpha=0.1, warmup_target=1e-3, warmup_steps=10)
    theirs = keras.optimizers.schedules.CosineDecay(1e-4, decay_steps=50, alpha=0.1, warmup_target=1e-3,
                                                     warmup_steps=10)
    exponential = schedules.ExponentialDecay(0.1, decay_steps=7, decay_rate=0.8, staircase=True)
    keras_exponential = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=7, decay_rate=0.8, staircase=True)
    for step in (0, 5, 10, 30, 60, 100):
        assert ours(step) == pytest.approx(float(theirs(step)), rel=1e-5)
        assert exponential(step) == pytest.approx(float(keras_exponential(step)), rel=1e-5)
