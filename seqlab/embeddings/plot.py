"""The picture of word vectors in two dimensions: chosen words and their neighbours, by PCA.

The vectors of the chosen words and of each one's `neighbours` nearest words
are centred and projected on their first two principal components (the right
singular vectors of the centred matrix, X = U S Vᵀ, coordinates X V[:, :2]),
the picture the tutorials draw of apples, bananas and pears next to each other
and away from cars. Chosen words are drawn large, neighbours small in the
colour of the word they belong to.

    >>> save_words_plot(vectors, ["apple", "banana", "car"], "words.png", neighbours=5)
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from seqlab.embeddings.vectors import WordVectors
from seqlab.files import write_atomically


def projected(vectors: WordVectors, words: list[str], neighbours: int = 0) -> tuple[list[str], list[int], torch.Tensor]:
    """The words drawn (chosen first, then neighbours), the chosen word each belongs to, (n, 2) coordinates."""
    missing = [word for word in words if not vectors.has_vector(word)]
    if missing:
        raise KeyError(f"no vector for {', '.join(map(repr, missing[:5]))}; choose words of the vocabulary "
                       f"(`seqlab embeddings similar` shows some)")
    if not words:
        raise ValueError("give at least one word to draw")
    drawn = list(dict.fromkeys(words))
    owner = list(range(len(drawn)))
    for group, word in enumerate(list(drawn)):
        for neighbour, _ in vectors.most_similar(word, topn=neighbours) if neighbours else []:
            if neighbour not in drawn:
                drawn.append(neighbour)
                owner.append(group)
    matrix = torch.stack([vectors.vector(word) for word in drawn]).double()
    centred = matrix - matrix.mean(dim=0)
    if len(drawn) == 1:
        return drawn, owner, torch.zeros(1, 2)
    _, _, right = torch.linalg.svd(centred, full_matrices=False)
    coordinates = centred @ right[:2].T
    if coordinates.shape[1] < 2:
        coordinates = torch.cat([coordinates, torch.zeros(len(drawn), 1, dtype=coordinates.dtype)], dim=1)
    return drawn, owner, coordinates.float()


def save_words_plot(vectors: WordVectors, words: list[str], path: str | Path, neighbours: int = 0,
                    title: str | None = None) -> Path:
    """Draw `words` (and `neighbours` nearest of each) to a PNG or SVG at `path`, written atomically."""
    drawn, owner, points = projected(vectors, words, neighbours)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 6), dpi=100)
    colours = plt.get_cmap("tab10")
    chosen = len(dict.fromkeys(words))
    for i, (word, (x, y)) in enumerate(zip(drawn, points.tolist())):
        main = i < chosen
        axes.scatter([x], [y], s=60 if main else 18, color=colours(owner[i] % 10), alpha=1.0 if main else 0.6)
        axes.annotate(word, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=11 if main else 8,
                      fontweight="bold" if main else "normal")
    axes.set_xlabel("principal component 1")
    axes.set_ylabel("principal component 2")
    axes.set_title(title or "word vectors (PCA)", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    image = io.BytesIO()
    figure.savefig(image, format=path.suffix[1:].lower() or "png")
    plt.close(figure)
    write_atomically(path, image.getvalue())
    return path
