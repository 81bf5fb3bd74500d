"""Metrics: running weighted means of per-element values, as Keras reports them.

Every metric here accumulates `Σ w v` and `Σ w` over the epoch (w: sample
weight times mask) and reports `finalize(Σ w v / Σ w)`:

    accuracy             v = [prediction == target]            finalize: identity
    perplexity           v = -log p[target] (nats per token)    finalize: exp
    bits per character   v = -log p[target]                     finalize: / ln 2

Elements and masks are those of the losses (`seqlab.training.losses`): per
sample, or per time step for sequence outputs, padded steps left out. The
two accumulators live in one float64 tensor so that a distributed run sums
them across processes with one all-reduce.

    >>> accuracy = SparseCategoricalAccuracy()
    >>> accuracy.update(torch.tensor([1, 0]), torch.tensor([[0.1, 0.9], [0.2, 0.8]]))
    >>> accuracy.result()
    0.5
"""

from __future__ import annotations

import abc

import math
from typing import Any, Callable

import torch

from seqlab import serialization
from seqlab.training import losses as losses_module
from seqlab.training.losses import Loss, combine_masks, integer_labels, weighted_totals

__all__ = [
    "BinaryAccuracy",
    "BitsPerCharacter",
    "CategoricalAccuracy",
    "LossMetric",
    "Mean",
    "Metric",
    "Perplexity",
    "SparseCategoricalAccuracy",
    "get",
]


