"""THE policy: which path runs a recurrent layer, or both directions of a Bidirectional one.

`choose(directions, inputs, padding, training)` decides from what the cells
compute (`cell.equation`, `seqlab.kernels.equations`), the analysed mask
(`seqlab.kernels.masks.Padding`), whether this is a training step, and each
layer's request (`execution=`, one of `REQUESTS`). One direction (an `RNN`):

    1. "auto", training, where the C++ loop beats the native kernel (GRU, SimpleRNN:
       `fused.preferred`)                                                   → FUSED
    2. "auto"/"native", the native kernel computes the equation (`native.supports`)
       and the padding is not irregular (a hole, an empty row)             → NATIVE
    3. "native" otherwise: an error that says why
    4. "auto"/"fused", the C++ loop computes the equation (`fused.supports`) → FUSED
    5. "fused" otherwise: an error that says why
    6. otherwise (a custom `step`, other activations, no compiler)         → REFERENCE

Two directions (a `Bidirectional`'s forward and backward layers):

    1. both in one loop (`paired.can_pair`): on the C++ loop where it serves both
       cells → FUSED, else the paired reference loop                       → PAIRED
    2. both "auto", native, the same step, no padding, no input dropout in
       training: one bidirectional kernel call                             → NATIVE
    3. otherwise each direction alone, by rule 1-6                         → APART

A direction is duck-typed (`Direction`): a layer with a `cell` and the
attributes listed there; the `RNN` layer is one.

    >>> choose([lstm], x, Padding.of(mask), training=False)
    <Path.NATIVE: 'native'>
"""

from __future__ import annotations

import enum
from typing import Any, Protocol, Sequence

import torch

from seqlab.kernels import fused, native, paired
from seqlab.kernels.equations import same_step
from seqlab.kernels.masks import Padding

REQUESTS = ("auto", "native", "fused", "reference")


class Path(enum.Enum):
    NATIVE = "native"          # PyTorch's kernel (oneDNN, cuDNN); both directions in one call for a pair
    FUSED = "fused"            # seqlab's C++ loop; both directions at once for a pair
    PAIRED = "paired"          # (pairs) both directions in one reference loop, the weights stacked
    REFERENCE = "reference"    # the cell's own step in the reference loop
    APART = "apart"            # (pairs) each direction alone, on its own path


class Direction(Protocol):
    """What the policy reads of a recurrent layer."""

    name: str
    cell: Any  # `equation`, `units`, `kernel`, `recurrent_dropout`, `dropout`, `parameters()`
    execution: str
    go_backwards: bool
    time_major: bool
    stateful: bool
    zero_output_for_mask: bool


def choose(directions: Sequence[Direction], inputs: torch.Tensor, padding: Padding, training: bool) -> Path:
    """The path for one layer, or for a (forward, backward) pair (see the module docstring).

    `inputs (batch, time, features)` as the cells read them; `padding` the analysed mask in the
    order the (first) direction reads time.
    """
    if len(directions) == 2:
        return _choose_pair(directions[0], directions[1], inputs, padding, training)
    (layer,) = directions
    return _choose_one(layer, inputs, padding, training)


def _choose_one(layer: Direction, inputs, padding: Padding, training: bool) -> Path:
    cell, request = layer.cell, layer.execution
    if request == "auto" and fused.preferred(cell, inputs):
        return Path.FUSED
    if request in ("auto", "native") and native.supports(cell, training) and not padding.irregular:
        return Path.NATIVE
    if request == "native":
        raise ValueError(
            f"{layer.name} cannot run on PyTorch's native kernel (its configuration or mask is "
            "not one the kernel computes exactly); use execution='auto'."
        )
    if request in ("auto", "fused") and fused.supports(cell, inputs):
        return Path.FUSED
    if request == "fused":
        raise ValueError(
            f"{layer.name} cannot run on seqlab's C++ loop (it serves tanh/sigmoid LSTMs and GRUs "
            "and tanh/relu SimpleRNNs in float32/float64 on CPU, and needs the compiled "
            "extension); use execution='auto'."
        )
    return Path.REFERENCE


def _choose_pair(forward: Direction, backward: Direction, inputs, padding: Padding, training: bool) -> Path:
    if paired.can_pair(forward, backward, inputs, training, padding):
        on_fused_loop = fused.supports(forward.cell, inputs) and fused.supports(backward.cell, inputs)
        return Path.FUSED if on_fused_loop else Path.PAIRED
    if not padding.padded and _one_native_call(forward, backward, training):
        return Path.NATIVE
    return Path.APART


def _one_native_call(forward: Direction, backward: Direction, training: bool) -> bool:
    """Whether one native bidirectional call computes both directions (given no padding)."""
    return (forward.execution == backward.execution == "auto" and not forward.go_backwards
            and not forward.time_major and not forward.stateful and not backward.stateful
            and native.supports(forward.cell, training) and native.supports(backward.cell, training)
            and same_step(forward.cell, backward.cell)
            and not (training and (forward.cell.dropout > 0 or backward.cell.dropout > 0)))
