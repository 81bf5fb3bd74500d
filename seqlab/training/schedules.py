"""Learning-rate schedules: pure functions of the optimizer step, with Keras' formulas.

Pass one as an optimizer's `learning_rate`; the optimizer sets the rate
before every step from its step counter (0 for the first update), so a
resumed run continues the schedule exactly. (Reduce-on-plateau depends on
validation results, not steps: it is the `ReduceLROnPlateau` callback.)

    >>> schedule = CosineDecay(0.0, decay_steps=1000, warmup_target=1e-3, warmup_steps=100)
    >>> optimizer = Adam(learning_rate=schedule)
"""

from __future__ import annotations

import abc

import math
from typing import Any

from seqlab import serialization

__all__ = ["CosineDecay", "ExponentialDecay", "InverseSquareRootDecay", "LearningRateSchedule", "get",
           "serialize"]


class LearningRateSchedule(serialization.Serializable, abc.ABC):
    """Base class: `schedule(step) -> learning rate`, serialisable through `get_config()`."""

    @abc.abstractmethod
    def __call__(self, step: int) -> float:
        """The learning rate of optimizer step `step` (0 for the first update)."""

    @abc.abstractmethod
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable (`from_config` calls the constructor with them)."""


class ExponentialDecay(LearningRateSchedule):
    """lr(step) = initial_learning_rate · decay_rate^(step / decay_steps) (floor of the exponent if `staircase`).

        >>> ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)(20)
        0.025
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False):
        if decay_steps <= 0:
            raise ValueError(f"ExponentialDecay needs decay_steps > 0, got {decay_steps}.")
        self.initial_learning_rate, self.decay_steps = initial_learning_rate, decay_steps
        self.decay_rate, self.staircase = decay_rate, staircase

    def __call__(self, step: int) -> float:
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * self.decay_rate ** exponent

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


class CosineDecay(LearningRateSchedule):
    """Optional linear warm-up, then cosine decay (Keras' `CosineDecay`).

    Without `warmup_target`: lr = initial · d(min(step, decay_steps)).
    With it: for step < warmup_steps, lr rises linearly from
    `initial_learning_rate` to `warmup_target`; afterwards
    lr = warmup_target · d(min(step - warmup_steps, decay_steps)), where
    d(s) = (1 - alpha) · ½(1 + cos(π s / decay_steps)) + alpha.

        >>> CosineDecay(0.0, decay_steps=100, warmup_target=1.0, warmup_steps=10)(5)
        0.5
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 warmup_target: float | None = None, warmup_steps: int = 0):
        if decay_steps <= 0:
            raise ValueError(f"CosineDecay needs decay_steps > 0, got {decay_steps}.")
        self.initial_learning_rate, self.decay_steps, self.alpha = initial_learning_rate, decay_steps, alpha
        self.warmup_target, self.warmup_steps = warmup_target, warmup_steps

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            return self._decayed(self.initial_learning_rate, step)
        if step < self.warmup_steps:
            fraction = step / self.warmup_steps
            return self.initial_learning_rate + (self.warmup_target - self.initial_learning_rate) * fraction
        return self._decayed(self.warmup_target, step - self.warmup_steps)

    def _decayed(self, start: float, step: int) -> float:
        fraction = min(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * fraction))
        return start * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class InverseSquareRootDecay(LearningRateSchedule):
    """Linear warm-up to `peak_learning_rate`, then decay as 1/√step (the Transformer's schedule).

    With n = step + 1 and w = `warmup_steps`:
    lr = peak · min(n / w, √(w / n)), which rises linearly to `peak` at n = w
    and then falls as 1/√n (Vaswani et al. 2017 with peak = d^-0.5 · w^-0.5).
    It depends on the step alone, so a resumed run continues it exactly,
    whatever its number of epochs.

        >>> schedule = InverseSquareRootDecay(1e-3, warmup_steps=100)
        >>> schedule(49), schedule(99), schedule(399)
        (0.0005, 0.001, 0.0005)
    """

    def __init__(self, peak_learning_rate: float, warmup_steps: int):
        if not peak_learning_rate > 0:
            raise ValueError(f"InverseSquareRootDecay needs peak_learning_rate > 0, got {peak_learning_rate}.")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(f"InverseSquareRootDecay needs warmup_steps >= 1, got {warmup_steps!r}.")
        self.peak_learning_rate, self.warmup_steps = float(peak_learning_rate), warmup_steps

    def __call__(self, step: int) -> float:
        n = step + 1
        return self.peak_learning_rate * min(n / self.warmup_steps, math.sqrt(self.warmup_steps / n))

    def get_config(self) -> dict[str, Any]:
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps}


serialize = serialization.serialize


def get(spec: dict[str, Any]) -> LearningRateSchedule:
    """Rebuild a schedule from `serialize(schedule)`."""
    return serialization.deserialize(spec, expected=LearningRateSchedule, what="learning-rate schedule")