class Metric(serialization.Serializable, abc.ABC):
    """Base class: subclasses define `values(y_true, y_pred)` (per element) and maybe `finalize`.

        >>> metric = BinaryAccuracy(); metric.update(torch.tensor([1.0]), torch.tensor([[0.7]]))
        >>> metric.result()
        1.0
    """

    ignore_class: int | None = None  # targets equal to it are left out (padding)

    def __init__(self, name: str | None = None):
        self.name = name or losses_module._snake_case(type(self).__name__)
        self.totals = torch.zeros(2, dtype=torch.float64)  # [Σ w v, Σ w]

    @abc.abstractmethod
    def values(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        """Per-element metric values, shaped like the targets."""

    def mask(self, y_true: torch.Tensor) -> torch.Tensor | None:
        return None if self.ignore_class is None else losses_module._squeeze_last(y_true) != self.ignore_class

    def finalize(self, mean: float) -> float:
        return mean

    @torch.no_grad()
    def update(self, y_true: torch.Tensor, y_pred: torch.Tensor,
               sample_weight: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> None:
        values = self.values(y_true, y_pred).double()
        mask = combine_masks(values, mask, self.mask(y_true), getattr(y_pred, "_keras_mask", None))
        weighted_sum, weight_sum, _ = weighted_totals(values, sample_weight, mask)
        self._accumulate(weighted_sum, weight_sum)

    def _accumulate(self, weighted_sum: torch.Tensor, weight_sum: torch.Tensor) -> None:
        if self.totals.device != weighted_sum.device:
            self.totals = self.totals.to(weighted_sum.device)
        self.totals += torch.stack([weighted_sum.double(), weight_sum.double()])

    def result(self) -> float:
        weighted_sum, weight_sum = self.totals.tolist()
        return self.finalize(weighted_sum / weight_sum) if weight_sum else 0.0

    def reset(self) -> None:
        self.totals = torch.zeros(2, dtype=torch.float64, device=self.totals.device)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


class Mean(Metric):
    """The weighted mean of scalars given to `update_value` (the engine tracks the loss with it).

        >>> mean = Mean("loss"); mean.update_value(1.0, 3); mean.update_value(2.0, 1); mean.result()
        1.25
    """

    def update_value(self, value: float | torch.Tensor, weight: float = 1.0) -> None:
        value = torch.as_tensor(value, dtype=torch.float64, device=self.totals.device)
        self._accumulate(value * weight, torch.tensor(float(weight), dtype=torch.float64, device=value.device))

    def values(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{self.name} (Mean) averages the numbers given to update_value(value, weight); it has no "
                        "per-element values of (y_true, y_pred). Use a metric such as 'accuracy' for predictions.")


class BinaryAccuracy(Metric):
    """v = mean_units [ (σ > threshold) == y ], σ = y_pred, or sigmoid(y_pred) with `from_logits`.

        >>> BinaryAccuracy(from_logits=True)  # for a model ending in Dense(1) without sigmoid
    """

    def __init__(self, threshold: float = 0.5, from_logits: bool = False, name: str | None = None):
        super().__init__(name or "binary_accuracy")
        self.threshold, self.from_logits = threshold, from_logits

    def values(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true = losses_module._match_rank(y_true, y_pred, self.name)
        probs = torch.sigmoid(y_pred.float()) if self.from_logits else y_pred.float()
        return losses_module._mean_over_units(((probs > self.threshold).float() == y_true.float()).float())

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold, "from_logits": self.from_logits}


class SparseCategoricalAccuracy(Metric):
    """v = [argmax_c y_pred == y_true] for integer targets; `ignore_class` targets are left out.

        >>> SparseCategoricalAccuracy(ignore_class=0)  # padded language-model targets
    """

    def __init__(self, ignore_class: int | None = None, name: str | None = None):
        super().__init__(name or "sparse_categorical_accuracy")
        self.ignore_class = ignore_class

    def values(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        labels = integer_labels(y_true, y_pred, self.name, self.ignore_class)
        return (y_pred.argmax(-1) == labels).float()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "ignore_class": self.ignore_class}


class CategoricalAccuracy(Metric):
    """v = [argmax y_pred == argmax y_true] for one-hot targets.

        >>> CategoricalAccuracy().values(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.2, 0.8]]))
        tensor([1.])
    """

    def __init__(self, name: str | None = None):
        super().__init__(name or "categorical_accuracy")

    def values(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        losses_module._require_same_shape(y_true, y_pred, self.name)
        return (y_pred.argmax(-1) == y_true.argmax(-1)).float()


class _TokenCrossEntropy(Metric):
    """Per-token cross-entropy -log p[target] in nats, the basis of perplexity and bits per character."""

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None, name: str | None = None):
        super().__init__(name)
        self.ignore_class = ignore_class
        self.crossentropy = losses_module.SparseCategoricalCrossentropy(from_logits, ignore_class, name=self.name)

    def values(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return self.crossentropy.elementwise(y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.crossentropy.from_logits,
                "ignore_class": self.ignore_class}


class Perplexity(_TokenCrossEntropy):
    """perplexity = exp(mean token cross-entropy in nats); 1 is perfect, `classes` is chance.

        >>> model.compile("adam", SparseCategoricalCrossentropy(from_logits=True), metrics=["perplexity"])
    """

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None, name: str | None = None):
        super().__init__(from_logits, ignore_class, name or "perplexity")

    def finalize(self, mean: float) -> float:
        return math.exp(mean) if mean < 709 else math.inf


class BitsPerCharacter(_TokenCrossEntropy):
    """bits per character = mean token cross-entropy / ln 2 (character-level language models).

        >>> model.compile("adam", SparseCategoricalCrossentropy(from_logits=True), metrics=["bpc"])
    """

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None, name: str | None = None):
        super().__init__(from_logits, ignore_class, name or "bpc")

    def finalize(self, mean: float) -> float:
        return mean / math.log(2)


class LossMetric(Metric):
    """The mean of a loss's per-element values as a metric ("mse", "mae", "binary_crossentropy", ...).

        >>> LossMetric(MeanSquaredError(), name="mse")
    """

    def __init__(self, loss: Loss, name: str | None = None):
        super().__init__(name or loss.name)
        self.loss = loss

    def values(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return self.loss.elementwise(y_true, y_pred)

    def mask(self, y_true: torch.Tensor) -> torch.Tensor | None:
        return self.loss.mask(y_true)

    def get_config(self) -> dict[str, Any]:
        raise TypeError("A LossMetric is saved through its name in the compile config, not on its own.")


def get(identifier: str | dict[str, Any] | Metric, loss: Loss | None = None) -> Metric:
    """A `Metric` from a name (resolved against the compiled `loss` as Keras does), a config or an instance.

    "accuracy"/"acc" becomes binary, sparse categorical or categorical accuracy
    according to the loss (taking over its `from_logits` and `ignore_class`);
    "perplexity" and "bpc" take the loss's `from_logits` and `ignore_class` too.
    The metric keeps the name it was asked by (History keys: "accuracy", "acc", ...).
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return serialization.deserialize(identifier, expected=Metric, what="metric")
    if not isinstance(identifier, str):
        raise ValueError(f"Metrics are names, configs or Metric instances, got {identifier!r}.")
    name = identifier
    key = identifier.lower()
    from_logits = getattr(loss, "from_logits", False)
    ignore_class = getattr(loss, "ignore_class", None)
    if key in ("accuracy", "acc"):
        return _accuracy_for(loss, name)
    factories: dict[str, Callable[[], Metric]] = {
        "binary_accuracy": lambda: BinaryAccuracy(from_logits=from_logits, name=name),
        "sparse_categorical_accuracy": lambda: SparseCategoricalAccuracy(ignore_class, name=name),
        "categorical_accuracy": lambda: CategoricalAccuracy(name=name),
        "perplexity": lambda: Perplexity(from_logits, ignore_class, name=name),
        "bpc": lambda: BitsPerCharacter(from_logits, ignore_class, name=name),
        "bits_per_character": lambda: BitsPerCharacter(from_logits, ignore_class, name=name),
    }
    if key in factories:
        return factories[key]()
    if key in losses_module._BY_NAME:
        return LossMetric(losses_module.get(key), name=name)
    raise ValueError(f"Unknown metric {identifier!r}. Known: {sorted(['accuracy', *factories])} "
                     f"and the loss names {sorted(losses_module._BY_NAME)}, or pass a Metric instance.")


def _accuracy_for(loss: Loss | None, name: str) -> Metric:
    if isinstance(loss, losses_module.BinaryCrossentropy):
        return BinaryAccuracy(from_logits=loss.from_logits, name=name)
    if isinstance(loss, losses_module.SparseCategoricalCrossentropy):
        return SparseCategoricalAccuracy(loss.ignore_class, name=name)
    if isinstance(loss, losses_module.CategoricalCrossentropy):
        return CategoricalAccuracy(name=name)
    raise ValueError(
        f"metrics=['{name}'] cannot tell which accuracy fits the loss {getattr(loss, 'name', loss)!r}. "
        "Name it: 'binary_accuracy', 'sparse_categorical_accuracy' or 'categorical_accuracy'."
    )


serialize = serialization.serialize
