"""Bad input gets an error that says what was wrong and what to do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import seqlab
from seqlab import layers


def test_wrong_input_rank_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"rank 3, \(batch, time, features\).*add a batch axis"):
        layers.LSTM(4)(torch.randn(10, 3))


def test_float_input_to_embedding():
    with pytest.raises(TypeError, match="integer token ids.*ids.long()"):
        layers.Embedding(10, 3)(torch.rand(2, 4))


def test_out_of_range_token_id():
    with pytest.raises(IndexError, match=r"token id 12 is outside \[0, 10\)"):
        layers.Embedding(10, 3)(torch.tensor([[1, 12]]))


def test_integer_input_to_rnn_suggests_an_embedding():
    with pytest.raises(TypeError, match="put an Embedding layer first"):
        layers.GRU(4)(torch.ones(2, 3, 5, dtype=torch.long))


def test_mask_shape_mismatch():
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(2, 3\).*got \(2, 4\)"):
        layers.SimpleRNN(2)(torch.randn(2, 3, 5), mask=torch.ones(2, 4, dtype=torch.bool))


def test_feature_size_change_after_build():
    rnn = layers.SimpleRNN(2)
    rnn(torch.randn(1, 3, 5))
    with pytest.raises(ValueError, match="built for 5 features per step"):
        rnn(torch.randn(1, 3, 6))


def test_set_weights_names_the_weight_and_the_expected_shape():
    lstm = layers.LSTM(4)
    lstm.build((None, None, 3))
    before = lstm.get_weights()
    # Valid new values for kernel and bias around the bad recurrent kernel: a set_weights that
    # copied weights one by one before finding the bad shape would change the kernel.
    weights = [w + 1.0 for w in before]
    weights[1] = np.zeros((4, 12))
    with pytest.raises(ValueError, match=r"'lstm/lstm_cell/recurrent_kernel' expects shape \(4, 16\), got \(4, 12\)"):
        lstm.set_weights(weights)
    with pytest.raises(ValueError, match="got 2 arrays but the layer has 3 weights"):
        lstm.set_weights(weights[:2])
    for unchanged, after in zip(before, lstm.get_weights()):  # nothing was half-written
        np.testing.assert_array_equal(after, unchanged)


def test_set_weights_before_build():
    with pytest.raises(ValueError, match=r"no weights yet.*build\(input_shape\)"):
        layers.GRU(3).set_weights([])


def test_unknown_names():
    with pytest.raises(ValueError, match="Unknown activation 'tanhh'.*'tanh'"):
        layers.SimpleRNN(3, activation="tanhh")
    with pytest.raises(ValueError, match="Unknown initializer 'glorot'.*'glorot_uniform'"):
        layers.Dense(3, kernel_initializer="glorot")
    with pytest.raises(ValueError, match="Unknown regularizer"):
        layers.Dense(3, kernel_regularizer="l3")
    with pytest.raises(ValueError, match="Unknown constraint"):
        layers.Dense(3, kernel_constraint="positive")
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['untis'\]"):
        layers.LSTM(3, untis=4)


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="positive number of units"):
        layers.LSTM(0)
    with pytest.raises(ValueError, match=r"recurrent_dropout must be in \[0, 1\)"):
        layers.GRU(3, recurrent_dropout=1.5)
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        layers.Bidirectional(layers.LSTM(3), merge_mode="max")
    with pytest.raises(ValueError, match="go_backwards=True"):
        layers.Bidirectional(layers.LSTM(3), backward_layer=layers.LSTM(3))


def test_initial_state_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"initial_state must be 2 tensor\(s\) of shapes \[\(2, 3\), \(2, 3\)\]"):
        layers.LSTM(3)(torch.randn(2, 4, 1), initial_state=[torch.zeros(2, 3)])


def test_summary_of_an_unbuilt_model():
    with pytest.raises(ValueError, match="no weights yet"):
        seqlab.Sequential([layers.LSTM(3)]).summary()
