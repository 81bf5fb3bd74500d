"""Sentiment classification: train a recurrent classifier on labeled texts, evaluate it, predict.

The model is the tutorial's: token ids `(batch, time)` → `Embedding` →
(Bidirectional) SimpleRNN / LSTM / GRU → `Dense` → `Dense(1, sigmoid)`, the
probability that a text is positive, trained with binary cross-entropy:

    p(positive | text) = σ(w · RNN(E[ids]) + b),    label = positive if p > 0.5

Variants: pooling over time instead of the last output, and with
`layers=0` no recurrent layer at all (`ngrams=2` then gives fastText's
masked mean of word and bigram embeddings). `arch="transformer"` replaces
the recurrent layers with transformer blocks, as in the Keras
text-classification example (positions added to the embeddings, multi-head
self-attention over the text, then average pooling over time):

    p(positive | text) = σ(w · mean_t TransformerBlock^layers(E[ids] + P)_t + b)

Data: IMDb (`split="official"` or the tutorial's `"book"`), NSMC (Korean), or
any CSV/TSV with a text and a two-valued label column. Presets name recipes:
`book-bilstm` and `book-bisimplernn-100` are the tutorial's exactly (case-
sensitive words, one fixed batch order); `best` is the best measured recipe
for a small CPU (see docs/results/sentiment.md); `transformer` is the Keras
example's transformer classifier.
A saved model directory carries everything needed to read raw text again:
tokenizer, vocabulary, `max_len`, label names (config.json, "tokenizer").

    >>> from seqlab.apps import sentiment
    >>> run = sentiment.train("imdb", preset="book-bisimplernn-100", split="book", out="runs/imdb-rnn")
    >>> sentiment.load("runs/imdb-rnn").predict(["A moving, beautifully acted film."])[0].label
    'pos'
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqlab.apps.architecture import ARCHITECTURES, check_heads
from seqlab.cli import add_command_group
from seqlab.data import (BucketBatchSampler, CharTokenizer, JamoTokenizer, KiwiTokenizer, Vocabulary,
                         WordTokenizer, pad_batch)
from seqlab.data.datasets import TextLabelSplit, load_imdb, load_nsmc, load_text_label
from seqlab.layers import (GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, GlobalAveragePooling1D,
                           GlobalMaxPooling1D, SimpleRNN, transformer_stack)
from seqlab.model import Sequential
from seqlab.saving import load_model, register_serializable
from seqlab.seeding import set_seed
from seqlab.training import Adam, Callback, EarlyStopping
from seqlab.training import distributed

__all__ = ["PRESETS", "DataSource", "Evaluation", "Prediction", "Recipe", "SentimentClassifier",
           "SentimentDataError", "TextEncoder", "TrainResult", "add_parser", "build_model", "evaluate",
           "load", "make_recipe", "train"]

CELLS = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}
POOLINGS = {"max": GlobalMaxPooling1D, "average": GlobalAveragePooling1D}
TOKENIZERS = {"word": lambda: WordTokenizer(lowercase=True), "word_cased": lambda: WordTokenizer(lowercase=False),
              # tfds' Tokenizer, the tutorial's: split on runs of \W, so "_" stays inside words; case and
              # Unicode forms kept as written.
              "tfds": lambda: WordTokenizer(pattern=r"\w+", normalize=None),
              "char": CharTokenizer, "jamo": JamoTokenizer, "morpheme": KiwiTokenizer}
DATA_SEED = 1337  # fixes every dataset split, so test sets stay the same whatever the training seed
NSMC_VALIDATION = 10_000
CSV_HELD_OUT = 0.1  # a CSV is cut 80 / 10 / 10 into train / validation / test
# Label values whose meaning is clear (negative first); other words need --labels NEG,POS.
KNOWN_LABEL_PAIRS = {("neg", "pos"), ("negative", "positive"), ("bad", "good"), ("false", "true"), ("no", "yes")}


class SentimentDataError(ValueError):
    """Labeled data that cannot train or score a two-class sentiment model."""


# -------------------------------------------------------------------- recipes
@dataclass
class Recipe:
    """Everything that defines a training run besides the data.

    `max_len`: keep each text's last N tokens (None: all). `ngrams`: n > 1
    adds the text's 2..n-grams of tokens as tokens of their own, after its
    tokens (for pooled, bag-of-n-grams models). `vocab_size`: the most
    frequent N training tokens, n-grams included (None: all); the vocabulary
    adds padding (0) and unknown (N+1). `layers`: 0 for no recurrent layer
    (embedding, then pooling). `pooling`: "last" (the RNN's final output),
    "max" or "average" over time (default: "last" for RNNs, "average" for
    transformers). `arch="transformer"`: `layers` transformer blocks of
    width `embedding_dim` with `heads` attention heads and a feed-forward
    layer of `units`, post-norm, dropout `dropout` inside each block;
    positions are learned when `max_len` is set, sinusoidal otherwise (the
    recurrent options `cell` and `bidirectional` do not apply). `bucket`: batches of similar lengths
    (less padding, same examples). `patience`: early stopping on validation
    accuracy, restoring the best epoch. `time_limit`: minutes; no epoch starts
    that would not end in time (judged by the slowest epoch so far).
    `shuffle=False` reads the training texts in the same order every epoch
    (the tutorial's `padded_batch` without reshuffling). The vocabulary counts
    the tokens the model reads in training: each text's last `max_len`.
    """

    arch: str = "rnn"
    cell: str = "lstm"
    bidirectional: bool = True
    layers: int = 1
    units: int = 64
    embedding_dim: int = 20
    dense_units: int = 64
    heads: int = 2
    pooling: str | None = None
    max_len: int | None = None
    ngrams: int = 1
    tokenizer: str = "word"
    vocab_size: int | None = None
    mask: bool = False
    dropout: float = 0.0
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    bucket: bool = False
    shuffle: bool = True
    patience: int | None = None
    time_limit: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pooling is None:
            self.pooling = "average" if self.arch == "transformer" else "last"
        choices = {"arch": ARCHITECTURES, "cell": CELLS, "pooling": ("last", *POOLINGS), "tokenizer": TOKENIZERS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {sorted(allowed)}, got {getattr(self, name)!r}.")
        for name in ("units", "embedding_dim", "heads", "epochs", "batch_size", "max_len", "vocab_size", "ngrams"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}.")
        if self.layers < 0 or (self.layers == 0 and self.pooling == "last"):
            raise ValueError(f"layers must be 1 or more, or 0 (no recurrent layer) with pooling 'max' or "
                             f"'average'; got layers={self.layers} with pooling={self.pooling!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if self.arch == "transformer":
            if self.layers < 1 or self.pooling == "last":
                raise ValueError(f"a transformer needs layers >= 1 (blocks) and pooling 'average' or 'max' (it "
                                 f"has no final state); got layers={self.layers}, pooling={self.pooling!r}.")
            check_heads(self.embedding_dim, self.heads)


PRESETS: dict[str, dict[str, Any]] = {
    # The tutorial: Embedding(vocab, 20) → Bidirectional(LSTM(64)) → Dense(64, relu) → Dense(1, sigmoid),
    # Adam 1e-3, batches of 32 padded to their longest review, 10 epochs, no masking. Its tokenizer
    # (tfds' Tokenizer) keeps case, and its `padded_batch` reads the training set in one fixed order.
    # With `--split book` the data are the tutorial's own split (see seqlab.data.datasets.imdb).
    "book-bilstm": dict(cell="lstm", bidirectional=True, layers=1, units=64, embedding_dim=20, dense_units=64,
                        pooling="last", max_len=None, tokenizer="tfds", vocab_size=None, mask=False,
                        dropout=0.0, epochs=10, batch_size=32, lr=1e-3, bucket=False, shuffle=False, patience=None),
    # The same with Bidirectional(SimpleRNN(64)) and each review cut to its last 100 tokens.
    "book-bisimplernn-100": dict(cell="simple_rnn", bidirectional=True, layers=1, units=64, embedding_dim=20,
                                 dense_units=64, pooling="last", max_len=100, tokenizer="tfds",
                                 vocab_size=None, mask=False, dropout=0.0, epochs=10, batch_size=32, lr=1e-3,
                                 bucket=False, shuffle=False, patience=None),
    # The best measured recipe for a 2-core CPU (docs/results/sentiment.md lists the attempts): on
    # English, the masked mean of word and word-bigram embeddings (fastText's model) beat every
    # recurrent model that trains in 30 minutes here.
    "best": dict(cell="lstm", bidirectional=True, layers=0, units=64, embedding_dim=50, dense_units=0,
                 pooling="average", max_len=None, ngrams=2, tokenizer="word", vocab_size=400_000, mask=True,
                 dropout=0.0, epochs=10, batch_size=32, lr=1e-3, bucket=True, patience=2, time_limit=28.0),
    # The Keras text-classification example's transformer (embedding 32, 2 heads, feed-forward 32, reviews cut
    # to 200 tokens, 20,000 words, Dense(20, relu), dropout 0.1), with masking, bucketing and early stopping.
    "transformer": dict(arch="transformer", layers=1, units=32, embedding_dim=32, heads=2, dense_units=20,
                        pooling="average", max_len=200, ngrams=1, tokenizer="word", vocab_size=20_000, mask=True,
                        dropout=0.1, epochs=10, batch_size=32, lr=1e-3, bucket=True, patience=2),
}
# Korean reviews are short and richly inflected: a BiLSTM reads syllables, max-pooled over time.
PRESET_OVERRIDES_FOR_KOREAN: dict[str, dict[str, Any]] = {
    "best": dict(tokenizer="char", vocab_size=None, ngrams=1, layers=1, cell="lstm", bidirectional=True, units=64,
                 embedding_dim=64, pooling="max", dropout=0.5),
}


def make_recipe(preset: str | None = None, dataset: str = "imdb", **options: Any) -> Recipe:
    """The `Recipe` of `preset` (for `dataset`), with `options` (those not None) on top.

        >>> make_recipe("book-bilstm").units
        64
        >>> make_recipe("best", dataset="nsmc").tokenizer
        'char'
    """
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
    values = dict(PRESETS.get(preset, {})) if preset else {}
    if preset and _is_korean(dataset):
        values.update(PRESET_OVERRIDES_FOR_KOREAN.get(preset, {}))
    values.update({name: value for name, value in options.items() if value is not None})
    unknown = set(values) - {f.name for f in dataclasses.fields(Recipe)}
    if unknown:
        raise TypeError(f"unknown recipe options {sorted(unknown)}; known: "
                        f"{sorted(f.name for f in dataclasses.fields(Recipe))}.")
    return Recipe(**values)


def _is_korean(dataset: str) -> bool:
    return dataset == "nsmc"


# ----------------------------------------------------------------------- data
@dataclass(frozen=True)
class DataSource:
    """Where labeled texts come from: "imdb", "nsmc" or "csv:PATH" (with its column names).

    Splits: IMDb as `load_imdb(split)` gives them; NSMC's official test set,
    its training set less a seeded validation set of 10,000; a CSV cut with a
    seeded shuffle into 80% train, 10% validation, 10% test. `labels`: the
    label values meaning negative then positive; needed unless the values
    are 0/1 or a pair such as neg/pos, negative/positive, bad/good.
    """

    dataset: str = "imdb"
    split: str = "official"
    text_column: str = "text"
    label_column: str = "label"
    labels: tuple[str, str] | None = None
    delimiter: str | None = None

    def __post_init__(self) -> None:
        if self.dataset not in ("imdb", "nsmc") and not self.dataset.startswith("csv:"):
            raise ValueError(f"unknown dataset {self.dataset!r}; use imdb, nsmc or csv:PATH "
                             "(a CSV/TSV file with a text and a label column).")
        if self.labels is not None and len(self.labels) != 2:
            raise ValueError(f"labels must name two values, negative then positive; got {list(self.labels)}.")

    @property
    def csv_path(self) -> Path | None:
        return Path(self.dataset[4:]) if self.dataset.startswith("csv:") else None

    def splits(self) -> tuple[TextLabelSplit, TextLabelSplit, TextLabelSplit]:
        """(train, validation, test), each checked to hold two-class labels."""
        if self.dataset == "imdb":
            imdb = load_imdb(split=self.split, seed=DATA_SEED if self.split == "official" else None)
            parts = (imdb.train, imdb.validation, imdb.test)
        elif self.dataset == "nsmc":
            train, test = load_nsmc("train"), load_nsmc("test")
            order = np.random.default_rng(DATA_SEED).permutation(len(train)).tolist()
            cut = len(order) - NSMC_VALIDATION
            parts = (train.subset(order[:cut], "train"), train.subset(order[cut:], "validation"), test)
        else:
            table = self.read_csv()
            order = np.random.default_rng(DATA_SEED).permutation(len(table)).tolist()
            held_out = max(1, round(len(order) * CSV_HELD_OUT))
            if len(order) < 2 * held_out + 2:
                raise SentimentDataError(f"{self.csv_path} has {len(order)} labeled rows: too few to cut into "
                                         "train, validation and test; give it at least 4 rows (hundreds to learn).")
            cut = len(order) - 2 * held_out
            parts = (table.subset(order[:cut], "train"), table.subset(order[cut:cut + held_out], "validation"),
                     table.subset(order[cut + held_out:], "test"))
        for part in parts:
            _check_two_classes(part, self.describe(), training=part is parts[0])
        return parts

    def test_split(self) -> TextLabelSplit:
        """What `evaluate` scores: the test split, or every row of a CSV."""
        if self.csv_path is None:
            return self.splits()[2]
        table = self.read_csv()
        _check_two_classes(table, self.describe(), training=False)
        return table

    def read_csv(self) -> TextLabelSplit:
        table = load_text_label(self.csv_path, text_column=self.text_column, label_column=self.label_column,
                                delimiter=self.delimiter, labels=list(self.labels) if self.labels else None)
        _check_two_classes(table, self.describe(), training=False)
        names = sorted(table.label_names.values())
        if self.labels is None and len(names) == 2 and not all(n.lstrip("-").isdigit() for n in names) \
                and tuple(n.lower() for n in names) not in KNOWN_LABEL_PAIRS:
            raise SentimentDataError(
                f"{self.describe()}: the labels are {names}; which one is positive is not clear. Pass --labels "
                f"NEG,POS (labels=(neg, pos)), e.g. --labels {names[0]},{names[1]}: negative first.")
        return table

    def describe(self) -> str:
        if self.dataset == "imdb":
            return f"IMDb ({self.split} split)"
        if self.dataset == "nsmc":
            return "NSMC"
        return f"{self.csv_path} (text column {self.text_column!r}, label column {self.label_column!r})"

    def to_config(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "labels": list(self.labels) if self.labels else None}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DataSource":
        return cls(**{**config, "labels": tuple(config["labels"]) if config.get("labels") else None})


def _check_two_classes(split: TextLabelSplit, source: str, training: bool) -> None:
    values = sorted(set(split.labels))
    if set(values) <= {0, 1} and (len(values) == 2 or not training):
        return
    names = [split.label_names.get(v, str(v)) for v in values]
    counts = {split.label_names.get(v, str(v)): n for v, n in split.label_counts().items()}
    if len(values) > 2:
        raise SentimentDataError(
            f"{source}: the label column has {len(values)} values {names} (counts {counts}), but sentiment "
            "classification needs exactly two, negative and positive. Remove or relabel the other rows, or "
            "pass --labels NEG,POS (labels=(neg, pos)) naming the two values; rows with any other value are "
            "then reported with their line numbers.")
    if len(values) == 2:
        raise SentimentDataError(
            f"{source}: the labels are {names}, not 0 and 1, so which one is positive is not clear. Pass "
            f"--labels {names[0]},{names[1]} (labels=({names[0]!r}, {names[1]!r})): negative first, then positive.")
    raise SentimentDataError(f"{source}: the training texts all have the label {names[0]!r}; training needs "
                             "examples of both negative and positive texts.")


# ------------------------------------------------------------------- encoding
@register_serializable(name="SentimentTextEncoder")
class TextEncoder:
    """Raw text → the token ids the model reads: tokenize, look up, keep the last `max_len`.

    A text without any token (empty, or only characters the tokenizer drops)
    becomes one unknown token, so every text has an answer: the model's
    answer for a text it knows nothing about. Saved with the model
    (config.json, "tokenizer"), together with the label names and the data
    source it was trained on.

        >>> encoder = TextEncoder(Vocabulary.build(["good film", "bad film"], tokenizer=WordTokenizer()), max_len=1)
        >>> encoder.encode("a good film")        # the last token only; "film" is index 1
        [1]
    """

    def __init__(self, vocabulary: Vocabulary, max_len: int | None = None,
                 label_names: Sequence[str] = ("negative", "positive"), batch_size: int = 32,
                 length_sorted: bool = True, source: dict[str, Any] | None = None, ngrams: int = 1):
        if vocabulary.tokenizer is None:
            raise ValueError("TextEncoder needs a vocabulary built with a tokenizer (Vocabulary.build(..., "
                             "tokenizer=WordTokenizer())) to read raw text.")
        self.vocabulary, self.max_len, self.ngrams = vocabulary, max_len, ngrams
        self.label_names = tuple(label_names)
        self.batch_size, self.length_sorted, self.source = batch_size, length_sorted, source

    def tokens(self, text: str) -> list[str]:
        """The tokenizer's tokens (the last `max_len`), then their 2..n-grams."""
        return kept_tokens(self.vocabulary.tokenizer(text), self.max_len, self.ngrams)

    def encode(self, text: str) -> list[int]:
        return self.vocabulary.encode(self.tokens(text)) or [self.vocabulary.unknown_index]

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def get_config(self) -> dict[str, Any]:
        return {"vocabulary": json.loads(self.vocabulary.to_json()), "max_len": self.max_len, "keep": "last",
                "label_names": list(self.label_names), "batch_size": self.batch_size,
                "length_sorted": self.length_sorted, "source": self.source, "ngrams": self.ngrams}

    @classmethod
    def build(cls, train: TextLabelSplit, recipe: Recipe, source: DataSource | None = None) -> "TextEncoder":
        """The encoder of `recipe`, with the vocabulary of the tokens it keeps of the training texts (each
        text's last `max_len`, as the tutorial counts them: a token the model never reads in training is unknown)."""
        tokenizer = TOKENIZERS[recipe.tokenizer]()
        vocabulary = Vocabulary.build((kept_tokens(tokenizer(text), recipe.max_len, recipe.ngrams)
                                       for text in train.texts), max_size=recipe.vocab_size, tokenizer=tokenizer)
        return cls(vocabulary, recipe.max_len, label_names_of(train), recipe.batch_size,
                   length_sorted=recipe.mask, source=source.to_config() if source else None, ngrams=recipe.ngrams)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TextEncoder":
        vocabulary = Vocabulary.from_json(json.dumps(config["vocabulary"]))
        return cls(vocabulary, config["max_len"], config["label_names"], config["batch_size"],
                   config["length_sorted"], config.get("source"), config.get("ngrams", 1))


def kept_tokens(tokens: list[str], max_len: int | None, ngrams: int) -> list[str]:
    """The last `max_len` of `tokens` (all with None), then their 2..`ngrams`-grams.

        >>> kept_tokens(["a", "very", "good", "film"], 2, 2)
        ['good', 'film', 'good film']
    """
    return with_ngrams(tokens[-max_len:] if max_len else tokens, ngrams)


def with_ngrams(tokens: list[str], ngrams: int) -> list[str]:
    """`tokens`, then their 2..`ngrams`-grams, each joined by spaces.

        >>> with_ngrams(["not", "bad", "at", "all"], 2)
        ['not', 'bad', 'at', 'all', 'not bad', 'bad at', 'at all']
    """
    return tokens + [" ".join(tokens[i:i + n]) for n in range(2, ngrams + 1) for i in range(len(tokens) - n + 1)]


def label_names_of(split: TextLabelSplit) -> tuple[str, str]:
    """The dataset's names for labels 0 and 1 ("neg", "pos"); "negative"/"positive" for bare numbers."""
    names = tuple(split.label_names.get(i, str(i)) for i in (0, 1))
    return ("negative", "positive") if all(n.lstrip("-").isdigit() for n in names) else names


class ReviewBatches:
    """Re-iterable batches `(ids (batch, time) LongTensor, labels (batch, 1) float)`, each padded to its longest.

    `bucket=True` groups texts of similar length (`BucketBatchSampler`);
    otherwise batches are random (training) or in the given order. Each
    iteration is the next epoch of a seeded order. `sorted_by_length=True`
    (inference) batches in length order, so almost nothing is padded.

        >>> batches = ReviewBatches([[4, 5], [6]], [1, 0], batch_size=2, shuffle=False)
        >>> next(iter(batches))[0]
        tensor([[4, 5],
                [6, 0]])
    """

    def __init__(self, sequences: Sequence[Sequence[int]], labels: Sequence[int] | None, batch_size: int,
                 shuffle: bool = True, bucket: bool = False, sorted_by_length: bool = False, seed: int = 0):
        self.sequences = sequences
        self.labels = None if labels is None else torch.tensor(labels, dtype=torch.float32)[:, None]
        lengths = [len(s) for s in sequences]
        self.sampler = BucketBatchSampler(lengths, batch_size, shuffle=shuffle, seed=seed,
                                          pool_batches=50 if bucket else 1)
        self.shuffle, self.sorted_by_length, self.epoch = shuffle, sorted_by_length, 0

    def batch_indices(self) -> list[list[int]]:
        if self.shuffle or self.sorted_by_length:
            return self.sampler.batches(self.epoch)  # unshuffled: all sorted by length
        size = self.sampler.batch_size
        return [list(range(i, min(i + size, len(self.sequences)))) for i in range(0, len(self.sequences), size)]

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        indices = self.batch_indices()
        self.epoch += 1
        for batch in indices:
            ids = pad_batch([self.sequences[i] for i in batch]).tokens
            yield ids if self.labels is None else (ids, self.labels[batch])


def batches_for_inference(encoder: TextEncoder, sequences: Sequence[Sequence[int]],
                          labels: Sequence[int] | None = None) -> ReviewBatches:
    """Masked models read length-sorted batches (the answer does not depend on padding); unmasked
    ones read batches in the given order, padded as in training (the tutorial's protocol)."""
    return ReviewBatches(sequences, labels, encoder.batch_size, shuffle=False, sorted_by_length=encoder.length_sorted)


# ---------------------------------------------------------------------- model
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


def compile_model(model: Sequential, recipe: Recipe) -> None:
    model.compile(Adam(learning_rate=recipe.lr), "binary_crossentropy", metrics=["accuracy"], device="cpu")


class TimeLimit(Callback):
    """Stop before an epoch that would end after `minutes` (judged by the slowest epoch so far)."""

    def __init__(self, minutes: float):
        self.seconds = minutes * 60.0
        self.stopped = False

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started, self.slowest, self.epoch_started = time.perf_counter(), 0.0, time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        self.slowest = max(self.slowest, now - self.epoch_started)
        if now - self.started + self.slowest > self.seconds:
            self.stopped = self.model.stop_training = True


class EpochTimes(Callback):
    """Seconds of each epoch (training and validation)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self.started)


# --------------------------------------------------------------- predictions
@dataclass
class Prediction:
    """One text's answer: `label` (a label name), `probability` of that label, `positive` = p(positive)."""

    text: str
    label: str
    probability: float
    positive: float
    tokens: int
    unknown: int

    @property
    def note(self) -> str | None:
        if self.tokens == 0:
            return "no tokens: the answer for a text the model knows nothing about"
        if self.unknown == self.tokens:
            return "only unknown tokens: the answer for a text the model knows nothing about"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "note": self.note}


@dataclass
class Evaluation:
    """Scores on labeled texts; positive is the positive class. `confusion[true][predicted]`."""

    accuracy: float
    precision: float
    recall: float
    f1: float
    confusion: list[list[int]]
    count: int
    label_names: tuple[str, str]

    @classmethod
    def of(cls, labels: Sequence[int], positive: np.ndarray, label_names: tuple[str, str]) -> "Evaluation":
        truth, guess = np.asarray(labels, dtype=bool), positive > 0.5
        tp, fp = int((truth & guess).sum()), int((~truth & guess).sum())
        fn, tn = int((truth & ~guess).sum()), int((~truth & ~guess).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls((tp + tn) / len(truth), precision, recall, f1, [[tn, fp], [fn, tp]], len(truth),
                   tuple(label_names))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def report(self) -> str:
        negative, positive = self.label_names
        width = max(len(negative), len(positive), 9)
        (tn, fp), (fn, tp) = self.confusion
        return "\n".join([
            f"accuracy  {self.accuracy:.2%}  ({self.count:,} texts)",
            f"precision {self.precision:.4f}   recall {self.recall:.4f}   F1 {self.f1:.4f}   "
            f"(positive = {positive!r})",
            "confusion matrix (rows: true label, columns: predicted)",
            f"{'':>{width}}  {negative:>{width}}  {positive:>{width}}",
            f"{negative:>{width}}  {tn:>{width},}  {fp:>{width},}",
            f"{positive:>{width}}  {fn:>{width},}  {tp:>{width},}",
        ])


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
    """The `SentimentClassifier` saved in `directory` by `train(..., out=directory)`."""
    model = load_model(directory)
    encoder = getattr(model, "tokenizer", None)
    if not isinstance(encoder, TextEncoder):
        raise ValueError(f"{directory} holds a seqlab model but not a sentiment model (its config.json has no "
                         "SentimentTextEncoder); train one with `seqlab sentiment train --out DIR`.")
    return SentimentClassifier(model, encoder)


# ------------------------------------------------------------------ training
@dataclass
class TrainResult:
    """What `train` produced: the classifier, its test scores, history and timings."""

    classifier: SentimentClassifier
    recipe: Recipe
    source: DataSource
    test: Evaluation
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    train_seconds: float
    total_seconds: float
    parameters: int
    vocabulary_size: int
    stop_reason: str
    best_epoch: int | None = None
    directory: Path | None = None

    def summary(self) -> dict[str, Any]:
        return {"recipe": dataclasses.asdict(self.recipe), "source": self.source.to_config(),
                "test": self.test.to_dict(), "history": self.history, "epoch_seconds": self.epoch_seconds,
                "epochs_run": len(self.epoch_seconds), "best_epoch": self.best_epoch,
                "train_seconds": self.train_seconds, "total_seconds": self.total_seconds,
                "parameters": self.parameters, "vocabulary_size": self.vocabulary_size,
                "stop_reason": self.stop_reason, "threads": torch.get_num_threads(),
                "torch_version": torch.__version__}

    def report(self) -> str:
        best = f", best epoch {self.best_epoch + 1} restored" if self.best_epoch is not None else ""
        return (f"Test accuracy {self.test.accuracy:.2%} on {self.test.count:,} texts of {self.source.describe()} | "
                f"{len(self.epoch_seconds)} epoch(s) ({self.stop_reason}{best}) | training "
                f"{_minutes(self.train_seconds)}, total {_minutes(self.total_seconds)} | "
                f"{self.parameters:,} parameters, vocabulary {self.vocabulary_size:,}")


def train(dataset: str | DataSource = "imdb", *, preset: str | None = None, out: str | os.PathLike | None = None,
          split: str = "official", verbose: int | str = "auto", threads: int | None = None,
          log=sys.stderr, **options: Any) -> TrainResult:
    """Train a sentiment classifier on `dataset` ("imdb", "nsmc", "csv:PATH" or a `DataSource`), test it, save it.

    `options` are `Recipe` fields (they override the preset). `threads` sets
    torch's CPU threads (1 is the fastest on a busy 2-core machine).
    """
    started = time.perf_counter()
    source = dataset if isinstance(dataset, DataSource) else DataSource(dataset, split)
    recipe = make_recipe(preset, source.dataset, **options)
    if threads is not None:
        torch.set_num_threads(threads)
    set_seed(recipe.seed)
    train_split, validation_split, test_split = source.splits()
    _say(log, f"{source.describe()}: {len(train_split):,} train, {len(validation_split):,} validation, "
              f"{len(test_split):,} test texts")
    encoder = TextEncoder.build(train_split, recipe, source)
    vocabulary = encoder.vocabulary
    train_ids, validation_ids = encoder.encode_batch(train_split.texts), encoder.encode_batch(validation_split.texts)
    model = build_model(recipe, len(vocabulary))
    compile_model(model, recipe)
    model.tokenizer = encoder
    grams = f" and their 2..{recipe.ngrams}-grams" if recipe.ngrams > 1 else ""
    _say(log, f"vocabulary {len(vocabulary):,} ({recipe.tokenizer} tokens{grams}), {model.count_params():,} parameters")
    timer = EpochTimes()
    stopper = (EarlyStopping("val_accuracy", patience=recipe.patience, restore_best_weights=True)
               if recipe.patience is not None else None)
    limit = TimeLimit(recipe.time_limit) if recipe.time_limit else None
    callbacks = [c for c in (timer, stopper, limit) if c is not None]
    fit_started = time.perf_counter()
    history = model.fit(
        ReviewBatches(train_ids, train_split.labels, recipe.batch_size, shuffle=recipe.shuffle, bucket=recipe.bucket,
                      seed=recipe.seed),
        validation_data=batches_for_inference(encoder, validation_ids, validation_split.labels),
        epochs=recipe.epochs, verbose=verbose, callbacks=callbacks, seed=recipe.seed)
    train_seconds = time.perf_counter() - fit_started
    classifier = SentimentClassifier(model, encoder)
    test = classifier.evaluate(test_split)
    epochs_run = len(timer.seconds)
    stop_reason = ("early stopping" if stopper is not None and stopper.stopped_epoch else
                   "time limit" if limit is not None and limit.stopped else
                   "all epochs" if epochs_run == recipe.epochs else "stopped")
    result = TrainResult(classifier, recipe, source, test, history.history, timer.seconds, train_seconds,
                         time.perf_counter() - started, model.count_params(), len(vocabulary), stop_reason,
                         stopper.best_epoch if stopper is not None else None)
    if out is not None:
        result.directory = save(result, out)
    return result


def save(result: TrainResult, directory: str | os.PathLike) -> Path:
    """Write the model (with its encoder) and `summary.json` (recipe, scores, history, timings).

    In a distributed run rank 0 writes and the other processes wait until it has.
    """
    directory = Path(directory)
    result.classifier.model.save(directory, tokenizer=result.classifier.encoder)
    distributed.on_main_then_wait(
        lambda: (directory / "summary.json").write_text(json.dumps(result.summary(), indent=2) + "\n"))
    return directory


def evaluate(model: str | os.PathLike | SentimentClassifier, dataset: str | DataSource | None = None,
             split: str = "official") -> Evaluation:
    """Score a saved model (or a classifier) on a dataset's test split, or every row of a CSV.

    Without `dataset`, the test split of the data it was trained on.
    """
    classifier = model if isinstance(model, SentimentClassifier) else load(model)
    if dataset is None:
        if classifier.encoder.source is None:
            raise ValueError("This model does not record the data it was trained on; pass dataset=... .")
        source = DataSource.from_config(classifier.encoder.source)
        test = source.splits()[2]
    else:
        source = dataset if isinstance(dataset, DataSource) else DataSource(dataset, split)
        test = source.test_split()
    return classifier.evaluate(test)


def _say(log, text: str) -> None:
    if log is not None:
        distributed.print_main(text, file=log, flush=True)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


# ----------------------------------------------------------------------- CLI
def add_parser(subcommands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `sentiment` with `train`, `evaluate` and `predict` to the `seqlab` command."""
    parser, commands = add_command_group(subcommands, "sentiment", dest="sentiment_command",
                                         help="sentiment classification: train, evaluate, predict",
                                         description=__doc__.split("\n\n")[0])
    _add_train(commands)
    _add_evaluate(commands)
    _add_predict(commands)
    return parser


def _add_data_options(parser: argparse.ArgumentParser, default_dataset: str | None) -> None:
    option = parser.add_argument
    option("--dataset", default=default_dataset,
           help="imdb, nsmc or csv:PATH (a CSV/TSV with a text and a two-valued label column)"
                + (f" (default {default_dataset})" if default_dataset else
                   " (default: the test split of the data the model was trained on)"))
    option("--split", choices=("official", "book"), default="official",
           help="IMDb protocol: official test set, or the tutorial's book split (default official)")
    option("--text-column", default="text", help="CSV text column (default text)")
    option("--label-column", default="label", help="CSV label column (default label)")
    option("--labels", metavar="NEG,POS", help="CSV label values meaning negative and positive, in that order")
    option("--delimiter", help="CSV delimiter (default: from the suffix, ',' for .csv, tab for .tsv/.txt)")


def _add_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train a sentiment classifier, test it and save it",
                                 description="Train, test and save a sentiment classifier. Options given "
                                             "beside --preset override it. Progress goes to stderr.")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="book-bilstm / book-bisimplernn-100: the tutorial's recipes; best: the best measured; "
                             "transformer: the Keras example's transformer")
    _add_data_options(parser, "imdb")
    option = parser.add_argument
    option("--arch", choices=ARCHITECTURES,
           help="rnn: recurrent layers; transformer: transformer blocks (--layers blocks of --embedding-dim "
                "features, --heads heads, feed-forward --units) (default rnn)")
    option("--cell", choices=sorted(CELLS), help="recurrent cell (default lstm)")
    option("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
           help="read the text in both directions (default yes)")
    option("--layers", type=int, help="stacked recurrent layers; 0: none, embedding then pooling (default 1)")
    option("--units", type=int, help="units per recurrent layer and direction, or the transformer's "
                                      "feed-forward width (default 64)")
    option("--heads", type=int, help="attention heads per transformer block (default 2)")
    option("--embedding-dim", type=int, help="embedding size (default 20)")
    option("--dense-units", type=int, help="units of the relu Dense layer before the output; 0: none (default 64)")
    option("--pooling", choices=("last", *POOLINGS),
           help="last output, or max/average over time (default last; average for transformers)")
    option("--max-len", type=int, help="keep each text's last N tokens (default: all)")
    option("--tokenizer", choices=sorted(TOKENIZERS),
           help="word (lowercased), word_cased (case kept), tfds (the tutorial's: runs of \\w, case kept), "
                "char, jamo or morpheme (Kiwi)")
    option("--vocab-size", type=int, help="keep the N most frequent training tokens (default: all)")
    option("--ngrams", type=int, help="also read each text's 2..N-grams as tokens (default 1: none)")
    option("--mask", action=argparse.BooleanOptionalAction, default=None,
           help="mask padding so it never changes a result (default no, as the tutorial)")
    option("--bucket", action=argparse.BooleanOptionalAction, default=None,
           help="batch texts of similar length together (default no)")
    option("--shuffle", action=argparse.BooleanOptionalAction, default=None,
           help="a new order of the training texts each epoch (default yes; the book presets: no, as the tutorial)")
    option("--dropout", type=float, help="dropout after the embedding and after the recurrent layers, or "
                                          "inside and after the transformer blocks (default 0)")
    option("--epochs", type=int, help="epochs (default 10)")
    option("--batch-size", type=int, help="texts per batch (default 32)")
    option("--lr", type=float, help="Adam's learning rate (default 0.001)")
    option("--patience", type=int, help="early stopping on validation accuracy, restoring the best epoch")
    option("--time-limit", type=float, metavar="MINUTES", help="start no epoch that would end after this")
    option("--seed", type=int, help="seed for weights and batch order (default 0)")
    option("--threads", type=int, help="torch CPU threads (default: torch's; 1 is fastest on a busy 2-core CPU)")
    option("--out", default="runs/sentiment", help="directory to save the model in (default runs/sentiment)")
    option("--verbose", type=int, choices=(0, 1, 2), default=None,
           help="0 silent, 1 progress bars, 2 one line per epoch (default: bars on a terminal)")
    parser.set_defaults(handler=_train_command)


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("evaluate", help="accuracy, precision, recall, F1 and confusion matrix",
                                 description="Score a saved model on a test set (a CSV: all its rows).")
    parser.add_argument("--model", required=True, help="a directory written by `seqlab sentiment train --out`")
    _add_data_options(parser, None)
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    parser.set_defaults(handler=_evaluate_command)


def _add_predict(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("predict", help="label texts: from arguments, a file or stdin (one per line)",
                                 description="Print label, probability of that label and text, one line per "
                                             "text. Without texts or --file, read stdin.")
    parser.add_argument("--model", required=True, help="a directory written by `seqlab sentiment train --out`")
    parser.add_argument("texts", nargs="*", help="texts to label")
    parser.add_argument("--file", help="a UTF-8 file with one text per line ('-' for stdin)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(handler=_predict_command)


def _source_from_args(args: argparse.Namespace) -> DataSource:
    labels = tuple(v.strip() for v in args.labels.split(",")) if args.labels else None
    return DataSource(args.dataset, args.split, args.text_column, args.label_column, labels, args.delimiter)


def _train_command(args: argparse.Namespace) -> int:
    names = {f.name for f in dataclasses.fields(Recipe)}
    options = {name: value for name, value in vars(args).items() if name in names}
    try:
        result = train(_source_from_args(args), preset=args.preset, out=args.out, threads=args.threads,
                       verbose="auto" if args.verbose is None else args.verbose, **options)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
        print(f"seqlab sentiment train: {error}", file=sys.stderr)
        return 1
    distributed.print_main(result.test.report(), file=sys.stderr)
    distributed.print_main(result.report(), file=sys.stderr)
    distributed.print_main(f"Saved {result.directory}. Predict with: seqlab sentiment predict --model "
                           f"{result.directory} \"text\"", file=sys.stderr)
    return 0


def _evaluate_command(args: argparse.Namespace) -> int:
    try:
        source = _source_from_args(args) if args.dataset else None
        scores = evaluate(args.model, source)
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"seqlab sentiment evaluate: {error}", file=sys.stderr)
        return 1
    print(json.dumps(scores.to_dict()) if args.json else scores.report())
    return 0


def _predict_command(args: argparse.Namespace) -> int:
    try:
        texts = list(args.texts) + (_read_lines(args.file) if args.file is not None or not args.texts else [])
        predictions = load(args.model).predict(texts)
    except (ValueError, OSError, ImportError) as error:
        print(f"seqlab sentiment predict: {error}", file=sys.stderr)
        return 1
    for prediction in predictions:
        if args.json:
            print(json.dumps(prediction.to_dict(), ensure_ascii=False))
        else:
            note = f"  [{prediction.note}]" if prediction.note else ""
            print(f"{prediction.label}\t{prediction.probability:.4f}\t{prediction.text}{note}")
    return 0


def _read_lines(path: str | None) -> list[str]:
    """One text per line of `path` (stdin for None or "-")."""
    with (contextlib.nullcontext(sys.stdin) if path in (None, "-") else open(path, encoding="utf-8")) as stream:
        return stream.read().splitlines()


def main(argv: list[str] | None = None) -> int:
    """`python -m seqlab.apps.sentiment ...`: the `seqlab sentiment` command on its own."""
    parser = argparse.ArgumentParser(prog="seqlab")
    add_parser(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(["sentiment", *(sys.argv[1:] if argv is None else argv)])
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
