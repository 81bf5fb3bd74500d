"""The recurrent time loop compiled: C++ forward and a hand-written backward.

`csrc/fused_loop.cpp` runs the reference loop's equations (the cells' `step`,
Keras' masking, recurrent dropout) with the Python interpreter and the
autograd graph out of the loop: each step is a few ATen calls, the backward
pass is written out, and the recurrent kernel's gradient is one product over
all steps,

    dU = Σ_t (h_{t-1} * m)ᵀ · dz_t        (m: the recurrent dropout keep-mask)

It serves SimpleRNN (tanh, relu), LSTM (tanh/sigmoid, no peephole) and GRU
(tanh/sigmoid, `reset_after` either way) on CPU in float32 and float64, with
any mask, for one direction or both directions of a Bidirectional layer at
once (stacked on a leading axis, one batched product per step).

The extension is compiled on first use with PyTorch's C++ toolchain
(`torch.utils.cpp_extension`, g++ and ninja; about 30 s, cached under
`TORCH_EXTENSIONS_DIR`, default `~/.cache/torch_extensions`). Where it cannot
be built, or with `SEQLAB_NO_EXTENSION=1`, `available()` is False and layers
run the pure-PyTorch paths, with one warning that says why.

    >>> outputs, states = run_fused([cell], projected[None], [states], mask[None], None, False)
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from seqlab import activations
from seqlab.layers.cells import GRUCell, LSTMCell, RecurrentCell, SimpleRNNCell

SOURCE = Path(__file__).with_name("csrc") / "fused_loop.cpp"
SIMPLE_TANH, SIMPLE_RELU, LSTM, GRU_RESET_AFTER, GRU_RESET_BEFORE = range(5)

# -march=native: the extension is built on the machine that runs it. -fno-trapping-math and
# `#pragma omp simd` (-fopenmp-simd, no OpenMP runtime) let the compiler vectorize the loops
# over units; NaN and infinity behave as usual.
COMPILER_FLAGS = ["-O3", "-march=native", "-fno-trapping-math", "-fopenmp-simd"]

_extension = None
_failure: str | None = None


def extension():
    """The compiled module, built on first call; None where it cannot be built."""
    global _extension, _failure
    if _extension is not None or _failure is not None:
        return _extension
    if os.environ.get("SEQLAB_NO_EXTENSION"):
        _failure = "SEQLAB_NO_EXTENSION is set"
        return None
    try:
        from torch.utils.cpp_extension import load

        _extension = load("seqlab_fused_loop", [str(SOURCE)], extra_cflags=COMPILER_FLAGS, verbose=False)
    except Exception as error:  # no compiler, no ninja, a broken toolchain: fall back, say so once
        _failure = _first_error_line(error)
        warnings.warn(
            f"seqlab could not build its C++ recurrent loop ({_failure}); recurrent layers that "
            "PyTorch's native kernels do not cover run the slower Python loop. Install g++ and "
            "ninja to enable it, or set SEQLAB_NO_EXTENSION=1 to silence this.",
            RuntimeWarning, stacklevel=2)
    return _extension


def _first_error_line(error: Exception) -> str:
    """The compiler's first `error:` line, else the exception's last line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    return next((line for line in lines if "error:" in line), lines[-1])


def available() -> bool:
    return extension() is not None


def cell_code(cell: RecurrentCell) -> int | None:
    """Which equation of the C++ loop computes `cell.step`, or None."""
    standard_gates = (getattr(cell, "activation", None) is torch.tanh
                      and getattr(cell, "recurrent_activation", None) is torch.sigmoid)
    if type(cell) is SimpleRNNCell:
        return {torch.tanh: SIMPLE_TANH, activations.get("relu"): SIMPLE_RELU}.get(cell.activation)
    if type(cell) is LSTMCell and standard_gates and not cell.peephole:
        return LSTM
    if type(cell) is GRUCell and standard_gates:
        return GRU_RESET_AFTER if cell.reset_after else GRU_RESET_BEFORE
    return None


def supports(cell: RecurrentCell, inputs: torch.Tensor) -> bool:
    """Whether the C++ loop computes this cell's equation on these inputs."""
    return (cell_code(cell) is not None and inputs.device.type == "cpu"
            and inputs.dtype in (torch.float32, torch.float64) and cell.kernel.dtype == inputs.dtype
            and available())


