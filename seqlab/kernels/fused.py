"""The recurrent time loop compiled: C++ forward and a hand-written backward.

`csrc/fused_loop.cpp` runs the reference loop's equations (the cells' `step`,
Keras' masking, recurrent dropout) with the Python interpreter and the
autograd graph out of the loop. Each step is one batched product for the
recurrent half, `h_{t-1} U`, and one vectorized pass over the elements (the
gates, the mask, what the backward pass needs); the backward pass is written
out, and the recurrent kernel's gradient is one product over all steps,

    dU = Σ_t (h_{t-1} * m)ᵀ · dz_t        (m: the recurrent dropout keep-mask)

It serves SimpleRNN (tanh, relu), LSTM (tanh/sigmoid, peepholes or not) and GRU
(tanh/sigmoid, `reset_after` either way) on CPU in float32 and float64, with
any mask, for one direction or both directions of a Bidirectional layer at
once (the backward one reading time in reverse; each on its own thread where
there are two). Padded batches run sorted by
length, each step computing only the rows still running. A step's product
goes to BLAS, or, when it is big (float32, rows × kernel at least 4M
multiply-adds: an LSTM(512) with 64 rows), to oneDNN with the kernel packed
once into its own layout (about twice BLAS' speed here). `CellStep` is one
time step without autograd, for generation, with the kernel packed once;
`csrc/sampling.cpp` adds `draw`, generation's sampler in one call
(`seqlab.generation.draw`), and `csrc/word2vec.cpp` the word-vector trainer of
`seqlab.embeddings`.

The extension is compiled on first use with PyTorch's C++ toolchain
(`torch.utils.cpp_extension`, g++ and ninja; about 30 s, cached under
`TORCH_EXTENSIONS_DIR`, default `~/.cache/torch_extensions`, under a name tied
to this CPU). Where it cannot be built, or with `SEQLAB_NO_EXTENSION=1`,
`available()` is False and layers run the pure-PyTorch paths, with one
warning that says why. Loading it also tunes glibc to keep freed memory for
reuse (`seqlab.kernels.allocator`).

Which of the loop's equations runs a cell is read off `cell.equation` alone
(`cell_code`); a cell whose equation is None (its own `step`) never runs here.

    >>> outputs, last, finals = run_fused([cell], [inputs], [states], Padding.of(mask), [None], False)
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import warnings
from pathlib import Path

import torch

from seqlab.kernels.allocator import keep_freed_memory
from seqlab.kernels.equations import RELU, SIGMOID, TANH, Equation, Form, equation_of
from seqlab.kernels.masks import Padding

# The recurrent loop, `draw` for generation and `train_word2vec` for seqlab.embeddings (all bound in
# fused_loop.cpp's module).
SOURCES = [str(Path(__file__).with_name("csrc") / name) for name in ("fused_loop.cpp", "sampling.cpp", "word2vec.cpp")]


def _build_name() -> str:
    """The extension's name, tied to this CPU: built with -march=native, it must not be loaded on another
    CPU sharing the same cache (a shared home directory, an image moved between machines)."""
    fingerprint = platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            fingerprint += next((line for line in cpuinfo if line.startswith(("flags", "Features"))), "")
    except OSError:
        fingerprint += platform.processor()
    return "seqlab_fused_loop_" + hashlib.sha256(fingerprint.encode()).hexdigest()[:10]


NAME = _build_name()
SIMPLE_TANH, SIMPLE_RELU, LSTM, GRU_RESET_AFTER, GRU_RESET_BEFORE = range(5)  # fused_loop.cpp's codes
CODES = {  # the equations the loop computes (a peephole LSTM is LSTM with its peephole weights given)
    Equation(Form.SIMPLE, TANH): SIMPLE_TANH, Equation(Form.SIMPLE, RELU): SIMPLE_RELU,
    Equation(Form.LSTM, TANH, SIGMOID): LSTM, Equation(Form.LSTM_PEEPHOLE, TANH, SIGMOID): LSTM,
    Equation(Form.GRU_RESET_AFTER, TANH, SIGMOID): GRU_RESET_AFTER,
    Equation(Form.GRU_RESET_BEFORE, TANH, SIGMOID): GRU_RESET_BEFORE,
}
PRECISIONS = ("float32", "bfloat16")  # of a generation step's recurrent product (`CellStep`'s kernel)

# -march=native: the extension is built on the machine that runs it. -fno-trapping-math and
# `#pragma omp simd` (-fopenmp-simd) let the compiler vectorize the loops over units; NaN and
# infinity behave as usual.
COMPILER_FLAGS = ["-O3", "-march=native", "-fno-trapping-math", "-fopenmp-simd"]


def _threading_flags() -> list[str]:
    """`at::parallel_for` is a header template: under PyTorch's OpenMP backend it is an
    `omp parallel` region compiled into the extension, which runs on one thread unless the
    extension is built with -fopenmp. Linked by soname, it then shares the libgomp (and the
    thread pool) that PyTorch has already loaded."""
    if "parallel backend: OpenMP" in torch.__config__.parallel_info() and sys.platform.startswith("linux"):
        return ["-fopenmp"]
    return []

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
        from torch.utils.cpp_extension import _get_build_directory, load

        _put_pip_ninja_on_path()
        if not list(Path(_get_build_directory(NAME, False)).glob(f"{NAME}*.so")):
            print("seqlab: building the C++ recurrent loop (once; about 30 s)", file=sys.stderr, flush=True)
        _extension = _build(load)
        keep_freed_memory()  # the loop allocates the same buffers every step
    except Exception as error:  # no compiler, no ninja, a broken toolchain: fall back, say so once
        _failure = _first_error_line(error)
        warnings.warn(
            f"seqlab could not build its C++ recurrent loop ({_failure}); recurrent layers that "
            "PyTorch's native kernels do not cover run the slower Python loop. Install g++ and "
            "ninja to enable it, or set SEQLAB_NO_EXTENSION=1 to silence this.",
            RuntimeWarning, stacklevel=2)
    return _extension


def _build(load):
    """Build (or load the cached build of) the extension, with OpenMP where PyTorch uses it; a
    toolchain without OpenMP gets the same loops on one thread rather than none at all."""
    threading = _threading_flags()
    try:
        return load(NAME, SOURCES, extra_cflags=COMPILER_FLAGS + threading, extra_ldflags=threading,
                    verbose=False)
    except Exception:
        if not threading:
            raise
        return load(NAME, SOURCES, extra_cflags=COMPILER_FLAGS, verbose=False)


def _put_pip_ninja_on_path() -> None:
    """PyTorch calls `ninja` from PATH; the `ninja` wheel (a dependency) puts it in the venv's bin."""
    try:
        import ninja
    except ImportError:
        return
    bin_dir = getattr(ninja, "BIN_DIR", None)
    if bin_dir and bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])


