"""Optimizers: Keras defaults, clipping, schedules, constraints, state."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import seqlab
from seqlab import kernels, layers
from seqlab.saving import decode_state, encode_state
from seqlab.training import optimizers
from seqlab.training.optimizers import SGD, Adam, RMSprop
from seqlab.training.schedules import CosineDecay, ExponentialDecay


def _bound(optimizer: optimizers.Optimizer, module: nn.Module | None = None) -> torch.optim.Optimizer:
    optimizer.bind(module or nn.Linear(3, 2))
    return optimizer.torch_optimizer


@pytest.mark.parametrize("name, torch_class, expected", [
    ("adam", torch.optim.Adam, {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-7}),
    ("adamw", torch.optim.AdamW, {"lr": 1e-3, "eps": 1e-7, "weight_decay": 0.004}),
    ("rmsprop", torch.optim.RMSprop, {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7, "momentum": 0.0}),
    ("sgd", torch.optim.SGD, {"lr": 0.01, "momentum": 0.0, "nesterov": False}),
    ("adagrad", torch.optim.Adagrad, {"lr": 1e-3, "initial_accumulator_value": 0.1, "eps": 1e-7}),
    ("nadam", torch.optim.NAdam, {"lr": 1e-3, "eps": 1e-7, "momentum_decay": 0.004}),
])
def test_names_map_to_torch_with_keras_defaults(name, torch_class, expected):
    torch_optimizer = _bound(optimizers.get(name))
    assert type(torch_optimizer) is torch_class
    group = torch_optimizer.param_groups[0]
    assert {key: group[key] for key in expected} == expected


def test_keras_argument_names_are_translated_and_unknown_ones_refused():
    group = _bound(SGD(learning_rate=0.1, momentum=0.9, nesterov=True)).param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.1, 0.9, True)
    with pytest.raises(TypeError, match=r"no argument\(s\) \['betas'\]"):
        Adam(betas=(0.9, 0.99))
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'"):
        optimizers.get("adamm")


def _gradients(optimizer: optimizers.Optimizer) -> list[torch.Tensor]:
    first, second = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    first.grad, second.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.3, 0.4])  # norms 5 and 0.5
    optimizer.clip([first, second])
    return [first.grad, second.grad]


def test_clipnorm_clips_each_tensor_on_its_own():
    big, small = _gradients(Adam(clipnorm=1.0))
    assert torch.allclose(big, torch.tensor([0.6, 0.8])) and torch.allclose(small, torch.tensor([0.3, 0.4]))


def test_global_clipnorm_scales_all_tensors_together():
    big, small = _gradients(Adam(global_clipnorm=1.0))
    scale = 1.0 / math.sqrt(25 + 0.25)
    assert torch.allclose(big, torch.tensor([3.0, 4.0]) * scale)
    assert torch.allclose(small, torch.tensor([0.3, 0.4]) * scale)


def test_clipvalue_clamps_elements():
    big, small = _gradients(Adam(clipvalue=0.35))
    assert torch.equal(big, torch.tensor([0.35, 0.35])) and torch.equal(small, torch.tensor([0.3, 0.35]))


def test_only_one_clipping_at_a_time():
    with pytest.raises(ValueError, match="at most one of clipnorm, clipvalue and global_clipnorm"):
        Adam(clipnorm=1.0, global_clipnorm=1.0)


def test_exponential_decay_and_warmup_cosine_follow_keras_formulas():
    assert ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)(20) == pytest.approx(0.025)
    assert ExponentialDecay(0.1, 10, 0.5, staircase=True)(19) == pytest.approx(0.05)
    schedule = CosineDecay(0.0, decay_steps=100, alpha=0.1, warmup_target=1.0, warmup_steps=10)
    assert schedule(5) == pytest.approx(0.5)
    assert schedule(10) == pytest.approx(1.0)
    assert schedule(60) == pytest.approx(0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)) + 0.1)
    assert schedule(10_000) == pytest.approx(0.1)


def test_schedule_sets_the_rate_before_each_step():
    model = nn.Linear(2, 1)
    optimizer = SGD(learning_rate=ExponentialDecay(1.0, decay_steps=1, decay_rate=0.5))
    optimizer.bind(model)
    rates = []
    for _ in range(3):
        model(torch.ones(1, 2)).sum().backward()
        optimizer.step(model)
        rates.append(optimizer.learning_rate)
    assert rates == [1.0, 0.5, 0.25] and optimizer.iterations == 3
    with pytest.raises(TypeError, match="follows the schedule ExponentialDecay"):
        optimizer.learning_rate = 0.1


class _NonNegative(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(2, 2)
        self.calls = 0

    def forward(self, x):
        return self.inner(x)

    @torch.no_grad()
    def apply_constraints(self):
        self.calls += 1
        self.inner.weight.clamp_(min=0.0)


def test_constraints_are_applied_after_each_step_once_per_outermost_module():
    model = nn.Sequential(_NonNegative(), _NonNegative())
    optimizer = SGD(learning_rate=10.0)
    optimizer.bind(model)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step(model)
    assert all(bool((layer.inner.weight >= 0).all()) for layer in model)
    assert [layer.calls for layer in model] == [1, 1]


def test_state_round_trips_through_the_checkpoint_codec():
    model = nn.Linear(3, 1)
    optimizer = RMSprop(learning_rate=0.01, momentum=0.5)
    optimizer.bind(model)
    for _ in range(2):
        model(torch.ones(1, 3)).sum().backward()
        optimizer.step(model)
    skeleton, tensors = encode_state(optimizer.state_dict())
    fresh = RMSprop(learning_rate=0.01, momentum=0.5)
    fresh.bind(model)
    fresh.load_state_dict(decode_state(skeleton, tensors))
    assert fresh.iterations == 2
    for key, value in optimizer.torch_optimizer.state_dict()["state"][0].items():
        assert torch.equal(fresh.torch_optimizer.state_dict()["state"][0][key], value)


@pytest.mark.parametrize("optimizer_class, arguments", [
    (Adam, {"learning_rate": 0.01}), (Adam, {"learning_rate": 0.01, "amsgrad": True}),
    (optimizers.AdamW, {"learning_rate": 0.01, "weight_decay": 0.1})])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-6), (torch.float64, 1e-14)])
def test_adam_runs_the_fused_kernel_with_the_default_kernels_updates(optimizer_class, arguments, dtype, tolerance):
    torch.manual_seed(0)
    fast = nn.Sequential(nn.Embedding(50, 4), nn.Flatten(), nn.Linear(12, 1)).to(dtype)
    plain = nn.Sequential(nn.Embedding(50, 4), nn.Flatten(), nn.Linear(12, 1)).to(dtype)
    plain.load_state_dict(fast.state_dict())
    initial = fast[0].weight.detach().clone()
    optimizer = optimizer_class(**arguments)
    optimizer.bind(fast)
    assert optimizer.torch_optimizer.defaults["fused"] is True
    reference = optimizer.torch_class(plain.parameters(), lr=0.01, **optimizer.torch_arguments())
    for step in range(5):
        ids = torch.randint(0, 50, (8, 3), generator=torch.Generator().manual_seed(step))  # most rows see no batch
        for model in (fast, plain):
            model.zero_grad()
            model(ids).square().sum().backward()
        optimizer.step(fast)
        reference.step()
    for mine, expected in zip(fast.parameters(), plain.parameters()):
        torch.testing.assert_close(mine, expected, rtol=tolerance, atol=tolerance)
    assert not torch.equal(fast[0].weight, initial)


@pytest.mark.parametrize("cell", [layers.LSTM, layers.GRU])
def test_a_fused_update_reaches_the_native_kernels_cached_weights(cell):
    # The native path caches the weights in PyTorch's layout until a weight's version changes;
    # the fused kernel does not count its writes, so seqlab's step must, or inference would run stale weights.
    torch.manual_seed(0)
    model = seqlab.Sequential([cell(8), layers.Dense(1)])
    model.build((None, None, 3))
    kernels.force_execution(model, "native")
    inputs = torch.randn(4, 5, 3)
    optimizer = Adam(learning_rate=0.1)
    optimizer.bind(model)
    with torch.no_grad():
        before = model(inputs)  # fills the cache
    model(inputs).square().sum().backward()
    optimizer.step(model)
    with torch.no_grad():
        after = model(inputs)
        kernels.force_execution(model, "reference")
        torch.testing.assert_close(after, model(inputs), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(before, after)


def test_optimizers_without_a_fused_kernel_or_on_integer_parameters_bind_the_default_one():
    assert not _bound(RMSprop()).defaults.get("fused")
    module = nn.Linear(3, 2)
    module.register_parameter("counts", nn.Parameter(torch.zeros(2, dtype=torch.long), requires_grad=False))
    assert _bound(Adam(), module).defaults["fused"] is True  # frozen parameters are not optimized
    assert not _bound(Adam(), nn.Linear(3, 2).to(torch.float16).to("meta")).defaults.get("fused")


def test_a_torch_optimizer_is_accepted_as_it_is():
    model = nn.Linear(2, 1)
    torch_optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    wrapped = optimizers.get(torch_optimizer)
    assert wrapped.torch_optimizer is torch_optimizer and wrapped.learning_rate == 0.5
