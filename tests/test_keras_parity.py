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


def run_both(cell_type: str, config: dict, padding: str, seed: int, **call_arguments):
    """Keras' layer with random weights and seqlab's twin with the same weights, called on the
    same random inputs and mask (plus `call_arguments`): `(seqlab_result, keras_result)`."""
    rng = np.random.default_rng(seed)
    batch, time, features = int(rng.integers(1, 5)), int(rng.integers(1, 8)), int(rng.integers(1, 6))
    x = rng.normal(size=(batch, time, features)).astype("float32")
    mask = make_mask(rng, batch, time, padding)

    keras_layer = getattr(keras.layers, cell_type)(**config)
    keras_layer(x, mask=None if mask is None else tf.constant(mask), **call_arguments)
    randomize_keras_weights(keras_layer, rng)
    keras_result = keras_layer(x, mask=None if mask is None else tf.constant(mask), **call_arguments)

    ours = getattr(layers, cell_type)(**config)
    ours.build(x.shape)
    ours.set_weights(keras_layer.get_weights())
    result = ours(torch.from_numpy(x), mask=None if mask is None else torch.from_numpy(mask), **call_arguments)
    return result, keras_result


@pytest.mark.parametrize("cell_type, config, padding, seed", list(_cases(24, seed=2024)))
def test_recurrent_layer_matches_keras(cell_type, config, padding, seed):
    assert_same(*run_both(cell_type, config, padding, seed))


@pytest.mark.parametrize("cell_type, config, padding, seed", list(_cases(6, seed=31)))
def test_layers_with_dropout_match_keras_in_inference(cell_type, config, padding, seed):
    config = {**config, "dropout": 0.3, "recurrent_dropout": 0.4}
    assert_same(*run_both(cell_type, config, padding, seed, training=False))


@pytest.mark.parametrize("cell_type, config, padding, seed", list(_cases(6, seed=47)))
def test_unrolled_layers_match_keras(cell_type, config, padding, seed):
    assert_same(*run_both(cell_type, {**config, "unroll": True}, padding, seed))


def _regularizers(library, cell_type: str) -> dict:
    """The same regularizer arguments in Keras or seqlab (both name the classes alike)."""
    r = library.regularizers
    arguments = {"kernel_regularizer": r.L1(0.003), "recurrent_regularizer": r.L2(0.02),
                 "bias_regularizer": r.L1L2(l1=0.01, l2=0.005)}
    if cell_type != "SimpleRNN":  # Keras 3's SimpleRNN drops activity_regularizer (never applies it)
        arguments["activity_regularizer"] = r.L1L2(l1=0.002, l2=0.03)
    return arguments


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_regularizer_losses_match_keras(cell_type):
    rng = np.random.default_rng(17)
    x = rng.normal(size=(3, 4, 5)).astype("float32")
    config = {"units": 4, "return_sequences": True, "return_state": True}
    keras_layer = getattr(keras.layers, cell_type)(**config, **_regularizers(keras, cell_type))
    keras_layer(x)
    randomize_keras_weights(keras_layer, rng)
    keras_layer(x)  # the activity penalties are those of the last call
    ours = getattr(layers, cell_type)(**config, **_regularizers(seqlab, cell_type))
    ours.build(x.shape)
    ours.set_weights(keras_layer.get_weights())
    ours(torch.from_numpy(x))

    # three weights, and the activity penalty of each returned tensor (sequence and states)
    expected = sorted(float(loss) for loss in keras_layer.losses)
    assert len(expected) == 3 + {"SimpleRNN": 0, "LSTM": 3, "GRU": 2}[cell_type]
    penalties = sorted(float(loss.detach()) for loss in ours.losses)
    np.testing.assert_allclose(penalties, expected, atol=TOLERANCE, rtol=0)


def _constraints(library, layer_type: str) -> dict:
    """The same constraint arguments in Keras or seqlab (both name the classes alike)."""
    c = library.constraints
    if layer_type == "Dense":
        return {"kernel_constraint": c.NonNeg(), "bias_constraint": c.MaxNorm(0.5)}
    return {"kernel_constraint": c.MaxNorm(0.8), "recurrent_constraint": c.UnitNorm(axis=1),
            "bias_constraint": c.MinMaxNorm(min_value=3.0, max_value=4.0, rate=0.7)}


@pytest.mark.parametrize("layer_type", [*CELL_TYPES, "Dense"])
def test_constraints_match_keras(layer_type):
    rng = np.random.default_rng(19)
    input_shape = (None, 5) if layer_type == "Dense" else (None, None, 5)
    keras_layer = getattr(keras.layers, layer_type)(4, **_constraints(keras, layer_type))
    keras_layer.build(input_shape)
    randomize_keras_weights(keras_layer, rng)
    # Keras' optimizers apply each variable's constraint after the update step.
    expected = [keras.ops.convert_to_numpy(w.constraint(w.value) if w.constraint is not None else w.value)
                for w in keras_layer.weights]
    constrained = [w.constraint is not None for w in keras_layer.weights]
    assert sum(constrained) == len(_constraints(keras, layer_type))
    for moved, before, after in zip(constrained, keras_layer.get_weights(), expected):
        assert moved != np.allclose(before, after)  # each constraint projects these weights somewhere else

    ours = getattr(layers, layer_type)(4, **_constraints(seqlab, layer_type))
    ours.build(input_shape)
    ours.set_weights(keras_layer.get_weights())
    ours.apply_constraints()
    assert_same(ours.get_weights(), expected)


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


@pytest.mark.parametrize("build_pair, merge_mode", [
    (lambda module: (module.LSTM(4, return_sequences=True),
                     module.GRU(3, return_sequences=True, go_backwards=True, reset_after=False)), "concat"),
    (lambda module: (module.SimpleRNN(3, activation="relu", return_state=True),
                     module.SimpleRNN(3, use_bias=False, return_state=True, go_backwards=True)), "sum"),
], ids=["LSTM-GRU-concat", "SimpleRNN-state-sum"])
def test_bidirectional_with_custom_backward_layer_matches_keras(build_pair, merge_mode):
    rng = np.random.default_rng(23)
    x = rng.normal(size=(3, 6, 4)).astype("float32")
    mask = make_mask(rng, 3, 6, "right")

    keras_forward, keras_backward = build_pair(keras.layers)
    keras_layer = keras.layers.Bidirectional(keras_forward, merge_mode=merge_mode, backward_layer=keras_backward)
    keras_layer(x, mask=tf.constant(mask))
    randomize_keras_weights(keras_layer, rng)
    keras_result = keras_layer(x, mask=tf.constant(mask))

    forward, backward = build_pair(layers)
    ours = layers.Bidirectional(forward, merge_mode=merge_mode, backward_layer=backward)
    ours.build(x.shape)
    ours.set_weights(keras_layer.get_weights())
    assert_same(ours(torch.from_numpy(x), mask=torch.from_numpy(mask)), keras_result)


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
