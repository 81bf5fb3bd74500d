"""Test-session settings.

One intra-op thread: the tests run tiny models, for which torch's OpenMP
threads spend more time spin-waiting than working on a 2-core machine, and a
single thread keeps floating-point results identical from run to run.
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread():
    """Every test starts on one thread, whatever a command under test (`--threads N`) set before."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)
