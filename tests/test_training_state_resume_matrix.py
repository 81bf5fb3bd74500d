"""Resuming from a checkpoint is exact for every optimizer × every recurrent cell × weight layout.

A run of two epochs and a run of one epoch, checkpointed, then resumed on a fresh model in
another RNG state, must end with the same weights and losses bit for bit. The transposed
layout (`stored_transposed=True`, LSTM's default) is where restored optimizer moments once
came back in another memory order than their parameters (issue 21, bug 1: Adam's fused step
then paired each weight with another weight's moments).
"""

from __future__ import annotations

import pytest
import torch

from seqlab.layers import GRU, LSTM, Bidirectional, Dense, Embedding, SimpleRNN
from seqlab.layers.cells import RecurrentCell
from seqlab.model import Sequential
from seqlab.seeding import set_seed
from seqlab.training import SGD, Adagrad, Adam, Adamax, AdamW, ModelCheckpoint, Nadam, RMSprop

OPTIMIZERS = {
    "sgd_momentum": lambda: SGD(learning_rate=0.1, momentum=0.9),
    "rmsprop": lambda: RMSprop(learning_rate=0.01, momentum=0.5),
    "adam": lambda: Adam(learning_rate=0.01),
    "adamw": lambda: AdamW(learning_rate=0.01),
    "nadam": lambda: Nadam(learning_rate=0.01),
    "adamax": lambda: Adamax(learning_rate=0.01),
    "adagrad": lambda: Adagrad(learning_rate=0.05),
}
CELLS = {
    "simple_rnn": lambda: SimpleRNN(6),
    "lstm": lambda: LSTM(6),
    "gru_reset_after": lambda: GRU(6, reset_after=True),
    "gru_reset_before": lambda: GRU(6, reset_after=False),
    "bidirectional_lstm": lambda: Bidirectional(LSTM(4)),
}


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    x = torch.randint(0, 10, (16, 5), generator=generator)
    return x, (x[:, 0] > 4).float()


def _model(cell: str, optimizer: str, seed: int) -> Sequential:
    set_seed(seed)
    model = Sequential([Embedding(10, 4), CELLS[cell](), Dense(1, activation="sigmoid")])
    model.compile(OPTIMIZERS[optimizer](), "binary_crossentropy", device="cpu")
    return model


@pytest.mark.parametrize("transposed", [False, True], ids=["contiguous", "transposed"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_a_resumed_run_ends_bit_for_bit_where_a_straight_run_ends(optimizer, cell, transposed, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr(RecurrentCell, "native_storage", transposed)
    for subclass in RecurrentCell.__subclasses__():
        monkeypatch.setattr(subclass, "native_storage", transposed, raising=False)
    x, y = _data()
    options = dict(batch_size=8, seed=3, verbose=0)

    straight = _model(cell, optimizer, seed=0)
    expected = straight.fit(x, y, epochs=2, **options).history["loss"]
    kernels = [p for name, p in straight.named_parameters() if "kernel" in name and "cell" in name]
    assert all(p.is_contiguous() != transposed for p in kernels)  # the layout under test

    first = _model(cell, optimizer, seed=0)
    first.fit(x, y, epochs=1, callbacks=[ModelCheckpoint(tmp_path, monitor="loss")], **options)
    resumed = _model(cell, optimizer, seed=99)  # other initial weights and RNG state, as a new process
    losses = resumed.fit(x, y, epochs=2, resume_from=tmp_path, **options).history["loss"]

    assert losses == expected
    for name, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
