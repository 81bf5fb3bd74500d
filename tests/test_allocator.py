"""`keep_freed_memory` changes glibc's allocator once, and can be switched off."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from seqlab.kernels import allocator
print(allocator.keep_freed_memory(), allocator.keep_freed_memory())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is a Linux setting")
@pytest.mark.parametrize("setting, expected", [("1", "True True"), ("0", "False False")])
def test_the_setting_applies_once_unless_switched_off(setting, expected):
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                            env={"SEQLAB_MALLOC_TUNING": setting, "PATH": ""})
    assert result.stdout.split() == expected.split()


def test_fit_applies_it(monkeypatch):
    import torch

    import seqlab
    from seqlab.training import loop

    calls = []
    monkeypatch.setattr(loop, "keep_freed_memory", lambda: calls.append(1) or True)
    model = seqlab.Sequential([seqlab.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(torch.randn(8, 3), torch.randn(8, 1), epochs=1, verbose=0)
    assert calls == [1]
