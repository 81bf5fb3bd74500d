"""Keras models and weights into seqlab: `from_keras(path)`, with h5py and json only (no TensorFlow).

Three kinds of file:

    MODEL.keras          Keras 3 (`model.save("m.keras")`): a zip of config.json (the
                         architecture) and model.weights.h5
    MODEL.h5             Keras 2 / tf.keras HDF5, and Keras 3's legacy `model.save("m.h5")`:
                         the architecture in the `model_config` attribute, the weights
                         under `model_weights`
    WEIGHTS.weights.h5   weights only (Keras 3 `save_weights`, or a Keras 2
                         `save_weights("w.h5")`), with `model=`: a seqlab model with the
                         same layers, whose weights are replaced

The architecture becomes seqlab layers with the same names and arguments
(seqlab uses Keras' argument names): a `Sequential` for Sequential models and
functional chains, a `KerasGraph` (below) for functional graphs with branches,
such as `Attention()([query, value])`. Weights are matched to layers by name
(full models) or by Keras' layer order (weights only), every count and shape is
checked before any weight is assigned, and the model comes back in inference
mode (`model.eval()`), as Keras' `model(x)` runs.

Layers: InputLayer, Embedding, Dense, Dropout, Activation, SimpleRNN, LSTM,
GRU (either `reset_after`), RNN (with one of their cells), Bidirectional (every
merge mode), TimeDistributed, Attention, AdditiveAttention,
MultiHeadAttention, LayerNormalization, GlobalAveragePooling1D,
GlobalMaxPooling1D. A layer or option seqlab lacks is an
`UnsupportedKerasError` naming the layer and the option; a damaged file or a
weight of the wrong shape a `KerasImportError`: never a partial model.

    >>> model = from_keras("sentiment.keras")
    >>> model.predict(ids)                      # Keras' model.predict(ids), within 1e-5
    >>> from_keras("lm.weights.h5", model=seqlab_model)
"""

from __future__ import annotations

import inspect
import io
import json
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from seqlab import activations, constraints, initializers, layers as seqlab_layers, regularizers
from seqlab.layers import Bidirectional, InputLayer, Layer, MultiHeadAttention, TimeDistributed
from seqlab.layers.recurrent import RNN
from seqlab.layers.serialization import deserialize, serialize
from seqlab.model import Sequential
from seqlab.serialization import register_serializable
from seqlab.training.engine import Model

__all__ = ["KerasGraph", "KerasImportError", "UnsupportedKerasError", "from_keras", "layer_from_keras",
           "load_keras_weights"]

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_WEIGHTS_IN_ARCHIVE = "model.weights.h5"


class KerasImportError(ValueError):
    """A Keras file cannot be read, or its weights do not fit the model."""


class UnsupportedKerasError(KerasImportError):
    """The Keras model uses a layer or an option that seqlab does not have."""


# ============================================================================ entry points
def from_keras(path: str | os.PathLike, model: nn.Module | None = None) -> nn.Module:
    """The seqlab model saved by Keras at `path` (.keras or .h5), or `model` with the weights of `path`.

    With `model` (a seqlab model built with the same layers), `path` may be a
    weights file (`.weights.h5`, Keras 2 `.h5` weights) or a whole model file;
    its weights replace the model's. See the module docstring.
    """
    path = _existing_file(path)
    if model is not None:
        return load_keras_weights(model, path)
    if _magic(path) == "zip":
        config, weights_bytes = _read_archive(path)
        with _open_hdf5(io.BytesIO(weights_bytes), f"{path}:{_WEIGHTS_IN_ARCHIVE}") as weights:
            built = _model_from_config(config, path)
            _assign(_keras3_pairs(built.layers, built.keras_layers, weights, path), path)
        return built.model.eval()
    with _open_hdf5(path, path) as file:
        if "model_config" not in file.attrs:
            raise KerasImportError(
                f"{path} holds only weights, no architecture. Build the model in seqlab and pass it: "
                f"from_keras({str(path)!r}, model=seqlab_model) (or save the whole Keras model with "
                "model.save('model.keras')).")
        config = _json(file.attrs["model_config"], f"{path} (attribute model_config)")
        weights = file["model_weights"] if "model_weights" in file else file
        built = _model_from_config(config, path)
        _assign(_legacy_pairs_by_name(built.layers, weights, path), path)
    return built.model.eval()


