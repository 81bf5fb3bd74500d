"""Layer wrappers: `Bidirectional` and `TimeDistributed`.

`Bidirectional(layer)` runs `layer` forwards and a copy of it backwards
(`go_backwards` flipped, its own weights) over the same inputs and merges the
two outputs: `concat` (default; `(batch, 2*units)`), `sum`, `mul`, `ave`, or
None (a list `[forward, backward]`). With `return_sequences=True` the backward
outputs are put back in input order before merging, so position t holds both
directions' view of step t. With a mask, the backward direction starts at each
sequence's last real token. With `return_state=True` the states follow the
output, forward first, then backward, unmerged:
`[output, h_fw, c_fw, h_bw, c_bw]` for an LSTM.

The inputs and the mask are validated and the mask analysed once, here; one
policy (`seqlab.kernels.paths.choose`, the one each `RNN` asks too) picks
whether both directions run in one loop (the C++ loop or the paired reference
loop, `seqlab.kernels.paired`), in one native kernel call, or apart, each
direction given the analysed mask. The wrapper talks to its layers only
through `RNN`'s public protocol (`check_inputs`, `analyse_mask`, `begin`).

    >>> bi = Bidirectional(LSTM(64))
    >>> bi(torch.randn(2, 10, 20)).shape
    torch.Size([2, 128])
"""

from __future__ import annotations

from typing import Any

import torch

