"""KoCoNovel: 50 Korean novels (public-domain texts from Korean Wikisource) in one file.

Documents are separated by a newline, novels by a blank line; 707k
characters. The file has no single-file download, so it is found in
`$SEQLAB_DATA_DIR` or the cache only, and checked against its SHA-256.

    >>> corpus = load_koconovel()      # a TextCorpus of one document
"""

from __future__ import annotations

from pathlib import Path

from seqlab.data.datasets.text_corpus import TextCorpus, load_text_corpus
from seqlab.data.fetch import DatasetNotFoundError, search_folders, sha256_of

KOCONOVEL_FILE = "koconovel/koconovel_50novels.txt"
KOCONOVEL_SHA256 = "938ec437fd1f3e8e5dde70dcf668fa4614f44d471f402007d57188be2bde8cde"


def koconovel_file() -> Path:
    """KoCoNovel's joined novels, found in `$SEQLAB_DATA_DIR` or the cache and checked against its sha256."""
    for folder in search_folders():
        for candidate in (folder / KOCONOVEL_FILE, folder / Path(KOCONOVEL_FILE).name):
            if candidate.is_file():
                if sha256_of(candidate) != KOCONOVEL_SHA256:
                    raise ValueError(f"{candidate} is not the KoCoNovel text seqlab knows (sha256 differs); "
                                     "pass it as a text file of your own to train on it anyway.")
                return candidate
    raise DatasetNotFoundError(
        f"KoCoNovel ({KOCONOVEL_FILE}) is in none of {[str(f) for f in search_folders()]}, and it has no "
        "single-file download: put koconovel_50novels.txt there (set $SEQLAB_DATA_DIR), or pass a text file "
        "of your own.")


def load_koconovel() -> TextCorpus:
    return load_text_corpus(koconovel_file())
