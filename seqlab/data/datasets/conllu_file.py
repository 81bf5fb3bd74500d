"""CoNLL-U files (Universal Dependencies) as tagged sentences, read with `conllu`.

A CoNLL-U sentence has one line per word, ten tab-separated columns (ID FORM
LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC), plus two kinds of line that are
not words and that the UD evaluation (conll18_ud_eval.py) skips for tagging:
multiword-token ranges (`2-3 don't`, the surface token over the words `do`
and `n't`) and empty nodes (`8.1`). Words are what gets tagged:

    >>> data = read_conllu("en_ewt-ud-dev.conllu", tagset="upos")
    >>> data.sentences[0][:3], data.tags[0][:3]
    (['From', 'the', 'AP'], ['ADP', 'DET', 'PROPN'])

A word without the tag column (a short line) or with `_` there is a
`MalformedDataError` naming the sentence and word.
"""
from __future__ import annotations

import os
from pathlib import Path

from seqlab.data.datasets.tagged import TaggedSentences
from seqlab.data.datasets.text_corpus import STRICT, read_text_file
from seqlab.data.datasets.text_label import MalformedDataError

__all__ = ["TAGSETS", "read_conllu"]

TAGSETS = ("upos", "xpos")


def read_conllu(path: str | os.PathLike[str], tagset: str = "upos", errors: str = STRICT,
                name: str | None = None) -> TaggedSentences:
    """The words of every sentence in `path` and their `tagset` column ("upos" or "xpos")."""
    try:
        import conllu
    except ImportError:
        raise ImportError("reading CoNLL-U needs conllu: pip install 'seqlab[tag]' (or pip install conllu)") from None
    if tagset not in TAGSETS:
        raise ValueError(f"tagset must be one of {TAGSETS}, got {tagset!r}.")
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file; give a CoNLL-U file (.conllu)")
    text = read_text_file(path, errors=errors).text
    try:
        parsed = conllu.parse(text)
    except conllu.exceptions.ParseException as error:
        raise MalformedDataError(f"{path}: not valid CoNLL-U ({error})") from None
    sentences, tags, ids = [], [], []
    for number, sentence in enumerate(parsed, start=1):
        sentence_id = sentence.metadata.get("sent_id", str(number))
        words = [token for token in sentence if isinstance(token["id"], int)]  # no ranges, no empty nodes
        for word in words:
            tag = word.get(tagset)
            if tag in (None, "_", "") and tagset not in word:
                raise MalformedDataError(
                    f"{path}: sentence {sentence_id}, word {word['id']} ({word['form']!r}) has no "
                    f"{tagset.upper()} column; CoNLL-U words need all ten tab-separated columns "
                    f"(ID FORM LEMMA UPOS XPOS ...)")
            if tag in (None, "_", ""):
                other = "upos" if tagset == "xpos" else "xpos"
                raise MalformedDataError(
                    f"{path}: sentence {sentence_id}, word {word['id']} ({word['form']!r}) has no {tagset.upper()} "
                    f"tag ('_'): this treebank does not give {tagset.upper()} for every word; tag its "
                    f"{other.upper()} instead (--tagset {other})")
        if words:
            sentences.append([word["form"] for word in words])
            tags.append([word[tagset] for word in words])
            ids.append(sentence_id)
    if not sentences:
        raise MalformedDataError(f"{path} holds no CoNLL-U sentence (lines of ten tab-separated columns, "
                                 "a blank line after each sentence)")
    return TaggedSentences(name or path.name, sentences, tags, ids)
