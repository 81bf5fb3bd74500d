"""NBSVM-bi (Wang & Manning 2012) on IMDb's official split: the n-gram peer of the sentiment table.

Binarized word and word-bigram features x ∈ {0,1}^V (seqlab's lowercased word
tokens), scaled by the naive-Bayes log-count ratio

    r = log((α + Σ_pos x) / ‖α + Σ_pos x‖₁) - log((α + Σ_neg x) / ‖α + Σ_neg x‖₁),   α = 1

then a linear SVM with the squared hinge loss (C = 1) on r ∘ x, whose weights are
interpolated with their mean magnitude, w' = (1 - β) mean|w| + β w, β = 0.25,
as the paper does. It trains on all 25,000 training reviews and is tested on
the 25,000 test reviews (the paper reports 91.22%).

    SEQLAB_DATA_DIR=/work/shared/datasets python benchmarks/nbsvm.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from seqlab.data.datasets.imdb import IMDB_ARCHIVE, read_imdb
from seqlab.data.fetch import find_dataset_file
from seqlab.data.tokenizers import WordTokenizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ngrams", type=int, default=2, help="1: NBSVM-uni, 2: NBSVM-bi (default), 3: trigrams too")
    parser.add_argument("--beta", type=float, default=0.25)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--punctuation", action="store_true",
                        help="keep punctuation marks as tokens (the paper's tokens keep them)")
    args = parser.parse_args(argv)
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.svm import LinearSVC

    started = time.perf_counter()
    reviews = read_imdb(find_dataset_file(IMDB_ARCHIVE, None, False, False))
    tokenize = WordTokenizer(lowercase=True, keep_punctuation=args.punctuation)
    vectorizer = CountVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None,
                                 ngram_range=(1, args.ngrams), binary=True, dtype=np.float32)
    x_train = vectorizer.fit_transform(reviews.train.texts)
    x_test = vectorizer.transform(reviews.test.texts)
    y_train, y_test = np.asarray(reviews.train.labels), np.asarray(reviews.test.labels)
    p = 1.0 + np.asarray(x_train[y_train == 1].sum(axis=0)).ravel()
    q = 1.0 + np.asarray(x_train[y_train == 0].sum(axis=0)).ravel()
    ratio = (np.log(p / p.sum()) - np.log(q / q.sum())).astype(np.float32)
    svm = LinearSVC(C=args.C, loss="squared_hinge", dual=True, max_iter=10_000)
    svm.fit(x_train.multiply(ratio).tocsr(), y_train)
    w = svm.coef_.ravel()
    w = (1 - args.beta) * np.abs(w).mean() + args.beta * w
    scores = x_test.multiply(ratio).tocsr() @ w + svm.intercept_[0]
    accuracy = float(((scores > 0).astype(int) == y_test).mean())
    tokens = "words and punctuation" if args.punctuation else "words"
    print(f"| NBSVM-{['uni', 'bi', 'tri'][args.ngrams - 1]} (scikit-learn LinearSVC, β={args.beta}, C={args.C}, "
          f"{tokens}) | "
          f"IMDb official | {accuracy:.2%} | {x_train.shape[1]:,} features | "
          f"{time.perf_counter() - started:.0f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
