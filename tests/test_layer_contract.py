"""The Keras facts the tutorials print: parameter counts, weight shapes, and the math by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import seqlab
from seqlab import layers


def built(layer, input_shape):
    layer.build(input_shape)
    return layer


@pytest.mark.parametrize("layer, input_shape, expected", [
    (lambda: layers.SimpleRNN(3), (None, 2, 10), 42),
    (lambda: layers.LSTM(32), (None, None, 32), 8_320),
    (lambda: layers.GRU(32), (None, None, 32), 6_336),
    (lambda: layers.GRU(32, reset_after=False), (None, None, 32), 6_240),
    (lambda: layers.Bidirectional(layers.SimpleRNN(64)), (None, None, 20), 10_880),
    (lambda: layers.LSTM(8, peephole=True), (None, None, 4), 4 * 8 * (4 + 8 + 1) + 3 * 8),
])
def test_parameter_counts_as_keras_prints(layer, input_shape, expected):
    assert built(layer(), input_shape).count_params() == expected


def test_tutorial_model_parameter_counts():
    stacked = seqlab.Sequential([layers.Embedding(1000, 32), layers.SimpleRNN(32, return_sequences=True),
                                 layers.SimpleRNN(32), layers.Dense(1)])
    stacked.build((None, None))
    assert stacked.count_params() == 36_193
    char_lm = seqlab.Sequential([layers.Embedding(80, 256), layers.LSTM(512, return_sequences=True),
                                 layers.Dense(80)])
    char_lm.build((None, None))
    assert char_lm.count_params() == 1_636_432


def test_weight_shapes_in_keras_layout():
    lstm = built(layers.LSTM(64, use_bias=False), (None, None, 100))
    assert [w.shape for w in lstm.get_weights()] == [(100, 256), (64, 256)]
    gru = built(layers.GRU(5), (None, None, 3))
    assert [w.shape for w in gru.get_weights()] == [(3, 15), (5, 15), (2, 15)]
    gru_v1 = built(layers.GRU(5, reset_after=False), (None, None, 3))
    assert [w.shape for w in gru_v1.get_weights()] == [(3, 15), (5, 15), (15,)]
    assert lstm.weight_paths() == ["lstm/lstm_cell/kernel", "lstm/lstm_cell/recurrent_kernel"]


def test_bidirectional_output_shape():
    bi = layers.Bidirectional(layers.SimpleRNN(64, use_bias=False, return_sequences=True))
    assert bi(torch.randn(1, 5, 100)).shape == (1, 5, 128)
    assert bi.compute_output_shape((1, 5, 100)) == (1, 5, 128)


def test_one_hot_times_dense_equals_embedding_lookup():
    embedding = layers.Embedding(7, 4)
    ids = torch.tensor([[0, 6, 2], [3, 3, 1]])
    dense = built(layers.Dense(4, use_bias=False), (None, 7))
    looked_up = embedding(ids)
    dense.set_weights(embedding.get_weights())
    assert torch.equal(dense(layers.one_hot(ids, 7)), looked_up)


@pytest.mark.parametrize("shape", [(9,), (4, 7), (2, 3, 5)])
def test_embedding_gradient_sums_each_rows_lookups_as_one_hot_times_dense(shape):
    torch.manual_seed(2)
    embedding = built(layers.Embedding(6, 3, dtype="float64"), (None, None))
    ids = torch.randint(0, 6, shape)
    ids.view(-1)[:3] = 4  # one row looked up several times
    upstream = torch.randn(*shape, 3, dtype=torch.float64)
    (embedding(ids) * upstream).sum().backward()
    expected = layers.one_hot(ids, 6, dtype=torch.float64).reshape(-1, 6).T @ upstream.reshape(-1, 3)
    torch.testing.assert_close(embedding.embeddings.grad, expected, rtol=0, atol=1e-12)
    reference = embedding.embeddings.detach().clone().requires_grad_()
    (F.embedding(ids, reference) * upstream).sum().backward()
    assert torch.equal(embedding.embeddings.grad, reference.grad)  # the same sums, in the same order
    with torch.no_grad():
        assert torch.equal(embedding(ids), F.embedding(ids, reference))


def test_simple_rnn_equals_step_by_step_hand_computation():
    torch.manual_seed(1)
    rnn = layers.SimpleRNN(4, return_sequences=True)
    x = torch.randn(2, 6, 3)
    outputs = rnn(x)
    kernel, recurrent_kernel, bias = (torch.from_numpy(w) for w in rnn.get_weights())
    h = torch.zeros(2, 4)
    for t in range(6):
        h = torch.tanh(x[:, t] @ kernel + h @ recurrent_kernel + bias)
        torch.testing.assert_close(outputs[:, t], h, rtol=0, atol=1e-6)


def test_lstm_and_gru_equal_their_textbook_equations():
    torch.manual_seed(2)
    x, u = torch.randn(3, 5, 4), 6
    lstm = layers.LSTM(u, return_state=True)
    output, h_last, c_last = lstm(x)
    W, U, b = (torch.from_numpy(w) for w in lstm.get_weights())
    h = c = torch.zeros(3, u)
    for t in range(5):
        z = x[:, t] @ W + h @ U + b
        i, f, g, o = torch.sigmoid(z[:, :u]), torch.sigmoid(z[:, u:2 * u]), torch.tanh(z[:, 2 * u:3 * u]), torch.sigmoid(z[:, 3 * u:])
        c = f * c + i * g
        h = o * torch.tanh(c)
    torch.testing.assert_close(output, h)
    torch.testing.assert_close(c_last, c)

    gru = layers.GRU(u, reset_after=False)
    gru.build(x.shape)
    W, U, b = (torch.from_numpy(w) for w in gru.get_weights())
    h = torch.zeros(3, u)
    for t in range(5):
        xz, xr, xh = (x[:, t] @ W + b).split(u, dim=1)
        z = torch.sigmoid(xz + h @ U[:, :u])
        r = torch.sigmoid(xr + h @ U[:, u:2 * u])
        h = z * h + (1 - z) * torch.tanh(xh + (r * h) @ U[:, 2 * u:])
    torch.testing.assert_close(gru(x), h)


def test_initial_values_follow_keras():
    lstm = built(layers.LSTM(4), (None, None, 3))
    kernel, recurrent_kernel, bias = lstm.get_weights()
    np.testing.assert_array_equal(bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])
    limit = np.sqrt(6 / (3 + 16))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.5 * limit
    np.testing.assert_allclose(recurrent_kernel @ recurrent_kernel.T, np.eye(4), atol=1e-5)
    embedding = built(layers.Embedding(500, 20), (None, None))
    values = embedding.get_weights()[0]
    assert values.min() >= -0.05 and values.max() <= 0.05 and values.std() > 0.02


def test_numpy_input_and_float64():
    rnn = layers.GRU(3, dtype="float64")
    output = rnn(np.random.default_rng(0).normal(size=(2, 4, 5)))
    assert output.dtype == torch.float64
    lazy = layers.LSTM(3)
    assert lazy(torch.randn(2, 4, 5, dtype=torch.float64)).dtype == torch.float64
    model = seqlab.Sequential([layers.Embedding(10, 3), layers.SimpleRNN(2)])
    assert model(np.array([[1, 2, 0]])).shape == (1, 2)


def test_return_state_lists_follow_keras():
    x = torch.randn(2, 3, 4)
    assert len(layers.LSTM(5, return_state=True)(x)) == 3
    assert len(layers.GRU(5, return_state=True)(x)) == 2
    output, *states = layers.Bidirectional(layers.LSTM(5, return_state=True))(x)
    assert output.shape == (2, 10) and [s.shape for s in states] == [(2, 5)] * 4
    forward, backward = layers.Bidirectional(layers.GRU(5), merge_mode=None)(x)
    assert forward.shape == backward.shape == (2, 5)


def test_go_backwards_reads_the_reversed_sequence():
    torch.manual_seed(3)
    x = torch.randn(2, 5, 3)
    forward = layers.LSTM(4, return_sequences=True)
    backward = layers.LSTM(4, return_sequences=True, go_backwards=True)
    backward.build(x.shape)
    forward.build(x.shape)
    backward.set_weights(forward.get_weights())
    torch.testing.assert_close(backward(x), forward(x.flip(1)))


def test_time_major_equals_batch_major():
    torch.manual_seed(4)
    x = torch.randn(3, 6, 2)
    batch_major = layers.GRU(4, return_sequences=True)
    time_major = layers.GRU(4, return_sequences=True, time_major=True)
    time_major.build((6, 3, 2))
    batch_major.build(x.shape)
    time_major.set_weights(batch_major.get_weights())
    torch.testing.assert_close(time_major(x.transpose(0, 1)).transpose(0, 1), batch_major(x))


def test_stateful_carries_state_until_reset():
    torch.manual_seed(5)
    x = torch.randn(2, 8, 3)
    whole = layers.SimpleRNN(4)
    stateful = layers.SimpleRNN(4, stateful=True)
    stateful.build(x.shape)
    whole.build(x.shape)
    stateful.set_weights(whole.get_weights())
    stateful(x[:, :5])
    torch.testing.assert_close(stateful(x[:, 5:]), whole(x))
    stateful.reset_states()
    torch.testing.assert_close(stateful(x), whole(x))
    with pytest.raises(ValueError, match="reset_states"):
        stateful(x[:1])


def test_dropout_uses_one_mask_per_sequence_and_only_in_training():
    torch.manual_seed(6)
    rnn = layers.SimpleRNN(3, dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    x = torch.ones(4, 6, 8)
    rnn.eval()
    reference = rnn(x)
    torch.testing.assert_close(rnn(x), reference)  # inference: deterministic
    rnn.train()
    assert not torch.allclose(rnn(x), reference)
    # One input mask per sequence: with zero recurrent weights, a constant input gives a
    # constant output along time only if the same features are dropped at every step.
    with torch.no_grad():
        rnn.cell.recurrent_kernel.zero_()
    outputs = rnn(x)
    torch.testing.assert_close(outputs, outputs[:, :1].expand_as(outputs))


@pytest.mark.parametrize("execution", ["reference", "auto"])
def test_recurrent_dropout_uses_one_mask_per_sequence_and_only_in_training(execution, monkeypatch):
    torch.manual_seed(7)
    batch, time, u, rate = 3, 6, 5, 0.4
    x = torch.randn(batch, time, 4)
    lstm = built(layers.LSTM(u, recurrent_dropout=rate, return_sequences=True, execution=execution), x.shape)
    drawn = []  # the recurrent masks the cell draws, one entry per draw

    def recording(inputs, training):
        masks = draw(inputs, training)
        drawn.append(masks[1])
        return masks

    draw = lstm.cell.dropout_masks
    monkeypatch.setattr(lstm.cell, "dropout_masks", recording)
    W, U, b = (torch.from_numpy(w) for w in lstm.get_weights())

    def by_hand(mask):
        """The LSTM equations with h_{t-1} * mask feeding every gate, the same mask at each step."""
        h = c = torch.zeros(batch, u)
        outputs = []
        for t in range(time):
            z = x[:, t] @ W + (h * mask) @ U + b
            i, f, g, o = torch.sigmoid(z[:, :u]), torch.sigmoid(z[:, u:2 * u]), torch.tanh(z[:, 2 * u:3 * u]), torch.sigmoid(z[:, 3 * u:])
            c = f * c + i * g
            h = o * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)

    with torch.no_grad():
        outputs = lstm(x, training=True)
        assert len(drawn) == 1  # one draw per call, not one per step
        mask = drawn[0]
        assert mask.shape == (batch, u) and (mask == 0).any()
        torch.testing.assert_close(mask[mask != 0], torch.full_like(mask[mask != 0], 1 / (1 - rate)))
        torch.testing.assert_close(outputs, by_hand(mask))

        lstm(x, training=True)  # the next sequence gets its own mask
        assert len(drawn) == 2 and not torch.equal(drawn[1], mask)

        outputs = lstm(x, training=False)  # inference: no mask at all
        assert len(drawn) == 3 and drawn[2] is None
        torch.testing.assert_close(outputs, by_hand(torch.ones(batch, u)))


def test_float_inputs_are_cast_to_the_layers_dtype_as_in_keras():
    torch.manual_seed(9)
    x = torch.randn(2, 4, 5, dtype=torch.float64)
    lstm = built(layers.LSTM(3, return_state=True), x.shape)  # float32 weights
    outputs = lstm(x)
    assert [o.dtype for o in outputs] == [torch.float32] * 3
    torch.testing.assert_close(outputs, lstm(x.float()), rtol=0, atol=0)
    bidirectional = built(layers.Bidirectional(layers.GRU(3)), x.shape)
    # (the path is chosen before the cast, so the two calls may take different, equal paths)
    torch.testing.assert_close(bidirectional(x), bidirectional(x.float()), rtol=0, atol=1e-6)
    wide = built(layers.SimpleRNN(3, dtype="float64"), x.shape)
    assert wide(x.float()).dtype == torch.float64
    torch.testing.assert_close(wide(x.float()), wide(x.float().double()), rtol=0, atol=0)


def test_numpy_ids_and_masks_are_created_on_the_layers_device():
    # The "meta" device stands in for a GPU: anything created on the CPU instead would show.
    embedding = built(layers.Embedding(10, 3), (None, None)).to("meta")
    ids = embedding._as_tensors(np.array([[1, 2, 0]]))
    assert ids.device.type == "meta" and ids.dtype == torch.long
    lstm = built(layers.LSTM(3), (None, None, 4)).to("meta")
    for mask in (np.ones((2, 5), dtype=bool), torch.ones(2, 5, dtype=torch.bool)):
        assert lstm._check_mask(mask, 2, 5).device.type == "meta"
    on_cpu = lstm._check_mask(torch.ones(2, 5, dtype=torch.bool), 2, 5, device=torch.device("cpu"))
    assert on_cpu.device.type == "cpu"


def test_regularizers_appear_in_losses_and_constraints_apply():
    lstm = layers.LSTM(3, kernel_regularizer="l2", bias_regularizer=seqlab.regularizers.l1(0.5),
                       kernel_constraint="non_neg", recurrent_constraint=seqlab.constraints.MaxNorm(0.1))
    lstm(torch.randn(2, 3, 4))
    kernel = lstm.cell.kernel
    expected = 0.01 * kernel.square().sum() + 0.5 * lstm.cell.bias.abs().sum()
    torch.testing.assert_close(sum(lstm.losses), expected)
    optimizer = torch.optim.SGD(lstm.parameters(), lr=1.0)
    seqlab.constraints.enforce_after_each_step(optimizer, lstm)
    lstm(torch.randn(2, 3, 4)).sum().backward()
    optimizer.step()
    assert (lstm.cell.kernel >= 0).all()
    assert (lstm.cell.recurrent_kernel.norm(dim=0) <= 0.1 + 1e-6).all()


def test_activity_regularizer_is_divided_by_batch_size():
    dense = layers.Dense(2, activity_regularizer=seqlab.regularizers.l1(1.0))
    output = dense(torch.randn(4, 3))
    torch.testing.assert_close(dense.losses[0], output.abs().sum() / 4)


def test_trainable_false_freezes_weights():
    model = seqlab.Sequential([layers.Embedding(10, 3), layers.LSTM(2), layers.Dense(1)])
    model.build((None, None))
    model.layers[0].trainable = False
    assert sum(w.numel() for w in model.non_trainable_weights) == 30
    assert "Non-trainable params: 30" in model.summary(print_fn=None)


def test_config_round_trip_rebuilds_the_same_model():
    model = seqlab.Sequential([layers.Embedding(20, 4, mask_zero=True),
                               layers.Bidirectional(layers.GRU(3, reset_after=False, return_sequences=True),
                                                    merge_mode="sum"),
                               layers.LSTM(2, peephole=True, dropout=0.1), layers.Dense(1, activation="sigmoid")])
    model.build((None, None))
    twin = seqlab.Sequential.from_config(model.get_config())
    twin.set_weights(model.get_weights())
    model.eval(), twin.eval()
    ids = torch.tensor([[3, 4, 5, 0], [1, 2, 0, 0]])
    torch.testing.assert_close(twin(ids), model(ids))
    assert twin.get_config() == model.get_config()


def test_summary_table_lists_layers_shapes_and_totals():
    model = seqlab.Sequential([layers.Embedding(1000, 32, input_length=10), layers.SimpleRNN(32),
                               layers.Dense(1)])
    text = model.summary(print_fn=None)
    assert "embedding (Embedding)" in text and "(None, 10, 32)" in text
    assert "simple_rnn (SimpleRNN)" in text and "(None, 32)" in text
    assert "Total params: 34,113" in text


def test_keras2_input_arguments_build_the_model():
    model = seqlab.Sequential([layers.SimpleRNN(3, input_shape=(2, 10))])
    assert model.built and model.count_params() == 42
    model = seqlab.Sequential([layers.LSTM(4, batch_input_shape=(8, 5, 3))])
    assert model.built and model.build_input_shape == (8, 5, 3)
    model = seqlab.Sequential([layers.Dense(2, input_dim=7)])
    assert model.count_params() == 16
    model = seqlab.Sequential([layers.Input(shape=(None,)), layers.Embedding(50, 4), layers.GRU(2)])
    assert model.built and model.count_params() == 200 + 3 * 2 * (4 + 2 + 2)


def test_dropout_layer_scales_in_training_and_is_identity_in_eval():
    torch.manual_seed(7)
    dropout = layers.Dropout(0.25)
    x = torch.ones(1000, 8)
    dropped = dropout(x)
    torch.testing.assert_close(dropped.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert abs((dropped == 0).float().mean().item() - 0.25) < 0.03
    dropout.eval()
    assert torch.equal(dropout(x), x)
    shared = layers.Dropout(0.5, noise_shape=(None, 1, None))(torch.ones(2, 6, 4))
    assert torch.equal(shared, shared[:, :1].expand_as(shared))  # same features dropped at every step


def test_time_distributed_applies_the_layer_to_every_step():
    dense = layers.Dense(3)
    wrapped = layers.TimeDistributed(dense)
    x = torch.randn(2, 5, 4)
    outputs = wrapped(x)
    assert outputs.shape == (2, 5, 3)
    torch.testing.assert_close(outputs[:, 2], dense(x[:, 2]))
    assert wrapped.count_params() == 15


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_layers_build_on_the_input_device_and_match_cpu():
    torch.manual_seed(8)
    model = seqlab.Sequential([layers.Embedding(30, 8, mask_zero=True),
                               layers.Bidirectional(layers.LSTM(6, return_sequences=True)),
                               layers.GRU(4, reset_after=False), layers.Dense(2)])
    ids = torch.tensor([[3, 4, 5, 0], [0, 7, 8, 9]])
    expected = model(ids)
    on_gpu = seqlab.Sequential.from_config(model.get_config())
    result = on_gpu(ids.cuda())
    assert all(w.is_cuda for w in on_gpu.weights)
    on_gpu.set_weights(model.get_weights())
    torch.testing.assert_close(on_gpu(ids.cuda()).cpu(), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(on_gpu(ids.numpy()).cpu(), expected, atol=1e-5, rtol=0)  # numpy ids follow
    assert result.is_cuda
    gru = on_gpu.layers[2]  # a CPU mask follows the inputs onto the GPU
    features = torch.randn(2, 4, 12, device="cuda")
    cpu_mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    torch.testing.assert_close(gru(features, mask=cpu_mask), gru(features, mask=cpu_mask.cuda()))
