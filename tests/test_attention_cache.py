"""AttentionCache: incremental self- and cross-attention equal the whole-sequence layers."""

from __future__ import annotations

import pytest
import torch

from seqlab import layers
from seqlab.layers import AttentionCache, MultiHeadAttention, TransformerBlock


def padded(batch: int, time: int, lengths: list[int]) -> torch.Tensor:
    return torch.arange(time)[None, :] < torch.tensor(lengths)[:, None]


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_growing_cache_equals_causal_self_attention(dtype, tolerance):
    torch.manual_seed(0)
    mha = MultiHeadAttention(num_heads=2, key_dim=4, dtype=dtype)
    x = torch.randn(3, 11, 8, dtype=dtype)
    mask = padded(3, 11, [11, 6, 9])
    whole = mha(x, use_causal_mask=True, mask=mask)
    cache = AttentionCache()
    chunks = [(0, 3), (3, 4), (4, 8), (8, 9), (9, 10), (10, 11)]  # a prompt, single steps and a block of 4
    pieces = [mha(x[:, a:b], use_causal_mask=True, mask=mask[:, a:b], cache=cache) for a, b in chunks]
    assert cache.length == 11 and cache.keys.shape == (3, 2, 11, 4)
    torch.testing.assert_close(torch.cat(pieces, 1)[mask], whole[mask], rtol=tolerance, atol=tolerance)


def test_cached_attention_weights_span_every_cached_key():
    torch.manual_seed(1)
    mha = MultiHeadAttention(num_heads=2, key_dim=4, dtype=torch.float64)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    _, whole = mha(x, use_causal_mask=True, return_attention_scores=True)
    cache = AttentionCache()
    mha(x[:, :3], use_causal_mask=True, cache=cache)
    _, weights = mha(x[:, 3:], use_causal_mask=True, cache=cache, return_attention_scores=True)
    assert weights.shape == (2, 2, 2, 5)
    torch.testing.assert_close(weights, whole[:, :, 3:], rtol=1e-12, atol=1e-12)
    assert weights[:, :, 0, 4].abs().max() == 0  # position 3 does not see position 4


def test_static_cache_projects_the_encoder_once():
    torch.manual_seed(2)
    mha = MultiHeadAttention(num_heads=2, key_dim=4, dtype=torch.float64)
    target, memory = torch.randn(2, 6, 8, dtype=torch.float64), torch.randn(2, 4, 10, dtype=torch.float64)
    memory_mask = padded(2, 4, [4, 2])
    whole = mha(target, memory, value_mask=memory_mask)
    cache = AttentionCache(static=True)
    first = mha(target[:, :1], memory, value_mask=memory_mask, cache=cache)
    keys = cache.keys
    # Later calls read the cache: even a different memory tensor changes nothing.
    rest = [mha(target[:, t:t + 1], torch.zeros_like(memory), cache=cache) for t in range(1, 6)]
    assert cache.keys.data_ptr() == keys.data_ptr() and cache.length == 4
    torch.testing.assert_close(torch.cat([first, *rest], 1), whole, rtol=1e-12, atol=1e-12)


def test_cache_grows_past_its_capacity_and_reorders_rows():
    torch.manual_seed(3)
    mha = MultiHeadAttention(num_heads=1, key_dim=3, dtype=torch.float64)
    x = torch.randn(2, 40, 5, dtype=torch.float64)
    cache = AttentionCache()
    for t in range(39):
        mha(x[:, t:t + 1], use_causal_mask=True, cache=cache)
    cache.reorder(torch.tensor([1, 1, 0]))
    last = mha(x[[1, 1, 0], 39:], use_causal_mask=True, cache=cache)
    whole = mha(x[[1, 1, 0]], use_causal_mask=True)
    torch.testing.assert_close(last[:, 0], whole[:, 39], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="Use a new AttentionCache for another batch"):
        mha(x[:, :1], use_causal_mask=True, cache=cache)


def test_causal_transformer_block_runs_incrementally_and_refuses_a_bidirectional_cache():
    torch.manual_seed(4)
    block = TransformerBlock(8, 2, 16, dropout=0.0, causal=True, norm_first=True, dtype=torch.float64).eval()
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    whole = block(x)
    cache = AttentionCache()
    stepped = torch.cat([block(x[:, :4], cache=cache)] + [block(x[:, t:t + 1], cache=cache) for t in range(4, 7)], 1)
    torch.testing.assert_close(stepped, whole, rtol=1e-12, atol=1e-12)
    encoder = TransformerBlock(8, 2, 16)
    with pytest.raises(ValueError, match="not causal"):
        encoder(x.float(), cache=AttentionCache())


@pytest.mark.parametrize("positions", [layers.PositionalEncoding(), layers.PositionEmbedding(10)])
def test_positions_continue_from_start(positions):
    x = torch.randn(2, 10, 6)
    whole = positions(x)
    torch.testing.assert_close(positions(x[:, 4:7], start=4), whole[:, 4:7])
    if isinstance(positions, layers.PositionEmbedding):
        with pytest.raises(ValueError, match="reaching step 11"):
            positions(x[:, :3], start=8)
