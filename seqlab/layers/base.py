"""`Layer`: the Keras layer contract on a `torch.nn.Module`.

Every seqlab layer is a plain `nn.Module` that also behaves like a Keras
layer: it builds its weights lazily on the first call (from the input's last
dimension, dtype and device) or through `build(input_shape)`; its weights come
out and go in with `get_weights()` / `set_weights()` in Keras' order and
shapes; `count_params()`, `losses` (regularization penalties),
`apply_constraints()`, `compute_mask()`, `compute_output_shape()` and
`get_config()` mean what they mean in Keras.

Masks travel as in Keras: a layer called on a tensor that carries a mask
(`tensor._keras_mask`, set by `Embedding(mask_zero=True)` for example) receives
it as `mask=` unless one is passed, and attaches `compute_mask(...)` to its
output. `Sequential` passes masks explicitly.

    >>> dense = Dense(3)                  # no weights yet
    >>> y = dense(torch.ones(2, 5))       # builds kernel (5, 3) and bias (3,)
    >>> [w.shape for w in dense.get_weights()]
    [(5, 3), (3,)]
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from seqlab import constraints as constraints_module
from seqlab import initializers as initializers_module
from seqlab import regularizers as regularizers_module
from seqlab import serialization

Shape = tuple  # a shape with None for unknown sizes, batch first


class Layer(nn.Module, serialization.Serializable):
    """Base class of all seqlab layers (see the module docstring).

    Every subclass, a user's too, is registered for `seqlab.serialization` under its class
    name when it is defined, so a model holding it saves and loads without further steps.
    """

    supports_masking = False

    def __init__(self, *, name: str | None = None, trainable: bool = True,
                 dtype: torch.dtype | str | None = None, activity_regularizer=None,
                 input_shape: Sequence[int | None] | None = None,
                 batch_input_shape: Sequence[int | None] | None = None,
                 batch_size: int | None = None,
                 input_dim: int | None = None, input_length: int | None = None, **unknown: Any):
        super().__init__()
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown argument(s) {sorted(unknown)}. "
                "Check the spelling against the Keras documentation of this layer."
            )
        self.name = name or _snake_case(type(self).__name__)
        self.auto_named = name is None
        self.built = False
        self.dtype = _resolve_dtype(dtype)
        self.activity_regularizer = regularizers_module.get(activity_regularizer)
        self.batch_input_shape = _keras2_input_shape(
            input_shape, batch_input_shape, batch_size, input_dim, input_length)
        self._trainable = trainable
        self._weight_names: list[str] = []
        self._regularizers: dict[str, Any] = {}
        self._constraints: dict[str, Any] = {}
        self._activity_losses: list[torch.Tensor] = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        parameters = inspect.signature(cls.forward).parameters
        cls._forward_takes_mask = "mask" in parameters
        cls._forward_takes_training = "training" in parameters

    # ----------------------------------------------------------------- building
    def build(self, input_shape: Shape) -> None:
        """Create the weights for inputs of `input_shape` (batch first, None allowed)."""
        self.built = True

    def add_weight(self, name: str, shape: Sequence[int], initializer="zeros",
                   regularizer=None, constraint=None, trainable: bool = True,
                   stored_transposed: bool = False) -> nn.Parameter:
        """Create, register and return a parameter; the call order is Keras' weight order.

        `stored_transposed` (a matrix): the weight keeps Keras' shape but its memory holds the
        transpose, row after row (strides `(1, rows)`), so `weight.t()` is contiguous: PyTorch's
        native `(out, in)` layout, which its kernels then take without a copy, and whose
        gradients accumulate without one.
        """
        values = initializers_module.get(initializer)(
            tuple(shape), dtype=self._build_dtype(), device=self._build_device())
        if stored_transposed:
            values = values.t().contiguous().t()
        parameter = nn.Parameter(values, requires_grad=trainable and self._trainable)
        self.register_parameter(name, parameter)
        self._weight_names.append(name)
        self._regularizers[name] = regularizers_module.get(regularizer)
        self._constraints[name] = constraints_module.get(constraint)
        return parameter

    def _build_dtype(self) -> torch.dtype:
        # An explicit dtype wins over the example input's (or the wrapper's) dtype.
        return self.dtype or getattr(self, "_pending_dtype", None) or torch.get_default_dtype()

    def _build_device(self) -> torch.device | None:
        return getattr(self, "_pending_device", None)

    def build_sublayer(self, layer: "Layer", input_shape: Shape) -> None:
        """Build a wrapped layer with this layer's pending dtype and device."""
        layer._pending_dtype, layer._pending_device = self._build_dtype(), self._build_device()
        try:
            layer.build(input_shape)
        finally:
            layer._pending_dtype = layer._pending_device = None
        layer.built = True

    def build_like(self, example: Any) -> None:
        """Build from an example input: its shape, its floating dtype and its device."""
        if self.built:
            return
        tensor = _first_tensor(example)
        if tensor is not None:
            self._pending_device = tensor.device
            if tensor.is_floating_point() and self.dtype is None:
                self._pending_dtype = tensor.dtype
        try:
            self.build(_shape_of(example))
        finally:
            self._pending_device = None
            self._pending_dtype = None
        self.built = True

    # ------------------------------------------------------------------ calling
    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        inputs = self._as_tensors(inputs)
        if self._forward_takes_mask and kwargs.get("mask") is None:
            carried = _carried_mask(inputs)
            if carried is not None:
                kwargs["mask"] = carried
        self.build_like(inputs)
        outputs = super().__call__(inputs, *args, **kwargs)
        self._record_activity_losses(outputs)
        if isinstance(outputs, torch.Tensor) or isinstance(outputs, list):
            _attach_mask(outputs, self.compute_mask(inputs, kwargs.get("mask")))
        return outputs

    def _as_tensors(self, inputs: Any) -> Any:
        """numpy arrays and nested lists of numbers become tensors (floats in the layer's dtype)."""
        if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (torch.Tensor, np.ndarray)):
            return type(inputs)(self._as_tensors(x) for x in inputs)
        if isinstance(inputs, torch.Tensor):
            return inputs
        array = np.asarray(inputs)
        if array.dtype.kind in "iub":
            return torch.as_tensor(array, dtype=torch.long, device=self._device())
        if array.dtype.kind == "f":
            return torch.as_tensor(array, dtype=self._float_dtype(), device=self._device())
        raise TypeError(
            f"{self.name} expects a tensor or numpy array of numbers, got {type(inputs).__name__} "
            f"with dtype {array.dtype}."
        )

    def _float_dtype(self) -> torch.dtype:
        for parameter in self.parameters():
            return parameter.dtype
        return self.dtype or torch.get_default_dtype()

    def _device(self) -> torch.device | None:
        for parameter in self.parameters():
            return parameter.device
        return None

    def compute_mask(self, inputs: Any, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        """The mask of this layer's output: passed through if the layer supports masking."""
        return mask if self.supports_masking else None

    def compute_output_shape(self, input_shape: Shape) -> Any:
        """Output shape for `input_shape` (None = unknown); default: unchanged."""
        return input_shape

    # ------------------------------------------------------------------ weights
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in self.seqlab_layers():
            layer._trainable = bool(value)
            for parameter in layer.own_weights():
                parameter.requires_grad_(bool(value))

    def own_weights(self) -> list[nn.Parameter]:
        """This layer's own parameters (not its sublayers'), in Keras order."""
        return [getattr(self, name) for name in self._weight_names]

    def seqlab_layers(self) -> Iterator["Layer"]:
        """This layer and every seqlab layer inside it, depth first, in weight order."""
        yield self
        for child in _seqlab_children(self):
            yield from child.seqlab_layers()

    @property
    def weights(self) -> list[nn.Parameter]:
        """All weights in Keras' `get_weights()` order."""
        return [w for layer in self.seqlab_layers() for w in layer.own_weights()]

    @property
    def trainable_weights(self) -> list[nn.Parameter]:
        return [w for w in self.weights if w.requires_grad]

    @property
    def non_trainable_weights(self) -> list[nn.Parameter]:
        return [w for w in self.weights if not w.requires_grad]

    def weight_paths(self, prefix: str = "") -> list[str]:
        """Keras-style names of `weights`, in the same order, e.g. `lstm/lstm_cell/kernel`."""
        here = f"{prefix}{self.name}/"
        paths = [here + name for name in self._weight_names]
        for child in _seqlab_children(self):
            paths += child.weight_paths(here)
        return paths

    def get_weights(self) -> list[np.ndarray]:
        """The weights as numpy arrays, in Keras' order and shapes."""
        self._require_built("get_weights")
        return [w.detach().cpu().numpy().copy() for w in self.weights]

    def set_weights(self, values: Sequence[Any]) -> None:
        """Load weights given in Keras' order and shapes (numpy arrays or tensors)."""
        self._require_built("set_weights")
        weights, paths = self.weights, self.weight_paths()
        if len(values) != len(weights):
            raise ValueError(
                f"{self.name}.set_weights got {len(values)} arrays but the layer has "
                f"{len(weights)} weights: {', '.join(f'{p} {tuple(w.shape)}' for p, w in zip(paths, weights))}."
            )
        for path, weight, value in zip(paths, weights, values):
            value = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
            if tuple(value.shape) != tuple(weight.shape):
                raise ValueError(
                    f"set_weights: weight '{path}' expects shape {tuple(weight.shape)}, "
                    f"got {tuple(value.shape)}. Pass the arrays in Keras' order and layout."
                )
        with torch.no_grad():
            for weight, value in zip(weights, values):
                value = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
                weight.copy_(value.to(dtype=weight.dtype, device=weight.device))

    def count_params(self) -> int:
        """The number of scalars in all weights (as Keras' summary prints)."""
        self._require_built("count_params")
        return sum(w.numel() for w in self.weights)

    def _require_built(self, what: str) -> None:
        if not all(layer.built for layer in self.seqlab_layers()):
            raise ValueError(
                f"{self.name} has no weights yet, so {what}() cannot run. Call the layer on an "
                "input once, or call build(input_shape), e.g. build((None, None, 10))."
            )

    # ------------------------------------------------- regularizers, constraints
    @property
    def losses(self) -> list[torch.Tensor]:
        """Regularization penalties: of every weight (now) and of the last outputs."""
        penalties = []
        for layer in self.seqlab_layers():
            for name in layer._weight_names:
                regularizer = layer._regularizers[name]
                if regularizer is not None:
                    penalties.append(regularizer(getattr(layer, name)))
            penalties.extend(layer._activity_losses)
        return penalties

    def _record_activity_losses(self, outputs: Any) -> None:
        # Keras: the penalty of every output tensor, divided by its batch size.
        if self.activity_regularizer is None:
            return
        tensors = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        self._activity_losses = [
            self.activity_regularizer(t) / (t.shape[0] if t.dim() > 0 and t.shape[0] else 1)
            for t in tensors if isinstance(t, torch.Tensor)
        ]

    @torch.no_grad()
    def apply_constraints(self, recurse: bool = True) -> None:
        """Project constrained weights onto their allowed sets (after an optimizer step)."""
        layers = self.seqlab_layers() if recurse else [self]
        for layer in layers:
            for name in layer._weight_names:
                constraint = layer._constraints[name]
                if constraint is not None:
                    weight = getattr(layer, name)
                    weight.copy_(constraint(weight))

    # ------------------------------------------------------------------ configs
    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments (Keras' names)."""
        config: dict[str, Any] = {"name": self.name, "trainable": self._trainable}
        if self.dtype is not None:
            config["dtype"] = str(self.dtype).removeprefix("torch.")
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers_module.serialize(self.activity_regularizer)
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = list(self.batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Layer":
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


# ---------------------------------------------------------------------- helpers
def _snake_case(class_name: str) -> str:
    # "SimpleRNN" -> "simple_rnn", "LSTM" -> "lstm", "GRUCell" -> "gru_cell" (Keras' names)
    words = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", class_name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", words).lower()


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype or its name ('float32'), got {dtype!r}.")
    return resolved


def _keras2_input_shape(input_shape, batch_input_shape, batch_size, input_dim, input_length):
    """Keras 2's ways to state the input shape, as one `(batch, ...)` tuple (or None)."""
    if batch_input_shape is not None:
        return tuple(batch_input_shape)
    if input_shape is not None:
        return (batch_size, *input_shape)
    if input_dim is not None:
        return (batch_size, input_length, input_dim) if input_length is not None else (batch_size, input_dim)
    if input_length is not None:
        return (batch_size, input_length)
    return None


def _seqlab_children(module: nn.Module) -> Iterator[Layer]:
    """The nearest seqlab layers below `module`, looking through plain containers."""
    for child in module.children():
        if isinstance(child, Layer):
            yield child
        else:
            yield from _seqlab_children(child)


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _shape_of(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (list, tuple)):
        return [_shape_of(item) for item in value]
    return None


def _carried_mask(inputs: Any) -> torch.Tensor | None:
    if isinstance(inputs, torch.Tensor):
        return getattr(inputs, "_keras_mask", None)
    return None


def _attach_mask(outputs: Any, mask: torch.Tensor | None) -> None:
    target = outputs[0] if isinstance(outputs, list) and outputs else outputs
    if isinstance(target, torch.Tensor):
        target._keras_mask = mask
