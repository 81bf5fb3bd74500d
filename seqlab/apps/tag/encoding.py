"""Tokens to tensors and back: vocabularies of words, characters and tags, batches, text splitting.

A sentence of T tokens becomes

    words   (T,)        word ids (lowercased when `lowercase`), 0 = padding, the last id = <unk>
    chars   (T, C)      each token's characters after Unicode NFD (a Hangul syllable gives its jamo,
                        so a syllable has a spelling too), at most `MAX_CHARS` (the first and last half
                        of longer tokens: prefixes and suffixes are what tell tags apart)
    tags    (T,)        tag ids, 0 = padding

and a batch pads all three to its longest sentence and token. `split_text`
cuts new text the way the training data was cut: characters (KLUE), or words
with punctuation and English clitics split off as UD does (`don't` → `do n't`,
`it's` → `it 's`), abbreviations kept whole (`U.S.`).

    >>> encoder = TagEncoder.build(train_sentences)
    >>> (words, chars), tags = encoder.collate(encoder.encode(train_sentences)[:32])
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from seqlab.data import Vocabulary
from seqlab.data.batching import BucketBatchSampler
from seqlab.data.datasets.tagged import TaggedSentences, is_bio_tagset
from seqlab.data.epoch_batches import EpochBatches

__all__ = ["MAX_CHARS", "EncodedSentence", "TagEncoder", "check_iob2", "split_text"]

MAX_CHARS = 24
_CLITIC = r"'(?:s|re|ve|ll|d|m)\b"
_WORDS = re.compile(rf"\w+(?=n't\b)|n't\b|\w+(?={_CLITIC})|{_CLITIC}|(?:[A-Za-z]\.){{2,}}|\w+(?:[-.]\w+)*|[^\w\s]",
                    re.IGNORECASE)


def split_text(text: str, tokens: str) -> list[str]:
    """`text` as tokens: "characters" (every character, spaces too, as KLUE) or "words"."""
    if tokens == "characters":
        return list(text)
    return _WORDS.findall(text)


def check_iob2(data: TaggedSentences) -> None:
    """A ValueError naming the first I-X that follows neither B-X nor I-X (IOB1, or a broken entity):
    decoding never produces one, and a CRF gives such a gold path probability 0."""
    for index, tags in enumerate(data.tags):
        for position, tag in enumerate(tags):
            previous = tags[position - 1] if position else "O"
            if tag.startswith("I-") and previous[2:] != tag[2:]:
                after = previous if position else "the start"
                raise ValueError(
                    f"{data.name}: sentence {data.ids[index]}, token {position + 1} "
                    f"({data.sentences[index][position]!r}) is tagged {tag} after {after}; seqlab tags entities "
                    "in IOB2, where each entity starts with B-. Convert the file (IOB1 -> IOB2: an I-X that starts an "
                    "entity becomes B-X).")


def spelling(token: str) -> list[str]:
    """The characters the character features read (NFD, long tokens cut to their two ends)."""
    characters = list(unicodedata.normalize("NFD", token))
    if len(characters) > MAX_CHARS:
        characters = characters[:MAX_CHARS // 2] + characters[-(MAX_CHARS // 2):]
    return characters


@dataclass
class EncodedSentence:
    words: list[int]
    chars: list[list[int]]
    tags: list[int] | None


class TagEncoder:
    """The three vocabularies of a tagger and the rules that turn sentences into ids (module docstring)."""

    def __init__(self, words: Vocabulary, chars: Vocabulary, tags: Vocabulary, lowercase: bool = True,
                 tokens: str = "words"):
        self.words, self.chars, self.tags = words, chars, tags
        self.lowercase, self.tokens = lowercase, tokens

    @classmethod
    def build(cls, data: TaggedSentences, min_count: int = 1, lowercase: bool = True,
              tokens: str = "words") -> "TagEncoder":
        """Vocabularies from the training sentences only (BIO tags checked to be IOB2, see `check_iob2`)."""
        if is_bio_tagset(data.tag_counts()):
            check_iob2(data)
        words = Vocabulary.build([[cls._word(t, lowercase) for t in s] for s in data.sentences], min_freq=min_count)
        chars = Vocabulary.build([[c for t in s for c in spelling(t)] for s in data.sentences])
        tags = Vocabulary.build(data.tags)
        return cls(words, chars, tags, lowercase, tokens)

    @property
    def tag_names(self) -> list[str]:
        """Tag of each id: "<pad>" at 0, the tags, "<unk>" last (never a target, never predicted)."""
        return self.tags.tokens

    @property
    def is_bio(self) -> bool:
        return is_bio_tagset(self.tag_names[1:-1])

    @staticmethod
    def _word(token: str, lowercase: bool) -> str:
        return token.lower() if lowercase else token

    def encode(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]] | None = None,
               source: str = "the data") -> list[EncodedSentence]:
        """Ids of each sentence; `tags` must all be tags the model knows (else a ValueError naming them)."""
        if tags is not None:
            self.check_tags(tags, source)
        encoded = []
        for index, sentence in enumerate(sentences):
            words = [self.words.index(self._word(token, self.lowercase)) for token in sentence]
            chars = [[self.chars.index(c) for c in spelling(token)] or [self.chars.unknown_index]
                     for token in sentence]
            row_tags = None if tags is None else [self.tags.index(tag) for tag in tags[index]]
            encoded.append(EncodedSentence(words, chars, row_tags))
        return encoded

    def check_tags(self, tags: Sequence[Sequence[str]], source: str = "the data") -> None:
        """A ValueError naming the tags of `tags` that the model was not trained on, if any."""
        unknown = sorted({tag for row in tags for tag in row if tag not in self.tags})
        if unknown:
            raise ValueError(f"{source} has tags the model was not trained on: {unknown[:10]}; the model "
                             f"knows {self.tag_names[1:-1]}. Evaluate on data with the same tag set "
                             "(and the same --tagset).")

    def collate(self, sentences: Sequence[EncodedSentence]) -> tuple[tuple[torch.Tensor, torch.Tensor], Any]:
        """`((words (B, T), chars (B, T, C)), tags (B, T) or None)`, zero-padded."""
        width = max(1, max(len(s.words) for s in sentences))
        depth = max([1, *(len(c) for s in sentences for c in s.chars)])
        words = torch.zeros(len(sentences), width, dtype=torch.long)
        chars = torch.zeros(len(sentences), width, depth, dtype=torch.long)
        tags = None if sentences[0].tags is None else torch.zeros(len(sentences), width, dtype=torch.long)
        for row, sentence in enumerate(sentences):
            words[row, :len(sentence.words)] = torch.as_tensor(sentence.words, dtype=torch.long)
            for position, spelled in enumerate(sentence.chars):
                chars[row, position, :len(spelled)] = torch.as_tensor(spelled, dtype=torch.long)
            if tags is not None:
                tags[row, :len(sentence.tags)] = torch.as_tensor(sentence.tags, dtype=torch.long)
        return (words, chars), tags

    def batches(self, sentences: Sequence[EncodedSentence], batch_size: int, seed: int = 0,
                shuffle: bool = True) -> EpochBatches:
        """Batches of sentences of similar length, a new order each epoch (a function of seed and epoch)."""
        lengths = [len(s.words) for s in sentences]
        order = BucketBatchSampler(lengths, batch_size, shuffle=shuffle, seed=seed)
        return EpochBatches(order, lambda rows: self.collate([sentences[i] for i in rows]))

    def to_config(self) -> dict[str, Any]:
        return {"words": json.loads(self.words.to_json()), "chars": json.loads(self.chars.to_json()),
                "tags": json.loads(self.tags.to_json()), "lowercase": self.lowercase, "tokens": self.tokens}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TagEncoder":
        vocabularies = [Vocabulary.from_json(json.dumps(config[name])) for name in ("words", "chars", "tags")]
        return cls(*vocabularies, config["lowercase"], config["tokens"])
