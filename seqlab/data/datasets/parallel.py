"""Sentence pairs for translation: the Tatoeba files of manythings.org/anki.

Each line is `english<TAB>other[<TAB>attribution]`. The attribution column
(CC-BY credit for the two sentences) is kept as metadata, never as text.
Quote characters are ordinary text in these files, so quoting is off.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from seqlab.data.datasets.text_corpus import STRICT
from seqlab.data.datasets.text_label import read_table
from seqlab.data.fetch import DatasetFile, find_dataset_file

PARALLEL_FILES = MappingProxyType({
    "kor": DatasetFile("kor-eng/kor.txt", "https://www.manythings.org/anki/kor-eng.zip",
                       ("6c9d8de3e500306997e4083274fb0038ef521651ffb2b7923e4e607a59d09dbc",),
                       archive_member="kor.txt"),
    "fra": DatasetFile("fra-eng/fra.txt", "https://www.manythings.org/anki/fra-eng.zip",
                       ("0bb85dbaa1c896844649094d7eaf2e34bee34e84fe362b26ce7e8f2e12aae104",),
                       archive_member="fra.txt"),
})
LANGUAGES = MappingProxyType({"kor": ("en", "ko"), "fra": ("en", "fr")})


@dataclass
class ParallelCorpus:
    """Aligned sentence pairs: `sources[i]` translates to `targets[i]`.

    attributions: the file's third column per pair (None when it has none).
    skipped_length: pairs left out by `min_length` / `max_length`.
    skipped_empty: pairs left out because one side was empty.

    Example:
        pairs = load_parallel("kor", max_length=10)     # English -> Korean
        pairs.sources[0], pairs.targets[0]               # ('Go.', '가.')
        load_parallel("kor", reverse=True).sources[0]   # '가.'
    """

    sources: list[str]
    targets: list[str]
    source_language: str
    target_language: str
    attributions: list[str] | None = None
    skipped_length: int = 0
    skipped_empty: int = 0

    def __len__(self) -> int:
        return len(self.sources)

    def pairs(self) -> list[tuple[str, str]]:
        return list(zip(self.sources, self.targets))

    def summary(self) -> str:
        return (f"{self.source_language}->{self.target_language}: {len(self):,} pairs, "
                f"{self.skipped_length:,} skipped by length, {self.skipped_empty:,} empty skipped")


def load_parallel(
    pair: str = "kor",
    path: str | os.PathLike[str] | None = None,
    reverse: bool = False,
    min_length: int | None = None,
    max_length: int | None = None,
    tokenizer: Callable[[str], Sequence[str]] = str.split,
    errors: str = STRICT,
    download: bool = True,
    progress: bool = True,
) -> ParallelCorpus:
    """Sentence pairs, English -> other language (`reverse=True` for the other way).

    pair: `"kor"` or `"fra"` for the known files; with `path=` any name (it only
        labels the target language).
    min_length / max_length: keep a pair only when both sides have that many
        tokens (by `tokenizer`, whitespace words by default).
    """
    file = _pair_file(pair, path, download, progress)
    table = read_table(file, "\t", quoting=False, header=False, errors=errors, field_counts={2, 3})
    languages = LANGUAGES.get(pair, ("en", pair))
    sources, targets, attributions = [], [], []
    skipped_length = skipped_empty = 0
    for row in table.rows:
        source, target = (row[1], row[0]) if reverse else (row[0], row[1])
        if not source.strip() or not target.strip():
            skipped_empty += 1
        elif not _fits(source, target, min_length, max_length, tokenizer):
            skipped_length += 1
        else:
            sources.append(source)
            targets.append(target)
            attributions.append(row[2] if len(row) > 2 else "")
    return ParallelCorpus(
        sources, targets, *(languages[::-1] if reverse else languages),
        attributions=attributions if any(attributions) else None,
        skipped_length=skipped_length, skipped_empty=skipped_empty,
    )


def _pair_file(pair: str, path: str | os.PathLike[str] | None, download: bool, progress: bool) -> Path:
    if pair in PARALLEL_FILES:
        return find_dataset_file(PARALLEL_FILES[pair], path, download, progress)
    if path is None:
        raise ValueError(f"unknown sentence-pair file {pair!r}: seqlab knows {list(PARALLEL_FILES)}; "
                         "for another language pass path= to its tab-separated file")
    return Path(path).expanduser()


def _fits(source: str, target: str, min_length: int | None, max_length: int | None,
          tokenizer: Callable[[str], Sequence[str]]) -> bool:
    if min_length is None and max_length is None:
        return True
    lengths = (len(tokenizer(source)), len(tokenizer(target)))
    return all((min_length is None or n >= min_length) and (max_length is None or n <= max_length)
               for n in lengths)