def load_keras_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Replace `model`'s weights with those of the Keras file `path`; returns `model`.

    Layers are matched in Keras' order: in a Keras 3 file by class and position
    (the file names them `lstm`, `lstm_1`, ...), in a Keras 2 file by the order
    of the layers that have weights.
    """
    path = _existing_file(path)
    container = top_level_layers(model)
    if _magic(path) == "zip":
        _, weights_bytes = _read_archive(path)
        with _open_hdf5(io.BytesIO(weights_bytes), f"{path}:{_WEIGHTS_IN_ARCHIVE}") as weights:
            _assign(_keras3_pairs(container, _keras_order(container), weights, path), path)
        return model
    with _open_hdf5(path, path) as file:
        if "layers" in file and "layer_names" not in file.attrs:
            _assign(_keras3_pairs(container, _keras_order(container), file, path), path)
        else:
            weights = file["model_weights"] if "model_weights" in file else file
            if "layer_names" not in weights.attrs:
                raise KerasImportError(
                    f"{path} is an HDF5 file but holds no Keras weights (neither Keras 3's 'layers' group "
                    "nor Keras 2's 'layer_names'). Save them with model.save_weights('model.weights.h5').")
            _assign(_legacy_pairs_by_order(container, weights, path), path)
    return model


def top_level_layers(model: nn.Module) -> list[Layer]:
    """The layers whose weights a Keras file stores one by one: a Sequential's or graph's layers, else children."""
    if isinstance(model, (Sequential, KerasGraph)):
        return list(model.layers)
    if isinstance(model, Layer) and not list(_seqlab_children(model)):
        return [model]
    return list(_seqlab_children(model))


def _seqlab_children(module: nn.Module) -> Iterable[Layer]:
    for child in module.children():
        if isinstance(child, Layer):
            yield child
        else:
            yield from _seqlab_children(child)


# ============================================================================ files
def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No Keras file at {path}. Give a .keras, .h5 or .weights.h5 file.")
    return path


def _magic(path: Path) -> str:
    with open(path, "rb") as file:
        head = file.read(8)
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head == _HDF5_MAGIC:
        return "hdf5"
    raise KerasImportError(
        f"{path} is neither a Keras 3 archive (.keras, a zip file) nor an HDF5 file (.h5, .weights.h5): "
        f"it starts with {head!r}. The file may be corrupt or of another format; save it again from Keras.")


def _read_archive(path: Path) -> tuple[dict[str, Any], bytes]:
    """config.json and model.weights.h5 of a .keras archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names or _WEIGHTS_IN_ARCHIVE not in names:
                missing = [n for n in ("config.json", _WEIGHTS_IN_ARCHIVE) if n not in names]
                raise KerasImportError(
                    f"{path} is a zip file but not a complete .keras archive: it lacks {missing} (it holds "
                    f"{sorted(names)}). seqlab reads archives written by Keras 3's model.save('model.keras') "
                    "with unsharded HDF5 weights.")
            return _json(archive.read("config.json"), f"{path}:config.json"), archive.read(_WEIGHTS_IN_ARCHIVE)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise KerasImportError(f"{path} is a damaged .keras archive ({error}); it may be truncated. "
                               "Copy or save it again.") from None


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("Reading Keras files needs h5py: pip install 'seqlab[keras]' (or pip install h5py).") \
            from None
    return h5py


class _open_hdf5:
    """`h5py.File` opened read-only, a damaged file reported as a `KerasImportError`."""

    def __init__(self, source: Any, description: Any):
        self.source, self.description = source, description

    def __enter__(self):
        h5py = _h5py()
        try:
            self.file = h5py.File(self.source, "r")
        except OSError as error:
            raise KerasImportError(f"{self.description} is not a readable HDF5 file ({error}); it may be "
                                   "truncated or corrupt. Save it again from Keras.") from None
        return self.file

    def __exit__(self, kind, error, traceback):
        self.file.close()
        if isinstance(error, (OSError, KeyError, RuntimeError)) and not isinstance(error, KerasImportError):
            raise KerasImportError(f"{self.description} could not be read completely ({error}); it may be "
                                   "truncated or corrupt. Save it again from Keras.") from error
        return False


