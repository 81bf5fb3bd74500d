"""Losses: values, Keras' reduction with weights and masks, and the errors for misfits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqlab.training import losses
from seqlab.training.losses import (BinaryCrossentropy, CategoricalCrossentropy, MeanSquaredError,
                                    SparseCategoricalCrossentropy)


def test_sparse_crossentropy_from_logits_equals_torch_cross_entropy():
    logits, labels = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3, 4, 0])
    value = SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert torch.allclose(value, F.cross_entropy(logits, labels), atol=1e-6)


def test_sparse_crossentropy_on_probabilities_matches_log_of_the_target_probability():
    probs = torch.tensor([[0.2, 0.8], [0.6, 0.4]])
    value = SparseCategoricalCrossentropy()(torch.tensor([1, 1]), probs)
    assert value.item() == pytest.approx(-(math.log(0.8) + math.log(0.4)) / 2, rel=1e-6)


def test_ignore_class_leaves_padded_steps_out_of_sum_and_count():
    logits = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([[3, 2, 0, 0], [1, 5, 4, 0]])
    value = SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)(labels, logits)
    keep = labels != 0
    expected = F.cross_entropy(logits[keep], labels[keep])
    assert torch.allclose(value, expected, atol=1e-6)
    logits[~keep] = 1e4  # whatever the model says at padded steps does not matter
    assert torch.allclose(SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)(labels, logits), expected)


def test_boolean_mask_and_output_mask_equal_ignore_class():
    logits = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([[1, 2, 0], [3, 0, 0]])
    expected = SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)(labels, logits)
    loss = SparseCategoricalCrossentropy(from_logits=True)
    assert torch.allclose(loss(labels, logits, mask=labels != 0), expected)
    logits._keras_mask = labels != 0  # how seqlab layers attach Keras masks to outputs
    assert torch.allclose(loss(labels, logits), expected)


def test_sample_weights_divide_by_element_count_as_keras_sum_over_batch_size():
    loss = MeanSquaredError()
    y_true, y_pred = torch.zeros(4, 1), torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    weights = torch.tensor([1.0, 0.0, 0.5, 2.0])
    assert loss(y_true, y_pred, sample_weight=weights).item() == pytest.approx((1 + 0 + 4.5 + 32) / 4)


def test_binary_crossentropy_probabilities_and_logits_agree():
    logits = torch.tensor([[-2.0], [0.5], [3.0]])
    targets = torch.tensor([0.0, 1.0, 1.0])  # (batch,) fits an output (batch, 1)
    from_logits = BinaryCrossentropy(from_logits=True)(targets, logits)
    from_probs = BinaryCrossentropy()(targets, torch.sigmoid(logits))
    assert from_logits.item() == pytest.approx(from_probs.item(), rel=1e-5)
    assert from_logits.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits.squeeze(1), targets).item())


def test_probabilities_are_clipped_to_keras_epsilon():
    value = BinaryCrossentropy()(torch.tensor([1.0]), torch.tensor([[0.0]]))
    assert value.item() == pytest.approx(-math.log(1e-7), rel=1e-4)


def test_categorical_crossentropy_on_one_hot_targets():
    logits = torch.randn(3, 4, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 3, 1])
    value = CategoricalCrossentropy(from_logits=True)(F.one_hot(labels, 4).float(), logits)
    assert torch.allclose(value, F.cross_entropy(logits, labels), atol=1e-6)


def test_loss_by_name_and_config_round_trip():
    loss = losses.get("sparse_categorical_crossentropy")
    assert isinstance(loss, SparseCategoricalCrossentropy) and loss.from_logits is False
    again = losses.get(losses.serialize(SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)))
    assert (again.from_logits, again.ignore_class) == (True, 0)
    with pytest.raises(ValueError, match="Unknown loss 'crossentropy'"):
        losses.get("crossentropy")


# ---------------------------------------------------------------- clear errors
def test_sequence_output_with_one_label_per_sample_says_return_sequences():
    with pytest.raises(ValueError, match=r"y_pred \(2, 5, 3\) and labels \(2,\).*return_sequences=False"):
        SparseCategoricalCrossentropy()(torch.tensor([0, 1]), torch.full((2, 5, 3), 1 / 3))


def test_single_output_unit_with_sparse_crossentropy_suggests_binary():
    with pytest.raises(ValueError, match="single output unit.*binary_crossentropy"):
        SparseCategoricalCrossentropy()(torch.tensor([0, 1]), torch.full((2, 1), 0.5))


def test_labels_beyond_the_vocabulary_are_named_with_the_fix():
    logits = torch.zeros(2, 3, 10)
    labels = torch.tensor([[1, 2, 3], [4, 12, 0]])
    with pytest.raises(ValueError, match=r"labels range over \[0, 12\] but the model has 10 output classes"
                                         r".*at least 13 units"):
        SparseCategoricalCrossentropy(from_logits=True)(labels, logits)


def test_logits_given_to_a_probability_loss_suggest_from_logits():
    with pytest.raises(ValueError, match=r"values in \[-2, 3\], outside \[0, 1\].*from_logits=True"):
        BinaryCrossentropy()(torch.tensor([0.0, 1.0]), torch.tensor([[-2.0], [3.0]]))


def test_binary_crossentropy_with_many_units_and_integer_labels_says_which_loss():
    with pytest.raises(ValueError, match="has 4 units.*sparse_categorical_crossentropy"):
        BinaryCrossentropy(from_logits=True)(torch.tensor([0, 3]), torch.zeros(2, 4))


def test_categorical_crossentropy_with_integer_labels_says_use_sparse():
    with pytest.raises(ValueError, match="integer class labels.*sparse_categorical_crossentropy"):
        CategoricalCrossentropy()(torch.tensor([0, 2]), torch.full((2, 3), 1 / 3))


def test_mismatched_regression_shapes_are_reported():
    with pytest.raises(ValueError, match=r"y_pred \(4, 2\) and targets \(4, 3\)"):
        MeanSquaredError()(torch.zeros(4, 3), torch.zeros(4, 2))
