"""Subword tokens: a sentencepiece model (unigram language model or BPE) learned from training texts.

A word vocabulary of Korean splits one stem into dozens of rare forms (the
particle and the ending are part of the word), and every word unseen in
training is unknown. Subwords keep frequent words whole and cut rare ones
into pieces seen often enough to learn, so `학생입니다` becomes
`▁학생 입니다` and a new form of a known stem is still readable. sentencepiece
(Kudo & Richardson, 2018) learns the pieces: the unigram model keeps the
`vocab_size` pieces that maximise the corpus likelihood, BPE merges the most
frequent adjacent pair until it has `vocab_size` pieces. Spaces are part of
the pieces (`▁` starts a word), so decoding restores the text exactly up to
normalization.

Text is NFKC-normalized (and lowercased with `lowercase=True`) in Python
before sentencepiece sees it, so the model needs no normalization table of
its own and stays small: the whole model is stored, base64-encoded, in
`to_config()`, which is how a `Vocabulary` saved with a model carries it.

    >>> tokenizer = SubwordTokenizer.train(korean_sentences, vocab_size=4000)
    >>> tokenizer("저는 학생입니다.")
    ['▁저는', '▁학생', '입니다', '.']
    >>> tokenizer.decode(tokenizer("저는 학생입니다."))
    '저는 학생입니다.'
"""
from __future__ import annotations

import base64
import functools
import io
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from seqlab.data.korean import MissingDependencyError

__all__ = ["SUBWORD_MODELS", "SubwordTokenizer"]

SUBWORD_MODELS = ("unigram", "bpe")


class SubwordTokenizer:
    """Text → sentencepiece pieces and back; `train` learns the pieces, `to_config` carries the model.

    `model` is a serialized sentencepiece model (bytes, or the base64 text
    `to_config` writes). Characters the model never saw become pieces of
    their own that a `Vocabulary` counts as unknown. The empty text (or only
    spaces) has no pieces. `decode` of pieces the model lacks (a vocabulary's
    `<unk>`) writes them as `⁇`.
    """

    def __init__(self, model: bytes | str, lowercase: bool = False) -> None:
        self.model = base64.b64decode(model) if isinstance(model, str) else bytes(model)
        self.lowercase = lowercase
        try:
            self._processor = _sentencepiece().SentencePieceProcessor(model_proto=self.model)
        except RuntimeError as error:
            raise ValueError(f"The subword model ({len(self.model):,} bytes) is not a sentencepiece model: "
                             f"{error}. Train one with SubwordTokenizer.train(texts).") from None

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8000, model_type: str = "unigram",
              lowercase: bool = False, character_coverage: float = 1.0) -> SubwordTokenizer:
        """Learn `vocab_size` pieces from `texts` (a soft limit: fewer when the texts have fewer to give).

        `character_coverage` is the share of the characters' occurrences that
        get pieces of their own (1.0: every character seen; lower leaves rare
        characters unknown). Training is deterministic: the same texts give
        the same model.
        """
        if model_type not in SUBWORD_MODELS:
            raise ValueError(f"model_type must be one of {SUBWORD_MODELS}, got {model_type!r}.")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 8:
            raise ValueError(f"vocab_size must be a whole number of at least 8 pieces, got {vocab_size!r}.")
        normalize = _normalizer(lowercase)
        sentences = [line for line in (normalize(text) for text in texts) if line.strip()]
        if not sentences:
            raise ValueError("SubwordTokenizer.train got no text (every text was empty); give the training texts.")
        model = io.BytesIO()
        _sentencepiece().SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size, model_type=model_type,
            character_coverage=character_coverage, hard_vocab_limit=False, normalization_rule_name="identity",
            max_sentence_length=1 << 16, num_threads=1, minloglevel=2)
        return cls(model.getvalue(), lowercase=lowercase)

    def tokenize(self, text: str) -> list[str]:
        return self._processor.encode(_normalizer(self.lowercase)(text), out_type=str)

    __call__ = tokenize

    def decode(self, tokens: Sequence[str]) -> str:
        return self._processor.decode_pieces(list(tokens))

    @property
    def pieces(self) -> int:
        """How many pieces the model has (its `<unk>`, `<s>`, `</s>` included)."""
        return self._processor.get_piece_size()

    def to_config(self) -> dict[str, Any]:
        return {"type": "SubwordTokenizer", "model": base64.b64encode(self.model).decode("ascii"),
                "lowercase": self.lowercase}

    def __getstate__(self) -> dict[str, Any]:  # the processor itself does not pickle
        return {"model": self.model, "lowercase": self.lowercase}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model"], state["lowercase"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SubwordTokenizer) and (self.model, self.lowercase) == (other.model,
                                                                                           other.lowercase)

    def __repr__(self) -> str:
        return f"SubwordTokenizer(pieces={self.pieces}, lowercase={self.lowercase})"


def _normalizer(lowercase: bool):
    if lowercase:
        return lambda text: unicodedata.normalize("NFKC", text).lower()
    return functools.partial(unicodedata.normalize, "NFKC")


def _sentencepiece() -> Any:
    try:
        import sentencepiece
    except ImportError as error:
        raise MissingDependencyError(
            "SubwordTokenizer needs the optional package 'sentencepiece', which is not installed. Install it "
            "with: pip install 'seqlab[translate]' (or pip install sentencepiece).") from error
    return sentencepiece
