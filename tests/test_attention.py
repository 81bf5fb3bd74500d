"""Attention, transformer, normalization, positional and pooling layers: the math by hand,
masks, causality, the fused/explicit twins, clear errors, configs and Sequential use."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import seqlab
from seqlab import layers


def close(actual, expected, atol=1e-6):
    torch.testing.assert_close(actual, expected, rtol=0, atol=atol)


def right_padded_mask(lengths, time):
    return torch.arange(time)[None, :] < torch.tensor(lengths)[:, None]


# ------------------------------------------------------------------ the math by hand
def test_parameter_free_self_attention_is_the_tutorials_three_steps():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3)
    outputs, weights = layers.SelfAttention()(x, return_attention_scores=True)
    for b in range(2):
        scores = [[float(x[b, i] @ x[b, j]) for j in range(5)] for i in range(5)]   # 1. x_i·x_j
        for i in range(5):
            exps = [math.exp(s - max(scores[i])) for s in scores[i]]
            row = [e / sum(exps) for e in exps]                                      # 2. softmax of the row
            expected = sum(row[j] * x[b, j] for j in range(5))                       # 3. Σ_j w_ij x_j
            close(weights[b, i], torch.tensor(row))
            close(outputs[b, i], expected)
    layer = layers.SelfAttention()
    layer.build((None, None, 3))
    assert layer.get_weights() == []


def test_projected_self_attention_scales_by_root_units():
    torch.manual_seed(1)
    x = torch.randn(2, 4, 6)
    layer = layers.SelfAttention(units=5)
    outputs = layer(x)
    w_q, w_k, w_v = (torch.from_numpy(w) for w in layer.get_weights())
    assert [tuple(w.shape) for w in (w_q, w_k, w_v)] == [(6, 5)] * 3
    weights = torch.softmax((x @ w_q) @ (x @ w_k).transpose(1, 2) / math.sqrt(5), dim=-1)
    close(outputs, weights @ (x @ w_v))
    assert outputs.shape == (2, 4, 5) and layer.compute_output_shape((None, 4, 6)) == (None, 4, 5)


def test_luong_and_bahdanau_scores_by_hand():
    torch.manual_seed(2)
    query, value = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    luong = layers.Attention()
    _, weights = luong([query, value], return_attention_scores=True)
    close(weights, torch.softmax(query @ value.transpose(1, 2), dim=-1))
    bahdanau = layers.AdditiveAttention()
    output, weights = bahdanau([query, value], return_attention_scores=True)
    scale = torch.from_numpy(bahdanau.get_weights()[0])
    scores = (scale * torch.tanh(query[:, :, None, :] + value[:, None, :, :])).sum(-1)
    close(weights, torch.softmax(scores, dim=-1))
    close(output, weights @ value)


def test_layer_normalization_by_hand():
    torch.manual_seed(3)
    x = 4 * torch.randn(3, 5, 6) + 2
    norm = layers.LayerNormalization()
    y = norm(x)
    close(y.mean(-1), torch.zeros(3, 5), atol=1e-5)
    close(y.var(-1, unbiased=False), (x.var(-1, unbiased=False) / (x.var(-1, unbiased=False) + 1e-3)), atol=1e-5)
    gamma, beta = torch.randn(6), torch.randn(6)
    norm.set_weights([gamma, beta])
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    close(norm(x), gamma * (x - mean) / torch.sqrt(var + 1e-3) + beta, atol=1e-5)
    over_time = layers.LayerNormalization(axis=1, epsilon=1e-6)
    mean, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
    close(over_time(x), (x - mean) / torch.sqrt(var + 1e-6), atol=1e-5)
    assert [w.shape for w in over_time.get_weights()] == [(5,), (5,)]


def test_positional_encoding_is_the_sinusoid_table():
    x = torch.zeros(1, 7, 6)
    encoded = layers.PositionalEncoding()(x)[0]
    for t in range(7):
        for i in range(3):
            angle = t / 10000 ** (2 * i / 6)
            assert encoded[t, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert encoded[t, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    y = torch.randn(2, 4, 5)  # odd depth: sin/cos alternate, last feature is a sin
    close(layers.PositionalEncoding()(y) - y, layers.PositionalEncoding().encoding(4, 5).expand(2, 4, 5))


def test_position_embedding_adds_the_learned_rows():
    layer = layers.PositionEmbedding(sequence_length=10)
    x = torch.randn(2, 4, 3)
    y = layer(x)
    (table,) = layer.get_weights()
    assert table.shape == (10, 3)
    close(y - x, torch.from_numpy(table[:4]).expand(2, 4, 3))


# ------------------------------------------------------------------------------ masks
def _attention_weights(kind, x, value_mask):
    """(weights, rows that may attend) for each layer kind, with keys masked by value_mask."""
    if kind == "Attention":
        return layers.Attention()([x, x], mask=[None, value_mask], return_attention_scores=True)[1]
    if kind == "AdditiveAttention":
        return layers.AdditiveAttention()([x, x], mask=[None, value_mask], return_attention_scores=True)[1]
    if kind == "SelfAttention":
        return layers.SelfAttention(units=4)(x, mask=value_mask, return_attention_scores=True)[1]
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3)
    return mha(x, x, value_mask=value_mask, return_attention_scores=True)[1]


@pytest.mark.parametrize("kind", ["Attention", "AdditiveAttention", "SelfAttention", "MultiHeadAttention"])
def test_weights_sum_to_one_and_masked_keys_get_exactly_zero(kind):
    torch.manual_seed(4)
    x = torch.randn(3, 6, 4)
    mask = right_padded_mask([6, 4, 1], 6)
    weights = _attention_weights(kind, x, mask)
    key_mask = mask[:, None, None, :] if weights.dim() == 4 else mask[:, None, :]
    assert torch.all(weights.masked_select(~key_mask.expand_as(weights)) == 0)
    # SelfAttention also zeroes padded queries' rows; the real rows sum to 1.
    sums = weights.sum(-1)
    real = mask if kind == "SelfAttention" else torch.ones_like(mask)
    real = real[:, None, :] if weights.dim() == 4 else real
    close(sums.masked_select(real.expand_as(sums)), torch.ones(int(real.expand_as(sums).sum())))


def test_attention_query_mask_zeroes_padded_queries_and_carried_masks_are_used():
    torch.manual_seed(5)
    embedding = layers.Embedding(20, 4, mask_zero=True)
    ids = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]])
    x = embedding(ids)
    output = layers.Attention()([x, x])              # masks come from the Embedding
    assert torch.all(output[ids == 0] == 0)
    explicit = layers.Attention()([x.detach().clone(), x.detach().clone()], mask=[ids != 0, ids != 0])
    close(output, explicit)
    assert torch.equal(output._keras_mask, ids != 0)


def test_multi_head_attention_padded_queries_output_the_bias():
    torch.manual_seed(6)
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3)
    x = torch.randn(2, 5, 4)
    mask = right_padded_mask([5, 2], 5)
    output = mha(x, mask=mask)
    output_bias = torch.from_numpy(mha.get_weights()[-1])
    close(output[1, 2:], output_bias.expand(3, 4))
    assert torch.equal(output._keras_mask, mask)


# ------------------------------------------------------------------------- causality
def _causal_outputs(kind, x):
    torch.manual_seed(7)
    if kind == "Attention":
        return layers.Attention(use_scale=True)([x, x], use_causal_mask=True)
    if kind == "MultiHeadAttention-fused":
        return layers.MultiHeadAttention(2, 3)(x, x, use_causal_mask=True)
    if kind == "MultiHeadAttention-explicit":
        return layers.MultiHeadAttention(2, 3)(x, x, use_causal_mask=True, return_attention_scores=True)[0]
    if kind == "SelfAttention":
        return layers.SelfAttention(units=3)(x, use_causal_mask=True)
    block = layers.TransformerBlock(4, 2, 8, causal=True)
    block.eval()
    return block(x)


@pytest.mark.parametrize("kind", ["Attention", "MultiHeadAttention-fused", "MultiHeadAttention-explicit",
                                  "SelfAttention", "TransformerBlock"])
def test_causal_mask_hides_the_future(kind):
    x = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(8))
    changed = x.clone()
    changed[:, 4:] = torch.randn(2, 2, 4)  # change the last two tokens
    before, after = _causal_outputs(kind, x), _causal_outputs(kind, changed)
    close(after[:, :4], before[:, :4])
    assert not torch.allclose(after[:, 4:], before[:, 4:])


# --------------------------------------------------- fused kernel vs reference (twins)
def _twin_case(seed, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    batch, target, source = int(rng.integers(1, 4)), int(rng.integers(1, 7)), int(rng.integers(1, 7))
    cross = bool(rng.random() < 0.5)
    source = source if cross else target
    layer = layers.MultiHeadAttention(int(rng.integers(1, 4)), int(rng.integers(1, 5)),
                                      value_dim=int(rng.integers(1, 5)), use_bias=bool(rng.random() < 0.7))
    query = torch.randn(batch, target, 5, dtype=dtype)
    value = torch.randn(batch, source, 3, dtype=dtype) if cross else query
    masks = {}
    if rng.random() < 0.6:
        masks["query_mask"] = torch.from_numpy(rng.random((batch, target)) < 0.7)
    if rng.random() < 0.6:
        masks["value_mask"] = torch.from_numpy(rng.random((batch, source)) < 0.7)  # some rows see nothing
    if rng.random() < 0.4:
        masks["attention_mask"] = torch.from_numpy(rng.random((batch, target, source)) < 0.6)
    return layer, query, value, masks, bool(rng.random() < 0.5)


@pytest.mark.parametrize("fully_masked_rows", ["zeros", "average"])
@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("seed", range(12))
def test_multi_head_attention_fused_path_equals_reference(seed, dtype, atol, fully_masked_rows):
    """Random shapes and masks, including query rows that may attend to nothing."""
    layer, query, value, masks, causal = _twin_case(seed, dtype)
    layer.fully_masked_rows = fully_masked_rows
    query.requires_grad_(True)
    fused = layer(query, value, use_causal_mask=causal, **masks)
    reference, _ = layer(query, value, use_causal_mask=causal, return_attention_scores=True, **masks)
    close(fused, reference, atol=atol)
    (grad_fused,) = torch.autograd.grad(fused.sum(), query)
    (grad_reference,) = torch.autograd.grad(reference.sum(), query)
    assert torch.isfinite(grad_fused).all()
    close(grad_fused, grad_reference, atol=atol)


def test_a_query_that_sees_nothing_gets_zero_or_equal_weights():
    """seqlab's rule: all-zero weights (the output bias); Keras' kernels' rule: equal weights on every key."""
    torch.manual_seed(2)
    query, value = torch.randn(1, 3, 4), torch.randn(1, 5, 4)
    hidden_row = torch.tensor([[[True] * 5, [False] * 5, [True, False, True, False, True]]])
    for rule, expected_row in (("zeros", torch.zeros(5)), ("average", torch.full((5,), 0.2))):
        layer = layers.MultiHeadAttention(2, 3, fully_masked_rows=rule)
        output, weights = layer(query, value, attention_mask=hidden_row, return_attention_scores=True)
        close(weights[0, :, 1], expected_row.expand(2, 5), atol=1e-7)
        close(layer(query, value, attention_mask=hidden_row), output, atol=1e-6)  # the fused path agrees
    with pytest.raises(ValueError, match="fully_masked_rows"):
        layers.MultiHeadAttention(2, 3, fully_masked_rows="uniform")


