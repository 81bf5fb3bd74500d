"""Plain UTF-8 text: one file or a folder of files, as a list of documents.

Also home of `decode_text`, which every loader uses to turn bytes into text
with the same rules: a leading byte-order mark is dropped, line endings become
`\\n` (as Python's text mode does), and undecodable bytes are an error that
names the file and byte offset, or, with `errors="replace"`, become U+FFFD and
are counted.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STRICT = "strict"
REPLACE = "replace"
REPLACEMENT_CHARACTER = "\ufffd"


@dataclass
class TextCorpus:
    """Documents of plain text and the files they came from.

    documents: one string per file (newlines `\\n`, no byte-order mark).
    sources: the file of each document.
    replaced: undecodable byte sequences replaced by U+FFFD (`errors="replace"`).

    Example:
        corpus = load_text_corpus("novels/")   # every *.txt below novels/
        text = corpus.text                     # documents joined by newlines
        print(corpus.summary())
    """

    documents: list[str]
    sources: list[str]
    replaced: int = 0

    @property
    def text(self) -> str:
        """All documents joined by a newline: the stream a character LM reads."""
        return "\n".join(self.documents)

    def summary(self) -> str:
        text = self.text
        summary = (f"{len(self.documents):,} documents, {len(text):,} characters, "
                   f"{len(set(text)):,} distinct")
        return summary + (f", {self.replaced:,} undecodable byte runs replaced" if self.replaced else "")


class TextDecodeError(ValueError):
    """Bytes that are not valid text in the expected encoding."""


@dataclass
class DecodedText:
    text: str
    replaced: int


def load_text_corpus(path: str | os.PathLike[str], pattern: str = "*.txt",
                     encoding: str = "utf-8", errors: str = STRICT) -> TextCorpus:
    """Read a text file, or every file matching `pattern` below a folder (sorted).

    Empty files are left out; a corpus with no text at all is an error.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist; pass a UTF-8 text file or a folder of them")
    files = [root] if root.is_file() else sorted(p for p in root.rglob(pattern) if p.is_file())
    if not files:
        raise ValueError(f"{root} has no files matching {pattern!r}: give a text file, or a folder of "
                         f"{pattern} files (in Python, pattern=... matches other names)")
    documents, sources, replaced = [], [], 0
    for file in files:
        decoded = read_text_file(file, encoding, errors)
        replaced += decoded.replaced
        if decoded.text.strip():
            documents.append(decoded.text)
            sources.append(str(file))
    if not documents:
        raise ValueError(f"empty corpus: the {len(files)} file(s) under {root} hold no text")
    return TextCorpus(documents, sources, replaced)


def read_text_file(path: Path, encoding: str = "utf-8", errors: str = STRICT) -> DecodedText:
    return decode_text(Path(path).read_bytes(), str(path), encoding, errors)


def decode_text(data: bytes, source: str, encoding: str = "utf-8",
                errors: str = STRICT) -> DecodedText:
    """Decode `data`; `source` names it in errors (a file, or archive:member)."""
    if errors not in (STRICT, REPLACE):
        raise ValueError(f"errors must be {STRICT!r} or {REPLACE!r}, got {errors!r}")
    try:
        text, replaced = data.decode(encoding), 0
    except UnicodeDecodeError as error:
        if errors == STRICT:
            bad = data[error.start : error.end]
            raise TextDecodeError(
                f"{source}: byte offset {error.start}: bytes {bad!r} are not valid {encoding} "
                f"({error.reason}); convert the file to {encoding}, or replace undecodable bytes with U+FFFD "
                "(they are counted): --decode-errors replace on the command line, errors='replace' in Python"
            ) from None
        text, replaced = _decode_replacing(data, encoding)
    if text.startswith("\ufeff"):
        text = text[1:]
    return DecodedText(text.replace("\r\n", "\n").replace("\r", "\n"), replaced)


def _decode_replacing(data: bytes, encoding: str) -> tuple[str, int]:
    # U+FFFD already present in the file is text, not a replacement: subtract it.
    # (A UTF-8 decoder never swallows a valid sequence into an invalid one, so
    # each encoded U+FFFD in the bytes is exactly one U+FFFD in the text.)
    text = data.decode(encoding, errors=REPLACE)
    encoded_replacement = REPLACEMENT_CHARACTER.encode(encoding, errors="ignore")
    genuine = data.count(encoded_replacement) if encoded_replacement else 0
    return text, text.count(REPLACEMENT_CHARACTER) - genuine
