"""The compiled C++ loop (`seqlab.kernels.fused`) is a twin of the reference loop.

Random configurations of every cell it serves (LSTM, GRU with reset_after
either way, SimpleRNN tanh/relu), with masks none/right/left/both/holes,
go_backwards, recurrent dropout in training, initial states, stateful layers,
one direction or a Bidirectional pair, float32 and float64: outputs, states
and the gradients of the inputs and every weight agree with
`execution="reference"` within 1e-5 (float32) and 1e-10 (float64).
"""

from __future__ import annotations

import platform
import zlib

import numpy as np
import pytest
import torch

from seqlab import kernels, layers
from seqlab.kernels import fused
from test_execution_paths import TOLERANCE, assert_twins, random_mask, run_and_grad

pytestmark = pytest.mark.usefixtures("compiled_loop")

FUSED_CONFIGS = [
    ("LSTM", {}),
    ("LSTM", {"peephole": True}),
    ("GRU", {"reset_after": True}),
    ("GRU", {"reset_after": False}),
    ("SimpleRNN", {"activation": "tanh"}),
    ("SimpleRNN", {"activation": "relu"}),
]


def holes_mask(rng: np.random.Generator, batch: int, time: int) -> torch.Tensor:
    """An arbitrary mask (gaps inside sequences), with at least one real step per row."""
    mask = rng.random((batch, time)) < 0.6
    mask[np.arange(batch), rng.integers(0, time, size=batch)] = True
    return torch.from_numpy(mask)


def _cases(count, seed):
    rng = np.random.default_rng(seed)
    for index in range(count):
        cell_type, extra = FUSED_CONFIGS[index % len(FUSED_CONFIGS)]
        yield pytest.param(cell_type, extra, str(rng.choice(["none", "right", "left", "both", "holes"])),
                           bool(rng.random() < 0.4), bool(rng.random() < 0.5), bool(rng.random() < 0.5),
                           float(rng.choice([0.0, 0.3])), [torch.float32, torch.float64][index % 2],
                           int(rng.integers(0, 2**31)), id=f"{cell_type}-{sorted(extra.values())}-{index}")


def _mask(rng, batch, time, kind):
    return holes_mask(rng, batch, time) if kind == "holes" else random_mask(rng, batch, time, kind)


@pytest.mark.parametrize("cell_type, extra, mask_kind, go_backwards, return_sequences, use_bias, "
                         "recurrent_dropout, dtype, seed", list(_cases(60, seed=2026)))
def test_fused_layer_equals_reference(cell_type, extra, mask_kind, go_backwards, return_sequences, use_bias,
                                      recurrent_dropout, dtype, seed):
    rng = np.random.default_rng(seed)
    batch, time, features, units = (int(rng.integers(1, 10)), int(rng.integers(1, 14)),
                                    int(rng.integers(1, 6)), int(rng.integers(1, 9)))
    config = dict(units=units, return_sequences=return_sequences, return_state=seed % 3 > 0,
                  go_backwards=go_backwards, use_bias=use_bias, recurrent_dropout=recurrent_dropout,
                  zero_output_for_mask=seed % 2 == 0, dtype=dtype, **extra)
    reference = getattr(layers, cell_type)(execution="reference", seed=seed, **config)
    fast = getattr(layers, cell_type)(execution="fused", seed=seed, **config)  # same seed: same dropout masks
    reference.build((batch, time, features)), fast.build((batch, time, features))
    weights = [rng.normal(0, 0.5, w.shape) for w in reference.get_weights()]
    reference.set_weights(weights), fast.set_weights(weights)
    x = torch.from_numpy(rng.normal(size=(batch, time, features))).to(dtype)
    initial = [torch.from_numpy(rng.normal(size=(batch, units))).to(dtype) for _ in reference.cell.state_size]
    assert_twins(reference, fast, x, _mask(rng, batch, time, mask_kind), initial_state=initial,
                 training=recurrent_dropout > 0)