def test_attention_dropout_drops_weights_in_training_only():
    torch.manual_seed(9)
    query, value = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    layer = layers.Attention(dropout=0.5, seed=1)
    _, clean = layer([query, value], training=False, return_attention_scores=True)
    output, dropped = layer([query, value], training=True, return_attention_scores=True)
    kept = dropped != 0
    assert 0 < int(kept.sum()) < kept.numel()
    close(dropped[kept], 2 * clean[kept])
    close(output, dropped @ value)
    layer.eval()
    close(layer([query, value]), clean @ value)


def test_multi_head_attention_seeded_dropout_is_reproducible_and_eval_is_deterministic():
    x = torch.randn(2, 4, 6)
    first, second = (layers.MultiHeadAttention(2, 3, dropout=0.5, seed=3) for _ in range(2))
    first.build([x.shape, x.shape])
    second.build([x.shape, x.shape])
    second.set_weights(first.get_weights())
    close(first(x, x, training=True), second(x, x, training=True))
    assert not torch.allclose(first(x, x, training=True), first(x, x, training=False))
    close(first(x, x, training=False), second(x, x, training=False))


# ------------------------------------------------------------------------------ pooling
@pytest.mark.parametrize("pool_class", [layers.GlobalAveragePooling1D, layers.GlobalMaxPooling1D])
@pytest.mark.parametrize("padding", ["right", "left"])
def test_masked_pooling_of_a_padded_batch_equals_each_sequence_alone(pool_class, padding):
    torch.manual_seed(10)
    lengths, time = [5, 2, 4], 5
    sequences = [torch.randn(length, 3) for length in lengths]
    batch = torch.full((3, time, 3), 100.0)  # padding values that would win a max or skew a mean
    mask = torch.zeros(3, time, dtype=torch.bool)
    for row, sequence in enumerate(sequences):
        steps = slice(0, len(sequence)) if padding == "right" else slice(time - len(sequence), time)
        batch[row, steps], mask[row, steps] = sequence, True
    pool = pool_class()
    pooled = pool(batch, mask=mask)
    for row, sequence in enumerate(sequences):
        close(pooled[row], pool(sequence[None])[0])
    assert pool.compute_mask(batch, mask) is None


