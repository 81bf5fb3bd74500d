"""Character features of each token: what a token looks like, so unseen words are tagged by their shape.

Both kinds read the spelling of every real token in a batch at once (the
padding tokens are left out, then get zeros):

    CharCNN    f = max_c tanh(Conv1D_k=3(E_char[c_1..c_L]))      (tokens, units)      (Ma & Hovy 2016)
    CharLSTM   f = [h→_L ; h←_1] of a BiLSTM over E_char[c_1..c_L]  (tokens, 2·units)  (Lample et al. 2016)

The max of the CNN is over the token's own characters only (its padding is
−∞); the LSTM is masked. Input `chars (batch, T, C)` ids (0 = padding) and
`token_mask (batch, T)`; output `(batch, T, features)`.
"""
from __future__ import annotations

import abc

import torch

from seqlab.layers import LSTM, Bidirectional, Conv1D, Embedding

__all__ = ["CharCNN", "CharLSTM", "char_features"]


class _CharacterFeatures(torch.nn.Module, abc.ABC):
    """The shared part: gather the real tokens' spellings, `read` them, scatter the features back."""

    def __init__(self, characters: int, char_dim: int, units: int):
        super().__init__()
        self.characters, self.char_dim, self.units = characters, char_dim, units
        self.embedding = Embedding(characters, char_dim)

    def forward(self, chars: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        spelled = chars[token_mask]                                  # (tokens, C)
        lengths = (spelled != 0).sum(-1)
        width = max(1, int(lengths.max())) if spelled.numel() else 1
        spelled = spelled[:, :width]
        output = chars.new_zeros((*chars.shape[:2], self.output_dim), dtype=torch.float32)
        if spelled.shape[0]:
            features = self.read(self.embedding(spelled), spelled != 0)
            output = output.to(features.dtype)
            output[token_mask] = features
        return output

    @abc.abstractmethod
    def read(self, embedded: torch.Tensor, char_mask: torch.Tensor) -> torch.Tensor:
        """`embedded (tokens, L, char_dim)`, `char_mask (tokens, L)` → features `(tokens, output_dim)`."""

    @property
    @abc.abstractmethod
    def output_dim(self) -> int:
        """Features per token."""


class CharCNN(_CharacterFeatures):
    """Convolution (width 3, `units` filters, tanh) over the characters, then the max over them."""

    def __init__(self, characters: int, char_dim: int, units: int):
        super().__init__(characters, char_dim, units)
        self.convolution = Conv1D(units, 3, padding="same", activation="tanh")

    def build(self) -> None:
        self.embedding.build(None)
        self.convolution.build((None, None, self.char_dim))

    @property
    def output_dim(self) -> int:
        return self.units

    def read(self, embedded: torch.Tensor, char_mask: torch.Tensor) -> torch.Tensor:
        # Padding positions read as zeros (the convolution's own padding), so no token's features depend on
        # the longest token of its batch.
        convolved = self.convolution(embedded * char_mask[..., None])
        return convolved.masked_fill(~char_mask[..., None], float("-inf")).amax(dim=1)


class CharLSTM(_CharacterFeatures):
    """A Bidirectional LSTM over the characters; its two final states side by side."""

    def __init__(self, characters: int, char_dim: int, units: int):
        super().__init__(characters, char_dim, units)
        self.recurrent = Bidirectional(LSTM(units))

    def build(self) -> None:
        self.embedding.build(None)
        self.recurrent.build((None, None, self.char_dim))

    @property
    def output_dim(self) -> int:
        return 2 * self.units

    def read(self, embedded: torch.Tensor, char_mask: torch.Tensor) -> torch.Tensor:
        return self.recurrent(embedded, mask=char_mask)


def char_features(kind: str, characters: int, char_dim: int, units: int) -> _CharacterFeatures | None:
    """The features `kind` names ("cnn", "lstm"), None for "none"; built, so weights load before a call."""
    if kind == "none":
        return None
    layer = {"cnn": CharCNN, "lstm": CharLSTM}[kind](characters, char_dim, units)
    layer.build()
    return layer
