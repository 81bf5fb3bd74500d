"""Which tagged sentences a run reads: `load_tagging_data(dataset, ...)` → train, dev and test parts.

    ud-ewt          UD English EWT v2.15, its own train / dev / test files; words; UPOS or XPOS
    klue-ner        KLUE NER v1.1's public 5,000 sentences split 4,000 / 500 / 500 (seeded); characters
    conll:PATH      your CoNLL-U file, split 80 / 10 / 10 % (seeded)
    tsv:PATH        your token<TAB>tag file, split 80 / 10 / 10 % (seeded)

`tokens` says what a token is, so `seqlab tag predict` cuts new text the same
way: "words" (CoNLL-U and a TSV of longer tokens) or "characters" (KLUE, and a
TSV whose tokens are all single characters).

    >>> data = load_tagging_data("klue-ner")
    >>> len(data.train), len(data.dev), len(data.test), data.tokens
    (4000, 500, 500, 'characters')
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab.data.datasets.conllu_file import read_conllu
from seqlab.data.datasets.klue_ner import load_klue_ner
from seqlab.data.datasets.tagged import TaggedSentences, read_tagged_tsv
from seqlab.data.datasets.ud_ewt import load_ud_ewt
from seqlab.data.fetch import sha256_of

__all__ = ["DATASETS", "TaggingData", "load_tagged_file", "load_tagging_data", "tokens_of"]

DATASETS = ("ud-ewt", "klue-ner", "conll:PATH", "tsv:PATH")
USER_SPLIT = (0.8, 0.1)   # train and dev shares of a single user file; the rest is test


@dataclass
class TaggingData:
    """The three parts of a dataset, what its tokens are, and how to load it again (`spec`)."""

    train: TaggedSentences
    dev: TaggedSentences
    test: TaggedSentences
    tokens: str
    spec: dict[str, Any]

    def summary(self) -> str:
        return (f"{self.spec['dataset']}: {len(self.train):,} train, {len(self.dev):,} dev, {len(self.test):,} test "
                f"sentences ({self.train.tokens:,} training {self.tokens})")


def load_tagging_data(dataset: str, tagset: str = "upos", split_seed: int = 0, limit: int | None = None,
                      decode_errors: str = "strict") -> TaggingData:
    """The train, dev and test sentences of `dataset` (see the module docstring)."""
    spec = {"dataset": dataset, "tagset": tagset, "split_seed": split_seed, "limit": limit,
            "decode_errors": decode_errors}
    if dataset == "ud-ewt":
        parts = [load_ud_ewt(split, tagset, errors=decode_errors) for split in ("train", "dev", "test")]
        tokens = "words"
    elif dataset == "klue-ner":
        parts = [load_klue_ner(split, split_seed, errors=decode_errors) for split in ("train", "dev", "test")]
        tokens = "characters"
    elif dataset.startswith(("conll:", "tsv:")):
        kind, _, path = dataset.partition(":")
        whole = load_tagged_file(dataset, tagset, decode_errors)   # a missing or malformed file says so first
        resolved = Path(path).expanduser().resolve()
        spec = {**spec, "dataset": f"{kind}:{resolved}", "sha256": sha256_of(resolved)}
        parts = _split(whole, split_seed)
        tokens = tokens_of(whole)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    train, dev, test = parts
    if limit is not None:
        train = train.subset(list(range(min(limit, len(train)))), train.name)
    return TaggingData(train, dev, test, tokens, spec)


def load_tagged_file(dataset: str, tagset: str = "upos", decode_errors: str = "strict") -> TaggedSentences:
    """All sentences of a `conll:PATH` or `tsv:PATH` dataset."""
    kind, _, path = dataset.partition(":")
    if kind not in ("conll", "tsv") or not path:
        raise ValueError(f"expected conll:PATH or tsv:PATH, got {dataset!r}")
    return read_conllu(path, tagset, decode_errors) if kind == "conll" else read_tagged_tsv(path, decode_errors)


def tokens_of(data: TaggedSentences) -> str:
    """"characters" when every token is one character (KLUE's convention), else "words"."""
    return "characters" if all(len(token) == 1 for tokens in data.sentences for token in tokens) else "words"


def _split(data: TaggedSentences, seed: int) -> list[TaggedSentences]:
    if len(data) < 3:
        raise ValueError(f"{data.name} holds {len(data)} sentence(s); a train/dev/test split needs at least 3")
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    count = len(order)
    dev_start = min(max(1, int(count * USER_SPLIT[0])), count - 2)            # each part keeps a sentence
    test_start = min(max(dev_start + 1, int(count * sum(USER_SPLIT))), count - 1)
    cuts = [(0, dev_start, "train"), (dev_start, test_start, "dev"), (test_start, len(order), "test")]
    return [data.subset(sorted(order[a:b]), f"{data.name}-{name}") for a, b, name in cuts]
