"""Keras weight layout ↔ PyTorch's native recurrent layout.

Keras stores `kernel (F, k*u)` and `recurrent_kernel (u, k*u)` with gates in
blocks along the columns; PyTorch's kernels take `weight_ih (k*u, F)`,
`weight_hh (k*u, u)`, `bias_ih`, `bias_hh (k*u,)`. The LSTM gate order is the
same (i, f, c/g, o); the GRU's is z, r, h in Keras and r, z, n in PyTorch, and
only Keras' `reset_after=True` GRU (bias `(2, 3u)`: input and recurrent
biases) computes PyTorch's equation. The conversion is differentiable (its
gradients flow back to the Keras-layout weights), and outside autograd its
result is cached until a weight changes: a change PyTorch counts on the weight
(`_version`). PyTorch's fused optimizers (`fused=True`) write weights without
counting; seqlab's optimizers count their updates for them
(`torch.autograd.graph.increment_version`), and code that steps one itself must do the same.

    >>> weights = native_weights(lstm.cell)     # [weight_ih, weight_hh, bias_ih, bias_hh]
"""

from __future__ import annotations

import torch

from seqlab.layers.cells import GRUCell, RecurrentCell


def native_weights(cell: RecurrentCell) -> list[torch.Tensor]:
    """`[weight_ih, weight_hh, bias_ih, bias_hh]` (biases left out with use_bias=False)."""
    params = cell.own_weights()
    if torch.is_grad_enabled() and any(p.requires_grad for p in params):
        return _convert(cell)
    key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)
    cached = getattr(cell, "_native_weight_cache", None)
    if cached is None or cached[0] != key:
        with torch.no_grad():
            cached = (key, [w.contiguous() for w in _convert(cell)])
        cell._native_weight_cache = cached
    return cached[1]


def _convert(cell: RecurrentCell) -> list[torch.Tensor]:
    kernel, recurrent_kernel = cell.kernel, cell.recurrent_kernel
    if isinstance(cell, GRUCell):
        order = gru_gate_order(cell.units, kernel.device)
        weights = [kernel.t()[order], recurrent_kernel.t()[order]]  # contiguous rows: oneDNN's fast path
        if cell.use_bias:
            weights += [cell.bias[0, order], cell.bias[1, order]]
        return weights
    # contiguous rows are 2.5% faster steps (config A); an LSTM's kernels are stored that way (no copy here)
    weights = [kernel.t().contiguous(), recurrent_kernel.t().contiguous()]
    if cell.use_bias:
        weights += [cell.bias, torch.zeros_like(cell.bias)]
    return weights


def gru_gate_order(units: int, device: torch.device | None = None) -> torch.Tensor:
    """Column indices that turn Keras' z, r, h blocks into PyTorch's r, z, n."""
    blocks = torch.arange(3 * units, device=device).view(3, units)
    return blocks[[1, 0, 2]].reshape(-1)