NATIVE_LSTM_FROM_UNITS = 256  # from here oneDNN's LSTM kernel trains faster (docs/performance.md)


def preferred(cell: RecurrentCell, inputs: torch.Tensor) -> bool:
    """Whether `execution="auto"` should train this cell on the C++ loop even where a native kernel exists.

    Measured on the 2-core CPU (docs/performance.md): in a training step (forward
    and backward) the loop beats PyTorch's kernels for GRUs and SimpleRNNs of any
    size and for LSTMs below 256 units; for larger LSTMs oneDNN's GEMMs win, and in
    inference (no gradient) the native kernels' forward is faster.
    """
    needs_grad = torch.is_grad_enabled() and (
        inputs.requires_grad or any(p.requires_grad for p in cell.parameters(recurse=False)))
    return (needs_grad and supports(cell, inputs)
            and not (type(cell) is LSTMCell and cell.units >= NATIVE_LSTM_FROM_UNITS))


def run_fused(cells: list[RecurrentCell], projected: torch.Tensor, states: list[list[torch.Tensor]],
              mask: torch.Tensor | None, recurrent_masks: list[torch.Tensor | None] | None,
              zero_output_for_mask: bool) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """Run `cells` (one per direction, the same equation) over their projected inputs.

    projected `(D, batch, time, k*units)` (each direction in processing order),
    states[d] direction d's initial states, mask `(D, batch, time)` or None,
    recurrent_masks[d] a `(batch, units)` keep-mask or None.
    Returns outputs `(D, batch, time, units)` and each direction's final states.
    """
    code = cell_code(cells[0])
    recurrent_kernel = torch.stack([cell.recurrent_kernel for cell in cells])
    recurrent_bias = None
    if code == GRU_RESET_AFTER:
        recurrent_bias = (torch.stack([cell.bias[1] for cell in cells])[:, None] if cells[0].use_bias
                          else projected.new_zeros(len(cells), 1, recurrent_kernel.shape[-1]))
    hidden = torch.stack([s[0] for s in states])
    cell_state = torch.stack([s[1] for s in states]) if code == LSTM else None
    keep = None if mask is None else mask.permute(2, 0, 1)[..., None].contiguous()
    dropout = _stacked_masks(recurrent_masks, like=hidden)
    outputs, h, c = _FusedLoop.apply(code, zero_output_for_mask, projected.permute(2, 0, 1, 3).contiguous(),
                                     recurrent_kernel, recurrent_bias, hidden, cell_state, keep, dropout)
    finals = [[h[d]] if c is None else [h[d], c[d]] for d in range(len(cells))]
    return outputs.permute(1, 2, 0, 3), finals


def _stacked_masks(masks: list[torch.Tensor | None] | None, like: torch.Tensor) -> torch.Tensor | None:
    """The directions' recurrent dropout keep-masks `(D, batch, units)`; one without a mask gets ones."""
    if masks is None or all(m is None for m in masks):
        return None
    return torch.stack([like.new_ones(like.shape[1:]) if m is None else m for m in masks])


class _FusedLoop(torch.autograd.Function):
    """Autograd wrapper: the C++ forward saves what the C++ backward needs."""

    @staticmethod
    def forward(ctx, code, zero_output, projected, recurrent_kernel, recurrent_bias, hidden, cell_state,
                keep, dropout):
        outputs, h, c, h_prev, c_prev, gates, extra = extension().forward(
            code, projected, recurrent_kernel, recurrent_bias, hidden, cell_state, keep, dropout, zero_output)
        ctx.code, ctx.zero_output = code, zero_output
        ctx.save_for_backward(recurrent_kernel, keep, dropout, h_prev, c_prev, gates, extra)
        return outputs, h, c

    @staticmethod
    def backward(ctx, grad_outputs, grad_h, grad_c):
        recurrent_kernel, keep, dropout, h_prev, c_prev, gates, extra = ctx.saved_tensors
        grad_projected, grad_kernel, grad_bias, grad_hidden, grad_cell = extension().backward(
            ctx.code, grad_outputs, grad_h, grad_c, recurrent_kernel, keep, dropout, ctx.zero_output,
            h_prev, c_prev, gates, extra)
        return None, None, grad_projected, grad_kernel, grad_bias, grad_hidden, grad_cell, None, None
