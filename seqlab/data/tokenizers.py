"""Tokenizers: text -> list of string tokens, the first step of every pipeline.

Every tokenizer is a small deterministic object with the same interface:
`tokenize(text) -> list[str]` (also available as `tokenizer(text)`),
`decode(tokens) -> str`, and `to_config()` so that a `Vocabulary` can save the
tokenizer it was built with (`tokenizer_from_config` rebuilds it). Korean
jamo and morpheme tokenizers live in `seqlab.data.korean`, sentencepiece
subwords in `seqlab.data.subwords`.
"""
from __future__ import annotations

import functools
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from seqlab.data.korean import JamoTokenizer, KiwiTokenizer
from seqlab.data.subwords import SubwordTokenizer


def _combining_mark_pattern() -> str:
    """A regex for one combining mark (Unicode category Mn, Mc or Me), from this Python's Unicode tables.

    `re` tests a class of BMP characters with one table lookup but tries ranges
    beyond the BMP one by one, so the rare astral marks sit behind a single
    range check that every BMP character fails at once.
    """
    marks = [code for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)).startswith("M")]
    ranges: list[list[int]] = []
    for code in marks:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])

    def char_class(selected: list[list[int]]) -> str:
        return "[" + "".join(rf"\U{low:08x}" if low == high else rf"\U{low:08x}-\U{high:08x}"
                             for low, high in selected) + "]"

    bmp = [r for r in ranges if r[0] <= 0xFFFF]  # U+FFFF is a noncharacter: no run crosses it
    astral = [r for r in ranges if r[0] > 0xFFFF]
    return rf"{char_class(bmp)}|(?=[\U00010000-\U{sys.maxunicode:08x}]){char_class(astral)}"


# A word is a run of letters, digits (`\w` is Unicode-aware: Hangul, accented
# Latin, digits of any script, but it also matches "_", which is punctuation)
# and combining marks, which `\w` leaves out although they belong to the letter
# before them: NFC cannot merge every one (`ọ́`, `n̈`, the `i̇` that lowercasing
# `İ` gives), and Indic vowel signs are marks. Written as letter runs joined by
# mark runs: on non-ASCII text about 1.5x the time of plain `[^\W_]+` (ASCII text
# takes the fast path below either way).
# The mark class scans every code point (about 0.13 s), so the patterns are built on first use,
# not when seqlab (every `seqlab` command) is imported.
@functools.cache
def _patterns() -> dict[str, str]:
    mark = _combining_mark_pattern()
    word = rf"(?:[^\W_]|{mark})[^\W_]*(?:(?:{mark})+[^\W_]*)*"
    return {"WORD_PATTERN": word, "WORD_OR_PUNCTUATION_PATTERN": rf"{word}|[^\w\s]|_"}


def __getattr__(name: str) -> str:
    """`WORD_PATTERN` and `WORD_OR_PUNCTUATION_PATTERN`, built on first access."""
    if name in ("WORD_PATTERN", "WORD_OR_PUNCTUATION_PATTERN"):
        return _patterns()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Fast path of WORD_PATTERN for ASCII text (most English text): every ASCII
# character that is not a letter or digit becomes a space, then str.split.
# About 2x faster than the regex; tests hold the two equal on random text.
_ASCII_NON_WORD_TO_SPACE = MappingProxyType(
    str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()}))


@runtime_checkable
class Tokenizer(Protocol):
    """What the rest of seqlab expects from a tokenizer."""

    def __call__(self, text: str) -> list[str]: ...

    def decode(self, tokens: Sequence[str]) -> str: ...

    def to_config(self) -> dict[str, Any]: ...


