"""Stateful single-step execution gives exactly what the full prefix gives."""

from __future__ import annotations

import pytest
import torch

import seqlab
from seqlab import layers
from seqlab.generation.stepping import Stepper, WindowStepper, stepper_for


@pytest.mark.parametrize("cell", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_steps_equal_running_the_whole_prefix(cell):
    torch.manual_seed(0)
    extra = {"reset_after": False} if cell is layers.GRU else {}
    model = seqlab.Sequential([layers.Embedding(12, 5), cell(7, return_sequences=True, **extra),
                               layers.Dropout(0.3), cell(6, return_sequences=True), layers.Dense(10, activation="relu"),
                               layers.Dropout(0.2), layers.Dense(12), layers.Activation("softmax")])
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
    unbuilt = seqlab.Sequential([layers.Embedding(5, 2), layers.LSTM(3, return_sequences=True), layers.Dense(5)])
    with pytest.raises(ValueError, match=r"needs a built model .*model.build"):
        Stepper(unbuilt)
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
    stepper = WindowStepper(model)
    assert stepper.context == 6
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
    sinusoidal.build((None, None))
    with pytest.raises(ValueError, match="needs context=N"):
        stepper_for(sinusoidal)
    assert WindowStepper(sinusoidal, context=4).context == 4


def recurrent_model(cell, units: int = 32, **options) -> seqlab.Sequential:
    torch.manual_seed(4)
    model = seqlab.Sequential([layers.Embedding(12, 6), cell(units, return_sequences=True, **options),
                               layers.Dense(12)])
    model.build((None, None))
    return model.eval()


@pytest.mark.parametrize("cell, options", [(layers.LSTM, {}), (layers.LSTM, {"peephole": True}), (layers.GRU, {}),
                                           (layers.GRU, {"reset_after": False}), (layers.SimpleRNN, {})])
def test_bfloat16_steps_stay_near_float32(cell, options):
    model = recurrent_model(cell, **options)
    ids = torch.randint(1, 12, (5, 12))
    exact, rounded = Stepper(model, batch_size=5), Stepper(model, batch_size=5, precision="bfloat16")
    largest = 0.0
    for t in range(12):
        expected, got = exact.step(ids[:, t]), rounded.step(ids[:, t])
        largest = max(largest, (expected - got).abs().max().item())
        torch.testing.assert_close(got, expected, rtol=0, atol=2e-2)
    assert largest > 1e-5  # the products really were rounded to bfloat16
    assert all(state.dtype == torch.float32 for states in rounded.states for state in states)


def test_bfloat16_product_rounds_h_and_the_kernel_then_sums_in_float32():
    model = recurrent_model(layers.SimpleRNN, units=64, activation=None)  # h_t = x_t W_x + b + h_{t-1} W_h
    stepper = Stepper(model, batch_size=3, precision="bfloat16")
    h = torch.randn(3, 64)
    stepper.states = [[h]]
    ids = torch.tensor([1, 5, 7])
    stepper.step(ids)
    h_new = stepper.states[0][0].double()
    kernel = model.layers[1].cell.recurrent_kernel.detach()
    product = h.bfloat16().double() @ kernel.bfloat16().double()  # the rounded operands' exact product
    # the float32 sum comes back rounded to bfloat16 (8-bit mantissa: within 2^-8 of it)
    error = (h_new - stepper.table[ids].double() - product).abs()
    assert (error <= 2**-8 * product.abs() + 1e-6).all()
    unrounded = h.double() @ kernel.double()
    assert ((unrounded - product).abs() > 2**-8 * product.abs() + 1e-6).any()  # rounding h and W_h shows


def test_bfloat16_precision_errors():
    model = recurrent_model(layers.LSTM)
    with pytest.raises(ValueError, match="unknown precision 'float16'"):
        Stepper(model, precision="float16")
    double = seqlab.Sequential([layers.Embedding(5, 2, dtype=torch.float64),
                                layers.LSTM(3, return_sequences=True, dtype=torch.float64)])
    double.build((None, None))
    with pytest.raises(ValueError, match="from a float32 model; this one is torch.float64"):
        Stepper(double, precision="bfloat16")

    class CustomCell(seqlab.layers.cells.SimpleRNNCell):
        def step(self, projected, states, recurrent_mask=None):  # its own step (no recurrent_kernel argument)
            return super().step(projected, states, recurrent_mask)

    custom = seqlab.Sequential([layers.Embedding(5, 2), layers.RNN(CustomCell(3), return_sequences=True)])
    custom.build((None, None))
    with pytest.raises(ValueError, match="needs SimpleRNN, LSTM or GRU cells; .* has a CustomCell"):
        Stepper(custom, precision="bfloat16")
    with pytest.raises(ValueError, match="applies to recurrent models"):
        stepper_for(causal_transformer(context=4), precision="bfloat16")


def test_a_custom_cell_without_a_recurrent_kernel_argument_steps_in_float32():
    """A user's cell states `step(projected, states, recurrent_mask=None)` only: the float32 Stepper calls it so."""

    class LeakyCell(seqlab.layers.cells.RecurrentCell):
        def step(self, projected, states, recurrent_mask=None):
            (h_prev,) = states
            h = 0.5 * h_prev + torch.tanh(projected + h_prev @ self.recurrent_kernel)
            return h, [h]

    torch.manual_seed(7)
    model = seqlab.Sequential([layers.Embedding(6, 3), layers.RNN(LeakyCell(4), return_sequences=True)])
    model.build((None, None))
    ids = torch.tensor([[1, 4, 2, 5]])
    stepper = Stepper(model)
    got = [stepper.prime(ids[:, :1])] + [stepper.step(ids[:, t]) for t in range(1, 4)]
    torch.testing.assert_close(torch.stack(got, dim=1), model(ids), rtol=1e-6, atol=1e-6)