def test_pooling_a_sequence_with_no_real_step_gives_nan():
    x, mask = torch.randn(2, 3, 2), torch.tensor([[True, False, False], [False, False, False]])
    for pool in (layers.GlobalAveragePooling1D(), layers.GlobalMaxPooling1D()):
        pooled = pool(x, mask=mask)
        assert torch.isfinite(pooled[0]).all() and torch.isnan(pooled[1]).all()


# ------------------------------------------------------------------- parameter counts
def test_parameter_counts_as_keras_prints():
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=64)
    mha.build((None, None, 64))
    assert mha.count_params() == 33_216   # 3·(64·2·64 + 2·64) + (2·64·64 + 64)
    # The Keras "Text classification with Transformer" block: embed 32, 2 heads of key_dim 32, ff 32.
    block = layers.TransformerBlock(32, 2, 32, key_dim=32)
    block.build((None, 200, 32))
    assert block.count_params() == 10_656
    norm = layers.LayerNormalization()
    norm.build((None, 7, 32))
    assert norm.count_params() == 64
    assert [w.shape for w in mha.get_weights()] == [(64, 2, 64), (2, 64)] * 3 + [(2, 64, 64), (64,)]


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, message", [
    (lambda: layers.Attention()([torch.randn(2, 3, 4), torch.randn(2, 5, 6)]), "same number of features"),
    (lambda: layers.AdditiveAttention()([torch.randn(2, 3, 4), torch.randn(2, 5, 3)]), "Dense(3)"),
    (lambda: layers.Attention()(torch.randn(2, 3, 4)), "takes a list [query, value]"),
    (lambda: layers.Attention()([torch.randn(2, 3, 4), torch.randn(2, 5, 4)], mask=torch.ones(2, 5)),
     "mask must be a list"),
    (lambda: layers.Attention()([torch.randn(2, 3, 4), torch.randn(2, 5, 4)], mask=[None, torch.ones(2, 4)]),
     "value_mask must have shape (batch, time) = (2, 5)"),
    (lambda: layers.MultiHeadAttention(2, 3)(torch.randn(2, 3, 4), query_mask=torch.ones(3, 2)),
     "query_mask must have shape (batch, time) = (2, 3)"),
    (lambda: layers.MultiHeadAttention(2, 3)(torch.randn(2, 3, 4), attention_mask=torch.ones(2, 3, 2)),
     "attention_mask must have shape (batch, T, S) = (2, 3, 3)"),
    (lambda: layers.MultiHeadAttention(2, 3)(torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 4, 4)),
     "value and key need the same time length"),
    (lambda: layers.MultiHeadAttention(0, 3), "num_heads must be a positive integer"),
    (lambda: layers.SelfAttention()(torch.randn(3, 4)), "rank 3, (batch, time, features)"),
    (lambda: layers.TransformerBlock(30, 4, 8), "not divisible by num_heads=4"),
    (lambda: layers.TransformerBlock(8, 2, 8)(torch.randn(2, 3, 6)), "Set embed_dim=6"),
    (lambda: layers.TransformerBlock(8, 2, 8)(torch.randn(2, 3, 8), mask=torch.ones(2, 4)),
     "mask must have shape (batch, time) = (2, 3)"),
    (lambda: layers.PositionEmbedding(4)(torch.randn(1, 6, 2)), "sequence_length >= 6"),
    (lambda: layers.GlobalAveragePooling1D()(torch.randn(2, 3, 4), mask=torch.ones(2, 4)),
     "mask must have shape (batch, time) = (2, 3)"),
    (lambda: layers.Attention(score_mode="cosine"), "score_mode must be one of"),
    (lambda: layers.LayerNormalization(axis=0)(torch.randn(2, 3)), "axis 0 is the batch"),
])
def test_clear_errors(call, message):
    with pytest.raises((ValueError, TypeError)) as error:
        call()
    assert message in str(error.value)


