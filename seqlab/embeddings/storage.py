"""Saving and loading `WordVectors` as a directory: `vectors.json` and `vectors.safetensors`.

Like a model directory: the tensors in safetensors (never pickle), the rest in
JSON (the words, their counts, the subword settings and the training's
settings and history when given), with a format marker; written atomically
with `owned_directory`, so a crash leaves the old version or the new one and
the user's other files in the directory stay.

    >>> save_vectors(vectors, "runs/imdb-vectors", training={"settings": ...})
    >>> vectors = load_vectors("runs/imdb-vectors")
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save

from seqlab.embeddings.subwords import SubwordHasher
from seqlab.embeddings.vectors import WordVectors
from seqlab.files import check_writable_directory, owned_directory, write_new_file

FORMAT = "seqlab.WordVectors"
VERSION = 1
CONFIG, TENSORS = "vectors.json", "vectors.safetensors"
OWNED = (CONFIG, TENSORS)


class VectorsDirectoryError(ValueError):
    """A directory that does not hold vectors seqlab saved (or holds damaged ones)."""


def is_vectors_directory(directory: str | os.PathLike) -> bool:
    config = Path(directory) / CONFIG
    try:
        return json.loads(config.read_text("utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def save_vectors(vectors: WordVectors, directory: str | os.PathLike, training: dict[str, Any] | None = None) -> None:
    """Write `directory` (vectors.json + vectors.safetensors), keeping the user's other files."""
    directory = check_writable_directory(directory, is_vectors_directory, "word vectors", OWNED)
    tensors = {"vectors": vectors.vectors.contiguous()}
    config: dict[str, Any] = {"format": FORMAT, "version": VERSION, "words": vectors.words,
                              "counts": vectors.counts, "subwords": None, "training": training}
    if vectors.subwords is not None:
        tensors["ngram_vectors"] = vectors.ngram_vectors.contiguous()
        tensors["buckets"] = vectors.buckets.contiguous()
        config["subwords"] = vectors.subwords.to_config()
    with owned_directory(directory, OWNED) as staging:
        write_new_file(staging / TENSORS, save(tensors))
        write_new_file(staging / CONFIG, json.dumps(config, ensure_ascii=False).encode("utf-8"))


def load_vectors(directory: str | os.PathLike) -> WordVectors:
    """Read vectors that `save_vectors` wrote (or a run's OUT, whose OUT/vectors they are); a clear error else."""
    directory = Path(directory)
    if not is_vectors_directory(directory) and is_vectors_directory(directory / "vectors"):
        directory = directory / "vectors"  # the --out of `seqlab embeddings train`
    config = read_vectors_config(directory)
    try:
        tensors = load_file(str(directory / TENSORS))
    except FileNotFoundError:
        raise VectorsDirectoryError(f"{directory} has {CONFIG} but no {TENSORS}; it is incomplete") from None
    except Exception as error:
        raise VectorsDirectoryError(f"{directory / TENSORS} is damaged ({error}); train or save again") from None
    subwords = SubwordHasher(**config["subwords"]) if config.get("subwords") else None
    try:
        return WordVectors(config["words"], tensors["vectors"], config.get("counts"), subwords=subwords,
                           ngram_vectors=tensors.get("ngram_vectors"), buckets=tensors.get("buckets"))
    except (KeyError, ValueError) as error:
        raise VectorsDirectoryError(f"{directory}: its files do not agree ({error}); train or save again") from None


def read_vectors_config(directory: str | os.PathLike) -> dict[str, Any]:
    directory = Path(directory)
    if not directory.is_dir():
        raise VectorsDirectoryError(f"{directory} is not a directory of word vectors; give the --out of "
                                    "`seqlab embeddings train` (or a directory save_vectors wrote)")
    try:
        config = json.loads((directory / CONFIG).read_text("utf-8"))
    except FileNotFoundError:
        raise VectorsDirectoryError(f"{directory} holds no {CONFIG}: it is not a directory of word vectors; give "
                                    "the --out of `seqlab embeddings train`") from None
    except (OSError, ValueError) as error:
        raise VectorsDirectoryError(f"{directory / CONFIG} cannot be read ({error}); train or save again") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise VectorsDirectoryError(f"{directory / CONFIG} is not seqlab's word vectors (format {FORMAT!r})")
    if config.get("version", 0) > VERSION:
        raise VectorsDirectoryError(f"{directory} was written by a newer seqlab (version {config['version']}); "
                                    "upgrade seqlab to read it")
    return config
