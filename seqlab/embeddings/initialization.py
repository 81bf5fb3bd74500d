"""An `Embedding` layer that starts from trained word vectors.

Row i of the table is the vector of the vocabulary's token i. The padding row
(0) is zero. A token without a vector (not trained, and, with subwords, no
n-gram in common either), the specials and the unknown row are drawn from
N(0, σ²) with σ the trained vectors' standard deviation, so they sit among
the trained ones at the same scale (the usual choice, e.g. Kim 2014 with
U(-a, a) of the same variance); with subwords an unseen token gets its
n-grams' mean, as fastText gives it. A word n-gram token (`"not good"`, the
sentiment app's `--ngrams`) starts at the mean of its words' vectors when
they all have one (not counted as found). The vectors' width is the layer's
`output_dim`. `trainable=False` freezes the table (Keras' `trainable`).

    >>> layer, found = embedding_from_vectors(vectors, vocabulary, mask_zero=True, trainable=False)
    >>> found      # the share of the vocabulary's tokens that had a vector
    0.97
"""

from __future__ import annotations

import torch

from seqlab.data.vocabulary import Vocabulary
from seqlab.embeddings.vectors import WordVectors
from seqlab.layers.embedding import Embedding


def vectors_table(vectors: WordVectors, vocabulary: Vocabulary, seed: int = 0) -> tuple[torch.Tensor, float]:
    """The (len(vocabulary), d) table and the share of the counted tokens found in `vectors`."""
    generator = torch.Generator().manual_seed(seed)
    scale = float(vectors.vectors.std())
    table = torch.randn(len(vocabulary), vectors.dim, generator=generator) * scale
    table[vocabulary.pad_index] = 0
    counted = range(1 + len(vocabulary.specials), vocabulary.unknown_index)
    found = 0
    for index in counted:
        token = vocabulary.token(index)
        if vectors.has_vector(token):
            table[index] = vectors.vector(token)
            found += 1
        elif " " in token and all(vectors.has_vector(part) for part in token.split(" ")):
            table[index] = torch.stack([vectors.vector(part) for part in token.split(" ")]).mean(dim=0)
    return table, found / max(1, len(counted))


def embedding_from_vectors(vectors: WordVectors, vocabulary: Vocabulary, *, trainable: bool = True,
                           mask_zero: bool = True, seed: int = 0, **kwargs) -> tuple[Embedding, float]:
    """An `Embedding(len(vocabulary), vectors.dim)` holding the vectors; and the share of tokens found."""
    table, found = vectors_table(vectors, vocabulary, seed)
    layer = Embedding(len(vocabulary), vectors.dim, mask_zero=mask_zero, trainable=trainable, **kwargs)
    layer.build((None, None))
    layer.set_weights([table.numpy()])
    return layer, found
