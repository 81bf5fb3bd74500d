"""The sentiment model, and the classifier that reads raw text with it.

The model is the tutorial's: token ids `(batch, time)` → `Embedding` →
(Bidirectional) SimpleRNN / LSTM / GRU → `Dense` → `Dense(1, sigmoid)`, the
probability that a text is positive, trained with binary cross-entropy:

    p(positive | text) = σ(w · RNN(E[ids]) + b),    label = positive if p > 0.5

`SentimentClassifier` pairs a model with its `TextEncoder`: texts in,
labels and probabilities out; `load(directory)` restores one.

    >>> classifier = load("runs/imdb")
    >>> classifier.predict(["Loved it."])[0].label
    'pos'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from seqlab.apps.run_directory import resolve_model_dir
from seqlab.apps.sentiment.encoding import TextEncoder, batches_for_inference
from seqlab.apps.sentiment.evaluation import Evaluation, Prediction
from seqlab.apps.sentiment.recipe import CELLS, POOLINGS, Recipe
from seqlab.data.datasets import TextLabelSplit
from seqlab.data.vocabulary import Vocabulary
from seqlab.embeddings import load_vectors, vectors_table
from seqlab.layers import Bidirectional, Dense, Dropout, Embedding, transformer_stack
from seqlab.model import Sequential
from seqlab.saving import load_model
from seqlab.training import Adam

__all__ = ["SentimentClassifier", "build_model", "check_vectors_width", "compile_model", "load", "start_from_vectors"]


def build_model(recipe: Recipe, vocabulary_size: int) -> Sequential:
    """Embedding → body → [pooling] → [Dropout] → [Dense relu] → Dense(1, sigmoid).

    The body is `[Dropout] → (Bidirectional) RNN × layers` for `arch="rnn"`,
    and positions → `TransformerBlock × layers` for `arch="transformer"`.

        >>> model = build_model(make_recipe("book-bilstm"), vocabulary_size=1000)
        >>> model.count_params()      # 20,000 + 43,520 + 8,256 + 65
        71841
    """
    layers: list[Any] = [Embedding(vocabulary_size, recipe.embedding_dim, mask_zero=recipe.mask)]
    layers += _transformer_body(recipe) if recipe.arch == "transformer" else _recurrent_body(recipe)
    if recipe.pooling != "last":
        layers.append(POOLINGS[recipe.pooling]())
    if recipe.dropout:
        layers.append(Dropout(recipe.dropout))
    if recipe.dense_units:
        layers.append(Dense(recipe.dense_units, activation="relu"))
        if recipe.arch == "transformer" and recipe.dropout:  # the Keras example's head
            layers.append(Dropout(recipe.dropout))
    layers.append(Dense(1, activation="sigmoid"))
    model = Sequential(layers, name="sentiment")
    model.build((None, None))
    return model


def _recurrent_body(recipe: Recipe) -> list[Any]:
    layers: list[Any] = [Dropout(recipe.dropout)] if recipe.dropout else []
    for index in range(recipe.layers):
        last = index == recipe.layers - 1
        rnn = CELLS[recipe.cell](recipe.units, return_sequences=not last or recipe.pooling != "last")
        layers.append(Bidirectional(rnn) if recipe.bidirectional else rnn)
    return layers


def _transformer_body(recipe: Recipe) -> list[Any]:
    return transformer_stack(recipe.embedding_dim, recipe.heads, recipe.units, num_blocks=recipe.layers,
                             dropout=recipe.dropout, max_len=recipe.max_len)


def start_from_vectors(model: Sequential, recipe: Recipe, vocabulary: Vocabulary) -> float:
    """Fill the model's Embedding with `recipe.embeddings`' vectors (frozen with `freeze_embeddings`);
    returns the share of the vocabulary's tokens that had a vector."""
    vectors = load_vectors(recipe.embeddings)
    check_vectors_width(vectors.dim, recipe.embedding_dim)
    table, found = vectors_table(vectors, vocabulary, seed=recipe.seed)
    embedding = model.layers[0]
    embedding.set_weights([table])
    embedding.trainable = not recipe.freeze_embeddings
    return found


def check_vectors_width(width: int, embedding_dim: int | None) -> None:
    if embedding_dim is not None and embedding_dim != width:
        raise ValueError(f"--embeddings holds vectors of {width} dimensions but --embedding-dim is {embedding_dim}; "
                         f"drop --embedding-dim (the vectors set it) or give {width}.")


def compile_model(model: Sequential, recipe: Recipe) -> None:
    model.compile(Adam(learning_rate=recipe.lr), "binary_crossentropy", metrics=["accuracy"], device="cpu")


class SentimentClassifier:
    """A trained model with its `TextEncoder`: raw texts in, labels and probabilities out.

        >>> classifier = load("runs/imdb")
        >>> [p.label for p in classifier.predict(["Loved it.", "Dull and far too long."])]
        ['pos', 'neg']
    """

    def __init__(self, model: Sequential, encoder: TextEncoder):
        self.model, self.encoder = model, encoder

    @property
    def label_names(self) -> tuple[str, str]:
        return self.encoder.label_names

    def positive_probabilities(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """p(positive) for encoded texts, shape (texts,)."""
        batches = batches_for_inference(self.encoder, sequences)
        order = [i for batch in batches.batch_indices() for i in batch]
        outputs = [self.model.predict_on_batch(ids) for ids in batches]
        positive = np.empty(len(sequences), dtype=np.float64)
        positive[order] = np.concatenate(outputs)[:, 0] if outputs else []
        return positive

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return []
        vocabulary = self.encoder.vocabulary
        sequences = self.encoder.encode_batch(texts)
        positive = self.positive_probabilities(sequences)
        predictions = []
        for text, p in zip(texts, positive.tolist()):
            ids = vocabulary.encode(self.encoder.tokens(text))
            label = int(p > 0.5)
            predictions.append(Prediction(text, self.label_names[label], p if label else 1.0 - p, p, len(ids),
                                          ids.count(vocabulary.unknown_index)))
        return predictions

    def evaluate(self, split: TextLabelSplit) -> Evaluation:
        positive = self.positive_probabilities(self.encoder.encode_batch(split.texts))
        return Evaluation.of(split.labels, positive, self.label_names)


def load(directory: str | os.PathLike) -> SentimentClassifier:
    """The `SentimentClassifier` saved by `train(..., out=directory)`: in `directory/model` (or `directory` itself)."""
    model = load_model(resolve_model_dir(directory))
    encoder = getattr(model, "tokenizer", None)
    if not isinstance(encoder, TextEncoder):
        raise ValueError(f"{directory} holds a seqlab model but not a sentiment model (its config.json has no "
                         "SentimentTextEncoder); train one with `seqlab sentiment train --out DIR`.")
    return SentimentClassifier(model, encoder)


