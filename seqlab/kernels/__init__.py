"""Fast execution paths for recurrent layers, each a verified twin of the reference loop.

Every recurrent layer has `execution` = "auto" (default), "native", "fused"
or "reference". "auto" runs PyTorch's native kernel when it computes the
layer's equation exactly (`native.supports`) and the mask allows it, else
seqlab's compiled C++ loop (`fused.supports`), else the reference loop; in
training the C++ loop comes first where it is faster (`fused.preferred`, and
`paired.can_pair` for a small Bidirectional LSTM).
`force_execution(model, "reference")` switches a whole model, for debugging.
"""

from seqlab.kernels.native import run_native, supports


def force_execution(model, path: str) -> None:
    """Set the execution path of every recurrent layer in `model`."""
    from seqlab.layers.recurrent import EXECUTION_PATHS, RNN

    if path not in EXECUTION_PATHS:
        raise ValueError(f"execution path must be one of {EXECUTION_PATHS}, got {path!r}.")
    for module in model.modules():
        if isinstance(module, RNN):
            module.execution = path


__all__ = ["force_execution", "run_native", "supports"]
