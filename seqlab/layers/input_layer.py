"""`Input` / `InputLayer`: declare a model's input shape, as `keras.Input(shape=...)`.

It holds no weights and passes its input through; `Sequential` reads its
shape to build every layer up front.

    >>> model = Sequential([Input(shape=(None,), dtype="int64"), Embedding(100, 8)])
    >>> model.count_params()
    800
"""

from __future__ import annotations

from typing import Sequence

import torch

from seqlab.layers.base import Layer


class InputLayer(Layer):
    """The model's input: `shape` excludes the batch axis (None = any length)."""

    supports_masking = True

    def __init__(self, shape: Sequence[int | None] | None = None, batch_size: int | None = None,
                 dtype: str | None = None, **kwargs):
        if shape is None and "batch_input_shape" not in kwargs and "input_shape" not in kwargs:
            raise ValueError("InputLayer needs shape=(...) without the batch axis, e.g. shape=(None, 10).")
        input_shape = kwargs.pop("input_shape", shape)
        super().__init__(input_shape=input_shape, batch_size=batch_size, **kwargs)
        self.input_dtype = dtype
        self.built = True

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return inputs

    def get_config(self):
        config = super().get_config()
        return {**config, "dtype": self.input_dtype}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        batch_input_shape = config.pop("batch_input_shape")
        return cls(shape=batch_input_shape[1:], batch_size=batch_input_shape[0], **config)


def Input(shape: Sequence[int | None], batch_size: int | None = None, dtype: str | None = None,
          name: str | None = None) -> InputLayer:
    """Keras' `Input(shape=...)` for a `Sequential` model's first entry."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name)
