"""Text pipeline speed on all 50,000 labeled IMDb reviews (a benchmark, not a test).

Stages: read the archive, tokenize (WordTokenizer, lowercase), count the
vocabulary, encode every review. The target: tokenize + count + encode under
10 s on a 2-core machine.

    SEQLAB_DATA_DIR=../shared/datasets python benchmarks/bench_data.py [--max-size 20000]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import TypeVar

from seqlab.data import Vocabulary, WordTokenizer, find_dataset_file
from seqlab.data.datasets import read_imdb
from seqlab.data.datasets.imdb import IMDB_ARCHIVE

TARGET_SECONDS = 10.0
T = TypeVar("T")


def timed(work: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def run_pipeline(texts: list[str], max_size: int | None) -> tuple[dict[str, float], Vocabulary, int]:
    """Tokenize, count and encode once; seconds per stage."""
    tokenizer = WordTokenizer(lowercase=True)
    tokens, tokenize_seconds = timed(lambda: [tokenizer(text) for text in texts])
    vocab, count_seconds = timed(lambda: Vocabulary.build(tokens, max_size=max_size))
    encoded, encode_seconds = timed(lambda: vocab.encode_batch(tokens))
    seconds = {"tokenize": tokenize_seconds, "count vocabulary": count_seconds, "encode": encode_seconds}
    seconds["tokenize+count+encode"] = sum(seconds.values())
    return seconds, vocab, sum(map(len, encoded))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", help="aclImdb_v1.tar.gz or aclImdb/ (default: $SEQLAB_DATA_DIR, cache)")
    parser.add_argument("--max-size", type=int, default=None, help="vocabulary size limit")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of the pipeline; best and worst are shown (shared machines are noisy)")
    arguments = parser.parse_args()

    archive = find_dataset_file(IMDB_ARCHIVE, arguments.path)
    reviews, read_seconds = timed(lambda: read_imdb(archive))
    texts = reviews.train.texts + reviews.test.texts
    runs = [run_pipeline(texts, arguments.max_size) for _ in range(arguments.repeat)]
    _, vocab, token_count = runs[-1]

    print(f"IMDb, {len(texts):,} labeled reviews, {token_count:,} tokens; "
          f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs; "
          f"best / worst of {arguments.repeat} runs")
    print(f"{'stage':<24}{'best s':>8}{'worst s':>9}")
    print(f"{'read archive':<24}{read_seconds:>8.2f}{'':>9}")
    for stage in runs[0][0]:
        times = [seconds[stage] for seconds, _, _ in runs]
        print(f"{stage:<24}{min(times):>8.2f}{max(times):>9.2f}")
    best = min(seconds["tokenize+count+encode"] for seconds, _, _ in runs)
    verdict = "under" if best < TARGET_SECONDS else "OVER"
    print(f"target: tokenize+count+encode under {TARGET_SECONDS:.0f} s: {verdict}")
    print(f"vocabulary size: {len(vocab):,} (padding + {len(vocab) - 2:,} tokens + unknown); "
          f"out-of-vocabulary rate {vocab.oov.rate:.2%}")


if __name__ == "__main__":
    main()
