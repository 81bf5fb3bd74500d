"""Position information for attention: `PositionalEncoding` (fixed) and `PositionEmbedding` (learned).

Attention by itself ignores order: permuting the time steps permutes the
outputs. Adding a vector that depends on the position t to each step's
features `(batch, time, d)` tells the model where every token is.

`PositionalEncoding` adds the sinusoids of "Attention Is All You Need"
(no weights; any length):

    PE[t, 2i]   = sin(t / max_wavelength^(2i/d))
    PE[t, 2i+1] = cos(t / max_wavelength^(2i/d))

`PositionEmbedding(sequence_length)` adds a learned row
`embeddings[t]` of a `(sequence_length, d)` table (glorot_uniform), so it
handles sequences up to `sequence_length` steps. Both pass masks through.

    >>> x = Embedding(1000, 32)(torch.randint(1, 1000, (2, 10)))
    >>> PositionalEncoding()(x).shape, PositionEmbedding(sequence_length=50)(x).shape
    (torch.Size([2, 10, 32]), torch.Size([2, 10, 32]))
"""

from __future__ import annotations

import torch

from seqlab import initializers
from seqlab.layers.attention import check_sequence_shape
from seqlab.layers.base import Layer, Shape


class PositionalEncoding(Layer):
    """`x + PE` with the fixed sinusoids `PE (time, d)` (see the module docstring); no weights.

        >>> encoding = PositionalEncoding()
        >>> encoding(torch.zeros(1, 3, 4))[0, 1]          # PE[1] = sin 1, cos 1, sin .01, cos .01
        tensor([0.8415, 0.5403, 0.0100, 0.9999])
    """

    supports_masking = True

    def __init__(self, max_wavelength: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        if float(max_wavelength) <= 1.0:
            raise ValueError(f"{self.name}: max_wavelength must be > 1, got {max_wavelength}.")
        self.max_wavelength = float(max_wavelength)

    def build(self, input_shape: Shape) -> None:
        check_sequence_shape(self.name, input_shape)
        self.built = True

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, start: int = 0) -> torch.Tensor:
        """`inputs + PE[start : start + time]`; `start` > 0 continues a sequence (incremental decoding)."""
        check_sequence_shape(self.name, tuple(inputs.shape))
        return inputs + self.encoding(inputs.shape[1], inputs.shape[2], inputs.dtype, inputs.device, start)

    def encoding(self, length: int, depth: int, dtype: torch.dtype = torch.float32, device=None,
                 start: int = 0) -> torch.Tensor:
        """The `(length, depth)` table PE from position `start` (computed in float64, then cast)."""
        positions = torch.arange(start, start + length, dtype=torch.float64, device=device)[:, None]
        features = torch.arange(depth, device=device)
        frequencies = self.max_wavelength ** (-(features - features % 2).to(torch.float64) / depth)
        angles = positions * frequencies
        return torch.where(features % 2 == 0, torch.sin(angles), torch.cos(angles)).to(dtype)

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


class PositionEmbedding(Layer):
    """`x + embeddings[:time]`, a learned `(sequence_length, d)` table (see the module docstring).

    Unlike keras_hub's `PositionEmbedding`, which returns only the position
    vectors, this layer adds them to its inputs so it can sit in a `Sequential`.

        >>> positions = PositionEmbedding(sequence_length=100)
        >>> positions(torch.zeros(2, 7, 16)).shape            # embeddings (100, 16)
        torch.Size([2, 7, 16])
    """

    supports_masking = True

    def __init__(self, sequence_length: int, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(sequence_length, int) or sequence_length <= 0:
            raise ValueError(
                f"{self.name}: sequence_length must be a positive integer (the longest sequence the "
                f"model will see), got {sequence_length!r}."
            )
        self.sequence_length = sequence_length
        self.initializer = initializers.get(initializer)

    def build(self, input_shape: Shape) -> None:
        check_sequence_shape(self.name, input_shape)
        if input_shape[-1] is None:
            raise ValueError(f"{self.name} needs a known feature size, got input shape {input_shape}.")
        self.add_weight("embeddings", (self.sequence_length, input_shape[-1]), self.initializer)
        self.built = True

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, start: int = 0) -> torch.Tensor:
        """`inputs + embeddings[start : start + time]`; `start` > 0 continues a sequence (incremental decoding)."""
        check_sequence_shape(self.name, tuple(inputs.shape))
        time, depth = inputs.shape[1], inputs.shape[2]
        if start + time > self.sequence_length:
            raise ValueError(
                f"{self.name} has positions for {self.sequence_length} steps but got a sequence reaching step "
                f"{start + time}. Truncate the inputs or build the model with sequence_length >= {start + time}."
            )
        if depth != self.embeddings.shape[1]:
            raise ValueError(
                f"{self.name} was built for {self.embeddings.shape[1]} features, got inputs of shape "
                f"{tuple(inputs.shape)}."
            )
        return inputs + self.embeddings[start:start + time]

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "initializer": initializers.serialize(self.initializer)}

