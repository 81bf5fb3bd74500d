"""`torch.autograd.gradcheck` in float64: analytic gradients equal finite differences."""

from __future__ import annotations

import pytest
import torch

from seqlab import layers

CELLS = {
    "SimpleRNNCell": lambda: layers.SimpleRNNCell(3, dtype="float64"),
    "LSTMCell": lambda: layers.LSTMCell(3, dtype="float64"),
    "LSTMCell-peephole": lambda: layers.LSTMCell(3, peephole=True, dtype="float64"),
    "GRUCell-reset_after": lambda: layers.GRUCell(3, dtype="float64"),
    "GRUCell-reset_before": lambda: layers.GRUCell(3, reset_after=False, dtype="float64"),
}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_gradients_match_finite_differences(name):
    torch.manual_seed(0)
    cell = CELLS[name]()
    cell.build((None, 4))
    x = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    states = [torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in cell.state_size]
    count = len(states)

    def step(x, *rest):
        """The cell as a function of its input, its states and all its weights."""
        step_states, values = rest[:count], rest[count:]
        output, new_states = torch.func.functional_call(
            cell, dict(zip(cell._weight_names, values)), (x, list(step_states)))
        return (output, *new_states)

    values = [w.detach().clone().requires_grad_(True) for w in cell.weights]
    if cell.use_bias:  # random biases, so no gate sits at a special point
        values[2] = torch.randn_like(values[2], requires_grad=True)
    assert torch.autograd.gradcheck(step, (x, *states, *values), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("layer", [
    lambda: layers.LSTM(2, return_sequences=True, dtype="float64"),
    lambda: layers.Bidirectional(layers.GRU(2, reset_after=False, return_sequences=True, dtype="float64")),
])
def test_masked_layer_gradients_match_finite_differences(layer):
    torch.manual_seed(1)
    module = layer()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True, False], [False, True, True, True]])
    assert torch.autograd.gradcheck(lambda x: module(x, mask=mask), (x,), eps=1e-6, atol=1e-7)
