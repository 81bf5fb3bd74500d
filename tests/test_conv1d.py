"""`layers.Conv1D`: Keras' shapes, weights and padding rules, a float64 loop by hand, and real TensorFlow-Keras.

The parity tests build Keras' Conv1D, build seqlab's twin from the same
arguments, copy Keras' (randomised) weights with `set_weights` and compare
within 1e-5 (float32); they skip with a reason when TensorFlow is missing, the
rest of the file runs without it.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import seqlab
from seqlab import layers

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def keras():
    from keras_oracle import keras  # real TensorFlow-Keras, or a skip (an error under CI)
    return keras


def built(layer, input_shape):
    layer.build(input_shape)
    return layer


def tf_padding(steps: int, kernel_size: int, strides: int, dilation: int, padding: str) -> tuple[int, int]:
    """Zeros left and right of the steps, by TensorFlow's documented rules (written out apart from the layer)."""
    reach = (kernel_size - 1) * dilation + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return reach - 1, 0
    out = math.ceil(steps / strides)
    total = max((out - 1) * strides + reach - steps, 0)
    return total // 2, total - total // 2


def loop_reference(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, strides: int, dilation: int,
                   padding: str, groups: int = 1) -> np.ndarray:
    """y[b, t, f] = b[f] + Σ_j Σ_c x'[b, t·s + j·d, c] · W[j, c, f], one scalar at a time."""
    batch, steps, channels = x.shape
    kernel_size, group_in, filters = kernel.shape
    left, right = tf_padding(steps, kernel_size, strides, dilation, padding)
    padded = np.concatenate([np.zeros((batch, left, channels)), x, np.zeros((batch, right, channels))], axis=1)
    new_steps = (padded.shape[1] - (kernel_size - 1) * dilation - 1) // strides + 1
    group_out = filters // groups
    y = np.zeros((batch, new_steps, filters))
    for b in range(batch):
        for t in range(new_steps):
            for f in range(filters):
                total = 0.0 if bias is None else bias[f]
                first_channel = (f // group_out) * group_in
                for j in range(kernel_size):
                    for c in range(group_in):
                        total += padded[b, t * strides + j * dilation, first_channel + c] * kernel[j, c, f]
                y[b, t, f] = total
    return y


# ------------------------------------------------------------------ shapes and weights
@pytest.mark.parametrize("padding, steps, kernel_size, strides, dilation, expected_steps", [
    ("valid", 10, 3, 1, 1, 8), ("valid", 10, 4, 2, 1, 4), ("valid", 9, 3, 1, 2, 5), ("valid", 3, 3, 1, 1, 1),
    ("same", 10, 3, 1, 1, 10), ("same", 10, 4, 1, 1, 10), ("same", 10, 3, 2, 1, 5), ("same", 11, 4, 2, 1, 6),
    ("same", 7, 3, 1, 2, 7), ("causal", 10, 3, 1, 1, 10), ("causal", 11, 2, 2, 1, 6), ("causal", 6, 3, 1, 2, 6),
])
def test_output_shapes_for_each_padding(padding, steps, kernel_size, strides, dilation, expected_steps):
    conv = layers.Conv1D(5, kernel_size, strides=strides, padding=padding, dilation_rate=dilation)
    y = conv(torch.randn(2, steps, 3))
    assert tuple(y.shape) == (2, expected_steps, 5)
    assert conv.compute_output_shape((2, steps, 3)) == (2, expected_steps, 5)
    assert conv.compute_output_shape((None, None, 3)) == (None, None, 5)


def test_weights_shapes_names_and_parameter_count():
    conv = built(layers.Conv1D(8, 5), (None, None, 3))
    assert [w.shape for w in conv.get_weights()] == [(5, 3, 8), (8,)]
    assert conv.weight_paths() == ["conv1d/kernel", "conv1d/bias"]
    assert conv.count_params() == 5 * 3 * 8 + 8 == 128
    no_bias = built(layers.Conv1D(4, 2, use_bias=False, name="c"), (None, 7, 6))
    assert [w.shape for w in no_bias.get_weights()] == [(2, 6, 4)]
    assert no_bias.weight_paths() == ["c/kernel"] and no_bias.count_params() == 48
    grouped = built(layers.Conv1D(6, 3, groups=2), (None, None, 4))
    assert [w.shape for w in grouped.get_weights()] == [(3, 2, 6), (6,)] and grouped.count_params() == 42
    assert built(layers.Conv1D(2, (3,), strides=(1,), dilation_rate=[1]), (None, None, 1)).kernel_size == 3


def test_a_model_summary_counts_the_convolution():
    model = seqlab.Sequential([layers.Embedding(50, 16), layers.Conv1D(32, 3, padding="same", activation="relu"),
                               layers.GlobalMaxPooling1D(), layers.Dense(1)])
    model.build((None, None))
    assert model.count_params() == 50 * 16 + (3 * 16 * 32 + 32) + 33 == 2_401


# ------------------------------------------------------------------ the math, by hand
@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize("kernel_size, strides, dilation, groups, steps", [
    (3, 1, 1, 1, 9), (4, 1, 1, 1, 8), (4, 2, 1, 1, 9), (3, 2, 1, 2, 10), (2, 1, 3, 1, 9), (5, 3, 1, 1, 11),
])
def test_float64_equals_a_loop_by_hand(padding, kernel_size, strides, dilation, groups, steps):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, steps, 4))
    conv = built(layers.Conv1D(6, kernel_size, strides=strides, padding=padding, dilation_rate=dilation,
                               groups=groups, dtype="float64"), (None, None, 4))
    kernel, bias = rng.normal(size=(kernel_size, 4 // groups, 6)), rng.normal(size=6)
    conv.set_weights([kernel, bias])
    y = conv(torch.from_numpy(x))
    assert y.dtype == torch.float64
    expected = loop_reference(x, kernel, bias, strides, dilation, padding, groups)
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=0, atol=1e-12)


def test_same_padding_puts_the_extra_zero_at_the_end_and_causal_sees_no_future():
    conv = built(layers.Conv1D(1, 2, padding="same", use_bias=False, dtype="float64"), (None, None, 1))
    conv.set_weights([np.array([[[1.0]], [[10.0]]])])  # y_t = x_t + 10 x_{t+1}
    x = torch.tensor([[[1.0], [2.0], [3.0]]], dtype=torch.float64)
    assert conv(x)[0, :, 0].tolist() == [21.0, 32.0, 3.0]
    causal = built(layers.Conv1D(1, 2, padding="causal", use_bias=False, dtype="float64"), (None, None, 1))
    causal.set_weights([np.array([[[1.0]], [[10.0]]])])  # y_t = x_{t-1} + 10 x_t
    assert causal(x)[0, :, 0].tolist() == [10.0, 21.0, 32.0]
    changed = x.clone()
    changed[0, 2, 0] = 100.0
    assert causal(changed)[0, :2, 0].tolist() == [10.0, 21.0]


def test_activation_regularizers_and_constraints():
    conv = built(layers.Conv1D(3, 2, activation="relu", kernel_regularizer="l2", bias_regularizer="l1",
                               kernel_constraint="non_neg", dtype="float64"), (None, None, 2))
    conv.set_weights([np.full((2, 2, 3), -0.5), np.array([1.0, -2.0, 3.0])])
    assert conv(torch.ones(1, 4, 2, dtype=torch.float64))[0, 0].tolist() == [0.0, 0.0, 1.0]  # relu(-2 + b)
    kernel_penalty, bias_penalty = conv.losses
    assert kernel_penalty.item() == pytest.approx(0.01 * 12 * 0.25)
    assert bias_penalty.item() == pytest.approx(0.01 * 6.0)
    conv.apply_constraints()
    assert conv.kernel.detach().min().item() == 0.0


def test_the_mask_is_dropped_as_in_keras():
    embedded = layers.Embedding(10, 4, mask_zero=True)(torch.tensor([[3, 5, 0, 0]]))
    assert embedded._keras_mask is not None
    assert layers.Conv1D(2, 2, padding="same")(embedded)._keras_mask is None
    model = seqlab.Sequential([layers.Embedding(10, 4, mask_zero=True), layers.Conv1D(2, 2, padding="same"),
                               layers.GlobalAveragePooling1D()])
    ids = torch.tensor([[3, 5, 0, 0]])
    features = model.layers[1](model.layers[0](ids))
    torch.testing.assert_close(model(ids), features.mean(dim=1))  # the padded steps count too


# ------------------------------------------------------------------ configs
def test_config_round_trip():
    conv = layers.Conv1D(4, 3, strides=2, padding="causal", activation="tanh", use_bias=False,
                         kernel_initializer="he_normal", kernel_regularizer="l2", bias_constraint="non_neg",
                         name="convolution")
    config = conv.get_config()
    assert config["kernel_size"] == [3] and config["strides"] == [2] and config["dilation_rate"] == [1]
    assert config["padding"] == "causal" and config["data_format"] == "channels_last"
    again = layers.Conv1D.from_config(json.loads(json.dumps(config)))
    assert again.get_config() == config
    restored = layers.deserialize(json.loads(json.dumps(layers.serialize(conv))))
    assert type(restored) is layers.Conv1D and restored.get_config() == config
    source = built(layers.Conv1D(3, 2, padding="same"), (None, None, 2))
    copy = built(layers.Conv1D.from_config(source.get_config()), (None, None, 2))
    copy.set_weights(source.get_weights())
    x = torch.randn(2, 5, 2)
    assert torch.equal(copy(x), source(x))


# ------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("make, message", [
    (lambda: layers.Conv1D(0, 3), "filters must be a positive whole number"),
    (lambda: layers.Conv1D(2.5, 3), "filters must be a positive whole number"),
    (lambda: layers.Conv1D(4, 0), "kernel_size must be a positive whole number"),
    (lambda: layers.Conv1D(4, (3, 3)), "kernel_size must be a positive whole number or a 1-tuple"),
    (lambda: layers.Conv1D(4, 3, strides=0), "strides must be"),
    (lambda: layers.Conv1D(4, 3, padding="full"), r"padding must be one of \('valid', 'same', 'causal'\)"),
    (lambda: layers.Conv1D(4, 3, data_format="channels_first"), "channels_last' only"),
    (lambda: layers.Conv1D(4, 3, strides=2, dilation_rate=2), "strides > 1 cannot be combined"),
    (lambda: layers.Conv1D(5, 3, groups=2), r"filters \(5\) must be divisible by groups \(2\)"),
])
def test_bad_arguments_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"must have rank 3, \(batch, time, features\), got shape \(2, 5\)"):
        layers.Conv1D(4, 3)(torch.randn(2, 5))
    with pytest.raises(ValueError, match="must have rank 3"):
        layers.Conv1D(4, 3)(torch.randn(2, 5, 3, 1))
    conv = layers.Conv1D(4, 3)
    conv(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="was built for 3 input channels"):
        conv(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match=r"padding='valid' needs at least 5 steps .* got 4"):
        layers.Conv1D(4, 3, dilation_rate=2)(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match="divisible by groups"):
        layers.Conv1D(4, 3, groups=2)(torch.randn(2, 5, 3))