def _first_error_line(error: Exception) -> str:
    """The compiler's first `error:` line, else the exception's last line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    return next((line for line in lines if "error:" in line), lines[-1])


def available() -> bool:
    return extension() is not None


def cell_code(cell) -> int | None:
    """Which equation of the C++ loop computes `cell.step` (from `cell.equation`), or None."""
    equation = equation_of(cell)
    return None if equation is None else CODES.get(equation)


def supports(cell, inputs: torch.Tensor) -> bool:
    """Whether the C++ loop computes this cell's equation on these inputs."""
    return (cell_code(cell) is not None and inputs.device.type == "cpu"
            and inputs.dtype in (torch.float32, torch.float64) and cell.kernel.dtype == inputs.dtype
            and available())


def preferred(cell, inputs: torch.Tensor) -> bool:
    """Whether `execution="auto"` should train this cell on the C++ loop even where a native kernel exists.

    Measured on the 2-core CPU (docs/performance.md): in a training step (forward
    and backward) the loop beats PyTorch's kernels for GRUs and SimpleRNNs
    (which have no fused CPU kernel: one product and a dozen small operations per
    step, each recorded for autograd); oneDNN's LSTM kernel beats it for an LSTM
    on its own (a Bidirectional pair of small LSTMs is the exception, decided in
    `seqlab.kernels.paired`), and in inference (no gradient) the native kernels'
    forward is as fast.
    """
    return trains(cell, inputs) and supports(cell, inputs) and not equation_of(cell).form.is_lstm


