"""A cell's declared equation decides every fast path; a cell that rewrites `step` runs its own step.

Silent bug 3 of issue 21: a subclass of `LSTMCell`, `GRUCell` or `SimpleRNNCell` that overrides
`step` ran PyTorch's kernel (or the C++ loop, or the paired loop, or the Stepper's compiled step)
with its parent's math. Here each such subclass, under `execution="auto"`, must give what the
reference loop (its own `step`, by definition) gives: in `RNN`, in `Bidirectional`, in training
and in inference, with and without padding, and in the `Stepper`.
"""

from __future__ import annotations

import pytest
import torch

import seqlab
from seqlab import kernels, layers
from seqlab.generation import Stepper
from seqlab.kernels.equations import Equation, Form
from seqlab.layers.cells import GRUCell, LSTMCell, SimpleRNNCell


class HalvedLSTMCell(LSTMCell):
    """LSTM whose output (and carried h) is halved: not the equation the fast paths compute."""

    def step(self, projected, states, recurrent_mask=None, recurrent_kernel=None):
        h, (_, c) = super().step(projected, states, recurrent_mask, recurrent_kernel)
        h = 0.5 * h
        return h, [h, c]


class HalvedGRUCell(GRUCell):
    def step(self, projected, states, recurrent_mask=None, recurrent_kernel=None):
        h, _ = super().step(projected, states, recurrent_mask, recurrent_kernel)
        return 0.5 * h, [0.5 * h]


class SoftsignRNNCell(SimpleRNNCell):
    """SimpleRNN with softsign inside its own step (its `activation` still says tanh)."""

    def step(self, projected, states, recurrent_mask=None, recurrent_kernel=None):
        (h_prev,) = states
        h = torch.nn.functional.softsign(projected + h_prev @ self.recurrent_kernel)
        return h, [h]


CUSTOM_CELLS = {"lstm": HalvedLSTMCell, "gru": HalvedGRUCell, "simple": SoftsignRNNCell}
MASKS = {
    "none": None,
    "right": torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]]).bool(),
    "holes": torch.tensor([[1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1], [0, 1, 1, 0, 1, 1]]).bool(),
}


def _twins(make):
    """The same layer twice, with the same weights: `execution="auto"` and `"reference"`."""
    torch.manual_seed(0)
    auto, reference = make(), make()
    auto.build((3, 6, 2)), reference.build((3, 6, 2))
    reference.set_weights(auto.get_weights())
    kernels.force_execution(reference, "reference")
    return auto, reference


def _assert_same(auto, reference, x, mask, training):
    grad = torch.is_grad_enabled()
    got, expected = auto(x, mask=mask, training=training), reference(x, mask=mask, training=training)
    for a, b in zip(got if isinstance(got, list) else [got], expected if isinstance(expected, list) else [expected]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    if grad:
        for a, b in zip(torch.autograd.grad(sum(t.sum() for t in (got if isinstance(got, list) else [got])),
                                            auto.weights),
                        torch.autograd.grad(sum(t.sum() for t in (expected if isinstance(expected, list)
                                                                    else [expected])), reference.weights)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_standard_cells_declare_their_equation_and_custom_steps_declare_none():
    lstm, peephole = LSTMCell(3), LSTMCell(3, peephole=True)
    assert lstm.equation == Equation(Form.LSTM, torch.tanh, torch.sigmoid)
    assert peephole.equation.form is Form.LSTM_PEEPHOLE
    assert GRUCell(3).equation.form is Form.GRU_RESET_AFTER
    assert GRUCell(3, reset_after=False).equation.form is Form.GRU_RESET_BEFORE
    assert SimpleRNNCell(3, activation="relu").equation == Equation(Form.SIMPLE, torch.relu)

    class SameLSTMCell(LSTMCell):  # a subclass that keeps the step keeps the equation
        pass

    assert SameLSTMCell(3).equation == lstm.equation
    assert all(cell(3).equation is None for cell in CUSTOM_CELLS.values())


@pytest.mark.parametrize("mask_kind", sorted(MASKS))
@pytest.mark.parametrize("kind", sorted(CUSTOM_CELLS))
def test_a_cell_overriding_step_runs_its_own_step_in_rnn(kind, mask_kind):
    auto, reference = _twins(lambda: layers.RNN(CUSTOM_CELLS[kind](4), return_sequences=True, return_state=True))
    x = torch.randn(3, 6, 2)
    _assert_same(auto, reference, x, MASKS[mask_kind], training=True)   # a training step
    with torch.no_grad():
        _assert_same(auto, reference, x, MASKS[mask_kind], training=False)  # inference


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("mask_kind", sorted(MASKS))
@pytest.mark.parametrize("kind", sorted(CUSTOM_CELLS))
def test_a_cell_overriding_step_runs_its_own_step_in_bidirectional(kind, mask_kind, return_sequences):
    def make():  # the backward layer given: a custom cell is not re-created from its config
        return layers.Bidirectional(layers.RNN(CUSTOM_CELLS[kind](4), return_sequences=return_sequences),
                                    backward_layer=layers.RNN(CUSTOM_CELLS[kind](4), go_backwards=True,
                                                              return_sequences=return_sequences))

    auto, reference = _twins(make)
    x = torch.randn(3, 6, 2)
    _assert_same(auto, reference, x, MASKS[mask_kind], training=True)
    with torch.no_grad():
        _assert_same(auto, reference, x, MASKS[mask_kind], training=False)


@pytest.mark.parametrize("kind", sorted(CUSTOM_CELLS))
def test_a_cell_overriding_step_runs_its_own_step_in_the_stepper(kind):
    torch.manual_seed(1)
    model = seqlab.Sequential([layers.Embedding(9, 3), layers.RNN(CUSTOM_CELLS[kind](5), return_sequences=True),
                               layers.Dense(9)])
    model.build((None, None))
    model.eval()
    ids = torch.randint(0, 9, (2, 5))
    kernels.force_execution(model, "reference")
    with torch.no_grad():
        expected = model(ids)
    kernels.force_execution(model, "auto")
    stepper = Stepper(model, batch_size=2)
    got = [stepper.prime(ids[:, :2])] + [stepper.step(ids[:, t]) for t in range(2, 5)]
    torch.testing.assert_close(torch.stack(got, dim=1), expected[:, 1:], rtol=1e-5, atol=1e-6)
