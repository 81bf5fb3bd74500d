"""Attention layers: `Attention` (Luong), `AdditiveAttention` (Bahdanau), `SelfAttention`.

Every attention layer computes, for queries Q `(batch, Tq, dim)`, keys K
`(batch, Tv, dim)` and values V `(batch, Tv, dim_v)`:

    scores  = score(Q, K)                     (batch, Tq, Tv)
    weights = softmax(scores) along Tv        each row sums to 1
    output  = weights V                       (batch, Tq, dim_v)

`Attention` scores with the dot product `q·k` (Luong), `AdditiveAttention`
with `Σ_d scale_d tanh(q_d + k_d)` (Bahdanau). Masks follow Keras: a value
mask `(batch, Tv)` gives padded keys exactly zero weight, `use_causal_mask`
lets position i see only keys j <= i, and a query mask `(batch, Tq)` zeroes the
outputs of padded queries. `SelfAttention` attends a sequence to itself, as
the tutorials introduce it: without parameters `o_i = Σ_j softmax_j(x_i·x_j) x_j`.

    >>> attention = Attention()
    >>> query, value = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    >>> attention([query, value]).shape
    torch.Size([2, 4, 8])
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from seqlab import initializers
from seqlab.layers.base import Layer, Shape
from seqlab.layers.core import dropout_mask

SCORE_MODES = ("dot", "concat")


class Attention(Layer):
    """Dot-product (Luong) attention over `[query, value]` or `[query, value, key]`.

    score(q, k) = q·k, times a learned scalar `scale` (init 1) with `use_scale`;
    `score_mode="concat"` scores `c Σ_d tanh(scale (q_d + k_d))` with a learned
    scalar `concat_score_weight` c. Weights are `softmax(scores)` over the keys
    (Keras' masking: masked keys have `1e9` subtracted from their scores, so they
    get exactly zero weight), optionally dropped out in training (`dropout`;
    the returned scores are then the dropped-out weights, as in Keras).

    Call: `layer([query, value(, key)], mask=[query_mask, value_mask],
    return_attention_scores=False, use_causal_mask=False, training=None)`;
    query `(batch, Tq, dim)`, value `(batch, Tv, dim_v)`, key `(batch, Tv, dim)`
    (default: value); returns `(batch, Tq, dim_v)`, and the weights
    `(batch, Tq, Tv)` with `return_attention_scores=True`. Masks default to the
    ones the inputs carry (`Embedding(mask_zero=True)`).

        >>> decoder_states, encoder_states = torch.randn(2, 5, 16), torch.randn(2, 9, 16)
        >>> context, weights = Attention()([decoder_states, encoder_states], return_attention_scores=True)
        >>> context.shape, weights.shape
        (torch.Size([2, 5, 16]), torch.Size([2, 5, 9]))
    """

    supports_masking = True

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if score_mode not in SCORE_MODES:
            raise ValueError(f"{self.name}: score_mode must be one of {SCORE_MODES}, got {score_mode!r}.")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = check_dropout_rate(dropout, self.name)
        self.seed = seed
        self._generator: torch.Generator | None = None

    def build(self, input_shape: Any) -> None:
        split_attention_shapes(self.name, input_shape)
        if self.use_scale:
            self.add_weight("scale", (), "ones")
        if self.score_mode == "concat":
            self.add_weight("concat_score_weight", (), "ones")
        self.built = True

    def scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Unnormalised scores `(batch, Tq, Tv)` of every query against every key."""
        if self.score_mode == "dot":
            scores = query @ key.transpose(-1, -2)
            return scores * self.scale if self.use_scale else scores
        pairs = query.unsqueeze(-2) + key.unsqueeze(-3)          # (batch, Tq, Tv, dim)
        if self.use_scale:
            pairs = self.scale * pairs
        return self.concat_score_weight * torch.tanh(pairs).sum(-1)

    def forward(self, inputs: Sequence[torch.Tensor], mask: Sequence[torch.Tensor | None] | None = None,
                training: bool | None = None, return_attention_scores: bool = False,
                use_causal_mask: bool = False) -> Any:
        query, value, key = unpack_attention_inputs(self.name, inputs)
        query_mask, value_mask = self._masks(inputs, mask, query, value)
        scores = self.scores(query, key)
        visible = combine_masks(None, value_mask, use_causal_mask, query, key)
        if visible is not None:
            # Keras subtracts (rather than sets) a large number: the same float rounding as Keras.
            scores = torch.where(visible, scores, scores - _large_number(scores.dtype))
        weights = self._drop(torch.softmax(scores, dim=-1), training)  # Keras returns them dropped
        output = weights @ value
        if query_mask is not None:
            output = output.masked_fill(~query_mask.unsqueeze(-1), 0.0)
        output._keras_mask = query_mask
        return (output, weights) if return_attention_scores else output

    def _masks(self, inputs, mask, query, value):
        if mask is None:  # the masks the inputs carry, as Keras reads them
            mask = [getattr(tensor, "_keras_mask", None) for tensor in inputs]
        if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
            raise ValueError(
                f"{self.name}: mask must be a list [query_mask, value_mask] (None for no mask), "
                f"got {_describe(mask)}. Pass mask=[None, value_mask] to mask only the keys."
            )
        return (check_mask(mask[0], query, self.name, "query_mask"),
                check_mask(mask[1], value, self.name, "value_mask"))

    def _drop(self, weights: torch.Tensor, training: bool | None) -> torch.Tensor:
        training = self.training if training is None else training
        if not training or self.dropout == 0.0:
            return weights
        return drop_weights(self, weights, self.dropout)

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)) and mask:
            return mask[0]
        if isinstance(inputs, (list, tuple)) and inputs:
            return getattr(inputs[0], "_keras_mask", None)
        return None

    def compute_output_shape(self, input_shape: Any) -> Shape:
        query_shape, value_shape, _ = split_attention_shapes(self.name, input_shape)
        return (*query_shape[:-1], value_shape[-1])

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale, "score_mode": self.score_mode,
                "dropout": self.dropout, "seed": self.seed}