class WordTokenizer:
    """Words: runs of letters, digits and combining marks in any script; everything else splits.

    `"Don't stop—café 2 já 한국어!"` gives `Don t stop café 2 já 한국어`. With
    `keep_punctuation=True` every punctuation or symbol character becomes its
    own token (`Don ' t stop — café ... !`). A custom `pattern` (a regular
    expression) replaces both rules: its matches are the tokens. Text is first
    NFC-normalized so that `é` typed as `e` + combining accent is one character;
    marks with no precomposed form (`Ọlọ́run`, `n̈oël`) stay in their word too.
    Word tokenization loses spacing, so `decode` joins tokens with spaces.

    Example:
        tokenizer = WordTokenizer(lowercase=True)
        tokenizer("The film's <br />ending!")  # ['the', 'film', 's', 'br', 'ending']
        WordTokenizer(keep_punctuation=True)("Hi!")  # ['Hi', '!']
    """

    def __init__(
        self,
        lowercase: bool = False,
        keep_punctuation: bool = False,
        pattern: str | None = None,
        normalize: str | None = "NFC",
    ) -> None:
        if pattern is not None and keep_punctuation:
            raise ValueError(
                "WordTokenizer got both pattern= and keep_punctuation=True; a custom "
                "pattern decides on its own which characters are tokens, so pass only one."
            )
        self.lowercase = lowercase
        self.keep_punctuation = keep_punctuation
        self.pattern = pattern
        self.normalize = normalize
        default = _patterns()["WORD_OR_PUNCTUATION_PATTERN" if keep_punctuation else "WORD_PATTERN"]
        self._regex = re.compile(pattern if pattern is not None else default)
        self._ascii_fast_path = pattern is None and not keep_punctuation

    def tokenize(self, text: str) -> list[str]:
        if self.normalize:
            text = unicodedata.normalize(self.normalize, text)
        if self.lowercase:
            text = text.lower()
        if self._ascii_fast_path and text.isascii():
            return text.translate(_ASCII_NON_WORD_TO_SPACE).split()
        if self._regex.groups:  # findall would return the groups, not the matches
            return [match.group(0) for match in self._regex.finditer(text)]
        return self._regex.findall(text)

    __call__ = tokenize

    def decode(self, tokens: Sequence[str]) -> str:
        return " ".join(tokens)

    def to_config(self) -> dict[str, Any]:
        return {"type": "WordTokenizer", "lowercase": self.lowercase,
                "keep_punctuation": self.keep_punctuation, "pattern": self.pattern,
                "normalize": self.normalize}

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.to_config().items() if k != "type")
        return f"WordTokenizer({options})"


class CharTokenizer:
    """One token per Unicode character (code point): the character LM's input.

    Nothing is normalized or dropped, so `decode(tokenize(text)) == text` for
    every string. For Korean this is syllable-level tokenization, since each
    precomposed Hangul syllable is one character.

    Example:
        tokenizer = CharTokenizer()
        tokenizer("Hi 한국")                  # ['H', 'i', ' ', '한', '국']
        tokenizer.decode(tokenizer("Hi 한국"))  # 'Hi 한국'
    """

    def tokenize(self, text: str) -> list[str]:
        return list(text)

    __call__ = tokenize

    def decode(self, tokens: Iterable[str]) -> str:
        return "".join(tokens)

    def to_config(self) -> dict[str, Any]:
        return {"type": "CharTokenizer"}

    def __repr__(self) -> str:
        return "CharTokenizer()"


_TOKENIZER_TYPES = MappingProxyType({cls.__name__: cls for cls in
                                     (WordTokenizer, CharTokenizer, JamoTokenizer, KiwiTokenizer,
                                                                 SubwordTokenizer)})


# The custom patterns seqlab's own recipes write (the "tfds" preset's `\w+`) and
# other linear-time ones; a `pattern` read from a file is run only if it is one
# of these, since a regular expression with nested repeats such as `(a+)+$` can
# take minutes on a 30-character text (catastrophic backtracking).
KNOWN_PATTERNS = frozenset({r"\w+", r"\S+", r"[^\W_]+", r"\w+|[^\w\s]"})
TRUST_PATTERNS_VARIABLE = "SEQLAB_TRUST_TOKENIZER_PATTERNS"


def tokenizer_from_config(config: dict[str, Any], *, trust_pattern: bool | None = None) -> Tokenizer:
    """Rebuild a tokenizer from its `to_config()` dictionary.

    A `WordTokenizer` pattern that seqlab does not write itself (not in
    `KNOWN_PATTERNS`) is refused unless `trust_pattern=True` or the environment
    sets `SEQLAB_TRUST_TOKENIZER_PATTERNS=1`: a config file is data, and a
    hostile one must not be able to hang `predict`.
    """
    options = dict(config)
    type_name = options.pop("type", None)
    if type_name not in _TOKENIZER_TYPES:
        raise ValueError(
            f"unknown tokenizer type {type_name!r} in config {config!r}; expected one of "
            f"{sorted(_TOKENIZER_TYPES)}"
        )
    pattern = options.get("pattern")
    if trust_pattern is None:
        trust_pattern = os.environ.get(TRUST_PATTERNS_VARIABLE) == "1"
    if pattern is not None and not trust_pattern and pattern not in KNOWN_PATTERNS:
        raise ValueError(
            f"the saved tokenizer uses the custom regular expression {pattern!r}, which seqlab "
            f"did not write and so will not run from a file (a pattern like '(a+)+$' can hang on "
            f"a short text). If you made this model yourself, allow it by setting the environment "
            f"variable {TRUST_PATTERNS_VARIABLE}=1."
        )
    return _TOKENIZER_TYPES[type_name](**options)