def test_large_products_go_to_onednn_and_small_ones_to_blas():
    """A step's product of 64 × 512 by 512 × 2048 runs on oneDNN's packed kernel (about twice BLAS'
    speed here); one of 32 × 64 by 64 × 256 stays on BLAS, whose fixed cost is lower."""
    assert fused.extension().uses_packed_product(64, 512, 2048)
    assert fused.extension().uses_packed_product(16, 256, 1024)
    assert not fused.extension().uses_packed_product(32, 64, 256)


@pytest.mark.parametrize("cell_type, extra", FUSED_CONFIGS)
@pytest.mark.parametrize("mask_kind", ["none", "right", "holes"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_fused_layer_with_onednn_products_equals_reference(cell_type, extra, mask_kind, bidirectional):
    """Layers big enough for oneDNN's packed products (forward and backward) match the float64 reference
    within 1e-5 of each tensor's largest entry: at these sizes float32's own rounding (the reference loop's
    in float32 too) reaches 5e-5 in absolute terms on entries of order 10."""
    rng = np.random.default_rng(zlib.crc32(f"{cell_type}-{extra}-{mask_kind}-{bidirectional}".encode()))
    batch, time, features, units = 32, 5, 3, 384 if cell_type == "SimpleRNN" else 256
    product_width = units * {"LSTM": 4, "GRU": 2, "SimpleRNN": 1}[cell_type]  # the reset_before GRU's first product
    assert fused.extension().uses_packed_product(batch, units, product_width)

    def make(execution, dtype):
        layer = getattr(layers, cell_type)(units, return_sequences=True, execution=execution, dtype=dtype, **extra)
        return layers.Bidirectional(layer) if bidirectional else layer

    reference, fast = make("reference", torch.float64), make("fused", torch.float32)
    reference.build((batch, time, features)), fast.build((batch, time, features))
    weights = [rng.normal(0, 0.1, w.shape) for w in reference.get_weights()]
    reference.set_weights(weights), fast.set_weights(weights)
    x, mask = rng.normal(size=(batch, time, features)), _mask(rng, batch, time, mask_kind)
    expected, expected_grads = run_and_grad(reference, torch.from_numpy(x), mask)
    got, got_grads = run_and_grad(fast, torch.from_numpy(x).float(), mask)
    for a, b in zip(got + list(got_grads), expected + list(expected_grads)):
        assert a.shape == b.shape
        assert (a.double() - b).abs().max() <= TOLERANCE[torch.float32] * b.abs().max()


@pytest.mark.parametrize("cell_type, extra", FUSED_CONFIGS)
@pytest.mark.parametrize("mask_kind", ["none", "right", "left", "both", "holes"])
@pytest.mark.parametrize("execution", ["auto", "fused"])
def test_fused_bidirectional_pair_equals_reference(cell_type, extra, mask_kind, execution, monkeypatch):
    """Both directions in one C++ loop (D = 2, each direction on its own thread where there are two),
    with recurrent dropout in training; `execution="fused"` pairs them too."""
    rng = np.random.default_rng(zlib.crc32(f"{cell_type}-{extra}-{mask_kind}".encode()))
    directions = []
    run_fused = fused.run_fused
    monkeypatch.setattr(fused, "run_fused", lambda cells, *a, **k: directions.append(len(cells))
                        or run_fused(cells, *a, **k))

    def make(execution):
        layer = layers.Bidirectional(getattr(layers, cell_type)(
            4, return_sequences=True, return_state=True, recurrent_dropout=0.3, execution=execution,
            dtype=torch.float64, **extra))
        layer.build((3, 7, 2))
        return layer

    reference, fast = make("reference"), make(execution)
    weights = [rng.normal(0, 0.5, w.shape) for w in reference.get_weights()]
    reference.set_weights(weights), fast.set_weights(weights)
    x, mask = torch.from_numpy(rng.normal(size=(3, 7, 2))), _mask(rng, 3, 7, mask_kind)
    torch.manual_seed(3)
    expected, expected_grads = run_and_grad(reference, x, mask, training=True)
    torch.manual_seed(3)  # the same recurrent dropout masks, drawn forward then backward
    torch.set_num_threads(2)  # each direction on its own thread (the autouse fixture restores one)
    got, got_grads = run_and_grad(fast, x, mask, training=True)
    assert directions == [2]
    for a, b in zip(got + list(got_grads), expected + list(expected_grads)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cell_type, extra", FUSED_CONFIGS)
def test_rows_shared_between_threads_match_the_reference(cell_type, extra):
    """A layer wide enough that each step's elementwise pass is split across two threads (rows per task:
    16k gate values), with a padded batch sorted by length and recurrent dropout."""
    rng = np.random.default_rng(zlib.crc32(f"threads-{cell_type}-{extra}".encode()))
    batch, time, units = 180, 4, 96  # SimpleRNN: 170 rows per task; LSTM 42, GRU 56

    def make(execution):
        layer = getattr(layers, cell_type)(units, return_sequences=True, recurrent_dropout=0.2, seed=5,
                                           execution=execution, dtype=torch.float64, **extra)
        layer.build((batch, time, 3))
        return layer

    reference, fast = make("reference"), make("fused")
    weights = [rng.normal(0, 0.3, w.shape) for w in reference.get_weights()]
    reference.set_weights(weights), fast.set_weights(weights)
    x, mask = torch.from_numpy(rng.normal(size=(batch, time, 3))), _mask(rng, batch, time, "right")
    expected, expected_grads = run_and_grad(reference, x, mask, training=True)
    torch.set_num_threads(2)  # the autouse fixture restores one
    got, got_grads = run_and_grad(fast, x, mask, training=True)
    for a, b in zip(got + list(got_grads), expected + list(expected_grads)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def _paths_taken(monkeypatch) -> list[str]:
    """Record which path each recurrent call takes: 'fused:<Cell>' or 'native:<Cell>'."""
    calls = []
    run_fused, native_call = fused.run_fused, kernels.native._call
    monkeypatch.setattr(fused, "run_fused", lambda cells, *a, **k: calls.append(f"fused:{type(cells[0]).__name__}")
                        or run_fused(cells, *a, **k))
    monkeypatch.setattr(kernels.native, "_call",
                        lambda cell, *a: calls.append(f"native:{type(cell).__name__}") or native_call(cell, *a))
    return calls


def test_auto_trains_on_the_fused_loop_and_infers_natively(monkeypatch):
    """docs/performance.md: in a training step the C++ loop beats PyTorch's GRU and SimpleRNN kernels, oneDNN's
    LSTM kernel beats it; in inference the native forward is as fast; where no native kernel computes the
    cell, the C++ loop runs."""
    calls = _paths_taken(monkeypatch)
    x = torch.randn(2, 5, 3)
    for layer in (layers.GRU(4), layers.SimpleRNN(4), layers.LSTM(4)):
        layer(x)                                              # gradients needed: a training step
        with torch.no_grad():
            layer(x)                                          # inference
    assert calls == ["fused:GRUCell", "native:GRUCell", "fused:SimpleRNNCell", "native:SimpleRNNCell",
                     "native:LSTMCell", "native:LSTMCell"]
    calls.clear()
    with torch.no_grad():
        layers.GRU(4, reset_after=False)(x)                    # no native kernel computes it
        layers.LSTM(4, recurrent_dropout=0.2)(x, training=True)
        layers.LSTM(4)(x, mask=torch.tensor([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1]]).bool())  # a hole in the mask
        layers.LSTM(4, peephole=True)(x)                      # peepholes: no native kernel has them
        layers.LSTM(4, activation="relu")(x)                  # custom activation: the reference loop
    assert calls == ["fused:GRUCell", "fused:LSTMCell", "fused:LSTMCell", "fused:LSTMCell"]


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_small_bidirectional_lstms_train_on_the_paired_loop(threads, monkeypatch):
    """A Bidirectional LSTM of ≤ 128 units (the IMDb model's is 64) in training: one C++ loop for both
    directions on a padded batch, and on an unpadded one where it has at most a thread per direction
    (docs/performance.md, run 10: 0.74x-0.99x oneDNN's kernel at 64 and 128 units, 1.08x-1.15x at 256).
    Larger LSTMs, unpadded batches with threads to spare, and inference stay on oneDNN's kernel."""
    calls = _paths_taken(monkeypatch)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    x = torch.randn(3, 6, 2)
    right_padded = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]]).bool()
    layers.Bidirectional(layers.LSTM(64))(x, mask=right_padded)
    layers.Bidirectional(layers.LSTM(128))(x, mask=right_padded)
    assert calls == ["fused:LSTMCell"] * 2
    calls.clear()
    layers.Bidirectional(layers.LSTM(64))(x)
    assert calls == (["fused:LSTMCell"] if threads <= 2 else ["native:LSTMCell"])
    calls.clear()
    layers.Bidirectional(layers.LSTM(129))(x, mask=right_padded)
    layers.Bidirectional(layers.LSTM(129))(x)
    with torch.no_grad():
        layers.Bidirectional(layers.LSTM(64))(x, mask=right_padded)
    assert calls and set(calls) == {"native:LSTMCell"}


