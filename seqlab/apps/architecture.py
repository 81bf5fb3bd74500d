"""What the applications share about `--arch`: the choices, the transformer's width check, inapplicable options.

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


def refuse_inapplicable(arch: str, given: set[str], only_for: dict[str, tuple[str, ...]],
                        option: str = "arch") -> None:
    """Refuse options given that mean something only for another architecture (they would be ignored).

    `only_for` maps an architecture to its own options, e.g. {"rnn": ("cell",), "transformer": ("heads",)}.
    `option` names the choice (`--arch`, or e.g. `--tokenizer` with {"subword": ("vocab_size",)}).
    """
    unused = sorted(name for other, names in only_for.items() if other != arch for name in names if name in given)
    if unused:
        flags = ", ".join("--" + name.replace("_", "-") for name in unused)
        raise ValueError(f"{flags} {'means' if len(unused) == 1 else 'mean'} nothing for --{option} {arch} and "
                         f"would be ignored: drop {'it' if len(unused) == 1 else 'them'}.")
