"""Initializers follow Keras' formulas; every Keras name resolves."""

from __future__ import annotations

import math

import pytest
import torch

from seqlab import initializers

SHAPE = (200, 300)


@pytest.mark.parametrize("name, expected_std", [
    ("glorot_uniform", math.sqrt(2 / (200 + 300))),
    ("glorot_normal", math.sqrt(2 / (200 + 300))),
    ("he_uniform", math.sqrt(2 / 200)),
    ("he_normal", math.sqrt(2 / 200)),
    ("lecun_uniform", math.sqrt(1 / 200)),
    ("lecun_normal", math.sqrt(1 / 200)),
    ("random_normal", 0.05),
    ("random_uniform", 0.1 / math.sqrt(12)),
])
def test_variance_scaling_standard_deviations(name, expected_std):
    torch.manual_seed(0)
    values = initializers.get(name)(SHAPE)
    assert values.shape == SHAPE
    assert values.std().item() == pytest.approx(expected_std, rel=0.03)
    assert abs(values.mean().item()) < 0.1 * expected_std


def test_uniform_limits_and_truncation():
    torch.manual_seed(1)
    limit = math.sqrt(6 / (200 + 300))
    values = initializers.get("glorot_uniform")(SHAPE)
    assert values.abs().max() <= limit and values.abs().max() > 0.99 * limit
    truncated = initializers.get("truncated_normal")(SHAPE)
    assert truncated.abs().max() <= 0.1 + 1e-7


def test_orthogonal_identity_constants_and_seeds():
    torch.manual_seed(2)
    wide = initializers.get("orthogonal")((3, 12))  # Keras' recurrent kernel (u, 4u)
    torch.testing.assert_close(wide @ wide.T, torch.eye(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(initializers.get("identity")((3, 3)), torch.eye(3))
    assert torch.all(initializers.Constant(0.7)((2, 2)) == 0.7)
    assert torch.all(initializers.get("ones")((2,)) == 1) and torch.all(initializers.get("zeros")((2,)) == 0)
    seeded = initializers.GlorotUniform(seed=3)
    assert torch.equal(seeded((4, 4)), initializers.GlorotUniform(seed=3)((4, 4)))


def test_config_round_trip():
    original = initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=4)
    rebuilt = initializers.get(initializers.serialize(original))
    assert torch.equal(rebuilt((5, 6)), original((5, 6)))
