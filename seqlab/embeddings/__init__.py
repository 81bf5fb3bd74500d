"""Word vectors from the distributional hypothesis: Word2Vec (skip-gram, CBOW) and fastText subwords.

A word is known by the company it keeps: trained to tell a word's real
contexts from noise words, its vector ends up near the vectors of words that
keep the same company. `Word2Vec(settings).fit(token_lists)` trains
(`training.py`, the C++ kernel in `kernels/csrc/word2vec.cpp`); the result is
`WordVectors` (`vectors.py`: similarity, neighbours, analogies), saved as a
directory (`storage.py`) or in word2vec's text and binary formats
(`formats.py`), scored on WordSim-353, SimLex-999 and Google's analogies
(`evaluation.py`), drawn in 2-D (`plot.py`) and put into an `Embedding` layer
for a `Vocabulary` (`initialization.py`).

    >>> from seqlab.embeddings import Word2Vec, Word2VecSettings
    >>> vectors = Word2Vec(Word2VecSettings(architecture="cbow", subwords=True)).fit(token_lists)
    >>> vectors.most_similar("movie", topn=3)
"""

from seqlab.embeddings.corpus import EncodedCorpus, WordCounts, build_corpus
from seqlab.embeddings.evaluation import (AnalogyScore, WordPairScore, benchmark_file, evaluate_analogies,
                                          evaluate_word_pairs)
from seqlab.embeddings.formats import Word2VecFormatError, read_word2vec, write_word2vec
from seqlab.embeddings.initialization import embedding_from_vectors, vectors_table
from seqlab.embeddings.storage import VectorsDirectoryError, is_vectors_directory, load_vectors, save_vectors
from seqlab.embeddings.subwords import SubwordHasher
from seqlab.embeddings.training import EpochReport, Word2Vec, Word2VecSettings
from seqlab.embeddings.vectors import WordVectors

__all__ = ["AnalogyScore", "EncodedCorpus", "EpochReport", "SubwordHasher", "VectorsDirectoryError", "Word2Vec",
           "Word2VecFormatError", "Word2VecSettings", "WordCounts", "WordPairScore", "WordVectors",
           "benchmark_file", "build_corpus", "embedding_from_vectors", "evaluate_analogies", "evaluate_word_pairs",
           "is_vectors_directory", "load_vectors", "read_word2vec", "save_vectors", "vectors_table",
           "write_word2vec"]
