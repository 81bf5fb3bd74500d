"""Vocabulary: the mapping between tokens and the integers a model sees."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

from seqlab.data.tokenizers import Tokenizer, tokenizer_from_config

JSON_FORMAT = "seqlab.Vocabulary"
JSON_VERSION = 1

TokensOrText = Sequence[str] | str


class Vocabulary:
    """Token <-> index mapping with 0 for padding and the last index for unknowns.

    Indices: `0` is padding, `1..k` the `specials` (e.g. `<sos>`, `<eos>`),
    `k+1..n` the counted tokens by descending frequency in the training data
    (ties: first appearance first), `n+1` the unknown token. So
    `len(vocab) == n + 2`, `vocab.pad_index == 0` and
    `vocab.unknown_index == len(vocab) - 1`. Encoding never produces 0: even
    the literal text `<pad>` maps to the unknown index.

    `encode` takes tokens (a list of strings) or, when the vocabulary was built
    with a `tokenizer`, a text. Every encode counts the tokens it saw and how
    many were unknown (`vocab.oov`), so callers can report the out-of-vocabulary
    rate of validation data (`vocab.oov.rate`, `vocab.oov.reset()`). Encode
    before the DataLoader: counts made in worker processes stay there.

    Example:
        vocab = Vocabulary.build([["a", "b", "a"], ["c", "a"]], tokenizer=WordTokenizer())
        vocab.encode("a c z")   # [1, 3, 4]  (z is unknown: index n+1 = 4)
        len(vocab)              # 5 = pad + 3 tokens + unknown
    """

    def __init__(
        self,
        tokens: Sequence[str],
        specials: Sequence[str] = (),
        counts: Sequence[int] | None = None,
        tokenizer: Tokenizer | None = None,
        pad_token: str = "<pad>",
        unknown_token: str = "<unk>",
    ) -> None:
        self._itos = [pad_token, *specials, *tokens, unknown_token]
        duplicates = [t for t, c in Counter(self._itos).items() if c > 1]
        if duplicates:
            raise ValueError(f"vocabulary tokens must be distinct; repeated: {duplicates[:10]}")
        if counts is not None and len(counts) != len(tokens):
            raise ValueError(f"got {len(counts)} counts for {len(tokens)} tokens; give one count per token")
        self._stoi = {token: index for index, token in enumerate(self._itos)}
        # Padding and unknown are positions, not words: text spelling them is unknown.
        del self._stoi[pad_token], self._stoi[unknown_token]
        self.specials = tuple(specials)
        self.counts = list(counts) if counts is not None else None
        self.tokenizer = tokenizer
        self.pad_token = pad_token
        self.unknown_token = unknown_token
        self.oov = OutOfVocabularyCount()

    @classmethod
    def build(
        cls,
        token_lists: Iterable[TokensOrText],
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (),
        tokenizer: Tokenizer | None = None,
        pad_token: str = "<pad>",
        unknown_token: str = "<unk>",
    ) -> Vocabulary:
        """Count the tokens of the training data and keep the frequent ones.

        `token_lists` yields one item per text: its tokens, or the text itself
        when a `tokenizer` is given. Tokens seen fewer than `min_freq` times are
        dropped; `max_size` caps the number of counted tokens (specials, padding
        and unknown come on top).
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be at least 1, got {min_freq}")
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be at least 1 (or None for no limit), got {max_size}")
        counter: Counter[str] = Counter()
        texts = 0
        for item in token_lists:
            counter.update(_as_tokens(item, tokenizer))
            texts += 1
        for reserved in (pad_token, unknown_token, *specials):
            counter.pop(reserved, None)
        if not counter:
            raise ValueError(
                f"cannot build a vocabulary: the training data ({texts} texts) has no tokens. "
                "Check that the dataset loaded and the tokenizer produces tokens."
            )
        # most_common sorts stably, so equal counts keep first-appearance order.
        kept = [(t, c) for t, c in counter.most_common(max_size) if c >= min_freq]
        if not kept:
            top = counter.most_common(1)[0][1]
            raise ValueError(
                f"min_freq={min_freq} removes every token (the most frequent appears {top} "
                f"times); lower min_freq to at most {top}."
            )
        return cls([t for t, _ in kept], specials, [c for _, c in kept], tokenizer,
                   pad_token, unknown_token)

    @property
    def pad_index(self) -> int:
        return 0

    @property
    def unknown_index(self) -> int:
        return len(self._itos) - 1

    @property
    def tokens(self) -> list[str]:
        """All tokens in index order, padding first and unknown last."""
        return list(self._itos)

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def index(self, token: str) -> int:
        """Index of `token`; the unknown index when it is not in the vocabulary."""
        return self._stoi.get(token, self.unknown_index)

    def token(self, index: int) -> str:
        if not 0 <= index < len(self._itos):
            raise IndexError(f"index {index} is outside the vocabulary (0..{len(self._itos) - 1})")
        return self._itos[index]

    def encode(self, tokens_or_text: TokensOrText) -> list[int]:
        """Indices of one text's tokens (or of the text, with a tokenizer)."""
        tokens = _as_tokens(tokens_or_text, self.tokenizer)
        unknown = self.unknown_index
        # map() with dict.get runs the lookup loop in C: ~2x a list comprehension.
        indices = list(map(self._stoi.get, tokens, repeat(unknown)))
        self.oov.add(len(indices), indices.count(unknown))
        return indices

    def encode_batch(self, batch: Iterable[TokensOrText]) -> list[list[int]]:
        return [self.encode(item) for item in batch]

    def decode(self, indices: Iterable[int], skip_padding: bool = True) -> list[str]:
        """Tokens of `indices` (a list or a 1-D tensor); padding dropped by default."""
        indices = indices.tolist() if hasattr(indices, "tolist") else indices
        return [self.token(i) for i in indices if not (skip_padding and i == 0)]

    def decode_batch(self, batch: Iterable[Iterable[int]], skip_padding: bool = True) -> list[list[str]]:
        return [self.decode(indices, skip_padding) for indices in batch]

    def decode_text(self, indices: Iterable[int]) -> str:
        """Text of `indices`, joined by the tokenizer (spaces without one)."""
        tokens = self.decode(indices)
        return self.tokenizer.decode(tokens) if self.tokenizer else " ".join(tokens)

    def to_json(self) -> str:
        tokenizer_config = None
        if self.tokenizer is not None:
            if not hasattr(self.tokenizer, "to_config"):
                raise TypeError(
                    f"cannot save tokenizer {self.tokenizer!r}: it has no to_config(). Save the "
                    "vocabulary without it (Vocabulary(..., tokenizer=None)) or add to_config()."
                )
            tokenizer_config = self.tokenizer.to_config()
        first_counted = 1 + len(self.specials)
        return json.dumps({
            "format": JSON_FORMAT, "version": JSON_VERSION,
            "pad_token": self.pad_token, "unknown_token": self.unknown_token,
            "specials": list(self.specials), "tokens": self._itos[first_counted:-1],
            "counts": self.counts, "tokenizer": tokenizer_config,
        }, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != JSON_FORMAT:
            raise ValueError(f"not a seqlab vocabulary: expected JSON with format={JSON_FORMAT!r}")
        if data.get("version") != JSON_VERSION:
            raise ValueError(
                f"vocabulary JSON version {data.get('version')!r} is not supported "
                f"(this seqlab reads version {JSON_VERSION}); upgrade seqlab."
            )
        tokenizer = tokenizer_from_config(data["tokenizer"]) if data["tokenizer"] else None
        return cls(data["tokens"], data["specials"], data["counts"], tokenizer,
                   data["pad_token"], data["unknown_token"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._itos == other._itos

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, specials={list(self.specials)}, tokenizer={self.tokenizer!r})"


@dataclass
class OutOfVocabularyCount:
    """Tokens encoded so far and how many of them were unknown."""

    tokens: int = 0
    unknown: int = 0

    @property
    def rate(self) -> float:
        return self.unknown / self.tokens if self.tokens else 0.0

    def add(self, tokens: int, unknown: int) -> None:
        self.tokens += tokens
        self.unknown += unknown

    def reset(self) -> None:
        self.tokens = self.unknown = 0


def _as_tokens(item: TokensOrText, tokenizer: Tokenizer | None) -> Sequence[str]:
    if not isinstance(item, str):
        return item
    if tokenizer is None:
        # A bare string would silently become a list of characters.
        raise TypeError(
            f"got the text {item[:40]!r} but this vocabulary has no tokenizer; pass its tokens "
            "(e.g. vocab.encode(tokenizer(text))) or build with tokenizer=..."
        )
    return tokenizer(item)
