"""Project Gutenberg plain-text books, without the license header and footer.

A Gutenberg file is the book wrapped in boilerplate: a byte-order mark, a
header ending with `*** START OF THIS PROJECT GUTENBERG EBOOK ... ***`, and a
footer starting with `End of the Project Gutenberg EBook ...` or
`*** END OF THIS PROJECT GUTENBERG EBOOK ... ***`. `load_gutenberg` keeps what
lies between (from `start_at`, e.g. the title, when given).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from seqlab.data.datasets.text_corpus import STRICT, TextCorpus, read_text_file
from seqlab.data.fetch import DatasetFile, find_dataset_file

_HEADER_END = re.compile(r"^\*\*\* ?START OF (?:THE|THIS) PROJECT GUTENBERG EBOOK[^\n]*\n",
                         re.IGNORECASE | re.MULTILINE)
_FOOTER_START = re.compile(r"^(?:\*\*\* ?END OF (?:THE|THIS) PROJECT GUTENBERG|"
                           r"End of (?:the )?Project Gutenberg)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class GutenbergBook:
    file: DatasetFile
    title: str


GUTENBERG_BOOKS = MappingProxyType({
    1268: GutenbergBook(DatasetFile("1268-0.txt", "https://www.gutenberg.org/files/1268/1268-0.txt",
                                    ("355bfdc3f9b5e384b1918e817dd086ce0df97f4d294c69f032fb70b95c1e737c",)),
                        "THE MYSTERIOUS ISLAND"),
})


def load_gutenberg(book: int | None = 1268, path: str | os.PathLike[str] | None = None,
                   start_at: str | None = None, errors: str = STRICT,
                   download: bool = True, progress: bool = True) -> TextCorpus:
    """The text of a Gutenberg book as a one-document `TextCorpus`.

    book: a Gutenberg number seqlab knows (1268, *The Mysterious Island*), found
        or downloaded like every dataset; None with `path=` for any other book.
    start_at: where the text begins: its first occurrence in the file. By
        default the known book's title, or, for other books, the first line
        after the `*** START OF ...` header.

    For 1268 the first 'THE MYSTERIOUS ISLAND' is the one in the `*** START OF
    THIS PROJECT GUTENBERG EBOOK THE MYSTERIOUS ISLAND ***` line, so, exactly as
    in the tutorial, the text begins there (with ` ***` and the producers'
    credit) and its 80 distinct characters include `*`. Pass
    `start_at="THE MYSTERIOUS ISLAND\n\nby Jules Verne"` for the title page
    only (79 distinct).

    Example:
        text = load_gutenberg(1268).text   # 1,112,350 characters, 80 distinct
        other = load_gutenberg(book=None, path="84-0.txt").text
    """
    if book is not None and book not in GUTENBERG_BOOKS:
        raise ValueError(f"seqlab has no address or checksum for Gutenberg book {book} (it knows "
                         f"{list(GUTENBERG_BOOKS)}); download it from https://www.gutenberg.org/ebooks/"
                         f"{book} and pass book=None, path=...")
    if book is None and path is None:
        raise ValueError("pass book=1268 (a known book) or path= to a Gutenberg .txt file")
    if book is None:
        file, title = Path(path).expanduser(), None
    else:
        title = GUTENBERG_BOOKS[book].title
        file = find_dataset_file(GUTENBERG_BOOKS[book].file, path, download, progress)
    decoded = read_text_file(file, errors=errors)
    text = strip_gutenberg_boilerplate(decoded.text, start_at or title, source=str(file))
    return TextCorpus([text], [str(file)], decoded.replaced)


def strip_gutenberg_boilerplate(text: str, start_at: str | None = None, source: str = "text") -> str:
    """The book without the Gutenberg header and footer (BOM already removed).

    With `start_at`, the text begins at its first occurrence in the file, as the
    tutorial's `text.find(title)` does; otherwise right after the
    `*** START OF ...` line. It ends where the footer begins.
    """
    if start_at is not None:
        start = text.find(start_at)
        if start < 0:
            raise ValueError(f"{source} never contains start_at={start_at!r}; pass the book's "
                             "first words, or start_at=None to start after the Gutenberg header")
    else:
        header = _HEADER_END.search(text)
        if header is None:
            raise ValueError(f"{source} has no '*** START OF THE PROJECT GUTENBERG EBOOK' line: it "
                             "is not a Project Gutenberg text; read other files with load_text_corpus")
        start = len(text) - len(text[header.end():].lstrip("\n"))
    footer = _FOOTER_START.search(text, start + 1)
    return text[start : footer.start() if footer else len(text)]
