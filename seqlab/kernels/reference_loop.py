"""The reference time loop: the definition of correct that every fast path is a twin of.

Over `projected (batch, time, k*units)` (each step's input half `x_t W_x + b`,
`cell.project_inputs`), step by step:

    output_t, states = cell.step(projected_t, states, recurrent_mask)

and where `mask (batch, time)` is False (a padded step) the states are held
and the output repeats the previous output (zeros before the first real step;
zeros at every padded step with `zero_output_for_mask`, Keras' rule inside
`Bidirectional`). The cell is duck-typed: anything with `units` and `step`.

    >>> outputs, states = reference_loop(cell, cell.project_inputs(x), cell.get_initial_state(4), None, None)
    >>> outputs.shape                                  # (batch, time, units)
"""

from __future__ import annotations

import torch


def reference_loop(cell, projected: torch.Tensor, states: list[torch.Tensor],
                   mask: torch.Tensor | None, recurrent_mask: torch.Tensor | None,
                   zero_output_for_mask: bool = False, time_axis: int = 1) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The reference time loop: `projected (batch, time, k*units)` → outputs `(batch, time, units)`, final states.

    Each step is `cell.step(projected_t, states, recurrent_mask)`. At a step
    where `mask (batch, time)` is False the states are held and the output is
    the previous output (zeros with `zero_output_for_mask`). Leading axes
    before `time_axis` are carried through every step (the paired
    bidirectional loop stacks the two directions there: `(2, batch, time, k*units)`).
    """
    steps = projected.shape[time_axis]
    step_masks = [None] * steps if mask is None else mask.unsqueeze(-1).unbind(time_axis)
    previous_output = projected.new_zeros(*projected.shape[:time_axis], cell.units)
    outputs = []
    for projected_t, keep in zip(projected.unbind(time_axis), step_masks):
        output, new_states = cell.step(projected_t, states, recurrent_mask)
        if keep is None:
            states = new_states
        else:
            states = [torch.where(keep, new, old) for new, old in zip(new_states, states)]
            held = torch.zeros_like(output) if zero_output_for_mask else previous_output
            output = torch.where(keep, output, held)
        previous_output = output
        outputs.append(output)
    return torch.stack(outputs, dim=time_axis), states
