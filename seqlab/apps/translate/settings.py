"""The translator's settings: which sentence pairs (`PairSettings`) and how to build and train (`Settings`).

Each field is written once, with its default and its help (`setting(...)`);
`train_translator` takes `Settings` fields as keyword arguments and
`seqlab translate train` derives its options from both dataclasses
(seqlab.commandline). `attention="none"` and `projection_dtype="float32"`,
the command line's spellings, mean None (no attention, float32 projections).

    >>> Settings(attention="none").attention is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from seqlab.apps.architecture import ARCHITECTURES, check_heads
from seqlab.apps.translate.text import TOKENIZERS
from seqlab.commandline import setting
from seqlab.data.subwords import SUBWORD_MODELS

__all__ = ["ONLY_FOR", "ONLY_FOR_TOKENIZER", "PairSettings", "Settings"]

POSITIONS = ("sinusoidal", "learned")  # TransformerTranslator's
# Options that mean something for one architecture only (seqlab translate train refuses the others).
ONLY_FOR = {"rnn": ("cell", "bidirectional", "attention", "units", "projection_dtype"),
            "transformer": ("heads", "layers", "ff_dim", "positions", "warmup_steps")}
ONLY_FOR_TOKENIZER = {"subword": ("vocab_size", "subword_model")}


@dataclass
class PairSettings:
    """Which pairs train and which source sentences are held out (see `load_translation_data`)."""

    max_words: int | None = setting(10, "keep pairs of at most this many words")
    limit: int | None = setting(None, "use at most this many training pairs", default_text="all")
    test_sources: int = setting(1000, "held-out source sentences")
    decode_errors: str = setting("strict", "bytes of the pairs that are not UTF-8: strict (an error naming the "
                                           "byte) or replace (U+FFFD, counted)", choices=("strict", "replace"))

    def __post_init__(self) -> None:
        for name in ("max_words", "limit", "test_sources"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive whole number (leave it out for "
                                 f"{'all' if name != 'test_sources' else 'the default'}), got {value}.")


@dataclass
class Settings:
    """The model (`Translator`'s or `TransformerTranslator`'s arguments) and its training (Adam, clipped at a
    global norm of 5; the transformer's learning rate warms up over `warmup_steps`, then decays as 1/√step)."""

    arch: str = setting("rnn", "rnn: recurrent encoder-decoder with attention; transformer: self-attention "
                               "encoder and decoder", choices=ARCHITECTURES)
    cell: str = setting("gru", "recurrent cell of encoder and decoder", choices=("gru", "lstm"))
    bidirectional: bool = setting(True, "read the source in both directions")
    attention: str | None = setting("dot", "Luong's dot-product score, Bahdanau's additive one, or none",
                                    choices=("dot", "additive", "none"))
    embedding_dim: int = setting(128, "embedding size of both languages (the transformer's width)")
    units: int = setting(256, "encoder units per direction")
    heads: int = setting(4, "attention heads per transformer layer")
    layers: int = setting(3, "transformer blocks in the encoder and in the decoder")
    ff_dim: int = setting(512, "the transformer's feed-forward width")
    positions: str = setting("sinusoidal", "the transformer's position vectors: fixed sinusoids or learned",
                             choices=POSITIONS)
    warmup_steps: int = setting(400, "the transformer's learning-rate warm-up (optimizer steps)")
    label_smoothing: float = setting(0.0, "share of each target's probability spread over the vocabulary "
                                          "(0.1 is usual for transformers)")
    dropout: float = setting(0.1, "dropout on the embeddings and before the output layer (transformer: and "
                                  "on every block's branches)")
    tokenizer: str = setting("word", "word: lowercased words and punctuation marks; subword: sentencepiece "
                                     "pieces learned from the training pairs", choices=TOKENIZERS)
    vocab_size: int = setting(8000, "subword pieces per language (with --tokenizer subword)")
    subword_model: str = setting("unigram", "how sentencepiece learns the pieces: unigram language model or "
                                            "byte-pair merges", choices=SUBWORD_MODELS)
    joint_vocabulary: bool = setting(False, "one vocabulary (and subword model) for both languages; the "
                                            "transformer then shares its embeddings")
    min_count: int = setting(1, "drop tokens seen fewer times")
    max_vocabulary: int | None = setting(None, "keep at most this many tokens per language")
    epochs: int = setting(10, "epochs")
    batch_size: int = setting(64, "pairs per batch")
    lr: float = setting(1e-3, "Adam's learning rate", flags=("--learning-rate",))
    validation_split: float = setting(0.0, "share of the training pairs held out for validation")
    projection_dtype: str | None = setting("float32", "run the output projection in bfloat16 (about 2x faster on "
                                                      "CPUs with AVX512-BF16)", choices=("float32", "bfloat16"))
    seed: int = setting(0, "seed for the data split, weights and batch order")

    def __post_init__(self) -> None:
        if self.attention == "none":
            self.attention = None
        if self.projection_dtype == "float32":
            self.projection_dtype = None
        for name in ("embedding_dim", "units", "min_count", "max_vocabulary", "epochs", "batch_size", "heads",
                     "layers", "ff_dim", "warmup_steps", "vocab_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive whole number, got {value}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if not 0.0 <= self.validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {self.validation_split}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1) (0.1 is usual), got {self.label_smoothing}.")
        if self.arch == "transformer":
            check_heads(self.embedding_dim, self.heads)
        if not self.lr > 0:
            raise ValueError(f"lr (the learning rate) must be positive, got {self.lr}.")
