"""One summary table (`seqlab.summary`) for `Sequential.summary`, `Model.summary` and `parameter_table`."""

from __future__ import annotations

import torch

import seqlab
from seqlab import layers
from seqlab.summary import Row, parameter_table, render
from seqlab.training import Model


class TwoParts(Model):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.GRU(2, 3)
        self.head = torch.nn.Linear(3, 1)
        self.temperature = torch.nn.Parameter(torch.ones(()), requires_grad=False)


def test_render_draws_keras_table():
    text = render("m", [Row("dense (Dense)", "(None, 1)", 1234)], total=1234, trainable=1000, print_fn=None)
    assert text.splitlines() == [
        'Model: "m"', "_" * 65, " Layer (type)                Output Shape             Param #", "=" * 65,
        " dense (Dense)               (None, 1)                1,234", "=" * 65, "Total params: 1,234",
        "Trainable params: 1,000", "Non-trainable params: 234", "_" * 65]


def test_a_model_without_layer_shapes_is_tabled_by_its_children():
    model = TwoParts()
    text = model.summary(print_fn=None)
    assert text == parameter_table(model, print_fn=None)
    assert 'Model: "TwoParts"' in text and "encoder (GRU)" in text and "head (Linear)" in text
    assert "(own parameters)" in text and "Total params: 68" in text and "Non-trainable params: 1" in text


def test_sequential_and_parameter_table_share_the_format():
    model = seqlab.Sequential([layers.Embedding(10, 4), layers.Dense(2)])
    model.build((None, 5))
    ours, generic = model.summary(print_fn=None).splitlines(), parameter_table(model, print_fn=None).splitlines()
    assert ours[:4] == generic[:4] and ours[-5:] == generic[-5:]
    assert "(None, 5, 2)" in ours[5] and "layers (ModuleList)" in generic[4] and "?" in generic[4]
    printed = []
    model.summary(print_fn=printed.append)
    assert printed == ["\n".join(ours)]
