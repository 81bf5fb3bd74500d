"""Raw text → the token ids a sentiment model reads, and the batches it reads them in.

`TextEncoder` tokenizes, looks up and keeps each text's last `max_len`
tokens (then their 2..n-grams); it is saved with the model (registered as
"SentimentTextEncoder": saved files refer to it by that name). Batches are
`(ids (batch, time), labels (batch, 1))`, each padded to its longest text,
in an order that is a function of (seed, epoch) (seqlab.data.epoch_batches).

    >>> encoder = TextEncoder.build(train_split, make_recipe("best"))
    >>> batches = review_batches(encoder.encode_batch(train_split.texts), train_split.labels, batch_size=32)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from seqlab.apps.sentiment.data import DataSource
from seqlab.apps.sentiment.recipe import TOKENIZERS, Recipe
from seqlab.data import BucketBatchSampler, Vocabulary, pad_batch
from seqlab.data.datasets import TextLabelSplit
from seqlab.data.epoch_batches import EpochBatches, EqualLengths, InOrder
from seqlab.serialization import register_serializable

__all__ = ["TextEncoder", "batches_for_inference", "kept_tokens", "label_names_of", "review_batches", "with_ngrams"]


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


def review_batches(sequences: Sequence[Sequence[int]], labels: Sequence[int] | None, batch_size: int,
                   shuffle: bool = True, bucket: bool = False, sorted_by_length: bool = False,
                   seed: int = 0) -> EpochBatches:
    """Batches `(ids (batch, time) LongTensor, labels (batch, 1) float)`, each padded to its longest (ids alone
    without labels).

    `bucket=True` groups texts of similar length (`BucketBatchSampler`);
    otherwise batches are random (training) or in the given order. Epoch e
    reads the order of (seed, e). `sorted_by_length=True` (inference)
    batches in length order, so almost nothing is padded.

        >>> batches = review_batches([[4, 5], [6]], [1, 0], batch_size=2, shuffle=False)
        >>> next(iter(batches))[0]
        tensor([[4, 5],
                [6, 0]])
    """
    targets = None if labels is None else torch.tensor(labels, dtype=torch.float32)[:, None]
    if shuffle or sorted_by_length:  # unshuffled, the sampler sorts everything by length
        order = BucketBatchSampler([len(s) for s in sequences], batch_size, shuffle=shuffle, seed=seed,
                                   pool_batches=50 if bucket else 1)
    else:
        order = InOrder(len(sequences), batch_size)

    def collate(batch: list[int]) -> Any:
        ids = pad_batch([sequences[i] for i in batch]).tokens
        return ids if targets is None else (ids, targets[batch])

    return EpochBatches(order, collate)


def batches_for_inference(encoder: TextEncoder, sequences: Sequence[Sequence[int]],
                          labels: Sequence[int] | None = None) -> EpochBatches:
    """Batches whose answers are those each text gets alone.

    Masked models read length-sorted batches (padding changes nothing);
    unmasked ones read batches of texts of one length only, so nothing is
    padded and no text's answer depends on the others in the call.
    """
    if encoder.length_sorted:
        return review_batches(sequences, labels, encoder.batch_size, shuffle=False, sorted_by_length=True)
    targets = None if labels is None else torch.tensor(labels, dtype=torch.float32)[:, None]

    def collate(batch: list[int]) -> Any:
        ids = torch.tensor([list(sequences[i]) for i in batch], dtype=torch.long).reshape(len(batch), -1)
        return ids if targets is None else (ids, targets[batch])

    return EpochBatches(EqualLengths([len(s) for s in sequences], encoder.batch_size), collate)


