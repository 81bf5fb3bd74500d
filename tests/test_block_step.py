"""BlockStep: one position through a causal transformer block equals the block's own cached forward."""

from __future__ import annotations

import pytest
import torch

from seqlab import layers
from seqlab.generation.block_step import BlockStep
from seqlab.layers.attention_cache import AttentionCache


def causal_block(norm_first: bool, activation: str = "relu", **options) -> layers.TransformerBlock:
    torch.manual_seed(3)
    block = layers.TransformerBlock(12, 3, 20, dropout=0.3, norm_first=norm_first, causal=True,
                                    activation=activation, **options)
    block.build((None, None, 12))
    with torch.no_grad():   # biases and norm weights away from their zeros and ones
        for parameter in block.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return block.double().eval()


@pytest.mark.parametrize("norm_first, activation, options", [
    (True, "relu", {}), (False, "gelu", {}), (True, "relu", {"key_dim": 5})])
def test_each_step_equals_the_blocks_cached_forward(norm_first, activation, options):
    block = causal_block(norm_first, activation, **options)
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    reference, fast = AttentionCache(), AttentionCache()
    with torch.no_grad():
        whole = block(x)
        block.forward(x[:, :3], cache=reference)
        block.forward(x[:, :3], cache=fast)
        step = BlockStep(block)
        for t in range(3, 7):
            expected = block.forward(x[:, t:t + 1], cache=reference)[:, 0]
            got = step(x[:, t], fast)
            torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(got, whole[:, t], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.keys, reference.keys, rtol=1e-12, atol=1e-12)
    assert fast.length == 7


def test_padded_positions_in_the_cache_stay_hidden():
    block = causal_block(norm_first=True)
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    mask = torch.tensor([[False, True, True, True, True], [True, True, True, True, True]])
    reference, fast = AttentionCache(), AttentionCache()
    with torch.no_grad():
        block.forward(x[:, :3], mask=mask[:, :3], cache=reference)
        block.forward(x[:, :3], mask=mask[:, :3], cache=fast)
        step = BlockStep(block)
        for t in range(3, 5):
            expected = block.forward(x[:, t:t + 1], mask=mask[:, t:t + 1], cache=reference)[:, 0]
            torch.testing.assert_close(step(x[:, t], fast), expected, rtol=1e-12, atol=1e-12)
    assert fast.mask[0].tolist() == [False, True, True, True, True]


def test_a_step_reads_the_weights_it_was_made_from():
    block = causal_block(norm_first=True)
    step = BlockStep(block)
    x = torch.randn(1, 12, dtype=torch.float64)
    before = step(x, AttentionCache())
    with torch.no_grad():
        block.attention.value_dense.kernel.mul_(2.0)
    torch.testing.assert_close(step(x, AttentionCache()), before)          # gathered: the old weights
    assert not torch.allclose(BlockStep(block)(x, AttentionCache()), before)   # gathered again: the new ones
