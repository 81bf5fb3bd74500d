"""`TransformerDecoderBlock`: the Transformer decoder layer (masked self-attention, cross-attention, MLP).

For target x `(batch, T, embed_dim)` and the encoder's outputs m `(batch, S,
d_m)`, post-norm (the paper's figure, PyTorch's `nn.TransformerDecoderLayer`,
the default):

    h = LayerNorm(x + Dropout(SelfAttention(x, causal)))
    c = LayerNorm(h + Dropout(CrossAttention(h, m)))
    y = LayerNorm(c + Dropout(Dense(embed_dim)(Dense(ff_dim, relu)(c))))

and with `norm_first=True` (pre-norm):

    h = x + Dropout(SelfAttention(LayerNorm(x), causal))
    c = h + Dropout(CrossAttention(LayerNorm(h), m))
    y = c + Dropout(MLP(LayerNorm(c)))

Self-attention is causal (target position t sees positions <= t) and hides
padded target positions (`mask (batch, T)`); cross-attention lets every
target position read every real encoder position (`encoder_mask (batch, S)`).
Both masks may come from the inputs (`Embedding(mask_zero=True)`).

Incremental decoding: `block(next_tokens, memory, cache=DecoderCache())`
runs the new target positions only, with the earlier positions' keys and
values and the encoder's (projected on the first call) read from the cache;
the outputs equal the whole-sequence call's (tests).

    >>> block = TransformerDecoderBlock(embed_dim=32, num_heads=4, ff_dim=64)
    >>> block(torch.randn(2, 7, 32), torch.randn(2, 11, 32)).shape
    torch.Size([2, 7, 32])
"""

from __future__ import annotations

from typing import Any

import torch

from seqlab import activations
from seqlab.layers.attention import check_mask, check_sequence_shape
from seqlab.layers.attention_cache import DecoderCache
from seqlab.layers.base import Layer, Shape
from seqlab.layers.core import Dense, Dropout
from seqlab.layers.multi_head_attention import MultiHeadAttention
from seqlab.layers.normalization import LayerNormalization
from seqlab.layers.transformer import head_size


