"""Saving and loading models and checkpoints: JSON + safetensors, written atomically.

A model directory holds

    config.json          format, class name and `get_config()`, compile settings,
                         tokenizer, seqlab and torch versions
    model.safetensors    the weights (`state_dict()`)

and a checkpoint adds the training state (optimizer, schedule, epoch and step,
history, callback and RNG states) as

    training_state.json          the nested structure, tensors replaced by references
    training_state.safetensors   those tensors

Nothing is pickled. Every save writes a complete new directory beside the
target (`.NAME.saving-PID-` plus a random suffix), fsyncs it and swaps it in with one rename,
so a crash or Ctrl-C mid-save leaves the previous version intact.

The model and tokenizer are stored as specs of the one registry
(`seqlab.serialization`): `{"module", "class_name", "config"}`. Decorate a
`Model` subclass (with `get_config()` and classmethod `from_config(config)`)
with `@register_serializable`; layers, losses and metrics register themselves.
Directories written before specs recorded their module (format 1) still load.

    >>> model.save("runs/sentiment")                  # or save_model(model, "runs/sentiment")
    >>> same = load_model("runs/sentiment")
    >>> np.array_equal(same.predict(x), model.predict(x))
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from seqlab import serialization
from seqlab.files import (OwnershipError, backup_path, check_writable_directory, owned_directory, write_atomically,
                          write_new_file)
from seqlab.serialization import register_serializable
from seqlab.version import __version__

__all__ = [
    "ModelDirectoryError",
    "ModelOwnershipError",
    "check_model_directory_writable",
    "decode_state",
    "encode_state",
    "is_checkpoint",
    "load_model",
    "load_training_state",
    "load_weights",
    "read_weights",
    "read_config",
    "register_serializable",
    "save_checkpoint",
    "save_model",
    "write_atomically",
]

FORMAT = "seqlab.model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "training_state.json"
STATE_TENSORS_FILE = "training_state.safetensors"
# The names seqlab owns in a model directory: a save replaces these and keeps every other entry.
OWNED_FILES = (CONFIG_FILE, WEIGHTS_FILE, STATE_FILE, STATE_TENSORS_FILE)

# Format 1 wrote the model's and the tokenizer's spec without their module. These are the seqlab
# classes it could have saved there, with the module that defines (or, for the apps' packages,
# imports) them today; a user's class of format 1 is found by name once the user has imported it.
_FORMAT1_MODULES = {
    "Sequential": "seqlab.model",
    "KerasGraph": "seqlab.interop.keras_import",
    "Translator": "seqlab.apps.translate",
    "CharVocabulary": "seqlab.apps.charlm",
    "SentimentTextEncoder": "seqlab.apps.sentiment",
}


class ModelDirectoryError(ValueError):
    """A model or checkpoint directory is missing, incomplete or of an unknown format."""


class ModelOwnershipError(ModelDirectoryError, OwnershipError):
    """A save was asked to write over a file or a directory seqlab did not write."""


def deserialize_object(spec: dict[str, Any], what: str) -> Any:
    """Rebuild a model or tokenizer from its spec in config.json (of any format this seqlab reads)."""
    if isinstance(spec, dict) and "module" not in spec and spec.get("class_name") in _FORMAT1_MODULES:
        spec = {**spec, "module": _FORMAT1_MODULES[spec["class_name"]]}
    try:
        return serialization.deserialize(spec, what=what)
    except serialization.SerializationError as error:
        raise ModelDirectoryError(str(error)) from None


# ------------------------------------------------------------------- save / load
def save_model(model: torch.nn.Module, directory: str | os.PathLike, *, tokenizer: Any = None,
               training_state: dict[str, Any] | None = None) -> Path:
    """Write `model` (config and weights, plus `training_state` for a checkpoint) to `directory`.

    `tokenizer` (or `model.tokenizer`) is stored in config.json when it is a
    registered class. seqlab's files are replaced in one atomic step
    (`seqlab.files.owned_directory`); other files in the directory stay. A path
    that is a file, or a directory of other files that is no model directory,
    is refused (`OwnershipError`). config.json records the SHA-256 of each
    file beside it, checked when they are read.
    """
    directory = check_model_directory_writable(directory)
    files = {WEIGHTS_FILE: safetensors.torch.save(_cpu_copies(model.state_dict()))}
    if training_state is not None:
        skeleton, tensors = encode_state(training_state)
        files[STATE_FILE] = _json_bytes(skeleton)
        files[STATE_TENSORS_FILE] = safetensors.torch.save(tensors)
    config = _model_config(model, tokenizer if tokenizer is not None else getattr(model, "tokenizer", None))
    config["sha256"] = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    with owned_directory(directory, OWNED_FILES) as staging:
        for name, data in files.items():
            write_new_file(staging / name, data)
        _write_json(staging / CONFIG_FILE, config)
    return directory


def check_model_directory_writable(directory: str | os.PathLike) -> Path:
    """`directory` if a model may be saved there (new, empty, or a seqlab model directory), else OwnershipError.

    Call it before training, so a run is not thrown away at its end.
    """
    try:
        return check_writable_directory(directory, _is_model_directory, "a model", OWNED_FILES)
    except OwnershipError as error:
        raise ModelOwnershipError(str(error)) from None


def _is_model_directory(directory: Path) -> bool:
    try:
        return json.loads((directory / CONFIG_FILE).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def save_checkpoint(model: torch.nn.Module, directory: str | os.PathLike,
                    training_state: dict[str, Any]) -> Path:
    """`save_model` with the training state that `fit(..., resume_from=directory)` reads."""
    return save_model(model, directory, training_state=training_state)


def load_model(directory: str | os.PathLike, *, compile: bool = True) -> torch.nn.Module:
    """Rebuild the model saved in `directory` (on CPU), load its weights, re-compile it if it was.

        >>> model = load_model("runs/sentiment")
    """
    directory = _existing_model_directory(directory)
    config = read_config(directory)
    model = deserialize_object(config["model"], "model")
    load_weights(model, directory)
    if config.get("tokenizer") is not None:
        model.tokenizer = deserialize_object(config["tokenizer"], "tokenizer")
    if compile and config.get("compile_config") is not None and hasattr(model, "compile_from_config"):
        model.compile_from_config(config["compile_config"])
    return model


def load_weights(model: torch.nn.Module, directory: str | os.PathLike) -> None:
    """Load `directory`'s model.safetensors into `model`; every tensor must match by name and shape."""
    directory = _existing_model_directory(directory)
    weights = read_weights(directory)
    model_state = model.state_dict()
    missing = sorted(set(model_state) - set(weights))
    unexpected = sorted(set(weights) - set(model_state))
    mismatched = [f"{k}: saved {tuple(weights[k].shape)}, model {tuple(model_state[k].shape)}"
                  for k in model_state if k in weights and weights[k].shape != model_state[k].shape]
    if missing or unexpected or mismatched:
        raise ModelDirectoryError(
            f"The weights in {directory / WEIGHTS_FILE} do not fit this {type(model).__name__}: "
            f"missing {missing}, unexpected {unexpected}, shape mismatches {mismatched}. "
            "Build the model with the saved configuration (load_model does) before loading."
        )
    model.load_state_dict(weights)


