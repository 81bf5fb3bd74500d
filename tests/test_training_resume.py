"""Checkpoints during fit: exact resumption after a crash, and stopping on a NaN loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqlab.saving import load_model, register_serializable
from seqlab.seeding import set_seed
from seqlab.training import (BinaryCrossentropy, Callback, EarlyStopping, ExponentialDecay, ModelCheckpoint,
                             ReduceLROnPlateau, SGD)
from seqlab.training.time_budget import TimeBudget
from test_training_toys import SignOfSum, sign_of_sum_data

EPOCHS = 4


class _CrashAt(Callback):
    """Raise KeyboardInterrupt (a Ctrl-C) before batch `batch` of epoch `epoch`."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch, self.current = epoch, batch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt


def _fresh_model(seed: int) -> SignOfSum:
    set_seed(seed)
    model = SignOfSum(units=8, dropout=0.3)  # dropout: the resumed run must draw the same masks
    schedule = ExponentialDecay(0.05, decay_steps=10, decay_rate=0.9)
    model.compile(SGD(learning_rate=schedule, momentum=0.9, global_clipnorm=1.0),
                  BinaryCrossentropy(from_logits=True), metrics=["accuracy"], device="cpu")
    return model


def _fit(model, checkpoint_dir, **kwargs):
    x, y = sign_of_sum_data(160)
    callbacks = [EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=False),
                 ModelCheckpoint(checkpoint_dir), *kwargs.pop("extra_callbacks", [])]
    return model.fit(x, y, batch_size=16, epochs=EPOCHS, validation_split=0.25, callbacks=callbacks,
                     verbose=0, **kwargs)


def test_resuming_after_a_crash_ends_bit_for_bit_where_an_uninterrupted_run_ends(tmp_path):
    uninterrupted = _fresh_model(seed=11)
    expected_history = _fit(uninterrupted, tmp_path / "a").history

    crashed = _fresh_model(seed=11)
    with pytest.raises(KeyboardInterrupt):
        _fit(crashed, tmp_path / "b", extra_callbacks=[_CrashAt(epoch=2, batch=3)])

    resumed = _fresh_model(seed=12345)  # a new process: other initial weights, other RNG state
    history = _fit(resumed, tmp_path / "b", resume_from=tmp_path / "b")

    assert history.history == expected_history and history.epoch == list(range(EPOCHS))
    assert resumed.optimizer.iterations == uninterrupted.optimizer.iterations == EPOCHS * 8
    expected = uninterrupted.state_dict()
    assert all(torch.equal(resumed.state_dict()[k], expected[k]) for k in expected)


def test_resume_from_a_checkpoint_callback_starts_fresh_when_there_is_none(tmp_path):
    checkpoint = ModelCheckpoint(tmp_path / "new", monitor="loss")
    x, y = sign_of_sum_data(32)
    history = _fresh_model(0).fit(x, y, epochs=1, callbacks=[checkpoint], resume_from=checkpoint, verbose=0)
    assert history.epoch == [0] and checkpoint.latest() == tmp_path / "new" / "last"
    with pytest.raises(ValueError, match="holds no checkpoint"):
        _fresh_model(0).fit(x, y, epochs=1, resume_from=tmp_path / "elsewhere", verbose=0)


def test_reduce_on_plateau_state_survives_resumption(tmp_path):
    plateau = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0)  # "never improves"
    model = _fresh_model(0)
    model.compile("sgd", BinaryCrossentropy(from_logits=True), device="cpu")
    x, y = sign_of_sum_data(32)
    model.fit(x, y, epochs=2, callbacks=[plateau, ModelCheckpoint(tmp_path, save_best=False)], verbose=0)
    assert model.optimizer.learning_rate == pytest.approx(0.01 * 0.5)  # best was set at epoch 1, cut at 2
    again = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0)
    resumed = _fresh_model(1)
    resumed.compile("sgd", BinaryCrossentropy(from_logits=True), device="cpu")
    history = resumed.fit(x, y, epochs=3, callbacks=[again, ModelCheckpoint(tmp_path, save_best=False)],
                          resume_from=tmp_path, verbose=0)
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.01, 0.005])
    assert resumed.optimizer.learning_rate == pytest.approx(0.0025)


def test_a_step_budget_counts_the_steps_before_a_resume(tmp_path):
    """10 batches per epoch and a budget of 25: three epochs (the third cut short), resumed or not."""
    x, y = sign_of_sum_data(160)

    def fit(model, epochs, directory, **kwargs):
        budget = TimeBudget(max_steps=25)
        history = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, seed=0,
                            callbacks=[budget, ModelCheckpoint(directory, save_best=False)], **kwargs)
        return history, budget

    whole, budget = fit(_fresh_model(0), 6, tmp_path / "whole")
    assert len(whole.history["loss"]) == 3 and budget.steps == 25
    fit(_fresh_model(0), 1, tmp_path / "resumed")
    resumed, budget = fit(_fresh_model(1), 6, tmp_path / "resumed", resume_from=tmp_path / "resumed")
    assert budget.steps == 25 and resumed.history["loss"][-1] == whole.history["loss"][-1]


@register_serializable
class _PoisonedSignOfSum(SignOfSum):
    poisoned = False

    def forward(self, x):
        out = super().forward(x)
        return out * float("nan") if self.poisoned else out


class _PoisonAt(Callback):
    """From batch `batch` of epoch `epoch` on, the model outputs NaN; remembers the weights just before."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch, self.current, self.weights_before = epoch, batch, -1, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            self.weights_before = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.model.poisoned = True


def test_a_nan_loss_stops_training_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    set_seed(0)
    model = _PoisonedSignOfSum(units=8)
    model.compile("adam", BinaryCrossentropy(from_logits=True), device="cpu")
    x, y = sign_of_sum_data(64)
    poison = _PoisonAt(epoch=1, batch=2)
    with pytest.warns(RuntimeWarning, match=r"Epoch 2, step 3 \(global step 7\): the loss is nan") as warned:
        history = model.fit(x, y, batch_size=16, epochs=5, verbose=0,
                            callbacks=[poison, ModelCheckpoint(tmp_path, save_best=False)])
    message = next(str(w.message) for w in warned if w.category is RuntimeWarning)
    assert f"The last good checkpoint is {tmp_path / 'last'} (after epoch 1)" in message
    assert history.stop_reason == message and history.epoch == [0]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in poison.weights_before.items())
    restored = load_model(tmp_path / "last")
    predictions = restored.predict(x)
    assert np.isfinite(predictions).all()


def test_without_terminate_on_nan_the_update_is_applied(tmp_path):
    set_seed(0)
    model = _PoisonedSignOfSum(units=8)
    model.compile("adam", BinaryCrossentropy(from_logits=True), device="cpu")
    model.poisoned = True
    x, y = sign_of_sum_data(32)
    model.fit(x, y, batch_size=16, epochs=1, terminate_on_nan=False, verbose=0)
    assert torch.isnan(model.out.weight).all()
