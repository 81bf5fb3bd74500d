"""One training state (`seqlab.training.state`): what a checkpoint holds, every batch source's epoch,
the non-finite-loss option, and the batch's own mask field."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader

from seqlab.data import BucketBatchSampler, SequenceCollate, SequenceDataset
from seqlab.saving import load_training_state, register_serializable
from seqlab.seeding import set_seed
from seqlab.training import (BinaryCrossentropy, EarlyStopping, ModelCheckpoint, NonFiniteLossError,
                             SparseCategoricalCrossentropy, TerminateOnNaN)
from seqlab.training.data_adapter import adapt, make_batch
from seqlab.training.loop import elements_mask
from seqlab.training.state import read_checkpoint
from test_training_resume import _PoisonedSignOfSum
from test_training_toys import SignOfSum, Tagger, sign_of_sum_data

OLD_READER_KEYS = {"epoch", "seed", "optimizer", "callbacks", "scaler", "rng"}  # what 77b84c3's fit reads


@register_serializable
class _TaggerOnPaddedBatches(Tagger):
    """The toy tagger reading `PaddedBatch(tokens, lengths, mask)` inputs."""

    def forward(self, x):
        return super().forward(x.tokens)


def _bucketed_loader(seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 9, (48,), generator=generator).tolist()
    sequences = [torch.randint(1, 12, (n,), generator=generator).tolist() for n in lengths]
    dataset = SequenceDataset(sequences, [s[0] % 3 for s in sequences])
    sampler = BucketBatchSampler(dataset.lengths, batch_size=8, seed=seed, pool_batches=2)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=_Collate())


class _Collate(SequenceCollate):
    """(PaddedBatch, label) → (PaddedBatch, label per step, mask): a tagger's batch with its own mask."""

    def __call__(self, examples):
        batch, labels = super().__call__(examples)
        return batch, labels[:, None].expand_as(batch.tokens).clone(), batch.mask


def _tagger(seed: int) -> Tagger:
    set_seed(seed)
    model = _TaggerOnPaddedBatches(vocabulary=12, classes=3, units=8)
    model.compile("adam", SparseCategoricalCrossentropy(from_logits=True), device="cpu")
    return model


def test_a_bucketed_dataloader_is_told_the_epoch_so_a_resumed_run_reads_what_a_straight_run_reads(tmp_path):
    batches = adapt(_bucketed_loader(seed=4))

    def order(epoch):
        return [batch.x.tokens[:, 0].tolist() for batch in batches.epoch(epoch)]

    assert order(1) != order(0) and order(1) == order(1)  # epoch e's order, however often it is read

    straight = _tagger(0)
    expected = straight.fit(_bucketed_loader(4), epochs=3, verbose=0).history["loss"]
    _tagger(0).fit(_bucketed_loader(4), epochs=2, verbose=0, callbacks=[ModelCheckpoint(tmp_path, monitor="loss")])
    resumed = _tagger(7)
    losses = resumed.fit(_bucketed_loader(4), epochs=3, verbose=0, resume_from=tmp_path).history["loss"]
    assert losses == expected
    assert all(torch.equal(resumed.state_dict()[k], v) for k, v in straight.state_dict().items())


def test_a_checkpoint_holds_the_whole_run_in_the_layout_older_seqlab_reads(tmp_path):
    set_seed(0)
    model = SignOfSum(units=4)
    model.compile("adam", BinaryCrossentropy(from_logits=True), device="cpu")
    x, y = sign_of_sum_data(32)
    model.fit(x, y, batch_size=8, epochs=2, seed=5, verbose=0,
              callbacks=[EarlyStopping(monitor="loss", patience=5), ModelCheckpoint(tmp_path, monitor="loss")])
    on_disk = load_training_state(tmp_path / "last")
    assert OLD_READER_KEYS <= set(on_disk) and "weights" not in on_disk
    assert set(on_disk["optimizer"]) >= {"iterations", "torch"}
    state = read_checkpoint(tmp_path / "last")
    assert (state["epoch"], state["global_step"], state["seed"]) == (2, 8, 5)
    assert set(state["callbacks"]) == {"EarlyStopping", "History", "ModelCheckpoint"}
    assert all(torch.equal(state["weights"][k], v) for k, v in model.state_dict().items())


def test_on_nonfinite_raise_leaves_fit_with_the_error_before_the_update():
    set_seed(0)
    model = _PoisonedSignOfSum(units=4)
    model.compile("adam", BinaryCrossentropy(from_logits=True), device="cpu")
    model.poisoned = True
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = sign_of_sum_data(16)
    with pytest.raises(NonFiniteLossError, match=r"Epoch 1, step 1 \(global step 1\): the loss is nan"):
        model.fit(x, y, batch_size=8, epochs=1, on_nonfinite="raise", verbose=0)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    with pytest.raises(ValueError, match="on_nonfinite must be one of"):
        model.fit(x, y, on_nonfinite="skip", verbose=0)


def test_terminate_on_nan_is_a_keras_callback_that_stops_after_the_batch():
    set_seed(0)
    model = _PoisonedSignOfSum(units=4)
    model.compile("adam", BinaryCrossentropy(from_logits=True), device="cpu")
    model.poisoned = True
    x, y = sign_of_sum_data(32)
    history = model.fit(x, y, batch_size=8, epochs=3, on_nonfinite="ignore", verbose=0,
                        callbacks=[TerminateOnNaN()])
    assert model.optimizer.iterations == 1 and history.epoch == [0] and math.isnan(history.history["loss"][0])


def test_the_elements_mask_is_the_batch_mask_and_the_output_mask_together():
    y_pred = torch.zeros(2, 3, 4)
    y_pred._keras_mask = torch.tensor([[True, True, False], [True, False, False]])
    per_sample = torch.tensor([True, False])
    assert elements_mask(per_sample, y_pred).tolist() == [[True, True, False], [False, False, False]]
    assert elements_mask(None, y_pred.detach()) is None  # what the metrics saw before
    assert elements_mask(None, y_pred) is y_pred._keras_mask
    pooled = torch.zeros(2, 4)
    pooled._keras_mask = y_pred._keras_mask  # an input mask the output has no time axis for
    assert elements_mask(per_sample, pooled) is per_sample


def test_a_boolean_sample_weight_becomes_the_batch_mask():
    keep = torch.tensor([True, False])
    batch = make_batch(torch.zeros(2, 3), torch.zeros(2), keep)
    assert batch.sample_weight is None and batch.mask is keep
    with pytest.raises(ValueError, match="pass the mask once"):
        make_batch(torch.zeros(2, 3), None, keep, keep)
