"""The sentiment recipe: what defines a training run besides the data, its presets, and its options.

Each `Recipe` field is written once, with its default and its help
(`setting(...)`); `seqlab sentiment train` derives its options from them
(seqlab.commandline), each defaulting to "not given" so that a preset fills
what the command line leaves out.

    >>> make_recipe("book-bilstm").units
    64
    >>> make_recipe("best", dataset="nsmc").tokenizer
    'char'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab.apps.architecture import ARCHITECTURES, check_heads, refuse_inapplicable
from seqlab.commandline import setting
from seqlab.data import CharTokenizer, JamoTokenizer, KiwiTokenizer, WordTokenizer
from seqlab.layers import GRU, LSTM, GlobalAveragePooling1D, GlobalMaxPooling1D, SimpleRNN

__all__ = ["CELLS", "POOLINGS", "PRESETS", "PRESET_OVERRIDES_FOR_KOREAN", "Recipe", "TOKENIZERS", "make_recipe"]

CELLS = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}
POOLINGS = {"max": GlobalMaxPooling1D, "average": GlobalAveragePooling1D}
TOKENIZERS = {"word": lambda: WordTokenizer(lowercase=True), "word_cased": lambda: WordTokenizer(lowercase=False),
              # tfds' Tokenizer, the tutorial's: split on runs of \W, so "_" stays inside words; case and
              # Unicode forms kept as written.
              "tfds": lambda: WordTokenizer(pattern=r"\w+", normalize=None),
              "char": CharTokenizer, "jamo": JamoTokenizer, "morpheme": KiwiTokenizer}


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
    accuracy, restoring the best epoch. `max_minutes`: minutes; no epoch starts
    that would not end in time (judged by the slowest epoch so far).
    `shuffle=False` reads the training texts in the same order every epoch
    (the tutorial's `padded_batch` without reshuffling). The vocabulary counts
    the tokens the model reads in training: each text's last `max_len`.
    `embeddings`: a directory of word vectors (`seqlab.embeddings`) whose
    rows start the Embedding, one per vocabulary token that has a vector
    (`freeze_embeddings`: kept fixed); its width is the `embedding_dim`.
    """

    arch: str = setting("rnn", "rnn: recurrent layers; transformer: transformer blocks (--layers blocks of "
                               "--embedding-dim features, --heads heads, feed-forward --units)", choices=ARCHITECTURES)
    cell: str = setting("lstm", "recurrent cell", choices=CELLS)
    bidirectional: bool = setting(True, "read the text in both directions")
    layers: int = setting(1, "stacked recurrent layers; 0: none, embedding then pooling")
    units: int = setting(64, "units per recurrent layer and direction, or the transformer's feed-forward width")
    embedding_dim: int = setting(20, "embedding size")
    dense_units: int = setting(64, "units of the relu Dense layer before the output; 0: none")
    heads: int = setting(2, "attention heads per transformer block")
    pooling: str | None = setting(None, "last output, or max/average over time", choices=("last", *POOLINGS),
                                  default_text="last; average for transformers")
    max_len: int | None = setting(None, "keep each text's last N tokens", default_text="all")
    ngrams: int = setting(1, "also read each text's 2..N-grams as tokens", default_text="1: none")
    tokenizer: str = setting("word", "word (lowercased), word_cased (case kept), tfds (the tutorial's: runs of "
                                     "\\w, case kept), char, jamo or morpheme (Kiwi)", choices=TOKENIZERS)
    vocab_size: int | None = setting(None, "keep the N most frequent training tokens", default_text="all")
    embeddings: str | None = setting(None, "start the Embedding from word vectors: the --out of `seqlab "
                                           "embeddings train` (its width sets --embedding-dim)", metavar="DIR")
    freeze_embeddings: bool = setting(False, "keep the vectors of --embeddings fixed (trainable=False)")
    mask: bool = setting(False, "mask padding so it never changes a result", default_text="no, as the tutorial")
    dropout: float = setting(0.0, "dropout after the embedding and after the recurrent layers, or inside and "
                                  "after the transformer blocks")
    epochs: int = setting(10, "epochs")
    batch_size: int = setting(32, "texts per batch")
    lr: float = setting(1e-3, "Adam's learning rate")
    bucket: bool = setting(False, "batch texts of similar length together")
    shuffle: bool = setting(True, "a new order of the training texts each epoch",
                            default_text="yes; the book presets: no, as the tutorial")
    patience: int | None = setting(None, "early stopping on validation accuracy, restoring the best epoch")
    max_minutes: float | None = setting(None, "start no epoch that would end after this many minutes",
                                        metavar="MINUTES", flags=("--time-limit",))
    seed: int = setting(0, "seed for weights and batch order")

    def __post_init__(self) -> None:
        if self.embeddings is not None:  # absolute, so that a run resumed from another folder reads the same
            self.embeddings = str(Path(self.embeddings).expanduser().resolve())
        elif self.freeze_embeddings:
            raise ValueError("--freeze-embeddings keeps the vectors of --embeddings DIR fixed; give --embeddings "
                             "too, or drop it.")
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
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be a positive number of minutes (leave it out for no limit), "
                             f"got {self.max_minutes}.")
        if self.patience is not None and self.patience < 0:
            raise ValueError(f"patience must be 0 or more epochs, got {self.patience}.")
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
                 dropout=0.0, epochs=10, batch_size=32, lr=1e-3, bucket=True, patience=2, max_minutes=28.0),
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


# Options that mean something for one architecture only.
ONLY_FOR = {"rnn": ("cell", "bidirectional"), "transformer": ("heads",)}


def make_recipe(preset: str | None = None, dataset: str = "imdb", **options: Any) -> Recipe:
    """The `Recipe` of `preset` (for `dataset`), with `options` (those not None) on top.

        >>> make_recipe("book-bilstm").units
        64
        >>> make_recipe("best", dataset="nsmc").tokenizer
        'char'
    """
    values = preset_values(preset, dataset)
    given = {name: value for name, value in options.items() if value is not None}
    values.update(given)
    refuse_inapplicable(values.get("arch", "rnn"), set(given), ONLY_FOR)
    unknown = set(values) - {f.name for f in dataclasses.fields(Recipe)}
    if unknown:
        raise TypeError(f"unknown recipe options {sorted(unknown)}; known: "
                        f"{sorted(f.name for f in dataclasses.fields(Recipe))}.")
    return Recipe(**values)


def preset_values(preset: str | None, dataset: str = "imdb") -> dict[str, Any]:
    """The recipe fields `preset` sets for `dataset` (a Korean dataset gets the preset's Korean overrides)."""
    if preset is None:
        return {}
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
    return {**PRESETS[preset], **(PRESET_OVERRIDES_FOR_KOREAN.get(preset, {}) if _is_korean(dataset) else {})}


def _is_korean(dataset: str) -> bool:
    return dataset == "nsmc"


