"""`TimeBudget` (charlm's former TrainingBudget and sentiment's TimeLimit, now one) and `EpochTimer`."""

from __future__ import annotations

import argparse

import pytest
import torch

from seqlab.model import Sequential
from seqlab.layers import Dense
from seqlab.training import time_budget
from seqlab.training.epoch_timer import EpochTimer
from seqlab.training.time_budget import TimeBudget


def attached(budget: TimeBudget, epochs: int = 10) -> TimeBudget:
    budget.model, budget.params = argparse.Namespace(stop_training=False), {"epochs": epochs}
    budget.say = lambda text: None
    budget.on_train_begin()
    return budget


def test_slowest_estimate_without_mid_epoch_stops(monkeypatch):
    """Sentiment's rule: no epoch starts that would end past the limit, judged by the slowest epoch so far."""
    clock = [0.0]
    monkeypatch.setattr(time_budget.time, "perf_counter", lambda: clock[0])
    budget = attached(TimeBudget(max_minutes=1.0, estimate="slowest", stop_mid_epoch=False))
    for epoch, (begin, end) in enumerate([(0.0, 25.0), (25.0, 40.0)]):
        clock[0] = begin
        budget.on_epoch_begin(epoch)
        clock[0] = end
        budget.on_train_batch_end(0)
        budget.on_epoch_end(epoch)
    # 40 s used; the average (20 s) would allow a third epoch, the slowest (25 s) would not.
    assert budget.stopped and "~25 s" in budget.reason
    average = attached(TimeBudget(max_minutes=1.0))
    clock[0] = 0.0
    average.on_train_begin()
    clock[0] = 30.0
    average.on_epoch_end(0)
    assert not average.stopped  # 30 s + 30 s = the budget, not past it
    late = attached(TimeBudget(max_minutes=1.0, stop_mid_epoch=False))
    clock[0] = 0.0
    late.on_train_begin()
    clock[0] = 120.0
    late.on_train_batch_end(0)
    assert not late.stopped  # only between epochs


def test_last_epoch_and_bad_arguments():
    budget = attached(TimeBudget(max_minutes=1e-9), epochs=1)
    budget.on_epoch_end(0)
    assert not budget.stopped  # nothing left to stop
    with pytest.raises(ValueError, match="estimate must be one of"):
        TimeBudget(1.0, estimate="median")
    with pytest.raises(ValueError, match="max_steps must be a positive integer"):
        TimeBudget(max_steps=0)


def test_epoch_timer_records_and_logs_the_seconds():
    model = Sequential([Dense(1)])
    model.compile("sgd", "mse", device="cpu")
    timer, quiet = EpochTimer(), EpochTimer(log_key=None)
    history = model.fit(torch.ones(8, 2), torch.ones(8, 1), epochs=2, callbacks=[timer, quiet], verbose=0)
    assert len(timer.seconds) == len(quiet.seconds) == 2
    assert history.history["seconds"] == pytest.approx(timer.seconds)
