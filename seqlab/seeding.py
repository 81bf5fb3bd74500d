"""Seeds and random-number-generator states: reproducible runs, exact resumption.

`set_seed(n)` seeds every generator a training run draws from (Python's
`random`, NumPy's global generator, PyTorch on CPU and on every GPU), so two
CPU runs of the same script produce bit-for-bit the same weights.
`get_rng_state()` / `set_rng_state()` capture and restore those generators;
checkpoints store them so that a resumed run draws the same dropout masks
an uninterrupted one would. `derive_seed(seed, epoch)` gives independent,
reproducible seeds for per-epoch data orders.

    >>> set_seed(42)
    >>> state = get_rng_state(); a = torch.rand(1)
    >>> set_rng_state(state); bool(torch.rand(1) == a)
    True
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["derive_seed", "get_rng_state", "set_rng_state", "set_seed"]


def set_seed(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python's `random`, NumPy and PyTorch (CPU and all CUDA devices) with `seed`.

    On CPU this alone makes training repeatable bit for bit. On GPU, pass
    `deterministic=True` to also ask PyTorch and cuDNN for deterministic
    kernels (slower; some operations then raise instead of running).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"set_seed expects a non-negative int, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from `parts` (e.g. `(run_seed, epoch)`), via NumPy's SeedSequence."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def get_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and PyTorch's global generators (tensors and plain values)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=True),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generators captured by `get_rng_state()` (CUDA states only where CUDA is present)."""
    random.setstate(_as_tuples(state["python"]))
    kind, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(position), int(has_gauss),
                         float(cached_gaussian)))
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [torch.as_tensor(s, dtype=torch.uint8).cpu() for s in state["cuda"]]
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])


def _as_tuples(value: Any) -> Any:
    # random.setstate insists on tuples; a state that went through JSON has lists.
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value