def trains(cell, inputs: torch.Tensor) -> bool:
    """Whether running `cell` on `inputs` records gradients (a training step, not inference)."""
    return torch.is_grad_enabled() and (
        inputs.requires_grad or any(p.requires_grad for p in cell.parameters(recurse=False)))


def run_fused(cells: list, inputs: list[torch.Tensor], states: list[list[torch.Tensor]],
              padding: Padding, recurrent_masks: list[torch.Tensor | None], zero_output_for_mask: bool,
              reverse_last: bool = False, need_sequence: bool = True
              ) -> tuple[torch.Tensor | None, torch.Tensor, list[list[torch.Tensor]]]:
    """Run `cells` (one per direction, the same equation) over `inputs[d] (batch, time, features)`.

    states[d] are direction d's initial states, `padding` the analysed mask
    (`seqlab.kernels.masks`), recurrent_masks[d] a `(batch, units)` keep-mask or
    None. With `reverse_last` the last direction reads time backwards (a
    Bidirectional layer's backward half). Returns
    - outputs `(batch, time, D, units)` in input time order (None unless `need_sequence`),
    - last `(batch, D, units)`: each direction's output at its last step,
    - each direction's final states.

    A padded batch whose real steps form one block per row (right-, left- or
    both-padded) runs sorted by length, its real steps gathered by one
    `index_select` (PackedSequence's order), and each step computes only the
    rows still running; the outputs are put back in Keras' layout.
    """
    mask, blocks = padding.mask, padding.blocks
    if blocks is not None and reverse_last and need_sequence and not zero_output_for_mask:
        blocks = None  # a backward half's held outputs before its block: the plain masked loop has them
    lengths = order = None
    if blocks is not None:
        order = torch.argsort(blocks.lengths, descending=True, stable=True)
        lengths = blocks.lengths.index_select(0, order)
        real = _real_steps(lengths, blocks.time, order, blocks.starts)
        packed = {id(x): x.reshape(-1, x.shape[-1]).index_select(0, real) for x in inputs}  # (real steps, features)
        inputs = [packed[id(x)] for x in inputs]  # directions reading the same inputs still share them
        states = [[s.index_select(0, order) for s in per] for per in states]
        recurrent_masks = [None if m is None else m.index_select(0, order) for m in recurrent_masks]
        mask = None
    # Every step's output is written only where it is read: the sequence, or an arbitrary mask's last output.
    sequence = need_sequence or mask is not None
    outputs, h, c = _FusedLoop.apply(
        cell_code(cells[0]), zero_output_for_mask, reverse_last, sequence, _project(cells, inputs, lengths is not None),
        _input_biases(cells), torch.stack([cell.recurrent_kernel for cell in cells]), _recurrent_bias(cells, inputs[0]),
        _peepholes(cells),
        torch.stack([s[0] for s in states]), torch.stack([s[1] for s in states]) if len(states[0]) > 1 else None,
        mask, stack_keep_masks(recurrent_masks, like=states[0][0]), lengths)
    finals = [[h[d]] if c is None else [h[d], c[d]] for d in range(len(cells))]
    if blocks is None:
        # Unmasked, every direction's output at its last step is its final h: read there, a loss on it
        # sends the loop a gradient of h_T alone, not one of the whole sequence that is zero but there.
        last = h.transpose(0, 1) if mask is None else torch.stack(
            [outputs[:, 0 if reverse_last and d == len(cells) - 1 else -1, d] for d in range(len(cells))], dim=1)
        return (outputs if need_sequence else None), last, finals
    inverse = torch.argsort(order)
    finals = [[s.index_select(0, inverse) for s in per] for per in finals]
    last = torch.stack([per[0] for per in finals], dim=1)  # every row has real steps: h_T is its last output
    if not need_sequence:
        return None, last, finals
    outputs = outputs.index_select(0, inverse)
    placed = [blocks.scatter_back(outputs[:, :, d], zero_output_for_mask) for d in range(len(cells))]
    return torch.stack(placed, dim=2), last, finals


