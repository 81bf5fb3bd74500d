"""`--threads N` of every command: torch's CPU threads, a positive whole number."""

from __future__ import annotations

import torch

__all__ = ["use_threads"]


def use_threads(count: int | None) -> None:
    """Set torch's intra-op CPU threads to `count` (None: leave torch's default); 0 or less is refused."""
    if count is None:
        return
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"--threads must be a whole number of at least 1, got {count!r}.")
    torch.set_num_threads(count)