class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention: score(q, k) = Σ_d scale_d tanh(q_d + k_d).

    `scale` is a learned vector `(dim,)` (glorot_uniform) with `use_scale=True`
    (the default), else all ones. Everything else — call convention, masks,
    `return_attention_scores`, `use_causal_mask`, `dropout` — is `Attention`'s.
    Query and key need the same size `dim` (project them first with `Dense`).

        >>> attention = AdditiveAttention()
        >>> attention([torch.randn(2, 5, 16), torch.randn(2, 9, 16)]).shape
        torch.Size([2, 5, 16])
    """

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, seed=seed, **kwargs)

    def build(self, input_shape: Any) -> None:
        query_shape, _, _ = split_attention_shapes(self.name, input_shape)
        if self.use_scale:
            self.add_weight("scale", (query_shape[-1],), "glorot_uniform")
        self.built = True

    def scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        tanh = torch.tanh(query.unsqueeze(-2) + key.unsqueeze(-3))   # (batch, Tq, Tv, dim)
        return (tanh * self.scale if self.use_scale else tanh).sum(-1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config


class SelfAttention(Layer):
    """A sequence attending to itself: `(batch, time, features)` → `(batch, time, units or features)`.

    Without `units` it has no parameters, exactly the tutorials' three steps:

        scores = x xᵀ                    (batch, time, time)
        weights = softmax of each row
        o = weights x                     o_i = Σ_j softmax_j(x_i·x_j) x_j

    With `units=m` it learns projections `Q = x W_q`, `K = x W_k`, `V = x W_v`
    (kernels `(features, m)`, no bias) and computes `softmax(Q Kᵀ / √m) V`.
    A padding mask `(batch, time)` gives padded keys zero weight and padded
    positions a zero output; `use_causal_mask=True` lets position i see j <= i.

        >>> attention = SelfAttention()
        >>> attention(torch.randn(2, 7, 4)).shape
        torch.Size([2, 7, 4])
    """

    supports_masking = True

    def __init__(self, units: int | None = None, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if units is not None and int(units) <= 0:
            raise ValueError(f"{self.name}: units must be a positive integer or None (no parameters), got {units}.")
        self.units = None if units is None else int(units)
        self.kernel_initializer = initializers.get(kernel_initializer)

    def build(self, input_shape: Shape) -> None:
        check_sequence_shape(self.name, input_shape, "inputs")
        if self.units is not None:
            for name in ("query_kernel", "key_kernel", "value_kernel"):
                self.add_weight(name, (input_shape[-1], self.units), self.kernel_initializer)
        self.built = True

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None,
                return_attention_scores: bool = False, use_causal_mask: bool = False) -> Any:
        check_sequence_shape(self.name, tuple(inputs.shape), "inputs")
        mask = check_mask(mask, inputs, self.name, "mask")
        if self.units is None:
            query = key = value = inputs
            scores = query @ key.transpose(-1, -2)
        else:
            if inputs.shape[-1] != self.query_kernel.shape[0]:
                raise ValueError(
                    f"{self.name} was built for {self.query_kernel.shape[0]} features, got inputs of "
                    f"shape {tuple(inputs.shape)}."
                )
            query, key, value = (inputs @ kernel for kernel in (self.query_kernel, self.key_kernel, self.value_kernel))
            scores = query @ key.transpose(-1, -2) / math.sqrt(self.units)
        weights = masked_softmax(scores, combine_masks(mask, mask, use_causal_mask, inputs, inputs))
        output = weights @ value
        return (output, weights) if return_attention_scores else output

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape[:-1], self.units or input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "kernel_initializer": initializers.serialize(self.kernel_initializer)}


# ------------------------------------------------------------ shared attention math
def masked_softmax(scores: torch.Tensor, visible: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis among `visible` entries (True = may attend).

    Hidden entries get weight exactly 0, and a row with nothing visible gets all
    zeros (Keras' `Softmax(mask=...)`, which MultiHeadAttention uses).
    """
    if visible is None:
        return torch.softmax(scores, dim=-1)
    weights = torch.softmax(scores.masked_fill(~visible, -_large_number(scores.dtype)), dim=-1)
    return weights.masked_fill(~visible, 0.0)