def test_padded_training_batches_compute_only_the_rows_still_running(monkeypatch):
    """A block-padded batch runs sorted by length: the C++ loop gets the lengths and only the real steps'
    projected inputs, packed time-major (PackedSequence's order); each step covers the rows still running."""
    calls = _paths_taken(monkeypatch)
    seen = []  # (projected inputs, lengths) given to the C++ loop
    returned = []  # whether it returned every step's outputs
    original = fused._FusedLoop.apply

    def apply(*arguments):
        seen.append((arguments[4], arguments[-1]))
        results = original(*arguments)
        returned.append(results[0] is not None)
        return results

    monkeypatch.setattr(fused._FusedLoop, "apply", apply)
    x = torch.randn(3, 6, 2)
    left_and_right = torch.tensor([[0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 0]]).bool()
    layer = layers.Bidirectional(layers.GRU(4))
    layer(x, mask=left_and_right)
    assert calls == ["fused:GRUCell"]                    # one C++ loop for both directions
    projected, lengths = seen[0]
    assert lengths.tolist() == [6, 4, 2]                 # sorted longest first
    assert projected.shape == (2, 12, 12)                # 2 directions, 6 + 4 + 2 real steps, 3 gates × 4 units
    # Step 0 holds the three rows in sorted order (row 1 first, then row 0's and row 2's first real steps).
    first_steps = torch.stack([x[1, 0], x[0, 1], x[2, 3]])
    forward_cell = layer.forward_layer.cell
    expected = first_steps @ forward_cell.kernel + forward_cell.bias[0]
    torch.testing.assert_close(projected[0, :3], expected)
    assert returned == [False]                           # many-to-one: the last outputs are the final h
    seen.clear()
    layers.GRU(4)(x[:, :5], mask=left_and_right[:, :5])  # lengths 4, 5, 2: cut to 5 steps
    assert seen[0][1].tolist() == [5, 4, 2] and seen[0][0].shape[:2] == (1, 11)
    seen.clear()
    layers.GRU(4)(x, mask=torch.tensor([[1, 0, 1, 1, 1, 1]] * 3).bool())  # a hole: every row, every step
    assert seen[0][0].shape[:3] == (1, 6, 3) and seen[0][1] is None
    assert returned[-1]                                  # the last output of a mask with holes is read from them


