"""The transformer translator: the encoder–decoder of "Attention Is All You Need" (Vaswani et al. 2017).

    encoder   e = Blocks_enc(Dropout(√d · E_src[x] + P))            (batch, S, d)   self-attention over the source
    decoder   h = Blocks_dec(Dropout(√d · E_tgt[y_<t] + P), e)       (batch, T, d)   causal self-attention,
                                                                                     cross-attention over e
              p(y_t | y_<t, x) = softmax(W_o h_t + b_o)             (batch, T, target vocabulary)

P: the sinusoidal encoding (`positions="sinusoidal"`, any length) or learned
positions (`"learned"`, `max_length` steps). Blocks are `TransformerBlock`s
and `TransformerDecoderBlock`s, pre-norm by default (`norm_first`; a final
LayerNorm closes each stack), post-norm as in the paper with
`norm_first=False`. When source and target share one vocabulary (a joint
subword vocabulary), `share_embeddings` (default: whenever they are equal)
uses one table for both.

Decoding is incremental: `start(source)` runs the encoder once and opens one
`DecoderCache` per decoder block; each `decode_step` runs only the new
target position, whose self-attention reads the cached keys and values of
the positions before it and whose cross-attention reads the encoder's keys
and values, projected on the first step. Greedy decoding and beam search
(`seqlab.generation.decoding`) drive it; `reorder_state` moves the caches
with the beams. The steps equal the teacher-forced pass (tests).

    >>> model = TransformerTranslator(source_vocab, target_vocab, embed_dim=64, heads=4, ff_dim=128)
    >>> logits = model((source_ids, target_in_ids))          # (batch, T, target vocabulary)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import torch

from seqlab.apps.translate.settings import POSITIONS
from seqlab.apps.translate.text import special_indices, vocabulary_of
from seqlab.apps.translate.translation import TranslatesText
from seqlab.data import Vocabulary
from seqlab.layers import (DecoderCache, Dense, Dropout, Embedding, LayerNormalization, PositionalEncoding,
                           PositionEmbedding, TransformerBlock, TransformerDecoderBlock)
from seqlab.serialization import register_serializable
from seqlab.training import Model

__all__ = ["ATTENTION_HEADS", "TransformerTranslator"]

ATTENTION_HEADS = ("mean", "each")  # the cross-attention decode_step returns



@register_serializable
class TransformerTranslator(TranslatesText, Model):
    """Transformer encoder–decoder (see the module docstring for the math and the cached decoding).

    Input `(source (batch, S), target_in (batch, T))` token ids, 0 = padding;
    output logits `(batch, T, len(target_vocabulary))`. Arguments:
    `embed_dim` d, `heads` per attention layer (d / heads features each),
    `ff_dim` the feed-forward width, `encoder_layers` and `decoder_layers`
    blocks, `dropout` after the embeddings and on every block's branches,
    `positions` "sinusoidal" or "learned" (`max_length` steps per side),
    `norm_first`, `share_embeddings` (None: share when the vocabularies are
    equal), `max_output_length` the default decoding limit, `training_data`
    how the pairs were chosen (for `seqlab translate evaluate`).
    """

    def __init__(self, source_vocabulary: Vocabulary | dict, target_vocabulary: Vocabulary | dict,
                 embed_dim: int = 256, heads: int = 4, ff_dim: int = 1024, encoder_layers: int = 3,
                 decoder_layers: int = 3, dropout: float = 0.1, positions: str = "sinusoidal",
                 max_length: int = 128, norm_first: bool = True, share_embeddings: bool | None = None,
                 max_output_length: int = 30, training_data: dict[str, Any] | None = None):
        super().__init__()
        self.source_vocabulary = vocabulary_of(source_vocabulary, "source_vocabulary")
        self.target_vocabulary = vocabulary_of(target_vocabulary, "target_vocabulary")
        self.sos, self.eos = special_indices(self.target_vocabulary)
        if positions not in POSITIONS:
            raise ValueError(f"positions must be 'sinusoidal' or 'learned', got {positions!r}.")
        for what, value in (("embed_dim", embed_dim), ("heads", heads), ("ff_dim", ff_dim),
                            ("encoder_layers", encoder_layers), ("decoder_layers", decoder_layers),
                            ("max_length", max_length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{what} must be a positive whole number, got {value!r}.")
        same_vocabulary = self.source_vocabulary.to_json() == self.target_vocabulary.to_json()
        if share_embeddings and not same_vocabulary:
            raise ValueError("share_embeddings needs one vocabulary for both languages (a joint subword "
                             "vocabulary); these differ. Leave share_embeddings unset.")
        self.share_embeddings = same_vocabulary if share_embeddings is None else bool(share_embeddings)
        self.embed_dim, self.heads, self.ff_dim = embed_dim, heads, ff_dim
        self.encoder_layers, self.decoder_layers = encoder_layers, decoder_layers
        self.dropout_rate, self.positions_kind, self.max_length = float(dropout), positions, max_length
        self.norm_first, self.max_output_length, self.training_data = bool(norm_first), max_output_length, training_data
        self.attention_heads = "mean"  # what decode_step returns: the heads' mean cross-attention, or "each" head's

        self.source_embedding = Embedding(len(self.source_vocabulary), embed_dim, mask_zero=True)
        self.target_embedding = (self.source_embedding if self.share_embeddings
                                 else Embedding(len(self.target_vocabulary), embed_dim))
        if positions == "learned":
            self.source_positions = PositionEmbedding(max_length, name="source_positions")
            self.target_positions = PositionEmbedding(max_length, name="target_positions")
        else:
            self.source_positions = self.target_positions = PositionalEncoding(name="positions")
        self.dropout = Dropout(dropout)
        self.encoder_blocks = torch.nn.ModuleList(
            TransformerBlock(embed_dim, heads, ff_dim, dropout=dropout, norm_first=norm_first,
                             name=f"encoder_block_{index}") for index in range(encoder_layers))
        self.decoder_blocks = torch.nn.ModuleList(
            TransformerDecoderBlock(embed_dim, heads, ff_dim, dropout=dropout, norm_first=norm_first,
                                    name=f"decoder_block_{index}") for index in range(decoder_layers))
        self.encoder_norm = LayerNormalization(epsilon=1e-6, name="encoder_norm") if norm_first else None
        self.decoder_norm = LayerNormalization(epsilon=1e-6, name="decoder_norm") if norm_first else None
        self.output_layer = Dense(len(self.target_vocabulary))
        self._build()

    def _build(self) -> None:
        """Create every weight now, so that a restored model can load its weights before any call."""
        shape = (None, None, self.embed_dim)
        for layer in (self.source_embedding, self.target_embedding):
            layer.build(None)
        for layer in (self.source_positions, self.target_positions, *self.encoder_blocks):
            layer.build(shape)
        for block in self.decoder_blocks:
            block.build([shape, shape])
        for norm in (self.encoder_norm, self.decoder_norm):
            if norm is not None:
                norm.build(shape)
        self.output_layer.build(shape)

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Teacher forcing: `(source (batch, S), target_in (batch, T))` → logits `(batch, T, vocabulary)`."""
        source, target_in = inputs
        memory, mask = self.encode(source)
        # No mask on the target side: padding comes last, and causal attention keeps it from earlier steps.
        return self._decode(target_in, memory, mask, start=0, caches=None)

    def encode(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's outputs `(batch, S, d)` and the source mask `(batch, S)` (True at real tokens)."""
        mask = source != 0
        hidden = self._embed(self.source_embedding, self.source_positions, source, start=0)
        for block in self.encoder_blocks:
            hidden = block(hidden, mask=mask)
        return (self.encoder_norm(hidden) if self.encoder_norm is not None else hidden), mask

    def _embed(self, embedding: Embedding, positions, ids: torch.Tensor, start: int) -> torch.Tensor:
        vectors = embedding(ids) * math.sqrt(self.embed_dim)  # a new tensor: no mask travels; masks are passed
        return self.dropout(positions(vectors, start=start))

    def _decode(self, target_in: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor, start: int,
                caches: list[DecoderCache] | None, with_weights: bool = False) -> Any:
        """Logits `(batch, T, V)`; with `with_weights`, also the last block's cross-attention `(batch, heads, T, S)`."""
        hidden = self._embed(self.target_embedding, self.target_positions, target_in, start)
        weights = None
        for index, block in enumerate(self.decoder_blocks):
            wanted = with_weights and index == len(self.decoder_blocks) - 1
            hidden = block(hidden, memory, encoder_mask=mask, cache=None if caches is None else caches[index],
                           return_attention_scores=wanted)
            if wanted:
                hidden, weights = hidden
        if self.decoder_norm is not None:
            hidden = self.decoder_norm(hidden)
        logits = self.output_layer(hidden)
        return (logits, weights) if with_weights else logits

    def start(self, source: torch.Tensor) -> dict[str, Any]:
        """Run the encoder once: `memory (batch, S, d)`, `mask (batch, S)`, one empty `DecoderCache` per block."""
        memory, mask = self.encode(source)
        return {"memory": memory, "mask": mask, "caches": [DecoderCache() for _ in self.decoder_blocks]}

    def decode_step(self, tokens: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """One step for `seqlab.generation.decoding`: tokens (batch,) → log-probs (batch, V), state, attention.

        The attention is the last decoder block's cross-attention (the heatmap of `--show-attention`):
        averaged over its heads `(batch, S)`, or each head's `(batch, heads, S)` when `attention_heads` is
        "each". The state's caches grow in place: a state is stepped once (the decoders do).
        """
        if self.attention_heads not in ATTENTION_HEADS:
            raise ValueError(f"attention_heads must be one of {ATTENTION_HEADS}, got {self.attention_heads!r}.")
        caches = state["caches"]
        logits, weights = self._decode(tokens[:, None], state["memory"], state["mask"], caches[0].length, caches,
                                       with_weights=True)
        weights = weights[:, :, 0] if self.attention_heads == "each" else weights[:, :, 0].mean(dim=1)
        return torch.log_softmax(logits[:, 0], dim=-1), state, weights

    @staticmethod
    def reorder_state(state: dict[str, Any], indices: torch.Tensor) -> dict[str, Any]:
        """The state of the rows `indices` (beam search keeps, repeats and drops prefixes)."""
        for cache in state["caches"]:
            cache.reorder(indices)
        return {"memory": state["memory"].index_select(0, indices), "mask": state["mask"].index_select(0, indices),
                "caches": state["caches"]}

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        return {
            "source_vocabulary": json.loads(self.source_vocabulary.to_json()),
            "target_vocabulary": json.loads(self.target_vocabulary.to_json()),
            "embed_dim": self.embed_dim, "heads": self.heads, "ff_dim": self.ff_dim,
            "encoder_layers": self.encoder_layers, "decoder_layers": self.decoder_layers,
            "dropout": self.dropout_rate, "positions": self.positions_kind, "max_length": self.max_length,
            "norm_first": self.norm_first, "share_embeddings": self.share_embeddings,
            "max_output_length": self.max_output_length, "training_data": self.training_data,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TransformerTranslator":
        return cls(**config)
