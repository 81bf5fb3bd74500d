"""Every fast path is a twin of the reference loop: same outputs, states and gradients.

Random configurations (cell type, sizes, masks none/right/left/both, go_backwards,
Bidirectional, stacked, stateful, dtype) run once with `execution="reference"`
and once on the native path; results and gradients (of inputs and every
weight) agree within 1e-5 in float32 and 1e-10 in float64.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

import seqlab
from seqlab import kernels, layers
from seqlab.kernels import fused, paired  # noqa: F401  (kernels.fused, kernels.paired for monkeypatching)

NATIVE_CONFIGS = [
    ("LSTM", {}),
    ("GRU", {"reset_after": True}),
    ("SimpleRNN", {"activation": "tanh"}),
    ("SimpleRNN", {"activation": "relu"}),
]
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def random_mask(rng: np.random.Generator, batch: int, time: int, kind: str) -> torch.Tensor | None:
    if kind == "none":
        return None
    lengths = rng.integers(1, time + 1, size=batch)
    if time > 1:  # at least one sequence is padded, whatever the seed
        lengths[0] = rng.integers(1, time)
    starts = {"right": np.zeros(batch, int), "left": time - lengths,
              "both": rng.integers(0, time - lengths + 1)}[kind]
    steps = np.arange(time)[None]
    return torch.from_numpy((steps >= starts[:, None]) & (steps < (starts + lengths)[:, None]))


def run_and_grad(module, x, mask, **kwargs):
    x = x.clone().requires_grad_(True)
    result = module(x, mask=mask, **kwargs)
    tensors = result if isinstance(result, list) else [result]
    loss = sum((t * torch.linspace(-1, 1, t.numel(), dtype=t.dtype).view_as(t)).sum() for t in tensors)
    grads = torch.autograd.grad(loss, [x, *module.weights])
    return [t.detach() for t in tensors], grads


def assert_twins(reference_module, fast_module, x, mask, **kwargs):
    tolerance = TOLERANCE[x.dtype]
    expected, expected_grads = run_and_grad(reference_module, x, mask, **kwargs)
    got, got_grads = run_and_grad(fast_module, x, mask, **kwargs)
    for a, b in zip(got + list(got_grads), expected + list(expected_grads)):
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)


def _cases(count, seed):
    rng = np.random.default_rng(seed)
    for index in range(count):
        cell_type, extra = NATIVE_CONFIGS[index % len(NATIVE_CONFIGS)]
        yield pytest.param(cell_type, extra, str(rng.choice(["none", "right", "left", "both"])),
                           bool(rng.random() < 0.4), bool(rng.random() < 0.5), bool(rng.random() < 0.5),
                           [torch.float32, torch.float64][index % 2], int(rng.integers(0, 2**31)),
                           id=f"{cell_type}-{extra.get('activation', '')}-{index}")


@pytest.mark.parametrize("cell_type, extra, mask_kind, go_backwards, return_sequences, use_bias, dtype, seed",
                         list(_cases(48, seed=99)))
def test_native_layer_equals_reference(cell_type, extra, mask_kind, go_backwards, return_sequences,
                                       use_bias, dtype, seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    batch, time, features, units = (int(rng.integers(1, 14)), int(rng.integers(1, 16)),
                                    int(rng.integers(1, 6)), int(rng.integers(1, 9)))
    config = dict(units=units, return_sequences=return_sequences, return_state=seed % 3 > 0, go_backwards=go_backwards,
                  use_bias=use_bias, dtype=dtype, **extra)
    reference = getattr(layers, cell_type)(execution="reference", **config)
    fast = getattr(layers, cell_type)(execution="native", **config)
    reference.build((batch, time, features)), fast.build((batch, time, features))
    weights = [rng.normal(0, 0.5, w.shape) for w in reference.get_weights()]
    reference.set_weights(weights), fast.set_weights(weights)
    x = torch.from_numpy(rng.normal(size=(batch, time, features))).to(dtype)
    initial = [torch.from_numpy(rng.normal(size=(batch, units))).to(dtype) for _ in reference.cell.state_size]
    assert_twins(reference, fast, x, random_mask(rng, batch, time, mask_kind), initial_state=initial)


@pytest.mark.parametrize("mask_kind", ["none", "right", "left"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stacked_bidirectional_model_paths_agree(mask_kind, dtype):
    rng = np.random.default_rng(1)
    torch.manual_seed(1)

    def make():
        return seqlab.Sequential([
            layers.Bidirectional(layers.LSTM(5, return_sequences=True, dtype=dtype), merge_mode="ave"),
            layers.GRU(4, return_sequences=True, go_backwards=True, dtype=dtype),
            layers.Bidirectional(layers.SimpleRNN(3, dtype=dtype)),
        ])

    reference, fast = make(), make()
    reference.build((4, 7, 3)), fast.build((4, 7, 3))
    fast.set_weights(reference.get_weights())
    kernels.force_execution(reference, "reference")
    kernels.force_execution(fast, "native")
    x = torch.from_numpy(rng.normal(size=(4, 7, 3))).to(dtype)
    assert_twins(reference, fast, x, random_mask(rng, 4, 7, mask_kind))


@pytest.mark.parametrize("path", ["native", "fused"])
@pytest.mark.parametrize("cell_type", ["LSTM", "GRU", "SimpleRNN"])
def test_stateful_fast_paths_equal_reference(cell_type, path, request):
    if path == "fused":
        request.getfixturevalue("compiled_loop")
    torch.manual_seed(2)
    reference = getattr(layers, cell_type)(6, stateful=True, return_sequences=True, execution="reference")
    fast = getattr(layers, cell_type)(6, stateful=True, return_sequences=True, execution=path)
    reference.build((3, 5, 2)), fast.build((3, 5, 2))
    fast.set_weights(reference.get_weights())
    for _ in range(3):  # the carried state moves on with each call
        assert_twins(reference, fast, torch.randn(3, 5, 2), None)
        torch.testing.assert_close(fast.carried_states[0], reference.carried_states[0], rtol=1e-5, atol=1e-5)


def test_auto_falls_back_to_the_reference_where_native_differs():
    x = torch.randn(2, 4, 3)
    irregular = torch.tensor([[True, False, True, True], [True, True, True, True]])
    for layer in (layers.LSTM(3, peephole=True), layers.GRU(3, reset_after=False),
                  layers.SimpleRNN(3, activation="sigmoid"), layers.LSTM(3, recurrent_activation="hard_sigmoid")):
        layer.build(x.shape)
        assert not kernels.supports(layer.cell, training=False)
        layer.execution = "native"
        with pytest.raises(ValueError, match="cannot run on PyTorch's native kernel"):
            layer(x)
    lstm = layers.LSTM(3, execution="native")
    with pytest.raises(ValueError, match="cannot run on PyTorch's native kernel"):
        lstm(x, mask=irregular)  # a gap inside a sequence: only the reference loop handles it
    lstm.execution = "auto"
    reference = layers.LSTM(3, execution="reference")
    reference.build(x.shape)
    reference.set_weights(lstm.get_weights())
    torch.testing.assert_close(lstm(x, mask=irregular), reference(x, mask=irregular))
    dropping = layers.GRU(3, recurrent_dropout=0.3)
    dropping.build(x.shape)
    assert not kernels.supports(dropping.cell, training=True) and kernels.supports(dropping.cell, training=False)


def test_weight_conversion_is_cached_outside_autograd():
    gru = layers.GRU(4)  # its gates change order: the native weights are copies
    x = torch.randn(2, 3, 5)
    gru.build(x.shape)
    with torch.no_grad():
        first = kernels.layout.native_weights(gru.cell)
        assert all(a is b for a, b in zip(first, kernels.layout.native_weights(gru.cell)))
        gru.cell.kernel.add_(1.0)  # a weight changed: the cache must notice
        changed = kernels.layout.native_weights(gru.cell)
    assert not torch.equal(changed[0], first[0])
    order = kernels.layout.gru_gate_order(4)
    torch.testing.assert_close(changed[0], gru.cell.kernel.detach().t()[order])


def test_lstm_kernels_are_stored_in_the_native_layout():
    """Keras' shapes, PyTorch's memory order: the native kernel reads the parameters themselves, and
    their gradients arrive in the same order (no copy either way)."""
    lstm = layers.LSTM(4, execution="native")
    x = torch.randn(2, 3, 5)
    lstm.build(x.shape)
    cell = lstm.cell
    assert cell.kernel.shape == (5, 16) and cell.kernel.stride() == (1, 5)
    assert cell.recurrent_kernel.shape == (4, 16) and cell.recurrent_kernel.stride() == (1, 4)
    weight_ih, weight_hh, *_ = kernels.layout.native_weights(cell)
    assert weight_ih.data_ptr() == cell.kernel.data_ptr() and weight_ih.is_contiguous()
    assert weight_hh.data_ptr() == cell.recurrent_kernel.data_ptr() and weight_hh.is_contiguous()
    lstm(x).sum().backward()
    assert cell.kernel.grad.stride() == cell.kernel.stride()
    reference = layers.LSTM(4, execution="reference")
    reference.build(x.shape)
    reference.set_weights(lstm.get_weights())
    torch.testing.assert_close(lstm(x), reference(x))
    assert [w.shape for w in lstm.get_weights()] == [(5, 16), (4, 16), (16,)]


@pytest.mark.parametrize("cell_type", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("mask_kind", ["none", "right", "left", "both"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_native_bidirectional_equals_reference(cell_type, mask_kind, return_sequences, monkeypatch):
    rng = np.random.default_rng(zlib.crc32(f"{cell_type}-{mask_kind}-{return_sequences}".encode()))
    monkeypatch.setattr(kernels.fused, "preferred", lambda *a: False)  # the native kernels, not the C++ loop
    monkeypatch.setattr(kernels.paired, "SMALL_LSTM_MAX_UNITS", 0)
    calls = []  # for each native kernel call: was it bidirectional?
    original = kernels.native._call
    monkeypatch.setattr(kernels.native, "_call", lambda *a: calls.append(a[-1]) or original(*a))

    def make(execution):
        return layers.Bidirectional(getattr(layers, cell_type)(
            4, return_sequences=return_sequences, return_state=True, execution=execution, dtype=torch.float64))

    reference, fast = make("reference"), make("auto")
    reference.build((3, 6, 2)), fast.build((3, 6, 2))
    fast.set_weights([rng.normal(0, 0.5, w.shape) for w in reference.get_weights()])
    reference.set_weights(fast.get_weights())
    x = torch.from_numpy(rng.normal(size=(3, 6, 2)))
    assert_twins(reference, fast, x, random_mask(rng, 3, 6, mask_kind))
    padded = mask_kind != "none"
    # Unpadded: both directions in one kernel call; padded: each direction natively, segmented.
    assert calls and all(bidirectional == (not padded) for bidirectional in calls)


@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("cell_type", ["LSTM", "GRU"])
def test_segmented_masked_batch_with_many_lengths(cell_type, return_state):
    rng = np.random.default_rng(3)
    lengths = rng.permutation(np.arange(1, 21))  # 20 distinct lengths: more than MAX_SEGMENTS
    mask = torch.from_numpy(np.arange(20)[None] < lengths[:, None])
    assert len(set(lengths.tolist())) > kernels.native.MAX_SEGMENTS
    reference = getattr(layers, cell_type)(5, return_state=return_state, execution="reference", dtype=torch.float64)
    fast = getattr(layers, cell_type)(5, return_state=return_state, execution="native", dtype=torch.float64)
    reference.build((20, 20, 3)), fast.build((20, 20, 3))
    fast.set_weights(reference.get_weights())
    assert_twins(reference, fast, torch.from_numpy(rng.normal(size=(20, 20, 3))), mask)


@pytest.mark.parametrize("cell_type", ["LSTM", "GRU", "SimpleRNN"])
def test_segmented_bidirectional_layer_reads_each_rows_last_output(cell_type, monkeypatch):
    """Bidirectional(return_sequences=False) on a right-padded batch with many lengths (the IMDb
    shape): each direction runs segmented and reads each row's last h in the segment it ends in."""
    rng = np.random.default_rng(5)
    lengths = rng.permutation(np.arange(2, 42, 2))
    mask = torch.from_numpy(np.arange(40)[None] < lengths[:, None])

    def make(execution):
        return layers.Bidirectional(getattr(layers, cell_type)(5, execution=execution, dtype=torch.float64))

    reference, fast = make("reference"), make("native")
    reference.build((20, 40, 3)), fast.build((20, 40, 3))
    fast.set_weights(reference.get_weights())
    segments = []
    original = kernels.native._call
    monkeypatch.setattr(kernels.native, "_call", lambda *a: segments.append(a[1].shape) or original(*a))
    assert_twins(reference, fast, torch.from_numpy(rng.normal(size=(20, 40, 3))), mask)
    forward_segments = segments[:len(segments) // 2]
    assert len(forward_segments) == kernels.native.MAX_SEGMENTS
    assert sum(shape[1] for shape in forward_segments) == 40  # time is cut, not repeated
    assert [shape[0] for shape in forward_segments] == sorted((shape[0] for shape in forward_segments), reverse=True)


def test_inference_runs_every_supported_cell_natively(monkeypatch):
    """Quiet-machine measurements (docs/performance.md, run 2): nn.GRU's kernel is as fast as the hoisted
    loop at 512 units on one thread and 1.25x faster on two, so large GRUs run natively too."""
    calls = []
    original = kernels.native._call
    monkeypatch.setattr(kernels.native, "_call", lambda *a: calls.append(a[0]) or original(*a))
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        layers.GRU(256)(x)
        layers.GRU(32)(x)
        layers.LSTM(256)(x)
        layers.GRU(8, reset_after=False)(x)  # no native kernel computes it: the C++ loop
    assert [type(cell).__name__ for cell in calls] == ["GRUCell", "GRUCell", "LSTMCell"]


PAIRED_CONFIGS = [("LSTM", {}), ("LSTM", {"peephole": True}), ("GRU", {}), ("GRU", {"reset_after": False}),
                  ("SimpleRNN", {"activation": "relu"})]


@pytest.mark.parametrize("cell_type, extra", PAIRED_CONFIGS)
@pytest.mark.parametrize("mask_kind", ["none", "left", "both"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_paired_bidirectional_loop_equals_two_separate_loops(cell_type, extra, mask_kind, return_sequences,
                                                             monkeypatch):
    """Recurrent dropout in training: both directions share one loop; same outputs, states, gradients, masks."""
    rng = np.random.default_rng(zlib.crc32(f"{cell_type}-{extra}-{mask_kind}-{return_sequences}".encode()))
    layer = layers.Bidirectional(getattr(layers, cell_type)(
        4, return_sequences=return_sequences, return_state=True, dropout=0.25, recurrent_dropout=0.3,
        dtype=torch.float64, **extra))
    layer.build((3, 6, 2))
    layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.get_weights()])
    x, mask = torch.from_numpy(rng.normal(size=(3, 6, 2))), random_mask(rng, 3, 6, mask_kind)
    calls = []
    original = kernels.paired.run_paired
    monkeypatch.setattr(kernels.paired, "run_paired", lambda *a: calls.append(1) or original(*a))
    torch.manual_seed(7)
    together, together_grads = run_and_grad(layer, x, mask, training=True)
    monkeypatch.setattr(kernels.paired, "can_pair", lambda *a: False)
    torch.manual_seed(7)  # the same dropout masks: drawn in the same order, forward then backward
    apart, apart_grads = run_and_grad(layer, x, mask, training=True)
    assert calls == [1]
    for a, b in zip(together + list(together_grads), apart + list(apart_grads)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_paired_loop_is_not_used_where_a_native_kernel_runs(monkeypatch):
    calls = []
    original = kernels.paired.run_paired
    monkeypatch.setattr(kernels.paired, "run_paired", lambda *a: calls.append(1) or original(*a))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)  # more threads than directions
    x = torch.randn(2, 5, 3)
    with torch.no_grad():  # inference: native
        layers.Bidirectional(layers.LSTM(4, recurrent_dropout=0.5))(x, training=False)
        layers.Bidirectional(layers.LSTM(4))(x, mask=torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool())
    layers.Bidirectional(layers.LSTM(4))(x)  # training an LSTM on 4 threads, unpadded: oneDNN's kernel
    layers.Bidirectional(layers.LSTM(kernels.paired.SMALL_LSTM_MAX_UNITS + 1))(x)  # a big LSTM: oneDNN's
    assert calls == []
    layers.Bidirectional(layers.LSTM(4, recurrent_dropout=0.5))(x, training=True)
    layers.Bidirectional(layers.LSTM(4, execution="reference"))(x)  # forced: each direction's own loop
    assert calls == [1]

