"""Layer configs to and from JSON-ready dicts: `{"class_name": ..., "config": ...}`.

    >>> config = serialize(LSTM(8, return_sequences=True))
    >>> deserialize(config).return_sequences
    True
"""

from __future__ import annotations

from typing import Any

from seqlab.layers.base import Layer


def _registry() -> dict[str, type[Layer]]:
    from seqlab import layers

    return {name: value for name, value in vars(layers).items()
            if isinstance(value, type) and issubclass(value, Layer)}


def serialize(layer: Layer) -> dict[str, Any]:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config: dict[str, Any]) -> Layer:
    """Re-create a layer (without weights) from `serialize`'s output."""
    registry = _registry()
    class_name = config.get("class_name") if isinstance(config, dict) else None
    if class_name not in registry:
        raise ValueError(
            f"Cannot re-create layer {class_name!r}: it is not a seqlab layer "
            f"(known: {', '.join(sorted(registry))})."
        )
    return registry[class_name].from_config(dict(config.get("config", {})))
