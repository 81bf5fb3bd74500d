"""TransformerDecoderBlock: equal to PyTorch's nn.TransformerDecoderLayer with the same weights, causal, cached."""

from __future__ import annotations

import pytest
import torch

from seqlab import layers
from seqlab.layers import DecoderCache, TransformerDecoderBlock


def torch_attention_into(ours: layers.MultiHeadAttention, theirs: torch.nn.MultiheadAttention) -> None:
    """PyTorch's packed (3d, d) in-projection and (d, d) out-projection into Keras' per-head layout."""
    d = theirs.embed_dim
    heads, head_dim = theirs.num_heads, theirs.head_dim
    weights = theirs.in_proj_weight.detach().split(d)
    biases = theirs.in_proj_bias.detach().split(d)
    for projection, weight, bias in zip((ours.query_dense, ours.key_dense, ours.value_dense), weights, biases):
        projection.kernel.data.copy_(weight.T.reshape(d, heads, head_dim))
        projection.bias.data.copy_(bias.reshape(heads, head_dim))
    ours.output_dense.kernel.data.copy_(theirs.out_proj.weight.detach().T.reshape(heads, head_dim, d))
    ours.output_dense.bias.data.copy_(theirs.out_proj.bias.detach())


def matching_pair(norm_first: bool, dtype=torch.float64, d=16, heads=4, ff=24):
    torch.manual_seed(0)
    theirs = torch.nn.TransformerDecoderLayer(d, heads, ff, dropout=0.0, batch_first=True, norm_first=norm_first,
                                              layer_norm_eps=1e-5, dtype=dtype).eval()
    ours = TransformerDecoderBlock(d, heads, ff, dropout=0.0, norm_first=norm_first, epsilon=1e-5, dtype=dtype)
    ours.build([(None, None, d), (None, None, d)])
    ours.eval()
    torch_attention_into(ours.self_attention, theirs.self_attn)
    torch_attention_into(ours.cross_attention, theirs.multihead_attn)
    for dense, linear in ((ours.ffn_hidden, theirs.linear1), (ours.ffn_output, theirs.linear2)):
        dense.kernel.data.copy_(linear.weight.detach().T)
        dense.bias.data.copy_(linear.bias.detach())
    for norm, their_norm in ((ours.self_attention_norm, theirs.norm1), (ours.cross_attention_norm, theirs.norm2),
                             (ours.ffn_norm, theirs.norm3)):
        torch.nn.init.normal_(their_norm.weight)  # not the trivial 1 and 0
        torch.nn.init.normal_(their_norm.bias)
        norm.gamma.data.copy_(their_norm.weight.detach())
        norm.beta.data.copy_(their_norm.bias.detach())
    return ours, theirs


@pytest.mark.parametrize("norm_first", [False, True])
def test_equals_pytorch_decoder_layer_with_the_same_weights(norm_first):
    ours, theirs = matching_pair(norm_first)
    target, memory = torch.randn(3, 7, 16, dtype=torch.float64), torch.randn(3, 5, 16, dtype=torch.float64)
    memory_mask = torch.ones(3, 5, dtype=torch.bool)
    memory_mask[1, 3:] = False
    expected = theirs(target, memory, tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(
        7, dtype=torch.float64), memory_key_padding_mask=~memory_mask)
    got = ours(target, memory, encoder_mask=memory_mask)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_no_position_sees_the_future():
    ours, _ = matching_pair(norm_first=False)
    target = torch.randn(2, 6, 16, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(2, 4, 16, dtype=torch.float64)
    output = ours(target, memory)
    (gradient,) = torch.autograd.grad(output[:, 2].sum(), target)
    assert gradient[:, 3:].abs().max() == 0
    assert gradient[:, :3].abs().min() > 0


def test_padded_encoder_positions_change_nothing():
    ours, _ = matching_pair(norm_first=True)
    target, memory = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 6, 16, dtype=torch.float64)
    mask = torch.tensor([[True] * 4 + [False] * 2] * 2)
    changed = memory.clone()
    changed[:, 4:] = 100.0
    torch.testing.assert_close(ours(target, memory, encoder_mask=mask), ours(target, changed, encoder_mask=mask))


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_steps_equal_the_whole_sequence(dtype, tolerance, norm_first):
    ours, _ = matching_pair(norm_first, dtype=dtype)
    target, memory = torch.randn(3, 8, 16, dtype=dtype), torch.randn(3, 5, 16, dtype=dtype)
    target_mask = torch.ones(3, 8, dtype=torch.bool)
    target_mask[2, 6:] = False  # a shorter target, padded at the end
    memory_mask = torch.ones(3, 5, dtype=torch.bool)
    memory_mask[0, 2:] = False
    whole = ours(target, memory, mask=target_mask, encoder_mask=memory_mask)
    cache = DecoderCache()
    pieces = [ours(target[:, :3], memory, mask=target_mask[:, :3], encoder_mask=memory_mask, cache=cache)]
    for t in range(3, 8):
        pieces.append(ours(target[:, t:t + 1], memory, mask=target_mask[:, t:t + 1], encoder_mask=memory_mask,
                           cache=cache))
    assert cache.length == 8 and cache.cross_attention.length == 5
    stepped = torch.cat(pieces, dim=1)
    torch.testing.assert_close(stepped[target_mask], whole[target_mask], rtol=tolerance, atol=tolerance)


def test_reordered_cache_follows_its_beams():
    ours, _ = matching_pair(norm_first=True)
    target, memory = torch.randn(3, 4, 16, dtype=torch.float64), torch.randn(3, 5, 16, dtype=torch.float64)
    cache = DecoderCache()
    ours(target[:, :3], memory, cache=cache)
    parents = torch.tensor([2, 2, 0, 1])  # four beams from three rows: row 2 kept twice
    cache.reorder(parents)
    step = ours(target[parents, 3:4], memory[parents], cache=cache)
    whole = ours(target[parents], memory[parents])
    torch.testing.assert_close(step[:, 0], whole[:, 3], rtol=1e-12, atol=1e-12)


def test_serializes_and_rejects_bad_inputs():
    block = TransformerDecoderBlock(16, 4, 32, norm_first=True, name="decoder_0")
    block(torch.randn(1, 2, 16), torch.randn(1, 3, 8))
    rebuilt = layers.deserialize(layers.serialize(block))
    assert isinstance(rebuilt, TransformerDecoderBlock) and rebuilt.get_config() == block.get_config()
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        TransformerDecoderBlock(10, 3, 8)
    with pytest.raises(ValueError, match="embed_dim=16 features"):
        block(torch.randn(1, 2, 12), torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match="same batch size"):
        block(torch.randn(2, 2, 16), torch.randn(1, 3, 8))
    with pytest.raises(TypeError, match="needs the encoder's outputs"):
        block(torch.randn(1, 2, 16))
