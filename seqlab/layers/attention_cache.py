"""`AttentionCache`: the keys and values a `MultiHeadAttention` layer projected, kept for its next call.

Incremental decoding writes one token at a time. Without a cache, step n
re-projects and re-attends the n tokens before it: O(n²) work per sequence
and a whole-window pass per token. With one, each call projects only the
new positions and attends over every cached key:

    self-attention (growing):  K ← [K_past; x_new W^K],  V ← [V_past; x_new W^V]
    cross-attention (static):  K = enc W^K, V = enc W^V   projected on the first call, reused after

Shapes: `keys (batch, heads, S, key_dim)`, `values (batch, heads, S,
value_dim)`, `mask (batch, S)` (True = a real position) or None when every
position is real. A growing cache keeps buffers with spare room (doubled when
full), so appending a step copies one position, not the whole history.

Beam search keeps one row per hypothesis: `reorder(rows)` makes row i the
cache of former row `rows[i]` (the beams' parents), as `index_select` does.

    >>> cache = AttentionCache()
    >>> out = mha(prompt, use_causal_mask=True, cache=cache)    # (batch, T, d); cache.length == T
    >>> out = mha(next_token, use_causal_mask=True, cache=cache) # (batch, 1, d) attends to T + 1 keys
"""

from __future__ import annotations

import torch


class AttentionCache:
    """Projected keys and values, grown call by call (self-attention) or set once (`static=True`, cross-attention)."""

    def __init__(self, static: bool = False):
        self.static = bool(static)
        self.length = 0
        self._keys: torch.Tensor | None = None     # (batch, heads, capacity, key_dim)
        self._values: torch.Tensor | None = None   # (batch, heads, capacity, value_dim)
        self._mask: torch.Tensor | None = None     # (batch, capacity) or None: all real

    @property
    def keys(self) -> torch.Tensor | None:
        return None if self._keys is None else self._keys[:, :, :self.length]

    @property
    def values(self) -> torch.Tensor | None:
        return None if self._values is None else self._values[:, :, :self.length]

    @property
    def mask(self) -> torch.Tensor | None:
        return None if self._mask is None else self._mask[:, :self.length]

    @property
    def filled(self) -> bool:
        """True once a static cache holds its keys (later calls reuse them)."""
        return self._keys is not None

    def append(self, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None) -> None:
        """Add the new positions `keys (batch, heads, t, key_dim)`, `values`, `mask (batch, t)` or None."""
        if self._keys is not None and (keys.shape[0] != self._keys.shape[0] or keys.shape[1] != self._keys.shape[1]):
            raise ValueError(f"this cache holds {self._keys.shape[0]} rows of {self._keys.shape[1]} heads; got keys "
                             f"of shape {tuple(keys.shape)}. Use a new AttentionCache for another batch.")
        new = keys.shape[2]
        end = self.length + new
        if self._keys is None or end > self._keys.shape[2]:
            self._grow(keys, values, max(end, 2 * (self._keys.shape[2] if self._keys is not None else new)))
        self._keys[:, :, self.length:end] = keys
        self._values[:, :, self.length:end] = values
        if mask is not None and self._mask is None:
            self._mask = torch.ones(keys.shape[0], self._keys.shape[2], dtype=torch.bool, device=keys.device)
        if self._mask is not None:
            self._mask[:, self.length:end] = True if mask is None else mask
        self.length = end

    def set(self, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None) -> None:
        """Hold exactly these keys and values (a static cache's one filling)."""
        self._keys, self._values = keys, values
        self._mask = mask
        self.length = keys.shape[2]

    def reorder(self, rows: torch.Tensor) -> None:
        """Row i becomes former row `rows[i]` (`rows (new_batch,)` long): beams follow their parents."""
        if self._keys is None:
            return
        self._keys = self._keys.index_select(0, rows)
        self._values = self._values.index_select(0, rows)
        if self._mask is not None:
            self._mask = self._mask.index_select(0, rows)

    def _grow(self, keys: torch.Tensor, values: torch.Tensor, capacity: int) -> None:
        batch, heads = keys.shape[:2]
        grown_keys = keys.new_empty(batch, heads, capacity, keys.shape[3])
        grown_values = values.new_empty(batch, heads, capacity, values.shape[3])
        if self._keys is not None:
            grown_keys[:, :, :self.length] = self.keys
            grown_values[:, :, :self.length] = self.values
        self._keys, self._values = grown_keys, grown_values
        if self._mask is not None:
            grown_mask = torch.ones(batch, capacity, dtype=torch.bool, device=keys.device)
            grown_mask[:, :self.length] = self.mask
            self._mask = grown_mask


class DecoderCache:
    """A `TransformerDecoderBlock`'s caches: causal self-attention's (growing) and cross-attention's (static)."""

    def __init__(self):
        self.self_attention = AttentionCache()
        self.cross_attention = AttentionCache(static=True)

    @property
    def length(self) -> int:
        """Target positions decoded so far."""
        return self.self_attention.length

    def reorder(self, rows: torch.Tensor) -> None:
        """Row i becomes former row `rows[i]` in both caches (beam search)."""
        self.self_attention.reorder(rows)
        self.cross_attention.reorder(rows)