def test_multi_head_attention_rejects_inputs_of_another_size_after_building():
    mha = layers.MultiHeadAttention(2, 3)
    mha(torch.randn(1, 2, 4))
    with pytest.raises(ValueError, match="built for query with 4 features"):
        mha(torch.randn(1, 2, 5))


# ------------------------------------------------------------------- configs, Sequential
EXAMPLES = [
    (lambda: layers.Attention(use_scale=True, score_mode="concat", dropout=0.1, seed=2), "pair"),
    (lambda: layers.AdditiveAttention(use_scale=False), "pair"),
    (lambda: layers.SelfAttention(units=3, name="attend"), "sequence"),
    (lambda: layers.SelfAttention(), "sequence"),
    (lambda: layers.MultiHeadAttention(2, 3, value_dim=2, output_shape=5, use_bias=False,
                                       kernel_regularizer="l2"), "sequence"),
    (lambda: layers.LayerNormalization(axis=[1, 2], epsilon=1e-5, center=False), "sequence"),
    (lambda: layers.PositionalEncoding(max_wavelength=100.0), "sequence"),
    (lambda: layers.PositionEmbedding(sequence_length=8), "sequence"),
    (lambda: layers.TransformerBlock(4, 2, 6, dropout=0.2, norm_first=True, causal=True), "sequence"),
    (lambda: layers.GlobalAveragePooling1D(keepdims=True), "sequence"),
    (lambda: layers.GlobalMaxPooling1D(data_format="channels_first"), "sequence"),
]


