"""fastText's subwords: the character n-grams of a word, hashed into buckets.

A word w is read as `<w>` (the brackets mark its start and end) and cut into
every run of n characters for `min_n <= n <= max_n`; `where` with n = 3 gives
`<wh whe her ere re>`, and n = 6 ends with the whole `<where>`. Each n-gram g
goes to bucket `fnv1a(g) mod buckets`, where fnv1a is fastText's 32-bit
FNV-1a over the UTF-8 bytes (each byte sign-extended first, as fastText's
`int8_t` cast does, so Korean n-grams fall in the buckets fastText would
use). n counts characters, not bytes: `먹었다` has the 3-grams `<먹었 먹었다 었다>`.

A word's vector is then the mean of its own row and its n-grams' rows, and a
word never seen in training still has the mean of its n-grams' rows: a Korean
form with a new particle (`학교에서는`) shares most n-grams with the forms
trained (`학교에서`, `학교는`).

    >>> hasher = SubwordHasher(min_n=3, max_n=4, buckets=2_000_000)
    >>> hasher.ngrams("cat")
    ['<ca', 'cat', 'at>', '<cat', 'cat>']
    >>> hasher.buckets_of("cat")      # five bucket indices in [0, 2_000_000)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FNV_OFFSET = 2166136261
FNV_PRIME = 16777619


def fnv1a_32(data: bytes) -> int:
    """fastText's `Dictionary::hash`: FNV-1a on sign-extended bytes, modulo 2**32."""
    h = FNV_OFFSET
    for byte in data:
        h = ((h ^ (byte | 0xFFFFFF00 if byte >= 0x80 else byte)) * FNV_PRIME) & 0xFFFFFFFF
    return h


@dataclass(frozen=True)
class SubwordHasher:
    """Character n-grams `min_n..max_n` of `<word>`, hashed into `buckets` rows (fastText's defaults)."""

    min_n: int = 3
    max_n: int = 6
    buckets: int = 2_000_000

    def __post_init__(self) -> None:
        if not 1 <= self.min_n <= self.max_n:
            raise ValueError(f"subword n-grams need 1 <= min_n <= max_n, got min_n={self.min_n}, "
                             f"max_n={self.max_n}")
        if self.buckets < 1:
            raise ValueError(f"subwords need at least one bucket, got buckets={self.buckets}")

    def ngrams(self, word: str) -> list[str]:
        """The n-grams of `<word>`, shortest first, each in reading order."""
        marked = f"<{word}>"
        return [marked[start:start + n] for n in range(self.min_n, self.max_n + 1)
                for start in range(len(marked) - n + 1)]

    def buckets_of(self, word: str) -> list[int]:
        """The bucket of each n-gram of `word` (repeats kept, as fastText keeps them)."""
        return [fnv1a_32(gram.encode("utf-8")) % self.buckets for gram in self.ngrams(word)]

    def to_config(self) -> dict[str, Any]:
        return asdict(self)
