"""The word2vec file formats, text and binary, as word2vec.c and gensim read and write them.

Both start with a header line `V d`. The text format then has one line per
word, `word x_1 ... x_d`, numbers in decimal; the binary format has, per word,
the word in UTF-8, one space, then d little-endian float32 (word2vec.c ends
each vector with a newline; gensim does not; the reader takes either). Words
hold no whitespace. Only the word vectors travel: counts and subwords do not
(word2vec files have no place for them), so a word outside the vocabulary has
no vector after the round trip.

    >>> write_word2vec(vectors, "vectors.bin", binary=True)
    >>> read_word2vec("vectors.bin", binary=True).most_similar("king")
    >>> gensim.models.KeyedVectors.load_word2vec_format("vectors.bin", binary=True)   # the same vectors
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from seqlab.embeddings.vectors import WordVectors
from seqlab.files import write_atomically


class Word2VecFormatError(ValueError):
    """A file that is not in the word2vec format it was read as."""


def word2vec_bytes(vectors: WordVectors, binary: bool = False) -> bytes:
    """The file's bytes: the header, then each word and its vector."""
    bad = [word for word in vectors.words if not word or any(ch.isspace() for ch in word)]
    if bad:
        raise ValueError(f"the word2vec format cannot hold words with whitespace or empty words: {bad[:5]}")
    out = io.BytesIO()
    out.write(f"{len(vectors)} {vectors.dim}\n".encode())
    matrix = vectors.vectors.numpy().astype("<f4")
    for word, row in zip(vectors.words, matrix):
        if binary:
            out.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
        else:
            out.write((word + " " + " ".join(repr(float(x)) for x in row) + "\n").encode("utf-8"))
    return out.getvalue()


def write_word2vec(vectors: WordVectors, path: str | os.PathLike, binary: bool = False) -> None:
    """Write `path` atomically in the text (`binary=False`) or binary format."""
    write_atomically(path, word2vec_bytes(vectors, binary))


def read_word2vec(path: str | os.PathLike, binary: bool | None = None) -> WordVectors:
    """Read a word2vec file; `binary=None` tells the formats apart by their bytes."""
    data = Path(path).read_bytes()
    header, _, body = data.partition(b"\n")
    try:
        count, dim = (int(x) for x in header.split())
    except ValueError:
        raise Word2VecFormatError(f"{path}: the first line must be 'WORDS DIMENSIONS', got {header[:60]!r}; "
                                  "is this a word2vec file?") from None
    if count < 0 or dim < 1:
        raise Word2VecFormatError(f"{path}: the header says {count} words of {dim} dimensions")
    if binary is None:
        binary = _looks_binary(body)
    words, matrix = (_binary if binary else _text)(body, count, dim, path)
    return WordVectors(words, torch.from_numpy(matrix))


def _looks_binary(body: bytes) -> bool:
    try:
        body[:4096].decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start < 4096 - 4  # a character cut at the end of the sample is still text
    return any(byte < 9 for byte in body[:4096])


def _binary(body: bytes, count: int, dim: int, path) -> tuple[list[str], np.ndarray]:
    words, matrix, at, width = [], np.empty((count, dim), dtype=np.float32), 0, 4 * dim
    for row in range(count):
        while at < len(body) and body[at:at + 1] in (b"\n", b" "):
            at += 1
        space = body.find(b" ", at)
        if space < 0 or space + 1 + width > len(body):
            raise Word2VecFormatError(f"{path}: the file ends inside word {row + 1} of {count}; it is cut short")
        words.append(_decoded(body[at:space], path, row))
        matrix[row] = np.frombuffer(body, dtype="<f4", count=dim, offset=space + 1)
        at = space + 1 + width
    return words, matrix


def _text(body: bytes, count: int, dim: int, path) -> tuple[list[str], np.ndarray]:
    lines = [line for line in body.split(b"\n") if line.strip()]
    if len(lines) != count:
        raise Word2VecFormatError(f"{path}: the header promises {count} words, the file has {len(lines)} lines")
    words, matrix = [], np.empty((count, dim), dtype=np.float32)
    for row, line in enumerate(lines):
        fields = line.rstrip().split(b" ")
        if len(fields) != dim + 1:
            raise Word2VecFormatError(f"{path}: line {row + 2} has {len(fields) - 1} numbers, the header says {dim}")
        words.append(_decoded(fields[0], path, row))
        try:
            matrix[row] = [float(x) for x in fields[1:]]
        except ValueError:
            raise Word2VecFormatError(f"{path}: line {row + 2} holds something that is not a number") from None
    return words, matrix


def _decoded(word: bytes, path, row: int) -> str:
    try:
        return word.decode("utf-8")
    except UnicodeDecodeError:
        raise Word2VecFormatError(f"{path}: word {row + 1} is not UTF-8; seqlab reads UTF-8 word2vec files "
                                  "only (re-save the file as UTF-8)") from None
