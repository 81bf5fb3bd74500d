"""Stateful single-step execution gives exactly what the full prefix gives."""

from __future__ import annotations

import pytest
import torch

import seqlab
from seqlab import layers
from seqlab.kernels.stepping import Stepper, WindowStepper, stepper_for


@pytest.mark.parametrize("cell", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_steps_equal_running_the_whole_prefix(cell):
    torch.manual_seed(0)
    extra = {"reset_after": False} if cell is layers.GRU else {}
    model = seqlab.Sequential([layers.Embedding(12, 5), cell(7, return_sequences=True, **extra),
                               layers.Dropout(0.3), cell(6, return_sequences=True), layers.Dense(12)])
    model.build((None, None))
    model.eval()
    ids = torch.randint(0, 12, (3, 9))
    full = model(ids)
    stepper = Stepper(model, batch_size=3)
    torch.testing.assert_close(stepper.prime(ids[:, :4]), full[:, 3], rtol=1e-5, atol=1e-6)
    for t in range(4, 9):
        torch.testing.assert_close(stepper.step(ids[:, t]), full[:, t], rtol=1e-5, atol=1e-6)
    stepper.reset()
    for t in range(9):
        outputs = stepper.step(ids[:, t])
    torch.testing.assert_close(outputs, full[:, -1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_steps_hold_the_state_at_padding_as_the_masked_model_does(dtype):
    """Embedding(mask_zero=True): a 0 id holds every layer's state and repeats its last output."""
    torch.manual_seed(3)
    model = seqlab.Sequential([layers.Embedding(12, 5, mask_zero=True, dtype=dtype),
                               layers.GRU(6, return_sequences=True, dtype=dtype),
                               layers.LSTM(4, return_sequences=True, dtype=dtype), layers.Dense(12, dtype=dtype)])
    model.build((None, None))
    model.eval()
    ids = torch.randint(1, 12, (3, 8))
    ids[0, 4] = ids[1, 0] = ids[2, 6] = 0  # padding inside, at the start and near the end
    full = model(ids)
    tolerance = {torch.float32: 1e-5, torch.float64: 1e-10}[dtype]
    stepper = Stepper(model, batch_size=3)
    torch.testing.assert_close(stepper.prime(ids[:, :3]), full[:, 2], rtol=tolerance, atol=tolerance)
    for t in range(3, 8):
        torch.testing.assert_close(stepper.step(ids[:, t]), full[:, t], rtol=tolerance, atol=tolerance)


def test_stepper_rejects_models_it_cannot_step():
    with pytest.raises(ValueError, match="starts with an Embedding"):
        Stepper(seqlab.Sequential([layers.LSTM(3)]))
    bidirectional = seqlab.Sequential([layers.Embedding(5, 2), layers.Bidirectional(layers.LSTM(3, return_sequences=True))])
    with pytest.raises(ValueError, match="at least one recurrent layer"):
        Stepper(bidirectional)
    backwards = seqlab.Sequential([layers.Embedding(5, 2), layers.LSTM(3, go_backwards=True)])
    backwards.build((None, None))
    with pytest.raises(ValueError, match="reads backwards"):
        Stepper(backwards)


def causal_transformer(context: int) -> seqlab.Sequential:
    torch.manual_seed(1)
    model = seqlab.Sequential([layers.Embedding(12, 8),
                               *layers.transformer_stack(8, 2, 16, num_blocks=2, max_len=context, causal=True,
                                                         norm_first=True),
                               layers.Dense(12)])
    model.build((None, None))
    return model.eval()


def test_window_steps_equal_the_prefix_then_the_last_context_tokens():
    model = causal_transformer(context=6)
    ids = torch.randint(1, 12, (3, 10))
    stepper = stepper_for(model)
    assert isinstance(stepper, WindowStepper) and stepper.context == 6
    with torch.no_grad():
        torch.testing.assert_close(stepper.prime(ids[:, :4]), model(ids[:, :4])[:, -1], rtol=1e-5, atol=1e-6)
        for t in range(4, 10):  # up to 6 tokens: the whole prefix; then the last 6
            expected = model(ids[:, max(0, t - 5):t + 1])[:, -1]
            torch.testing.assert_close(stepper.step(ids[:, t]), expected, rtol=1e-5, atol=1e-6)
    assert stepper.window.shape == (3, 6) and torch.equal(stepper.window, ids[:, 4:])


def test_stepper_for_needs_a_recurrent_or_causal_model():
    encoder = seqlab.Sequential([layers.Embedding(12, 8), layers.TransformerBlock(8, 2, 16), layers.Dense(12)])
    with pytest.raises(ValueError, match="neither"):
        stepper_for(encoder)  # bidirectional attention sees the future: it cannot generate
    sinusoidal = seqlab.Sequential([layers.Embedding(12, 8), layers.PositionalEncoding(),
                                    layers.TransformerBlock(8, 2, 16, causal=True), layers.Dense(12)])
    with pytest.raises(ValueError, match="needs context=N"):
        stepper_for(sinusoidal)
    assert WindowStepper(sinusoidal, context=4).context == 4
