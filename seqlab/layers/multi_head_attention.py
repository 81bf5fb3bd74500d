"""`MultiHeadAttention`: h attention heads side by side, as in "Attention Is All You Need".

For query `(batch, T, d_q)`, value `(batch, S, d_v)` and key `(batch, S, d_k)`
(default: value), each head n projects and attends:

    Q_n = query W^Q_n + b^Q_n        (batch, T, key_dim)
    K_n = key   W^K_n + b^K_n        (batch, S, key_dim)
    V_n = value W^V_n + b^V_n        (batch, S, value_dim)
    head_n = softmax(Q_n K_nᵀ / √key_dim) V_n
    output = Σ_n head_n W^O_n + b^O  (batch, T, d_q), or output_shape

Weights use Keras' layout and order: `query/kernel (d_q, heads, key_dim)`,
`query/bias (heads, key_dim)`, the same for `key` and `value` (`value_dim`),
then `attention_output/kernel (heads, value_dim, d_out)` and its bias `(d_out,)`.

Masks (Keras' rules): the query mask `(batch, T)`, the value/key masks
`(batch, S)`, `attention_mask (batch, T, S)` (True = may attend) and
`use_causal_mask` combine with AND. A query row that may attend to nothing
(a padded query) gets all-zero weights, so its output is the output bias;
with `fully_masked_rows="average"` it gets equal weights on every key, as
Keras' own kernels give it (a model imported from Keras uses that, so layers
that read padded positions without a mask match Keras too). Real rows agree
either way.

Incremental decoding: `cache=AttentionCache()` keeps the projected keys
and values between calls, so each call projects only its new positions and
attends over all of them (with `use_causal_mask`, new query t sits at
position `past + t`); `AttentionCache(static=True)` projects the encoder's
outputs on the first call and reuses them (cross-attention). The outputs equal
the uncached layer's on the whole sequence (tests, float64 and float32).

Execution: `torch.nn.functional.scaled_dot_product_attention` (fused kernels)
whenever the weights are not requested; with `return_attention_scores=True`,
or seeded dropout in training, the explicit softmax runs. Tests hold both
paths equal.

    >>> mha = MultiHeadAttention(num_heads=4, key_dim=8)
    >>> x = torch.randn(2, 10, 32)
    >>> mha(x, x).shape
    torch.Size([2, 10, 32])
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from seqlab import constraints, initializers, regularizers
from seqlab.layers.attention import (causal_mask, check_dropout_rate, check_mask, combine_masks, drop_weights,
                                     masked_softmax, split_attention_shapes)
from seqlab.layers.attention_cache import AttentionCache
from seqlab.layers.base import Layer, Shape


class MultiHeadAttention(Layer):
    """Multi-head scaled dot-product attention (see the module docstring for the math).

    Call: `mha(query, value=None, key=None, query_mask=None, value_mask=None,
    key_mask=None, attention_mask=None, return_attention_scores=False,
    training=None, use_causal_mask=False, mask=None, cache=None)`. Without `value` it is
    self-attention (`value = key = query`). `mask` is the query's padding mask,
    and also the value's for self-attention; masks carried by the inputs
    (`Embedding(mask_zero=True)`) are used when none is given. Returns
    `(batch, T, d_out)`, plus the weights `(batch, heads, T, S)` with
    `return_attention_scores=True`. With a `cache`, `attention_mask` and the
    weights span every cached key `(batch, T, past + S)`.

        >>> mha = MultiHeadAttention(num_heads=2, key_dim=16)
        >>> target, source = torch.randn(3, 5, 32), torch.randn(3, 9, 64)
        >>> mha(target, source).shape
        torch.Size([3, 5, 32])
    """

    supports_masking = True

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None, dropout: float = 0.0,
                 use_bias: bool = True, output_shape: int | Sequence[int] | None = None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 seed: int | None = None, fully_masked_rows: str = "zeros", **kwargs):
        super().__init__(**kwargs)
        if fully_masked_rows not in ("zeros", "average"):
            raise ValueError(f"{self.name}: fully_masked_rows must be 'zeros' (seqlab) or 'average' (Keras' "
                             f"kernels), got {fully_masked_rows!r}.")
        self.fully_masked_rows = fully_masked_rows
        for what, value in (("num_heads", num_heads), ("key_dim", key_dim), ("value_dim", value_dim)):
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{self.name}: {what} must be a positive integer, got {value!r}.")
        self.num_heads, self.key_dim = num_heads, key_dim
        self.value_dim = value_dim or key_dim
        self.dropout = check_dropout_rate(dropout, self.name)
        self.use_bias = bool(use_bias)
        if isinstance(output_shape, int):
            output_shape = (output_shape,)
        self.output_shape = tuple(output_shape) if output_shape else None
        self.seed = seed
        self._generator: torch.Generator | None = None
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        projection = dict(use_bias=self.use_bias, kernel_initializer=self.kernel_initializer,
                          bias_initializer=self.bias_initializer, kernel_regularizer=self.kernel_regularizer,
                          bias_regularizer=self.bias_regularizer, kernel_constraint=self.kernel_constraint,
                          bias_constraint=self.bias_constraint)
        self.query_dense = _Projection(1, (num_heads, key_dim), name="query", **projection)
        self.key_dense = _Projection(1, (num_heads, key_dim), name="key", **projection)
        self.value_dense = _Projection(1, (num_heads, self.value_dim), name="value", **projection)
        self.output_dense = _Projection(2, self.output_shape, name="attention_output", **projection)

    # ----------------------------------------------------------------- building
    def build(self, input_shape: Any, value_shape: Shape | None = None, key_shape: Shape | None = None) -> None:
        """Build from the query shape (self-attention), or `[query, value(, key)]` shapes."""
        query_shape, value_shape, key_shape = self._shapes(input_shape, value_shape, key_shape)
        if self.output_shape is None:
            self.output_dense.out_dims = (query_shape[-1],)
        self.build_sublayer(self.query_dense, query_shape)
        self.build_sublayer(self.key_dense, key_shape)
        self.build_sublayer(self.value_dense, value_shape)
        self.build_sublayer(self.output_dense, (*query_shape[:-1], self.num_heads, self.value_dim))
        self.built = True

    def _shapes(self, input_shape, value_shape=None, key_shape=None) -> tuple[Shape, Shape, Shape]:
        if isinstance(input_shape, list) and input_shape and isinstance(input_shape[0], (list, tuple)):
            input_shape, value_shape, key_shape = (list(input_shape) + [None, None])[:3]
        value_shape = input_shape if value_shape is None else value_shape
        shapes = [input_shape, value_shape] + ([key_shape] if key_shape is not None else [])
        query_shape, value_shape, key_shape = split_attention_shapes(self.name, shapes, same_features=False)
        if query_shape[-1] is None or value_shape[-1] is None or key_shape[-1] is None:
            raise ValueError(f"{self.name} needs known feature sizes, got query {query_shape}, value "
                             f"{value_shape}, key {key_shape}.")
        return query_shape, value_shape, key_shape

    # ------------------------------------------------------------------ calling
    def __call__(self, query: Any, value: Any = None, key: Any = None, **kwargs: Any) -> Any:
        value = None if value is None else self._as_tensors(value)
        key = None if key is None else self._as_tensors(key)
        query = self._as_tensors(query)
        for name, tensor in (("value_mask", value), ("key_mask", key)):  # Keras reads each input's mask
            if tensor is not None and kwargs.get(name) is None:
                kwargs[name] = getattr(tensor, "_keras_mask", None)
        if not self.built:
            self.build_like([t for t in (query, value if value is not None else query, key) if t is not None])
        outputs = super().__call__(query, value, key, **kwargs)
        query_mask = next((m for m in (kwargs.get("query_mask"), kwargs.get("mask"),
                                       getattr(query, "_keras_mask", None)) if m is not None), None)
        output = outputs[0] if isinstance(outputs, tuple) else outputs
        output._keras_mask = query_mask
        return outputs

    def forward(self, query: torch.Tensor, value: torch.Tensor | None = None, key: torch.Tensor | None = None,
                query_mask: torch.Tensor | None = None, value_mask: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                return_attention_scores: bool = False, training: bool | None = None,
                use_causal_mask: bool = False, mask: torch.Tensor | None = None,
                cache: AttentionCache | None = None) -> Any:
        if value is None:  # self-attention: the padding mask covers the keys too
            value = query
            value_mask = mask if value_mask is None else value_mask
        key = value if key is None else key
        query_mask = mask if query_mask is None else query_mask
        self._shapes(tuple(query.shape), tuple(value.shape), tuple(key.shape))
        self._check_built_for(query, value, key)
        query_mask = check_mask(query_mask, query, self.name, "query_mask")
        value_mask = check_mask(value_mask, value, self.name, "value_mask")
        key_mask = check_mask(key_mask, value, self.name, "key_mask")
        if key_mask is not None:
            value_mask = key_mask if value_mask is None else value_mask & key_mask

        q = self.query_dense(query).transpose(1, 2)     # (batch, heads, T, key_dim)
        past = 0 if cache is None or cache.static else cache.length
        if cache is not None and cache.static and cache.filled:  # cross-attention: the encoder's, projected once
            k, v, value_mask = cache.keys, cache.values, cache.mask
        else:
            k = self.key_dense(key).transpose(1, 2)         # (batch, heads, S, key_dim)
            v = self.value_dense(value).transpose(1, 2)     # (batch, heads, S, value_dim)
            if cache is not None:
                (cache.set if cache.static else cache.append)(k, v, value_mask)
                k, v, value_mask = cache.keys, cache.values, cache.mask
        target, source = q.shape[2], k.shape[2]
        if attention_mask is not None:
            attention_mask = self._check_attention_mask(attention_mask, query.shape[0], target, source, query)
        causal = use_causal_mask
        if causal and past:  # the new queries sit at positions past, past + 1, ...: each sees the keys up to it
            causal = False
            if target > 1:
                attention_mask = _and(attention_mask, causal_mask(target, source, query.device, past).unsqueeze(0))
        visible = self._visible(target, source, query_mask, value_mask, attention_mask, causal, query)

        training = self.training if training is None else training
        dropout = self.dropout if training else 0.0
        if return_attention_scores or (dropout and self.seed is not None):
            heads, weights = self._explicit_attention(q, k, v, visible, causal, dropout)
        else:
            heads, weights = self._fused_attention(q, k, v, visible, causal, dropout), None
        output = self.output_dense(heads.transpose(1, 2))  # (batch, T, heads, value_dim) -> (batch, T, d_out)
        return (output, weights) if return_attention_scores else output

    def _visible(self, target: int, source: int, query_mask, value_mask, attention_mask, causal, query):
        """The AND of every mask, `(batch or 1, T, S)`; None when only causal (or nothing) applies."""
        if query_mask is None and value_mask is None and attention_mask is None:
            return None  # the causal-only case runs as is_causal in the fused kernel
        visible = combine_masks(query_mask, value_mask, False, query, query)
        if causal:
            visible = _and(visible, causal_mask(target, source, query.device).unsqueeze(0))
        return _and(visible, attention_mask)

    def _check_attention_mask(self, attention_mask, batch: int, target: int, source: int, query) -> torch.Tensor:
        attention_mask = torch.as_tensor(attention_mask, device=query.device)
        if attention_mask.dim() not in (2, 3) or tuple(attention_mask.shape[-2:]) != (target, source) or (
                attention_mask.dim() == 3 and attention_mask.shape[0] not in (1, batch)):
            raise ValueError(
                f"{self.name}: attention_mask must have shape (batch, T, S) = ({batch}, {target}, {source}) "
                f"(True = query t may attend to key s), got {tuple(attention_mask.shape)}."
            )
        attention_mask = attention_mask if attention_mask.dim() == 3 else attention_mask.unsqueeze(0)
        return attention_mask if attention_mask.dtype == torch.bool else attention_mask != 0

    def _check_built_for(self, query, value, key) -> None:
        for what, tensor, projection in (("query", query, self.query_dense), ("value", value, self.value_dense),
                                         ("key", key, self.key_dense)):
            built_for = projection.kernel.shape[0]
            if tensor.shape[-1] != built_for:
                raise ValueError(
                    f"{self.name} was built for {what} with {built_for} features, got {what} of shape "
                    f"{tuple(tensor.shape)}. Use a new layer for inputs of another size."
                )

    def _explicit_attention(self, q, k, v, visible, causal, dropout):
        """The reference: scores, masked softmax, dropout on the weights, weighted sum."""
        if visible is None and causal:
            visible = causal_mask(q.shape[2], k.shape[2], q.device).unsqueeze(0)
        scores = (q * (1.0 / math.sqrt(self.key_dim))) @ k.transpose(-1, -2)   # (batch, heads, T, S)
        weights = masked_softmax(scores, None if visible is None else visible.unsqueeze(1))
        if visible is not None and self.fully_masked_rows == "average":  # equal weights where nothing is visible
            hidden = ~visible.any(dim=-1, keepdim=True).unsqueeze(1)
            weights = torch.where(hidden, weights.new_full((), 1.0 / weights.shape[-1]), weights)
        dropped = drop_weights(self, weights, dropout) if dropout else weights
        return dropped @ v, weights  # Keras returns the weights before dropout here

    def _fused_attention(self, q, k, v, visible, causal, dropout):
        """PyTorch's fused kernel; rows with nothing visible are zeroed as in the reference."""
        scale = 1.0 / math.sqrt(self.key_dim)
        if visible is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal, scale=scale)
        # Open up fully hidden rows so the kernel never divides by zero, then zero them.
        any_visible = visible.any(dim=-1, keepdim=True)
        safe = (visible | ~any_visible).unsqueeze(1)
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=safe, dropout_p=dropout, scale=scale)
        if self.fully_masked_rows == "average":
            return torch.where(~any_visible.unsqueeze(1), v.mean(dim=-2, keepdim=True), heads)
        return heads.masked_fill(~any_visible.unsqueeze(1), 0.0)

    def compute_mask(self, inputs, mask=None):
        return mask if mask is not None else getattr(inputs, "_keras_mask", None)

    def compute_output_shape(self, input_shape: Any) -> Shape:
        query_shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        return (*query_shape[:-1], *(self.output_shape or (query_shape[-1],)))

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": None if self.output_shape is None else list(self.output_shape),
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "seed": self.seed,
            "fully_masked_rows": self.fully_masked_rows,
        }


