"""`Sequential`: a stack of layers, each feeding the next, as in Keras.

It builds every layer from the first layer's declared input shape (Keras 2's
`input_shape=`, `input_dim=`/`input_length=`, `batch_input_shape=`, or an
`Input(shape=...)` first entry), through `build(input_shape)`, or on the
first call. Masks flow from layer to layer: `Embedding(mask_zero=True)`
produces one, RNN layers and `Bidirectional` consume it, and a layer that
returns sequences passes it on. `summary()` prints Keras' table.

    >>> model = Sequential([Embedding(1000, 32, input_length=None), SimpleRNN(32), Dense(1)])
    >>> model.build((None, None))
    >>> model.count_params()
    35169
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import nn

from seqlab import summary as summary_module
from seqlab.layers.base import Layer, Shape
from seqlab.layers.input_layer import InputLayer
from seqlab.layers.serialization import deserialize, serialize
from seqlab.training.engine import Model


class Sequential(Layer, Model):
    """A linear stack of layers; `forward(x, mask=None, training=None)` runs them in order.

    As a `seqlab.training.Model` it also has Keras' `compile`, `fit`,
    `evaluate`, `predict` and `save` (see `seqlab.training`).
    """

    supports_masking = True

    def __init__(self, layers: Iterable[Layer] | None = None, name: str | None = None, **kwargs):
        super().__init__(name=name or "sequential", **kwargs)
        self.layers = nn.ModuleList()
        self.build_input_shape: Shape | None = None
        for layer in layers or []:
            self.add(layer)

    # ----------------------------------------------------------------- building
    def add(self, layer: Layer) -> None:
        """Append a layer (an `InputLayer` only as the first entry)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential takes seqlab layers, got {type(layer).__name__}.")
        if isinstance(layer, InputLayer) and len(self.layers):
            raise ValueError("An Input/InputLayer can only be the first entry of a Sequential model.")
        if layer.auto_named:
            layer.name = self._unique_name(layer.name)
        self.layers.append(layer)
        if len(self.layers) == 1 and layer.batch_input_shape is not None:
            self.build_input_shape = tuple(layer.batch_input_shape)
        if self.build_input_shape is not None:
            self.build(self.build_input_shape)

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not len(self.layers):
            raise IndexError("pop() from an empty Sequential model.")
        layer = self.layers[-1]
        del self.layers[-1]
        return layer

    def _unique_name(self, base: str) -> str:
        taken = {layer.name for layer in self.layers}
        if base not in taken:
            return base
        suffix = 1
        while f"{base}_{suffix}" in taken:
            suffix += 1
        return f"{base}_{suffix}"

    def build(self, input_shape: Shape | None = None) -> None:
        """Build every layer for inputs of `input_shape` (batch first, None allowed)."""
        if input_shape is None:
            first = self.layers[0] if len(self.layers) else None
            input_shape = first.batch_input_shape if first is not None else None
        if input_shape is None:
            raise ValueError(
                "Sequential.build needs the input shape, e.g. build((None, 100)) for token ids, "
                "or declare it on the first layer (input_shape=...)."
            )
        shape = tuple(input_shape)
        self.build_input_shape = shape
        for layer in self.layers:
            if not layer.built:
                self.build_sublayer(layer, shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def build_like(self, example: Any) -> None:
        if self.built:
            return
        super().build_like(example)
        if isinstance(example, torch.Tensor):
            self.build_input_shape = (None, *[None if i == 0 else s for i, s in enumerate(example.shape[1:])])

    # ------------------------------------------------------------------ calling
    def forward(self, inputs: Any, mask: torch.Tensor | None = None,
                training: bool | None = None) -> Any:
        outputs = inputs
        for layer in self.layers:
            kwargs: dict[str, Any] = {}
            if layer._forward_takes_mask:
                kwargs["mask"] = mask
            if layer._forward_takes_training:
                kwargs["training"] = training
            layer_inputs = outputs
            outputs = layer(layer_inputs, **kwargs)
            mask = layer.compute_mask(layer_inputs, mask)
        return outputs

    def compute_mask(self, inputs, mask=None):
        for layer in self.layers:
            mask = layer.compute_mask(inputs, mask)
        return mask

    def compute_output_shape(self, input_shape: Shape) -> Any:
        for layer in self.layers:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    # ------------------------------------------------------------------ summary
    def summary(self, line_length: int = 65, print_fn: Callable[[str], Any] | None = print) -> str:
        """Print (and return) Keras' table: layer (type), output shape, parameter count."""
        self._require_built("summary")
        if self.build_input_shape is None:
            raise ValueError("summary() needs the input shape: call build(input_shape) first.")
        rows = summary_module.stack_rows(self.layers, self.build_input_shape, hidden=(InputLayer,))
        return summary_module.render(self.name, rows, total=self.count_params(),
                                     trainable=sum(w.numel() for w in self.trainable_weights),
                                     line_length=line_length, print_fn=print_fn)

    # ------------------------------------------------------------------ configs
    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "layers": [serialize(layer) for layer in self.layers],
                "build_input_shape": None if self.build_input_shape is None else list(self.build_input_shape)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Sequential":
        model = cls([deserialize(layer) for layer in config["layers"]], name=config.get("name"))
        if not model.built and config.get("build_input_shape") is not None:
            model.build(tuple(config["build_input_shape"]))
        return model

    def reset_states(self) -> None:
        """Reset the carried state of every stateful layer."""
        for layer in self.seqlab_layers():
            if layer is not self and hasattr(layer, "reset_states"):
                layer.reset_states()

