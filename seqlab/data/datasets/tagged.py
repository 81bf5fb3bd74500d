"""Tagged sentences (one tag per token), and the plain `token<TAB>tag` file format.

`TaggedSentences` is what every tagging loader returns: parallel lists of
token lists and tag lists, one pair per sentence. `read_tagged_tsv` reads the
simplest tagging format, used by KLUE NER and by users' own data:

    ## a comment line (KLUE heads each sentence with one; `##<TAB>tag` is the token ##)
    경<TAB>B-OG
    찰<TAB>I-OG
     <TAB>O            the token is everything before the last tab: here a space
                       (a blank line between sentences)

A line without a tab, an empty token or an empty tag is a `MalformedDataError`
naming the file and line; a file with no sentence is one too.

    >>> data = read_tagged_tsv("my_ner.tsv")
    >>> data.sentences[0], data.tags[0]
    (['경', '찰', ...], ['B-OG', 'I-OG', ...])
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from seqlab.data.datasets.text_corpus import STRICT, read_text_file
from seqlab.data.datasets.text_label import MalformedDataError

__all__ = ["TaggedSentences", "is_bio_tagset", "read_tagged_tsv"]


@dataclass
class TaggedSentences:
    """Sentences as token lists and their tags; `name` says where they came from.

    sentences[i] and tags[i] have the same length (checked). `ids` are the
    sentences' identifiers where the file gives them (CoNLL-U sent_id), else
    their 1-based position.
    """

    name: str
    sentences: list[list[str]]
    tags: list[list[str]]
    ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.sentences) != len(self.tags):
            raise ValueError(f"{self.name}: {len(self.sentences)} sentences but {len(self.tags)} tag lists.")
        for index, (tokens, tags) in enumerate(zip(self.sentences, self.tags)):
            if len(tokens) != len(tags):
                raise ValueError(f"{self.name}: sentence {index + 1} has {len(tokens)} tokens but {len(tags)} tags.")
        if not self.ids:
            self.ids = [str(index + 1) for index in range(len(self.sentences))]

    def __len__(self) -> int:
        return len(self.sentences)

    def subset(self, indices: list[int], name: str) -> "TaggedSentences":
        """The sentences at `indices`, in that order."""
        return TaggedSentences(name, [self.sentences[i] for i in indices], [self.tags[i] for i in indices],
                               [self.ids[i] for i in indices])

    @property
    def tokens(self) -> int:
        return sum(map(len, self.sentences))

    def tag_counts(self) -> Counter:
        return Counter(tag for tags in self.tags for tag in tags)

    def summary(self) -> str:
        return f"{self.name}: {len(self):,} sentences, {self.tokens:,} tokens, {len(self.tag_counts())} tags"


def is_bio_tagset(tags) -> bool:
    """True when every tag is O, B-TYPE or I-TYPE (the IOB2 scheme that entity scores need)."""
    return all(tag == "O" or (tag[:2] in ("B-", "I-") and len(tag) > 2) for tag in tags)


def read_tagged_tsv(path: str | os.PathLike[str], errors: str = STRICT) -> TaggedSentences:
    """Read `token<TAB>tag` lines, a blank line between sentences, `##` comment lines skipped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file; give a token<TAB>tag file (blank line between sentences)")
    text = read_text_file(path, errors=errors).text
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    tokens: list[str] = []
    labels: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.startswith("##") and line.rpartition("\t")[0] != "##":  # a comment; "##<TAB>tag" is a token
            continue
        if not line.strip("\t\r"):  # a sentence ends (a line that is only a space is a token without a tab)
            if tokens:
                sentences.append(tokens)
                tags.append(labels)
                tokens, labels = [], []
            continue
        token, tab, tag = line.rpartition("\t")
        if not tab:
            raise MalformedDataError(f"{path}:{number}: no tab in {line[:40]!r}; each line must be "
                                     "token<TAB>tag, with a blank line between sentences")
        tag = tag.strip()
        if not token or not tag:
            raise MalformedDataError(f"{path}:{number}: empty {'token' if not token else 'tag'} in {line[:40]!r}; "
                                     "each line must be token<TAB>tag")
        tokens.append(token)
        labels.append(tag)
    if tokens:
        sentences.append(tokens)
        tags.append(labels)
    if not sentences:
        raise MalformedDataError(f"{path} holds no tagged sentence; expected token<TAB>tag lines")
    return TaggedSentences(path.name, sentences, tags)