def drop_weights(layer: Layer, weights: torch.Tensor, rate: float) -> torch.Tensor:
    """Dropout on attention weights, drawn from `layer.seed`'s generator when it has a seed."""
    if layer.seed is not None and layer._generator is None:
        layer._generator = torch.Generator().manual_seed(layer.seed)
    return weights * dropout_mask(weights.shape, rate, weights, layer._generator)


def combine_masks(query_mask: torch.Tensor | None, key_mask: torch.Tensor | None, causal: bool,
                  query: torch.Tensor, key: torch.Tensor) -> torch.Tensor | None:
    """Which (query, key) pairs may attend, broadcastable to scores `(batch, Tq, Tv)`; None = all.

    The AND of the query mask `(batch, Tq, 1)`, the key mask `(batch, 1, Tv)`
    and, if `causal`, the lower triangle `(1, Tq, Tv)` (query i sees keys j <= i),
    for query `(batch, Tq, ...)` and key `(batch, Tv, ...)`.
    """
    visible = None
    if query_mask is not None:
        visible = query_mask.unsqueeze(-1)
    if key_mask is not None:
        visible = key_mask.unsqueeze(-2) if visible is None else visible & key_mask.unsqueeze(-2)
    if causal:
        lower = causal_mask(query.shape[1], key.shape[1], query.device).unsqueeze(0)
        visible = lower if visible is None else visible & lower
    return visible


def causal_mask(query_length: int, key_length: int, device=None, offset: int = 0) -> torch.Tensor:
    """`(Tq, Tv)` booleans, True where key j <= query i + offset (Keras' causal mask at offset 0).

    `offset` is the number of cached keys before the first query (incremental decoding).
    """
    return torch.ones(query_length, key_length, dtype=torch.bool, device=device).tril(diagonal=offset)


