"""compile / fit / evaluate / predict: learning, Keras semantics, data forms, progress, errors."""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seqlab.seeding import set_seed
from seqlab.training import BinaryCrossentropy, Model, SparseCategoricalCrossentropy, batchify, parameter_table
from seqlab.training.data_adapter import EmptyDataError
from seqlab.training.progress import make_progress
from test_training_toys import SignOfSum, StatefulLanguageModel, Tagger, copy_first_token_data, sign_of_sum_data


def _sign_model(seed: int = 0, **kwargs) -> SignOfSum:
    set_seed(seed)
    model = SignOfSum(**kwargs)
    model.compile(optimizer="adam", loss=BinaryCrossentropy(from_logits=True), metrics=["accuracy"], device="cpu")
    model.optimizer.learning_rate = 1e-2
    return model


def test_a_tiny_gru_learns_the_sign_of_a_sum_to_95_percent():
    model = _sign_model()
    x, y = sign_of_sum_data(800)
    started = time.perf_counter()
    history = model.fit(x, y, batch_size=32, epochs=4, validation_split=0.2, verbose=0, seed=0)
    assert history.history["val_accuracy"][-1] >= 0.95
    x_test, y_test = sign_of_sum_data(500, seed=1)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.95 and loss < 0.2
    assert time.perf_counter() - started < 60  # a few seconds on an idle CPU core


def test_history_has_keras_keys_and_validation_is_the_last_fraction():
    model = _sign_model()
    x, y = sign_of_sum_data(200)
    history = model.fit(x, y, batch_size=20, epochs=2, validation_split=0.25, verbose=0)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert history.epoch == [0, 1] and model.history is history
    last_quarter = model.evaluate(x[150:], y[150:], batch_size=20, verbose=0, return_dict=True)
    assert history.history["val_loss"][-1] == pytest.approx(last_quarter["loss"], abs=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(last_quarter["accuracy"], abs=1e-12)


def test_predict_is_batched_numpy_in_eval_mode():
    model = _sign_model(dropout=0.5)
    x, _ = sign_of_sum_data(23)
    predictions = model.predict(x, batch_size=5)
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert isinstance(predictions, np.ndarray) and predictions.shape == (23, 1)
    np.testing.assert_allclose(predictions, expected, rtol=1e-6, atol=1e-7)  # batches may sum in another order
    np.testing.assert_allclose(model.predict_on_batch(x[:4]), expected[:4], rtol=1e-6, atol=1e-7)


def test_train_on_batch_updates_and_test_on_batch_does_not():
    model = _sign_model()
    x, y = sign_of_sum_data(64)
    before = model.test_on_batch(x, y)
    assert model.test_on_batch(x, y) == before
    losses = [model.train_on_batch(x, y)[0] for _ in range(15)]
    assert losses[-1] < losses[0] and model.optimizer.iterations == 15
    logits = model.predict(x)
    manual = torch.nn.functional.binary_cross_entropy_with_logits(torch.from_numpy(logits[:, 0]), torch.from_numpy(y))
    assert model.test_on_batch(x, y, return_dict=True)["loss"] == pytest.approx(manual.item(), rel=1e-5)


def test_padded_sequence_targets_are_left_out_of_loss_and_accuracy():
    set_seed(0)
    model = Tagger()
    model.compile("adam", SparseCategoricalCrossentropy(from_logits=True, ignore_class=0), metrics=["accuracy"],
                  device="cpu")
    x, y = copy_first_token_data(200)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    result = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    logits = torch.from_numpy(model.predict(x))
    labels, keep = torch.from_numpy(y), torch.from_numpy(y) != 0
    assert result["loss"] == pytest.approx(
        torch.nn.functional.cross_entropy(logits[keep], labels[keep]).item(), rel=1e-5)
    assert result["accuracy"] == pytest.approx((logits.argmax(-1) == labels)[keep].double().mean().item(), abs=1e-12)


def test_a_boolean_third_element_is_a_mask_like_ignore_class():
    x, y = copy_first_token_data(64)
    results = []
    for loss, weight in ((SparseCategoricalCrossentropy(from_logits=True, ignore_class=0), None),
                         (SparseCategoricalCrossentropy(from_logits=True), y != 0)):
        set_seed(1)
        model = Tagger()
        model.compile("adam", loss, device="cpu")
        results.append(model.test_on_batch(x, y, sample_weight=weight))
    assert results[0] == pytest.approx(results[1], rel=1e-6)


class _Penalised(Model):
    """A linear model whose child reports a Keras-style regularization loss (and a nested one it covers)."""

    class Child(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(3, 1)
            self.nested = _Penalised.Nested()

        def forward(self, x):
            return self.dense(x)

        @property
        def losses(self):  # Keras: a layer's losses include its sublayers'
            return [0.5 * self.dense.weight.pow(2).sum(), *self.nested.losses]

    class Nested(nn.Module):
        @property
        def losses(self):
            return [torch.tensor(0.25)]

    def __init__(self):
        super().__init__()
        self.child = _Penalised.Child()

    def forward(self, x):
        return self.child(x)


def test_regularization_losses_are_added_once():
    set_seed(0)
    model = _Penalised()
    model.compile("sgd", "mse", device="cpu")
    x, y = np.ones((4, 3), np.float32), np.zeros((4, 1), np.float32)
    with torch.no_grad():
        data_loss = model(torch.from_numpy(x)).pow(2).mean().item()
        penalty = 0.5 * model.child.dense.weight.pow(2).sum().item() + 0.25
    assert model.test_on_batch(x, y) == pytest.approx(data_loss + penalty, rel=1e-6)


def test_set_seed_makes_training_with_dropout_and_shuffling_repeat_bit_for_bit():
    x, y = sign_of_sum_data(120)
    weights = []
    for _ in range(2):
        model = _sign_model(seed=5, dropout=0.3)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_dataloader_and_a_list_of_batches_train_like_arrays():
    x, y = sign_of_sum_data(96)
    batches = [(torch.from_numpy(x[i:i + 32]), torch.from_numpy(y[i:i + 32])) for i in range(0, 96, 32)]
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=32)
    results = []
    for data in ((x, y), (loader,), (batches,)):
        model = _sign_model(seed=2)
        kwargs = {"batch_size": 32} if len(data) == 2 else {}
        model.fit(*data, epochs=2, shuffle=False, verbose=0, **kwargs)
        results.append(model.state_dict())
    for other in results[1:]:
        assert all(torch.equal(results[0][k], other[k]) for k in other)
    with pytest.raises(ValueError, match="sets its own batch size"):
        _sign_model().fit(loader, batch_size=32, verbose=0)


def test_batches_of_numpy_arrays_give_the_numbers_of_tensor_batches():
    x, y = sign_of_sum_data(96)
    numpy_batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 96, 32)]
    tensor_batches = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in numpy_batches]
    results = []
    for batches in (tensor_batches, numpy_batches):
        model = _sign_model(seed=2)
        # a list and a one-shot generator of batches take the same path through the adapter
        history = model.fit((batch for batch in batches), epochs=1, shuffle=False, verbose=0)
        results.append((history.history["loss"][0], model.evaluate(batches, verbose=0),
                        model.predict(iter(batches)), model.state_dict()))
    (tensor_loss, tensor_eval, tensor_pred, tensor_state), (numpy_loss, numpy_eval, numpy_pred, numpy_state) = results
    assert numpy_loss == tensor_loss and numpy_eval == tensor_eval
    assert numpy_pred.shape == (96, 1)
    np.testing.assert_array_equal(numpy_pred, tensor_pred)
    assert all(torch.equal(tensor_state[k], numpy_state[k]) for k in tensor_state)