from seqlab.kernels import native, paired, paths
from seqlab.kernels.masks import Padding
from seqlab.layers.base import Layer, Shape
from seqlab.layers.recurrent import RNN
from seqlab.layers.serialization import deserialize, serialize

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Layer):
    """Run an RNN layer in both directions and merge (see the module docstring)."""

    supports_masking = True

    def __init__(self, layer: RNN, merge_mode: str | None = "concat",
                 backward_layer: RNN | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, RNN):
            raise TypeError(f"Bidirectional wraps an RNN layer (SimpleRNN, LSTM, GRU, RNN), got {type(layer).__name__}.")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}.")
        self._custom_backward = backward_layer is not None
        if backward_layer is None:
            config = layer.get_config()
            config.update(name=f"backward_{layer.name.removeprefix('forward_')}", go_backwards=not layer.go_backwards)
            backward_layer = type(layer).from_config(config)
        _check_backward_layer(layer, backward_layer)
        layer.name = f"forward_{layer.name.removeprefix('forward_')}"
        self.merge_mode = merge_mode
        self.forward_layer = layer
        self.backward_layer = backward_layer
        for direction in (self.forward_layer, self.backward_layer):
            # Keras: padded steps output zeros, so the re-reversed backward sequence lines up.
            direction.zero_output_for_mask = direction.return_sequences
        if self.batch_input_shape is None:
            self.batch_input_shape = layer.batch_input_shape

    @property
    def return_sequences(self) -> bool:
        return self.forward_layer.return_sequences

    @property
    def return_state(self) -> bool:
        return self.forward_layer.return_state

    def build(self, input_shape: Shape) -> None:
        for direction in (self.forward_layer, self.backward_layer):
            self.build_sublayer(direction, input_shape)
        self.built = True

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None,
                training: bool | None = None, initial_state: Any = None) -> Any:
        forward_state = backward_state = None
        if initial_state is not None:
            initial_state = list(initial_state)
            if len(initial_state) % 2:
                raise ValueError(
                    "Bidirectional: initial_state must hold the forward states then the backward "
                    f"states (an even number of tensors), got {len(initial_state)}."
                )
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        training = self.training if training is None else training
        forward, backward = self.forward_layer, self.backward_layer
        inputs = forward.check_inputs(inputs)
        batch, time = (inputs.shape[1], inputs.shape[0]) if forward.time_major else inputs.shape[:2]
        padding = forward.analyse_mask(mask, batch, time)
        path = paths.choose([forward, backward], inputs, padding, training)
        if path is paths.Path.APART:
            forward_output, backward_output, states = self._run_each(
                inputs, padding, training, forward_state, backward_state)
        else:
            forward_output, backward_output, states = self._run_together(
                path, inputs, padding, training, forward_state, backward_state)
            states = states if self.return_state else []
        output = self._merge(forward_output, backward_output)
        if self.return_state:
            return ([*output] if self.merge_mode is None else [output]) + states
        return output

    def _run_each(self, inputs, padding: Padding, training, forward_state, backward_state):
        """Each direction on its own; the backward sequence is put back in input order."""
        mask = None if padding.given is None else padding  # each layer reads the analysis, not the mask again
        forward_result = self.forward_layer(inputs, mask=mask, training=training, initial_state=forward_state)
        backward_result = self.backward_layer(inputs, mask=mask, training=training, initial_state=backward_state)
        states: list[torch.Tensor] = []
        if self.return_state:
            forward_output, *forward_states = forward_result
            backward_output, *backward_states = backward_result
            states = forward_states + backward_states
        else:
            forward_output, backward_output = forward_result, backward_result
        if self.return_sequences:
            backward_output = backward_output.flip(0 if self.forward_layer.time_major else 1)
        return forward_output, backward_output, states

    def _run_together(self, path: paths.Path, inputs, padding: Padding, training, forward_state, backward_state):
        """Both directions in one loop (FUSED, PAIRED) or one native kernel call (NATIVE, no padding)."""
        forward, backward = self.forward_layer, self.backward_layer
        cells = [forward.cell, backward.cell]
        (forward_reads, forward_states, forward_dropout), (backward_reads, backward_states, backward_dropout) = (
            forward.begin(inputs, forward_state, training), backward.begin(inputs, backward_state, training))
        if path is not paths.Path.NATIVE:
            return paired.run_paired(cells, [forward_reads, backward_reads], [forward_states, backward_states],
                                     padding, [forward_dropout, backward_dropout], forward.zero_output_for_mask,
                                     self.return_sequences, path is paths.Path.FUSED)
        sequence, (forward_states, backward_states) = native.run_native(
            cells, inputs, [forward_states, backward_states], padding, self.return_sequences,
            True, training)
        if self.return_sequences:
            forward_output, backward_output = sequence.split(forward.units, dim=-1)
        else:
            forward_output, backward_output = forward_states[0], backward_states[0]
        return forward_output, backward_output, forward_states + backward_states

    def _merge(self, forward_output: torch.Tensor, backward_output: torch.Tensor) -> Any:
        if self.merge_mode == "concat":
            return torch.cat([forward_output, backward_output], dim=-1)
        if self.merge_mode == "sum":
            return forward_output + backward_output
        if self.merge_mode == "mul":
            return forward_output * backward_output
        if self.merge_mode == "ave":
            return (forward_output + backward_output) / 2
        return [forward_output, backward_output]

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def compute_output_shape(self, input_shape: Shape) -> Any:
        forward_shape = self.forward_layer.compute_output_shape(input_shape)
        output_shape = forward_shape[0] if self.return_state else forward_shape
        if self.merge_mode == "concat":
            output_shape = (*output_shape[:-1], 2 * output_shape[-1])
        if self.merge_mode is None:
            output_shape = [output_shape, output_shape]
        if not self.return_state:
            return output_shape
        merged = output_shape if self.merge_mode is None else [output_shape]
        return merged + forward_shape[1:] * 2

    def reset_states(self) -> None:
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    def get_config(self):
        config = {**super().get_config(), "layer": serialize(self.forward_layer), "merge_mode": self.merge_mode}
        if self._custom_backward:
            config["backward_layer"] = serialize(self.backward_layer)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Bidirectional":
        config = dict(config)
        config["layer"] = deserialize(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize(config["backward_layer"])
        return cls(**config)


def _check_backward_layer(forward: RNN, backward: RNN) -> None:
    if not isinstance(backward, RNN):
        raise TypeError(f"backward_layer must be an RNN layer, got {type(backward).__name__}.")
    if backward.go_backwards == forward.go_backwards:
        raise ValueError(
            "Bidirectional: backward_layer must read in the opposite direction: set "
            f"go_backwards={not forward.go_backwards} on it."
        )
    for attribute in ("return_sequences", "return_state", "time_major"):
        if getattr(forward, attribute) != getattr(backward, attribute):
            raise ValueError(
                f"Bidirectional: the forward and backward layers must agree on {attribute}, got "
                f"{getattr(forward, attribute)} and {getattr(backward, attribute)}."
            )


class TimeDistributed(Layer):
    """Apply `layer` to every time step: `(batch, time, ...)` → `(batch, time, ...out)`.

        >>> TimeDistributed(Dense(8))(torch.randn(2, 5, 3)).shape
        torch.Size([2, 5, 8])
    """

    supports_masking = True

    def __init__(self, layer: Layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) < 3:
            raise ValueError(f"TimeDistributed needs inputs (batch, time, ...), got shape {input_shape}.")
        self.build_sublayer(self.layer, (None, *input_shape[2:]))
        self.built = True

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None,
                training: bool | None = None) -> torch.Tensor:
        batch, time = inputs.shape[:2]
        outputs = self.layer(inputs.reshape(batch * time, *inputs.shape[2:]))
        return outputs.reshape(batch, time, *outputs.shape[1:])

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        inner = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (*input_shape[:2], *inner[1:])

    def get_config(self):
        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TimeDistributed":
        return cls(**{**config, "layer": deserialize(config["layer"])})
