"""The standard intrinsic scores of word vectors, computed the way gensim computes them.

Word similarity: WordSim-353 and SimLex-999 give pairs of words with a human
score; the vectors' score is Spearman's ρ between the humans' scores and the
cosines (ranks with ties averaged, then Pearson's r of the ranks), over the
pairs whose two words have vectors; the rest are the out-of-vocabulary share
(with fewer than two pairs left, ρ is NaN).
Analogies: Google's questions-words.txt, 19,544 questions `a b c d` in 14
sections; a question counts when all four words are among the first
`restrict_vocabulary` (300,000) words, and is right when the 3CosAdd (or
3CosMul) answer over those words, a, b and c excluded, is d. Both compare
words case-insensitively, each spelling mapped to its most frequent variant,
as gensim's `evaluate_word_pairs` and `evaluate_word_analogies` do, so the two
give the same numbers on the same vectors (a test holds them equal).

The three test files ship inside the gensim wheel (`gensim/test/test_data/`);
`benchmark_file(name)` finds them there, with a clear message when gensim is
not installed.

    >>> evaluate_word_pairs(vectors, benchmark_file("wordsim353.tsv"))
    WordPairScore(spearman=0.66, pearson=0.63, pairs=353, oov_share=0.02)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqlab.embeddings.vectors import WordVectors

BENCHMARKS = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt", "analogies": "questions-words.txt"}
RESTRICT_VOCABULARY = 300_000


@dataclass
class WordPairScore:
    spearman: float
    pearson: float
    pairs: int
    oov_share: float


@dataclass
class AnalogyScore:
    accuracy: float
    correct: int
    questions: int
    oov_share: float
    sections: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (correct, asked)


def benchmark_file(name: str) -> Path:
    """The path of one of gensim's test files (`wordsim353.tsv`, `simlex999.txt`, `questions-words.txt`)."""
    try:
        import gensim
    except ImportError:
        raise ModuleNotFoundError("the word-similarity and analogy test sets come from the gensim wheel; install "
                                  "it with `pip install gensim` (seqlab's test extra has it)") from None
    return Path(gensim.__file__).parent / "test" / "test_data" / name


def evaluate_word_pairs(vectors: WordVectors, path: str | os.PathLike,
                        restrict_vocabulary: int = RESTRICT_VOCABULARY) -> WordPairScore:
    """Spearman and Pearson correlation of cosines with the file's human scores (`word<TAB>word<TAB>score`)."""
    lookup = _case_insensitive(vectors, restrict_vocabulary)
    unit = vectors.unit_vectors()
    human, cosine, total = [], [], 0
    for line in Path(path).read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        a, b, score = line.split("\t")[:3]
        total += 1
        if a.upper() in lookup and b.upper() in lookup:
            human.append(float(score))
            cosine.append(float(unit[lookup[a.upper()]] @ unit[lookup[b.upper()]]))
    if len(human) < 2:  # nothing to correlate: the scores are undefined, the out-of-vocabulary share says why
        return WordPairScore(float("nan"), float("nan"), total, 1 - len(human) / max(1, total))
    human_array, cosine_array = np.array(human), np.array(cosine)
    return WordPairScore(_pearson(_ranks(human_array), _ranks(cosine_array)), _pearson(human_array, cosine_array),
                         total, 1 - len(human) / total)


def evaluate_analogies(vectors: WordVectors, path: str | os.PathLike, method: str = "3cosadd",
                       restrict_vocabulary: int = RESTRICT_VOCABULARY, batch: int = 512) -> AnalogyScore:
    """Accuracy on the questions whose four words are among the first `restrict_vocabulary` words."""
    lookup = _case_insensitive(vectors, restrict_vocabulary)
    questions, names, total, section = [], [], 0, ""
    for line in Path(path).read_text("utf-8").splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
            continue
        words = line.upper().split()
        if len(words) != 4:
            continue
        total += 1
        if all(word in lookup for word in words):
            questions.append([lookup[word] for word in words])
            names.append(section)
    if total == 0:
        raise ValueError(f"{path} holds no analogy questions (lines of four words)")
    unit = vectors.unit_vectors()[:restrict_vocabulary]
    asked = torch.tensor(questions, dtype=torch.int64).reshape(-1, 4)
    same_spelling = _spelling_groups(vectors, restrict_vocabulary)
    right = torch.zeros(len(questions), dtype=torch.bool)
    for start in range(0, len(questions), batch):
        a, b, c, d = asked[start:start + batch].unbind(1)
        scores = _analogy_scores(unit, a, b, c, method)
        for column in (a, b, c):  # exclude the question's words, in every spelling
            scores[same_spelling[column][:, None] == same_spelling[None, :]] = -float("inf")
        right[start:start + batch] = same_spelling[scores.argmax(dim=1)] == same_spelling[d]
    sections: dict[str, tuple[int, int]] = {}
    for name, correct in zip(names, right.tolist()):
        done, count = sections.get(name, (0, 0))
        sections[name] = (done + correct, count + 1)
    correct = int(right.sum())
    accuracy = correct / len(questions) if questions else float("nan")
    return AnalogyScore(accuracy, correct, len(questions), 1 - len(questions) / total, sections)


def _analogy_scores(unit: torch.Tensor, a, b, c, method: str) -> torch.Tensor:
    if method == "3cosadd":
        target = torch.nn.functional.normalize(unit[b] - unit[a] + unit[c], dim=1)
        return target @ unit.T
    if method == "3cosmul":
        shifted = [(1 + unit[word] @ unit.T) / 2 for word in (a, b, c)]
        return shifted[1] * shifted[2] / (shifted[0] + 1e-6)
    raise ValueError(f"unknown analogy method {method!r}; expected '3cosadd' or '3cosmul'")


def _case_insensitive(vectors: WordVectors, restrict: int) -> dict[str, int]:
    """Upper-cased spelling -> the index of its most frequent variant among the first `restrict` words."""
    lookup: dict[str, int] = {}
    for index, word in enumerate(vectors.words[:restrict]):
        lookup.setdefault(word.upper(), index)
    return lookup


def _spelling_groups(vectors: WordVectors, restrict: int) -> torch.Tensor:
    """For each of the first `restrict` words, an id shared by the words of the same upper-cased spelling."""
    groups: dict[str, int] = {}
    return torch.tensor([groups.setdefault(word.upper(), len(groups)) for word in vectors.words[:restrict]])


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their mean rank (as scipy.stats.rankdata)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size)
    sorted_values = values[order]
    start = 0
    while start < values.size:
        end = start
        while end + 1 < values.size and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else float("nan")