def test_without_the_extension_auto_falls_back_and_forcing_it_says_why(monkeypatch):
    monkeypatch.setattr(fused, "_extension", None)
    monkeypatch.setattr(fused, "_failure", "g++ not found")
    x = torch.randn(2, 5, 3)
    reference = layers.GRU(4, reset_after=False, execution="reference")
    auto = layers.GRU(4, reset_after=False)
    reference.build(x.shape), auto.build(x.shape)
    auto.set_weights(reference.get_weights())
    torch.testing.assert_close(auto(x), reference(x))
    with pytest.raises(ValueError, match="C\\+\\+ loop"):
        layers.LSTM(4, peephole=True, execution="fused")(x)


def test_build_retries_without_openmp_when_the_toolchain_lacks_it(monkeypatch):
    """Under PyTorch's OpenMP backend the loop is built with -fopenmp (at::parallel_for is an
    `omp parallel` region compiled into the extension); a toolchain without OpenMP gets a serial build."""
    monkeypatch.setattr(fused, "_threading_flags", lambda: ["-fopenmp"])
    builds = []

    def load(name, sources, extra_cflags, extra_ldflags=None, verbose=False):
        builds.append((extra_cflags, extra_ldflags))
        if "-fopenmp" in extra_cflags:
            raise RuntimeError("error: unsupported option '-fopenmp'")
        return "serial module"

    assert fused._build(load) == "serial module"
    assert builds == [(fused.COMPILER_FLAGS + ["-fopenmp"], ["-fopenmp"]), (fused.COMPILER_FLAGS, None)]
    monkeypatch.setattr(fused, "_threading_flags", lambda: [])
    with pytest.raises(RuntimeError, match="no compiler"):
        fused._build(lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no compiler")))


def test_the_loop_is_built_with_pytorchs_openmp_here():
    """This PyTorch (Linux wheel) runs at::parallel_for on OpenMP: the extension must share it."""
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        pytest.skip("PyTorch here does not use OpenMP threads")
    assert fused._threading_flags() == ["-fopenmp"]


def test_the_built_loop_links_openmp(compiled_loop):
    """The regression this guards: built without -fopenmp, every at::parallel_for in the extension ran
    on one thread. A build with it links libgomp (resolved, in the process, to PyTorch's own)."""
    import shutil
    import subprocess

    if not fused._threading_flags() or shutil.which("ldd") is None:
        pytest.skip("PyTorch here does not run OpenMP threads, or there is no ldd")
    linked = subprocess.run(["ldd", fused.extension().__file__], capture_output=True, text=True, check=True).stdout
    assert "libgomp" in linked


def test_fused_float32_matches_float64_reference_on_a_long_sequence():
    """200 steps (config B's length): float32 round-off stays within the twin tolerance."""
    torch.manual_seed(1)
    fast = layers.LSTM(16, return_sequences=True, execution="fused")
    reference = layers.LSTM(16, return_sequences=True, execution="reference", dtype=torch.float64)
    fast.build((4, 200, 8)), reference.build((4, 200, 8))
    reference.set_weights(fast.get_weights())
    x = torch.randn(4, 200, 8)
    got = fast(x)
    expected = reference(x.double())
    torch.testing.assert_close(got, expected.float(), rtol=TOLERANCE[torch.float32], atol=TOLERANCE[torch.float32])


@pytest.mark.parametrize("cell_type, extra", FUSED_CONFIGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_single_step_for_generation_equals_the_cells_step(cell_type, extra, dtype):
    torch.manual_seed(4)
    layer = getattr(layers, cell_type)(6, dtype=dtype, **extra)
    layer.build((3, 1, 5))
    cell = layer.cell
    projected = cell.project_inputs(torch.randn(3, 5, dtype=dtype))
    states = [torch.randn(3, 6, dtype=dtype) for _ in cell.state_size]
    with torch.no_grad():
        expected_h, expected_states = cell.step(projected, states)
        got_h, got_states = fused.CellStep(cell, projected)(projected, states)
    for got, expected in zip([got_h, *got_states], [expected_h, *expected_states]):
        torch.testing.assert_close(got, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.parametrize("cell_type, extra", FUSED_CONFIGS)
def test_single_step_with_onednn_products_equals_the_cells_step(cell_type, extra):
    """64 streams of a 256-unit cell: every product of the step (both of the reset_before GRU's) on oneDNN."""
    assert fused.extension().uses_packed_product(64, 256, 256)
    torch.manual_seed(6)
    layer = getattr(layers, cell_type)(256, dtype=torch.float64, **extra)
    layer.build((64, 1, 5))
    cell = layer.cell
    projected = cell.project_inputs(torch.randn(64, 5, dtype=torch.float64))
    states = [torch.randn(64, 256, dtype=torch.float64) for _ in cell.state_size]
    with torch.no_grad():
        expected_h, expected_states = cell.step(projected, states)
        layer.float()
        got_h, got_states = fused.CellStep(cell, projected.float(), batch_size=64)(
            projected.float(), [s.float() for s in states])
    for got, expected in zip([got_h, *got_states], [expected_h, *expected_states]):
        assert got.dtype == torch.float32
        assert (got.double() - expected).abs().max() <= 1e-5 * expected.abs().max()


@pytest.mark.parametrize("cell_type, extra", FUSED_CONFIGS)
def test_single_step_with_a_bfloat16_kernel_equals_the_cells_step_with_it(cell_type, extra):
    """Generation's bfloat16 products (the reset_before GRU's second one too) as the cells' own step computes them."""
    torch.manual_seed(5)
    layer = getattr(layers, cell_type)(24, **extra)
    layer.build((7, 1, 5))
    cell = layer.cell
    projected = cell.project_inputs(torch.randn(7, 5))
    states = [torch.randn(7, 24) for _ in cell.state_size]
    kernel = cell.recurrent_kernel.detach().bfloat16()
    with torch.no_grad():
        expected_h, expected_states = cell.step(projected, states, recurrent_kernel=kernel)
        float32_h, _ = cell.step(projected, states)
        got_h, got_states = fused.CellStep(cell, projected, kernel)(projected, states)
    for got, expected in zip([got_h, *got_states], [expected_h, *expected_states]):
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert (got_h - float32_h).abs().max() > 1e-5  # the products were rounded


def test_directions_reading_the_same_padded_inputs_share_one_projection(monkeypatch):
    """Without input dropout both directions' inputs are packed once and projected in one `_Projection`
    (one product per direction into one (D, rows, W) tensor), padded batches included."""
    projections = []
    original = fused._Projection.apply
    monkeypatch.setattr(fused._Projection, "apply",
                        lambda x, kernels: projections.append((x.shape, kernels.shape)) or original(x, kernels))
    x = torch.randn(3, 6, 2)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0]]).bool()
    layers.Bidirectional(layers.GRU(4))(x, mask=mask)
    # 4 + 6 + 3 real steps of 2 features; the kernels stacked: (2 directions, features, 3 gates × 4 units)
    assert projections == [(torch.Size([13, 2]), torch.Size([2, 2, 12]))]


