"""Korean tokenization below and above the syllable: jamo and morphemes.

Syllable-level Korean needs nothing special: every Hangul syllable is one
Unicode character, so `CharTokenizer` already gives syllables. This module adds
the two other granularities used for Korean models:

- `JamoTokenizer`: each precomposed syllable (U+AC00..U+D7A3) becomes its
  initial, medial and (when present) final conjoining jamo, by the arithmetic of
  the Unicode standard (section 3.12):
  `syllable = 0xAC00 + (initial * 21 + medial) * 28 + final`.
  Decoding recomposes them, so `decode(tokenize(text)) == text`.
- `KiwiTokenizer`: morphemes from the Kiwi analyzer (optional `kiwipiepy`).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

SYLLABLE_BASE = 0xAC00  # 가
SYLLABLE_COUNT = 11172  # 가..힣
INITIAL_BASE = 0x1100  # ᄀ (choseong)
MEDIAL_BASE = 0x1161  # ᅡ (jungseong)
FINAL_BASE = 0x11A7  # one before ᆨ: final index 0 means "no final consonant"
INITIAL_COUNT, MEDIAL_COUNT, FINAL_COUNT = 19, 21, 28

_COMPOSABLE = re.compile(
    f"([{chr(INITIAL_BASE)}-{chr(INITIAL_BASE + INITIAL_COUNT - 1)}])"
    f"([{chr(MEDIAL_BASE)}-{chr(MEDIAL_BASE + MEDIAL_COUNT - 1)}])"
    f"([{chr(FINAL_BASE + 1)}-{chr(FINAL_BASE + FINAL_COUNT - 1)}])?"
)


class JamoTokenizer:
    """Hangul syllables as conjoining jamo tokens; other characters unchanged.

    Each token is one character: an initial (U+1100..), a medial (U+1161..),
    a final (U+11A8..) or any non-Hangul character as it was. Initials and
    finals are distinct code points, so `ᄀ` (initial g) and `ᆨ` (final g) are
    different tokens and recomposition is unambiguous.

    Round trip: `decode(tokenize(text)) == text` for every text whose Hangul
    is precomposed (what keyboards, the web and NFC produce). Text that already
    holds decomposed Hangul (NFD, e.g. macOS file names) is tokenized exactly
    like its precomposed form and decodes to that precomposed form, which is
    canonically equivalent, so both spellings give the model the same tokens.

    Example:
        tokenizer = JamoTokenizer()
        tokenizer("한국")                    # ['ᄒ', 'ᅡ', 'ᆫ', 'ᄀ', 'ᅮ', 'ᆨ']
        tokenizer.decode(tokenizer("한국"))  # '한국'
    """

    def tokenize(self, text: str) -> list[str]:
        return list(decompose_jamo(text))

    __call__ = tokenize

    def decode(self, tokens: Iterable[str]) -> str:
        return compose_jamo("".join(tokens))

    def to_config(self) -> dict[str, Any]:
        return {"type": "JamoTokenizer"}

    def __repr__(self) -> str:
        return "JamoTokenizer()"


class KiwiTokenizer:
    """Korean morphemes from the Kiwi analyzer (`pip install kiwipiepy`).

    `아버지가 방에 들어가신다` becomes `아버지 가 방 에 들어가 시 ᆫ다`; with
    `with_tags=True` each token carries its part of speech (`아버지/NNG`).
    Kiwi is deterministic, so the same text always gives the same tokens.
    Morpheme analysis is not lossless; `decode` joins tagged tokens with
    Kiwi's own joiner and untagged ones with spaces. Pass `analyzer=` to use a
    `kiwipiepy.Kiwi` you configured (user dictionary, model) or to share one
    between tokenizers: building one takes about a second.

    Example:
        tokenizer = KiwiTokenizer()
        tokenizer("영화가 재밌었어요")  # ['영화', '가', '재밌', '었', '어요']
        KiwiTokenizer(with_tags=True)("영화")  # ['영화/NNG']
    """

    def __init__(self, with_tags: bool = False, normalize_coda: bool = False,
                 analyzer: Any | None = None) -> None:
        self.with_tags = with_tags
        self.normalize_coda = normalize_coda
        self._custom_analyzer = analyzer is not None
        self._kiwi = analyzer if analyzer is not None else _new_kiwi()

    def tokenize(self, text: str) -> list[str]:
        morphemes = self._kiwi.tokenize(text, normalize_coda=self.normalize_coda)
        if self.with_tags:
            return [f"{m.form}/{m.tag}" for m in morphemes]
        return [m.form for m in morphemes]

    __call__ = tokenize

    def decode(self, tokens: Sequence[str]) -> str:
        if not self.with_tags:
            return " ".join(tokens)
        return self._kiwi.join([tuple(token.rsplit("/", 1)) for token in tokens])

    def to_config(self) -> dict[str, Any]:
        return {"type": "KiwiTokenizer", "with_tags": self.with_tags,
                "normalize_coda": self.normalize_coda}

    # The analyzer is a C++ object that cannot be pickled; DataLoader workers
    # (spawned ones; forked ones inherit it) receive the options and build their own.
    def __getstate__(self) -> dict[str, Any]:
        if self._custom_analyzer:
            raise TypeError(
                "a KiwiTokenizer with a custom analyzer= cannot be pickled (e.g. sent to spawned "
                "DataLoader workers): its configuration would be lost. Tokenize before the "
                "DataLoader, or use num_workers=0."
            )
        return {"with_tags": self.with_tags, "normalize_coda": self.normalize_coda}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return f"KiwiTokenizer(with_tags={self.with_tags}, normalize_coda={self.normalize_coda})"


class MissingDependencyError(ImportError):
    """An optional package that a feature needs is not installed."""


def decompose_jamo(text: str) -> str:
    """Replace every precomposed Hangul syllable by its conjoining jamo."""
    return text.translate(_decomposition_table())


def compose_jamo(text: str) -> str:
    """Join initial + medial (+ final) conjoining jamo back into syllables."""
    return _COMPOSABLE.sub(_compose_match, text)


def _compose_match(match: re.Match[str]) -> str:
    initial = ord(match[1]) - INITIAL_BASE
    medial = ord(match[2]) - MEDIAL_BASE
    final = ord(match[3]) - FINAL_BASE if match[3] else 0
    return chr(SYLLABLE_BASE + (initial * MEDIAL_COUNT + medial) * FINAL_COUNT + final)


@functools.cache
def _decomposition_table() -> dict[int, str]:
    # Built once: str.translate with a table is ~10x faster than a Python loop.
    table = {}
    for offset in range(SYLLABLE_COUNT):
        initial, rest = divmod(offset, MEDIAL_COUNT * FINAL_COUNT)
        medial, final = divmod(rest, FINAL_COUNT)
        jamo = chr(INITIAL_BASE + initial) + chr(MEDIAL_BASE + medial)
        table[SYLLABLE_BASE + offset] = jamo + (chr(FINAL_BASE + final) if final else "")
    return table


def _new_kiwi() -> Any:
    try:
        from kiwipiepy import Kiwi
    except ImportError as error:
        raise MissingDependencyError(
            "KiwiTokenizer needs the optional package 'kiwipiepy', which is not "
            "installed. Install it with: pip install 'seqlab[korean]' "
            "(or pip install kiwipiepy)."
        ) from error
    return Kiwi()
