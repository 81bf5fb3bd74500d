"""PyTorch's native recurrent kernels (oneDNN on CPU, cuDNN on GPU) with Keras semantics.

`run_native([cell], inputs, [states], padding, ...)` computes exactly what the
reference loop (`seqlab.kernels.reference_loop`) computes, for the equations
the native kernels implement (`supports(cell)`, from `cell.equation` alone):
LSTM with tanh/sigmoid and no peephole, GRU with `reset_after=True` and
tanh/sigmoid, SimpleRNN with tanh or relu; no recurrent dropout in training. Inputs are in processing order
(already reversed for `go_backwards`). Given two cells and no padding, it
runs a Bidirectional layer's two directions in one kernel call.

Masks (`seqlab.kernels.masks.Padding`): any mask whose real steps form one
contiguous block per sequence (right-padded, left-padded, or both) runs
natively, in time segments:

1. each row's block is gathered to the front (right padding) and the rows are
   sorted by length, longest first;
2. time is cut at a few of the lengths; each segment runs the fast kernel on
   the rows still active, starting from the states the last segment left, so
   the cost follows the real tokens rather than the padding (and oneDNN's
   kernel, about twice as fast here as the per-token packed-sequence loop,
   does the work);
3. a row's last output (= its final h) is read at its last real step; when the
   final cell state of an LSTM is needed (`exact_states`), the cuts fall on
   every distinct length so every row ends exactly at a cut;
4. the outputs are put back where Keras has them: zeros before the block, the
   held last output (or zeros, `zero_output_for_mask`) after it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import _VF

from seqlab.kernels.equations import TANH, Form, equation_of
from seqlab.kernels.layout import native_weights
from seqlab.kernels.masks import Blocks, Padding

MAX_SEGMENTS = 8  # cuts per masked batch when only h is needed: padding waste ~1/16, few kernel calls


NATIVE_FORMS = (Form.SIMPLE, Form.LSTM, Form.GRU_RESET_AFTER)


def supports(cell, training: bool) -> bool:
    """Whether PyTorch's native kernel computes this cell's equation exactly."""
    if training and cell.recurrent_dropout > 0:
        return False
    equation = equation_of(cell)
    return equation is not None and equation.form in NATIVE_FORMS and equation.standard_gates


def run_native(cells: list, inputs: torch.Tensor, states: list[list[torch.Tensor]],
               padding: Padding, need_sequence: bool, zero_output_for_mask: bool,
               training: bool, exact_states: bool = True
               ) -> tuple[torch.Tensor | None, list[list[torch.Tensor]]] | None:
    """Outputs `(batch, time, directions*units)` (None unless `need_sequence`) and final states.

    `states[d]` are direction d's initial states. Returns None when the padding is
    not one the kernel can run (irregular, or, for two cells, any padding).
    With `exact_states=False` an LSTM's final cell state may be left out
    (only h is returned), which lets masked batches use fewer segments.
    """
    if padding.irregular:
        return None
    blocks = padding.blocks
    if blocks is not None and len(cells) == 2:
        return None  # each direction runs on its own, segmented
    if blocks is None:
        hidden = [torch.stack(per_state) for per_state in zip(*states)]  # each (directions, batch, units)
        weights = [w for cell in cells for w in native_weights(cell)]
        sequence, final = _call(cells[0], inputs, hidden, weights, training, len(cells) == 2)
        final_states = [[h[direction] for h in final] for direction in range(len(cells))]
        return (sequence if need_sequence else None), final_states
    sequence, final_states = _run_segmented(cells[0], inputs, states, blocks, training, exact_states, need_sequence)
    if not need_sequence:
        return None, [final_states]
    return blocks.scatter_back(sequence, zero_output_for_mask), [final_states]


def _run_segmented(cell, inputs, states, blocks: Blocks, training: bool, exact_states: bool,
                   need_sequence: bool):
    """Right-padded sequence outputs `(batch, longest, units)` (None unless `need_sequence`) and
    final states, segment by segment.

    Time is split once (one autograd node, whose backward is one `cat`) and each segment takes its
    leading rows, so no segment's gradient is written into a zero tensor of the whole input. When
    only h is needed, each row's last output is read in the segment where the row ends.
    """
    lengths = blocks.lengths
    order = torch.argsort(lengths, descending=True, stable=True)
    inverse = torch.argsort(order)
    sorted_lengths = lengths.index_select(0, order).tolist()
    x = blocks.gather_to_front(inputs).index_select(0, order)
    hidden = [s.index_select(0, order).unsqueeze(0) for s in states[0]]
    weights = native_weights(cell)
    # Only an LSTM's cell state cannot be read off the outputs: then every row must end at a cut.
    exact_cuts = exact_states and equation_of(cell).form is Form.LSTM
    read_last = not (need_sequence or exact_cuts)
    ends = _segment_ends(sorted_lengths, exact_cuts)
    starts = [0] + ends[:-1]
    time_pieces = x[:, :ends[-1]].split([end - start for start, end in zip(starts, ends)], dim=1)
    batch, pieces, last_outputs = x.shape[0], [], []
    for start, end, x_piece in zip(starts, ends, time_pieces):
        active = sum(1 for length in sorted_lengths if length > start)
        piece, final = _call(cell, x_piece[:active], [h[:, :active] for h in hidden], weights, training, False)
        hidden = [torch.cat([f, h[:, active:]], dim=1) for f, h in zip(final, hidden)]
        if need_sequence:
            pieces.append(F.pad(piece, (0, 0, 0, 0, 0, batch - active)))
        elif read_last:  # the rows ending here: the last ones still active (the order is longest first)
            ending = [row for row in range(active) if sorted_lengths[row] <= end]
            steps = torch.tensor([sorted_lengths[row] - 1 - start for row in ending], device=piece.device)
            last_outputs.append(piece[ending[0]:].gather(1, steps[:, None, None].expand(-1, 1, piece.shape[-1])))
    sequence = torch.cat(pieces, dim=1).index_select(0, inverse) if need_sequence else None
    if exact_cuts:
        return sequence, [h[0].index_select(0, inverse) for h in hidden]
    if read_last:  # later segments hold longer rows, which come first in the sorted order
        return None, [torch.cat(last_outputs[::-1]).squeeze(1).index_select(0, inverse)]
    last = (lengths - 1)[:, None, None].expand(-1, 1, sequence.shape[-1])
    return sequence, [sequence.gather(1, last).squeeze(1)]


def _segment_ends(sorted_lengths: list[int], every_length: bool) -> list[int]:
    """Where to cut time: at every distinct length, or at up to MAX_SEGMENTS of them."""
    distinct = sorted(set(sorted_lengths))
    if every_length or len(distinct) <= MAX_SEGMENTS:
        return distinct
    return sorted({distinct[round((i + 1) * len(distinct) / MAX_SEGMENTS) - 1] for i in range(MAX_SEGMENTS)})


def _call(cell, inputs, hidden, weights, training, bidirectional):
    """One batch-first `_VF` call; returns (outputs, [final states each (directions, batch, units)])."""
    args = (weights, cell.use_bias, 1, 0.0, training, bidirectional, True)
    equation = equation_of(cell)
    if equation.form is Form.LSTM:
        output, h, c = _VF.lstm(inputs, tuple(hidden), *args)
        return output, [h, c]
    if equation.form is Form.GRU_RESET_AFTER:
        output, h = _VF.gru(inputs, hidden[0], *args)
    elif equation.activation is TANH:
        output, h = _VF.rnn_tanh(inputs, hidden[0], *args)
    else:
        output, h = _VF.rnn_relu(inputs, hidden[0], *args)
    return output, [h]
