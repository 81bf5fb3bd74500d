"""Weight constraints (Keras' max_norm, min_max_norm, non_neg, unit_norm).

A constraint maps a weight to its projection onto an allowed set; layers apply
their constraints after each optimizer step (`layer.apply_constraints()`, or
`enforce_after_each_step(optimizer, model)` for any torch optimizer). Norms are
taken along `axis` (Keras' default 0: each column of a `(in, units)` kernel,
i.e. the weights into one unit).

    >>> from seqlab import constraints
    >>> constraints.NonNeg()(torch.tensor([-1.0, 2.0]))
    tensor([0., 2.])
"""

from __future__ import annotations

from typing import Any

import torch

from seqlab import identifiers, serialization

_EPSILON = 1e-7  # Keras' backend epsilon, keeps the division finite


class Constraint(serialization.Serializable):
    """Base class: `__call__(w)` returns the projected weight."""

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        return weight

    def get_config(self) -> dict[str, Any]:
        return {}


class MaxNorm(Constraint):
    """Rescale each slice along `axis` whose L2 norm exceeds `max_value`."""

    def __init__(self, max_value: float = 2.0, axis: int = 0):
        self.max_value, self.axis = max_value, axis

    def __call__(self, weight):
        norms = weight.norm(dim=self.axis, keepdim=True)
        desired = norms.clamp(0, self.max_value)
        return weight * (desired / (_EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class MinMaxNorm(Constraint):
    """Move each slice's norm towards [min_value, max_value] at `rate` (1 = all the way)."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis: int = 0):
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def __call__(self, weight):
        norms = weight.norm(dim=self.axis, keepdim=True)
        desired = self.rate * norms.clamp(self.min_value, self.max_value) + (1 - self.rate) * norms
        return weight * (desired / (_EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value,
                "rate": self.rate, "axis": self.axis}


class NonNeg(Constraint):
    """Set negative weights to zero."""

    def __call__(self, weight):
        return weight.clamp_min(0.0)


class UnitNorm(Constraint):
    """Scale each slice along `axis` to unit L2 norm."""

    def __init__(self, axis: int = 0):
        self.axis = axis

    def __call__(self, weight):
        return weight / (_EPSILON + weight.norm(dim=self.axis, keepdim=True))

    def get_config(self):
        return {"axis": self.axis}


_BY_NAME = {"max_norm": MaxNorm, "min_max_norm": MinMaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm}


def get(identifier: str | dict | Constraint | None) -> Constraint | None:
    """A constraint from a Keras name, a config dict, an instance or None."""
    return identifiers.resolve(identifier, kind="constraint", by_name=_BY_NAME, base=Constraint,
                               module="seqlab.constraints")


serialize = serialization.serialize


def enforce_after_each_step(optimizer: torch.optim.Optimizer, model: torch.nn.Module):
    """Make `optimizer.step()` apply every seqlab layer's constraints afterwards.

    Returns the hook handle (call `.remove()` to undo).
    """

    def apply_constraints(_optimizer, _args, _kwargs):
        for module in model.modules():
            apply = getattr(module, "apply_constraints", None)
            if apply is not None:
                apply(recurse=False)

    return optimizer.register_step_post_hook(apply_constraints)
