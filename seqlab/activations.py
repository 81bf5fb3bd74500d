"""Activation functions by Keras name.

`get("tanh")` returns a callable on tensors; `get(None)` and `get("linear")`
return the identity. Definitions follow Keras 3 (for example
`hard_sigmoid(x) = relu6(x + 3) / 6`), so numbers match real Keras.

    >>> from seqlab import activations
    >>> activations.get("sigmoid")(torch.zeros(2))
    tensor([0.5000, 0.5000])
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Activation = Callable[[torch.Tensor], torch.Tensor]


def linear(x: torch.Tensor) -> torch.Tensor:
    """The identity: Keras' `activation=None` / `"linear"`."""
    return x


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 3's piecewise-linear sigmoid: relu6(x + 3) / 6."""
    return F.relu6(x + 3.0) / 6.0


def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis (Keras' default axis=-1)."""
    return torch.softmax(x, dim=-1)


def leaky_relu(x: torch.Tensor) -> torch.Tensor:
    """Keras 3's leaky_relu with its default negative_slope=0.2."""
    return F.leaky_relu(x, negative_slope=0.2)


_BY_NAME: dict[str, Activation] = {
    "linear": linear,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "relu": torch.relu,
    "relu6": F.relu6,
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "swish": F.silu,
    "silu": F.silu,
    "exponential": torch.exp,
    "leaky_relu": leaky_relu,
    "softmax": softmax,
}

STANDARD = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}
"""The activations PyTorch's fused recurrent kernels compute."""


def get(identifier: str | Activation | None) -> Activation:
    """Return the activation named `identifier` (or the callable itself)."""
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]
    raise ValueError(
        f"Unknown activation {identifier!r}. Use one of {sorted(_BY_NAME)}, "
        "None, or pass a callable that maps a tensor to a tensor."
    )


def serialize(activation: Activation) -> str:
    """The Keras name of `activation`, for configs (custom callables cannot be saved)."""
    for name, function in _BY_NAME.items():
        if function is activation:
            return name
    raise ValueError(
        f"Activation {activation!r} has no name, so it cannot be written to a config. "
        "Use a named activation or re-create the layer in code."
    )
