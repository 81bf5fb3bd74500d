"""The tagger's settings: which data (`DataSettings`) and how to build and train (`Settings`).

Each field is written once, with its default and its help (`setting(...)`);
`seqlab tag train` derives its options from both dataclasses
(seqlab.commandline), and settings.json of a run holds them all.

    >>> Settings(char_features="none", crf=True).crf
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from seqlab.commandline import setting

__all__ = ["CHAR_FEATURES", "DataSettings", "Settings"]

CHAR_FEATURES = ("cnn", "lstm", "none")


@dataclass
class DataSettings:
    """Which tagged sentences train, pick the best epoch (dev) and test (see `seqlab.apps.tag.data`)."""

    dataset: str = setting("ud-ewt", "ud-ewt, klue-ner, conll:PATH (CoNLL-U) or tsv:PATH (token<TAB>tag lines)")
    tagset: str = setting("upos", "the CoNLL-U tag column (ud-ewt and conll:PATH)", choices=("upos", "xpos"))
    split_seed: int = setting(0, "seed of the train/dev/test split of klue-ner and of a single-file dataset")
    limit: int | None = setting(None, "train on at most this many sentences (the first ones)", default_text="all")
    decode_errors: str = setting("strict", "bytes that are not UTF-8: strict (an error naming the byte) or "
                                           "replace (U+FFFD)", choices=("strict", "replace"))

    def __post_init__(self) -> None:
        if self.limit is not None and (isinstance(self.limit, bool) or self.limit < 1):
            raise ValueError(f"limit must be a positive whole number (leave it out for all), got {self.limit}.")


@dataclass
class Settings:
    """The network (`Tagger`'s arguments) and its training (Adam, clipped at a global norm of 5)."""

    word_dim: int = setting(100, "word embedding size (the vectors' width with --embeddings)")
    char_features: str = setting("cnn", "character features of each token: a CNN, a BiLSTM, or none",
                                 choices=CHAR_FEATURES)
    char_dim: int = setting(32, "character embedding size")
    char_units: int = setting(64, "CNN filters, or LSTM units per direction, of the character features")
    units: int = setting(192, "LSTM units per direction of each tagging layer")
    layers: int = setting(2, "stacked Bidirectional LSTM layers")
    dropout: float = setting(0.33, "dropout on the token features and after each LSTM layer")
    word_dropout: float = setting(0.1, "share of training words replaced by <unk>, so unknown words are learned")
    crf: bool = setting(False, "a linear-chain CRF output (Viterbi decoding) instead of a per-step softmax")
    lowercase: bool = setting(True, "lowercase the words the word embedding sees (characters keep their case)")
    min_count: int = setting(1, "words seen fewer times in training are <unk> for the word embedding")
    embeddings: str | None = setting(None, "start the word embedding from vectors of `seqlab embeddings train`",
                                     metavar="DIR")
    freeze_embeddings: bool = setting(False, "keep the word vectors from --embeddings fixed")
    epochs: int = setting(30, "most epochs")
    patience: int | None = setting(5, "stop after this many epochs without a better dev accuracy "
                                      "(with --crf: dev loss; the best epoch's weights are kept; "
                                      "0: no early stopping)")
    max_minutes: float | None = setting(None, "stop before an epoch that would end past this many minutes",
                                        default_text="no limit")
    lr_decay: float = setting(0.5, "multiply the learning rate by this after 2 epochs without a better dev "
                                   "accuracy (with --crf: dev loss; 1: a constant rate)")
    batch_size: int = setting(32, "sentences per batch (of similar length)")
    lr: float = setting(2e-3, "Adam's learning rate", flags=("--learning-rate",))
    seed: int = setting(0, "seed for weights, dropout and batch order")

    def __post_init__(self) -> None:
        if self.char_features not in CHAR_FEATURES:
            raise ValueError(f"char_features must be one of {CHAR_FEATURES}, got {self.char_features!r}.")
        if self.patience == 0:
            self.patience = None
        for name in ("word_dim", "char_dim", "char_units", "units", "layers", "min_count", "epochs", "batch_size",
                     "patience"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive whole number, got {value}.")
        for name in ("dropout", "word_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}.")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ValueError(f"lr_decay must be in (0, 1] (1 keeps the rate constant), got {self.lr_decay}.")
        if not self.lr > 0:
            raise ValueError(f"lr (the learning rate) must be positive, got {self.lr}.")
        if self.freeze_embeddings and self.embeddings is None:
            raise ValueError("--freeze-embeddings keeps the vectors of --embeddings DIR fixed; give --embeddings too.")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be positive (leave it out for no limit), got {self.max_minutes}.")
