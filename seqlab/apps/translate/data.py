"""The translator's data: sentence pairs split by source sentence, and length-bucketed training batches.

The distinct source sentences are shuffled with `seed`; the first
`test_sources`, with all their translations, are held out, so BLEU is
measured on sentences never seen in training against every reference the
file has. Training batches group pairs of similar length and are cut to
their longest (seqlab.data.BucketBatchSampler through
seqlab.data.epoch_batches: epoch e's order is a function of (seed, e)).

    >>> data = load_translation_data("fra-eng", "en", "fr", max_words=10, limit=30_000)
    >>> batches = pair_batches(*encode_pairs(data.train_pairs, source_vocab, target_vocab), batch_size=64)
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqlab.apps.translate.settings import PairSettings
from seqlab.apps.translate.text import make_tokenizer
from seqlab.data import BucketBatchSampler
from seqlab.data.datasets import load_parallel
from seqlab.data.epoch_batches import EpochBatches

__all__ = ["KNOWN_PAIRS", "TranslationData", "checksum_of", "load_translation_data", "pair_batches"]

# --pairs name -> (file key of seqlab.data.datasets.parallel, its two languages: English first)
KNOWN_PAIRS = {"fra-eng": ("fra", ("en", "fr")), "kor-eng": ("kor", ("en", "ko"))}


@dataclass
class TranslationData:
    """Training pairs and a held-out test set of source sentences never seen in training.

    `test_references[i]` holds every translation of `test_sources[i]` in the
    (length-filtered) file. `spec` is what rebuilds exactly this split.
    """

    train_pairs: list[tuple[str, str]]
    test_sources: list[str]
    test_references: list[list[str]]
    spec: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        references = sum(map(len, self.test_references))
        return (f"{self.spec.get('source')}->{self.spec.get('target')}: {len(self.train_pairs):,} training pairs, "
                f"{len(self.test_sources):,} held-out source sentences ({references:,} reference translations)")


def load_translation_data(pairs: str, source: str | None = None, target: str | None = None, *,
                          max_words: int | None = PairSettings.max_words, limit: int | None = PairSettings.limit,
                          test_sources: int = PairSettings.test_sources,
                          decode_errors: str = PairSettings.decode_errors,
                          seed: int = 0, sha256: str | None = None) -> TranslationData:
    """Sentence pairs for `pairs` ("fra-eng", "kor-eng" or "tsv:PATH") split by source sentence.

    Pairs with more than `max_words` whitespace words on either side are left
    out. The distinct source sentences (compared after tokenization) are
    shuffled with `seed`; the first `test_sources` of them, with all their
    translations, are the test set, the rest's pairs the training set
    (shuffled, at most `limit`). For `tsv:PATH` the first column is the
    source language; with `sha256` (what a run recorded), a file whose bytes
    have changed since is refused.
    """
    if sha256 is not None and pairs.startswith("tsv:") and checksum_of(Path(pairs[4:])) != sha256:
        raise ValueError(f"{pairs[4:]} has changed since the run started on it (its SHA-256 differs), so its "
                         "held-out sentences are no longer the ones held out. Restore the file, or train a new "
                         "run on it.")
    corpus, source, target = _load_corpus(pairs, source, target, max_words, decode_errors)
    tokenizer = make_tokenizer()
    translations: dict[str, list[tuple[str, str]]] = {}
    for source_text, target_text in corpus.pairs():
        translations.setdefault(" ".join(tokenizer(source_text)), []).append((source_text, target_text))
    keys = list(translations)
    random.Random(seed).shuffle(keys)
    if not 0 < test_sources < len(keys):
        raise ValueError(f"test_sources={test_sources} must be between 1 and {len(keys) - 1}: the data has "
                         f"{len(keys):,} distinct source sentences. Lower test_sources or use more data.")
    test_keys, train_keys = keys[:test_sources], keys[test_sources:]
    train_pairs = [pair for key in train_keys for pair in translations[key]]
    random.Random(seed + 1).shuffle(train_pairs)
    spec = {"pairs": pairs, "source": source, "target": target, "max_words": max_words, "limit": limit,
            "test_sources": test_sources, "decode_errors": decode_errors, "seed": seed,
            **({"sha256": sha256} if sha256 else {})}
    return TranslationData(train_pairs[:limit] if limit else train_pairs,
                           [translations[key][0][0] for key in test_keys],
                           [[t for _, t in translations[key]] for key in test_keys], spec)


def checksum_of(path: Path) -> str:
    """The SHA-256 of a pairs file's bytes."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise FileNotFoundError(f"No such file: {path} (from --pairs tsv:{path}).") from None


def _load_corpus(pairs: str, source: str | None, target: str | None, max_words: int | None, errors: str):
    if pairs.startswith("tsv:"):
        corpus = load_parallel(target or "target", path=pairs[4:], max_length=max_words, errors=errors,
                               progress=False)
        return corpus, source or "source", target or "target"
    if pairs not in KNOWN_PAIRS:
        raise ValueError(f"--pairs must be one of {sorted(KNOWN_PAIRS)} or tsv:PATH (a tab-separated file, "
                         f"source sentence first), got {pairs!r}.")
    key, (english, other) = KNOWN_PAIRS[pairs]
    source = source or english
    target = target or (other if source == english else english)
    if {source, target} != {english, other}:
        raise ValueError(f"{pairs} holds {english} and {other} sentences, so --source/--target must be "
                         f"{english}/{other} or {other}/{english}; got {source}/{target}.")
    corpus = load_parallel(key, reverse=source != english, max_length=max_words, errors=errors, progress=False)
    return corpus, source, target


def pair_batches(source: np.ndarray, target_in: np.ndarray, target_out: np.ndarray, batch_size: int,
                 seed: int = 0) -> EpochBatches:
    """Training batches `((source, target_in), target_out)` of pairs of similar length, cut to their longest.

    Random batches of ≤10-word sentences are about half padding; grouping by
    length (shuffled pools sorted by length, batches in random order, a new
    order each epoch) nearly removes it, which halves the time per epoch.
    """
    arrays = [torch.as_tensor(a) for a in (source, target_in, target_out)]
    source_lengths, target_lengths = (arrays[0] != 0).sum(1), (arrays[1] != 0).sum(1)
    order_key = target_lengths * (arrays[0].shape[1] + 1) + source_lengths

    def collate(rows: list[int]) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        rows = torch.as_tensor(rows)
        source_width, target_width = int(source_lengths[rows].max()), int(target_lengths[rows].max())
        source, target_in, target_out = (a[rows] for a in arrays)
        return (source[:, :source_width], target_in[:, :target_width]), target_out[:, :target_width]

    return EpochBatches(BucketBatchSampler(order_key.tolist(), batch_size, seed=seed), collate)
