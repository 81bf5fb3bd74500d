"""`TransformerBlock`: the Transformer encoder layer (self-attention + MLP, residuals, LayerNorm).

For inputs x `(batch, time, embed_dim)`, post-norm (the paper's and the
tutorials' figure, the default):

    h = LayerNorm(x + Dropout(MultiHeadAttention(x, x)))
    y = LayerNorm(h + Dropout(Dense(embed_dim)(Dense(ff_dim, relu)(h))))

and with `norm_first=True` (pre-norm, steadier for deep stacks):

    h = x + Dropout(MultiHeadAttention(LayerNorm(x)))
    y = h + Dropout(MLP(LayerNorm(h)))

The padding mask `(batch, time)` (from `Embedding(mask_zero=True)` or `mask=`)
hides padded keys from every query and passes through; `causal=True` also
hides the future (position i sees j <= i), for language models, and lets a
block run incrementally: `block(next_positions, cache=AttentionCache())`
attends over the keys and values of every position it has seen. Each head has
`key_dim = embed_dim // num_heads` unless given (the Keras text-classification
example passes `key_dim=embed_dim`).

    >>> block = TransformerBlock(embed_dim=32, num_heads=4, ff_dim=64)
    >>> block(torch.randn(2, 10, 32)).shape
    torch.Size([2, 10, 32])
"""

from __future__ import annotations

import torch

from seqlab import activations
from seqlab.layers.attention import check_mask, check_sequence_shape
from seqlab.layers.attention_cache import AttentionCache
from seqlab.layers.base import Layer, Shape
from seqlab.layers.core import Dense, Dropout
from seqlab.layers.multi_head_attention import MultiHeadAttention
from seqlab.layers.normalization import LayerNormalization
from seqlab.layers.positional import PositionalEncoding, PositionEmbedding


class TransformerBlock(Layer):
    """Multi-head self-attention and a two-layer MLP, each with residual + LayerNorm (module docstring).

    Weights, in order: `attention` (MultiHeadAttention), `ffn_hidden`
    (Dense(ff_dim)), `ffn_output` (Dense(embed_dim)), `attention_norm`,
    `ffn_norm` (LayerNormalization, epsilon 1e-6 as in the Keras example).
    `dropout` applies to each branch's output before the residual sum.

        >>> block = TransformerBlock(embed_dim=16, num_heads=2, ff_dim=32, causal=True)
        >>> block(torch.randn(3, 12, 16), mask=torch.ones(3, 12, dtype=torch.bool)).shape
        torch.Size([3, 12, 16])
    """

    supports_masking = True

    def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, dropout: float = 0.1,
                 norm_first: bool = False, causal: bool = False, key_dim: int | None = None,
                 activation="relu", epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.ff_dim = embed_dim, num_heads, ff_dim
        self.key_dim = head_size(self.name, embed_dim, num_heads, ff_dim, key_dim)
        self.dropout, self.norm_first, self.causal = float(dropout), bool(norm_first), bool(causal)
        self.activation = activations.get(activation)
        self.epsilon = float(epsilon)
        # Registration order is the weight order (Keras' tutorial block: attention, MLP, norms).
        self.attention = MultiHeadAttention(num_heads, self.key_dim, name="attention")
        self.ffn_hidden = Dense(ff_dim, activation=self.activation, name="ffn_hidden")
        self.ffn_output = Dense(embed_dim, name="ffn_output")
        self.attention_norm = LayerNormalization(epsilon=self.epsilon, name="attention_norm")
        self.ffn_norm = LayerNormalization(epsilon=self.epsilon, name="ffn_norm")
        self.attention_dropout = Dropout(self.dropout, name="attention_dropout")
        self.ffn_dropout = Dropout(self.dropout, name="ffn_dropout")

    def build(self, input_shape: Shape) -> None:
        self._check_features(input_shape)
        self.build_sublayer(self.attention, input_shape)
        self.build_sublayer(self.ffn_hidden, input_shape)
        self.build_sublayer(self.ffn_output, (*input_shape[:-1], self.ff_dim))
        self.build_sublayer(self.attention_norm, input_shape)
        self.build_sublayer(self.ffn_norm, input_shape)
        for dropout in (self.attention_dropout, self.ffn_dropout):
            self.build_sublayer(dropout, input_shape)
        self.built = True

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool | None = None,
                cache: AttentionCache | None = None) -> torch.Tensor:
        """`(batch, time, embed_dim)` → the same; with a `cache` (causal blocks), `inputs` are the next positions."""
        self._check_features(tuple(inputs.shape))
        mask = check_mask(mask, inputs, self.name, "mask")
        if cache is not None and not self.causal:
            raise ValueError(f"{self.name} is not causal: every position sees the ones after it, so its keys and "
                             "values cannot be cached step by step. Use TransformerBlock(causal=True).")

        def attend(x):
            attended = self.attention(x, mask=mask, use_causal_mask=self.causal, training=training, cache=cache)
            return self.attention_dropout(attended, training=training)

        def feed_forward(x):
            return self.ffn_dropout(self.ffn_output(self.ffn_hidden(x)), training=training)

        if self.norm_first:
            hidden = inputs + attend(self.attention_norm(inputs))
            return hidden + feed_forward(self.ffn_norm(hidden))
        hidden = self.attention_norm(inputs + attend(inputs))
        return self.ffn_norm(hidden + feed_forward(hidden))

    def _check_features(self, shape: Shape) -> None:
        check_sequence_shape(self.name, shape)
        if shape[-1] is not None and shape[-1] != self.embed_dim:
            raise ValueError(
                f"{self.name} was made for embed_dim={self.embed_dim} features, got inputs of shape "
                f"{tuple(shape)}. Set embed_dim={shape[-1]}, or map the inputs to {self.embed_dim} "
                f"features first (Embedding or Dense)."
            )

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads,
                "ff_dim": self.ff_dim, "dropout": self.dropout, "norm_first": self.norm_first,
                "causal": self.causal, "key_dim": self.key_dim,
                "activation": activations.serialize(self.activation), "epsilon": self.epsilon}


