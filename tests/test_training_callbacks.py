"""Callbacks: Keras' early stopping and plateau rules, checkpoints, loggers, schedulers."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from seqlab import saving
from seqlab.seeding import set_seed
from seqlab.training import (BinaryCrossentropy, CSVLogger, EarlyStopping, JSONLogger, LearningRateScheduler,
                             ModelCheckpoint, ReduceLROnPlateau, TensorBoard)
from seqlab.training.callbacks import CallbackList
from test_training_toys import SignOfSum, sign_of_sum_data


def _model() -> SignOfSum:
    set_seed(0)
    model = SignOfSum(units=4)
    model.compile("sgd", BinaryCrossentropy(from_logits=True), metrics=["accuracy"], device="cpu")
    return model


def _epochs(callback, model, values, monitor="val_loss"):
    """Feed `values` as the monitored log of successive epochs; the weights record the epoch index."""
    callbacks = CallbackList([callback], model, {})
    callbacks.fire("on_train_begin", None)
    for epoch, value in enumerate(values):
        with torch.no_grad():
            model.out.bias.fill_(epoch)
        callbacks.fire("on_epoch_end", epoch, {monitor: value})
        if model.stop_training:
            break
    callbacks.fire("on_train_end", None)
    return epoch


def test_early_stopping_waits_patience_epochs_and_restores_the_best_weights():
    model = _model()
    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    last_epoch = _epochs(stopper, model, [1.0, 0.5, 0.6, 0.55, 0.4])
    assert last_epoch == 3 and stopper.stopped_epoch == 3 and stopper.best_epoch == 1
    assert model.out.bias.item() == 1.0  # the weights of epoch 1, the best


def test_early_stopping_min_delta_and_max_mode():
    model = _model()
    stopper = EarlyStopping(monitor="val_accuracy", patience=1, min_delta=0.05)
    assert _epochs(stopper, model, [0.5, 0.53, 0.9], monitor="val_accuracy") == 1  # +0.03 is no improvement


def test_reduce_lr_on_plateau_follows_keras_patience_and_cooldown():
    model = _model()
    plateau = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2, min_lr=0.002)
    rates = []
    callbacks = CallbackList([plateau], model, {})
    for epoch, value in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        callbacks.fire("on_epoch_end", epoch, {"val_loss": value})
        rates.append(model.optimizer.learning_rate)
    assert rates == pytest.approx([0.01, 0.005, 0.005, 0.0025, 0.0025, 0.002])


def test_learning_rate_scheduler_sets_and_logs_the_rate():
    model = _model()
    x, y = sign_of_sum_data(32)
    history = model.fit(x, y, epochs=3, verbose=0,
                        callbacks=[LearningRateScheduler(lambda epoch, rate: 0.1 / (epoch + 1))])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    one_argument = LearningRateScheduler(lambda epoch: 0.2)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[one_argument])
    assert model.optimizer.learning_rate == 0.2


def test_model_checkpoint_writes_last_every_epoch_and_best_on_improvement(tmp_path):
    model = _model()
    checkpoint = ModelCheckpoint(tmp_path)
    states = []

    class Run:
        def checkpoint_state(self, epochs_done):
            states.append(epochs_done)
            return {"epoch": epochs_done, "bias": model.out.bias.detach().clone()}

    callbacks = CallbackList([checkpoint], model, {}, Run())
    callbacks.fire("on_train_begin", None)
    for epoch, value in enumerate([0.9, 0.5, 0.7]):
        with torch.no_grad():
            model.out.bias.fill_(epoch)
        callbacks.fire("on_epoch_end", epoch, {"val_loss": value})
    assert states == [1, 2, 3]
    assert saving.load_training_state(tmp_path / "last")["epoch"] == 3
    assert saving.load_training_state(tmp_path / "best")["epoch"] == 2
    assert saving.load_model(tmp_path / "best").out.bias.item() == 1.0
    assert checkpoint.state_dict() == {"best": 0.5}


def test_csv_and_json_loggers_write_one_row_per_epoch(tmp_path):
    model = _model()
    x, y = sign_of_sum_data(40)
    history = model.fit(x, y, epochs=2, validation_split=0.25, verbose=0,
                        callbacks=[CSVLogger(tmp_path / "log.csv"), JSONLogger(tmp_path / "log.jsonl")])
    with open(tmp_path / "log.csv") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [float(r["val_loss"]) for r in rows] == pytest.approx(history.history["val_loss"])
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1]
    assert [line["loss"] for line in lines] == history.history["loss"]


@pytest.mark.parametrize("logger_of", [lambda path, append: CSVLogger(path / "log.csv", append=append),
                                       lambda path, append: JSONLogger(path / "log.jsonl", append=append)])
def test_a_logger_resumed_after_a_kill_keeps_one_row_per_epoch(tmp_path, logger_of):
    """A run killed after logging epoch 2 but before checkpointing it resumes at epoch 2: one row each, no twin."""
    first = logger_of(tmp_path, False)
    first.on_train_begin()
    for epoch in range(3):
        first.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    resumed = logger_of(tmp_path, True)  # the checkpoint holds epochs 0 and 1 only
    resumed.on_train_begin()
    resumed.load_state_dict({})  # what fit(resume_from=...) does after on_train_begin
    resumed.on_epoch_end(2, {"loss": 0.25})
    resumed.on_epoch_end(3, {"loss": 0.2})
    if isinstance(first, CSVLogger):
        rows = [(int(r["epoch"]), float(r["loss"])) for r in csv.DictReader(open(tmp_path / "log.csv"))]
        assert (tmp_path / "log.csv").read_text().count("epoch,loss") == 1
    else:
        rows = [(line["epoch"], line["loss"]) for line in map(json.loads, open(tmp_path / "log.jsonl"))]
    assert rows == [(0, 1.0), (1, 0.5), (2, 0.25), (3, 0.2)]


@pytest.mark.parametrize("logger_of", [lambda path: CSVLogger(path / "log.csv", append=True),
                                       lambda path: JSONLogger(path / "log.jsonl", append=True)])
def test_a_logger_appending_across_two_fits_keeps_both(tmp_path, logger_of):
    """Without a resume, append=True appends (as in Keras): a second fit's epochs 0, 1 follow the first's."""
    model = _model()
    x, y = sign_of_sum_data(40)
    for _ in range(2):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[logger_of(tmp_path)])
    path = next(tmp_path.iterdir())
    lines = path.read_text().splitlines()
    epochs = [int(line.split(",")[0]) for line in lines[1:]] if path.suffix == ".csv" else \
        [json.loads(line)["epoch"] for line in lines]
    assert epochs == [0, 1, 0, 1]


def test_tensorboard_names_the_missing_package():
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install tensorboard"):
            TensorBoard("runs")
    else:
        pytest.skip("tensorboard is installed")
