"""What the applications share about `--arch`: the choices, and the transformer's width check.

The check runs when the settings are made, so a bad combination is reported
before any data loads (`TransformerBlock` would only say so when the model is
built).
"""

from __future__ import annotations

ARCHITECTURES = ("rnn", "transformer")


def check_heads(embedding_dim: int, heads: int) -> None:
    """Each attention head reads `embedding_dim / heads` features, so `heads` must divide `embedding_dim`."""
    if embedding_dim % heads:
        raise ValueError(f"embedding_dim={embedding_dim} must be divisible by heads={heads} "
                         f"(each head reads embedding_dim / heads features).")