def read_weights(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of `directory`'s model.safetensors, checked: its checksum, its format, finite values."""
    directory = _existing_model_directory(directory)
    weights = _read_tensors(directory, WEIGHTS_FILE)
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelDirectoryError(
                f"{directory / WEIGHTS_FILE} holds {bad:,} NaN or infinite values in {name!r}: the training "
                "that wrote it diverged. Load an earlier checkpoint, or train again with a lower learning rate.")
    return weights


def _read_tensors(directory: Path, name: str) -> dict[str, torch.Tensor]:
    data = _read_checked(directory, name)
    try:
        return safetensors.torch.load(data)
    except Exception as error:  # safetensors raises its own SafetensorError for a damaged file
        raise ModelDirectoryError(f"{directory / name} is damaged ({error}); copy the directory again, or "
                                  "save the model again.") from None


def _read_checked(directory: Path, name: str) -> bytes:
    """The bytes of `directory/name`, checked against the SHA-256 config.json records (if it does)."""
    data = _required_file(directory, name).read_bytes()
    expected = read_config(directory).get("sha256", {}).get(name)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ModelDirectoryError(
            f"{directory / name} does not match the checksum config.json records for it: the file was changed "
            "or damaged after seqlab saved it. Copy the directory again from where it came, or save it again.")
    return data


def load_training_state(directory: str | os.PathLike) -> dict[str, Any]:
    """The training state a checkpoint holds (see `save_checkpoint`)."""
    directory = _existing_model_directory(directory)
    if not is_checkpoint(directory):
        raise ModelDirectoryError(
            f"{directory} is a saved model, not a checkpoint: it has no {STATE_FILE}. "
            "Resume from a directory written by ModelCheckpoint (or save_checkpoint)."
        )
    skeleton = json.loads(_read_checked(directory, STATE_FILE))
    tensors = _read_tensors(directory, STATE_TENSORS_FILE)
    return decode_state(skeleton, tensors)


def is_checkpoint(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds a training state beside the model."""
    return (Path(directory) / STATE_FILE).is_file()


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The validated config.json of a model directory."""
    directory = _existing_model_directory(directory)
    path = _required_file(directory, CONFIG_FILE)
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ModelDirectoryError(f"{path} is not valid JSON ({error}); the file is corrupt.") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ModelDirectoryError(
            f"{path} is not a seqlab model config: format is {found!r}, expected {FORMAT!r}. "
            "Load directories written by model.save() or ModelCheckpoint."
        )
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ModelDirectoryError(
            f"{path} has format version {config['format_version']}, newer than this seqlab reads "
            f"({FORMAT_VERSION}). Upgrade seqlab to load it."
        )
    return config


def _model_config(model: torch.nn.Module, tokenizer: Any) -> dict[str, Any]:
    get_compile_config = getattr(model, "get_compile_config", None)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "seqlab_version": __version__,
        "torch_version": torch.__version__,
        "model": serialization.serialize(model),
        "compile_config": get_compile_config() if get_compile_config else None,
        "tokenizer": serialization.serialize(tokenizer) if tokenizer is not None else None,
    }


def _cpu_copies(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Cloned so that tied weights (shared storage), which safetensors refuses, save as two tensors.
    return {name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in state.items()}


def _existing_model_directory(directory: str | os.PathLike) -> Path:
    directory = Path(directory)
    if directory.is_dir():
        return directory
    backup = backup_path(directory)
    if backup.is_dir():  # a save swapped out the old version and stopped before renaming the new one in
        warnings.warn(f"{directory} is missing but an interrupted save left {backup}; loading that.",
                      stacklevel=3)
        return backup
    raise ModelDirectoryError(
        f"No model directory at {directory}. Expected a directory written by model.save() "
        f"or ModelCheckpoint, holding {CONFIG_FILE} and {WEIGHTS_FILE}."
    )


def _required_file(directory: Path, name: str) -> Path:
    path = directory / name
    if path.is_file():
        return path
    if name == CONFIG_FILE and (directory / "model" / CONFIG_FILE).is_file():
        raise ModelDirectoryError(f"{directory} is a training run's output directory, not a model directory; "
                                  f"its model is in {directory / 'model'}: give that.")
    present = sorted(p.name for p in directory.iterdir())
    raise ModelDirectoryError(
        f"{directory} is missing {name} (it has {present}). A seqlab model directory holds "
        f"{CONFIG_FILE} and {WEIGHTS_FILE} (checkpoints also {STATE_FILE} and "
        f"{STATE_TENSORS_FILE}); was it copied only in part? Copy the whole directory again."
    )


def _write_json(path: Path, value: Any) -> None:
    write_new_file(path, _json_bytes(value))


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


# ----------------------------------------------------------- nested state codec
def encode_state(state: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested structure into JSON (tensors replaced by `{"__tensor__": key}`) and tensors.

    Handles dicts (any keys), lists, tuples, tensors, NumPy arrays and JSON scalars;
    `decode_state` inverts it exactly.
    """
    tensors: dict[str, torch.Tensor] = {}

    def encode(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            tensors[path] = value.detach().to("cpu", copy=True).contiguous()
            return {"__tensor__": path}
        if isinstance(value, np.ndarray):
            tensors[path] = torch.from_numpy(value.astype(np.int64) if value.dtype.kind == "u" else value.copy())
            return {"__ndarray__": path, "dtype": str(value.dtype)}
        if isinstance(value, tuple):
            return {"__tuple__": [encode(v, f"{path}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [encode(v, f"{path}.{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: encode(v, f"{path}.{k}") for k, v in value.items()}
            return {"__items__": [[encode(k, f"{path}.k{i}"), encode(v, f"{path}.{i}")]
                                  for i, (k, v) in enumerate(value.items())]}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (np.integer, np.floating)):
            return value.item()
        raise TypeError(f"Cannot store {type(value).__name__} at {path or 'the top'} in a checkpoint: "
                        "only tensors, arrays, numbers, strings, lists, tuples and dicts.")

    return encode(state, "state"), tensors


def decode_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Invert `encode_state`."""
    def decode(value: Any) -> Any:
        if isinstance(value, list):
            return [decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__ndarray__" in value:
            return tensors[value["__ndarray__"]].numpy().astype(value["dtype"])
        if "__tuple__" in value:
            return tuple(decode(v) for v in value["__tuple__"])
        if "__items__" in value:
            return {decode(k): decode(v) for k, v in value["__items__"]}
        return {k: decode(v) for k, v in value.items()}

    return decode(skeleton)

