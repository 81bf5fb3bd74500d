"""The embeddings app's settings: one dataclass, the command-line options derived from it.

    >>> Settings(corpus="imdb", architecture="cbow").word2vec().initial_alpha
    0.05
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from seqlab.commandline import setting
from seqlab.embeddings import Word2VecSettings
from seqlab.embeddings.training import ARCHITECTURES

__all__ = ["CORPORA", "TOKENIZERS", "Settings", "TRAINING_FIELDS"]

CORPORA = ("imdb", "imdb-all", "nsmc", "gutenberg", "koconovel")
TOKENIZERS = ("word", "morpheme")
TEXT_PREFIX = "text:"


@dataclass
class Settings:
    """A run's settings: the corpus and its tokenizer, then Word2Vec's (`seqlab.embeddings.Word2VecSettings`).

    corpus: `imdb` (the 75,000 training and unlabeled reviews: never the test
    reviews, so classifiers may start from these vectors), `imdb-all` (all
    100,000, the benchmark corpus), `nsmc` (its 150,000 training reviews),
    `gutenberg` (The Mysterious Island, one paragraph a sentence), `koconovel`
    (one line a sentence), or `text:PATH` (a UTF-8 file, one sentence a line).
    """

    corpus: str = setting("imdb", "imdb | imdb-all | nsmc | gutenberg | koconovel | text:PATH", metavar="CORPUS")
    decode_errors: str = setting("strict", "bytes of a text:PATH corpus that are not UTF-8: strict (an error naming "
                                           "the byte) or replace (U+FFFD, counted)", choices=("strict", "replace"))
    tokenizer: str = setting("word", "word: lowercased words (any script); morpheme: Korean morphemes (kiwipiepy)",
                             choices=TOKENIZERS)
    architecture: str = setting("skipgram", "skipgram or cbow", choices=ARCHITECTURES)
    subwords: bool = setting(False, "fastText: character n-grams (--min-n..--max-n) hashed into --buckets, so "
                                    "unseen words get vectors")
    dim: int = setting(100, "vector size")
    window: int = setting(5, "the largest distance of a context word (each centre draws 1..window)")
    negative: int = setting(5, "noise words per target")
    min_count: int = setting(5, "drop words seen fewer times")
    sample: float = setting(1e-3, "subsampling threshold for frequent words (0: off)")
    epochs: int = setting(5, "passes over the corpus")
    alpha: float | None = setting(None, "initial learning rate (default 0.025 skip-gram, 0.05 CBOW)")
    min_alpha: float = setting(1e-4, "the learning rate at the end (falls linearly)")
    min_n: int = setting(3, "shortest character n-gram (with --subwords)")
    max_n: int = setting(6, "longest character n-gram (with --subwords)")
    buckets: int = setting(2_000_000, "hash buckets for the n-grams (with --subwords)")
    max_vocabulary: int | None = setting(None, "keep at most this many words (the most frequent)")
    seed: int = setting(1, "seed for the initial vectors and the draws")
    threads: int = setting(2, "training threads (Hogwild; 1 gives the same vectors on every run)")
    corpus_sha256: str | None = setting(None, "SHA-256 of the encoded corpus, recorded at the run's start; a "
                                              "resume refuses a corpus that has changed", command_line=False)

    def __post_init__(self) -> None:
        if self.corpus.startswith(TEXT_PREFIX):
            path = self.corpus[len(TEXT_PREFIX):]
            if not path:
                raise ValueError("--corpus text:PATH needs a path after 'text:'")
            self.corpus = TEXT_PREFIX + str(Path(path).expanduser().resolve())
        elif self.corpus not in CORPORA:
            raise ValueError(f"unknown corpus {self.corpus!r}; expected one of {list(CORPORA)} or text:PATH")
        if self.decode_errors not in ("strict", "replace"):
            raise ValueError(f"decode_errors must be 'strict' or 'replace', got {self.decode_errors!r}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {list(TOKENIZERS)}, got {self.tokenizer!r}")
        self.word2vec()  # checks the training's settings

    @property
    def text_path(self) -> Path | None:
        return Path(self.corpus[len(TEXT_PREFIX):]) if self.corpus.startswith(TEXT_PREFIX) else None

    def word2vec(self) -> Word2VecSettings:
        return Word2VecSettings(**{name: getattr(self, name) for name in TRAINING_FIELDS})


TRAINING_FIELDS = tuple(f.name for f in dataclasses.fields(Word2VecSettings) if f.name != "cbow_mean")
