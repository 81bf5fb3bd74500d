"""A corpus for Word2Vec: the vocabulary with its counts, and the text as one array of word ids.

`build_corpus(token_lists, min_count)` reads the tokenized texts once. Words
seen fewer than `min_count` times are dropped from the vocabulary and from
the text (as word2vec.c and gensim drop them, before the windows are cut); the
others are numbered by descending count, ties by first appearance. The text
becomes `ids (N,) int32` with `sentence_starts (S+1,) int64`: sentence s is
`ids[sentence_starts[s]:sentence_starts[s+1]]`, and no window crosses from one
sentence into the next. A text longer than `max_sentence_length` words is cut
into sentences of at most that many (gensim truncates it instead).

    >>> vocabulary, corpus = build_corpus([["a", "b", "a"], ["c", "a"]], min_count=2)
    >>> vocabulary.words, vocabulary.counts, corpus.ids.tolist()
    (['a'], [3], [0, 0, 0])
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

MAX_SENTENCE_LENGTH = 10_000  # gensim's MAX_WORDS_IN_BATCH


@dataclass
class WordCounts:
    """The kept words by descending count, their counts, and the corpus' size before `min_count`."""

    words: list[str]
    counts: list[int]
    corpus_words: int

    def __len__(self) -> int:
        return len(self.words)


@dataclass
class EncodedCorpus:
    """The kept words' ids `(N,) int32`, in sentences starting at `sentence_starts (S+1,) int64`."""

    ids: torch.Tensor
    sentence_starts: torch.Tensor

    @property
    def words(self) -> int:
        return self.ids.numel()

    @property
    def sentences(self) -> int:
        return self.sentence_starts.numel() - 1


def build_corpus(token_lists: Iterable[Sequence[str]], min_count: int = 5, max_vocabulary: int | None = None,
                 max_sentence_length: int = MAX_SENTENCE_LENGTH) -> tuple[WordCounts, EncodedCorpus]:
    """Count, keep the words seen `min_count` times (the `max_vocabulary` most frequent), encode the text."""
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    if max_vocabulary is not None and max_vocabulary < 1:
        raise ValueError(f"max_vocabulary must be at least 1 (or None for no cap), got {max_vocabulary}")
    index: dict[str, int] = {}
    ids, lengths = array("i"), array("q")
    for tokens in token_lists:
        if isinstance(tokens, str):
            raise TypeError("build_corpus takes tokenized texts (lists of words), got a string; "
                            "tokenize first, e.g. WordTokenizer(lowercase=True)(text)")
        ids.extend([index.setdefault(token, len(index)) for token in tokens])
        lengths.append(len(tokens))
    if not index:
        raise ValueError(f"the corpus has no words ({len(lengths):,} texts, all empty); "
                         "give a corpus with text in it, or check the tokenizer")
    all_ids = np.frombuffer(ids, dtype=np.int32)
    counts = np.bincount(all_ids, minlength=len(index))
    order = np.lexsort((np.arange(len(index)), -counts))  # by count, ties by first appearance
    order = order[counts[order] >= min_count][:max_vocabulary]
    spelled = list(index)
    if order.size == 0:
        top = int(np.argmax(counts))
        raise ValueError(f"no word occurs {min_count} times or more (the most frequent, {spelled[top]!r}, occurs "
                         f"{counts[top]}); lower min_count or give a larger corpus")
    renumber = np.full(len(index), -1, dtype=np.int32)
    renumber[order] = np.arange(order.size, dtype=np.int32)
    vocabulary = WordCounts([spelled[i] for i in order], counts[order].tolist(), int(all_ids.size))
    return vocabulary, _sentences(renumber[all_ids], np.frombuffer(lengths, dtype=np.int64), max_sentence_length)


def _sentences(mapped: np.ndarray, lengths: np.ndarray, max_length: int) -> EncodedCorpus:
    """Drop the unknown (-1) ids; sentence boundaries of the texts, each cut into pieces of `max_length`."""
    known = mapped >= 0
    text_of = np.repeat(np.arange(lengths.size), lengths)[known]
    kept = np.bincount(text_of, minlength=lengths.size)
    pieces = -(-kept // max_length)  # ceil; an emptied text gives none
    starts = [0]
    for length, count in zip(kept[pieces > 0].tolist(), pieces[pieces > 0].tolist()):
        starts.extend(starts[-1] + min(max_length, length - k * max_length) for k in range(count))
    return EncodedCorpus(torch.from_numpy(mapped[known].copy()), torch.tensor(starts, dtype=torch.int64))
