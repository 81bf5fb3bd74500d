"""`LayerNormalization`: normalise each example over its feature axis.

For every position separately (over `axis`, by default the features):

    mean = mean(x),  var = mean((x - mean)²)
    y = gamma * (x - mean) / sqrt(var + epsilon) + beta

with learned `gamma` (init 1, `scale=True`) and `beta` (init 0,
`center=True`) of the normalised axes' shape. Unlike batch normalisation it
never mixes examples or time steps, so padding cannot leak in; masks pass
through. Defaults are Keras' (`epsilon=1e-3`).

    >>> norm = LayerNormalization()
    >>> y = norm(torch.randn(2, 5, 8))          # gamma (8,), beta (8,)
    >>> y.mean(-1).abs().max() < 1e-6
    tensor(True)
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from seqlab import constraints, initializers, regularizers
from seqlab.layers.base import Layer, Shape


class LayerNormalization(Layer):
    """`y = gamma (x - mean) / sqrt(var + epsilon) + beta` over `axis` (see the module docstring)."""

    supports_masking = True

    def __init__(self, axis: int | Sequence[int] = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer="zeros", gamma_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int) and not (
                isinstance(axis, (list, tuple)) and axis and all(isinstance(a, int) for a in axis)):
            raise TypeError(f"{self.name}: axis must be an int or a list of ints, got {axis!r}.")
        self.axis = axis if isinstance(axis, int) else list(axis)
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)

    def _axes(self, rank: int) -> list[int]:
        axes = [self.axis] if isinstance(self.axis, int) else self.axis
        for axis in axes:
            if not -rank <= axis < rank or (axis % rank) == 0:
                raise ValueError(
                    f"{self.name}: axis {axis} is not a feature axis of inputs with rank {rank} "
                    "(axis 0 is the batch). Use axis=-1 to normalise the features."
                )
        return sorted(axis % rank for axis in axes)

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape[axis] for axis in self._axes(len(input_shape)))
        if None in shape:
            raise ValueError(f"{self.name} needs the size of the normalised axes, got input shape {input_shape}.")
        if self.scale:
            self.add_weight("gamma", shape, self.gamma_initializer, self.gamma_regularizer, self.gamma_constraint)
        if self.center:
            self.add_weight("beta", shape, self.beta_initializer, self.beta_regularizer, self.beta_constraint)
        self.built = True

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        axes = self._axes(inputs.dim())
        gamma = self.gamma if self.scale else None
        beta = self.beta if self.center else None
        normalized_shape = tuple(inputs.shape[axis] for axis in axes)
        for weight in (gamma, beta):
            if weight is not None and tuple(weight.shape) != normalized_shape:
                raise ValueError(
                    f"{self.name} was built for normalised axes of size {tuple(weight.shape)}, got "
                    f"inputs of shape {tuple(inputs.shape)}."
                )
        if axes == list(range(inputs.dim() - len(axes), inputs.dim())):  # trailing axes: PyTorch's kernel
            return F.layer_norm(inputs, normalized_shape, gamma, beta, self.epsilon)
        mean = inputs.mean(dim=axes, keepdim=True)
        variance = inputs.var(dim=axes, keepdim=True, unbiased=False)
        outputs = (inputs - mean) * torch.rsqrt(variance + self.epsilon)
        broadcast = [inputs.shape[i] if i in axes else 1 for i in range(inputs.dim())]
        if gamma is not None:
            outputs = outputs * gamma.reshape(broadcast)
        if beta is not None:
            outputs = outputs + beta.reshape(broadcast)
        return outputs

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }
