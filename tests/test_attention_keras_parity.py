"""Attention, normalization, pooling and transformer layers against real TensorFlow-Keras.

As in test_keras_parity.py: build the Keras layer, build the seqlab twin from
the same arguments, copy Keras' (randomised) weights with `set_weights`, and
compare within 1e-5 (float32). Configurations are drawn from fixed seeds.

One documented difference: where Keras' MultiHeadAttention takes its fused
path (no scores requested, no dropout), a query that may attend to nothing (a
padded query) averages all values in Keras but gets zero weights in seqlab (as
in Keras' own explicit path). Those rows are padding; the comparison then
covers the rows that see at least one key, and end-to-end models pooled with
the mask agree everywhere.
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


def _numpy(value):
    if isinstance(value, (list, tuple)):
        return [_numpy(v) for v in value]
    return value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def assert_same(ours, theirs, rows: np.ndarray | None = None):
    """Equal within 1e-5; `rows (batch, T)` restricts the comparison to those query rows."""
    ours, theirs = _numpy(ours), _numpy(theirs)
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, rows)
        return
    assert ours.shape == theirs.shape
    if rows is not None:
        ours, theirs = ours[rows], theirs[rows]
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE, rtol=0)


def make_mask(rng: np.random.Generator, batch: int, time: int, padding: str) -> np.ndarray | None:
    """Random lengths 1..time (one full row); True at real steps, padding on the left or right."""
    if padding == "none":
        return None
    lengths = rng.integers(1, time + 1, size=batch)
    lengths[0] = time
    steps = np.arange(time)[None, :]
    return steps < lengths[:, None] if padding == "right" else steps >= (time - lengths)[:, None]


def with_mask(array: np.ndarray, mask: np.ndarray | None):
    """A TF tensor carrying a Keras mask (how Keras' MultiHeadAttention reads the query mask)."""
    tensor = tf.constant(array)
    if mask is not None:
        keras.src.backend.set_keras_mask(tensor, tf.constant(mask))
    return tensor


def randomize_keras_weights(layer, rng: np.random.Generator) -> None:
    layer.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.get_weights()])


def torch_or_none(array):
    return None if array is None else torch.from_numpy(array)


def copy_weights(ours, keras_layer, input_shape):
    ours.build(input_shape)
    ours.set_weights(keras_layer.get_weights())
    ours.eval()
    return ours


def visible_rows(query_mask, value_mask, attention_mask, causal, batch, target, source) -> np.ndarray:
    """Which query rows may attend to at least one key (numpy reimplementation of the mask rules)."""
    visible = np.ones((batch, target, source), dtype=bool)
    if query_mask is not None:
        visible &= query_mask[:, :, None]
    if value_mask is not None:
        visible &= value_mask[:, None, :]
    if attention_mask is not None:
        visible &= attention_mask
    if causal:
        visible &= np.tril(np.ones((target, source), dtype=bool))[None]
    return visible.any(-1)


