"""NSMC, the Naver Sentiment Movie Corpus v1.0 (Korean movie reviews, CC0).

Files `ratings_train.txt` (150,000 rows) and `ratings_test.txt` (50,000 rows):
tab-separated `id document label` with a header; label 1 positive, 0 negative.
Some documents contain unbalanced double quotes, so quoting is off. 5 train and
3 test documents are empty; they are skipped and counted in `skipped_empty`.
"""
from __future__ import annotations

import os
from types import MappingProxyType

from seqlab.data.datasets.text_corpus import STRICT
from seqlab.data.datasets.text_label import TextLabelSplit, load_text_label
from seqlab.data.fetch import DatasetFile, find_dataset_file

_RAW = "https://raw.githubusercontent.com/e9t/nsmc/master/"
NSMC_FILES = MappingProxyType({
    "train": DatasetFile("nsmc/ratings_train.txt", _RAW + "ratings_train.txt",
                         ("e03b7d14e9e41be8d464a28057cd25d7396c53e67aa7fd5f7e552c59b0ee2940",)),
    "test": DatasetFile("nsmc/ratings_test.txt", _RAW + "ratings_test.txt",
                        ("8ac9f64052f11dbf6ae0acb5e038f03d90a76f0eda7820cfb3a92d02edfcebda",)),
})


def load_nsmc(split: str = "train", path: str | os.PathLike[str] | None = None,
              download: bool = True, progress: bool = True, errors: str = STRICT) -> TextLabelSplit:
    """One NSMC split as texts and labels (1 = positive); ids are NSMC's review ids.

    Example:
        train = load_nsmc("train")   # 149,995 reviews (150,000 rows less 5 empty)
        train.texts[0], train.labels[0]  # ('아 더빙.. 진짜 짜증나네요 목소리', 0)
        print(train.summary())
    """
    if split not in NSMC_FILES:
        raise ValueError(f"unknown NSMC split {split!r}; expected one of {list(NSMC_FILES)}")
    file = find_dataset_file(NSMC_FILES[split], path, download, progress)
    return load_text_label(file, text_column="document", label_column="label", delimiter="\t",
                           labels={"0": 0, "1": 1}, quoting=False, id_column="id",
                           errors=errors, name=f"nsmc-{split}")
