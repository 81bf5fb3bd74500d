"""The character LM's model: Embedding → recurrent layers (or causal transformer blocks) → Dense logits.

    Embedding(V, e) → [LSTM|GRU|SimpleRNN](u, return_sequences=True) (× layers, Dropout after each) → Dense(V)
    ids (batch, time) → logits (batch, time, V),  loss = mean −log softmax(logits)[next character]

The vocabulary travels with the saved model as its tokenizer
(`CharVocabulary`, registered under that name: saved files refer to it).

    >>> model = build_model(82, Settings())      # the tutorial's model over 80 characters
    >>> model.count_params()
    1637970
"""

from __future__ import annotations

import json
from typing import Any

from seqlab import layers
from seqlab.apps.charlm.settings import CELLS, Settings
from seqlab.data.vocabulary import Vocabulary
from seqlab.model import Sequential
from seqlab.serialization import register_serializable
from seqlab.training import Adam, SparseCategoricalCrossentropy

__all__ = ["CharVocabulary", "build_model", "compile_model"]


@register_serializable(name="CharVocabulary")
class CharVocabulary:
    """A character `Vocabulary` as a model's config.json carries it (`model.tokenizer`).

    Saving a model with `tokenizer=CharVocabulary(vocabulary)` stores the
    characters (and their counts) so that the model directory alone is enough
    to generate: `load_model(dir).tokenizer.vocabulary`.

        >>> vocabulary = Vocabulary.build(["abca"], tokenizer=CharTokenizer())
        >>> CharVocabulary.from_config(CharVocabulary(vocabulary).get_config()).vocabulary == vocabulary
        True
    """

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary

    def get_config(self) -> dict[str, Any]:
        return {"vocabulary": json.loads(self.vocabulary.to_json())}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "CharVocabulary":
        return cls(Vocabulary.from_json(json.dumps(config["vocabulary"])))


def build_model(vocabulary_size: int, settings: Settings) -> Sequential:
    """Embedding → recurrent layer(s) returning sequences (Dropout after each when set) → Dense logits;
    with `arch="transformer"`, Embedding → positions → causal blocks → LayerNorm → Dense logits.

        >>> model = build_model(82, Settings())      # the tutorial's model over 80 characters
        >>> model.count_params()
        1637970
    """
    stack: list[layers.Layer] = [layers.Embedding(vocabulary_size, settings.embedding_dim)]
    if settings.arch == "transformer":
        stack += layers.transformer_stack(settings.embedding_dim, settings.heads, settings.units,
                                          num_blocks=settings.layers, dropout=settings.dropout,
                                          max_len=settings.seq_len, causal=True, norm_first=True)
    else:
        for _ in range(settings.layers):
            stack.append(CELLS[settings.cell](settings.units, return_sequences=True, stateful=settings.stateful))
            if settings.dropout:
                stack.append(layers.Dropout(settings.dropout))
    stack.append(layers.Dense(vocabulary_size))
    model = Sequential(stack, name=f"charlm_{'transformer' if settings.arch == 'transformer' else settings.cell}")
    model.build((None, None))
    return model


def compile_model(model: Sequential, settings: Settings) -> None:
    """Adam (optionally with global gradient-norm clipping), cross-entropy from logits, bits per character; CUDA when available."""
    optimizer = Adam(learning_rate=settings.lr, global_clipnorm=settings.clip)
    model.compile(optimizer, SparseCategoricalCrossentropy(from_logits=True), metrics=["bpc"])