# ------------------------------------------------------------ Attention, AdditiveAttention
def _attention_cases(count: int, seed: int):
    rng = np.random.default_rng(seed)
    for index in range(count):
        additive = index % 3 == 2
        config = {"use_scale": (index // 2) % 2 == 0}  # both score modes with and without scale
        if not additive:
            config["score_mode"] = ["dot", "concat"][index % 2]
        options = {"with_key": bool(rng.random() < 0.4),
                   "query_padding": str(rng.choice(["none", "right", "left"])),
                   "value_padding": str(rng.choice(["none", "right", "left"])),
                   "causal": bool(rng.random() < 0.4),
                   "scores": bool(rng.random() < 0.5)}
        name = "AdditiveAttention" if additive else "Attention"
        yield pytest.param(name, config, options, int(rng.integers(0, 2**31)), id=f"{name}-{index}")


@pytest.mark.parametrize("class_name, config, options, seed", list(_attention_cases(12, seed=8)))
def test_attention_layers_match_keras(class_name, config, options, seed):
    rng = np.random.default_rng(seed)
    batch, target, source, dim = int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(2, 7)), 4
    value_dim = int(rng.integers(1, 6)) if options["with_key"] else dim
    query = rng.normal(size=(batch, target, dim)).astype("float32")
    value = rng.normal(size=(batch, source, value_dim)).astype("float32")
    key = rng.normal(size=(batch, source, dim)).astype("float32")
    inputs = [query, value, key] if options["with_key"] else [query, value]
    query_mask = make_mask(rng, batch, target, options["query_padding"])
    value_mask = make_mask(rng, batch, source, options["value_padding"])
    call = {"return_attention_scores": options["scores"], "use_causal_mask": options["causal"]}

    keras_layer = getattr(keras.layers, class_name)(**config)
    keras_layer([tf.constant(x) for x in inputs])
    randomize_keras_weights(keras_layer, rng)
    keras_mask = None if query_mask is None and value_mask is None else [
        None if m is None else tf.constant(m) for m in (query_mask, value_mask)]
    expected = keras_layer([tf.constant(x) for x in inputs], mask=keras_mask, **call)

    ours = copy_weights(getattr(layers, class_name)(**config), keras_layer, [x.shape for x in inputs])
    mask = None if keras_mask is None else [torch_or_none(query_mask), torch_or_none(value_mask)]
    result = ours([torch.from_numpy(x) for x in inputs], mask=mask, **call)
    assert_same(result, expected)


def test_attention_with_dropout_in_inference_matches_keras():
    rng = np.random.default_rng(3)
    query, value = rng.normal(size=(2, 3, 4)).astype("float32"), rng.normal(size=(2, 5, 4)).astype("float32")
    keras_layer = keras.layers.Attention(dropout=0.5, use_scale=True)
    keras_layer([query, value])
    randomize_keras_weights(keras_layer, rng)
    ours = copy_weights(layers.Attention(dropout=0.5, use_scale=True), keras_layer, [query.shape, value.shape])
    assert_same(ours([torch.from_numpy(query), torch.from_numpy(value)]),
                keras_layer([query, value], training=False))


# ------------------------------------------------------------------- MultiHeadAttention
def _mha_cases(count: int, seed: int):
    # key_dim and value_dim >= 2: with a head size of 1 Keras' TensorFlow backend adds the
    # (heads, 1) projection bias along the wrong axis (ops.add takes it for an NCHW bias_add).
    rng = np.random.default_rng(seed)
    for index in range(count):
        config = {"num_heads": int(rng.integers(1, 4)), "key_dim": int(rng.integers(2, 5)),
                  "use_bias": bool(rng.random() < 0.8)}
        if rng.random() < 0.4:
            config["value_dim"] = int(rng.integers(2, 5))
        if rng.random() < 0.3:
            config["output_shape"] = int(rng.integers(1, 6))
        options = {"cross": bool(rng.random() < 0.5), "with_key": bool(rng.random() < 0.3),
                   "query_padding": str(rng.choice(["none", "right", "left"])),
                   "value_padding": str(rng.choice(["none", "right", "left"])),
                   "attention_mask": bool(rng.random() < 0.3),
                   "causal": bool(rng.random() < 0.4),
                   "scores": index % 2 == 0}
        yield pytest.param(config, options, int(rng.integers(0, 2**31)), id=f"mha-{index}")


@pytest.mark.parametrize("config, options, seed", list(_mha_cases(16, seed=11)))
def test_multi_head_attention_matches_keras(config, options, seed):
    rng = np.random.default_rng(seed)
    batch, target = int(rng.integers(1, 4)), int(rng.integers(1, 6))
    source = int(rng.integers(1, 7)) if options["cross"] else target
    query_dim = int(rng.integers(2, 7))
    value_dim = int(rng.integers(2, 7)) if options["cross"] else query_dim
    query = rng.normal(size=(batch, target, query_dim)).astype("float32")
    value = query if not options["cross"] else rng.normal(size=(batch, source, value_dim)).astype("float32")
    key = rng.normal(size=(batch, source, 3)).astype("float32") if options["with_key"] else None
    query_mask = make_mask(rng, batch, target, options["query_padding"])
    value_mask = make_mask(rng, batch, source, options["value_padding"])
    attention_mask = None
    if options["attention_mask"]:
        attention_mask = rng.random((batch, target, source)) < 0.7
        attention_mask[:, :, 0] = True
    call = {"return_attention_scores": options["scores"], "use_causal_mask": options["causal"]}

    keras_layer = keras.layers.MultiHeadAttention(**config)
    shapes = [query.shape, value.shape] + ([key.shape] if key is not None else [])
    keras_layer.build(*shapes)
    randomize_keras_weights(keras_layer, rng)
    expected = keras_layer(with_mask(query, query_mask), with_mask(value, value_mask),
                           None if key is None else tf.constant(key),
                           attention_mask=None if attention_mask is None else tf.constant(attention_mask), **call)

    ours = copy_weights(layers.MultiHeadAttention(**config), keras_layer, [tuple(s) for s in shapes])
    result = ours(torch.from_numpy(query), torch.from_numpy(value), torch_or_none(key),
                  query_mask=torch_or_none(query_mask), value_mask=torch_or_none(value_mask),
                  attention_mask=torch_or_none(attention_mask), **call)
    rows = None if options["scores"] else visible_rows(query_mask, value_mask, attention_mask,
                                                       options["causal"], batch, target, source)
    assert_same(result, expected, rows)


@pytest.mark.parametrize("config, query_dim, value_dim", [
    ({"num_heads": 2, "key_dim": 64}, 64, 64),                     # Keras' example: 33,216 on 64
    ({"num_heads": 8, "key_dim": 16, "value_dim": 8}, 32, 48),
    ({"num_heads": 3, "key_dim": 5, "use_bias": False, "output_shape": 7}, 10, 10),
])
def test_multi_head_attention_parameter_count_matches_keras(config, query_dim, value_dim):
    keras_layer = keras.layers.MultiHeadAttention(**config)
    keras_layer.build((None, 4, query_dim), (None, 6, value_dim))
    ours = layers.MultiHeadAttention(**config)
    ours.build([(None, 4, query_dim), (None, 6, value_dim)])
    assert ours.count_params() == keras_layer.count_params()
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in keras_layer.get_weights()]


