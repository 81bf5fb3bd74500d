"""Word2Vec and fastText training: `Word2Vec(settings).fit(token_lists)` gives `WordVectors`.

Skip-gram (each context word predicts the centre, word2vec.c's order) or
CBOW (the mean of the context predicts the centre), both with negative sampling; the noise
and subsampling distributions are in `distributions.py`, the pass itself in
`csrc/word2vec.cpp` (Hogwild on `threads` threads, the loop that word2vec.c
and gensim run) or, where the C++ extension cannot be built, in
`torch_pass.py`. The learning rate falls linearly from `alpha` to `min_alpha`
over all epochs' words. With `subwords=True` each word's input is the mean of
its own row and its character n-gram buckets (fastText, `subwords.py`); only
the buckets that the vocabulary's words use get rows.

The input rows start uniform in ±0.5/dim, the output rows at zero (word2vec.c).
One thread gives the same vectors on every run with the same seed; two or
more race on shared rows by design (Hogwild), so their vectors differ from run
to run by about what another seed would give.

    >>> trainer = Word2Vec(Word2VecSettings(architecture="skipgram", dim=100, epochs=5))
    >>> vectors = trainer.fit(WordTokenizer(lowercase=True)(text) for text in texts)
    >>> vectors.most_similar("good", topn=5)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from seqlab.embeddings import torch_pass
from seqlab.embeddings.corpus import EncodedCorpus, WordCounts, build_corpus
from seqlab.embeddings.distributions import keep_probabilities, noise_table
from seqlab.embeddings.subwords import SubwordHasher
from seqlab.embeddings.vectors import WordVectors
from seqlab.kernels import fused

ARCHITECTURES = ("skipgram", "cbow")
BLOCK_WORDS = 1_000_000  # words per kernel call: the progress report's granularity


@dataclass(frozen=True)
class Word2VecSettings:
    """The training's settings, with word2vec.c's and gensim's defaults (alpha: 0.025 skip-gram, 0.05 CBOW)."""

    architecture: str = "skipgram"
    dim: int = 100
    window: int = 5
    negative: int = 5
    min_count: int = 5
    sample: float = 1e-3
    epochs: int = 5
    alpha: float | None = None
    min_alpha: float = 1e-4
    cbow_mean: bool = True
    subwords: bool = False
    min_n: int = 3
    max_n: int = 6
    buckets: int = 2_000_000
    max_vocabulary: int | None = None
    seed: int = 1
    threads: int = 2

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; expected one of {list(ARCHITECTURES)}")
        for name in ("dim", "window", "epochs", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive whole number, got {getattr(self, name)}")
        if self.negative < 1:
            raise ValueError(f"negative must be at least 1 (the noise words per target), got {self.negative}")
        if self.initial_alpha <= 0 or not 0 <= self.min_alpha <= self.initial_alpha:
            raise ValueError(f"need 0 <= min_alpha <= alpha and alpha > 0, got alpha={self.alpha}, "
                             f"min_alpha={self.min_alpha}")
        if self.subwords:
            SubwordHasher(self.min_n, self.max_n, self.buckets)  # checks the n-gram range

    @property
    def initial_alpha(self) -> float:
        return self.alpha if self.alpha is not None else (0.025 if self.architecture == "skipgram" else 0.05)

    def to_config(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EpochReport:
    """One epoch: its words (before subsampling), the words kept, the mean loss per target, seconds."""

    epoch: int
    words: int
    kept_words: int
    loss: float
    seconds: float

    @property
    def words_per_second(self) -> float:
        return self.words / max(self.seconds, 1e-9)


@dataclass
class Word2Vec:
    """A trainer: `fit` builds the vocabulary and trains `epochs` passes; `state`/`restore` for checkpoints."""

    settings: Word2VecSettings = field(default_factory=Word2VecSettings)
    use_kernel: bool | None = None  # None: the C++ kernel where it builds
    compute_loss: bool = True

    def fit(self, token_lists: Iterable[Sequence[str]], *, progress: Callable[[dict], None] | None = None,
            on_epoch: Callable[[EpochReport], None] | None = None) -> WordVectors:
        self.prepare(*build_corpus(token_lists, self.settings.min_count, self.settings.max_vocabulary))
        while self.epochs_done < self.settings.epochs:
            report = self.train_epoch(progress)
            if on_epoch is not None:
                on_epoch(report)
        return self.vectors()

    def prepare(self, vocabulary: WordCounts, corpus: EncodedCorpus) -> None:
        """Set up the rows for this vocabulary and corpus (seeded), before the first epoch."""
        s = self.settings
        self.vocabulary, self.corpus = vocabulary, corpus
        counts = torch.tensor(vocabulary.counts, dtype=torch.int64)
        self.keep, self.noise = keep_probabilities(counts, s.sample), noise_table(counts)
        self.hasher = SubwordHasher(s.min_n, s.max_n, s.buckets) if s.subwords else None
        self.buckets, self.row_starts, self.rows = _subword_rows(vocabulary.words, self.hasher)
        generator = torch.Generator().manual_seed(s.seed)
        rows = len(vocabulary) + len(self.buckets)
        self.input = (torch.rand(rows, s.dim, generator=generator) - 0.5) / s.dim
        self.output = torch.zeros(len(vocabulary), s.dim)
        self.epochs_done = 0
        self.history: list[EpochReport] = []

    def train_epoch(self, progress: Callable[[dict], None] | None = None) -> EpochReport:
        self._require_prepared("train_epoch")
        s, corpus = self.settings, self.corpus
        starts = corpus.sentence_starts
        total = corpus.words * s.epochs
        started, loss, targets, kept, done = time.perf_counter(), 0.0, 0.0, 0, 0
        for block, (first, last) in enumerate(_blocks(starts, BLOCK_WORDS)):
            words = int(starts[last] - starts[first])
            alphas = [self._alpha((self.epochs_done * corpus.words + at) / total) for at in (done, done + words)]
            result = self._pass(starts[first:last + 1], alphas, s.seed * 1_000_003 + self.epochs_done * 10_007 + block)
            loss, targets, kept, done = loss + result[0], targets + result[1], kept + int(result[2]), done + words
            if progress is not None:
                elapsed = time.perf_counter() - started
                progress({"epoch": self.epochs_done + 1, "words": done, "of": corpus.words, "alpha": alphas[1],
                          "words_per_second": done / max(elapsed, 1e-9)})
        self.epochs_done += 1
        report = EpochReport(self.epochs_done, corpus.words, kept, loss / max(targets, 1),
                             time.perf_counter() - started)
        self.history.append(report)
        return report

    @property
    def blocks_per_epoch(self) -> int:
        """Kernel calls (progress reports) per epoch: runs of whole sentences of about BLOCK_WORDS words."""
        self._require_prepared("blocks_per_epoch")
        return len(_blocks(self.corpus.sentence_starts, BLOCK_WORDS))

    @property
    def current_alpha(self) -> float:
        """The learning rate where training stands (after `epochs_done` epochs)."""
        return self._alpha(self.epochs_done / self.settings.epochs)

    def vectors(self) -> WordVectors:
        """The trained vectors: each word's mean of its input rows (its own, and its n-grams')."""
        self._require_prepared("vectors")
        words = len(self.vocabulary)
        if self.hasher is None:
            return WordVectors(self.vocabulary.words, self.input[:words].clone(), self.vocabulary.counts)
        lengths = self.row_starts.diff()
        word_of_row = torch.repeat_interleave(torch.arange(words), lengths)
        summed = torch.zeros(words, self.settings.dim).index_add_(0, word_of_row, self.input[self.rows])
        return WordVectors(self.vocabulary.words, summed / lengths[:, None].float(), self.vocabulary.counts,
                           subwords=self.hasher, ngram_vectors=self.input[words:].clone(), buckets=self.buckets)

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: the rows and the epochs done (the vocabulary is rebuilt from the corpus)."""
        return {"input": self.input, "output": self.output, "epochs_done": self.epochs_done,
                "history": [asdict(report) for report in self.history]}

    def restore(self, state: dict[str, Any]) -> None:
        if tuple(state["input"].shape) != tuple(self.input.shape) or \
                tuple(state["output"].shape) != tuple(self.output.shape):
            raise ValueError("the checkpoint's vectors do not fit this corpus' vocabulary; the corpus or the "
                             "settings changed since it was written")
        self.input.copy_(state["input"])
        self.output.copy_(state["output"])
        self.epochs_done = int(state["epochs_done"])
        self.history = [EpochReport(**report) for report in state["history"]]

    def _require_prepared(self, what: str) -> None:
        if not hasattr(self, "input"):
            raise RuntimeError(f"Word2Vec.{what} needs a corpus: call fit(token_lists), or "
                               "prepare(*build_corpus(...)), first")

    def _alpha(self, progress: float) -> float:
        alpha = self.settings.initial_alpha
        return alpha - (alpha - self.settings.min_alpha) * min(1.0, progress)

    def _pass(self, starts: torch.Tensor, alphas: list[float], seed: int) -> list[float]:
        s = self.settings
        arguments = dict(skipgram=s.architecture == "skipgram", window=s.window, negative=s.negative,
                         cbow_mean=s.cbow_mean, alpha_begin=alphas[0], alpha_end=alphas[1], seed=seed)
        kernel = fused.extension() if self.use_kernel in (None, True) else None
        if self.use_kernel and kernel is None:
            raise RuntimeError("use_kernel=True but the C++ extension could not be built; see the warning above")
        if kernel is None:
            return torch_pass.train_pass(self.corpus.ids, starts, self.keep, self.noise, self.input, self.output,
                                         self.row_starts, self.rows, **arguments)
        return kernel.train_word2vec(self.corpus.ids, starts, self.keep, self.noise, self.input, self.output,
                                     self.row_starts, self.rows, arguments["skipgram"], s.window, s.negative,
                                     s.cbow_mean, alphas[0], alphas[1], seed, s.threads, self.compute_loss)


def _blocks(starts: torch.Tensor, words: int) -> list[tuple[int, int]]:
    """Runs of whole sentences [first, last) of about `words` words each."""
    bounds = torch.searchsorted(starts, torch.arange(0, int(starts[-1]), words, dtype=torch.int64), right=True) - 1
    cuts = sorted(set(bounds.tolist()) | {0, starts.numel() - 1})
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def _subword_rows(words: list[str], hasher: SubwordHasher | None):
    """The buckets in use (sorted), and each word's input rows: itself, then len(words) + its buckets' places."""
    if hasher is None:
        return torch.zeros(0, dtype=torch.int64), None, None
    per_word = [hasher.buckets_of(word) for word in words]
    buckets = torch.tensor(sorted({b for word in per_word for b in word}), dtype=torch.int64)
    place = {int(b): len(words) + i for i, b in enumerate(buckets.tolist())}
    rows = [row for i, word in enumerate(per_word) for row in (i, *(place[b] for b in word))]
    lengths = torch.tensor([1 + len(word) for word in per_word], dtype=torch.int64)
    return buckets, torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)]), \
        torch.tensor(rows, dtype=torch.int64)
