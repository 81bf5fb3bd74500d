"""Test-session settings.

One intra-op thread: the tests run tiny models, for which torch's OpenMP
threads spend more time spin-waiting than working on a 2-core machine, and a
single thread keeps floating-point results identical from run to run.

`compiled_loop`: tests of seqlab's C++ recurrent loop skip, with the
compiler's reason, where it cannot be built; under CI (`.ci/run` sets CI=1)
they run regardless, so a broken build fails CI instead of skipping.
"""

import os

import pytest
import torch

from seqlab.kernels import fused

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread():
    """Every test starts on one thread, whatever a command under test (`--threads N`) set before."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture
def compiled_loop():
    if not os.environ.get("CI") and not fused.available():
        pytest.skip(f"seqlab's C++ recurrent loop could not be built here: {fused._failure}")
