"""The translator's text side: tokens, vocabularies with `<sos>`/`<eos>`, encoded pairs, and back to text.

Texts are lowercased words with each punctuation mark a token of its own
(`make_tokenizer`), or lowercased sentencepiece subwords learned from the
training pairs (`make_tokenizers(pairs, "subword")`, one model per language or
one `joint` model for both). The target vocabulary holds `<sos>` and `<eos>`:
the decoder reads `<sos> y_1 … y_n` and is trained to write `y_1 … y_n <eos>`.
A joint vocabulary is one `Vocabulary` for both sides (which lets the
transformer share its embeddings).

    >>> source_vocab, target_vocab = build_vocabularies([("I am cold.", "J'ai froid.")])
    >>> source, target_in, target_out = encode_pairs([("I am cold.", "J'ai froid.")], source_vocab, target_vocab)
    >>> detokenize(["il", "n", "'", "aime", "pas", "ça", "."])
    "il n'aime pas ça."
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import chain

import numpy as np

from seqlab.data import SubwordTokenizer, Tokenizer, Vocabulary, WordTokenizer

__all__ = ["EOS", "SOS", "TOKENIZERS", "TranslationInputError", "build_vocabularies", "detokenize", "encode_pairs",
           "make_tokenizer", "make_tokenizers", "pad_rows", "special_indices", "text_of", "vocabulary_of"]

TOKENIZERS = ("word", "subword")

SOS, EOS = "<sos>", "<eos>"
JOIN_BOTH, ATTACH_LEFT = frozenset("'’-"), frozenset(".,!?;:)…")


class TranslationInputError(ValueError):
    """A text cannot be translated: it is empty, or none of its words is in the source vocabulary."""


def detokenize(tokens: Sequence[str]) -> str:
    """Tokens back to text: `'` and `-` join their neighbours, `. , ! ? ; : )` attach to the word before.

        >>> detokenize(["il", "n", "'", "aime", "pas", "ça", "."])
        "il n'aime pas ça."
    """
    text, glue_next = "", True
    for token in tokens:
        text += token if glue_next or token in ATTACH_LEFT or token in JOIN_BOTH else " " + token
        glue_next = token in JOIN_BOTH
    return text


def text_of(tokens: Sequence[str], tokenizer: Tokenizer | None) -> str:
    """Output tokens as text: subword pieces decoded by their model, words joined by `detokenize`."""
    if isinstance(tokenizer, SubwordTokenizer):
        return tokenizer.decode(tokens)
    return detokenize(tokens)


def make_tokenizer() -> WordTokenizer:
    """Lowercased words, each punctuation mark its own token (so '?' and '.' are translated too)."""
    return WordTokenizer(lowercase=True, keep_punctuation=True)


def make_tokenizers(pairs: Sequence[tuple[str, str]], kind: str = "word", vocab_size: int = 8000,
                    model_type: str = "unigram", joint: bool = False) -> tuple[Tokenizer, Tokenizer]:
    """The source and target tokenizers: `make_tokenizer()` for both (`kind="word"`), or lowercased
    sentencepiece models (`kind="subword"`, `vocab_size` pieces each, unigram or BPE) learned from the
    training pairs' sources and targets, or from both at once (`joint=True`, one model)."""
    if kind not in TOKENIZERS:
        raise ValueError(f"the tokenizer must be one of {TOKENIZERS}, got {kind!r}.")
    if kind == "word":
        tokenizer = make_tokenizer()
        return tokenizer, tokenizer
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    if joint:
        tokenizer = SubwordTokenizer.train(sources + targets, vocab_size, model_type, lowercase=True)
        return tokenizer, tokenizer
    return tuple(SubwordTokenizer.train(texts, vocab_size, model_type, lowercase=True) for texts in (sources, targets))


def build_vocabularies(pairs: Sequence[tuple[str, str]], min_count: int = 1, max_size: int | None = None,
                       tokenizers: tuple[Tokenizer, Tokenizer] | None = None,
                       joint: bool = False) -> tuple[Vocabulary, Vocabulary]:
    """Source vocabulary and target vocabulary (with `<sos>`, `<eos>`) of the training pairs.

    `tokenizers`: (source, target), `make_tokenizers(pairs)` (words) when not
    given. `joint=True` counts both sides into one vocabulary, returned twice
    (its tokenizers must then be one).
    """
    source_tokenizer, target_tokenizer = tokenizers or make_tokenizers(pairs)
    if joint:
        if source_tokenizer.to_config() != target_tokenizer.to_config():
            raise ValueError("A joint vocabulary needs one tokenizer for both languages; make them with "
                             "make_tokenizers(pairs, kind, joint=True).")
        both = Vocabulary.build(chain((s for s, _ in pairs), (t for _, t in pairs)), min_freq=min_count,
                                max_size=max_size, specials=(SOS, EOS), tokenizer=source_tokenizer)
        return both, both
    source = Vocabulary.build((s for s, _ in pairs), min_freq=min_count, max_size=max_size,
                              tokenizer=source_tokenizer)
    target = Vocabulary.build((t for _, t in pairs), min_freq=min_count, max_size=max_size,
                              specials=(SOS, EOS), tokenizer=target_tokenizer)
    return source, target


def encode_pairs(pairs: Sequence[tuple[str, str]], source_vocabulary: Vocabulary,
                 target_vocabulary: Vocabulary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`source (N, S)`, decoder input `<sos> y (N, T)` and target `y <eos> (N, T)`, right-padded with 0."""
    sos, eos = special_indices(target_vocabulary)
    sources = [source_vocabulary.encode(s) for s, _ in pairs]
    targets = [target_vocabulary.encode(t) for _, t in pairs]
    return (np.array(pad_rows(sources), dtype=np.int64),
            np.array(pad_rows([[sos, *t] for t in targets]), dtype=np.int64),
            np.array(pad_rows([[*t, eos] for t in targets]), dtype=np.int64))


def vocabulary_of(value: Vocabulary | dict, what: str) -> Vocabulary:
    """`value` itself, or the `Vocabulary` its saved JSON (a dict, as config.json holds it) describes."""
    if isinstance(value, Vocabulary):
        return value
    if isinstance(value, dict):
        return Vocabulary.from_json(json.dumps(value))
    raise TypeError(f"{what} must be a seqlab Vocabulary (or its saved JSON as a dict), got {type(value).__name__}.")


def special_indices(vocabulary: Vocabulary) -> tuple[int, int]:
    """The indices of `<sos>` and `<eos>` in a target vocabulary."""
    if SOS not in vocabulary or EOS not in vocabulary:
        raise ValueError(f"The target vocabulary needs the specials {SOS} and {EOS} (start and end of a "
                         f"sentence); it has {list(vocabulary.specials)}. Build it with "
                         f"Vocabulary.build(texts, specials=('{SOS}', '{EOS}'), tokenizer=...).")
    return vocabulary.index(SOS), vocabulary.index(EOS)


def pad_rows(rows: Sequence[Sequence[int]]) -> list[list[int]]:
    """`rows` right-padded with 0 to the longest."""
    width = max(map(len, rows))
    return [list(row) + [0] * (width - len(row)) for row in rows]

