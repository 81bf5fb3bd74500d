"""KLUE named-entity recognition v1.1 (CC BY-SA 4.0): Korean sentences, one tag per character.

The public file is KLUE's dev set, 5,000 sentences from news and reviews,
`CHAR<TAB>TAG` per line (spaces are characters too, tagged O), BIO tags of six
types: PS person, LC location, OG organization, DT date, TI time, QT
quantity. KLUE's train set is not public offline, so this loader splits the
5,000 sentences with a seeded shuffle (Python's `random.Random(seed)`) into

    train 4,000   dev 500   test 500        (`KLUE_SPLIT`, seed 0 by default)

and returns one part; the same seed always gives the same parts.

    >>> test = load_klue_ner("test")
    >>> "".join(test.sentences[0]), test.tags[0][:2]
"""
from __future__ import annotations

import os
import random
from types import MappingProxyType

from seqlab.data.datasets.tagged import TaggedSentences, read_tagged_tsv
from seqlab.data.datasets.text_corpus import STRICT
from seqlab.data.fetch import DatasetFile, find_dataset_file

__all__ = ["KLUE_NER_FILE", "KLUE_SPLIT", "load_klue_ner"]

KLUE_NER_FILE = DatasetFile(
    "klue-ner/klue-ner-v1.1_dev.tsv",
    "https://raw.githubusercontent.com/KLUE-benchmark/KLUE/main/klue_benchmark/klue-ner-v1.1/klue-ner-v1.1_dev.tsv",
    ("0f4d5e818f7b82d299c3a87856fc40a706f5943207580ddb252397e387050a54",))
KLUE_SPLIT = MappingProxyType({"train": 4000, "dev": 500, "test": 500})


def load_klue_ner(split: str = "train", seed: int = 0, path: str | os.PathLike[str] | None = None,
                  download: bool = True, progress: bool = True, errors: str = STRICT) -> TaggedSentences:
    """One part ("train", "dev", "test", or "all" for the file in order) of the seeded KLUE NER split."""
    if split not in (*KLUE_SPLIT, "all"):
        raise ValueError(f"unknown KLUE NER split {split!r}; expected one of {[*KLUE_SPLIT, 'all']}")
    data = read_tagged_tsv(find_dataset_file(KLUE_NER_FILE, path, download, progress), errors)
    if split == "all":
        return data
    if len(data) != sum(KLUE_SPLIT.values()):
        raise ValueError(f"{data.name} has {len(data):,} sentences; the split expects KLUE NER v1.1's "
                         f"{sum(KLUE_SPLIT.values()):,} (split == 'all' reads any version in order)")
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    start = 0
    for name, size in KLUE_SPLIT.items():
        if name == split:
            return data.subset(sorted(order[start:start + size]), f"klue-ner-{split}")
        start += size
    raise AssertionError("unreachable")
