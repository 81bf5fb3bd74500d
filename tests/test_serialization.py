"""A user's own layers, losses and metrics save and load like seqlab's (issue 21, silent bug 5).

Before the one registry, `layers.deserialize` looked only at what `seqlab.layers`
exports, and the compile config rebuilt only seqlab's own losses and metrics:
a model holding a custom `Layer` saved fine and then could not be loaded.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import seqlab
from seqlab import layers
from seqlab.saving import load_model, register_serializable
from seqlab.training import Loss, Metric


class Scale(layers.Layer):
    """y = x · s · factor with a learned s per feature: a user's layer, registered by nothing but being a Layer."""

    supports_masking = True

    def __init__(self, factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.scale = self.add_weight("scale", (input_shape[-1],), initializer="random_normal")
        self.built = True

    def forward(self, inputs):
        return inputs * self.scale * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@register_serializable(name="my_project>Shift")
class Shift(layers.Layer):
    """y = x + offset: a user's layer registered under a name of its own."""

    def __init__(self, offset: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def forward(self, inputs):
        return inputs + self.offset

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


class ScaledMeanSquaredError(Loss):
    """ℓ = scale · (y_pred - y_true)²."""

    def __init__(self, scale: float = 1.0, name: str | None = None):
        super().__init__(name)
        self.scale = scale

    def elementwise(self, y_true, y_pred):
        return self.scale * (y_pred - y_true.reshape(y_pred.shape)).square()

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


class WithinTolerance(Metric):
    """The share of predictions within `tolerance` of their target."""

    def __init__(self, tolerance: float = 0.5, name: str | None = None):
        super().__init__(name)
        self.tolerance = tolerance

    def values(self, y_true, y_pred):
        return ((y_pred - y_true.reshape(y_pred.shape)).abs() <= self.tolerance).to(y_pred.dtype)

    def get_config(self):
        return {**super().get_config(), "tolerance": self.tolerance}


def _data(n: int = 32):
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(1, 12, (n, 6), generator=generator)
    return x, (x[:, 0] > 6).float().unsqueeze(-1).numpy()


def test_a_custom_layer_inside_a_sequential_reloads_with_the_same_outputs(tmp_path):
    seqlab.set_seed(0)
    model = seqlab.Sequential([layers.Embedding(12, 4), Scale(3.0), layers.LSTM(5), Shift(0.25), layers.Dense(1)])
    model.build((None, None))
    x, _ = _data()
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert (loaded.layers[1].factor, loaded.layers[3].offset) == (3.0, 0.25)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_a_custom_loss_and_metric_survive_the_compile_config(tmp_path):
    seqlab.set_seed(0)
    model = seqlab.Sequential([layers.Dense(4, activation="tanh", input_shape=(6,)), layers.Dense(1)])
    model.compile("sgd", ScaledMeanSquaredError(scale=0.5), metrics=[WithinTolerance(0.3), "mae"], device="cpu")
    x, y = _data()
    x = x.float() / 12
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert type(loaded.compiled_loss) is ScaledMeanSquaredError and loaded.compiled_loss.scale == 0.5
    assert loaded.metrics_names == ["loss", "within_tolerance", "mae"]
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)


def test_a_custom_layer_defined_after_the_model_file_was_written_is_found_once_defined(tmp_path):
    class Negate(layers.Layer):  # defined in a function: found through the registry, not by module lookup
        def forward(self, inputs):
            return -inputs

    model = seqlab.Sequential([layers.Dense(2, input_shape=(3,)), Negate()])
    model.save(tmp_path / "model")
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(load_model(tmp_path / "model").predict(x), model.predict(x))


def test_a_custom_metric_beside_a_named_loss_survives_the_compile_config(tmp_path):
    model = seqlab.Sequential([layers.Dense(1, input_shape=(6,))])
    model.compile("adam", "mse", metrics=[WithinTolerance(0.1, name="close")], device="cpu")
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert loaded.metrics_names == ["loss", "close"] and type(loaded._compiled.metrics[0]) is WithinTolerance
    assert loaded._compiled.metrics[0].tolerance == 0.1
