"""The mask analysis and the one path policy, on their own: no layer needed, none imported."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from seqlab import kernels, layers
from seqlab.kernels import paths
from seqlab.kernels.masks import Padding

KERNELS = Path(kernels.__file__).parent
MASKS = {
    "right": [[1, 1, 1, 0], [1, 1, 1, 1]],
    "left": [[0, 0, 1, 1], [0, 1, 1, 1]],
    "both": [[0, 1, 1, 0], [1, 1, 0, 0]],
    "hole": [[1, 0, 1, 1], [1, 1, 1, 1]],
    "empty row": [[0, 0, 0, 0], [1, 1, 1, 1]],
}


class _HalvedSimpleCell(layers.SimpleRNNCell):
    """A SimpleRNN cell with its own step: its equation is None."""

    def step(self, projected, states, recurrent_mask=None, recurrent_kernel=None):
        h, _ = super().step(projected, states, recurrent_mask, recurrent_kernel)
        return 0.5 * h, [0.5 * h]


def test_kernels_import_nothing_above_them():
    for source in KERNELS.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                assert not name.startswith(("seqlab.layers", "seqlab.model", "seqlab.training",
                                            "seqlab.generation", "seqlab.interop", "seqlab.apps")), (source, name)


def test_padding_of_no_mask_or_a_full_one_is_no_padding():
    for mask in (None, torch.ones(2, 4, dtype=torch.bool)):
        padding = Padding.of(mask)
        assert not padding.padded and not padding.irregular and padding.blocks is None
        assert padding.given is mask and padding.flipped().mask is None


@pytest.mark.parametrize("kind", sorted(MASKS))
def test_padding_finds_one_block_per_row_or_calls_it_irregular(kind):
    mask = torch.tensor(MASKS[kind]).bool()
    padding = Padding.of(mask)
    assert padding.padded and padding.irregular == (kind in ("hole", "empty row"))
    if not padding.irregular:
        steps = torch.arange(4)
        rebuilt = (steps >= padding.blocks.starts[:, None]) & (
            steps < (padding.blocks.starts + padding.blocks.lengths)[:, None])
        assert torch.equal(rebuilt, mask)
    _ = padding.blocks  # analysed: the flipped padding flips the blocks instead of looking again
    flipped, fresh = padding.flipped(), Padding.of(mask.flip(1))
    assert torch.equal(flipped.mask, fresh.mask) and (flipped.blocks is None) == (fresh.blocks is None)
    if fresh.blocks is not None:
        assert torch.equal(flipped.blocks.starts, fresh.blocks.starts)
        assert torch.equal(flipped.blocks.lengths, fresh.blocks.lengths)


def _direction(cell, execution="auto", **flags):
    return SimpleNamespace(name="rnn", cell=cell, execution=execution, go_backwards=False, time_major=False,
                           stateful=False, zero_output_for_mask=False, **flags)


def test_the_policy_reads_a_duck_typed_direction_and_the_cells_equation():
    lstm, custom = layers.LSTMCell(3), _HalvedSimpleCell(3)
    lstm.build((None, 2)), custom.build((None, 2))
    x = torch.randn(2, 4, 2)
    hole = Padding.of(torch.tensor(MASKS["hole"]).bool())
    with torch.no_grad():
        assert paths.choose([_direction(lstm)], x, Padding.of(None), training=False) is paths.Path.NATIVE
        assert paths.choose([_direction(custom)], x, Padding.of(None), training=False) is paths.Path.REFERENCE
        assert paths.choose([_direction(lstm, "reference")], x, Padding.of(None), False) is paths.Path.REFERENCE
        with pytest.raises(ValueError, match="cannot run on PyTorch's native kernel"):
            paths.choose([_direction(lstm, "native")], x, hole, training=False)


def test_force_execution_sets_every_recurrent_layer_by_duck_typing():
    model = torch.nn.Sequential(layers.LSTM(3), layers.Bidirectional(layers.GRU(2)), torch.nn.Identity())
    kernels.force_execution(model, "reference")
    assert [m.execution for m in model.modules() if isinstance(m, layers.RNN)] == ["reference"] * 3
    with pytest.raises(ValueError, match="must be one of"):
        kernels.force_execution(model, "fast")