def check_mask(mask: Any, like: torch.Tensor, layer: str, what: str) -> torch.Tensor | None:
    """A `(batch, time)` boolean mask for `like (batch, time, ...)`, or a clear error."""
    if mask is None:
        return None
    mask = torch.as_tensor(mask, device=like.device)
    expected = tuple(like.shape[:2])
    if tuple(mask.shape) != expected:
        raise ValueError(
            f"{layer}: {what} must have shape (batch, time) = {expected} to match the inputs of shape "
            f"{tuple(like.shape)}, got {tuple(mask.shape)}. Give one True (real step) or False "
            "(padding) per time step, e.g. mask = token_ids != 0."
        )
    return mask if mask.dtype == torch.bool else mask != 0


def unpack_attention_inputs(layer: str, inputs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`[query, value]` or `[query, value, key]` → (query, value, key), shapes checked."""
    if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3:
        raise ValueError(
            f"{layer} takes a list [query, value] or [query, value, key] of (batch, time, features) "
            f"tensors, got {_describe(inputs)}. For self-attention pass [x, x] or use SelfAttention."
        )
    query, value = inputs[0], inputs[1]
    key = inputs[2] if len(inputs) == 3 else value
    split_attention_shapes(layer, [tuple(t.shape) for t in (query, value, key)])
    return query, value, key


def split_attention_shapes(layer: str, input_shape: Any,
                           same_features: bool = True) -> tuple[Shape, Shape, Shape]:
    """Check `[query_shape, value_shape(, key_shape)]`; return (query, value, key) shapes.

    `same_features`: query and key are compared directly, so need equal sizes
    (False for layers that project them first).
    """
    if not isinstance(input_shape, (list, tuple)) or not 2 <= len(input_shape) <= 3 or not all(
            isinstance(shape, (list, tuple)) for shape in input_shape):
        raise ValueError(
            f"{layer} takes a list [query, value] or [query, value, key] of (batch, time, features) "
            f"tensors, got input shape {input_shape}. For self-attention pass [x, x] or use SelfAttention."
        )
    query, value = tuple(input_shape[0]), tuple(input_shape[1])
    key = tuple(input_shape[2]) if len(input_shape) == 3 else value
    for what, shape in (("query", query), ("value", value), ("key", key)):
        check_sequence_shape(layer, shape, what)
    if same_features and not _same(query[-1], key[-1]):
        raise ValueError(
            f"{layer}: query and key need the same number of features to be compared, got query "
            f"{query} and key {key}. Project one of them to the other's size first, e.g. with Dense({key[-1]})."
        )
    if not _same(value[1], key[1]):
        raise ValueError(f"{layer}: value and key need the same time length, got value {value} and key {key}.")
    if not (_same(query[0], value[0]) and _same(query[0], key[0])):
        raise ValueError(f"{layer}: query, value and key need the same batch size, got {query}, {value}, {key}.")
    return query, value, key


def check_sequence_shape(layer: str, shape: Shape, what: str = "inputs") -> None:
    """Raise a clear error unless `shape` is `(batch, time, features)`."""
    if len(shape) != 3:
        raise ValueError(
            f"{layer}: {what} must have rank 3, (batch, time, features), got shape {tuple(shape)}. "
            "For one sequence add a batch axis (x[None]); for token ids put an Embedding layer first."
        )


def _same(a: int | None, b: int | None) -> bool:
    return a is None or b is None or a == b


def _large_number(dtype: torch.dtype) -> float:
    # Keras' choice: 1e9, or 65504 (float16's largest) in half precision.
    return 65504.0 if dtype == torch.float16 else 1e9


def check_dropout_rate(rate: float, layer: str) -> float:
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{layer}: dropout must be in [0, 1), got {rate}.")
    return float(rate)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    return repr(value)
