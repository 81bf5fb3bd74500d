"""Fast execution paths for recurrent layers, each a verified twin of the reference loop.

Every recurrent layer has `execution` = "auto" (default), "native" or
"reference". "auto" runs PyTorch's native kernel when it computes the layer's
equation exactly (`native.supports`) and the mask allows it, and the
reference loop otherwise. `force_execution(model, "reference")` switches a
whole model, for debugging.
"""

from seqlab.kernels.native import run_native, supports

PATHS = ("auto", "native", "reference")


def force_execution(model, path: str) -> None:
    """Set the execution path of every recurrent layer in `model`."""
    from seqlab.layers.recurrent import RNN

    if path not in PATHS:
        raise ValueError(f"execution path must be one of {PATHS}, got {path!r}.")
    for module in model.modules():
        if isinstance(module, RNN):
            module.execution = path


__all__ = ["PATHS", "force_execution", "run_native", "supports"]