def test_the_projection_and_its_gradients_equal_plain_products():
    """`_Projection` (oneDNN's matmul for big float32 products) against `x @ W_d` in float64."""
    torch.manual_seed(0)
    # the weakly linked `at::native::mkldnn_matmul` resolves wherever PyTorch has oneDNN (used on x86-64),
    # and PyTorch runs it only on CPUs with oneDNN's bfloat16 kernels (float32 included)
    if platform.machine() in ("x86_64", "AMD64"):
        assert fused.extension().products_use_onednn() == (
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    for rows, k, n in [(5, 3, 8), (300, 64, 256)]:  # BLAS, then oneDNN where the extension finds it
        x = torch.randn(rows, k, requires_grad=True)
        kernels = torch.randn(2, n, k).transpose(1, 2).requires_grad_()  # transposed views, as LSTM kernels
        grad = torch.randn(2, rows, n)
        got = fused._Projection.apply(x, kernels)
        got_grads = torch.autograd.grad(got, (x, kernels), grad)
        x64, k64 = (t.detach().double().requires_grad_() for t in (x, kernels))
        expected = x64 @ k64
        expected_grads = torch.autograd.grad(expected, (x64, k64), grad.double())
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-4)
        for g, e in zip(got_grads, expected_grads):
            torch.testing.assert_close(g.double(), e, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("cell_type, extra", FUSED_CONFIGS)
def test_float32_keeps_its_relative_precision_near_zero(cell_type, extra):
    """tanh(x) for small x must not be 1 - 2/(e^2x + 1) (which cancels): relative error stays at float32's."""
    torch.manual_seed(0)
    fast = getattr(layers, cell_type)(4, return_sequences=True, execution="fused", **extra)
    reference = getattr(layers, cell_type)(4, return_sequences=True, execution="reference", dtype=torch.float64,
                                           **extra)
    fast.build((2, 3, 4)), reference.build((2, 3, 4))
    reference.set_weights(fast.get_weights())
    x = torch.randn(2, 3, 4) * 1e-4
    got, expected = fast(x).double(), reference(x.double())
    relative = ((got - expected).abs() / expected.abs().clamp_min(1e-30)).max().item()
    assert relative < 1e-4, relative


@pytest.mark.parametrize("cell_type, extra", [("LSTM", {"peephole": True}), ("GRU", {"reset_after": False}),
                                              ("GRU", {})])
def test_a_sorted_batchs_gradients_are_right_whatever_memory_its_buffers_reuse(cell_type, extra):
    """A sorted padded batch saves only the rows still running at each step, in buffers that are never
    zero-filled: after freeing NaN-filled blocks of the buffers' sizes, which the allocator hands out
    again, the gradients (the peephole and kernel sums over all saved rows) are still finite and right."""
    rng = np.random.default_rng(11)
    batch, time, units = 6, 9, 4
    lengths = np.array([9, 7, 7, 4, 2, 1])
    mask = torch.from_numpy(np.arange(time)[None] < lengths[:, None])
    reference = getattr(layers, cell_type)(units, execution="reference", return_sequences=True, **extra)
    fast = getattr(layers, cell_type)(units, execution="fused", return_sequences=True, **extra)
    reference.build((batch, time, 3)), fast.build((batch, time, 3))
    fast.set_weights(reference.get_weights())
    x = torch.from_numpy(rng.normal(size=(batch, time, 3))).float()
    width = units * {"LSTM": 4, "GRU": 3}[cell_type]
    expected, expected_grads = run_and_grad(reference, x, mask)
    # gates, dz and dr (1, real steps, width), the projection's gradient (real steps, 1, width)
    poison = [torch.full((1, int(lengths.sum()), width), float("nan")) for _ in range(4)]
    del poison
    got, got_grads = run_and_grad(fast, x, mask)
    for a, b in zip(got + list(got_grads), expected + list(expected_grads)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_real_steps_pack_inputs_as_packed_sequence_does():
    x = torch.randn(5, 7, 3, requires_grad=True)
    lengths = torch.tensor([7, 6, 6, 3, 1])
    packed = x.reshape(35, 3).index_select(0, fused._real_steps(lengths, 7))
    expected = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True).data
    assert torch.equal(packed, expected)
    packed.sum().backward()  # a gradient reaches exactly the real steps
    assert torch.equal(x.grad[:, :, 0], (torch.arange(7)[None] < lengths[:, None]).float())
    # Rows in any order, blocks anywhere: as if each block were moved to the front and the rows sorted.
    lengths, starts = torch.tensor([3, 7, 1, 6, 5]), torch.tensor([4, 0, 3, 1, 2])
    order = torch.argsort(lengths, descending=True, stable=True)
    indices = fused._real_steps(lengths[order], 7, order, starts)
    fronts = torch.zeros(5, 7, 3)
    for row, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist())):
        fronts[row, :length] = x[row, start:start + length]
    expected = torch.nn.utils.rnn.pack_padded_sequence(fronts[order], lengths[order], batch_first=True).data
    assert torch.equal(x.detach().reshape(35, 3).index_select(0, indices), expected)


