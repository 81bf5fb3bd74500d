"""What a recurrent cell computes, stated once, so that every path decides from it alone.

A cell declares its `equation` (a property of the cell): the form of its step
and the activations inside it, or None when only its own `step` knows what it
computes (a subclass that rewrites `step`), and then every path is its
`step` in the reference loop. The forms (x_t: the projected input, h, c: the
states, σ: `recurrent_activation`, g: `activation`):

    SIMPLE             h_t = g(x_t + h_{t-1} W_h)
    LSTM               i, f, o = σ(·), c~ = g(·);  c_t = f c_{t-1} + i c~;  h_t = o g(c_t)
    LSTM_PEEPHOLE      LSTM with i, f seeing c_{t-1} and o seeing c_t (weights p_i, p_f, p_o)
    GRU_RESET_AFTER    h~ = g(x_h + r * (h_{t-1} W_hh + b_hh))     (cuDNN's; bias (2, 3u))
    GRU_RESET_BEFORE   h~ = g(x_h + (r * h_{t-1}) W_hh)            (the paper's; bias (3u,))

The fast paths compute the standard activations only (`standard_gates`: tanh
and sigmoid; a SimpleRNN tanh or relu); ONNX export writes any activation it
knows. Two cells compute the same step when their equations are equal.

    >>> LSTMCell(8).equation == Equation(Form.LSTM, torch.tanh, torch.sigmoid)
    True
    >>> GRUCell(8, reset_after=False).equation.form, HalvedLSTMCell(8).equation   # a step of its own
    (<Form.GRU_RESET_BEFORE: 'gru_reset_before'>, None)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable

import torch

from seqlab.activations import get as activation_named

TANH, SIGMOID, RELU = torch.tanh, torch.sigmoid, activation_named("relu")


class Form(enum.Enum):
    """The shape of a step's math, whatever its activations (see the module docstring)."""

    SIMPLE = "simple"
    LSTM = "lstm"
    LSTM_PEEPHOLE = "lstm_peephole"
    GRU_RESET_AFTER = "gru_reset_after"
    GRU_RESET_BEFORE = "gru_reset_before"

    @property
    def is_lstm(self) -> bool:
        return self in (Form.LSTM, Form.LSTM_PEEPHOLE)

    @property
    def is_gru(self) -> bool:
        return self in (Form.GRU_RESET_AFTER, Form.GRU_RESET_BEFORE)

    @property
    def state_count(self) -> int:
        """How many state tensors the step carries: [h, c] for an LSTM, [h] otherwise."""
        return 2 if self.is_lstm else 1


@dataclass(frozen=True)
class Equation:
    """A cell's step: its `form` and the activations in it (`recurrent_activation` None for SIMPLE)."""

    form: Form
    activation: Callable
    recurrent_activation: Callable | None = None

    @property
    def standard_gates(self) -> bool:
        """Whether the fast paths' kernels compute these activations: tanh and sigmoid (SimpleRNN: tanh or relu)."""
        if self.form is Form.SIMPLE:
            return self.activation in (TANH, RELU)
        return self.activation is TANH and self.recurrent_activation is SIGMOID


def equation_of(cell) -> Equation | None:
    """`cell.equation`, or None for a cell that declares none (a duck-typed cell without the attribute)."""
    return getattr(cell, "equation", None)


def same_step(forward, backward) -> bool:
    """Whether two cells compute one step equation on weights of the same shapes (one loop can run both)."""
    equation = equation_of(forward)
    return (equation is not None and equation == equation_of(backward)
            and forward.units == backward.units and forward.use_bias == backward.use_bias
            and forward.kernel.shape == backward.kernel.shape and forward.kernel.dtype == backward.kernel.dtype)
