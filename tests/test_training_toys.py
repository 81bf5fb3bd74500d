"""Tiny models and toy data shared by the training and saving tests (no tests here).

The models are plain `torch.nn` modules under `seqlab.training.Model`, so
the engine is tested independently of seqlab's own layers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from seqlab.serialization import register_serializable
from seqlab.training import Model


@register_serializable
class SignOfSum(Model):
    """GRU over `(batch, steps, 1)` numbers → one logit: is the sequence's sum positive?"""

    def __init__(self, units: int = 16, dropout: float = 0.0):
        super().__init__()
        self.units, self.dropout_rate = units, dropout
        self.rnn = nn.GRU(1, units, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(units, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.rnn(x)[0][:, -1]))

    def get_config(self) -> dict:
        return {"units": self.units, "dropout": self.dropout_rate}

    @classmethod
    def from_config(cls, config: dict) -> "SignOfSum":
        return cls(**config)


@register_serializable
class Tagger(Model):
    """Embedding (0 = padding) + LSTM + Dense per step: `(batch, time)` ids → `(batch, time, classes)` logits."""

    def __init__(self, vocabulary: int = 12, classes: int = 12, units: int = 16):
        super().__init__()
        self.vocabulary, self.classes, self.units = vocabulary, classes, units
        self.embedding = nn.Embedding(vocabulary, 8, padding_idx=0)
        self.rnn = nn.LSTM(8, units, batch_first=True)
        self.out = nn.Linear(units, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(self.embedding(x))[0])

    def get_config(self) -> dict:
        return {"vocabulary": self.vocabulary, "classes": self.classes, "units": self.units}

    @classmethod
    def from_config(cls, config: dict) -> "Tagger":
        return cls(**config)


class StatefulLanguageModel(Model):
    """Embedding + LSTM whose final state carries into the next call (detached), as Keras' stateful=True."""

    def __init__(self, vocabulary: int = 5, units: int = 16):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, 8)
        self.rnn = nn.LSTM(8, units, batch_first=True)
        self.out = nn.Linear(units, vocabulary)
        self.carried = None
        self.resets = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, state = self.rnn(self.embedding(x), self.carried)
        self.carried = state
        return self.out(outputs)

    def detach_states(self) -> None:
        if self.carried is not None:
            self.carried = tuple(s.detach() for s in self.carried)

    def reset_states(self) -> None:
        self.carried = None
        self.resets += 1


def sign_of_sum_data(samples: int = 800, steps: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`x (samples, steps, 1)` of ±1 (an odd count: no ties), `y` = 1 where the sum is positive."""
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 1.0], (samples, steps, 1)).astype(np.float32)
    return x, (x.sum(axis=(1, 2)) > 0).astype(np.float32)


def copy_first_token_data(samples: int = 600, steps: int = 6, vocabulary: int = 12,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tag every step with the sequence's first token; sequences are right-padded with 0."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocabulary, (samples, steps))
    lengths = rng.integers(2, steps + 1, samples)
    x[np.arange(steps)[None, :] >= lengths[:, None]] = 0
    y = np.where(x > 0, x[:, :1], 0)
    return x, y