def _and(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """a & b, where None means all True."""
    return b if a is None else a if b is None else a & b


class _Projection(Layer):
    """`(..., *in_dims)` → `(..., *out_dims)` with kernel `(*in_dims, *out_dims)` and bias `(*out_dims,)`.

    The multi-axis dense layer MultiHeadAttention uses (Keras' `EinsumDense`):
    the last `in_axes` input axes are contracted with the kernel's first axes.
    """

    def __init__(self, in_axes: int, out_dims: tuple[int, ...] | None, use_bias: bool, kernel_initializer,
                 bias_initializer, kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint,
                 **kwargs):
        super().__init__(**kwargs)
        self.in_axes, self.out_dims, self.use_bias = in_axes, out_dims, use_bias
        self._initializers = (kernel_initializer, bias_initializer)
        self._regularizers_pair = (kernel_regularizer, bias_regularizer)
        self._constraints_pair = (kernel_constraint, bias_constraint)

    def build(self, input_shape: Shape) -> None:
        in_dims = tuple(input_shape[-self.in_axes:])
        self.add_weight("kernel", in_dims + tuple(self.out_dims), self._initializers[0],
                        self._regularizers_pair[0], self._constraints_pair[0])
        if self.use_bias:
            self.add_weight("bias", tuple(self.out_dims), self._initializers[1],
                            self._regularizers_pair[1], self._constraints_pair[1])
        self.built = True

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        leading = inputs.shape[:-self.in_axes]
        kernel = self.kernel.reshape(-1, math.prod(self.out_dims))
        outputs = F.linear(inputs.reshape(*leading, kernel.shape[0]), kernel.T,
                           self.bias.reshape(-1) if self.use_bias else None)
        return outputs.reshape(*leading, *self.out_dims)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape[:-self.in_axes], *self.out_dims)
