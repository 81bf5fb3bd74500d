"""Keep freed memory for reuse: the allocator setting that training steps need on Linux.

A training step allocates and frees the same large buffers every time
(activations saved for backward, gradients, the recurrent loops' gate
buffers: tens of MB for a 32 × 200 batch). By default glibc hands blocks
above a threshold back to the kernel when they are freed, so every step maps
them afresh and pays a page fault (and a zeroed page) per 4 KiB.
`keep_freed_memory()` raises glibc's thresholds (`mallopt`): blocks up to
32 MiB come from the heap and up to 1 GiB of free heap is kept. Measured on
the 2-core CPU (docs/performance.md): config B's training step, 34.1 → 21.4 ms
with PyTorch's own LSTM kernel and 35.2 → 21.5 ms with seqlab's.

seqlab applies it when training starts (`Model.fit`) and when the compiled
recurrent loop loads; it changes the process's allocator, so
SEQLAB_MALLOC_TUNING=0 leaves glibc's defaults. Other C libraries (musl) and
other systems are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 32 << 20   # glibc's largest allowed value (64-bit)
TRIM_THRESHOLD = 1 << 30

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the setting once per process; returns whether it is in effect."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get("SEQLAB_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, TRIM_THRESHOLD))
