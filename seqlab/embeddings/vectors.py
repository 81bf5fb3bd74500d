"""`WordVectors`: trained word vectors and what people ask of them.

Similarity is the cosine, cos(a, b) = a·b / (|a| |b|). For an analogy "a is to
b as c is to ?" (man : king :: woman : queen) two rules are offered, over the
unit vectors â and excluding a, b and c from the answers (Levy & Goldberg 2014):

    3CosAdd:  argmax_x cos(x, b̂ - â + ĉ)
    3CosMul:  argmax_x cos'(x, b) cos'(x, c) / (cos'(x, a) + 1e-6),   cos' = (1 + cos) / 2

`most_similar(positive=[b, c], negative=[a])` is 3CosAdd as gensim writes it
(the mean of the signed unit vectors), with `method="3cosmul"` the other.
With fastText subwords, a word outside the vocabulary gets the mean of the
rows of its n-grams that training used (`vector`), and `in` still asks about
the vocabulary only; without subwords such a word raises `KeyError`.

    >>> vectors.most_similar("king", topn=3)              # [(word, cosine), ...]
    >>> vectors.analogy("man", "king", "woman")           # 'queen', ideally
    >>> vectors.doesnt_match(["apple", "banana", "pear", "car"])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from seqlab.embeddings.subwords import SubwordHasher

METHODS = ("3cosadd", "3cosmul")
WordOrVector = str | torch.Tensor


class WordVectors:
    """`vectors (V, d)` for `words`, with their training `counts` (or None), and optional subword rows."""

    def __init__(self, words: Sequence[str], vectors: torch.Tensor, counts: Sequence[int] | None = None, *,
                 subwords: SubwordHasher | None = None, ngram_vectors: torch.Tensor | None = None,
                 buckets: torch.Tensor | None = None) -> None:
        vectors = torch.as_tensor(vectors, dtype=torch.float32)
        if vectors.dim() != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"need one vector row per word: {len(words)} words, vectors of shape "
                             f"{tuple(vectors.shape)}")
        self.words = list(words)
        self.index = {word: i for i, word in enumerate(self.words)}
        if len(self.index) != len(self.words):
            repeated = sorted({w for w in self.words if self.words.count(w) > 1})[:5]
            raise ValueError(f"the words must be distinct; repeated: {repeated}")
        if counts is not None and len(counts) != len(self.words):
            raise ValueError(f"got {len(counts)} counts for {len(self.words)} words")
        if (subwords is None) != (ngram_vectors is None) or (ngram_vectors is None) != (buckets is None):
            raise ValueError("subwords, ngram_vectors and buckets come together")
        self.vectors, self.counts = vectors, None if counts is None else list(counts)
        self.subwords, self.ngram_vectors, self.buckets = subwords, ngram_vectors, buckets
        self._bucket_row = None if buckets is None else {int(b): i for i, b in enumerate(buckets.tolist())}
        self._unit: torch.Tensor | None = None

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> torch.Tensor:
        return self.vector(word)

    def count(self, word: str) -> int | None:
        """How often training saw `word` (None when the counts are unknown)."""
        return None if self.counts is None else self.counts[self._index_of(word)]

    def has_vector(self, word: str) -> bool:
        """In the vocabulary, or (with subwords) sharing an n-gram with it."""
        return word in self.index or bool(self._ngram_rows(word))

    def vector(self, word: str) -> torch.Tensor:
        """The word's vector (d,); for an unknown word, the mean of its known n-grams' rows."""
        if word in self.index:
            return self.vectors[self.index[word]]
        rows = self._ngram_rows(word)
        if not rows:
            raise KeyError(self._unknown(word))
        return self.ngram_vectors[rows].mean(dim=0)

    def unit_vectors(self) -> torch.Tensor:
        if self._unit is None:
            self._unit = torch.nn.functional.normalize(self.vectors, dim=1)
        return self._unit

    def similarity(self, a: WordOrVector, b: WordOrVector) -> float:
        return float(torch.nn.functional.cosine_similarity(self._as_vector(a), self._as_vector(b), dim=0))

    def most_similar(self, positive: WordOrVector | Iterable[WordOrVector] = (),
                     negative: Iterable[WordOrVector] = (), topn: int = 10, method: str = "3cosadd",
                     restrict_vocabulary: int | None = None) -> list[tuple[str, float]]:
        """The `topn` nearest words to the mean of the signed unit vectors (3CosAdd) or by 3CosMul."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {list(METHODS)}")
        positive = [positive] if isinstance(positive, (str, torch.Tensor)) else list(positive)
        negative = [negative] if isinstance(negative, (str, torch.Tensor)) else list(negative)
        if not positive and not negative:
            raise ValueError("most_similar needs at least one word or vector")
        scores = self._scores(positive, negative, method, restrict_vocabulary)
        for word in (*positive, *negative):
            if isinstance(word, str) and word in self.index and self.index[word] < scores.numel():
                scores[self.index[word]] = -float("inf")
        values, indices = scores.topk(min(topn, scores.numel()))
        return [(self.words[i], float(v)) for v, i in zip(values.tolist(), indices.tolist()) if v > -float("inf")]

    def analogy(self, a: str, b: str, c: str, method: str = "3cosadd") -> str:
        """a is to b as c is to the returned word."""
        return self.most_similar(positive=[b, c], negative=[a], topn=1, method=method)[0][0]

    def doesnt_match(self, words: Iterable[str]) -> str:
        """The word farthest from the mean of the group's unit vectors."""
        words = [word for word in words if self.has_vector(word)]
        if not words:
            raise ValueError("doesnt_match needs at least one word with a vector")
        unit = torch.nn.functional.normalize(torch.stack([self.vector(w) for w in words]), dim=1)
        centre = torch.nn.functional.normalize(unit.mean(dim=0), dim=0)
        return words[int((unit @ centre).argmin())]

    def _scores(self, positive, negative, method, restrict) -> torch.Tensor:
        unit = self.unit_vectors()[:restrict]
        signed = [(torch.nn.functional.normalize(self._as_vector(w), dim=0), sign)
                  for sign, group in ((1.0, positive), (-1.0, negative)) for w in group]
        if method == "3cosadd":
            target = torch.nn.functional.normalize(torch.stack([v * s for v, s in signed]).mean(dim=0), dim=0)
            return unit @ target
        product = torch.ones(unit.shape[0])
        for vector, sign in signed:
            shifted = (1 + unit @ vector) / 2
            product = product * shifted if sign > 0 else product / (shifted + 1e-6)
        return product

    def _as_vector(self, word: WordOrVector) -> torch.Tensor:
        if isinstance(word, torch.Tensor):
            if word.shape != (self.dim,):
                raise ValueError(f"a query vector must have shape ({self.dim},), got {tuple(word.shape)}")
            return word.float()
        return self.vector(word)

    def _index_of(self, word: str) -> int:
        if word not in self.index:
            raise KeyError(self._unknown(word))
        return self.index[word]

    def _ngram_rows(self, word: str) -> list[int]:
        if self.subwords is None:
            return []
        return [self._bucket_row[b] for b in self.subwords.buckets_of(word) if b in self._bucket_row]

    def _unknown(self, word: str) -> str:
        hint = ("none of its character n-grams was seen in training" if self.subwords is not None else
                "train with subwords (fastText) to get vectors for unseen words")
        return f"{word!r} is not in the vocabulary of {len(self):,} words; {hint}"
