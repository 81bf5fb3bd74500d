"""The `RNN` driver and the layers `SimpleRNN`, `LSTM`, `GRU`.

`RNN(cell)` runs a cell over the time axis of `(batch, time, features)`
inputs (`(time, batch, features)` with `time_major=True`):

    states = initial_state, or the carried state (stateful), or zeros
    for t in 1..T:   output_t, states = cell(x_t, states)

and returns the last output `(batch, units)`, or every output
`(batch, time, units)` with `return_sequences=True`, followed by the final
states with `return_state=True` (`[output, h, c]` for an LSTM).

Keras' semantics, kept exactly:
- A mask `(batch, time)` (True = real token) makes padded steps invisible:
  there the states carry through unchanged and the output repeats the
  previous step's output (zeros before the first real token; zeros at every
  padded step with `zero_output_for_mask=True`, which Bidirectional sets when
  it returns sequences). Left- and right-padded batches therefore give each
  sequence's own result.
- `go_backwards=True` reads the sequence (and mask) from the end; the returned
  sequence is in that reversed order.
- `stateful=True` starts each call from the previous call's final states
  (detached); `reset_states()` returns them to zero.
- `dropout` / `recurrent_dropout` draw one mask per sequence, reused at every
  step, in training mode only.

Execution: `seqlab.kernels.reference_loop` is the reference, the definition
of correct. `execution="auto"` (the default) runs PyTorch's native kernel
where it computes the cell's equation (`seqlab.kernels.native`), else seqlab's
compiled C++ loop (`seqlab.kernels.fused`), else the reference loop;
`execution="native"`, `"fused"` or `"reference"` forces a path. One policy
decides (`seqlab.kernels.paths.choose`), for this layer and for `Bidirectional`.

The protocol a wrapper uses (`Bidirectional`), each step public:
`check_inputs(inputs)` (validated, cast to the weights' dtype),
`analyse_mask(mask, batch, time)` (a `seqlab.kernels.masks.Padding`, which
`forward(mask=...)` also accepts, already analysed), and
`begin(inputs, initial_state, training)` → `(reads, states, recurrent_mask)`:
what the cell reads (input dropout applied), the initial states and the
recurrent dropout mask, drawn in that order.

    >>> lstm = LSTM(16, return_sequences=True, return_state=True)
    >>> seq, h, c = lstm(torch.randn(4, 10, 8))
    >>> seq.shape, h.shape
    (torch.Size([4, 10, 16]), torch.Size([4, 16]))
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from seqlab.kernels import fused, native, paths
from seqlab.kernels.masks import Padding
from seqlab.kernels.paths import REQUESTS as EXECUTION_PATHS
from seqlab.kernels.reference_loop import reference_loop
from seqlab.layers.base import Layer, Shape
from seqlab.layers.cells import GRUCell, LSTMCell, RecurrentCell, SimpleRNNCell
from seqlab.layers.serialization import deserialize, serialize

__all__ = ["EXECUTION_PATHS", "GRU", "LSTM", "RNN", "SimpleRNN", "reference_loop"]


class RNN(Layer):
    """Run `cell` over time (see the module docstring for the semantics)."""

    supports_masking = True

    def __init__(self, cell: RecurrentCell, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, time_major: bool = False,
                 zero_output_for_mask: bool = False, execution: str = "auto", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(cell, RecurrentCell):
            raise TypeError(
                f"RNN takes a seqlab cell (SimpleRNNCell, LSTMCell, GRUCell or a RecurrentCell "
                f"subclass), got {type(cell).__name__}."
            )
        self.cell = cell
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = stateful
        self.unroll = unroll  # accepted for Keras compatibility; the loop is the same either way
        self.time_major = time_major
        self.zero_output_for_mask = zero_output_for_mask
        if execution not in EXECUTION_PATHS:
            raise ValueError(f"execution must be one of {EXECUTION_PATHS}, got {execution!r}.")
        self.execution = execution
        self.carried_states: list[torch.Tensor] | None = None

    @property
    def units(self) -> int:
        return self.cell.units

    # ----------------------------------------------------------------- building
    def build(self, input_shape: Shape) -> None:
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.name} expects inputs of rank 3, (batch, time, features), got shape "
                f"{tuple(input_shape)}. For one sequence add a batch axis (x[None]); for token ids "
                "put an Embedding layer first."
            )
        batch = input_shape[1] if self.time_major else input_shape[0]
        self.build_sublayer(self.cell, (batch, input_shape[-1]))
        self.built = True

    # ------------------------------------------------------------------ calling
    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | Padding | None = None,
                training: bool | None = None, initial_state: Any = None) -> Any:
        inputs = self.check_inputs(inputs)
        if self.time_major:
            inputs = inputs.transpose(0, 1)
        padding = mask if isinstance(mask, Padding) else self.analyse_mask(mask, inputs.shape[0], inputs.shape[1])
        training = self.training if training is None else training
        reads, states, recurrent_mask = self.begin(inputs, initial_state, training)
        if self.go_backwards:
            reads, padding = reads.flip(1), padding.flipped()
        outputs, states = self._run(reads, states, padding, recurrent_mask, training)

        if self.stateful:
            self.carried_states = [s.detach() for s in states]
        if self.return_sequences:
            output = outputs
        else:  # the last output is the last real step's h (LSTM, GRU and SimpleRNN output h)
            output = outputs[:, -1] if outputs is not None else states[0]
        if self.return_sequences and self.time_major:
            output = output.transpose(0, 1)
        return [output, *states] if self.return_state else output

    def begin(self, inputs: torch.Tensor, initial_state: Any, training: bool
              ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """For validated `inputs (batch, time, features)`: what the cell reads (input dropout applied, in
        input time order), the initial states, and the recurrent dropout keep-mask `(batch, units)` or None."""
        states = self.initial_states(initial_state, inputs)
        input_mask, recurrent_mask = self.cell.dropout_masks(inputs[:, 0], training)
        reads = inputs if input_mask is None else inputs * input_mask[:, None, :]
        return reads, states, recurrent_mask

    def _run(self, inputs, states, padding: Padding, recurrent_mask, training):
        """Outputs (the sequence, or a one-step sequence holding the last output) and final states, on the
        path `seqlab.kernels.paths` picks; `inputs` and `padding` in processing order."""
        path = paths.choose([self], inputs, padding, training)
        need_sequence = self.return_sequences or self.zero_output_for_mask
        if path is paths.Path.FUSED:
            outputs, last, (final_states,) = fused.run_fused(
                [self.cell], [inputs], [states], padding, [recurrent_mask], self.zero_output_for_mask,
                need_sequence=need_sequence)
            # Without the sequence, the last output alone (a one-step sequence for forward() to read).
            return (outputs[:, :, 0] if need_sequence else last[:, None, 0]), final_states
        if path is paths.Path.NATIVE:
            sequence, (final_states,) = native.run_native(
                [self.cell], inputs, [states], padding, need_sequence, self.zero_output_for_mask, training,
                exact_states=self.return_state or self.stateful)
            return sequence, final_states
        return reference_loop(self.cell, self.cell.project_inputs(inputs), states, padding.mask, recurrent_mask,
                              self.zero_output_for_mask)

    # --------------------------------------------------------------- validation
    def check_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """`inputs` validated (float, rank 3, this layer's features, not empty) and cast to the weights' dtype."""
        if not inputs.is_floating_point():
            raise TypeError(
                f"{self.name} takes float features of shape (batch, time, features), got a "
                f"{inputs.dtype} tensor. For token ids put an Embedding layer first; "
                "otherwise convert with x.float()."
            )
        if inputs.dim() != 3:
            raise ValueError(
                f"{self.name} expects inputs of rank 3, (batch, time, features), got shape "
                f"{tuple(inputs.shape)}."
            )
        if inputs.shape[-1] != self.cell.input_size:
            raise ValueError(
                f"{self.name} was built for {self.cell.input_size} features per step, got "
                f"inputs of shape {tuple(inputs.shape)}."
            )
        if inputs.shape[0 if not self.time_major else 1] == 0 or inputs.shape[1 if not self.time_major else 0] == 0:
            raise ValueError(f"{self.name} got an empty batch or a sequence with no steps: {tuple(inputs.shape)}.")
        # Keras casts floating inputs to the layer's dtype (float64 data into a float32 LSTM
        # runs in float32), rather than failing in the first matrix product.
        return inputs.to(self.cell.kernel.dtype)

    def analyse_mask(self, mask, batch: int, time: int) -> Padding:
        """`mask` ((batch, time), or (time, batch) with time_major; True at real steps) validated and analysed."""
        return Padding.of(self._check_mask(mask, batch, time))

    def _check_mask(self, mask, batch: int, time: int,
                    device: torch.device | None = None) -> torch.Tensor | None:
        """`mask` as bool `(batch, time)` on `device` (default: the layer's weights', where the inputs are)."""
        if isinstance(mask, Padding):  # validated already, by a wrapper
            return mask.given
        if mask is None:
            return None
        mask = torch.as_tensor(mask, device=device if device is not None else self.cell.kernel.device)
        if self.time_major and mask.dim() == 2 and mask.shape == (time, batch):
            mask = mask.transpose(0, 1)
        if tuple(mask.shape) != (batch, time):
            raise ValueError(
                f"{self.name}: the mask must have shape (batch, time) = ({batch}, {time}) "
                f"with True at real steps, got {tuple(mask.shape)}."
            )
        return mask.to(torch.bool)

    def initial_states(self, initial_state: Any, inputs: torch.Tensor) -> list[torch.Tensor]:
        """The states to start from: `initial_state` (validated), the carried state (stateful), or zeros."""
        batch = inputs.shape[0]
        if initial_state is not None:
            states = [initial_state] if isinstance(initial_state, torch.Tensor) else list(initial_state)
            expected = [(batch, size) for size in self.cell.state_size]
            got = [tuple(s.shape) for s in states]
            if got != expected:
                raise ValueError(
                    f"{self.name}: initial_state must be {len(expected)} tensor(s) of shapes "
                    f"{expected}, got {got}."
                )
            return [s.to(inputs.dtype) for s in states]
        if self.stateful and self.carried_states is not None:
            if self.carried_states[0].shape[0] != batch:
                raise ValueError(
                    f"{self.name} is stateful with a carried state for batch size "
                    f"{self.carried_states[0].shape[0]}, got a batch of {batch}. Use the same "
                    "batch size for every call, or call reset_states() first."
                )
            return list(self.carried_states)
        return self.cell.get_initial_state(batch, inputs.dtype, inputs.device)

    def reset_states(self, states: list[torch.Tensor] | None = None) -> None:
        """Forget the carried state (stateful layers), or set it to `states`."""
        self.carried_states = None if states is None else [torch.as_tensor(s) for s in states]

    # ------------------------------------------------------------------- shapes
    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, Padding):  # analysed by a wrapper: the mask it was given
            mask = mask.given
        return mask if self.return_sequences else None

    def compute_output_shape(self, input_shape: Shape) -> Any:
        batch, time = (input_shape[1], input_shape[0]) if self.time_major else input_shape[:2]
        if self.return_sequences:
            output = (time, batch, self.units) if self.time_major else (batch, time, self.units)
        else:
            output = (batch, self.units)
        if not self.return_state:
            return output
        return [output, *[(batch, size) for size in self.cell.state_size]]

    def get_config(self):
        return {**super().get_config(), "cell": serialize(self.cell),
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful,
                "unroll": self.unroll, "time_major": self.time_major,
                "zero_output_for_mask": self.zero_output_for_mask, "execution": self.execution}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RNN":
        return cls(**{**config, "cell": deserialize(config["cell"])})


class _CellLayer(RNN):
    """An RNN layer built from keyword arguments that belong to its cell class."""

    cell_class: type[RecurrentCell]

    def __init__(self, units: int, **kwargs):
        cell_parameters = _parameters_of(self.cell_class)
        cell_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in cell_parameters}
        if "dtype" in kwargs:
            cell_kwargs["dtype"] = kwargs["dtype"]
        kwargs.pop("use_cudnn", None)  # accepted: seqlab picks the execution path itself
        kwargs.pop("implementation", None)
        super().__init__(self.cell_class(units, **cell_kwargs), **kwargs)

    def __getattr__(self, name: str):
        # Keras exposes the cell's hyperparameters on the layer (layer.units, layer.dropout, ...).
        try:
            return super().__getattr__(name)
        except AttributeError:
            cell = self._modules.get("cell")
            if cell is not None and hasattr(cell, name):
                return getattr(cell, name)
            raise

    def get_config(self):
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype", "batch_input_shape", "activity_regularizer"):
            cell_config.pop(key, None)
        layer_config = super().get_config()
        layer_config.pop("cell")
        return {**layer_config, **cell_config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "_CellLayer":
        return cls(**config)


def _parameters_of(cell_class: type) -> set[str]:
    names: set[str] = set()
    for klass in cell_class.__mro__:
        if klass is Layer:
            break
        if "__init__" in vars(klass):
            names |= set(inspect.signature(klass.__init__).parameters) - {"self", "kwargs", "units"}
    return names


class SimpleRNN(_CellLayer):
    """Fully connected RNN, `h_t = tanh(x_t W_x + h_{t-1} W_h + b)` (see `SimpleRNNCell`).

    Arguments are Keras': `units, activation="tanh", use_bias=True,
    kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
    bias_initializer="zeros"`, the `*_regularizer` and `*_constraint`
    arguments, `dropout, recurrent_dropout, seed`, and the `RNN` arguments
    `return_sequences, return_state, go_backwards, stateful, unroll, time_major`.
    Input (batch, time, features) → (batch, units) or (batch, time, units).

        >>> SimpleRNN(3)(torch.randn(2, 10, 5)).shape
        torch.Size([2, 3])
    """

    cell_class = SimpleRNNCell


class LSTM(_CellLayer):
    """Long short-term memory layer (see `LSTMCell` for the equations).

    Arguments are `SimpleRNN`'s plus `recurrent_activation="sigmoid"`,
    `unit_forget_bias=True` and seqlab's `peephole=False`. Weights:
    kernel (F, 4u), recurrent_kernel (u, 4u), bias (4u,), gate order i, f, c, o.
    With `return_state=True` it returns `[output, h, c]`.

        >>> LSTM(64, return_sequences=True)(torch.randn(2, 10, 5)).shape
        torch.Size([2, 10, 64])
    """

    cell_class = LSTMCell


class GRU(_CellLayer):
    """Gated recurrent unit layer (see `GRUCell` for the equations).

    Arguments are `SimpleRNN`'s plus `recurrent_activation="sigmoid"` and
    `reset_after=True` (cuDNN-compatible; bias (2, 3u)) or False (bias (3u,)).
    Gate order z, r, h. With `return_state=True` it returns `[output, h]`.

        >>> GRU(32)(torch.randn(2, 10, 5)).shape
        torch.Size([2, 32])
    """

    cell_class = GRUCell
