"""IMDb, the Large Movie Review Dataset v1.0 (Maas et al. 2011).

Read from `aclImdb_v1.tar.gz` as published, or from its extracted `aclImdb/`
folder: `train/{pos,neg,unsup}` and `test/{pos,neg}`, one review per
`ID_RATING.txt`. 25,000 labeled training reviews, 25,000 labeled test reviews
(both balanced) and 50,000 unlabeled ones. Label 1 = positive. The reviews
contain HTML line breaks (`<br />`), replaced here by spaces.

Two protocols (`split=`):
- `"official"`: the published test set; the published training set cut, with
  a seeded shuffle, into train (25,000 - validation_size) and validation.
- `"book"`: the tutorial's protocol: all 50,000 labeled reviews shuffled with
  the seed; the first 25,000 are the test set, the rest train + validation.
"""
from __future__ import annotations

import os
import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from seqlab.data.datasets.text_corpus import STRICT, decode_text
from seqlab.data.datasets.text_label import TextLabelSplit
from seqlab.data.fetch import DatasetFile, find_dataset_file

IMDB_ARCHIVE = DatasetFile(
    "aclImdb_v1.tar.gz",
    "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
    ("c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",  # as published
     # the same reviews repacked without the three *Bow.feat files
     "a343918647f9c6c5b4b09ae2de13bafa91ad6016d65c206ba7ae67d1792049b0"),
    extracted_folder="aclImdb",
)
SPLITS = ("official", "book")
LABELS = {"neg": 0, "pos": 1}
LABEL_NAMES = {0: "neg", 1: "pos"}
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_REVIEW_FILE = re.compile(r"(?:.*/)?(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt")


@dataclass
class ImdbSplits:
    """Train, validation and test splits (and the unlabeled reviews, on request).

    Example:
        imdb = load_imdb(split="book", seed=1337)
        len(imdb.train), len(imdb.validation), len(imdb.test)  # 20000 5000 25000
        imdb.train.texts[0], imdb.train.labels[0]              # (review, 1 = positive)
    """

    train: TextLabelSplit
    validation: TextLabelSplit
    test: TextLabelSplit
    unlabeled: list[str] | None = None

    def summary(self) -> str:
        lines = [split.summary() for split in (self.train, self.validation, self.test)]
        if self.unlabeled is not None:
            lines.append(f"unlabeled: {len(self.unlabeled):,} texts")
        return "\n".join(lines)


@dataclass
class ImdbReviews:
    """The reviews as published: 25,000 train and 25,000 test, each ordered neg
    then pos by review id; `unlabeled` when requested."""

    train: TextLabelSplit
    test: TextLabelSplit
    unlabeled: list[str] | None = None


def load_imdb(split: str = "official", path: str | os.PathLike[str] | None = None,
              seed: int = 1337, validation_size: int = 5_000, unlabeled: bool = False,
              errors: str = STRICT, download: bool = True, progress: bool = True) -> ImdbSplits:
    """IMDb reviews split by `split` ("official" or "book"); see the module doc.

    path: the archive, the extracted `aclImdb/` folder, or a folder holding either.
    unlabeled: also return the 50,000 unlabeled training reviews.
    """
    _check_split_arguments(split, validation_size)
    archive = find_dataset_file(IMDB_ARCHIVE, path, download, progress)
    return split_imdb(read_imdb(archive, unlabeled, errors), split, seed, validation_size)


def split_imdb(reviews: ImdbReviews, split: str = "official", seed: int = 1337,
               validation_size: int = 5_000) -> ImdbSplits:
    """Cut the published reviews into train/validation/test by protocol `split`."""
    _check_split_arguments(split, validation_size)
    rng = np.random.default_rng(seed)
    test_size = len(reviews.test)  # 25,000 in both protocols
    if split == "official":
        pool, test = reviews.train, reviews.test.subset(range(test_size), "test")
        order = rng.permutation(len(pool)).tolist()
    else:
        pool = _concatenate(reviews.train, reviews.test, "all labeled")
        order = rng.permutation(len(pool)).tolist()
        test = pool.subset(order[:test_size], "test")
        order = order[test_size:]
    if validation_size >= len(order):
        raise ValueError(f"validation_size={validation_size} leaves no training reviews out of "
                         f"{len(order):,}; pass a smaller validation_size")
    cut = len(order) - validation_size
    return ImdbSplits(pool.subset(order[:cut], "train"), pool.subset(order[cut:], "validation"),
                      test, reviews.unlabeled)