# ------------------------------------------------------------ LayerNormalization, pooling
@pytest.mark.parametrize("config", [
    {}, {"epsilon": 1e-6}, {"center": False}, {"scale": False}, {"axis": 1}, {"axis": [1, 2]},
])
def test_layer_normalization_matches_keras(config):
    rng = np.random.default_rng(len(str(config)))
    x = (3 * rng.normal(size=(3, 5, 6)) + 1).astype("float32")
    keras_layer = keras.layers.LayerNormalization(**config)
    keras_layer(x)
    randomize_keras_weights(keras_layer, rng)
    ours = copy_weights(layers.LayerNormalization(**config), keras_layer, x.shape)
    assert_same(ours(torch.from_numpy(x)), keras_layer(x))


@pytest.mark.parametrize("data_format, keepdims, padding", [
    ("channels_last", False, "right"), ("channels_last", True, "left"),
    ("channels_first", False, "right"), ("channels_last", False, "none"),
])
def test_global_average_pooling_with_mask_matches_keras(data_format, keepdims, padding):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 6, 3)).astype("float32")
    mask = make_mask(rng, 4, 6 if data_format == "channels_last" else 3, padding)
    keras_layer = keras.layers.GlobalAveragePooling1D(data_format=data_format, keepdims=keepdims)
    expected = keras_layer(x, mask=None if mask is None else tf.constant(mask))
    ours = layers.GlobalAveragePooling1D(data_format=data_format, keepdims=keepdims)
    assert_same(ours(torch.from_numpy(x), mask=torch_or_none(mask)), expected)
    assert ours.compute_output_shape(x.shape) == tuple(keras_layer.compute_output_shape(x.shape))


