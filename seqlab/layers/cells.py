"""Recurrent cells: the one-step math of SimpleRNN, LSTM and GRU.

A cell maps one time step's input `x_t (batch, features)` and the previous
states to an output and new states. Weights are stored in Keras' layout,
`kernel (features, k*units)`, `recurrent_kernel (units, k*units)`, so
`get_weights()` moves between Keras and seqlab unchanged.

Each cell splits its step in two, so the `RNN` driver can hoist the input
half out of the time loop as one large matrix product:

    project_inputs(x)          = x W_x + b          any leading shape, e.g. (batch, time, F)
    step(x_proj_t, states)     = the recurrent half, one time step

and `cell(x_t, states)` is `step(project_inputs(x_t), states)`.

Each cell states the `equation` its step computes (`seqlab.kernels.equations`),
from which every fast path decides whether it can stand in for `step`; a
subclass that rewrites `step` (or the input half) states None, and always
runs its own `step`. A cell also keeps its weights in PyTorch's native layout
(`native_weights()`), converted once and reused outside autograd until a
weight changes (PyTorch's count of writes, `_version`; an optimizer step
counts its writes, fused or not, through a post-hook registered here).

    >>> cell = LSTMCell(8)
    >>> h, (h, c) = cell(torch.randn(2, 5), cell.get_initial_state(2))
    >>> h.shape
    torch.Size([2, 8])
"""

from __future__ import annotations

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from seqlab import activations, constraints, initializers, regularizers
from seqlab.kernels import layout
from seqlab.kernels.equations import Equation, Form
from seqlab.layers.base import Layer, Shape
from seqlab.layers.core import dropout_mask

States = list  # list of (batch, units) tensors


class RecurrentCell(Layer):
    """What every cell shares: units, activations, the three weights and dropout rates.

    A subclass writes its math in `step(projected, states, recurrent_mask,
    recurrent_kernel)`, which returns `(output, new_states)` for one time step.
    `recurrent_kernel` (default: the cell's own) lets generation pass a copy of
    W_h in bfloat16 (`Stepper(precision="bfloat16")`). SimpleRNN, LSTM and GRU
    cells also declare that math as their `equation`, so the fast paths can run
    it; a cell declaring none (this class's default) runs its `step`.
    """

    gates = 1  # how many blocks of `units` the kernels hold
    # Kernels stored as their transposes (`Layer.add_weight(stored_transposed=True)`) where training
    # mostly runs PyTorch's native kernel, whose weights are `(k*units, F)`: no layout copies per step.
    native_storage = False

    def __init__(self, units: int, activation="tanh", use_bias: bool = True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not float(units).is_integer() or int(units) <= 0:
            raise ValueError(f"{type(self).__name__} needs a positive number of units (a whole number), got {units!r}.")
        for rate_name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{rate_name} must be in [0, 1), got {rate}.")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._native_cache: tuple | None = None  # (the weights' identities and versions, their native layout)

    # -- weights
    @property
    def state_size(self) -> list[int]:
        return [self.units]

    def build(self, input_shape: Shape) -> None:
        if input_shape[-1] is None:
            raise ValueError(f"{self.name} needs a known feature size, got input shape {input_shape}.")
        width = self.gates * self.units
        self.add_weight("kernel", (input_shape[-1], width), self.kernel_initializer,
                        self.kernel_regularizer, self.kernel_constraint, stored_transposed=self.native_storage)
        self.add_weight("recurrent_kernel", (self.units, width), self.recurrent_initializer,
                        self.recurrent_regularizer, self.recurrent_constraint, stored_transposed=self.native_storage)
        if self.use_bias:
            self.add_weight("bias", self.bias_shape(), self.make_bias_initializer(),
                            self.bias_regularizer, self.bias_constraint)
        self.built = True

    def bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    def make_bias_initializer(self):
        return self.bias_initializer

    @property
    def input_size(self) -> int:
        return self.kernel.shape[0]

    # -- what the step computes, and the weights in PyTorch's layout
    @property
    def equation(self) -> Equation | None:
        """What `step` computes (`seqlab.kernels.equations`); None: only `step` itself knows (a custom cell)."""
        return None

    def _keeps_step_of(self, declaring: type) -> bool:
        """Whether this cell computes `declaring`'s step: no subclass rewrote the step or its input half."""
        return all(getattr(type(self), name) is getattr(declaring, name)
                   for name in ("step", "project_inputs", "input_bias"))

    def native_weights(self) -> list[torch.Tensor]:
        """`[weight_ih, weight_hh, bias_ih, bias_hh]` (`seqlab.kernels.layout`; no biases with use_bias=False).

        Differentiable while gradients are recorded; outside autograd the conversion is kept until
        a weight is replaced or written (its `_version`, which every optimizer step counts).
        """
        weights = self.own_weights()
        if torch.is_grad_enabled() and any(w.requires_grad for w in weights):
            return self._to_native()
        key = tuple((w.data_ptr(), w._version, w.dtype, w.device) for w in weights)
        if self._native_cache is None or self._native_cache[0] != key:
            with torch.no_grad():
                self._native_cache = (key, [w.contiguous() for w in self._to_native()])
        return self._native_cache[1]

    def _to_native(self) -> list[torch.Tensor]:
        return layout.to_native(self.equation.form, self.kernel, self.recurrent_kernel,
                                self.bias if self.use_bias else None)

    # -- the step
    def input_bias(self) -> torch.Tensor | None:
        """`b_x`, the bias the input half adds (None with use_bias=False)."""
        return self.bias if self.use_bias else None

    def project_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """`x W_x + b_x`: the input half of every step, for any leading shape."""
        projected = inputs @ self.kernel
        bias = self.input_bias()
        return projected if bias is None else projected + bias

    def forward(self, inputs: torch.Tensor, states: States,
                training: bool | None = None) -> tuple[torch.Tensor, States]:
        """One step on `inputs (batch, features)`, as Keras' `cell(inputs, states)`."""
        states = [states] if isinstance(states, torch.Tensor) else list(states)
        input_mask, recurrent_mask = self.dropout_masks(inputs, training)
        if input_mask is not None:
            inputs = inputs * input_mask
        return self.step(self.project_inputs(inputs), states, recurrent_mask)

    def get_initial_state(self, batch_size: int, dtype: torch.dtype | None = None,
                          device: torch.device | None = None) -> States:
        """Zeros of shape (batch, units) for every state."""
        if self.built:
            dtype, device = dtype or self.kernel.dtype, device or self.kernel.device
        return [torch.zeros(batch_size, size, dtype=dtype, device=device) for size in self.state_size]

    # -- dropout (Keras: one mask per sequence, reused at every step, training only)
    def dropout_masks(self, inputs: torch.Tensor, training: bool | None):
        """Keep-masks for inputs `(batch, features)` and recurrent state `(batch, units)`."""
        training = self.training if training is None else training
        if not training:
            return None, None
        batch = inputs.shape[0]
        generator = self._seeded_generator()
        input_mask = recurrent_mask = None
        if self.dropout > 0:
            input_mask = dropout_mask((batch, inputs.shape[-1]), self.dropout, inputs, generator)
        if self.recurrent_dropout > 0:
            recurrent_mask = dropout_mask((batch, self.units), self.recurrent_dropout, inputs, generator)
        return input_mask, recurrent_mask

    def _seeded_generator(self) -> torch.Generator | None:
        if self.seed is not None and self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        return self._generator

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        })
        return config