@pytest.mark.parametrize("cell_type, extra", FUSED_CONFIGS)
def test_padded_bidirectional_layer_with_recurrent_dropout_equals_reference(cell_type, extra):
    """Both directions in one loop over a right-padded batch of an odd number of steps (the backward
    direction's middle step saves its rows where the forward one's schedule would not put them), with
    recurrent dropout (each saved row meets its own sample's mask in the kernel's gradient)."""
    rng = np.random.default_rng(zlib.crc32(f"{cell_type}-{extra}-odd".encode()))
    batch, time, units = 6, 7, 5
    lengths = np.array([7, 6, 6, 4, 1, 3])
    mask = torch.from_numpy(np.arange(time)[None] < lengths[:, None])

    def make(execution):
        return layers.Bidirectional(getattr(layers, cell_type)(
            units, return_state=True, recurrent_dropout=0.3, seed=3, execution=execution, dtype=torch.float64,
            **extra))

    reference, fast = make("reference"), make("fused")
    reference.build((batch, time, 3)), fast.build((batch, time, 3))
    fast.set_weights([rng.normal(0, 0.5, w.shape) for w in reference.get_weights()])
    reference.set_weights(fast.get_weights())
    assert_twins(reference, fast, torch.from_numpy(rng.normal(size=(batch, time, 3))), mask, training=True)
