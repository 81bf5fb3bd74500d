"""Weight and activity regularizers (Keras' l1, l2, l1_l2).

A regularizer maps a tensor to a scalar penalty that the training loss adds:
`L1L2(l1, l2)(w) = l1 * sum(|w|) + l2 * sum(w^2)`. Layers expose the
penalties of their weights and last outputs as `layer.losses`.

    >>> from seqlab import regularizers
    >>> regularizers.get("l2")(torch.ones(3))
    tensor(0.0300)
"""

from __future__ import annotations

from typing import Any

import torch

from seqlab import identifiers, serialization


class L1L2(serialization.Serializable):
    """penalty(w) = l1 * sum(|w|) + l2 * sum(w^2)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        penalty = weight.new_zeros(())
        if self.l1:
            penalty = penalty + self.l1 * weight.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * weight.square().sum()
        return penalty

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """penalty(w) = l1 * sum(|w|); Keras' default l1 = 0.01."""

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """penalty(w) = l2 * sum(w^2); Keras' default l2 = 0.01."""

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


def l1(l1: float = 0.01) -> L1:
    return L1(l1)


def l2(l2: float = 0.01) -> L2:
    return L2(l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    return L1L2(l1, l2)


_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": lambda: L1L2(0.01, 0.01), "l1l2": lambda: L1L2(0.01, 0.01),
            "L1L2": L1L2}


def get(identifier: str | dict | L1L2 | None) -> L1L2 | None:
    """A regularizer from a name (`"l1"`, `"l2"`, `"l1_l2"`), a config dict, an instance or None."""
    return identifiers.resolve(identifier, kind="regularizer", by_name=_BY_NAME, base=L1L2,
                               module="seqlab.regularizers")


serialize = serialization.serialize
