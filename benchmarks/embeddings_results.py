"""seqlab's Word2Vec against gensim's on the same corpus and settings: time, words/s, and the three scores.

The corpus is IMDb's 100,000 reviews (train, test and unlabeled; no labels are
used), lowercased words (seqlab's `WordTokenizer(lowercase=True)`), tokenized
once and given to both; dim 100, window 5, negative 5, min-count 5, sample
1e-3, both cores, the same initial learning rate (0.025 skip-gram, 0.05 CBOW,
word2vec.c's), 5 epochs. Training time excludes the vocabulary (timed apart);
words/s is the corpus' in-vocabulary words × epochs / training seconds, the
same numerator for both. Both models are scored by seqlab's evaluator, and
gensim's model by gensim's own too (the columns must agree).

    SEQLAB_DATA_DIR=/work/shared/datasets python benchmarks/embeddings_results.py
    SEQLAB_DATA_DIR=/work/shared/datasets python benchmarks/embeddings_results.py --texts 5000 --epochs 1   # quick
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from seqlab.data.datasets.imdb import IMDB_ARCHIVE, read_imdb
from seqlab.data.fetch import find_dataset_file
from seqlab.data.tokenizers import WordTokenizer
from seqlab.embeddings import (Word2Vec, Word2VecSettings, WordVectors, benchmark_file, build_corpus,
                               evaluate_analogies, evaluate_word_pairs)


def scores(vectors: WordVectors) -> dict[str, float]:
    return {"wordsim353": evaluate_word_pairs(vectors, benchmark_file("wordsim353.tsv")).spearman,
            "simlex999": evaluate_word_pairs(vectors, benchmark_file("simlex999.txt")).spearman,
            "analogies": evaluate_analogies(vectors, benchmark_file("questions-words.txt")).accuracy}


def gensim_scores(keyed) -> dict[str, float]:
    return {"wordsim353": keyed.evaluate_word_pairs(benchmark_file("wordsim353.tsv"))[1].statistic,
            "simlex999": keyed.evaluate_word_pairs(benchmark_file("simlex999.txt"))[1].statistic,
            "analogies": keyed.evaluate_word_analogies(benchmark_file("questions-words.txt"))[0]}


def run_seqlab(sentences, settings: Word2VecSettings) -> tuple[dict, WordVectors]:
    started = time.perf_counter()
    vocabulary, corpus = build_corpus(sentences, settings.min_count)
    vocabulary_seconds = time.perf_counter() - started
    trainer = Word2Vec(settings, compute_loss=False)
    trainer.prepare(vocabulary, corpus)
    started = time.perf_counter()
    for _ in range(settings.epochs):
        trainer.train_epoch()
    seconds = time.perf_counter() - started
    return {"vocabulary_seconds": vocabulary_seconds, "seconds": seconds, "words": corpus.words,
            "vocabulary": len(vocabulary)}, trainer.vectors()


def run_gensim(sentences, settings: Word2VecSettings):
    from gensim.models import Word2Vec as GensimWord2Vec

    model = GensimWord2Vec(vector_size=settings.dim, window=settings.window, negative=settings.negative,
                           min_count=settings.min_count, sample=settings.sample, workers=settings.threads,
                           sg=int(settings.architecture == "skipgram"), alpha=settings.initial_alpha,
                           min_alpha=settings.min_alpha, seed=settings.seed, epochs=settings.epochs)
    started = time.perf_counter()
    model.build_vocab(sentences)
    vocabulary_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=settings.epochs)
    seconds = time.perf_counter() - started
    keyed = model.wv
    vectors = WordVectors(list(keyed.index_to_key), torch.from_numpy(keyed.vectors.copy()),
                          [keyed.get_vecattr(w, "count") for w in keyed.index_to_key])
    return {"vocabulary_seconds": vocabulary_seconds, "seconds": seconds, "vocabulary": len(keyed)}, vectors, keyed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architectures", nargs="+", default=["skipgram", "cbow"], choices=["skipgram", "cbow"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--texts", type=int, default=None, help="only the first N reviews (a quick check)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import gensim

    reviews = read_imdb(find_dataset_file(IMDB_ARCHIVE, None, False, False), unlabeled=True)
    texts = [*reviews.train.texts, *reviews.test.texts, *reviews.unlabeled][:args.texts]
    tokenize = WordTokenizer(lowercase=True)
    sentences = [tokenize(text) for text in texts]
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, gensim {gensim.__version__}; "
          f"{len(sentences):,} reviews, {sum(map(len, sentences)):,} tokens; {args.threads} threads")
    print("| architecture | trainer | vocabulary | vocab s | train s | words/s | speed vs gensim | WordSim-353 ρ "
          "| SimLex-999 ρ | analogies |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for architecture in args.architectures:
        settings = Word2VecSettings(architecture=architecture, epochs=args.epochs, threads=args.threads)
        ours, ours_vectors = run_seqlab(sentences, settings)
        theirs, theirs_vectors, keyed = run_gensim(sentences, settings)
        words = ours["words"] * args.epochs
        rows = [("seqlab", ours, scores(ours_vectors)), ("gensim", theirs, scores(theirs_vectors)),
                ("gensim (its evaluator)", theirs, gensim_scores(keyed))]
        for name, timing, score in rows:
            speed = theirs["seconds"] / timing["seconds"]
            print(f"| {architecture} | {name} | {timing['vocabulary']:,} | {timing['vocabulary_seconds']:.1f} | "
                  f"{timing['seconds']:.1f} | {words / timing['seconds']:,.0f} | {speed:.2f}x | "
                  f"{score['wordsim353']:.4f} | {score['simlex999']:.4f} | {score['analogies']:.2%} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
