"""Universal Dependencies English Web Treebank v2.15 (CC BY-SA 4.0): gold POS tags.

Three CoNLL-U files, 12,544 / 2,001 / 2,077 sentences (train / dev / test),
254,820 words of weblogs, newsgroups, emails, reviews and Yahoo! answers;
the standard benchmark of English part-of-speech tagging. Tags are UPOS (17
universal tags) or XPOS (the Penn Treebank's).

    >>> train = load_ud_ewt("train")          # 12,544 sentences, 204,577 words
    >>> train.sentences[0][:4], train.tags[0][:4]
    (['Al', '-', 'Zaman', ':'], ['PROPN', 'PUNCT', 'PROPN', 'PUNCT'])
"""
from __future__ import annotations

import os
from types import MappingProxyType

from seqlab.data.datasets.conllu_file import read_conllu
from seqlab.data.datasets.tagged import TaggedSentences
from seqlab.data.datasets.text_corpus import STRICT
from seqlab.data.fetch import DatasetFile, find_dataset_file

__all__ = ["UD_EWT_FILES", "load_ud_ewt"]

_RAW = "https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/r2.15/"
UD_EWT_FILES = MappingProxyType({
    "train": DatasetFile("ud-english-ewt/en_ewt-ud-train.conllu", _RAW + "en_ewt-ud-train.conllu",
                         ("3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",)),
    "dev": DatasetFile("ud-english-ewt/en_ewt-ud-dev.conllu", _RAW + "en_ewt-ud-dev.conllu",
                       ("531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",)),
    "test": DatasetFile("ud-english-ewt/en_ewt-ud-test.conllu", _RAW + "en_ewt-ud-test.conllu",
                        ("e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",)),
})


def load_ud_ewt(split: str = "train", tagset: str = "upos", path: str | os.PathLike[str] | None = None,
                download: bool = True, progress: bool = True, errors: str = STRICT) -> TaggedSentences:
    """One EWT split ("train", "dev" or "test") as words and their `tagset` ("upos" or "xpos") tags."""
    if split not in UD_EWT_FILES:
        raise ValueError(f"unknown UD EWT split {split!r}; expected one of {list(UD_EWT_FILES)}")
    file = find_dataset_file(UD_EWT_FILES[split], path, download, progress)
    return read_conllu(file, tagset, errors, name=f"ud-ewt-{split}")