def head_size(layer: str, embed_dim: int, num_heads: int, ff_dim: int, key_dim: int | None) -> int:
    """Check a transformer block's sizes; the features each head reads (`key_dim`, or embed_dim / num_heads)."""
    for what, value in (("embed_dim", embed_dim), ("num_heads", num_heads), ("ff_dim", ff_dim)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{layer}: {what} must be a positive integer, got {value!r}.")
    if key_dim is None and embed_dim % num_heads:
        raise ValueError(
            f"{layer}: embed_dim={embed_dim} is not divisible by num_heads={num_heads}. Choose "
            f"num_heads dividing embed_dim, or pass key_dim (the size of each head) explicitly."
        )
    return key_dim or embed_dim // num_heads


def transformer_stack(embed_dim: int, num_heads: int, ff_dim: int, num_blocks: int = 1, dropout: float = 0.1,
                      max_len: int | None = None, causal: bool = False, norm_first: bool = False) -> list[Layer]:
    """The layers between an `Embedding(..., embed_dim)` and a model's head, for a `Sequential`.

    Positions, then `num_blocks` `TransformerBlock`s, then (pre-norm only) a
    final `LayerNormalization`, since pre-norm blocks leave their residual
    stream unnormalized:

        [PositionEmbedding(max_len) | PositionalEncoding()] → TransformerBlock × num_blocks → [LayerNorm]

    With `max_len`, positions are learned (`PositionEmbedding`, the Keras
    text-classification example; sequences are then limited to `max_len`
    steps); without it they are the fixed sinusoids (any length).
    `(batch, time, embed_dim)` in and out; masks pass through.

        >>> [type(layer).__name__ for layer in transformer_stack(32, 2, 64, num_blocks=2, max_len=100)]
        ['PositionEmbedding', 'TransformerBlock', 'TransformerBlock']
    """
    if num_blocks < 1:
        raise ValueError(f"num_blocks must be at least 1, got {num_blocks}.")
    positions = PositionEmbedding(max_len, name="positions") if max_len else PositionalEncoding(name="positions")
    blocks = [TransformerBlock(embed_dim, num_heads, ff_dim, dropout=dropout, causal=causal,
                               norm_first=norm_first, name=f"transformer_block_{index}")
              for index in range(num_blocks)]
    final_norm = [LayerNormalization(epsilon=1e-6, name="final_norm")] if norm_first else []
    return [positions, *blocks, *final_norm]