def _count_optimizer_writes(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    """After any optimizer's step: count a write on every parameter it stepped.

    PyTorch's fused kernels (`Adam(fused=True)`) write parameters without counting, and the
    cells' native-layout caches key on that count; counting twice is harmless.
    """
    torch.autograd.graph.increment_version(
        [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None])


register_optimizer_step_post_hook(_count_optimizer_writes)  # global, once: no optimizer can skip it


def _masked(h: torch.Tensor, recurrent_mask: torch.Tensor | None) -> torch.Tensor:
    return h if recurrent_mask is None else h * recurrent_mask


def _times(h: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """`h @ kernel` in h's dtype. A kernel in a narrower dtype (generation's bfloat16 copy) multiplies h
    rounded to that dtype, with the products summed in float32 by the backend (oneDNN on CPU)."""
    if kernel.dtype == h.dtype:
        return h @ kernel
    return (h.to(kernel.dtype) @ kernel).to(h.dtype)


class SimpleRNNCell(RecurrentCell):
    """Elman cell: `h_t = tanh(x_t W_x + h_{t-1} W_h + b)`.

    Shapes: x_t (batch, F), h (batch, units), kernel W_x (F, units),
    recurrent_kernel W_h (units, units), bias b (units,). The output is h_t.
    """

    @property
    def equation(self) -> Equation | None:
        return Equation(Form.SIMPLE, self.activation) if self._keeps_step_of(SimpleRNNCell) else None

    def step(self, projected, states, recurrent_mask=None, recurrent_kernel=None):
        (h_prev,) = states
        kernel = self.recurrent_kernel if recurrent_kernel is None else recurrent_kernel
        h = self.activation(projected + _times(_masked(h_prev, recurrent_mask), kernel))
        return h, [h]


class LSTMCell(RecurrentCell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), Keras' gate order i, f, c, o.

        i   = σ(x_t W_xi + h_{t-1} W_hi + b_i)        input gate
        f   = σ(x_t W_xf + h_{t-1} W_hf + b_f)        forget gate
        c~  = tanh(x_t W_xc + h_{t-1} W_hc + b_c)     candidate cell state
        o   = σ(x_t W_xo + h_{t-1} W_ho + b_o)        output gate
        c_t = f * c_{t-1} + i * c~
        h_t = o * tanh(c_t)

    σ is `recurrent_activation` (sigmoid), tanh is `activation`. Shapes:
    kernel (F, 4u), recurrent_kernel (u, 4u), bias (4u,); states [h, c], each
    (batch, u). `unit_forget_bias=True` starts b_f at 1 (Jozefowicz et al. 2015).
    With `peephole=True` (Gers & Schmidhuber 2000) the gates also see the cell:
    i and f add `p_i * c_{t-1}`, `p_f * c_{t-1}`, and o adds `p_o * c_t`, with
    three extra weights of shape (u,).
    """

    gates = 4
    native_storage = True  # oneDNN's LSTM trains it (seqlab.kernels): 3% of config A's step was layout copies

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid",
                 unit_forget_bias: bool = True, peephole: bool = False, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = unit_forget_bias
        self.peephole = peephole

    @property
    def state_size(self) -> list[int]:
        return [self.units, self.units]

    @property
    def equation(self) -> Equation | None:
        if not self._keeps_step_of(LSTMCell):
            return None
        return Equation(Form.LSTM_PEEPHOLE if self.peephole else Form.LSTM, self.activation,
                        self.recurrent_activation)

    def build(self, input_shape: Shape) -> None:
        super().build(input_shape)
        if self.peephole:
            for gate in ("input", "forget", "output"):
                self.add_weight(f"{gate}_gate_peephole_weights", (self.units,), self.kernel_initializer)

    def make_bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        return _UnitForgetBias(self.bias_initializer, self.units)

    def step(self, projected, states, recurrent_mask=None, recurrent_kernel=None):
        h_prev, c_prev = states
        kernel = self.recurrent_kernel if recurrent_kernel is None else recurrent_kernel
        z = projected + _times(_masked(h_prev, recurrent_mask), kernel)
        z_i, z_f, z_c, z_o = z.chunk(4, dim=-1)
        if self.peephole:
            z_i = z_i + self.input_gate_peephole_weights * c_prev
            z_f = z_f + self.forget_gate_peephole_weights * c_prev
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * c_prev + i * self.activation(z_c)
        if self.peephole:
            z_o = z_o + self.output_gate_peephole_weights * c
        o = self.recurrent_activation(z_o)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias, "peephole": self.peephole}


class _UnitForgetBias(initializers.Initializer):
    """LSTM bias: the user's initializer for i, c, o and ones for the forget gate f."""

    def __init__(self, base: initializers.Initializer, units: int):
        super().__init__()
        self.base, self.units = base, units

    def fill(self, tensor, generator):
        u = self.units
        tensor[:u] = self.base((u,), tensor.dtype, tensor.device)
        tensor[u:2 * u] = 1.0
        tensor[2 * u:] = self.base((2 * u,), tensor.dtype, tensor.device)


class GRUCell(RecurrentCell):
    """Gated recurrent unit (Cho et al. 2014), Keras' gate order z, r, h.

        z   = σ(x_t W_xz + h_{t-1} W_hz + b_z)           update gate
        r   = σ(x_t W_xr + h_{t-1} W_hr + b_r)           reset gate
        h~  = tanh(x_t W_xh + r * (h_{t-1} W_hh + b_hh)) reset_after=True (default, cuDNN's)
        h~  = tanh(x_t W_xh + (r * h_{t-1}) W_hh + b_h)  reset_after=False (the original paper)
        h_t = z * h_{t-1} + (1 - z) * h~

    Shapes: kernel (F, 3u), recurrent_kernel (u, 3u); bias (3u,) with
    reset_after=False, (2, 3u) with reset_after=True (row 0 the input bias,
    row 1 the recurrent bias).
    """

    gates = 3

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid",
                 reset_after: bool = True, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = reset_after

    @property
    def equation(self) -> Equation | None:
        if not self._keeps_step_of(GRUCell):
            return None
        return Equation(Form.GRU_RESET_AFTER if self.reset_after else Form.GRU_RESET_BEFORE, self.activation,
                        self.recurrent_activation)

    def bias_shape(self) -> tuple[int, ...]:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def input_bias(self):
        if not self.use_bias:
            return None
        return self.bias[0] if self.reset_after else self.bias

    def step(self, projected, states, recurrent_mask=None, recurrent_kernel=None):
        (h_prev,) = states
        u = self.units
        kernel = self.recurrent_kernel if recurrent_kernel is None else recurrent_kernel
        h_dropped = _masked(h_prev, recurrent_mask)
        x_z, x_r, x_h = projected.chunk(3, dim=-1)
        if self.reset_after:
            inner = _times(h_dropped, kernel)
            if self.use_bias:
                inner = inner + self.bias[1]
            r_z, r_r, r_h = inner.chunk(3, dim=-1)
        else:
            r_z, r_r = _times(h_dropped, kernel[..., :2 * u]).chunk(2, dim=-1)
        z = self.recurrent_activation(x_z + r_z)
        r = self.recurrent_activation(x_r + r_r)
        if self.reset_after:
            candidate = self.activation(x_h + r * r_h)
        else:
            candidate = self.activation(x_h + _times(r * h_dropped, kernel[..., 2 * u:]))
        h = z * h_prev + (1 - z) * candidate
        return h, [h]

    def get_config(self):
        return {**super().get_config(),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "reset_after": self.reset_after}