def test_tbptt_carries_state_across_windows_and_learns_a_periodic_stream():
    set_seed(0)
    stream = torch.arange(2000) % 5
    x, y = batchify(stream[:-1], 8), batchify(stream[1:], 8)  # (8, 249) each
    model = StatefulLanguageModel()
    model.compile("adam", SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"], device="cpu")
    model.optimizer.learning_rate = 0.02
    history = model.fit(x, y, tbptt=25, epochs=3, verbose=0)
    assert model.optimizer.iterations == 3 * 10  # ceil(249 / 25) windows per epoch
    assert model.resets == 3
    assert history.history["accuracy"][-1] >= 0.95


def test_plain_progress_prints_one_keras_line_per_epoch(capsys):
    model = _sign_model()
    x, y = sign_of_sum_data(64)
    model.fit(x, y, batch_size=32, epochs=2, validation_split=0.25, verbose=2)
    lines = capsys.readouterr().err.strip().splitlines()
    pattern = (r"Epoch {}/2 - \d+\.\ds - [\d,]+ samples/s - loss: \d+\.\d{{4}} - accuracy: \d\.\d{{4}} - "
               r"val_loss: \d+\.\d{{4}} - val_accuracy: \d\.\d{{4}}")
    assert len(lines) == 2
    assert all(re.fullmatch(pattern.format(i + 1), line) for i, line in enumerate(lines)), lines


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_live_bar_then_the_epoch_line():
    stream = _Terminal()
    progress = make_progress(1, stream=stream)
    progress.begin("Epoch 1/1", steps=2)
    for _ in range(2):
        progress.advance({"loss": 0.5}, 32, "samples")
    progress.end({"loss": 0.25, "val_loss": 0.3})
    progress.close()
    output = stream.getvalue()
    assert "━" in output and "/2" in output and "\x1b[" in output  # a live bar was drawn
    assert re.search(r"Epoch 1/1 - \d+\.\ds - [\d,]+ samples/s - loss: 0\.2500 - val_loss: 0\.3000", output)
    assert type(make_progress(1, stream=io.StringIO())).__name__ == "PlainProgress"


def test_verbose_zero_is_silent_and_sequence_speed_counts_tokens(capsys):
    model = _sign_model()
    x, y = sign_of_sum_data(32)
    model.fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr() == ("", "")
    set_seed(0)
    tagger = Tagger()
    tagger.compile("adam", SparseCategoricalCrossentropy(from_logits=True, ignore_class=0), device="cpu")
    tagger.fit(*copy_first_token_data(32), epochs=1, verbose=2)
    assert "tokens/s" in capsys.readouterr().err


def test_summary_table_counts_parameters_per_child():
    text = parameter_table(SignOfSum(units=4), print_fn=None)
    assert "rnn (GRU)" in text and f"{3 * (4 + 4 * 4 + 2 * 4):>15,}" in text  # GRU(1 → 4): 3 gates, 2 biases
    assert "Total params: 89" in text


# --------------------------------------------------------------- clear errors
def test_empty_datasets_are_reported():
    model = _sign_model()
    with pytest.raises(EmptyDataError, match="training data holds no samples"):
        model.fit(np.zeros((0, 8, 1), np.float32), np.zeros(0, np.float32), verbose=0)
    with pytest.raises(EmptyDataError, match="produced no batches in epoch 1"):
        model.fit(DataLoader(TensorDataset(torch.zeros(0, 8, 1), torch.zeros(0)), batch_size=4), verbose=0)
    with pytest.raises(EmptyDataError, match="leaves 0 for training"):
        model.fit(np.zeros((1, 8, 1), np.float32), np.zeros(1, np.float32), validation_split=0.5, verbose=0)


def test_mismatched_lengths_and_uncompiled_models_are_reported():
    x, y = sign_of_sum_data(10)
    with pytest.raises(ValueError, match="training data has 10 samples but y has 9"):
        _sign_model().fit(x, y[:9], verbose=0)
    with pytest.raises(RuntimeError, match=r"SignOfSum.fit needs a compiled model: call model.compile"):
        SignOfSum().fit(x, y)


def test_labels_out_of_range_stop_fit_with_the_vocabulary_fix():
    set_seed(0)
    model = Tagger(vocabulary=12, classes=5)
    model.compile("adam", SparseCategoricalCrossentropy(from_logits=True), device="cpu")
    x, y = copy_first_token_data(16)
    with pytest.raises(ValueError, match=r"the model has 5 output classes.*at least 1[0-2] units"):
        model.fit(x, y, epochs=1, verbose=0)


def test_distributed_without_a_launcher_says_how_to_launch():
    x, y = sign_of_sum_data(8)
    with pytest.raises(RuntimeError, match="torchrun --nproc_per_node N"):
        _sign_model().fit(x, y, distributed=True, verbose=0)


def test_mixed_precision_on_cpu_warns_and_trains_in_float32():
    with pytest.warns(UserWarning, match="needs a CUDA device"):
        SignOfSum().compile("adam", "mse", device="cpu", mixed_precision=True)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="mixed precision autocasts on CUDA only, and torch sees no CUDA GPU here")


