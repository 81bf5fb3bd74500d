"""The texts an embeddings run reads, and their tokens.

Each corpus is a list of texts (reviews, paragraphs, lines); a text is one
"sentence" for Word2Vec, so no window crosses from one review to the next.
IMDb loses its `<br />` markup; the word tokenizer lowercases.

    >>> texts = corpus_texts(Settings(corpus="nsmc"))      # 149,995 reviews
    >>> tokens = tokenized(texts, "word")                   # one list of words per text
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from seqlab.apps.embeddings.settings import Settings
from seqlab.data.datasets import load_gutenberg, load_koconovel, load_nsmc, load_text_corpus
from seqlab.data.datasets.imdb import IMDB_ARCHIVE, read_imdb
from seqlab.data.fetch import find_dataset_file
from seqlab.data.korean import KiwiTokenizer
from seqlab.data.tokenizers import WordTokenizer

__all__ = ["corpus_texts", "tokenized"]

def corpus_texts(settings: Settings) -> list[str]:
    """The corpus' texts, each a sentence for training."""
    if settings.text_path is not None:
        return _lines(load_text_corpus(settings.text_path, errors=settings.decode_errors).text)
    if settings.corpus in ("imdb", "imdb-all"):
        reviews = read_imdb(find_dataset_file(IMDB_ARCHIVE, None, True, True), unlabeled=True)
        test = reviews.test.texts if settings.corpus == "imdb-all" else []
        return [*reviews.train.texts, *test, *reviews.unlabeled]
    if settings.corpus == "nsmc":
        return list(load_nsmc("train").texts)
    if settings.corpus == "gutenberg":
        return [p for p in re.split(r"\n\s*\n", load_gutenberg(1268).text) if p.strip()]
    return _lines(load_koconovel().text)


def tokenized(texts: list[str], tokenizer: str) -> Iterator[list[str]]:
    """Each text's tokens: lowercased words, or Korean morphemes."""
    tokenize = KiwiTokenizer() if tokenizer == "morpheme" else WordTokenizer(lowercase=True)
    return (tokenize(text) for text in texts)


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]