@pytest.mark.parametrize("make, inputs", EXAMPLES)
def test_config_round_trip_rebuilds_the_same_layer(make, inputs):
    layer = make()
    x = torch.randn(2, 5, 4)
    args = [x, torch.randn(2, 3, 4)] if inputs == "pair" else x
    layer.eval()
    expected = layer(args)
    config = layers.serialize(layer)
    twin = layers.deserialize(config)
    assert layers.serialize(twin) == config
    twin.eval()
    twin(args)
    twin.set_weights(layer.get_weights())
    close(twin(args), expected)
    assert tuple(expected.shape) == tuple(twin.compute_output_shape(
        [tuple(a.shape) for a in args] if inputs == "pair" else tuple(x.shape)))


def _classifier():
    return seqlab.Sequential([layers.Embedding(30, 8, mask_zero=True), layers.PositionEmbedding(12),
                              layers.TransformerBlock(8, 2, 16), layers.GlobalAveragePooling1D(),
                              layers.Dense(1, activation="sigmoid")])


def test_transformer_classifier_in_sequential_ignores_padding():
    torch.manual_seed(11)
    model = _classifier()
    model.build((None, None))
    model.eval()
    sequences = [[5, 3, 9, 2, 7, 1], [4, 8], [6, 6, 2, 11]]
    batch = torch.zeros(3, 10, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        batch[row, :len(sequence)] = torch.tensor(sequence)
    padded = model(batch)
    for row, sequence in enumerate(sequences):
        close(padded[row], model(torch.tensor([sequence]))[0])
    assert model.compute_output_shape((None, 10)) == (None, 1)
    assert "transformer_block (TransformerBlock)" in model.summary(print_fn=None)
    twin = seqlab.Sequential.from_config(model.get_config())
    twin.set_weights(model.get_weights())
    twin.eval()
    close(twin(batch), padded)


def test_masks_flow_through_the_new_layers():
    ids = torch.tensor([[4, 2, 0], [7, 0, 0]])
    x = layers.Embedding(10, 4, mask_zero=True)(ids)
    for layer in (layers.PositionEmbedding(5), layers.PositionalEncoding(), layers.LayerNormalization(),
                  layers.TransformerBlock(4, 2, 4), layers.SelfAttention(), layers.MultiHeadAttention(2, 2)):
        x = layer(x)
        assert torch.equal(x._keras_mask, ids != 0), type(layer).__name__
    assert layers.GlobalMaxPooling1D()(x)._keras_mask is None