def _json(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    try:
        config = json.loads(value)
    except json.JSONDecodeError as error:
        raise KerasImportError(f"{where} is not valid JSON ({error}); the file is corrupt.") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise KerasImportError(f"{where} is not a Keras model config (no class_name); the file is corrupt.")
    return config


# ============================================================================ architecture
class _Built:
    """A rebuilt model, its top-level seqlab layers, and Keras' layer list as (name, class) in model.layers order."""

    def __init__(self, model: nn.Module, layers: list[Layer], keras_layers: list[tuple[str, str]]):
        self.model, self.layers, self.keras_layers = model, layers, keras_layers


def _model_from_config(spec: dict[str, Any], path: Path) -> _Built:
    class_name, config = spec.get("class_name"), spec.get("config") or {}
    if class_name == "Sequential":
        return _sequential(config, spec.get("build_config") or {})
    if class_name in ("Functional", "Model") and "layers" in config:
        return _functional(config)
    raise UnsupportedKerasError(
        f"{path} holds a {class_name!r} model, a subclassed Keras model: its architecture is Python code, "
        "not a config seqlab can read. Build the same model in seqlab and load the weights with "
        f"from_keras({str(path)!r}, model=seqlab_model).")


def _sequential(config: dict[str, Any], build_config: dict[str, Any]) -> _Built:
    layers = [layer_from_keras(spec) for spec in config.get("layers", [])]
    keras_layers = [(layer.name, type(layer).__name__) for layer in layers if not isinstance(layer, InputLayer)]
    if any(isinstance(layer, _UNMASKED_IN_KERAS) for layer in layers):
        return _Built(*_chain_graph(layers, config, build_config), keras_layers)
    model = Sequential(layers, name=config.get("name"))
    if not model.built:
        model.build(_sequential_input_shape(config, build_config))
    return _Built(model, list(model.layers), keras_layers)


def _sequential_input_shape(config: dict[str, Any], build_config: dict[str, Any]) -> tuple:
    shape = config.get("build_input_shape") or build_config.get("input_shape")
    if shape is None:
        raise KerasImportError(
            "The Keras Sequential model was saved before it was built (no input shape), so it has no "
            "weights. Give it an input (keras.Input(shape=...)) or call it once before saving.")
    return tuple(shape)


def _chain_graph(layers: list[Layer], config: dict[str, Any], build_config: dict[str, Any]):
    """A Keras Sequential as a `KerasGraph` chain, for layers whose mask handling only the graph reproduces."""
    if isinstance(layers[0], InputLayer):
        first, rest = layers[0], layers[1:]
    else:
        shape = layers[0].batch_input_shape or _sequential_input_shape(config, build_config)
        first, rest = InputLayer(shape=shape[1:], batch_size=shape[0], name="input_layer"), layers
    nodes, previous = [], [first.name, 0, 0]
    for layer in rest:
        nodes.append({"layer": layer.name, "index": 0, "args": [{"tensor": previous}], "kwargs": {}})
        previous = [layer.name, 0, 0]
    model = KerasGraph([first, *rest], nodes, [[first.name, 0, 0]], [previous], name=config.get("name") or "sequential")
    return model, list(model.layers)


def _functional(config: dict[str, Any]) -> _Built:
    layers, operations, nodes = [], {}, []
    for spec in config["layers"]:
        name = spec.get("name") or (spec.get("config") or {}).get("name")
        if spec.get("class_name") in _OPERATIONS:
            operations[name] = spec
        else:
            layers.append(layer_from_keras(spec))
        for index, node in enumerate(spec.get("inbound_nodes") or []):
            nodes.append(_parse_node(name, index, node, operations.get(name)))
    inputs, outputs = _tensor_refs(config["input_layers"]), _tensor_refs(config["output_layers"])
    nodes = _topological(nodes, inputs)
    keras_layers = [(layer.name, type(layer).__name__) for layer in layers]
    chain = _as_chain(layers, nodes, inputs, outputs)
    if chain is not None:
        model = Sequential(chain, name=config.get("name"))
        return _Built(model, list(model.layers), keras_layers)
    model = KerasGraph(layers, nodes, inputs, outputs, name=config.get("name") or "functional")
    return _Built(model, list(model.layers), keras_layers)


def _parse_node(name: str, index: int, node: Any, operation: dict[str, Any] | None) -> dict[str, Any]:
    """One call of a layer: `{"layer", "index", "args", "kwargs"}` with tensors as `{"tensor": [layer, node, i]}`."""
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        args, kwargs = _keras3_tensors(node.get("args", [])), _keras3_tensors(node.get("kwargs", {}))
    else:  # Keras 2: [[layer, node, index, kwargs], ...], one entry per input tensor
        refs = [{"tensor": list(entry[:3])} for entry in node]
        args = [refs[0] if len(refs) == 1 else refs]
        kwargs = {key: _keras2_tensors(value) for key, value in (node[0][3] if len(node[0]) > 3 else {}).items()}
    kwargs.pop("training", None)  # the model's mode decides (eval after import)
    entry = {"layer": name, "index": index, "args": args, "kwargs": kwargs}
    if operation is not None:
        entry["operation"] = operation["class_name"]
        entry["config"] = {k: v for k, v in (operation.get("config") or {}).items() if k != "name"}
    return entry


def _keras3_tensors(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return {"tensor": list(value["config"]["keras_history"])}
        return {key: _keras3_tensors(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_keras3_tensors(item) for item in value]
    return value


def _keras2_tensors(value: Any) -> Any:
    if isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str) \
            and all(isinstance(v, int) for v in value[1:3]):
        return {"tensor": list(value[:3])}
    if isinstance(value, list):
        return [_keras2_tensors(item) for item in value]
    return value


def _tensor_refs(value: Any) -> list[list]:
    if isinstance(value, dict):
        value = list(value.values())
    if value and isinstance(value[0], str):
        value = [value]
    return [list(ref[:3]) for ref in value]


def _references(value: Any) -> Iterable[tuple]:
    if isinstance(value, dict):
        if "tensor" in value and len(value) == 1:
            yield tuple(value["tensor"])
        else:
            for item in value.values():
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _topological(nodes: list[dict], inputs: list[list]) -> list[dict]:
    """Nodes in an order where every node's inputs are computed before it."""
    available = {(ref[0], ref[1]) for ref in inputs}
    ordered, pending = [], [n for n in nodes if (n["layer"], n["index"]) not in available]
    while pending:
        ready = [n for n in pending if all((r[0], r[1]) in available for r in _references([n["args"], n["kwargs"]]))]
        if not ready:
            names = sorted({n["layer"] for n in pending})
            raise KerasImportError(f"The functional graph cannot be ordered: layers {names} wait for tensors no "
                                   "layer produces. The config is corrupt or uses a feature seqlab does not read.")
        for node in ready:
            ordered.append(node)
            available.add((node["layer"], node["index"]))
        pending = [n for n in pending if n not in ready]
    return ordered


def _as_chain(layers: list[Layer], nodes: list[dict], inputs: list, outputs: list) -> list[Layer] | None:
    """The layers of a linear functional model (input → layer → layer → output), else None.

    Mask computations Keras records as operations (`NotEqual` of the ids) may
    feed `mask=` arguments: a Sequential recomputes those masks itself.
    """
    by_name = {layer.name: layer for layer in layers}
    if len(inputs) != 1 or len(outputs) != 1:
        return None
    chain, previous = [by_name.get(inputs[0][0])], tuple(inputs[0])
    operation_outputs = {n["layer"] for n in nodes if "operation" in n}
    for node in nodes:
        if "operation" in node:
            continue
        mask = node["kwargs"].get("mask")
        if node["index"] != 0 or node["args"] != [{"tensor": list(previous)}] \
                or set(node["kwargs"]) - {"mask"} \
                or any(ref[0] not in operation_outputs for ref in _references(mask)):
            return None
        chain.append(by_name[node["layer"]])
        previous = (node["layer"], 0, 0)
    for node in nodes:  # operations may only feed masks (or other operations)
        if "operation" not in node and any(r[0] in operation_outputs for r in _references(node["args"])):
            return None
    if tuple(outputs[0]) != previous or not isinstance(chain[0], InputLayer) \
            or any(isinstance(layer, _UNMASKED_IN_KERAS) for layer in chain):
        return None
    return chain


# ---------------------------------------------------------------- one layer
def layer_from_keras(spec: dict[str, Any]) -> Layer:
    """The seqlab layer for one Keras layer config `{"class_name", "config"}` (Keras 2 or 3), without weights."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise KerasImportError(f"Expected a Keras layer config {{'class_name', 'config'}}, got {spec!r:.200}.")
    class_name, config = spec.get("class_name"), dict(spec["config"])
    name = config.get("name", class_name)
    if class_name in ("Sequential", "Functional", "Model"):
        raise UnsupportedKerasError(
            f"Keras layer '{name}' is a nested {class_name} model. seqlab imports flat models: rebuild it in "
            "Keras with the inner model's layers inline, or build it in seqlab and load the weights with "
            "from_keras(path, model=...).")
    translate = _TRANSLATIONS.get(class_name)
    if translate is None:
        raise UnsupportedKerasError(
            f"Keras layer '{name}' is a {class_name}, which seqlab cannot import. seqlab imports "
            f"{', '.join(sorted(_TRANSLATIONS))}. Replace the layer in Keras, or build the model in seqlab "
            "and load the weights of the other layers with from_keras(path, model=...).")
    return translate(name, class_name, config)


def _layer(name: str, class_name: str, config: dict[str, Any], cls: type | None = None) -> Layer:
    """A seqlab layer of the same class from Keras arguments, every argument checked."""
    cls = cls or getattr(seqlab_layers, class_name)
    arguments = _translate_arguments(name, class_name, config, _constructor_arguments(cls))
    try:
        return cls(**arguments)
    except (TypeError, ValueError) as error:
        raise UnsupportedKerasError(f"Keras layer '{name}' ({class_name}) cannot be rebuilt in seqlab: "
                                    f"{error}") from None


def _input_layer(name: str, class_name: str, config: dict[str, Any]) -> Layer:
    config = dict(config)
    shape = config.pop("batch_shape", None) or config.pop("batch_input_shape", None)
    if shape is None:
        raise KerasImportError(f"Keras input '{name}' has no batch_shape; the config is incomplete.")
    dtype = _policy_name(config.pop("dtype", None)) or "float32"
    _translate_arguments(name, class_name, config, {"name"})  # only checks for unsupported options
    return InputLayer(shape=shape[1:], batch_size=shape[0], dtype=dtype, name=config.get("name", name))


def _bidirectional(name: str, class_name: str, config: dict[str, Any]) -> Layer:
    config = dict(config)
    config["layer"] = layer_from_keras(config["layer"])
    if config.get("backward_layer") is not None:
        config["backward_layer"] = layer_from_keras(config["backward_layer"])
    return _layer(name, class_name, config)


def _time_distributed(name: str, class_name: str, config: dict[str, Any]) -> Layer:
    config = dict(config)
    config["layer"] = layer_from_keras(config["layer"])
    return _layer(name, class_name, config)


def _rnn(name: str, class_name: str, config: dict[str, Any]) -> Layer:
    config = dict(config)
    cell = config.get("cell")
    if not isinstance(cell, dict) or cell.get("class_name") not in _CELLS:
        found = cell.get("class_name") if isinstance(cell, dict) else f"{len(cell)} cells" if isinstance(
            cell, list) else cell
        raise UnsupportedKerasError(
            f"Keras layer '{name}' (RNN): option cell={found!r} is not supported; seqlab imports RNN with one "
            f"of {', '.join(_CELLS)} (stacked cells: use one RNN layer per cell).")
    cell_config = dict(cell["config"])
    config["cell"] = _layer(cell_config.get("name", name), cell["class_name"], cell_config)
    return _layer(name, class_name, config)


def _multi_head_attention(name: str, class_name: str, config: dict[str, Any]) -> Layer:
    """Keras' kernels give a query that may attend to nothing equal weights on every key."""
    return _layer(name, class_name, {**config, "fully_masked_rows": "average"})


_CELLS = ("SimpleRNNCell", "LSTMCell", "GRUCell")
_TRANSLATIONS: dict[str, Callable[[str, str, dict[str, Any]], Layer]] = {
    **{name: _layer for name in (
        "Embedding", "Dense", "Dropout", "Activation", "SimpleRNN", "LSTM", "GRU", "Attention", "AdditiveAttention",
        "LayerNormalization", "GlobalAveragePooling1D", "GlobalMaxPooling1D")},
    "MultiHeadAttention": _multi_head_attention,
    "InputLayer": _input_layer,
    "Bidirectional": _bidirectional,
    "TimeDistributed": _time_distributed,
    "RNN": _rnn,
}


def _any(value: Any) -> bool:
    return True


# Keras options seqlab has no use for, and when a value changes nothing.
_HARMLESS: dict[str, Callable[[Any], bool]] = {
    "implementation": _any, "use_cudnn": _any, "lora_alpha": _any, "softmax_robust_masking": _any,
    "query_shape": _any, "key_shape": _any, "value_shape": _any,
    "quantization_config": lambda v: v is None, "lora_rank": lambda v: v is None,
    "sparse": lambda v: not v, "ragged": lambda v: not v, "optional": lambda v: not v,
    "use_gate": lambda v: not v, "sliding_window": lambda v: v is None, "flash_attention": lambda v: not v,
    "rms_scaling": lambda v: not v, "causal": lambda v: not v,
    "attention_axes": lambda v: v in (None, 1, -2, [1], [-2]),
}


def _translate_arguments(name: str, class_name: str, config: dict[str, Any], accepted: set[str]) -> dict[str, Any]:
    """Keras' config → seqlab constructor arguments; an `UnsupportedKerasError` for anything seqlab lacks."""
    arguments: dict[str, Any] = {}
    for key, value in config.items():
        if key in _HARMLESS:
            if not _HARMLESS[key](value):
                raise _unsupported_option(name, class_name, key, value)
            continue
        if key == "dtype":
            dtype = _policy_name(value)
            if dtype not in (None, "float32"):
                if dtype not in ("float64", "float16", "bfloat16"):
                    raise _unsupported_option(name, class_name, key, dtype,
                                              "seqlab layers compute in one float dtype; save the Keras model "
                                              "with the float32 policy")
                arguments["dtype"] = dtype
            continue
        if key == "batch_shape":
            key = "batch_input_shape"
        if value is not None and key.endswith("_initializer"):
            value = _keras_object(name, class_name, key, value, initializers, initializers.get)
        elif value is not None and key.endswith("_regularizer"):
            value = _keras_object(name, class_name, key, value, regularizers, regularizers.get)
        elif value is not None and key.endswith("_constraint"):
            value = _keras_object(name, class_name, key, value, constraints, constraints.get)
        elif key in ("activation", "recurrent_activation"):
            value = _activation(name, class_name, key, value)
        if key not in accepted:
            raise _unsupported_option(name, class_name, key, value)
        arguments[key] = value
    return arguments


def _unsupported_option(name: str, class_name: str, key: str, value: Any, advice: str | None = None):
    advice = advice or f"seqlab's {class_name} has no such option; use its default in Keras and save again"
    return UnsupportedKerasError(f"Keras layer '{name}' ({class_name}): option {key}={value!r:.120} is not "
                                 f"supported: {advice}.")


def _policy_name(value: Any) -> str | None:
    if isinstance(value, dict):  # Keras 3: {"class_name": "DTypePolicy", "config": {"name": "float32"}}
        value = (value.get("config") or {}).get("name")
    return value


def _activation(name: str, class_name: str, key: str, value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("config"), str):
        value = value["config"]  # Keras 3's serialized built-in function
    if value is None:
        return "linear"
    try:
        activations.get(value)
    except ValueError:
        raise _unsupported_option(name, class_name, key, value, "seqlab knows the activations "
                                  "linear, tanh, sigmoid, hard_sigmoid, relu, relu6, elu, selu, gelu, softplus, "
                                  "softsign, swish/silu, exponential, leaky_relu, softmax") from None
    return value


def _keras_object(name: str, class_name: str, key: str, value: Any, module, get: Callable) -> Any:
    """An initializer, regularizer or constraint from its Keras config, its arguments checked."""
    if isinstance(value, str):
        try:
            return get(value)
        except ValueError:
            raise _unsupported_option(name, class_name, key, value) from None
    kind = value.get("class_name") if isinstance(value, dict) else None
    cls = getattr(module, kind, None) if isinstance(kind, str) else None
    if not isinstance(cls, type):
        raise _unsupported_option(name, class_name, key, kind or value,
                                  f"seqlab has no {kind!r} in seqlab.{module.__name__.split('.')[-1]}")
    accepted = _constructor_arguments(cls)
    arguments = {}
    for argument, setting in (value.get("config") or {}).items():
        if argument in accepted:
            arguments[argument] = setting
        elif setting is not None:  # e.g. Keras 3's GlorotUniform(input_axes=None)
            raise _unsupported_option(name, class_name, f"{key}.{argument}", setting)
    try:
        return get({"class_name": kind, "config": arguments})
    except (TypeError, ValueError) as error:
        raise _unsupported_option(name, class_name, key, kind, str(error)) from None


def _constructor_arguments(cls: type) -> set[str]:
    """Every keyword a seqlab class's constructor takes (for recurrent layers, their cell's too)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass in (nn.Module, object):
            break
        if "__init__" in vars(klass):
            parameters = inspect.signature(klass.__init__).parameters.values()
            names |= {p.name for p in parameters
                      if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    cell_class = getattr(cls, "cell_class", None)
    if cell_class is not None:
        names |= _constructor_arguments(cell_class)
    return names


# ============================================================================ the graph model
# Layers Keras runs without the mask of their input (seqlab's twin honours it): the graph drops the mask.
_UNMASKED_IN_KERAS = (seqlab_layers.GlobalMaxPooling1D,)

def _not_equal(x, y):
    return torch.ne(x, y)


def _cast(x, dtype="float32"):
    return x.to(getattr(torch, dtype))


_OPERATIONS: dict[str, Callable[..., torch.Tensor]] = {
    # The tensor operations Keras 3 records in functional configs, mostly to compute masks.
    "NotEqual": _not_equal,
    "Equal": torch.eq,
    "ConvertToTensor": lambda x, **_: x,
    "Cast": _cast,
    "LogicalAnd": torch.logical_and,
    "LogicalOr": torch.logical_or,
    "LogicalNot": torch.logical_not,
}


@register_serializable(name="KerasGraph")
class KerasGraph(Layer, Model):
    """A Keras functional graph replayed on seqlab layers: inputs → calls of layers → outputs.

    `nodes` are the calls in order, `{"layer": name, "index": call, "args": [...],
    "kwargs": {...}}`, with tensors written `{"tensor": [layer, call, output]}`
    (Keras' `keras_history`); a few Keras tensor operations (`NotEqual` for
    masks, ...) appear as nodes with an `"operation"`. Masks travel with the
    tensors as between seqlab layers (`Embedding(mask_zero=True)` onwards).
    `forward(x)` takes one tensor, or a list in the order of `inputs`, and returns
    one tensor or a list.

        >>> model = from_keras("attention_classifier.keras")     # a KerasGraph
        >>> model(ids).shape
        torch.Size([2, 3])
    """

    supports_masking = True

    def __init__(self, layers: list[Layer], nodes: list[dict[str, Any]], inputs: list[list],
                 outputs: list[list], name: str = "functional", **kwargs):
        super().__init__(name=name, **kwargs)
        self.layers = nn.ModuleList(layers)
        self.nodes, self.inputs, self.outputs = nodes, [list(r) for r in inputs], [list(r) for r in outputs]
        self._by_name = {layer.name: layer for layer in layers}
        for node in nodes:
            if "operation" in node and node["operation"] not in _OPERATIONS:
                raise UnsupportedKerasError(
                    f"The Keras graph applies the operation {node['operation']} ('{node['layer']}'), which seqlab "
                    f"does not replay (it replays {', '.join(sorted(_OPERATIONS))}). Express it with layers.")
            if "operation" not in node and node["layer"] not in self._by_name:
                raise KerasImportError(f"The Keras graph calls layer '{node['layer']}', which its config lacks.")
        self.input_shapes = [tuple(self._input_layer(ref).batch_input_shape) for ref in self.inputs]
        self.build(self.input_shapes)

    def _input_layer(self, ref: list) -> InputLayer:
        layer = self._by_name.get(ref[0])
        if not isinstance(layer, InputLayer):
            raise KerasImportError(f"The Keras graph's input '{ref[0]}' is not an InputLayer.")
        return layer

    def input_is_ids(self, index: int) -> bool:
        """Whether input `index` holds token ids (an int dtype, or an Embedding reads it)."""
        layer = self._input_layer(self.inputs[index])
        if str(layer.input_dtype or "").startswith(("int", "uint")):
            return True
        ref = self.inputs[index]
        readers = [self._by_name.get(n["layer"]) for n in self.nodes
                   if tuple(ref) in set(_references(n["args"]))]
        return any(isinstance(reader, seqlab_layers.Embedding) for reader in readers)

    # ----------------------------------------------------------------- building
    def build(self, input_shape: Any = None) -> None:
        """Build every layer by following the graph with shapes (None = unknown)."""
        shapes = {tuple(ref): tuple(shape) for ref, shape in zip(self.inputs, input_shape or self.input_shapes)}
        for node in self.nodes:
            args, kwargs = _resolve(node["args"], shapes), _resolve(node["kwargs"], shapes)
            if "operation" in node:
                results = [args[0]]
            else:
                layer = self._by_name[node["layer"]]
                build_shape = self._build_shape(layer, args, kwargs)
                if not layer.built:
                    self.build_sublayer(layer, build_shape)
                results = layer.compute_output_shape(build_shape)
                if kwargs.get("return_attention_scores"):
                    results = [results, None]
                results = results if isinstance(results, list) else [results]
            for index, shape in enumerate(results):
                shapes[(node["layer"], node["index"], index)] = shape
        self.built = True

    @staticmethod
    def _build_shape(layer: Layer, args: list, kwargs: dict) -> Any:
        if isinstance(layer, MultiHeadAttention):
            query = args[0]
            value = args[1] if len(args) > 1 else kwargs.get("value", query)
            key = args[2] if len(args) > 2 else kwargs.get("key")
            return [query, value] + ([key] if key is not None else [])
        return args[0]

    # ------------------------------------------------------------------ calling
    def forward(self, inputs: Any, mask: Any = None, training: bool | None = None) -> Any:
        tensors = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if len(tensors) != len(self.inputs):
            raise ValueError(f"{self.name} takes {len(self.inputs)} input(s) "
                             f"({', '.join(r[0] for r in self.inputs)}), got {len(tensors)}.")
        values: dict[tuple, Any] = {}
        for ref, tensor in zip(self.inputs, tensors):
            values[tuple(ref)] = self._by_name[ref[0]](tensor)
        for node in self.nodes:
            args, kwargs = _resolve(node["args"], values), _resolve(node["kwargs"], values)
            if "operation" in node:
                result = _OPERATIONS[node["operation"]](*args, **{**node.get("config", {}), **kwargs})
            else:
                layer = self._by_name[node["layer"]]
                if layer._forward_takes_training:
                    kwargs.setdefault("training", training)
                if isinstance(layer, _UNMASKED_IN_KERAS):
                    kwargs.pop("mask", None)
                    args = [arg.view_as(arg) if isinstance(arg, torch.Tensor) else arg for arg in args]
                result = layer(*args, **kwargs)
            for index, tensor in enumerate(result if isinstance(result, (list, tuple)) else [result]):
                values[(node["layer"], node["index"], index)] = tensor
        outputs = [values[tuple(ref)] for ref in self.outputs]
        return outputs[0] if len(outputs) == 1 else outputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return None

    # ------------------------------------------------------------------ configs
    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "layers": [serialize(layer) for layer in self.layers], "nodes": self.nodes,
                "inputs": self.inputs, "outputs": self.outputs}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "KerasGraph":
        return cls([deserialize(spec) for spec in config["layers"]], config["nodes"], config["inputs"],
                   config["outputs"], name=config.get("name", "functional"))


def _resolve(value: Any, values: dict[tuple, Any]) -> Any:
    if isinstance(value, dict):
        if "tensor" in value and len(value) == 1:
            return values[tuple(value["tensor"])]
        return {key: _resolve(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, values) for item in value]
    return value


# ============================================================================ weights
def _keras_order(layers: list[Layer]) -> list[tuple[str, str]]:
    """(name, class) of `layers` as a Keras container lists them (InputLayers have no weights)."""
    return [(layer.name, type(layer).__name__) for layer in layers if not isinstance(layer, InputLayer)]


def _keras3_paths(keras_layers: list[tuple[str, str]]) -> dict[str, str]:
    """Keras 3 stores layer i under `layers/<snake_case(class)>`, `_1`, `_2`... for repeats (not by name)."""
    used: dict[str, int] = {}
    paths = {}
    for name, class_name in keras_layers:
        base = _snake_case(class_name)
        if base in used:
            used[base] += 1
            paths[name] = f"layers/{base}_{used[base]}"
        else:
            used[base] = 0
            paths[name] = f"layers/{base}"
    return paths


def _snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras3_sublayers(layer: Layer) -> list[str]:
    """Where a Keras 3 layer keeps its variables, in `get_weights()` order, relative to its group."""
    if isinstance(layer, Bidirectional):
        return [f"{side}/{sub}".rstrip("/") for side in ("forward_layer", "backward_layer")
                for sub in _keras3_sublayers(layer.forward_layer)]
    if isinstance(layer, RNN):
        return ["cell"]
    if isinstance(layer, TimeDistributed):
        return [f"layer/{sub}".rstrip("/") for sub in _keras3_sublayers(layer.layer)]
    if isinstance(layer, MultiHeadAttention):
        return ["query_dense", "key_dense", "value_dense", "output_dense"]
    return [""]


def _keras3_pairs(layers: list[Layer], keras_layers: list[tuple[str, str]], root, source: Path) -> list[tuple]:
    """(layer, arrays, where) for every layer with weights, from a Keras 3 weights file."""
    h5py = _h5py()

    by_name = {layer.name: layer for layer in layers}
    paths = _keras3_paths(keras_layers)
    pairs, used = [], set()
    for name, path in paths.items():
        layer = by_name.get(name)
        if layer is None or not layer.weights:
            continue
        group = root.get(path)
        if not isinstance(group, h5py.Group):
            raise KerasImportError(
                f"{source} has no weights for layer '{name}' ({type(layer).__name__}): it lacks the group "
                f"'{path}'. The file was saved from a model with other layers; its groups: "
                f"{sorted(root['layers']) if 'layers' in root else []}.")
        arrays = []
        for sub in _keras3_sublayers(layer):
            variables = (group[sub] if sub else group).get("vars")
            count = len(variables) if variables is not None else 0
            arrays += [np.asarray(variables[str(i)]) for i in range(count)]
        stored = _count_datasets(group)
        if stored != len(arrays):
            raise KerasImportError(
                f"{source}: layer '{name}' ({type(layer).__name__}) has {stored} weight arrays under '{path}', "
                f"of which seqlab reads {len(arrays)}; the Keras layer has variables seqlab's does not.")
        pairs.append((layer, arrays, path))
        used.add(path)
    extra = [f"layers/{key}" for key in (root["layers"] if "layers" in root else [])
             if f"layers/{key}" not in used and _count_datasets(root["layers"][key])]
    if extra:
        raise KerasImportError(
            f"{source} holds weights under {extra} that no layer of the model takes (the model's layers with "
            f"weights: {[(l.name, type(l).__name__) for l in layers if l.weights]}). Was it saved from another "
            "architecture?")
    return pairs


def _count_datasets(group) -> int:
    h5py = _h5py()

    count = 0

    def visit(_, item):
        nonlocal count
        count += isinstance(item, h5py.Dataset)

    group.visititems(visit)
    return count


def _legacy_layer_names(group) -> list[str]:
    return [_text(name) for name in group.attrs["layer_names"]]


def _legacy_arrays(group, name: str) -> list[np.ndarray]:
    layer_group = group[name]
    names = [_text(n) for n in layer_group.attrs.get("weight_names", [])]
    return [np.asarray(layer_group[n]) for n in names]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _legacy_pairs_by_name(layers: list[Layer], group, source: Path) -> list[tuple]:
    by_name = {layer.name: layer for layer in layers}
    pairs, found = [], set()
    for name in _legacy_layer_names(group):
        arrays = _legacy_arrays(group, name)
        if not arrays:
            continue
        if name not in by_name:
            raise KerasImportError(f"{source} holds weights for layer '{name}', which the model config lacks; "
                                   "the file is inconsistent.")
        pairs.append((by_name[name], arrays, f"model_weights/{name}"))
        found.add(name)
    missing = [layer.name for layer in layers if layer.weights and layer.name not in found]
    if missing:
        raise KerasImportError(f"{source} has no weights for layers {missing}; the file is incomplete.")
    return pairs


def _legacy_pairs_by_order(layers: list[Layer], group, source: Path) -> list[tuple]:
    stored = [(name, arrays) for name in _legacy_layer_names(group) if (arrays := _legacy_arrays(group, name))]
    weighted = [layer for layer in layers if layer.weights]
    if len(stored) != len(weighted):
        raise KerasImportError(
            f"{source} holds weights for {len(stored)} layers ({[name for name, _ in stored]}) but the model has "
            f"{len(weighted)} layers with weights ({[layer.name for layer in weighted]}). Build the seqlab model "
            "with the same layers, in the same order, as the Keras model.")
    return [(layer, arrays, name) for layer, (name, arrays) in zip(weighted, stored)]


def _assign(pairs: list[tuple[Layer, list[np.ndarray], str]], source: Path) -> None:
    """Check every array against its weight, then assign them all (nothing is assigned if one is wrong)."""
    for layer, arrays, where in pairs:
        weights, paths = layer.weights, layer.weight_paths()
        if len(arrays) != len(weights):
            raise KerasImportError(
                f"{source}: layer '{layer.name}' ({type(layer).__name__}) has {len(arrays)} weight arrays at "
                f"'{where}', but the seqlab layer has {len(weights)}: "
                f"{', '.join(f'{p} {tuple(w.shape)}' for p, w in zip(paths, weights))}. "
                "The layer was configured differently (use_bias, scale, ...) when it was saved.")
        for path, weight, array in zip(paths, weights, arrays):
            if tuple(array.shape) != tuple(weight.shape):
                raise KerasImportError(
                    f"{source}: weight '{path}' of layer '{layer.name}' has shape {tuple(array.shape)} in the "
                    f"file, but the layer expects {tuple(weight.shape)}. The file was saved from a model with "
                    "other sizes (units, vocabulary, features); build the seqlab model with the same sizes.")
            if not np.issubdtype(array.dtype, np.floating):
                raise KerasImportError(f"{source}: weight '{path}' of layer '{layer.name}' holds {array.dtype} "
                                       "values, not floats; the file is corrupt.")
    for layer, arrays, _ in pairs:
        layer.set_weights(arrays)
