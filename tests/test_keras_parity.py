"""Parity with real TensorFlow-Keras: same weights in, same outputs and states out.

Each test builds a Keras layer or model, builds the seqlab twin from the same
arguments, copies Keras' weights through `set_weights`, and compares outputs
and states within 1e-5 (float32). Configurations are drawn at random from a
fixed seed, so every run checks the same cases. Skipped with a reason when
TensorFlow is not installed (`pip install -e '.[test]'` brings it).
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from keras_oracle import keras, tf  # noqa: E402  (real TensorFlow-Keras, or a skip)

import seqlab  # noqa: E402
from seqlab import layers  # noqa: E402

pytestmark = pytest.mark.keras
TOLERANCE = 1e-5
CELL_TYPES = ("SimpleRNN", "LSTM", "GRU")


def _as_numpy(value):
    if isinstance(value, (list, tuple)):
        return [_as_numpy(v) for v in value]
    return value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def assert_same(seqlab_result, keras_result):
    seqlab_values, keras_values = _as_numpy(seqlab_result), _as_numpy(keras_result)
    if isinstance(keras_values, list):
        assert isinstance(seqlab_values, list) and len(seqlab_values) == len(keras_values)
        for ours, theirs in zip(seqlab_values, keras_values):
            assert_same(ours, theirs)
        return
    assert seqlab_values.shape == keras_values.shape
    np.testing.assert_allclose(seqlab_values, keras_values, atol=TOLERANCE, rtol=0)


def make_mask(rng: np.random.Generator, batch: int, time: int, padding: str) -> np.ndarray | None:
    """Random lengths 1..time; True at real steps, padding on the left or right."""
    if padding == "none":
        return None
    lengths = rng.integers(1, time + 1, size=batch)
    lengths[0] = time  # one full-length row
    steps = np.arange(time)[None, :]
    if padding == "right":
        return steps < lengths[:, None]
    return steps >= (time - lengths)[:, None]


def random_rnn_config(rng: np.random.Generator, cell_type: str) -> dict:
    config = {
        "units": int(rng.integers(1, 9)),
        "use_bias": bool(rng.random() < 0.8),
        "return_sequences": bool(rng.random() < 0.5),
        "return_state": bool(rng.random() < 0.5),
        "go_backwards": bool(rng.random() < 0.4),
        "activation": str(rng.choice(["tanh", "tanh", "relu", "sigmoid"])),
    }
    if cell_type != "SimpleRNN":
        config["recurrent_activation"] = str(rng.choice(["sigmoid", "sigmoid", "hard_sigmoid", "tanh"]))
    if cell_type == "GRU":
        config["reset_after"] = bool(rng.random() < 0.5)
    if cell_type == "LSTM":
        config["unit_forget_bias"] = bool(rng.random() < 0.5)
    return config


def randomize_keras_weights(layer, rng: np.random.Generator) -> None:
    """Replace zero biases with random values so every weight matters."""
    layer.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.get_weights()])


def _cases(count: int, seed: int):
    rng = np.random.default_rng(seed)
    for index in range(count):
        cell_type = CELL_TYPES[index % 3]
        yield pytest.param(cell_type, random_rnn_config(rng, cell_type),
                           str(rng.choice(["none", "right", "left"])), int(rng.integers(0, 2**31)),
                           id=f"{cell_type}-{index}")


@pytest.mark.parametrize("cell_type, config, padding, seed", list(_cases(24, seed=2024)))
def test_recurrent_layer_matches_keras(cell_type, config, padding, seed):
    rng = np.random.default_rng(seed)
    batch, time, features = int(rng.integers(1, 5)), int(rng.integers(1, 8)), int(rng.integers(1, 6))
    x = rng.normal(size=(batch, time, features)).astype("float32")
    mask = make_mask(rng, batch, time, padding)

    keras_layer = getattr(keras.layers, cell_type)(**config)
    keras_result = keras_layer(x, mask=None if mask is None else tf.constant(mask))
    randomize_keras_weights(keras_layer, rng)
    keras_result = keras_layer(x, mask=None if mask is None else tf.constant(mask))

    ours = getattr(layers, cell_type)(**config)
    ours.build(x.shape)
    ours.set_weights(keras_layer.get_weights())
    result = ours(torch.from_numpy(x), mask=None if mask is None else torch.from_numpy(mask))
    assert_same(result, keras_result)


def _bidirectional_cases(count: int, seed: int):
    rng = np.random.default_rng(seed)
    modes = ["concat", "sum", "mul", "ave", None]
    for index in range(count):
        cell_type = CELL_TYPES[index % 3]
        config = random_rnn_config(rng, cell_type)
        config["go_backwards"] = False
        yield pytest.param(cell_type, config, modes[index % 5], str(rng.choice(["none", "right", "left"])),
                           int(rng.integers(0, 2**31)), id=f"{cell_type}-{modes[index % 5]}-{index}")


@pytest.mark.parametrize("cell_type, config, merge_mode, padding, seed", list(_bidirectional_cases(15, seed=7)))
def test_bidirectional_matches_keras(cell_type, config, merge_mode, padding, seed):
    rng = np.random.default_rng(seed)
    batch, time, features = int(rng.integers(1, 5)), int(rng.integers(1, 8)), int(rng.integers(1, 6))
    x = rng.normal(size=(batch, time, features)).astype("float32")
    mask = make_mask(rng, batch, time, padding)
    keras_mask = None if mask is None else tf.constant(mask)

    keras_layer = keras.layers.Bidirectional(getattr(keras.layers, cell_type)(**config), merge_mode=merge_mode)
    keras_layer(x, mask=keras_mask)
    randomize_keras_weights(keras_layer, rng)
    keras_result = keras_layer(x, mask=keras_mask)

    ours = layers.Bidirectional(getattr(layers, cell_type)(**config), merge_mode=merge_mode)
    ours.build(x.shape)
    ours.set_weights(keras_layer.get_weights())
    result = ours(torch.from_numpy(x), mask=None if mask is None else torch.from_numpy(mask))
    assert_same(result, keras_result)


@pytest.mark.parametrize("padding", ["right", "left"])
@pytest.mark.parametrize("reset_after", [True, False])
def test_stacked_model_with_embedding_mask_matches_keras(padding, reset_after):
    rng = np.random.default_rng(11 if padding == "right" else 12)
    batch, time, vocabulary = 4, 9, 30
    mask = make_mask(rng, batch, time, padding)
    ids = np.where(mask, rng.integers(1, vocabulary, size=(batch, time)), 0).astype("int64")

    def stack(module):
        return [
            module.Embedding(vocabulary, 6, mask_zero=True),
            module.Bidirectional(module.LSTM(5, return_sequences=True), merge_mode="concat"),
            module.GRU(4, return_sequences=True, reset_after=reset_after, go_backwards=True),
            module.SimpleRNN(3),
            module.Dense(2, activation="softmax"),
        ]

    keras_model = keras.Sequential([keras.Input(shape=(time,), dtype="int64"), *stack(keras.layers)])
    keras_model.set_weights([rng.normal(0, 0.4, w.shape).astype("float32") for w in keras_model.get_weights()])
    ours = seqlab.Sequential(stack(layers))
    ours.build((None, time))
    ours.set_weights(keras_model.get_weights())
    assert ours.count_params() == keras_model.count_params()
    assert_same(ours(torch.from_numpy(ids)), keras_model(ids))


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_initial_state_and_stateful_match_keras(cell_type):
    rng = np.random.default_rng(5)
    batch, time, features, units = 3, 4, 2, 5
    chunks = [rng.normal(size=(batch, time, features)).astype("float32") for _ in range(2)]
    state_count = 2 if cell_type == "LSTM" else 1
    initial = [rng.normal(size=(batch, units)).astype("float32") for _ in range(state_count)]

    keras_layer = getattr(keras.layers, cell_type)(units, return_sequences=True)
    keras_layer(chunks[0])
    randomize_keras_weights(keras_layer, rng)
    ours = getattr(layers, cell_type)(units, return_sequences=True)
    ours.build(chunks[0].shape)
    ours.set_weights(keras_layer.get_weights())
    assert_same(ours(torch.from_numpy(chunks[0]), initial_state=[torch.from_numpy(s) for s in initial]),
                keras_layer(chunks[0], initial_state=[tf.constant(s) for s in initial]))

    keras_stateful = keras.Sequential([keras.Input(batch_shape=(batch, time, features)),
                                       getattr(keras.layers, cell_type)(units, stateful=True, return_sequences=True)])
    keras_stateful.set_weights(keras_layer.get_weights())
    stateful = getattr(layers, cell_type)(units, stateful=True, return_sequences=True)
    stateful.build(chunks[0].shape)
    stateful.set_weights(keras_layer.get_weights())
    for chunk in chunks:  # the second call starts from the first call's final state
        assert_same(stateful(torch.from_numpy(chunk)), keras_stateful(chunk))


def test_dense_and_embedding_match_keras():
    rng = np.random.default_rng(3)
    keras_dense = keras.layers.Dense(4, activation="relu")
    x = rng.normal(size=(2, 3, 5)).astype("float32")
    keras_result = keras_dense(x)
    dense = layers.Dense(4, activation="relu")
    dense.build(x.shape)
    dense.set_weights(keras_dense.get_weights())
    assert_same(dense(torch.from_numpy(x)), keras_result)

    keras_embedding = keras.layers.Embedding(10, 3)
    ids = rng.integers(0, 10, size=(2, 4))
    keras_result = keras_embedding(ids)
    embedding = layers.Embedding(10, 3)
    embedding.build(ids.shape)
    embedding.set_weights(keras_embedding.get_weights())
    assert_same(embedding(torch.from_numpy(ids)), keras_result)


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_weight_shapes_and_parameter_counts_match_keras(cell_type):
    for config in ({"units": 7}, {"units": 3, "use_bias": False}, {"units": 2, "reset_after": False}):
        if "reset_after" in config and cell_type != "GRU":
            continue
        keras_layer = getattr(keras.layers, cell_type)(**config)
        keras_layer.build((None, None, 11))
        ours = getattr(layers, cell_type)(**config)
        ours.build((None, None, 11))
        assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in keras_layer.get_weights()]
        assert ours.count_params() == keras_layer.count_params()