# --------------------------------------------------------------------- TransformerBlock
class KerasTransformerBlock:
    """The Keras tutorial's block from Keras layers (masks passed to the attention)."""

    def __init__(self, embed_dim, num_heads, ff_dim, key_dim, norm_first=False, causal=False):
        self.attention = keras.layers.MultiHeadAttention(num_heads, key_dim)
        self.ffn = [keras.layers.Dense(ff_dim, activation="relu"), keras.layers.Dense(embed_dim)]
        self.norms = [keras.layers.LayerNormalization(epsilon=1e-6) for _ in range(2)]
        self.norm_first, self.causal = norm_first, causal

    def __call__(self, x, mask=None):
        def attend(h):
            return self.attention(with_mask(h.numpy(), mask), with_mask(h.numpy(), mask),
                                  use_causal_mask=self.causal)

        def feed_forward(h):
            return self.ffn[1](self.ffn[0](h))

        if self.norm_first:
            hidden = x + attend(self.norms[0](x))
            return hidden + feed_forward(self.norms[1](hidden))
        hidden = self.norms[0](x + attend(x))
        return self.norms[1](hidden + feed_forward(hidden))

    def layers(self):
        return [self.attention, *self.ffn, *self.norms]

    def get_weights(self):
        return [w for layer in self.layers() for w in layer.get_weights()]

    def count_params(self):
        return sum(layer.count_params() for layer in self.layers())


@pytest.mark.parametrize("norm_first, causal, key_dim, padding", [
    (False, False, None, "right"), (True, False, 16, "left"), (False, True, None, "right"), (True, True, 4, "none"),
])
def test_transformer_block_matches_keras_composition(norm_first, causal, key_dim, padding):
    rng = np.random.default_rng(17)
    embed_dim, num_heads, ff_dim, batch, time = 16, 4, 24, 3, 7
    x = rng.normal(size=(batch, time, embed_dim)).astype("float32")
    mask = make_mask(rng, batch, time, padding)
    keras_block = KerasTransformerBlock(embed_dim, num_heads, ff_dim, key_dim or embed_dim // num_heads,
                                        norm_first, causal)
    keras_block(tf.constant(x), mask)
    for layer in keras_block.layers():
        randomize_keras_weights(layer, rng)
    expected = keras_block(tf.constant(x), mask)

    ours = layers.TransformerBlock(embed_dim, num_heads, ff_dim, key_dim=key_dim, norm_first=norm_first,
                                   causal=causal)
    copy_weights(ours, keras_block, x.shape)
    assert ours.count_params() == keras_block.count_params()
    result = ours(torch.from_numpy(x), mask=torch_or_none(mask))
    rows = None if mask is None else mask  # padded positions: see the module docstring
    assert_same(result, expected, rows)
    # Pooled with the mask, as a classifier would, the whole output agrees.
    keras_pooled = keras.layers.GlobalAveragePooling1D()(expected, mask=None if mask is None else tf.constant(mask))
    assert_same(layers.GlobalAveragePooling1D()(result, mask=torch_or_none(mask)), keras_pooled)


def test_embedding_transformer_classifier_matches_keras():
    """Embedding(mask_zero) → TransformerBlock → GlobalAveragePooling1D → Dense, end to end, padded."""
    rng = np.random.default_rng(23)
    ids = rng.integers(1, 50, size=(4, 9))
    for row, length in enumerate([9, 5, 2, 7]):
        ids[row, length:] = 0
    mask = ids != 0
    embedding, dense = keras.layers.Embedding(50, 8, mask_zero=True), keras.layers.Dense(1, activation="sigmoid")
    block = KerasTransformerBlock(8, 2, 16, key_dim=4)
    vectors = embedding(ids)
    expected = dense(keras.layers.GlobalAveragePooling1D()(block(vectors, mask), mask=tf.constant(mask)))
    for layer in block.layers():
        randomize_keras_weights(layer, rng)
    expected = dense(keras.layers.GlobalAveragePooling1D()(block(vectors, mask), mask=tf.constant(mask)))

    model = seqlab.Sequential([layers.Embedding(50, 8, mask_zero=True), layers.TransformerBlock(8, 2, 16),
                               layers.GlobalAveragePooling1D(), layers.Dense(1, activation="sigmoid")])
    model.build((None, None))
    model.set_weights(embedding.get_weights() + block.get_weights() + dense.get_weights())
    model.eval()
    assert_same(model(torch.from_numpy(ids)), expected)
