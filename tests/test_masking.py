"""Padding never changes a result when a mask is given.

A padded batch, left- or right-padded, must give every sequence exactly what
that sequence gives alone, unpadded: the final output and states, and (for
`return_sequences`) the outputs at its real steps.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import seqlab
from seqlab import layers

LAYER_TYPES = {"SimpleRNN": layers.SimpleRNN, "LSTM": layers.LSTM, "GRU": layers.GRU}


def pad(sequences: list[torch.Tensor], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (time_i, features) sequences into (batch, max_time, features) with a mask."""
    longest = max(len(s) for s in sequences)
    batch = torch.full((len(sequences), longest, sequences[0].shape[-1]), 99.0, dtype=torch.float64)
    mask = torch.zeros(len(sequences), longest, dtype=torch.bool)
    for row, sequence in enumerate(sequences):
        span = slice(0, len(sequence)) if side == "right" else slice(longest - len(sequence), longest)
        batch[row, span] = sequence
        mask[row, span] = True
    return batch, mask


@settings(max_examples=30, deadline=None)
@given(layer_type=st.sampled_from(sorted(LAYER_TYPES)), side=st.sampled_from(["left", "right"]),
       lengths=st.lists(st.integers(1, 7), min_size=1, max_size=4), go_backwards=st.booleans(),
       reset_after=st.booleans(), seed=st.integers(0, 10_000))
def test_padded_batch_equals_each_sequence_alone(layer_type, side, lengths, go_backwards, reset_after, seed):
    torch.manual_seed(seed)
    extra = {"reset_after": reset_after} if layer_type == "GRU" else {}
    layer = LAYER_TYPES[layer_type](3, return_sequences=True, return_state=True, go_backwards=go_backwards,
                                    dtype="float64", **extra)
    sequences = [torch.randn(length, 2, dtype=torch.float64) for length in lengths]
    batch, mask = pad(sequences, side)
    padded_outputs, *padded_states = layer(batch, mask=mask)
    for row, sequence in enumerate(sequences):
        outputs, *states = layer(sequence[None])
        for padded_state, state in zip(padded_states, states):
            torch.testing.assert_close(padded_state[row], state[0], rtol=0, atol=1e-12)
        real = mask[row].flip(0) if go_backwards else mask[row]
        torch.testing.assert_close(padded_outputs[row][real], outputs[0], rtol=0, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(layer_type=st.sampled_from(sorted(LAYER_TYPES)), side=st.sampled_from(["left", "right"]),
       lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
       merge_mode=st.sampled_from(["concat", "sum", "mul", "ave"]), seed=st.integers(0, 10_000))
def test_bidirectional_padding_is_invisible(layer_type, side, lengths, merge_mode, seed):
    torch.manual_seed(seed)
    bi = layers.Bidirectional(LAYER_TYPES[layer_type](3, return_sequences=True, dtype="float64"),
                              merge_mode=merge_mode)
    last = layers.Bidirectional(LAYER_TYPES[layer_type](3, dtype="float64"), merge_mode=merge_mode)
    sequences = [torch.randn(length, 2, dtype=torch.float64) for length in lengths]
    batch, mask = pad(sequences, side)
    bi.build(batch.shape), last.build(batch.shape)
    last.set_weights(bi.get_weights())
    padded_sequences, padded_last = bi(batch, mask=mask), last(batch, mask=mask)
    for row, sequence in enumerate(sequences):
        torch.testing.assert_close(padded_sequences[row][mask[row]], bi(sequence[None])[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(padded_last[row], last(sequence[None])[0], rtol=0, atol=1e-12)
        # Padded steps of a returned sequence are zeros in both directions (Keras).
        assert torch.all(padded_sequences[row][~mask[row]] == 0)


def test_backward_direction_starts_at_the_last_real_token():
    torch.manual_seed(0)
    backward = layers.LSTM(4, go_backwards=True, dtype="float64")
    sequence = torch.randn(1, 3, 2, dtype=torch.float64)
    padded = torch.cat([sequence, torch.full((1, 4, 2), 50.0, dtype=torch.float64)], dim=1)
    mask = torch.tensor([[True] * 3 + [False] * 4])
    torch.testing.assert_close(backward(padded, mask=mask), backward(sequence), rtol=0, atol=1e-12)
    assert not torch.allclose(backward(padded), backward(sequence))


def test_embedding_mask_flows_through_sequential():
    torch.manual_seed(1)
    model = seqlab.Sequential([layers.Embedding(20, 4, mask_zero=True),
                               layers.Bidirectional(layers.GRU(3, return_sequences=True)),
                               layers.Dense(5), layers.LSTM(2)])
    ids = torch.tensor([[4, 7, 9, 0, 0], [0, 0, 5, 6, 2]])
    expected = torch.cat([model(ids[:1, :3]), model(ids[1:, 2:])])
    torch.testing.assert_close(model(ids), expected, rtol=0, atol=1e-6)
    without_mask = seqlab.Sequential([layers.Embedding(20, 4), *list(model.layers)[1:]])
    without_mask.build((None, None))
    without_mask.layers[0].set_weights(model.layers[0].get_weights())
    assert not torch.allclose(without_mask(ids), expected, atol=1e-4)


def test_mask_attached_to_tensors_reaches_the_next_layer():
    embedding = layers.Embedding(10, 3, mask_zero=True)
    rnn = layers.SimpleRNN(2, return_sequences=True)
    ids = torch.tensor([[1, 2, 0]])
    vectors = embedding(ids)
    assert vectors._keras_mask.tolist() == [[True, True, False]]
    outputs = rnn(vectors)
    torch.testing.assert_close(outputs[:, 2], outputs[:, 1])  # the padded step repeats the last output
    assert outputs._keras_mask.tolist() == [[True, True, False]]


def test_a_fully_masked_sequence_keeps_the_initial_state():
    lstm = layers.LSTM(3, return_state=True)
    output, h, c = lstm(torch.randn(2, 4, 2), mask=torch.tensor([[True] * 4, [False] * 4]))
    assert torch.all(output[1] == 0) and torch.all(h[1] == 0) and torch.all(c[1] == 0)
    assert torch.all(output[0] != 0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_masked_gradients_ignore_padding(side):
    torch.manual_seed(2)
    gru = layers.GRU(3, dtype="float64")
    sequence = torch.randn(1, 3, 2, dtype=torch.float64, requires_grad=True)
    filler = torch.randn(1, 2, 2, dtype=torch.float64, requires_grad=True)
    padded = torch.cat([sequence, filler] if side == "right" else [filler, sequence], dim=1)
    mask = torch.tensor([[True] * 3 + [False] * 2]) if side == "right" else torch.tensor([[False] * 2 + [True] * 3])
    gru(padded, mask=mask).sum().backward()
    assert torch.all(filler.grad == 0)
    assert torch.any(sequence.grad != 0)
