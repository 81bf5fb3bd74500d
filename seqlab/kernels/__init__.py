"""How recurrences run, knowing no layer: each path a verified twin of the reference loop.

- `equations`: what a cell computes (`cell.equation`: form and activations; None
  for a cell with its own `step`). Every path decides from it alone.
- `masks`: a mask analysed once at the layer boundary (`Padding`: none, one
  block per row, irregular), read by every path below.
- `reference_loop`: the definition of correct, `cell.step` step by step.
- `native`: PyTorch's kernels (oneDNN, cuDNN) with Keras' masking; `layout`
  converts Keras' weights to their layout (the cell keeps the result).
- `fused`: seqlab's compiled C++ loop (and the `CellStep` generation uses);
  `paired`: both directions of a Bidirectional layer in one loop.
- `paths`: THE policy. Every recurrent layer has `execution` = "auto" (default),
  "native", "fused" or "reference"; `paths.choose` picks, for an `RNN` and for
  a `Bidirectional` pair alike, from the equation, the padding, training mode
  and the request: "auto" runs PyTorch's native kernel where it computes the
  equation exactly and the padding allows it, else the C++ loop, else the
  reference loop; in training the C++ loop comes first where it is faster
  (`fused.preferred`, and `paired.can_pair` for a small Bidirectional LSTM).

Cells and layers are duck-typed here (`units`, `kernel`, `recurrent_kernel`,
`bias`, `step`, `project_inputs`, `equation`, ...): the layers import
this package, never the other way. `force_execution(model, "reference")`
switches a whole model, for debugging.

    >>> force_execution(model, "reference")
"""

from seqlab.kernels.native import run_native, supports
from seqlab.kernels.paths import REQUESTS


def force_execution(model, path: str) -> None:
    """Set the execution path (one of `REQUESTS`) of every recurrent layer in `model`."""
    if path not in REQUESTS:
        raise ValueError(f"execution path must be one of {REQUESTS}, got {path!r}.")
    for module in model.modules():
        if hasattr(module, "cell") and hasattr(module, "execution"):  # a recurrent layer (an RNN)
            module.execution = path


__all__ = ["REQUESTS", "force_execution", "run_native", "supports"]
