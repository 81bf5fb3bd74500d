"""Losses with Keras' semantics: per-element values, masks, sample weights, one reduction.

Every loss computes one value per *element*: per sample for outputs
`(batch, units)`, per time step for sequence outputs `(batch, time, units)`
(the last axis is the one reduced: classes, or units averaged). The batch loss
is Keras' "sum over batch size" reduction:

    loss = Σ_i w_i ℓ_i / N

with `w_i` the sample weights (1 when none) and `N` the number of elements that
are not masked out. Masks come from the model's output (`y_pred._keras_mask`,
e.g. after `Embedding(mask_zero=True)`), from a boolean third batch element,
and from `ignore_class` (targets equal to it, typically padding index 0).

    >>> loss = SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    >>> loss(torch.tensor([[3, 0]]), torch.randn(1, 2, 5))   # the padded step is ignored
    tensor(...)
"""

from __future__ import annotations

import abc

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from seqlab import serialization

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Loss",
    "LossFunction",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "get",
    "log_probabilities",
    "combine_masks",
    "weighted_totals",
]

EPSILON = 1e-7  # Keras' backend epsilon: probabilities are clipped to [ε, 1 - ε]


class Loss(serialization.Serializable, abc.ABC):
    """Base class: subclasses define `elementwise(y_true, y_pred)`; calling reduces it.

    `sum_and_count` returns the two parts of the reduction (`Σ w ℓ`, `N`) so that
    a distributed run can divide by the count of the whole global batch.

        >>> mse = MeanSquaredError()
        >>> float(mse(torch.ones(2, 1), torch.zeros(2, 1)))
        1.0
    """

    def __init__(self, name: str | None = None):
        self.name = name or _snake_case(type(self).__name__)

    @abc.abstractmethod
    def elementwise(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        """The loss of every element, before masking, weighting and reduction."""

    def mask(self, y_true: torch.Tensor) -> torch.Tensor | None:
        """Elements to keep judged from the targets alone (`ignore_class`); None keeps all."""
        return None

    def sum_and_count(self, y_true: torch.Tensor, y_pred: torch.Tensor,
                      sample_weight: torch.Tensor | None = None,
                      mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`(Σ_i w_i ℓ_i, N)` over the elements kept by `mask`, `ignore_class` and the output's mask."""
        values = self.elementwise(y_true, y_pred)
        mask = combine_masks(values, mask, self.mask(y_true), getattr(y_pred, "_keras_mask", None))
        weighted_sum, _, count = weighted_totals(values, sample_weight, mask)
        return weighted_sum, count

    def __call__(self, y_true: torch.Tensor, y_pred: torch.Tensor,
                 sample_weight: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        total, count = self.sum_and_count(y_true, y_pred, sample_weight, mask)
        return total / count.clamp_min(1)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


class SparseCategoricalCrossentropy(Loss):
    """ℓ = -log p[y] with p = softmax(y_pred) (`from_logits=True`) or y_pred / Σ y_pred.

    Shapes: `y_pred (batch, ..., classes)`, integer `y_true (batch, ...)` in
    `[0, classes)`. For sequence outputs each time step is an element;
    positions whose target equals `ignore_class` (e.g. padding index 0) are
    masked out, as are positions the model's output mask marks as padding.

    `label_smoothing` ε spreads ε of the target's mass evenly over the K
    classes, as `CategoricalCrossentropy(label_smoothing=ε)` does for one-hot
    labels (Szegedy et al. 2016; the Transformer's ε = 0.1):
    ℓ = -(1 - ε) log p[y] - (ε / K) Σ_k log p[k].

        >>> loss = SparseCategoricalCrossentropy(from_logits=True)
        >>> loss(torch.tensor([1, 0]), torch.tensor([[0.0, 9.0], [9.0, 0.0]])) < 1e-3
        tensor(True)
    """

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None, label_smoothing: float = 0.0,
                 name: str | None = None):
        super().__init__(name or "sparse_categorical_crossentropy")
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1) (the share of the target's probability spread "
                             f"over all classes; 0.1 is usual), got {label_smoothing!r}.")
        self.from_logits = from_logits
        self.ignore_class = ignore_class
        self.label_smoothing = float(label_smoothing)

    def elementwise(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        labels = integer_labels(y_true, y_pred, self.name, self.ignore_class)
        log_probs = log_probabilities(y_pred, self.from_logits, self.name)
        target = -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        if not self.label_smoothing:
            return target
        return (1.0 - self.label_smoothing) * target - self.label_smoothing * log_probs.mean(dim=-1)

    def mask(self, y_true: torch.Tensor) -> torch.Tensor | None:
        return None if self.ignore_class is None else _squeeze_last(y_true) != self.ignore_class

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits, "ignore_class": self.ignore_class,
                "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(Loss):
    """ℓ = -Σ_c y_c log p_c for one-hot (or soft) targets `y_true` of the same shape as `y_pred`.

        >>> loss = CategoricalCrossentropy(from_logits=True)
        >>> loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 9.0]])) < 1e-3
        tensor(True)
    """

    def __init__(self, from_logits: bool = False, name: str | None = None):
        super().__init__(name or "categorical_crossentropy")
        self.from_logits = from_logits

    def elementwise(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        if y_true.dim() == y_pred.dim() - 1 or (y_true.shape != y_pred.shape and y_true.shape[-1:] == (1,)):
            raise ValueError(
                f"{self.name} expects one-hot targets shaped like y_pred {tuple(y_pred.shape)}, but got "
                f"targets {tuple(y_true.shape)}: these look like integer class labels. Use "
                "loss='sparse_categorical_crossentropy' for integer labels."
            )
        _require_same_shape(y_true, y_pred, self.name)
        log_probs = log_probabilities(y_pred, self.from_logits, self.name)
        return -(y_true.to(log_probs.dtype) * log_probs).sum(-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits}


class BinaryCrossentropy(Loss):
    """ℓ = -mean_units[y log σ + (1 - y) log(1 - σ)], σ = sigmoid(y_pred) or y_pred clipped to [ε, 1-ε].

    Shapes: `y_pred (batch, units)` or `(batch, time, units)` with 0/1 targets
    of the same shape (targets `(batch,)` fit outputs `(batch, 1)`); targets outside
    [0, 1] are refused.

        >>> loss = BinaryCrossentropy()
        >>> round(float(loss(torch.tensor([1.0]), torch.tensor([[0.5]]))), 4)
        0.6931
    """

    def __init__(self, from_logits: bool = False, name: str | None = None):
        super().__init__(name or "binary_crossentropy")
        self.from_logits = from_logits

    def elementwise(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true = _binary_targets(y_true, y_pred, self.name)
        y_pred = y_pred.float()
        if self.from_logits:
            values = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
        else:
            check_probabilities(y_pred, self.name)
            p = y_pred.clamp(EPSILON, 1 - EPSILON)
            values = -(y_true * torch.log(p) + (1 - y_true) * torch.log(1 - p))
        return _mean_over_units(values)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits}


class MeanSquaredError(Loss):
    """ℓ = mean_units (y - ŷ)²; `y_true` shaped like `y_pred` (or without its trailing 1).

        >>> float(MeanSquaredError()(torch.zeros(2, 1), torch.full((2, 1), 2.0)))
        4.0
    """

    def __init__(self, name: str | None = None):
        super().__init__(name or "mean_squared_error")

    def elementwise(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true = _match_rank(y_true, y_pred, self.name).float()
        return _mean_over_units((y_pred.float() - y_true) ** 2)


class MeanAbsoluteError(Loss):
    """ℓ = mean_units |y - ŷ|; shapes as for `MeanSquaredError`.

        >>> float(MeanAbsoluteError()(torch.zeros(2, 1), torch.full((2, 1), -2.0)))
        2.0
    """

    def __init__(self, name: str | None = None):
        super().__init__(name or "mean_absolute_error")

    def elementwise(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true = _match_rank(y_true, y_pred, self.name).float()
        return _mean_over_units((y_pred.float() - y_true).abs())


class LossFunction(Loss):
    """Wrap a plain function `fn(y_true, y_pred)` returning per-element values or a scalar.

        >>> loss = LossFunction(lambda y, p: (y - p).abs().mean())
    """

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], name: str | None = None):
        super().__init__(name or getattr(fn, "__name__", "loss"))
        self.fn = fn

    def elementwise(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return self.fn(y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        raise TypeError(f"The loss function {self.name!r} is a plain function and cannot be saved in a config.")


_BY_NAME: dict[str, Callable[[], Loss]] = {
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}

def get(identifier: str | Loss | Callable | dict | None) -> Loss:
    """A `Loss` from a Keras name ("binary_crossentropy", "mse", ...), a config, an instance or a function."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BY_NAME:
            raise ValueError(f"Unknown loss {identifier!r}. Known: {sorted(_BY_NAME)}, "
                             "or pass a Loss instance or a function (y_true, y_pred) -> tensor.")
        return _BY_NAME[key]()
    if isinstance(identifier, dict):
        return serialization.deserialize(identifier, expected=Loss, what="loss")
    if callable(identifier):
        return LossFunction(identifier)
    raise ValueError(f"compile() needs a loss: a name such as 'sparse_categorical_crossentropy', "
                     f"a Loss or a function; got {identifier!r}.")


serialize = serialization.serialize


# --------------------------------------------------------------- shared helpers
def weighted_totals(values: torch.Tensor, sample_weight: torch.Tensor | None,
                    mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(Σ w v, Σ w, N)` over kept elements: the parts of Keras' loss (Σwv/N) and metric (Σwv/Σw) means."""
    weights = torch.ones_like(values) if sample_weight is None else _align(sample_weight, values).to(values.dtype)
    if mask is not None:
        keep = _align(mask, values)
        weights = weights * keep.to(values.dtype)
        count = keep.sum().to(values.dtype)
        values = torch.where(keep, values, torch.zeros_like(values))  # 0 * nan would poison the sum
    else:
        count = torch.tensor(float(values.numel()), dtype=values.dtype, device=values.device)
    return (values * weights).sum(), weights.sum(), count


def log_probabilities(y_pred: torch.Tensor, from_logits: bool, loss_name: str) -> torch.Tensor:
    """log p over the last axis: log_softmax of logits, or log of normalised, clipped probabilities."""
    y_pred = y_pred.float()
    if from_logits:
        return F.log_softmax(y_pred, dim=-1)
    check_probabilities(y_pred, loss_name)
    probs = y_pred / y_pred.sum(-1, keepdim=True)
    return torch.log(probs.clamp(EPSILON, 1 - EPSILON))


def check_probabilities(y_pred: torch.Tensor, loss_name: str) -> None:
    """Refuse outputs outside [0, 1]: they are logits given to a loss that expects probabilities."""
    if y_pred.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(y_pred.detach()))
    if low < 0 or high > 1 or math.isnan(low):
        raise ValueError(
            f"{loss_name} got y_pred values in [{low:.4g}, {high:.4g}], outside [0, 1], so they are "
            "not probabilities: the model outputs logits. Pass from_logits=True to the loss "
            "(e.g. loss=BinaryCrossentropy(from_logits=True)) or end the model with a "
            "sigmoid/softmax activation."
        )


def integer_labels(y_true: torch.Tensor, y_pred: torch.Tensor, loss_name: str,
                   ignore_class: int | None) -> torch.Tensor:
    """Check that `y_true` holds class indices fitting `y_pred (..., classes)`; return them as int64."""
    labels = _squeeze_last(y_true) if y_true.dim() == y_pred.dim() else y_true
    classes = y_pred.shape[-1]
    if y_pred.dim() < 2 or labels.shape != y_pred.shape[:-1]:
        raise ValueError(
            f"{loss_name} expects y_pred of shape (batch, ..., classes) and integer labels of shape "
            f"(batch, ...), but got y_pred {tuple(y_pred.shape)} and labels {tuple(y_true.shape)}. "
            + _label_shape_hint(y_true, y_pred)
        )
    if classes == 1:
        raise ValueError(
            f"{loss_name} got y_pred {tuple(y_pred.shape)} with a single output unit, which is one "
            "class only. For two classes with one sigmoid unit use loss='binary_crossentropy'; "
            "otherwise give the last layer one unit per class."
        )
    if labels.is_floating_point():
        if not torch.equal(labels, labels.round()):
            raise ValueError(f"{loss_name} expects integer class labels, got non-integer values in "
                             f"y_true {tuple(y_true.shape)}. For one-hot or soft targets use "
                             "loss='categorical_crossentropy'.")
    labels = labels.long()
    _check_label_range(labels, classes, loss_name, ignore_class)
    if ignore_class is not None:
        labels = labels.masked_fill(labels == ignore_class, 0)  # any valid index; masked out later
    return labels


def _check_label_range(labels: torch.Tensor, classes: int, loss_name: str, ignore_class: int | None) -> None:
    checked = labels if ignore_class is None else labels[labels != ignore_class]
    if checked.numel() == 0:
        return
    low, high = (int(v) for v in torch.aminmax(checked))
    if low < 0 or high >= classes:
        raise ValueError(
            f"{loss_name}: labels range over [{low}, {high}] but the model has {classes} output "
            f"classes (valid labels 0..{classes - 1}). The vocabulary or number of classes the "
            "last layer was built with is too small for the data: build the output layer with "
            f"at least {high + 1} units, or re-encode the labels."
        )


def _label_shape_hint(y_true: torch.Tensor, y_pred: torch.Tensor) -> str:
    if y_true.shape == y_pred.shape:
        return "The targets have the output's shape: they look one-hot; use loss='categorical_crossentropy'."
    if y_pred.dim() == 3 and y_true.dim() == 1:
        return ("The model outputs a sequence (batch, time, classes) but the labels are one per "
                "sample: set return_sequences=False on the last recurrent layer.")
    if y_pred.dim() == 2 and y_true.dim() == 2:
        return ("The labels are sequences (batch, time) but the model outputs one prediction per "
                "sample: set return_sequences=True on the last recurrent layer.")
    return "Make the model's output match the labels (one score per class on the last axis)."


def _binary_targets(y_true: torch.Tensor, y_pred: torch.Tensor, loss_name: str) -> torch.Tensor:
    if y_pred.dim() >= 2 and y_pred.shape[-1] > 1 and y_true.dim() == y_pred.dim() - 1:
        raise ValueError(
            f"{loss_name} compares each output unit with a 0/1 target, but y_pred "
            f"{tuple(y_pred.shape)} has {y_pred.shape[-1]} units and the targets {tuple(y_true.shape)} "
            "one label per sample. For integer class labels use "
            "loss='sparse_categorical_crossentropy'; for a binary task give the last layer 1 unit."
        )
    targets = _match_rank(y_true, y_pred, loss_name).float()
    if targets.numel():
        low, high = (float(v) for v in torch.aminmax(targets))
        if low < 0 or high > 1 or math.isnan(low) or math.isnan(high):
            raise ValueError(
                f"{loss_name} needs targets in [0, 1] (0/1 labels, or soft labels between them), "
                f"got values in [{low:.4g}, {high:.4g}]. Map the labels to 0 and 1 first; for more "
                "than two classes use loss='sparse_categorical_crossentropy' with one output per class."
            )
    return targets


def _match_rank(y_true: torch.Tensor, y_pred: torch.Tensor, loss_name: str) -> torch.Tensor:
    """Keras' squeeze-or-expand: targets (batch,) fit outputs (batch, 1) and vice versa."""
    if y_true.dim() == y_pred.dim() - 1 and y_pred.shape[-1] == 1:
        y_true = y_true.unsqueeze(-1)
    elif y_true.dim() == y_pred.dim() + 1 and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    _require_same_shape(y_true, y_pred, loss_name)
    return y_true


def _require_same_shape(y_true: torch.Tensor, y_pred: torch.Tensor, loss_name: str) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{loss_name} needs targets shaped like the model output, but got y_pred "
            f"{tuple(y_pred.shape)} and targets {tuple(y_true.shape)}. Check the last layer's "
            "units and return_sequences against the labels."
        )


def _mean_over_units(values: torch.Tensor) -> torch.Tensor:
    return values.mean(-1) if values.dim() >= 2 else values


def _squeeze_last(y_true: torch.Tensor) -> torch.Tensor:
    return y_true.squeeze(-1) if y_true.dim() >= 2 and y_true.shape[-1] == 1 else y_true


def _align(weight: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Broadcast per-sample `(batch,)` weights or masks to element shape `values.shape`."""
    weight = torch.as_tensor(weight, device=values.device)
    while weight.dim() > values.dim() and weight.shape[-1] == 1:
        weight = weight.squeeze(-1)
    while weight.dim() < values.dim():
        weight = weight.unsqueeze(-1)
    try:
        return weight.expand_as(values)
    except RuntimeError:
        raise ValueError(f"Sample weights or mask of shape {tuple(weight.shape)} do not fit the loss "
                         f"elements of shape {tuple(values.shape)} (per sample, or per time step "
                         "for sequence outputs).") from None


def combine_masks(values: torch.Tensor, *masks: torch.Tensor | None) -> torch.Tensor | None:
    """AND of the given masks, each broadcast to the element shape of `values`; None if none apply."""
    combined = None
    for mask in masks:
        if mask is None:
            continue
        if mask.dim() > values.dim() and not (mask.dim() == values.dim() + 1 and mask.shape[-1] == 1):
            continue  # an input mask that the output no longer has a time axis for
        mask = _align(mask.bool(), values)
        combined = mask if combined is None else combined & mask
    return combined


def _snake_case(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