def read_imdb(path: str | os.PathLike[str], unlabeled: bool = False,
              errors: str = STRICT) -> ImdbReviews:
    """Parse the archive or extracted folder at `path` (no download, no split)."""
    found: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    replaced: Counter[str] = Counter()
    for relative, data, source in _review_files(Path(path), unlabeled):
        part, label, review_id, _rating = _REVIEW_FILE.fullmatch(relative).groups()
        decoded = decode_text(data, source, errors=errors)
        replaced[part] += decoded.replaced
        text = _LINE_BREAK.sub(" ", decoded.text)
        found.setdefault((part, label), []).append((int(review_id), text, relative))
    train, test = (_labeled(found, part, path, replaced[part]) for part in ("train", "test"))
    unlabeled_texts = None
    if unlabeled:
        unlabeled_texts = [text for _, text, _ in _folder(found, ("train", "unsup"), path)]
    return ImdbReviews(train, test, unlabeled_texts)


def _review_files(path: Path, unlabeled: bool) -> Iterator[tuple[str, bytes, str]]:
    """(path inside aclImdb/, bytes, name for errors) of every review file."""
    wanted = ("pos", "neg", "unsup") if unlabeled else ("pos", "neg")
    if path.is_dir():
        root = path if (path / "train").is_dir() else path / "aclImdb"
        if not (root / "train").is_dir():
            raise FileNotFoundError(f"{path} is neither the extracted aclImdb/ folder nor holds one; "
                                    "pass the folder with train/ and test/ in it, or the archive")
        for file in sorted(root.glob("*/*/*.txt")):
            relative = file.relative_to(root).as_posix()
            if _is_review(relative, wanted):
                yield relative, file.read_bytes(), str(file)
        return
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            relative = str(PurePosixPath(*PurePosixPath(member.name).parts[1:]))
            if member.isfile() and _is_review(relative, wanted):
                yield relative, archive.extractfile(member).read(), f"{path}:{member.name}"


def _is_review(relative: str, wanted: tuple[str, ...]) -> bool:
    match = _REVIEW_FILE.fullmatch(relative)
    return match is not None and match[2] in wanted


def _labeled(found: dict, part: str, path: Path, replaced: int) -> TextLabelSplit:
    texts, labels, ids = [], [], []
    for label_name, label in LABELS.items():
        for _, text, relative in _folder(found, (part, label_name), path):
            texts.append(text)
            labels.append(label)
            ids.append(relative)
    return TextLabelSplit(texts, labels, part, dict(LABEL_NAMES), ids, replaced=replaced)


def _folder(found: dict, key: tuple[str, str], path: Path) -> list[tuple[int, str, str]]:
    if key not in found:
        raise ValueError(f"{path} has no reviews in aclImdb/{'/'.join(key)}/: the archive is "
                         f"incomplete; download it again from {IMDB_ARCHIVE.url}")
    return sorted(found[key], key=lambda review: review[0])  # by review id


def _concatenate(first: TextLabelSplit, second: TextLabelSplit, name: str) -> TextLabelSplit:
    return TextLabelSplit(first.texts + second.texts, first.labels + second.labels, name,
                          dict(first.label_names), (first.ids or []) + (second.ids or []))


def _check_split_arguments(split: str, validation_size: int) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown IMDb split {split!r}; expected one of {SPLITS}")
    if validation_size < 0:
        raise ValueError(f"validation_size must be 0 or more, got {validation_size}")