# ------------------------------------------------------------------ real TensorFlow-Keras
PARITY_CASES = [  # (padding, kernel_size, strides, dilation, groups, activation)
    ("valid", 3, 1, 1, 1, None), ("valid", 4, 2, 1, 1, "relu"), ("valid", 3, 1, 2, 1, "tanh"),
    ("same", 3, 1, 1, 1, "relu"), ("same", 4, 1, 1, 1, None), ("same", 3, 2, 1, 1, "tanh"),
    ("same", 4, 2, 1, 1, "sigmoid"), ("same", 2, 1, 2, 1, "relu"), ("same", 5, 1, 2, 2, None),
    ("causal", 3, 1, 1, 1, "tanh"), ("causal", 4, 2, 1, 1, None), ("causal", 2, 1, 2, 1, "relu"),
    ("causal", 3, 1, 2, 2, "sigmoid"),
]


@pytest.mark.keras
@pytest.mark.parametrize("padding, kernel_size, strides, dilation, groups, activation", PARITY_CASES)
@pytest.mark.parametrize("steps", [9, 10])
def test_equals_keras_conv1d(keras, padding, kernel_size, strides, dilation, groups, activation, steps):
    rng = np.random.default_rng(kernel_size * 100 + steps)
    arguments = dict(filters=6, kernel_size=kernel_size, strides=strides, padding=padding,
                     dilation_rate=dilation, groups=groups, activation=activation)
    theirs = keras.layers.Conv1D(**arguments)
    theirs.build((None, None, 4))
    theirs.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in theirs.get_weights()])
    ours = built(layers.Conv1D(**arguments), (None, None, 4))
    ours.set_weights(theirs.get_weights())
    x = rng.normal(size=(3, steps, 4)).astype("float32")
    expected = np.asarray(theirs(x))
    y = ours(torch.from_numpy(x)).detach().numpy()
    assert y.shape == expected.shape == tuple(theirs.compute_output_shape((3, steps, 4)))
    np.testing.assert_allclose(y, expected, atol=TOLERANCE, rtol=0)


@pytest.mark.keras
@pytest.mark.filterwarnings("ignore:Layer 'conv1d")
def test_a_masked_model_equals_keras(keras):
    """Keras drops the mask at Conv1D: the average pooling after it counts the padded steps too."""
    rng = np.random.default_rng(3)
    theirs = keras.Sequential([keras.Input(shape=(None,), dtype="int32"), keras.layers.Embedding(20, 5, mask_zero=True),
                               keras.layers.Conv1D(4, 3, padding="same", activation="relu"),
                               keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])
    theirs.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in theirs.get_weights()])
    ours = seqlab.Sequential([layers.Embedding(20, 5, mask_zero=True),
                              layers.Conv1D(4, 3, padding="same", activation="relu"),
                              layers.GlobalAveragePooling1D(), layers.Dense(1)])
    ours.build((None, None))
    ours.set_weights(theirs.get_weights())
    ids = np.array([[3, 7, 1, 9, 2, 5], [4, 8, 0, 0, 0, 0], [6, 0, 0, 0, 0, 0]], dtype="int32")
    expected = np.asarray(theirs(ids))
    np.testing.assert_allclose(ours(torch.from_numpy(ids).long()).detach().numpy(), expected, atol=TOLERANCE, rtol=0)
