"""The character LM's settings: one dataclass, its presets, and the command-line options derived from it.

Each field is written once, with its default and its help (`setting(...)`);
`seqlab charlm train` derives its options from them (seqlab.commandline).

    >>> Settings(**PRESETS["quick"]).units
    256
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab import layers
from seqlab.apps.architecture import ARCHITECTURES, check_heads, refuse_inapplicable
from seqlab.commandline import setting

__all__ = ["CELLS", "CORPORA", "PRESETS", "Settings", "settings_from_args"]

CORPORA = ("mysterious-island", "koconovel")
CELLS = {"lstm": layers.LSTM, "gru": layers.GRU, "simple_rnn": layers.SimpleRNN}


@dataclass
class Settings:
    """Everything a training run depends on; the defaults are the tutorial's (`--preset book`).

    A `text` path is made absolute. `shuffle_buffer=None` shuffles all chunks each epoch; `max_minutes` /
    `max_steps` stop training early (after finishing that batch and validating);
    `patience` stops when the held-out loss has not improved for that many
    epochs and keeps the best weights; `reduce_lr_patience` halves the learning
    rate when it has not improved for that many epochs. `arch="transformer"`:
    `layers` causal blocks of width `embedding_dim`, `heads` heads, a
    feed-forward layer of `units`, dropout `dropout` inside each block, and
    learned positions for `seq_len` steps (`cell` and `stateful` do not apply).
    """

    text: str | None = setting(None, "a UTF-8 text file (or a folder of .txt files) to train on", metavar="PATH")
    decode_errors: str = setting("strict", "bytes of --text that are not UTF-8: strict (an error naming the byte) "
                                           "or replace (U+FFFD, counted)", choices=("strict", "replace"))
    text_sha256: str | None = setting(None, "SHA-256 of the text's UTF-8 bytes, recorded by the run's first "
                                            "start; a resume refuses a text that has changed", command_line=False)
    corpus: str | None = setting("mysterious-island", "a known corpus", choices=CORPORA)
    seq_len: int = setting(40, "characters per training window")
    batch_size: int = setting(64, "windows per batch, or parallel streams with --stateful")
    embedding_dim: int = setting(256, "embedding size")
    units: int = setting(512, "units per recurrent layer, or the transformer's feed-forward width")
    arch: str = setting("rnn", "rnn: recurrent layers; transformer: causal transformer blocks of --embedding-dim "
                               "features", choices=ARCHITECTURES)
    cell: str = setting("lstm", "recurrent cell", choices=CELLS)
    heads: int = setting(4, "attention heads per transformer block")
    layers: int = setting(1, "stacked recurrent layers or transformer blocks")
    dropout: float = setting(0.0, "dropout after each recurrent layer, or inside each transformer block")
    epochs: int = setting(20, "epochs")
    val_fraction: float = setting(0.1, "share of the text held out, its contiguous tail")
    stateful: bool = setting(False, "carry the state across consecutive windows of parallel streams "
                                    "(truncated BPTT)", flags=("--tbptt",))
    clip: float | None = setting(None, "clip the global gradient norm to this value")
    lr: float = setting(1e-3, "Adam's learning rate")
    seed: int = setting(0, "seed for weights and data order")
    shuffle_buffer: int | None = setting(10_000, "shuffle buffer in chunks; 0: shuffle all")
    patience: int | None = setting(None, "stop when the held-out loss has not improved for this many epochs "
                                         "(and keep the best epoch's weights)")
    reduce_lr_patience: int | None = setting(None, "halve the learning rate when the held-out loss has not "
                                                   "improved for this many epochs")
    max_minutes: float | None = setting(None, "stop training after this many minutes")
    max_steps: int | None = setting(None, "stop training after this many batches")

    def __post_init__(self) -> None:
        if self.text is not None:  # absolute, so that a run resumed from another folder reads the same text
            self.text = str(Path(self.text).expanduser().resolve())
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}.")
        if self.text is None and self.corpus not in CORPORA:
            raise ValueError(f"corpus must be one of {list(CORPORA)} (or give --text PATH), got {self.corpus!r}.")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1): the held-out tail's share of the text, "
                             f"got {self.val_fraction}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        for name in ("seq_len", "batch_size", "embedding_dim", "units", "layers", "epochs", "heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}.")
        for name in ("max_minutes", "max_steps"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive (leave it out for no limit), got {getattr(self, name)}.")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {list(ARCHITECTURES)}, got {self.arch!r}.")
        if self.arch == "transformer":
            if self.stateful:
                raise ValueError("a transformer has no state to carry across windows: drop --stateful "
                                 "(its context is the --seq-len window).")
            check_heads(self.embedding_dim, self.heads)


# The tutorial's run, the best recipe found for a small CPU, and the main job's few-minute run.
PRESETS: dict[str, dict[str, Any]] = {
    "book": {},
    "best": {"stateful": True, "seq_len": 100, "batch_size": 32, "embedding_dim": 64, "dropout": 0.4,
             "lr": 2e-3, "clip": 1.0, "epochs": 40, "patience": 3, "reduce_lr_patience": 1, "max_minutes": 40.0},
    "quick": {"units": 256, "embedding_dim": 64, "seq_len": 100, "batch_size": 32, "stateful": True,
              "lr": 3e-3, "clip": 1.0, "epochs": 100, "max_minutes": 3.0},
    # A causal transformer of about the best LSTM's size (docs/results/attention.md compares them).
    "transformer": {"arch": "transformer", "layers": 6, "embedding_dim": 128, "units": 512, "heads": 4,
                    "seq_len": 128, "batch_size": 32, "dropout": 0.1, "lr": 1e-3, "clip": 1.0, "epochs": 40,
                    "patience": 3, "reduce_lr_patience": 1, "max_minutes": 40.0},
}


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Defaults, then the preset, then every option given on the command line."""
    values = {**PRESETS.get(args.preset or "book", {})}
    names = {field.name for field in dataclasses.fields(Settings)}
    values.update({name: value for name, value in vars(args).items() if name in names and value is not None})
    if args.text is not None:
        values["corpus"] = None
    if values.get("shuffle_buffer") == 0:
        values["shuffle_buffer"] = None
    refuse_inapplicable(values.get("arch", "rnn"), {n for n in names if getattr(args, n, None) is not None}, ONLY_FOR)
    return Settings(**values)


# Options that mean something for one architecture only.
ONLY_FOR = {"rnn": ("cell", "stateful"), "transformer": ("heads",)}
