"""Layer configs to and from JSON-ready dicts: `{"module", "class_name", "config"}`.

The layer side of the one registry (`seqlab.serialization`): every `Layer`
subclass, seqlab's or a user's, registers itself when defined, so
`deserialize` rebuilds any layer whose class is imported.

    >>> config = serialize(LSTM(8, return_sequences=True))
    >>> deserialize(config).return_sequences
    True
"""

from __future__ import annotations

from typing import Any

from seqlab import serialization
from seqlab.layers.base import Layer


def serialize(layer: Layer) -> dict[str, Any]:
    """`{"module", "class_name", "config"}` of `layer` (its weights are saved apart)."""
    return serialization.serialize(layer)


def deserialize(config: dict[str, Any]) -> Layer:
    """Re-create a layer (without weights) from `serialize`'s output."""
    return serialization.deserialize(config, expected=Layer, what="layer")
