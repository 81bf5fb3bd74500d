"""The cell's cache of its weights in PyTorch's layout never serves stale weights.

Silent bug 4 of issue 21: the cache was keyed on the parameters' `_version`, which PyTorch's fused
optimizer kernels (`torch.optim.Adam(fused=True)`) do not bump, so a model trained by a user's own
fused optimizer ran inference (under `no_grad`, native path) on the weights it had before training.
"""

from __future__ import annotations

import pytest
import torch

import seqlab
from seqlab import layers


def _gru_model():
    model = seqlab.Sequential([layers.GRU(8, reset_after=True, return_sequences=True), layers.Dense(2)])
    model.build((None, None, 3))
    return model


@pytest.mark.parametrize("fused", [True, False])
def test_a_users_own_fused_adam_reaches_the_native_layout(fused):
    torch.manual_seed(0)
    model = _gru_model()
    inputs, targets = torch.randn(4, 5, 3), torch.randn(4, 5, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05, fused=fused)
    with torch.no_grad():
        before = model(inputs)  # fills the cache (inference runs the native GRU kernel)
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()
    fresh = _gru_model()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        after, expected = model(inputs), fresh(inputs)
    assert not torch.allclose(before, expected)
    torch.testing.assert_close(after, expected, rtol=0, atol=0)


def test_a_fused_step_counts_a_change_on_the_parameters_it_wrote():
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([weight], lr=0.1, fused=True)
    weight.grad = torch.ones(3)
    version = weight._version
    optimizer.step()
    assert weight._version > version


def test_an_optimizer_of_ones_own_writing_through_data_still_refreshes_the_layout():
    """The post-hook covers every `torch.optim.Optimizer`, including a subclass whose step writes
    through `.data` (which PyTorch does not count)."""

    class Halve(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {})

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.data.mul_(0.5)

    torch.manual_seed(1)
    model = _gru_model()
    inputs = torch.randn(2, 4, 3)
    with torch.no_grad():
        model(inputs)
    model(inputs).sum().backward()
    Halve(model.parameters()).step()
    fresh = _gru_model()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(inputs), fresh(inputs), rtol=0, atol=0)
