"""Both directions of a `Bidirectional` layer in one loop.

Where neither direction can run on a native kernel (recurrent dropout in
training, peephole LSTMs, GRU `reset_after=False`), or where seqlab's C++ loop
trains faster than it (GRUs and SimpleRNNs, `fused.preferred`; small LSTMs), the two
directions would each run a loop of their own. They are independent, so
they can share every step instead: the directions are stacked on a leading
axis and each weight of the step becomes a pair, so one batched matrix
product serves both,

    (2, batch, units) @ (2, units, k·units) → (2, batch, k·units)

and every elementwise operation runs once on both. Where seqlab's compiled
C++ loop serves the cells (`seqlab.kernels.fused`), it runs the pair with
D = 2 directions; otherwise the step is the cells' `step`, called through
`torch.func.functional_call` with the paired weights, and the loop is
`reference_loop`. Only cells that declare one equation (`cell.equation`,
`seqlab.kernels.equations.same_step`) pair: a cell with its own `step` runs
its direction alone. Either way: the same
equations, the same random dropout masks, drawn in the same order as two
separate runs would draw them (forward, then backward). `tests/test_execution_paths.py`
holds it equal to running the two directions apart.

    >>> layer = Bidirectional(LSTM(64, recurrent_dropout=0.2, return_sequences=True))
    >>> layer(torch.randn(32, 200, 20), training=True).shape     # one 200-step loop, not two
    torch.Size([32, 200, 128])
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from seqlab.kernels import fused, native
from seqlab.kernels.equations import equation_of, same_step
from seqlab.kernels.masks import Padding
from seqlab.kernels.reference_loop import reference_loop

# A Bidirectional LSTM of at most this many units trains on the paired C++ loop. Measured in a training
# step (docs/performance.md, run 10; batch 32, 2 threads), the loop's time over oneDNN's kernel's: padded
# (lengths 20-400; oneDNN runs segment by segment) 0.74x at 64 units, 0.84x at 128, 1.08x at 256;
# unpadded 0.84x-0.99x at 64, 0.78x-0.85x at 128, 1.15x at 256. Unpadded only with at most one thread
# per direction: the loop runs each direction on one thread, while oneDNN's kernel can put every core
# on each direction in turn.
SMALL_LSTM_MAX_UNITS = 128


def can_pair(forward, backward, inputs: torch.Tensor, training: bool, padding: Padding) -> bool:
    """Whether `run_paired` gives what running the layers `forward` and `backward` apart gives, and is their path.

    The layers are duck-typed (`cell`, `execution`, `go_backwards`, `time_major`, `stateful`,
    `zero_output_for_mask`). With `execution="auto"` it is where neither direction can run
    natively, and in training where the C++ loop beats the native kernels (`fused.preferred`,
    and small LSTMs, `_small_lstms`); with `execution="fused"` wherever the C++ loop serves
    both cells.
    """
    forward_cell, backward_cell = forward.cell, backward.cell
    if not (forward.execution == backward.execution and forward.execution in ("auto", "fused")
            and not forward.go_backwards and backward.go_backwards
            and not (forward.time_major or backward.time_major or forward.stateful or backward.stateful)
            and forward.zero_output_for_mask == backward.zero_output_for_mask
            and same_step(forward_cell, backward_cell)):
        return False
    cells = (forward_cell, backward_cell)
    if forward.execution == "fused":
        return all(fused.supports(cell, inputs) for cell in cells)
    if not any(native.supports(cell, training) for cell in cells):
        return True
    if _small_lstms(cells, inputs, padding):
        return True
    return all(fused.preferred(cell, inputs) for cell in cells)


def _small_lstms(cells, inputs: torch.Tensor, padding: Padding) -> bool:
    """Training small LSTMs (`SMALL_LSTM_MAX_UNITS`): the C++ loop runs both directions at once, a
    thread each, and on a padded batch each step computes only the rows still running, where oneDNN's
    kernel runs each direction in time segments. Unpadded, only where no core would sit idle (at most
    one thread per direction)."""
    if not (equation_of(cells[0]).form.is_lstm and cells[0].units <= SMALL_LSTM_MAX_UNITS
            and all(fused.supports(cell, inputs) and fused.trains(cell, inputs) for cell in cells)):
        return False
    return padding.padded or torch.get_num_threads() <= len(cells)


def run_paired(cells, reads: list[torch.Tensor], states: list[list[torch.Tensor]], padding: Padding,
               recurrent_masks: list[torch.Tensor | None], zero_output_for_mask: bool, return_sequences: bool,
               on_fused_loop: bool):
    """Run a forward and a backward cell (`cells`) in one loop, on the C++ loop or the paired reference loop.

    `reads[d] (batch, time, features)` is what direction d reads, in input time order (its input
    dropout applied), `states[d]` its initial states, `recurrent_masks[d]` its recurrent dropout
    keep-mask `(batch, units)` or None; the backward direction reads time from the end.
    Returns `(forward_output, backward_output, [*forward_states, *backward_states])`:
    sequences `(batch, time, units)` in input time order with `return_sequences`, else each
    direction's last output `(batch, units)`.
    """
    forward, backward = cells
    if on_fused_loop:
        outputs, last, (forward_states, backward_states) = fused.run_fused(
            list(cells), reads, states, padding, recurrent_masks, zero_output_for_mask,
            reverse_last=True, need_sequence=return_sequences)
        forward_output, backward_output = (outputs if return_sequences else last).unbind(-2)
        return forward_output, backward_output, forward_states + backward_states
    both_masks = None if padding.mask is None else torch.stack([padding.mask, padding.mask.flip(1)])
    outputs, final_states = functional_call(
        _Loop(forward), _paired_step_weights(forward, backward),
        (torch.stack([forward.project_inputs(reads[0]), backward.project_inputs(reads[1].flip(1))]),
         [torch.stack(pair) for pair in zip(*states)], both_masks,
         fused.stack_keep_masks(recurrent_masks, like=states[0][0]), zero_output_for_mask))
    forward_output, backward_output = (outputs if return_sequences else outputs[:, :, -1]).unbind(0)
    if return_sequences:
        backward_output = backward_output.flip(1)  # processing order → input order
    forward_states, backward_states = ([state[i] for state in final_states] for i in (0, 1))
    return forward_output, backward_output, forward_states + backward_states


class _Loop(torch.nn.Module):
    """`reference_loop` over a cell whose weights `functional_call` swaps for the paired ones."""

    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, projected, states, mask, recurrent_mask, zero_output_for_mask):
        return reference_loop(self.cell, projected, states, mask, recurrent_mask, zero_output_for_mask, time_axis=2)


def _paired_step_weights(forward, backward) -> dict[str, torch.Tensor]:
    """The weights `step` reads, each stacked so that it broadcasts over `(2, batch, ...)`.

    Matrices `(units, k·units)` → `(2, units, k·units)` (a batched product);
    vectors `(k,)` → `(2, 1, k)`; GRU's two-row bias `(2, 3·units)` →
    `(2 rows, 2, 1, 3·units)`, so that `bias[1]` is the pair of recurrent biases.
    The input kernel is left out: the inputs are projected before the loop.
    """
    paired = {}
    for name, weight in forward.named_parameters(recurse=False):
        if name == "kernel":
            continue
        other = getattr(backward, name)
        if weight.dim() == 1:
            paired[f"cell.{name}"] = torch.stack([weight, other])[:, None]
        elif name == "bias":
            paired[f"cell.{name}"] = torch.stack([weight, other], dim=1)[:, :, None]
        else:
            paired[f"cell.{name}"] = torch.stack([weight, other])
    return paired
