"""Moved: the generation runner (`Stepper`, `WindowStepper`, `stepper_for`) is `seqlab.generation.stepping`.

Only `PRECISIONS` (a kernel fact: the precisions of a step's recurrent product, `fused.CellStep`)
is still importable here, for `seqlab.apps.charlm`; import it from `seqlab.generation` instead.
"""

from seqlab.kernels.fused import PRECISIONS

__all__ = ["PRECISIONS"]
