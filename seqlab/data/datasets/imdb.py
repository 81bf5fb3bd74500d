"""IMDb, the Large Movie Review Dataset v1.0 (Maas et al. 2011).

Read from `aclImdb_v1.tar.gz` as published, or from its extracted `aclImdb/`
folder: `train/{pos,neg,unsup}` and `test/{pos,neg}`, one review per
`ID_RATING.txt`. 25,000 labeled training reviews, 25,000 labeled test reviews
(both balanced) and 50,000 unlabeled ones. Label 1 = positive. The reviews
contain HTML line breaks (`<br />`), replaced here by spaces unless
`keep_markup=True`.

Two protocols (`split=`):
- `"official"`: the published test set; the published training set cut, with
  a seeded shuffle (NumPy, seed 1337 by default), into train
  (25,000 - validation_size) and validation.
- `"book"`: the tutorial's exact split (Raschka et al., *Python Machine
  Learning*, ch. 8 and 16). Its `movie_data.csv` lists test/pos, test/neg,
  train/pos, train/neg, each folder's files sorted by name, permuted by
  `np.random.seed(0)`; its chapter 16 shuffles those rows with
  `tf.random.set_seed(1)` and `Dataset.shuffle(50000,
  reshuffle_each_iteration=False)` and takes the first 25,000 as the test
  set, the next 20,000 for training and the last 5,000 for validation.
  seqlab computes TensorFlow's order without TensorFlow
  (`seqlab.data.tensorflow_shuffle`); `seed` replaces the 1 of
  `set_seed`. The texts keep their `<br />` as in `movie_data.csv`. The
  tutorial's vocabulary of the 20,000 training reviews, 87,007 words
  (58,063 in their last 100 tokens), comes out exactly.
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
from seqlab.data.tensorflow_shuffle import tensorflow_shuffle_order

IMDB_ARCHIVE = DatasetFile(
    "aclImdb_v1.tar.gz",
    "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
    ("c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",  # as published
     # the same reviews repacked without the three *Bow.feat files
     "a343918647f9c6c5b4b09ae2de13bafa91ad6016d65c206ba7ae67d1792049b0"),
    extracted_folder="aclImdb",
)
SPLITS = ("official", "book")
DEFAULT_SEEDS = {"official": 1337, "book": 1}  # book: the tutorial's tf.random.set_seed(1)
MOVIE_DATA_FOLDERS = ("test/pos", "test/neg", "train/pos", "train/neg")  # the tutorial's movie_data.csv
MOVIE_DATA_SEED = 0  # its np.random.seed(0) before the permutation
LABELS = {"neg": 0, "pos": 1}
LABEL_NAMES = {0: "neg", 1: "pos"}
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_REVIEW_FILE = re.compile(r"(?:.*/)?(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt")


@dataclass
class ImdbSplits:
    """Train, validation and test splits (and the unlabeled reviews, on request).

    Example:
        imdb = load_imdb(split="book")
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
              seed: int | None = None, validation_size: int = 5_000, unlabeled: bool = False,
              errors: str = STRICT, download: bool = True, progress: bool = True,
              keep_markup: bool | None = None) -> ImdbSplits:
    """IMDb reviews split by `split` ("official" or "book"); see the module doc.

    path: the archive, the extracted `aclImdb/` folder, or a folder holding either.
    seed: the split's seed (None: 1337 for "official", the tutorial's 1 for "book").
    unlabeled: also return the 50,000 unlabeled training reviews.
    keep_markup: keep the `<br />` line breaks (None: only for "book", as the tutorial reads them).
    """
    _check_split_arguments(split, validation_size)
    archive = find_dataset_file(IMDB_ARCHIVE, path, download, progress)
    keep_markup = split == "book" if keep_markup is None else keep_markup
    return split_imdb(read_imdb(archive, unlabeled, errors, keep_markup), split, seed, validation_size)


def split_imdb(reviews: ImdbReviews, split: str = "official", seed: int | None = None,
               validation_size: int = 5_000) -> ImdbSplits:
    """Cut the published reviews into train/validation/test by protocol `split` (seed None: its default)."""
    _check_split_arguments(split, validation_size)
    seed = DEFAULT_SEEDS[split] if seed is None else seed
    test_size = len(reviews.test)  # 25,000 in both protocols
    if split == "official":
        pool, test = reviews.train, reviews.test.subset(range(test_size), "test")
        order = np.random.default_rng(seed).permutation(len(pool)).tolist()
    else:
        pool = _movie_data_rows(reviews)
        order = tensorflow_shuffle_order(len(pool), global_seed=seed)
        test = pool.subset(order[:test_size], "test")
        order = order[test_size:]
    if validation_size >= len(order):
        raise ValueError(f"validation_size={validation_size} leaves no training reviews out of "
                         f"{len(order):,}; pass a smaller validation_size")
    cut = len(order) - validation_size
    return ImdbSplits(pool.subset(order[:cut], "train"), pool.subset(order[cut:], "validation"),
                      test, reviews.unlabeled)


def read_imdb(path: str | os.PathLike[str], unlabeled: bool = False,
              errors: str = STRICT, keep_markup: bool = False) -> ImdbReviews:
    """Parse the archive or extracted folder at `path` (no download, no split).

    keep_markup: keep the `<br />` line breaks as published (else spaces).
    """
    found: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    replaced: Counter[str] = Counter()
    for relative, data, source in _review_files(Path(path), unlabeled):
        part, label, review_id, _rating = _REVIEW_FILE.fullmatch(relative).groups()
        decoded = decode_text(data, source, errors=errors)
        replaced[part] += decoded.replaced
        text = decoded.text if keep_markup else _LINE_BREAK.sub(" ", decoded.text)
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


def _movie_data_rows(reviews: ImdbReviews) -> TextLabelSplit:
    """All labeled reviews in the order of the tutorial's `movie_data.csv`.

    Its chapter 8 reads the folders in `MOVIE_DATA_FOLDERS` order, each
    folder's files sorted by name as strings (`sorted(os.listdir(path))`:
    "10000_8.txt", then "1000_8.txt", then "100_3.txt"), then permutes
    the rows with NumPy's legacy generator seeded 0.
    """
    every = TextLabelSplit(reviews.test.texts + reviews.train.texts, reviews.test.labels + reviews.train.labels,
                           "all labeled", dict(reviews.test.label_names), reviews.test.ids + reviews.train.ids)
    by_folder: dict[str, list[tuple[str, int]]] = {folder: [] for folder in MOVIE_DATA_FOLDERS}
    for index, review_id in enumerate(every.ids):
        folder, _, name = review_id.rpartition("/")
        by_folder[folder].append((name, index))
    listed = [index for folder in MOVIE_DATA_FOLDERS for _, index in sorted(by_folder[folder])]
    permutation = np.random.RandomState(MOVIE_DATA_SEED).permutation(len(listed))
    return every.subset([listed[row] for row in permutation], "all labeled")


def _check_split_arguments(split: str, validation_size: int) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown IMDb split {split!r}; expected one of {SPLITS}")
    if validation_size < 0:
        raise ValueError(f"validation_size must be 0 or more, got {validation_size}")
