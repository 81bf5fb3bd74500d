"""`Embedding`: a trainable lookup table, and `one_hot`.

Token ids `(batch, time)` (integers in [0, input_dim)) become vectors
`(batch, time, output_dim)`: row `i` of the `embeddings` matrix
`(input_dim, output_dim)` is the vector of token `i`. This is exactly
`one_hot(ids, input_dim) @ embeddings`, a Dense layer without bias applied to
one-hot vectors, computed as a lookup. With `mask_zero=True` id 0 is padding
and the layer emits the mask `ids != 0` for the layers after it.

    >>> embedding = Embedding(1000, 32, mask_zero=True)
    >>> vectors = embedding(torch.tensor([[5, 9, 0]]))      # (1, 3, 32)
    >>> vectors._keras_mask
    tensor([[ True,  True, False]])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqlab import constraints, initializers, regularizers
from seqlab.layers.base import Layer, Shape


class Embedding(Layer):
    """Lookup table `embeddings (input_dim, output_dim)`; ids `(batch, ...)` → `(batch, ..., output_dim)`."""

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None,
                 mask_zero: bool = False, **kwargs):
        super().__init__(**kwargs)
        if int(input_dim) <= 0 or int(output_dim) <= 0:
            raise ValueError(
                f"Embedding needs positive input_dim (vocabulary size) and output_dim, "
                f"got {input_dim} and {output_dim}."
            )
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = mask_zero

    def build(self, input_shape: Shape = None) -> None:
        self.add_weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer,
                        self.embeddings_regularizer, self.embeddings_constraint)
        self.built = True

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.is_floating_point() or inputs.is_complex() or inputs.dtype == torch.bool:
            raise TypeError(
                f"{self.name} takes integer token ids, got a {inputs.dtype} tensor. "
                "Convert with ids.long(); to feed real-valued features use an RNN or Dense directly."
            )
        if inputs.numel():
            low, high = int(inputs.min()), int(inputs.max())
            if low < 0 or high >= self.input_dim:
                bad = low if low < 0 else high
                raise IndexError(
                    f"{self.name}: token id {bad} is outside [0, {self.input_dim}). "
                    f"Use an input_dim larger than the largest id (vocabulary size + 1 for padding)."
                )
        return F.embedding(inputs.long(), self.embeddings)

    def compute_mask(self, inputs, mask=None):
        return inputs != 0 if self.mask_zero else None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape, self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
        }


def one_hot(indices, num_classes: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """One-hot vectors: ids `(...)` → floats `(..., num_classes)` (Keras' `ops.one_hot`)."""
    indices = torch.as_tensor(indices)
    if indices.is_floating_point():
        raise TypeError(f"one_hot takes integer ids, got a {indices.dtype} tensor.")
    return F.one_hot(indices.long(), num_classes).to(dtype or torch.get_default_dtype())
