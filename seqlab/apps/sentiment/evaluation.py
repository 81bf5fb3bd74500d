"""What a sentiment model answers: one text's `Prediction`, and the `Evaluation` of labeled texts.

    >>> Evaluation.of([1, 0, 1], np.array([0.9, 0.2, 0.4]), ("neg", "pos")).accuracy
    0.6666666666666666
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Evaluation", "Prediction"]


@dataclass
class Prediction:
    """One text's answer: `label` (a label name), `probability` of that label, `positive` = p(positive)."""

    text: str
    label: str
    probability: float
    positive: float
    tokens: int
    unknown: int

    @property
    def note(self) -> str | None:
        if self.tokens == 0:
            return "no tokens: the answer for a text the model knows nothing about"
        if self.unknown == self.tokens:
            return "only unknown tokens: the answer for a text the model knows nothing about"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "note": self.note}


@dataclass
class Evaluation:
    """Scores on labeled texts; positive is the positive class. `confusion[true][predicted]`."""

    accuracy: float
    precision: float
    recall: float
    f1: float
    confusion: list[list[int]]
    count: int
    label_names: tuple[str, str]

    @classmethod
    def of(cls, labels: Sequence[int], positive: np.ndarray, label_names: tuple[str, str]) -> "Evaluation":
        truth, guess = np.asarray(labels, dtype=bool), positive > 0.5
        tp, fp = int((truth & guess).sum()), int((~truth & guess).sum())
        fn, tn = int((truth & ~guess).sum()), int((~truth & ~guess).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls((tp + tn) / len(truth), precision, recall, f1, [[tn, fp], [fn, tp]], len(truth),
                   tuple(label_names))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def report(self) -> str:
        negative, positive = self.label_names
        width = max(len(negative), len(positive), 9)
        (tn, fp), (fn, tp) = self.confusion
        return "\n".join([
            f"accuracy  {self.accuracy:.2%}  ({self.count:,} texts)",
            f"precision {self.precision:.4f}   recall {self.recall:.4f}   F1 {self.f1:.4f}   "
            f"(positive = {positive!r})",
            "confusion matrix (rows: true label, columns: predicted)",
            f"{'':>{width}}  {negative:>{width}}  {positive:>{width}}",
            f"{negative:>{width}}  {tn:>{width},}  {fp:>{width},}",
            f"{positive:>{width}}  {fn:>{width},}  {tp:>{width},}",
        ])