class CellStep:
    """`cell.step(projected (batch, k*units), states)` on the C++ loop, without autograd (generation).

    One time step, no mask, no dropout: `(h_t, new states)`, equal to the cell's own step.
    The recurrent kernel is prepared once, since generation calls this for every token (the
    weights it uses are those of when it was made, as `Stepper`'s table): packed into oneDNN's
    layout where that beats BLAS (for a product of `batch_size` rows). `recurrent_kernel`:
    default the cell's; a bfloat16 copy multiplies h rounded to bfloat16.
    """

    def __init__(self, cell, like: torch.Tensor, recurrent_kernel: torch.Tensor | None = None,
                 batch_size: int = 1):
        with torch.no_grad():
            kernel = (cell.recurrent_kernel if recurrent_kernel is None else recurrent_kernel).detach()
            bias = _recurrent_bias([cell], like)
            peepholes = _peepholes([cell])
            code = cell_code(cell)
            self.lstm = code == LSTM
            self._step = extension().Step(code, kernel, None if bias is None else bias[0],
                                          None if peepholes is None else peepholes[0], batch_size)

    def __call__(self, projected: torch.Tensor, states: list[torch.Tensor]
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, c = self._step(projected, states[0], states[1] if self.lstm else None)
        return h, ([h] if c is None else [h, c])


def _project(cells: list, inputs: list[torch.Tensor], packed: bool = False) -> torch.Tensor:
    """`x_d W_x` of every direction d, each direction's time-major: `(D, time, batch, k*units)` from inputs
    `(batch, time, features)`. The loop adds the input bias `b_x` itself (a product into a bias-filled
    tensor would write every row twice).

    `packed` inputs are a padded batch's real steps, `(real steps, features)` in
    PackedSequence's order (`_real_steps`), and so is the result: `(D, real steps, k*units)`.
    Directions that read the same inputs share one `_Projection`; otherwise each
    is projected and the blocks concatenated.
    """
    if packed:
        rows = inputs
    else:
        time, batch = inputs[0].shape[1], inputs[0].shape[0]
        rows = [x.transpose(0, 1).reshape(time * batch, -1) for x in inputs]  # (time*batch, features)
    groups = [cells] if all(x is inputs[0] for x in inputs) else [[cell] for cell in cells]
    products = []
    for group, x in zip(groups, rows):
        kernels = torch.stack([cell.kernel for cell in group]) if len(group) > 1 else group[0].kernel[None]
        products.append(_Projection.apply(x, kernels))
    projected = products[0] if len(products) == 1 else torch.cat(products)
    return projected if packed else projected.view(len(cells), time, batch, -1)


class _Projection(torch.autograd.Function):
    """`x W_d` for D kernels, `(D, rows, n)`, and its gradients, each product through the extension's
    `product_into`: oneDNN's matmul for big float32 products (8-28% faster than PyTorch's MKL `mm` here,
    docs/performance.md run 9), else BLAS.

        dx = Σ_d g_d W_dᵀ,   dW_d = xᵀ g_d     (x (rows, k), W_d (k, n), g_d (rows, n))
    """

    @staticmethod
    def forward(ctx, x, kernels):
        ctx.save_for_backward(x, kernels)
        product_into = extension().product_into
        out = x.new_empty(kernels.shape[0], x.shape[0], kernels.shape[2])
        for d, kernel in enumerate(kernels):
            product_into(out[d], x, kernel)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, kernels = ctx.saved_tensors
        product_into = extension().product_into
        grad_x = grad_kernels = None
        if ctx.needs_input_grad[0]:
            grad_x = x.new_empty(x.shape)
            for d, kernel in enumerate(kernels):
                product_into(grad_x, grad[d], kernel.t(), accumulate=d > 0)
        if ctx.needs_input_grad[1]:
            grad_kernels = kernels.new_empty(kernels.shape)
            for d in range(len(kernels)):
                product_into(grad_kernels[d], x.t(), grad[d])
        return grad_x, grad_kernels


def _real_steps(lengths: torch.Tensor, time: int, order: torch.Tensor | None = None,
                starts: torch.Tensor | None = None) -> torch.Tensor:
    """Indices into a `(batch, time)` grid, flattened, of a padded batch's real steps in PackedSequence's
    order: step 0 of every row longest first, then step 1 of the rows still running, ...

    `order` lists the rows longest first (default: as they are), `lengths` their lengths in that
    order, and `starts (batch,)` where each row's block begins (default 0: right padding). One
    `index_select` by these indices packs the inputs, and its backward is one `index_add`.
    """
    rows = torch.arange(len(lengths), device=lengths.device) if order is None else order
    first = rows * time + (0 if starts is None else starts.index_select(0, rows))  # each sorted row's step 0
    steps = torch.arange(int(lengths[0]), device=lengths.device)[:, None]  # (longest, 1)
    return (first[None, :] + steps)[steps < lengths[None, :]]


def _input_biases(cells: list) -> torch.Tensor | None:
    """The directions' input biases b_x `(D, k*units)`; None for cells without a bias."""
    biases = [cell.input_bias() for cell in cells]
    return None if biases[0] is None else torch.stack(biases)


def _peepholes(cells: list) -> torch.Tensor | None:
    """Peephole LSTMs' weights `(D, 3, units)`: p_i, p_f, p_o of each direction; else None."""
    if equation_of(cells[0]).form is not Form.LSTM_PEEPHOLE:
        return None
    return torch.stack([torch.stack([cell.input_gate_peephole_weights, cell.forget_gate_peephole_weights,
                                     cell.output_gate_peephole_weights]) for cell in cells])


def _recurrent_bias(cells: list, like: torch.Tensor) -> torch.Tensor | None:
    """The reset_after GRU's recurrent biases `(D, 1, 3*units)` (zeros without bias); else None."""
    if cell_code(cells[0]) != GRU_RESET_AFTER:
        return None
    if cells[0].use_bias:
        return torch.stack([cell.bias[1] for cell in cells])[:, None]
    return like.new_zeros(len(cells), 1, cells[0].recurrent_kernel.shape[-1])


def stack_keep_masks(masks: list[torch.Tensor | None], like: torch.Tensor) -> torch.Tensor | None:
    """The directions' recurrent dropout keep-masks `(D, batch, units)`; one without a mask gets ones.

    `like` is a `(batch, units)` tensor of the dtype and device to use (a direction's state).
    """
    if all(m is None for m in masks):
        return None
    return torch.stack([like.new_ones(like.shape) if m is None else m for m in masks])


class _FusedLoop(torch.autograd.Function):
    """Autograd wrapper: the C++ forward saves what the C++ backward needs. Gradients that no loss
    reached stay None (the loop reads them as zeros), rather than zero tensors autograd would fill."""

    @staticmethod
    def forward(ctx, code, zero_output, reverse_last, sequence, projected, input_bias, recurrent_kernel,
                recurrent_bias, peepholes, hidden, cell_state, keep, dropout, lengths):
        ctx.set_materialize_grads(False)
        outputs, h, c, h_prev, c_prev, gates, extra = extension().forward(
            code, projected, input_bias, recurrent_kernel, recurrent_bias, peepholes, hidden, cell_state, keep,
            dropout, lengths, reverse_last, zero_output, sequence)
        ctx.code, ctx.zero_output, ctx.reverse_last = code, zero_output, reverse_last
        ctx.save_for_backward(recurrent_kernel, peepholes, keep, dropout, lengths, h_prev, c_prev, gates, extra)
        return outputs, h, c

    @staticmethod
    def backward(ctx, grad_outputs, grad_h, grad_c):
        recurrent_kernel, peepholes, keep, dropout, lengths, h_prev, c_prev, gates, extra = ctx.saved_tensors
        grad_projected, grad_input_bias, grad_kernel, grad_bias, grad_hidden, grad_cell, grad_peepholes = (
            extension().backward(ctx.code, grad_outputs, grad_h, grad_c, recurrent_kernel, peepholes, keep, dropout,
                                 lengths, ctx.reverse_last, ctx.zero_output, h_prev, c_prev, gates, extra))
        if not ctx.needs_input_grad[5]:
            grad_input_bias = None  # a cell without a bias: the loop added none
        return (None, None, None, None, grad_projected, grad_input_bias, grad_kernel, grad_bias, grad_peepholes,
                grad_hidden, grad_cell, None, None, None)
