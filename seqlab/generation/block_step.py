"""`BlockStep`: one new position through a causal `TransformerBlock`, as few tensor operations as the math needs.

Generating one token at a time runs each block on a single position
`x (batch, d)`. Through the layers that is about forty small operations per
block (three projections, reshapes, mask checks, two norms, the MLP), and on
a CPU their fixed cost, not the arithmetic, is the time. `BlockStep` gathers
the block's weights once and runs the same math directly:

    h = LN₁(x)                       (pre-norm; post-norm normalizes after each residual sum)
    [q | k | v] = h W_qkv + b_qkv    W_qkv = [W_q | W_k | W_v]  (d, 3·heads·key_dim): one product
    K, V = cache ⊕ (k, v)            the block's AttentionCache, one position longer
    a = softmax(q Kᵀ / √key_dim) V    per head, over every cached position (the new one included)
    x' = x + a W_o + b_o
    y = x' + act(LN₂(x') W₁ + b₁) W₂ + b₂

Dropout is the identity at inference. The result equals
`block.forward(x[:, None], cache=cache)[:, 0]` (tests, float64). Positions
the cache holds as padding (a padded prompt) stay hidden. Gather the steps
again after the weights change (`CachedStepper` does at every `prime`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from seqlab.layers.attention_cache import AttentionCache
from seqlab.layers.transformer import TransformerBlock

__all__ = ["BlockStep"]


class BlockStep:
    """`step(x (batch, d), cache) → (batch, d)`: the block's output for one new position (module docstring)."""

    def __init__(self, block: TransformerBlock):
        attention = block.attention
        self.heads, self.key_dim, self.value_dim = attention.num_heads, attention.key_dim, attention.value_dim
        self.embed_dim, self.norm_first, self.epsilon = block.embed_dim, block.norm_first, block.epsilon
        self.scale = 1.0 / math.sqrt(self.key_dim)
        with torch.no_grad():
            projections = (attention.query_dense, attention.key_dense, attention.value_dense)
            self.qkv_kernel = torch.cat([p.kernel.reshape(self.embed_dim, -1) for p in projections], dim=1)
            self.qkv_bias = _joined_bias(projections, self.qkv_kernel)
            output = attention.output_dense
            self.output_kernel = output.kernel.reshape(-1, output.kernel.shape[-1])
            self.output_bias = output.bias if output.use_bias else None
        self.hidden_kernel, self.hidden_bias = block.ffn_hidden.kernel, _bias(block.ffn_hidden)
        self.hidden_activation = block.ffn_hidden.activation
        self.ffn_kernel, self.ffn_bias = block.ffn_output.kernel, _bias(block.ffn_output)
        self.norms = [(norm.gamma if norm.scale else None, norm.beta if norm.center else None)
                      for norm in (block.attention_norm, block.ffn_norm)]
        self.split = (self.heads * self.key_dim, self.heads * self.key_dim, self.heads * self.value_dim)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, cache: AttentionCache) -> torch.Tensor:
        batch = x.shape[0]
        if self.norm_first:
            x = x + self._attend(self._norm(0, x), cache, batch)
            return x + self._feed_forward(self._norm(1, x))
        x = self._norm(0, x + self._attend(x, cache, batch))
        return self._norm(1, x + self._feed_forward(x))

    def _attend(self, h: torch.Tensor, cache: AttentionCache, batch: int) -> torch.Tensor:
        q, k, v = _affine(h, self.qkv_kernel, self.qkv_bias).split(self.split, dim=1)
        cache.append(k.view(batch, self.heads, 1, self.key_dim), v.view(batch, self.heads, 1, self.value_dim), None)
        mask = cache.mask
        heads = F.scaled_dot_product_attention(
            q.view(batch, self.heads, 1, self.key_dim), cache.keys, cache.values,
            attn_mask=None if mask is None else mask[:, None, None, :], scale=self.scale)
        return _affine(heads.reshape(batch, -1), self.output_kernel, self.output_bias)

    def _feed_forward(self, h: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden_activation(_affine(h, self.hidden_kernel, self.hidden_bias))
        return _affine(hidden, self.ffn_kernel, self.ffn_bias)

    def _norm(self, which: int, x: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.norms[which]
        return F.layer_norm(x, (self.embed_dim,), gamma, beta, self.epsilon)


def _affine(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`x W + b` for `x (batch, in)`, `W (in, out)`: one fused product when there is a bias."""
    return torch.addmm(bias, x, kernel) if bias is not None else x @ kernel


def _bias(dense) -> torch.Tensor | None:
    return dense.bias if dense.use_bias else None


def _joined_bias(projections, kernel: torch.Tensor) -> torch.Tensor | None:
    if not projections[0].use_bias:
        return None
    return torch.cat([p.bias.reshape(-1) for p in projections]).to(kernel)
