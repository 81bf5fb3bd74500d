"""`CachedStepper`: a causal transformer LM one token at a time, reading each block's keys and values from a cache.

For a `Sequential` of the form

    Embedding → PositionEmbedding | PositionalEncoding → TransformerBlock(causal=True) × n → [LayerNorm] → Dense…

`prime(ids (batch, time))` runs the prompt through every block once, filling
each block's `AttentionCache`; `step(ids (batch,))` then runs only the new
position: its embedding and position vector, one query row per block that
attends over the cached keys and values, and the head. A step costs one
position's work instead of the whole window's (`WindowStepper`), and its
outputs equal running the whole prefix through the model (tests, float32 and
float64). Steps run each block as a `BlockStep` (its weights gathered at every
`prime`): the block's math in a dozen tensor operations instead of the layers'
forty.

The window stays bounded: a model with learned positions knows only
`context` of them (its `PositionEmbedding` length), and a cached position's
keys depend on its absolute position, so they cannot slide. When the cache
holds `context` positions, the next step re-primes from the last
`keep = context // 2` tokens (default) and goes on from there: every token is
then predicted from between `keep` and `context` tokens before it, and the
re-priming, one pass over `keep` tokens, happens once every `context - keep`
steps. Within the first window the outputs are exactly the model's.

    >>> stepper = CachedStepper(model)                  # model with PositionEmbedding(sequence_length=128)
    >>> logits = stepper.prime(torch.tensor([[5, 9, 2]]))
    >>> logits = stepper.step(torch.tensor([7]))        # the logits after [5, 9, 2, 7]
"""

from __future__ import annotations

import torch

from seqlab.generation.block_step import BlockStep
from seqlab.layers.attention_cache import AttentionCache
from seqlab.layers.core import Activation, Dense, Dropout
from seqlab.layers.embedding import Embedding
from seqlab.layers.normalization import LayerNormalization
from seqlab.layers.positional import PositionalEncoding, PositionEmbedding
from seqlab.layers.transformer import TransformerBlock

__all__ = ["CachedStepper"]


class CachedStepper:
    """Step a causal transformer LM with a key/value cache per block (see the module docstring)."""

    def __init__(self, model, context: int | None = None, keep: int | None = None):
        layers = list(model.layers) if hasattr(model, "layers") else list(model)
        self.embedding, self.positions, self.blocks, self.head = _split(layers)
        limit = self.positions.sequence_length if isinstance(self.positions, PositionEmbedding) else None
        self.context = context or limit
        if self.context is None or self.context < 2:
            raise ValueError("CachedStepper needs context=N >= 2 (the most tokens the model reads at once) for a "
                             "model with sinusoidal positions.")
        if limit is not None and self.context > limit:
            raise ValueError(f"context={self.context} exceeds the {limit} positions the model learned; use "
                             f"context <= {limit}.")
        self.keep = keep if keep is not None else self.context // 2
        if not 1 <= self.keep < self.context:
            raise ValueError(f"keep must be between 1 and context - 1 = {self.context - 1}, got {self.keep}.")
        self.masking = bool(self.embedding.mask_zero)
        self.window: torch.Tensor | None = None   # (batch, <= context) the tokens the caches hold
        self.caches: list[AttentionCache] = []
        self.block_steps: list[BlockStep] = []

    @property
    def device(self) -> torch.device:
        return self.embedding.embeddings.device

    @torch.no_grad()
    def prime(self, ids: torch.Tensor) -> torch.Tensor:
        """Start from a prompt `(batch, time >= 1)` (its last `context` tokens); returns the last position's outputs."""
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise ValueError(f"prime() takes a prompt of shape (batch, time >= 1), got {tuple(ids.shape)}.")
        self.window = ids[:, -self.context:]
        self.caches = [AttentionCache() for _ in self.blocks]
        self.block_steps = [BlockStep(block) for block in self.blocks]   # the weights as they are now
        return self._run(self.window, start=0)

    @torch.no_grad()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Advance every stream by one token `ids (batch,)`; returns the outputs `(batch, ...)`."""
        if self.window is None:
            raise RuntimeError("call prime() before step(): the cache is empty.")
        ids = ids[:, None].to(self.window)
        if self.window.shape[1] == self.context:  # out of positions: start again from the last `keep` tokens
            return self.prime(torch.cat([self.window[:, self.context - self.keep + 1:], ids], dim=1))
        start = self.window.shape[1]
        self.window = torch.cat([self.window, ids], dim=1)
        if self.masking and bool((ids == 0).any()):  # a padding token: the layers' own masking handles it
            return self._run(ids, start)
        hidden = self.positions.forward(self.embedding.forward(ids), start=start)[:, 0]
        for block_step, cache in zip(self.block_steps, self.caches):
            hidden = block_step(hidden, cache)
        return self._head(hidden)

    def reorder(self, rows: torch.Tensor) -> None:
        """Row i continues former row `rows[i]` (beam search, or copying a primed stream to many)."""
        self.window = self.window.index_select(0, rows)
        for cache in self.caches:
            cache.reorder(rows)

    def _run(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        mask = ids != 0 if self.masking else None
        hidden = self.positions.forward(self.embedding.forward(ids), start=start)
        for block, cache in zip(self.blocks, self.caches):
            hidden = block.forward(hidden, mask=mask, training=False, cache=cache)
        return self._head(hidden[:, -1])

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.head:  # each layer's own math; Dropout is the identity in inference
            if not isinstance(layer, Dropout):
                hidden = layer.forward(hidden)
        return hidden


def _split(layers):
    if len(layers) < 3 or not isinstance(layers[0], Embedding) or not isinstance(
            layers[1], (PositionEmbedding, PositionalEncoding)):
        raise ValueError("CachedStepper needs Embedding → PositionEmbedding or PositionalEncoding → causal "
                         "TransformerBlocks → output layers.")
    unbuilt = [layer.name for layer in layers if not getattr(layer, "built", True)]
    if unbuilt:
        raise ValueError(f"CachedStepper needs a built model ({', '.join(unbuilt)} not built yet): call "
                         "model.build((None, None)) first.")
    index = 2
    blocks = []
    while index < len(layers) and isinstance(layers[index], (TransformerBlock, Dropout)):
        if isinstance(layers[index], TransformerBlock):
            if not layers[index].causal:
                raise ValueError(f"{layers[index].name} is not causal, so the model cannot generate.")
            blocks.append(layers[index])
        index += 1
    if not blocks:
        raise ValueError("CachedStepper needs at least one causal TransformerBlock after the positions.")
    head = layers[index:]
    for layer in head:
        if not isinstance(layer, (LayerNormalization, Dense, Dropout, Activation)):
            raise ValueError(f"CachedStepper can apply LayerNormalization, Dense, Dropout and Activation layers "
                             f"after the blocks, not {type(layer).__name__} ({layer.name}).")
    return layers[0], layers[1], blocks, head
