"""`Conv1D`: Keras' one-dimensional convolution over time, on `(batch, steps, channels)`.

With kernel `W (k, in, filters)`, bias `b (filters,)`, stride `s`, dilation `d`
and the input padded (below) to `x'`, every output step `t` and filter `f` is

    y[:, t, f] = activation(b[f] + Σ_{j<k} Σ_c x'[:, t·s + j·d, c] · W[j, c, f])

Input `(batch, steps, in)`, output `(batch, new_steps, filters)`; the reach of
the kernel is `r = (k - 1)·d + 1`:

    padding="valid"    no padding                         new_steps = floor((steps - r) / s) + 1
    padding="same"     TensorFlow's SAME: total pad       new_steps = ceil(steps / s)
                       max((new_steps - 1)·s + r - steps, 0), half on the left (rounded down)
    padding="causal"   (k - 1)·d zeros on the left        new_steps = ceil(steps / s)
                       (step t sees only steps <= t)

`groups=g` splits the channels into g groups convolved separately (kernel
`(k, in / g, filters)`), as in Keras. As in Keras, `Conv1D` does not support
masking: a mask carried by its input is dropped, and its output has none.

    >>> conv = Conv1D(8, 3, padding="causal", activation="relu")
    >>> conv(torch.randn(2, 10, 4)).shape              # kernel (3, 4, 8), bias (8,)
    torch.Size([2, 10, 8])
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
import torch.nn.functional as F

from seqlab import activations, constraints, initializers, regularizers
from seqlab.layers.attention import check_sequence_shape
from seqlab.layers.base import Layer, Shape

__all__ = ["Conv1D"]

PADDINGS = ("valid", "same", "causal")


class Conv1D(Layer):
    """1D convolution `y = activation(conv(x, W) + b)`, W: (kernel_size, in / groups, filters), b: (filters,)."""

    def __init__(self, filters: int, kernel_size: int | tuple[int], strides: int | tuple[int] = 1,
                 padding: str = "valid", data_format: str | None = None, dilation_rate: int | tuple[int] = 1,
                 groups: int = 1, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if self.auto_named:  # Keras' name: conv1d
            self.name = self.name.replace("1_d", "1d")
        self.filters = _positive_int(filters, "filters")
        self.kernel_size = _positive_int(kernel_size, "kernel_size")
        self.strides = _positive_int(strides, "strides")
        self.dilation_rate = _positive_int(dilation_rate, "dilation_rate")
        self.groups = _positive_int(groups, "groups")
        self.reach = (self.kernel_size - 1) * self.dilation_rate + 1  # the steps one output sees
        self.padding = str(padding).lower()
        if self.padding not in PADDINGS:
            raise ValueError(f"Conv1D: padding must be one of {PADDINGS}, got {padding!r}.")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Conv1D supports data_format='channels_last' only, got {data_format!r}: pass inputs "
                             "as (batch, steps, channels), e.g. x.transpose(1, 2) for (batch, channels, steps).")
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(f"Conv1D: strides > 1 cannot be combined with dilation_rate > 1 (as in Keras), got "
                             f"strides={self.strides}, dilation_rate={self.dilation_rate}.")
        if self.filters % self.groups:
            raise ValueError(f"Conv1D: filters ({self.filters}) must be divisible by groups ({self.groups}).")
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def build(self, input_shape: Shape) -> None:
        check_sequence_shape(self.name, input_shape)
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(f"{self.name} needs a known number of input channels divisible by groups "
                             f"({self.groups}), got inputs of shape {tuple(input_shape)}.")
        self.add_weight("kernel", (self.kernel_size, channels // self.groups, self.filters),
                        self.kernel_initializer, self.kernel_regularizer, self.kernel_constraint)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer,
                            self.bias_regularizer, self.bias_constraint)
        self.built = True

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        check_sequence_shape(self.name, tuple(inputs.shape))
        if inputs.shape[-1] != self.kernel.shape[1] * self.groups:
            raise ValueError(f"{self.name} was built for {self.kernel.shape[1] * self.groups} input channels, "
                             f"got inputs of shape {tuple(inputs.shape)}.")
        steps = inputs.shape[1]
        self._output_steps(steps)  # a clear error for a sequence shorter than the kernel's reach
        left, right = self._padding(steps)
        channels_first = inputs.transpose(1, 2)  # (batch, in, steps): PyTorch's layout
        if left != right:
            channels_first, left = F.pad(channels_first, (left, right)), 0
        outputs = F.conv1d(channels_first, self.kernel.permute(2, 1, 0), self.bias if self.use_bias else None,
                           stride=self.strides, padding=left, dilation=self.dilation_rate, groups=self.groups)
        return self.activation(outputs.transpose(1, 2))  # (batch, new_steps, filters)

    def _padding(self, steps: int) -> tuple[int, int]:
        """Zeros on the left and right of the time axis, as TensorFlow pads."""
        if self.padding != "same":
            return (self.reach - 1, 0) if self.padding == "causal" else (0, 0)
        total = max((math.ceil(steps / self.strides) - 1) * self.strides + self.reach - steps, 0)
        return total // 2, total - total // 2

    def _output_steps(self, steps: int | None) -> int | None:
        if steps is None:
            return None
        if self.padding != "valid":
            return math.ceil(steps / self.strides)
        if steps < self.reach:
            raise ValueError(f"{self.name}: padding='valid' needs at least {self.reach} steps (kernel_size "
                             f"{self.kernel_size}, dilation_rate {self.dilation_rate}), got {steps}. Use "
                             "padding='same' or 'causal', or longer sequences.")
        return (steps - self.reach) // self.strides + 1

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        check_sequence_shape(self.name, input_shape)
        return (input_shape[0], self._output_steps(input_shape[1]), self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters, "kernel_size": [self.kernel_size], "strides": [self.strides],
            "padding": self.padding, "data_format": "channels_last", "dilation_rate": [self.dilation_rate],
            "groups": self.groups, "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        }


def _positive_int(value: Any, what: str) -> int:
    """An int, or Keras' 1-tuple of one, that is at least 1."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"Conv1D: {what} must be a positive whole number or a 1-tuple of one, got {value!r}.")
    return int(value)