@needs_cuda
@pytest.mark.parametrize("mixed_precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_mixed_precision_on_cuda_computes_in_half_precision_and_learns(mixed_precision, dtype):
    set_seed(0)
    model = SignOfSum()
    model.compile("adam", BinaryCrossentropy(from_logits=True), metrics=["accuracy"], device="cuda",
                  mixed_precision=mixed_precision)
    model.optimizer.learning_rate = 1e-2
    seen = set()
    model.out.register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
    x, y = sign_of_sum_data(800)
    losses = model.fit(x, y, batch_size=32, epochs=4, verbose=0, seed=0).history["loss"]
    assert seen == {dtype}  # the output layer ran under autocast
    assert all(p.dtype == torch.float32 and p.device.type == "cuda" for p in model.parameters())  # fp32 master weights
    assert all(np.isfinite(losses)) and losses[-1] < 0.6 * losses[0], losses


def test_the_live_bars_epoch_line_is_never_cut_at_the_console_width():
    from seqlab.training.progress import RichProgress, format_logs
    stream = io.StringIO()  # rich falls back to 80 columns here, as in a terminal that reports no size
    progress = RichProgress(stream)
    logs = {f"metric_number_{i}": 0.5 for i in range(8)}
    progress.begin("Epoch 1/1", 2)
    progress.advance(logs, 32, "samples")
    progress.end(logs)
    progress.close()
    logged = format_logs(logs)
    assert len(logged) > 80 and any(logged in line for line in stream.getvalue().splitlines())