class TransformerDecoderBlock(Layer):
    """Causal self-attention, cross-attention over an encoder's outputs and a two-layer MLP (module docstring).

    Call: `block(target, encoder_outputs, mask=None, encoder_mask=None,
    training=None, cache=None, return_attention_scores=False)` → `(batch, T,
    embed_dim)`, plus the cross-attention weights `(batch, heads, T, S)` with
    `return_attention_scores=True`. Weights, in
    order: `self_attention`, `cross_attention` (MultiHeadAttention),
    `ffn_hidden` (Dense(ff_dim)), `ffn_output` (Dense(embed_dim)), then the
    LayerNormalizations `self_attention_norm`, `cross_attention_norm`,
    `ffn_norm`. `dropout` applies to each branch's output before its residual sum.

        >>> block = TransformerDecoderBlock(embed_dim=16, num_heads=2, ff_dim=32, norm_first=True)
        >>> block(torch.randn(3, 5, 16), torch.randn(3, 9, 24), encoder_mask=torch.ones(3, 9, dtype=torch.bool)).shape
        torch.Size([3, 5, 16])
    """

    supports_masking = True

    def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, dropout: float = 0.1,
                 norm_first: bool = False, key_dim: int | None = None, activation="relu",
                 epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.ff_dim = embed_dim, num_heads, ff_dim
        self.key_dim = head_size(self.name, embed_dim, num_heads, ff_dim, key_dim)
        self.dropout, self.norm_first = float(dropout), bool(norm_first)
        self.activation = activations.get(activation)
        self.epsilon = float(epsilon)
        self.self_attention = MultiHeadAttention(num_heads, self.key_dim, name="self_attention")
        self.cross_attention = MultiHeadAttention(num_heads, self.key_dim, name="cross_attention")
        self.ffn_hidden = Dense(ff_dim, activation=self.activation, name="ffn_hidden")
        self.ffn_output = Dense(embed_dim, name="ffn_output")
        self.self_attention_norm = LayerNormalization(epsilon=self.epsilon, name="self_attention_norm")
        self.cross_attention_norm = LayerNormalization(epsilon=self.epsilon, name="cross_attention_norm")
        self.ffn_norm = LayerNormalization(epsilon=self.epsilon, name="ffn_norm")
        self.self_attention_dropout = Dropout(self.dropout, name="self_attention_dropout")
        self.cross_attention_dropout = Dropout(self.dropout, name="cross_attention_dropout")
        self.ffn_dropout = Dropout(self.dropout, name="ffn_dropout")

    def build(self, input_shape: Any) -> None:
        """Build from `[target_shape, encoder_shape]` (or the target's shape alone: encoder of embed_dim)."""
        if isinstance(input_shape, list) and input_shape and isinstance(input_shape[0], (list, tuple)):
            target_shape, encoder_shape = input_shape[0], input_shape[1]
        else:
            target_shape, encoder_shape = tuple(input_shape), tuple(input_shape)
        self._check_target(target_shape)
        check_sequence_shape(self.name, encoder_shape, "encoder_outputs")
        self.build_sublayer(self.self_attention, target_shape)
        self.build_sublayer(self.cross_attention, [target_shape, encoder_shape])
        self.build_sublayer(self.ffn_hidden, target_shape)
        self.build_sublayer(self.ffn_output, (*target_shape[:-1], self.ff_dim))
        for layer in (self.self_attention_norm, self.cross_attention_norm, self.ffn_norm, self.self_attention_dropout,
                      self.cross_attention_dropout, self.ffn_dropout):
            self.build_sublayer(layer, target_shape)
        self.built = True

    def __call__(self, inputs: Any, encoder_outputs: Any = None, **kwargs: Any) -> Any:
        if encoder_outputs is None:
            raise TypeError(f"{self.name} needs the encoder's outputs: call block(target, encoder_outputs).")
        inputs, encoder_outputs = self._as_tensors(inputs), self._as_tensors(encoder_outputs)
        if kwargs.get("encoder_mask") is None:
            kwargs["encoder_mask"] = getattr(encoder_outputs, "_keras_mask", None)
        if not self.built:
            self.build_like([inputs, encoder_outputs])
        return super().__call__(inputs, encoder_outputs, **kwargs)

    def forward(self, inputs: torch.Tensor, encoder_outputs: torch.Tensor, mask: torch.Tensor | None = None,
                encoder_mask: torch.Tensor | None = None, training: bool | None = None,
                cache: DecoderCache | None = None, return_attention_scores: bool = False) -> Any:
        self._check_target(tuple(inputs.shape))
        check_sequence_shape(self.name, tuple(encoder_outputs.shape), "encoder_outputs")
        if encoder_outputs.shape[0] != inputs.shape[0]:
            raise ValueError(f"{self.name}: target and encoder_outputs must have the same batch size, got "
                             f"{tuple(inputs.shape)} and {tuple(encoder_outputs.shape)}.")
        mask = check_mask(mask, inputs, self.name, "mask")
        encoder_mask = check_mask(encoder_mask, encoder_outputs, self.name, "encoder_mask")
        self_cache, cross_cache = (None, None) if cache is None else (cache.self_attention, cache.cross_attention)
        cross_weights = []

        def attend_to_self(x):
            attended = self.self_attention(x, mask=mask, use_causal_mask=True, training=training, cache=self_cache)
            return self.self_attention_dropout(attended, training=training)

        def attend_to_encoder(x):
            attended = self.cross_attention(x, encoder_outputs, query_mask=mask, value_mask=encoder_mask,
                                            training=training, cache=cross_cache,
                                            return_attention_scores=return_attention_scores)
            if return_attention_scores:
                attended, weights = attended
                cross_weights.append(weights)
            return self.cross_attention_dropout(attended, training=training)

        def feed_forward(x):
            return self.ffn_dropout(self.ffn_output(self.ffn_hidden(x)), training=training)

        if self.norm_first:
            hidden = inputs + attend_to_self(self.self_attention_norm(inputs))
            hidden = hidden + attend_to_encoder(self.cross_attention_norm(hidden))
            output = hidden + feed_forward(self.ffn_norm(hidden))
        else:
            hidden = self.self_attention_norm(inputs + attend_to_self(inputs))
            hidden = self.cross_attention_norm(hidden + attend_to_encoder(hidden))
            output = self.ffn_norm(hidden + feed_forward(hidden))
        return (output, cross_weights[0]) if return_attention_scores else output

    def _check_target(self, shape: Shape) -> None:
        check_sequence_shape(self.name, shape, "target")
        if shape[-1] is not None and shape[-1] != self.embed_dim:
            raise ValueError(
                f"{self.name} was made for embed_dim={self.embed_dim} features, got a target of shape "
                f"{tuple(shape)}. Set embed_dim={shape[-1]}, or map the target to {self.embed_dim} "
                f"features first (Embedding or Dense)."
            )

    def compute_output_shape(self, input_shape: Any) -> Shape:
        return tuple(input_shape[0]) if isinstance(input_shape, list) else tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads,
                "ff_dim": self.ff_dim, "dropout": self.dropout, "norm_first": self.norm_first,
                "key_dim": self.key_dim, "activation": activations.serialize(self.activation),
                "epsilon": self.epsilon}
