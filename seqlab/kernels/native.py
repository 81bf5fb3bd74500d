"""PyTorch's native recurrent kernels (oneDNN / C++ loop on CPU, cuDNN on GPU) with Keras semantics.

`run_native([cell], inputs, [states], mask, ...)` computes exactly what the
reference loop in `seqlab.layers.recurrent` computes, for the configurations
the native kernels implement (`supports(cell)`): LSTM with tanh/sigmoid and no
peephole, GRU with `reset_after=True` and tanh/sigmoid, SimpleRNN with tanh or
relu; no recurrent dropout in training. Inputs are in processing order
(already reversed for `go_backwards`). Given two cells, it runs a
Bidirectional layer's two directions in one kernel call.

Masks: any mask whose real steps form one contiguous block per sequence
(right-padded, left-padded, or both) runs natively. The block is gathered to
the front of each row, the rows run as a packed sequence (so the cost follows
the real tokens, not the padding), and the outputs are put back where Keras
has them: zeros before the first real step, the held last output (or zeros,
`zero_output_for_mask`) after the last.
"""

from __future__ import annotations

import torch
from torch import _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from seqlab import activations
from seqlab.kernels.layout import native_weights
from seqlab.layers.cells import GRUCell, LSTMCell, RecurrentCell, SimpleRNNCell


def supports(cell: RecurrentCell, training: bool) -> bool:
    """Whether PyTorch's native kernel computes this cell's equation exactly."""
    if training and cell.recurrent_dropout > 0:
        return False
    if isinstance(cell, LSTMCell):
        return not cell.peephole and cell.activation is torch.tanh and cell.recurrent_activation is torch.sigmoid
    if isinstance(cell, GRUCell):
        return cell.reset_after and cell.activation is torch.tanh and cell.recurrent_activation is torch.sigmoid
    if isinstance(cell, SimpleRNNCell):
        return cell.activation in (torch.tanh, activations.get("relu"))
    return False


class Blocks:
    """Where each row's real steps are: `starts (batch,)`, `lengths (batch,)` (one block per row)."""

    def __init__(self, starts: torch.Tensor, lengths: torch.Tensor, time: int):
        self.starts, self.lengths, self.time = starts, lengths, time

    @classmethod
    def of(cls, mask: torch.Tensor) -> "Blocks | None":
        """The blocks of `mask (batch, time)`, or None if a row is empty or not contiguous."""
        lengths = mask.sum(dim=1)
        starts = mask.int().argmax(dim=1)
        steps = torch.arange(mask.shape[1], device=mask.device)
        block = (steps >= starts[:, None]) & (steps < (starts + lengths)[:, None])
        if bool((lengths == 0).any()) or not torch.equal(block, mask):
            return None
        return cls(starts, lengths, mask.shape[1])

    def gather_to_front(self, inputs: torch.Tensor) -> torch.Tensor:
        """Shift each row's block to start at step 0 (right padding)."""
        if not bool(self.starts.any()):
            return inputs
        steps = torch.arange(self.time, device=inputs.device)
        source = (self.starts[:, None] + steps).clamp(max=self.time - 1)
        return inputs.gather(1, source[:, :, None].expand(-1, -1, inputs.shape[-1]))

    def scatter_back(self, outputs: torch.Tensor, zero_after: bool) -> torch.Tensor:
        """Right-padded outputs → Keras' layout (zeros before the block, held or zeros after)."""
        steps = torch.arange(self.time, device=outputs.device)[None, :]
        offset = steps - self.starts[:, None]
        source = offset.clamp(min=0).minimum(self.lengths[:, None] - 1)
        placed = outputs.gather(1, source[:, :, None].expand(-1, -1, outputs.shape[-1]))
        empty = offset < 0
        if zero_after:
            empty = empty | (offset >= self.lengths[:, None])
        return placed.masked_fill(empty[:, :, None], 0.0)


def run_native(cells: list[RecurrentCell], inputs: torch.Tensor, states: list[list[torch.Tensor]],
               mask: torch.Tensor | None, need_sequence: bool, zero_output_for_mask: bool,
               training: bool) -> tuple[torch.Tensor | None, list[list[torch.Tensor]]] | None:
    """Run one cell, or two (forward, backward) as one bidirectional kernel call.

    `states[d]` are direction d's initial states. Returns the outputs
    `(batch, time, directions*units)` (None unless `need_sequence`; the backward
    half in input order) and each direction's final states; None if the mask
    is not one the kernel can run.
    """
    blocks = None
    if mask is not None:
        blocks = Blocks.of(mask)
        if blocks is None:
            return None
    hidden = [torch.stack(per_state) for per_state in zip(*states)]  # each (directions, batch, units)
    weights = [w for cell in cells for w in native_weights(cell)]
    bidirectional = len(cells) == 2
    if blocks is None or bool((blocks.lengths == blocks.time).all()):
        sequence, final = _call(cells[0], inputs, None, hidden, weights, training, bidirectional)
    else:
        packed = pack_padded_sequence(blocks.gather_to_front(inputs), blocks.lengths.cpu(),
                                      batch_first=True, enforce_sorted=False)
        hidden = [h.index_select(1, packed.sorted_indices) for h in hidden]
        data, final = _call(cells[0], packed.data, packed.batch_sizes, hidden, weights, training, bidirectional)
        final = [h.index_select(1, packed.unsorted_indices) for h in final]
        if need_sequence:
            sequence, _ = pad_packed_sequence(
                PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
                batch_first=True, total_length=blocks.time)
    final_states = [[h[direction] for h in final] for direction in range(len(cells))]
    if not need_sequence:
        return None, final_states
    if blocks is not None:
        sequence = blocks.scatter_back(sequence, zero_output_for_mask)
    return sequence, final_states


def same_equation(forward: RecurrentCell, backward: RecurrentCell) -> bool:
    """Whether two cells can share one bidirectional kernel call."""
    return (type(forward) is type(backward) and forward.units == backward.units
            and forward.use_bias == backward.use_bias and forward.activation is backward.activation
            and forward.kernel.shape == backward.kernel.shape and forward.kernel.dtype == backward.kernel.dtype)


def _call(cell, inputs, batch_sizes, hidden, weights, training, bidirectional):
    """One `_VF` call; returns (outputs, [final states each (directions, batch, units)])."""
    has_biases = cell.use_bias
    packed = batch_sizes is not None
    head = (inputs, batch_sizes) if packed else (inputs,)
    tail = (has_biases, 1, 0.0, training, bidirectional)
    if not packed:
        tail += (True,)  # batch_first
    if isinstance(cell, LSTMCell):
        output, h, c = _VF.lstm(*head, tuple(hidden), weights, *tail)
        return output, [h, c]
    if isinstance(cell, GRUCell):
        output, h = _VF.gru(*head, hidden[0], weights, *tail)
    elif cell.activation is torch.tanh:
        output, h = _VF.rnn_tanh(*head, hidden[0], weights, *tail)
    else:
        output, h = _VF.rnn_relu(*head, hidden[0], weights, *tail)
    return output, [h]
