"""Character-level language model: `seqlab charlm train | generate | demo`.

The model reads a text one character at a time and predicts the next:

    Embedding(V, e) → [LSTM|GRU|SimpleRNN](u, return_sequences=True) (× layers, Dropout after each) → Dense(V)
    ids (batch, time) → logits (batch, time, V),  loss = mean −log softmax(logits)[next character]

or, with `--arch transformer`, a causal (GPT-style, pre-norm) transformer:

    Embedding(V, e) → + PositionEmbedding(seq_len) → TransformerBlock(e, heads, ff = u, causal) × layers
                    → LayerNorm → Dense(V)

where position t attends to positions ≤ t only, so one window trains all its
next-character predictions at once, as the recurrent model does.

V counts the text's distinct characters plus the vocabulary's padding (0) and
unknown (V − 1) indices, which never occur as targets. Training data is the
text without its last `val_fraction` (a contiguous held-out tail): cut into
non-overlapping chunks of seq_len + 1 characters (input = the first seq_len,
target = the last seq_len), shuffled through a buffer as `tf.data` does, or,
with `--stateful`, laid out as `batch_size` parallel streams that stateful
layers read in consecutive seq_len windows (truncated BPTT). Each epoch reports
the loss (nats per character) and bits per character = loss / ln 2 on both
parts. Checkpoints go to OUT/checkpoints (`--resume` continues), the model
and its vocabulary to OUT/model, the per-epoch results to OUT/log.csv and
OUT/history.json, the settings to OUT/settings.json and the command to
OUT/command.txt.

Generation (`seqlab.generation`) runs the prime once, then one recurrent step
per character; several samples run as one batch. A transformer has no
carried state: each character re-reads the last `seq_len` characters.

    $ seqlab charlm train --preset book --corpus mysterious-island --out runs/book
    $ seqlab charlm generate --model runs/book --prime "The island" --length 500 --scale-factor 2.0
    $ seqlab charlm demo          # the main job: a few minutes of training, then samples at α = 2, 1, 0.5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, TextIO

import numpy as np
import torch

from seqlab import layers
from seqlab.apps.architecture import ARCHITECTURES, check_heads
from seqlab.cli import add_command_group
from seqlab.data.datasets import load_gutenberg, load_text_corpus
from seqlab.data.fetch import DatasetNotFoundError, search_folders, sha256_of
from seqlab.data.tokenizers import CharTokenizer
from seqlab.data.vocabulary import Vocabulary
from seqlab.generation import Sampling, TextGenerator
from seqlab.kernels.stepping import PRECISIONS
from seqlab.model import Sequential
from seqlab.saving import ModelDirectoryError, load_model, read_config, register_serializable, write_atomically
from seqlab.seeding import derive_seed, set_seed
from seqlab.training import (Adam, Callback, CSVLogger, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau,
                             SparseCategoricalCrossentropy, batchify, distributed)

__all__ = ["PRESETS", "CharVocabulary", "ChunkBatches", "Settings", "TrainingBudget", "add_parser",
           "build_model", "buffered_shuffle_order", "load_generator", "load_text", "train"]

CORPORA = ("mysterious-island", "koconovel")
CELLS = {"lstm": layers.LSTM, "gru": layers.GRU, "simple_rnn": layers.SimpleRNN}
KOCONOVEL_FILE = "koconovel/koconovel_50novels.txt"
KOCONOVEL_SHA256 = "938ec437fd1f3e8e5dde70dcf668fa4614f44d471f402007d57188be2bde8cde"
DEMO_SCALE_FACTORS = (2.0, 1.0, 0.5)


@dataclass
class Settings:
    """Everything a training run depends on; the defaults are the tutorial's (`--preset book`).

    `shuffle_buffer=None` shuffles all chunks each epoch; `max_minutes` /
    `max_steps` stop training early (after finishing that batch and validating);
    `patience` stops when the held-out loss has not improved for that many
    epochs and keeps the best weights; `reduce_lr_patience` halves the learning
    rate when it has not improved for that many epochs. `arch="transformer"`:
    `layers` causal blocks of width `embedding_dim`, `heads` heads, a
    feed-forward layer of `units`, dropout `dropout` inside each block, and
    learned positions for `seq_len` steps (`cell` and `stateful` do not apply).

        >>> Settings(**PRESETS["quick"]).units
        256
    """

    text: str | None = None
    corpus: str | None = "mysterious-island"
    seq_len: int = 40
    batch_size: int = 64
    embedding_dim: int = 256
    units: int = 512
    arch: str = "rnn"
    cell: str = "lstm"
    heads: int = 4
    layers: int = 1
    dropout: float = 0.0
    epochs: int = 20
    val_fraction: float = 0.1
    stateful: bool = False
    clip: float | None = None
    lr: float = 1e-3
    seed: int = 0
    shuffle_buffer: int | None = 10_000
    patience: int | None = None
    reduce_lr_patience: int | None = None
    max_minutes: float | None = None
    max_steps: int | None = None

    def __post_init__(self) -> None:
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


# --------------------------------------------------------------- vocabulary
@register_serializable(name="CharVocabulary")
class CharVocabulary:
    """A character `Vocabulary` as a model's config.json carries it (`model.tokenizer`).

    Saving a model with `tokenizer=CharVocabulary(vocabulary)` stores the
    characters (and their counts) so that the model directory alone is enough
    to generate: `load_model(dir).tokenizer.vocabulary`.

        >>> vocabulary = Vocabulary.build(["abca"], tokenizer=CharTokenizer())
        >>> CharVocabulary.from_config(CharVocabulary(vocabulary).get_config()).vocabulary == vocabulary
        True
    """

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary

    def get_config(self) -> dict[str, Any]:
        return {"vocabulary": json.loads(self.vocabulary.to_json())}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "CharVocabulary":
        return cls(Vocabulary.from_json(json.dumps(config["vocabulary"])))


# --------------------------------------------------------------------- data
def load_text(settings: Settings) -> str:
    """The text to train on: `--text PATH` (a UTF-8 file or a folder of .txt files) or a named corpus."""
    if settings.text is not None:
        return load_text_corpus(settings.text).text
    if settings.corpus == "mysterious-island":
        return load_gutenberg(1268).text
    return load_text_corpus(_koconovel_file()).text


def _koconovel_file() -> Path:
    """KoCoNovel's joined novels, found in `$SEQLAB_DATA_DIR` or the cache and checked against its sha256."""
    for folder in search_folders():
        for candidate in (folder / KOCONOVEL_FILE, folder / Path(KOCONOVEL_FILE).name):
            if candidate.is_file():
                if sha256_of(candidate) != KOCONOVEL_SHA256:
                    raise ValueError(f"{candidate} is not the KoCoNovel text seqlab knows (sha256 differs); "
                                     "pass it as --text PATH to train on it anyway.")
                return candidate
    raise DatasetNotFoundError(
        f"KoCoNovel ({KOCONOVEL_FILE}) is in none of {[str(f) for f in search_folders()]}, and it has no "
        "single-file download: put koconovel_50novels.txt there (set $SEQLAB_DATA_DIR), or pass --text PATH.")


def split_ids(ids: torch.Tensor, val_fraction: float, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(train, held_out)`: the text's ids without and with only its last `val_fraction`."""
    cut = int(len(ids) * (1.0 - val_fraction))
    train, held_out = ids[:cut], ids[cut:]
    if min(len(train), len(held_out)) < seq_len + 1:
        raise ValueError(f"The text has {len(ids):,} characters: with val_fraction={val_fraction} the training "
                         f"part has {len(train):,} and the held-out part {len(held_out):,}, but each needs at "
                         f"least seq_len + 1 = {seq_len + 1}. Use a longer text or a smaller --seq-len.")
    return train, held_out


def chunks(ids: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping chunks of seq_len + 1 ids → `x, y (chunks, seq_len)`, y = x shifted by one.

    The same windows as `seqlab.data.LanguageModelWindows(ids, seq_len)`; a
    tail shorter than a chunk is dropped.
    """
    windows = ids.unfold(0, seq_len + 1, seq_len + 1)
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


def buffered_shuffle_order(count: int, buffer_size: int | None, rng: np.random.Generator) -> np.ndarray:
    """The order `tf.data.Dataset.shuffle(buffer_size)` reads `count` items in.

    A buffer holds the next `buffer_size` items; each output is a uniformly
    drawn buffer slot, refilled with the next unread item. `None` (or a
    buffer ≥ count) is a full uniform permutation.

        >>> buffered_shuffle_order(5, 1, np.random.default_rng(0)).tolist()
        [0, 1, 2, 3, 4]
    """
    if buffer_size is None or buffer_size >= count:
        return rng.permutation(count)
    buffer = list(range(buffer_size))
    draws = rng.integers(0, np.iinfo(np.int64).max, size=count)
    order = np.empty(count, dtype=np.int64)
    upcoming = buffer_size
    for position in range(count):
        slot = int(draws[position] % len(buffer))
        order[position] = buffer[slot]
        if upcoming < count:
            buffer[slot] = upcoming
            upcoming += 1
        else:
            buffer[slot] = buffer[-1]
            buffer.pop()
    return order


class ChunkBatches:
    """Batches `(x, y)` of chunks in a buffered-shuffle order that changes each epoch (`fit` data).

    `epoch` selects the order (seeded by `derive_seed(seed, epoch)`); fit keeps
    it current through `ChunkBatches.follower()`. `shuffle=False` keeps the
    chunks in text order (held-out data).

        >>> batches = ChunkBatches(x, y, batch_size=64, shuffle_buffer=10_000, seed=0)
        >>> model.fit(batches, epochs=20, callbacks=[batches.follower()])
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle_buffer: int | None = None,
                 seed: int = 0, shuffle: bool = True):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.shuffle_buffer, self.seed, self.shuffle = shuffle_buffer, seed, shuffle
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.shuffle:
            rng = np.random.default_rng(derive_seed(self.seed, self.epoch))
            order = torch.from_numpy(buffered_shuffle_order(len(self.x), self.shuffle_buffer, rng))
        else:
            order = torch.arange(len(self.x))
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            yield self.x[index], self.y[index]

    def follower(self) -> Callback:
        """A callback that sets `epoch` at the start of each of fit's epochs."""
        return _FollowEpochs(self)


class _FollowEpochs(Callback):
    def __init__(self, batches: ChunkBatches):
        self.batches = batches

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.batches.epoch = epoch


# -------------------------------------------------------------------- model
def build_model(vocabulary_size: int, settings: Settings) -> Sequential:
    """Embedding → recurrent layer(s) returning sequences (Dropout after each when set) → Dense logits;
    with `arch="transformer"`, Embedding → positions → causal blocks → LayerNorm → Dense logits.

        >>> model = build_model(82, Settings())      # the tutorial's model over 80 characters
        >>> model.count_params()
        1637970
    """
    stack: list[layers.Layer] = [layers.Embedding(vocabulary_size, settings.embedding_dim)]
    if settings.arch == "transformer":
        stack += layers.transformer_stack(settings.embedding_dim, settings.heads, settings.units,
                                          num_blocks=settings.layers, dropout=settings.dropout,
                                          max_len=settings.seq_len, causal=True, norm_first=True)
    else:
        for _ in range(settings.layers):
            stack.append(CELLS[settings.cell](settings.units, return_sequences=True, stateful=settings.stateful))
            if settings.dropout:
                stack.append(layers.Dropout(settings.dropout))
    stack.append(layers.Dense(vocabulary_size))
    model = Sequential(stack, name=f"charlm_{'transformer' if settings.arch == 'transformer' else settings.cell}")
    model.build((None, None))
    return model


def compile_model(model: Sequential, settings: Settings) -> None:
    """Adam (optionally with global gradient-norm clipping), cross-entropy from logits, bits per character; CUDA when available."""
    optimizer = Adam(learning_rate=settings.lr, global_clipnorm=settings.clip)
    model.compile(optimizer, SparseCategoricalCrossentropy(from_logits=True), metrics=["bpc"])


# ----------------------------------------------------------------- training
class TrainingBudget(Callback):
    """Stop within `max_minutes` of training or after `max_steps` batches.

    Whole epochs are preferred: after an epoch, training stops when one more
    epoch of the average length so far would overrun the time budget. A batch
    that overruns it (an epoch longer than the budget) stops training at once;
    that last, partial epoch still validates and checkpoints, and counts as
    done (`--resume` starts with the next one).

        >>> TrainingBudget(max_minutes=40)
    """

    def __init__(self, max_minutes: float | None = None, max_steps: int | None = None):
        self.max_minutes, self.max_steps = max_minutes, max_steps
        self.on_train_begin()

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started, self.steps, self.epochs_done, self.reason = time.perf_counter(), 0, 0, None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps += 1
        if self.max_minutes is not None and self._minutes() >= self.max_minutes:
            self._stop(f"time budget of {self.max_minutes:g} minutes used, in the middle of an epoch "
                       f"({self.steps} batches)")
        elif self.max_steps is not None and self.steps >= self.max_steps:
            self._stop(f"step budget of {self.max_steps} batches used ({self._minutes():.1f} minutes)")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs_done += 1
        if self.max_minutes is None or self.reason is not None or epoch + 1 >= self.params.get("epochs", 0):
            return
        per_epoch = self._minutes() / self.epochs_done
        if self._minutes() + per_epoch > self.max_minutes:
            self._stop(f"another epoch (~{per_epoch * 60:.0f} s) would overrun the time budget of "
                       f"{self.max_minutes:g} minutes ({self._minutes() * 60:.0f} s used)")

    def _minutes(self) -> float:
        return (time.perf_counter() - self.started) / 60

    def _stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.model.stop_training = True
            self.say(f"Stopping: {reason}.")


class EpochTimer(Callback):
    """Adds `seconds` (wall time of the epoch, validation included) to each epoch's logs."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["seconds"] = time.perf_counter() - self.started


@dataclass
class TrainResult:
    """What `train` produced: the model, its vocabulary, the per-epoch history and where it was saved."""

    model: Sequential
    vocabulary: Vocabulary
    history: dict[str, list[float]]
    model_dir: Path
    stop_reason: str | None


def train(settings: Settings, out: str | Path, *, resume: bool = False, verbose: int | str = "auto",
          log: TextIO | None = None) -> TrainResult:
    """Train a character LM as `settings` say; write OUT/settings.json, checkpoints, log.csv, history.json, model.

    With `resume=True` the run continues from OUT/checkpoints/last (when there
    is one) with the settings it started with. Under torchrun only rank 0
    prints and writes; the others return once its files are written.

        >>> result = train(Settings(**PRESETS["quick"]), "runs/quick")
        >>> result.history["val_bpc"][-1]
    """
    out, log = Path(out), log or sys.stderr
    out.mkdir(parents=True, exist_ok=True)
    text = load_text(settings)
    vocabulary = Vocabulary.build([text], tokenizer=CharTokenizer())
    ids = torch.tensor(vocabulary.encode(text), dtype=torch.long)
    train_ids, held_out_ids = split_ids(ids, settings.val_fraction, settings.seq_len)
    distributed.print_main(f"Text: {len(text):,} characters, {len(vocabulary) - 2:,} distinct; training on the "
                           f"first {len(train_ids):,}, holding out the last {len(held_out_ids):,}.", file=log)

    set_seed(settings.seed)
    model = build_model(len(vocabulary), settings)
    model.tokenizer = CharVocabulary(vocabulary)
    compile_model(model, settings)
    shape = (f"transformer {settings.layers} blocks × {settings.embedding_dim} ({settings.heads} heads, "
             f"feed-forward {settings.units})" if settings.arch == "transformer" else
             f"{settings.cell} {settings.layers}×{settings.units}, embedding {settings.embedding_dim}")
    distributed.print_main(f"Model: {shape}, {model.count_params():,} parameters.", file=log)

    if distributed.is_main_process():
        # replaced whole: with --resume the other processes may be reading the previous one
        write_atomically(out / "settings.json", (json.dumps(dataclasses.asdict(settings), indent=2) + "\n").encode())
    checkpoint = ModelCheckpoint(out / "checkpoints", monitor="val_loss")
    budget = TrainingBudget(settings.max_minutes, settings.max_steps)
    callbacks: list[Callback] = [EpochTimer(), budget]
    if settings.patience is not None:
        callbacks.append(EarlyStopping("val_loss", patience=settings.patience, restore_best_weights=True))
    if settings.reduce_lr_patience is not None:
        callbacks.append(ReduceLROnPlateau("val_loss", factor=0.5, patience=settings.reduce_lr_patience,
                                           min_lr=1e-5))
    callbacks.append(CSVLogger(out / "log.csv", append=resume))  # last: it sees what the others add
    fit_data = _fit_data(train_ids, held_out_ids, settings, callbacks)
    history = model.fit(**fit_data, epochs=settings.epochs, verbose=verbose, callbacks=[*callbacks, checkpoint],
                        seed=settings.seed, resume_from=checkpoint if resume else None)

    model_dir = out / "model"
    model.save(model_dir, tokenizer=model.tokenizer)
    stop_reason = budget.reason or history.stop_reason
    distributed.on_main_then_wait(lambda: (out / "history.json").write_text(json.dumps(
        {"history": history.history, "epochs": [e + 1 for e in history.epoch], "stop_reason": stop_reason,
         "parameters": model.count_params(), "vocabulary_size": len(vocabulary)}, indent=2) + "\n"))
    return TrainResult(model, vocabulary, history.history, model_dir, stop_reason)


def _fit_data(train_ids: torch.Tensor, held_out_ids: torch.Tensor, settings: Settings,
              callbacks: list[Callback]) -> dict[str, Any]:
    """fit's data arguments: shuffled chunks, or parallel streams read in windows (stateful)."""
    if settings.stateful:
        streams = settings.batch_size
        held_out_streams = max(1, min(streams, (len(held_out_ids) - 1) // settings.seq_len))
        return {"x": batchify(train_ids[:-1], streams), "y": batchify(train_ids[1:], streams),
                "validation_data": (batchify(held_out_ids[:-1], held_out_streams),
                                    batchify(held_out_ids[1:], held_out_streams)),
                "tbptt": settings.seq_len}
    train_batches = ChunkBatches(*chunks(train_ids, settings.seq_len), settings.batch_size,
                                 settings.shuffle_buffer, settings.seed)
    callbacks.append(train_batches.follower())
    held_out = ChunkBatches(*chunks(held_out_ids, settings.seq_len), settings.batch_size, shuffle=False)
    return {"x": train_batches, "validation_data": held_out}


# --------------------------------------------------------------- generation
def resolve_model_dir(directory: str | Path) -> Path:
    """The model directory itself, or OUT/model of a training run's output directory."""
    directory = Path(directory)
    for candidate in (directory, directory / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    raise ModelDirectoryError(f"{directory} holds no model: expected config.json in it or in {directory / 'model'} "
                              "(the output of `seqlab charlm train --out DIR`).")


def load_generator(directory: str | Path, precision: str = "float32") -> TextGenerator:
    """A `TextGenerator` for the model saved in `directory` (an OUT of `train`, OUT/model, or a checkpoint).

    precision: "float32", or "bfloat16" for the recurrent products (`seqlab.kernels.stepping.Stepper`).
    """
    model_dir = resolve_model_dir(directory)
    model = load_model(model_dir, compile=False)
    saved = getattr(model, "tokenizer", None)
    if not isinstance(saved, CharVocabulary):
        kind = read_config(model_dir).get("tokenizer")
        raise ModelDirectoryError(f"{model_dir} has no character vocabulary in config.json (tokenizer: {kind}); "
                                  "generate needs a model saved by `seqlab charlm train`.")
    return TextGenerator(model, saved.vocabulary, precision)


def stream_samples(generator: TextGenerator, prime: str, length: int, sampling: Sampling, num_samples: int = 1,
                   seed: int | None = None, allow_unknown: bool = False, out: TextIO | None = None,
                   quiet: bool = False) -> list[str]:
    """Write each sample (prime + continuation, then a newline) to `out` (stdout); return the samples.

    All samples generate together; the first streams character by character,
    the others follow when the batch is done. Sample headers and the speed go
    to stderr (nothing with `quiet`).
    """
    out = out or sys.stdout
    log = None if quiet else sys.stderr
    if log is not None and num_samples > 1:
        print(f"--- sample 1 of {num_samples} ---", file=log, flush=True)
    out.write(prime)
    out.flush()
    pieces: list[list[str]] = [[prime] for _ in range(num_samples)]
    started = time.perf_counter()
    for characters in generator.stream(prime, length, sampling, num_samples, seed, allow_unknown):
        out.write(characters[0])
        out.flush()
        for piece, character in zip(pieces, characters):
            piece.append(character)
    seconds = time.perf_counter() - started
    out.write("\n")
    samples = ["".join(piece) for piece in pieces]
    for index, sample in enumerate(samples[1:], start=2):
        if log is not None:
            print(f"--- sample {index} of {num_samples} ---", file=log, flush=True)
        out.write(sample + "\n")
    out.flush()
    if log is not None and seconds > 0:
        print(f"[{num_samples} × {length} characters in {seconds:.2f} s: "
              f"{num_samples * length / seconds:,.0f} characters/s]", file=log)
    return samples


# ---------------------------------------------------------------------- CLI
def add_parser(subcommands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `charlm` with `train`, `generate` and `demo` to the `seqlab` command."""
    parser, commands = add_command_group(subcommands, "charlm", dest="charlm_command",
                                         help="character-level language model: train, generate, demo",
                                         description=__doc__.split("\n\n")[0])
    _add_train(commands)
    _add_generate(commands)
    _add_demo(commands)
    return parser


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", metavar="PATH", help="a UTF-8 text file (or a folder of .txt files) to train on")
    source.add_argument("--corpus", choices=CORPORA, help="a known corpus (default: mysterious-island)")


def _add_train(commands: argparse._SubParsersAction) -> None:
    train_parser = commands.add_parser("train", help="train a character LM on a text",
                                       description="Train a character LM; progress and per-epoch results go to stderr.")
    train_parser.add_argument("--preset", choices=sorted(PRESETS),
                              help="book: the tutorial's run; best: the best recipe for a small CPU; "
                                   "quick: a few minutes; transformer: a causal transformer of the best "
                                   "LSTM's size (options given beside it override it)")
    _add_source_options(train_parser)
    option = train_parser.add_argument
    option("--seq-len", type=int, help="characters per training window (default 40)")
    option("--batch-size", type=int, help="windows per batch, or parallel streams with --stateful (default 64)")
    option("--embedding-dim", type=int, help="embedding size (default 256)")
    option("--units", type=int, help="units per recurrent layer, or the transformer's feed-forward width (default 512)")
    option("--arch", choices=ARCHITECTURES, help="rnn: recurrent layers; transformer: causal transformer blocks of "
                                                 "--embedding-dim features (default rnn)")
    option("--cell", choices=sorted(CELLS), help="recurrent cell (default lstm)")
    option("--heads", type=int, help="attention heads per transformer block (default 4)")
    option("--layers", type=int, help="stacked recurrent layers or transformer blocks (default 1)")
    option("--dropout", type=float, help="dropout after each recurrent layer, or inside each transformer block "
                                         "(default 0)")
    option("--epochs", type=int, help="epochs (default 20)")
    option("--val-fraction", type=float, help="share of the text held out, its contiguous tail (default 0.1)")
    option("--stateful", "--tbptt", action=argparse.BooleanOptionalAction, default=None,
           help="carry the state across consecutive windows of parallel streams (truncated BPTT)")
    option("--clip", type=float, help="clip the global gradient norm to this value")
    option("--lr", type=float, help="Adam's learning rate (default 0.001)")
    option("--seed", type=int, help="seed for weights and data order (default 0)")
    option("--shuffle-buffer", type=int, help="shuffle buffer in chunks (default 10000; 0: shuffle all)")
    option("--patience", type=int, help="stop when the held-out loss has not improved for this many epochs "
                                        "(and keep the best epoch's weights)")
    option("--reduce-lr-patience", type=int, help="halve the learning rate when the held-out loss has not "
                                                  "improved for this many epochs")
    option("--max-minutes", type=float, help="stop training after this many minutes")
    option("--max-steps", type=int, help="stop training after this many batches")
    option("--out", default="runs/charlm", help="output directory (default runs/charlm)")
    option("--resume", action="store_true", help="continue the run in OUT from its last checkpoint")
    option("--verbose", type=int, choices=(0, 1, 2), default=None, help="0 silent, 1 progress bars, 2 one line per epoch")
    _add_threads_option(train_parser, None)
    train_parser.set_defaults(handler=_train_command)


def _add_generate(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser("generate", help="generate text from a trained model (streams to stdout)",
                                   description="Only the text (prime and continuation) goes to stdout.")
    generate.add_argument("--model", required=True, help="a training run's OUT directory, OUT/model, or a checkpoint")
    generate.add_argument("--prime", default="The island", help="text to start from (default 'The island')")
    generate.add_argument("--length", type=int, default=500, help="characters to generate (default 500)")
    _add_sampling_options(generate)
    generate.add_argument("--num-samples", type=int, default=1, help="samples, generated as one batch (default 1)")
    generate.add_argument("--seed", type=int, help="seed for sampling (default: random, printed to stderr)")
    generate.add_argument("--precision", choices=PRECISIONS, default="float32",
                          help="bfloat16: each step's recurrent product from bfloat16 copies of the state and "
                               "the recurrent kernel, summed in float32 (about twice as fast for many samples "
                               "on CPUs with AVX512-BF16; states and output in float32) (default float32)")
    generate.add_argument("--allow-unknown", action="store_true",
                          help="map prime characters the model never saw to the unknown index instead of failing")
    _add_threads_option(generate, 1)
    generate.set_defaults(handler=_generate_command)


def _add_sampling_options(parser: argparse.ArgumentParser) -> None:
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--temperature", type=float, help="divide the logits by T (T = 1/α)")
    scale.add_argument("--scale-factor", type=float, help="multiply the logits by α, as the tutorial (default 1)")
    scale.add_argument("--greedy", action="store_true", help="always take the most probable character")
    parser.add_argument("--top-k", type=int, help="sample among the k most probable characters")
    parser.add_argument("--top-p", type=float, help="sample among the most probable characters holding mass p")


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="the main job: train for a few minutes, save, print samples",
                               description="Train the quick preset (an LSTM) for a few minutes on the CPU, save "
                                           "it, then print 'The island' continued at α = 2.0, 1.0 and 0.5.")
    _add_source_options(demo)
    demo.add_argument("--max-minutes", type=float, default=3.0, help="training time (default 3)")
    demo.add_argument("--out", default="runs/charlm-demo", help="output directory (default runs/charlm-demo)")
    demo.add_argument("--prime", default="The island", help="text to start from (default 'The island')")
    demo.add_argument("--length", type=int, default=300, help="characters per sample (default 300)")
    demo.add_argument("--seed", type=int, default=1, help="seed for training and sampling (default 1)")
    _add_threads_option(demo, 1)
    demo.set_defaults(handler=_demo_command)


def _add_threads_option(parser: argparse.ArgumentParser, default: int | None) -> None:
    # One step of generation (and a small model's training step) is a few small matrix products: on a
    # shared or small CPU, one intra-op thread avoids the synchronisation that otherwise dominates them.
    parser.add_argument("--threads", type=int, default=default,
                        help="PyTorch intra-op threads for this command (default: "
                             + ("PyTorch's choice" if default is None else str(default)) + ")")


def _use_threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}.")
        torch.set_num_threads(args.threads)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Defaults, then the preset, then every option given on the command line."""
    values = {**PRESETS.get(args.preset or "book", {})}
    names = {field.name for field in dataclasses.fields(Settings)}
    values.update({name: value for name, value in vars(args).items() if name in names and value is not None})
    if args.text is not None:
        values["corpus"] = None
    if values.get("shuffle_buffer") == 0:
        values["shuffle_buffer"] = None
    return Settings(**values)


def _resumed_settings(args: argparse.Namespace) -> Settings:
    saved = Path(args.out) / "settings.json"
    if not saved.is_file():
        return settings_from_args(args)
    values = json.loads(saved.read_text())
    for name in ("epochs", "max_minutes", "max_steps"):  # a resumed run may be given more time
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    return Settings(**values)


def command_line(args: argparse.Namespace) -> str:
    """The `seqlab charlm train|demo ...` command line of `args` (options in canonical spelling)."""
    parts = ["seqlab", "charlm", args.charlm_command]
    for name, value in vars(args).items():
        if name in ("command", "charlm_command", "handler") or value is None or value is False and name == "resume":
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def _record_command(args: argparse.Namespace, append: bool = False) -> None:
    if not distributed.is_main_process():
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with open(Path(args.out) / "command.txt", "a" if append else "w") as record:
        record.write(command_line(args) + "\n")


def _train_command(args: argparse.Namespace) -> int:
    try:
        _use_threads(args)
        settings = _resumed_settings(args) if args.resume else settings_from_args(args)
        _record_command(args, append=args.resume)
        result = train(settings, args.out, resume=args.resume, verbose="auto" if args.verbose is None else args.verbose)
    except (ValueError, FileNotFoundError) as error:
        print(f"seqlab charlm train: {error}", file=sys.stderr)
        return 1
    losses, bits = result.history.get("val_loss", []), result.history.get("val_bpc", [])
    if losses:
        best = min(range(len(losses)), key=losses.__getitem__)
        kept = "the saved model" if settings.patience is not None else f"{Path(args.out) / 'checkpoints' / 'best'}"
        distributed.print_main(
            f"Held-out loss after epoch {len(losses)}: {losses[-1]:.4f} nats/char ({bits[-1]:.4f} bits/char); "
            f"best: {losses[best]:.4f} ({bits[best]:.4f} bits/char) after epoch {best + 1}, in {kept}.",
            file=sys.stderr)
    distributed.print_main(f"Saved {result.model_dir}. Generate with: seqlab charlm generate --model {args.out}",
                           file=sys.stderr)
    return 0


def _sampling_from_args(args: argparse.Namespace) -> Sampling:
    return Sampling.create(temperature=args.temperature, scale_factor=args.scale_factor, top_k=args.top_k,
                           top_p=args.top_p, greedy=args.greedy)


def _generate_command(args: argparse.Namespace) -> int:
    try:
        _use_threads(args)
        sampling = _sampling_from_args(args)
        generator = load_generator(args.model, args.precision)
        seed = args.seed if args.seed is not None else int(torch.randint(0, 2**31, (1,)).item())
        if args.seed is None:
            print(f"[seed {seed}]", file=sys.stderr)
        generator.encode(args.prime, args.allow_unknown)  # fail before anything reaches stdout
        stream_samples(generator, args.prime, args.length, sampling, args.num_samples, seed, args.allow_unknown)
    except (ValueError, FileNotFoundError) as error:
        print(f"seqlab charlm generate: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader left (`... | head -c 100`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _demo_command(args: argparse.Namespace) -> int:
    values = {**PRESETS["quick"], "max_minutes": args.max_minutes, "seed": args.seed}
    if args.text is not None:
        values.update(text=args.text, corpus=None)
    elif args.corpus is not None:
        values["corpus"] = args.corpus
    try:
        _use_threads(args)
        _record_command(args)
        result = train(Settings(**values), args.out)
        generator = TextGenerator(result.model, result.vocabulary)
        generator.encode(args.prime)
    except (ValueError, FileNotFoundError) as error:
        print(f"seqlab charlm demo: {error}", file=sys.stderr)
        return 1
    if not distributed.is_main_process():
        return 0  # rank 0 shows the samples
    history = result.history
    print(f"Trained {len(history['loss'])} epoch(s) ({result.stop_reason or 'all epochs'}): held-out loss "
          f"{history['val_loss'][-1]:.4f} nats/char, {history['val_bpc'][-1]:.4f} bits/char. "
          f"Saved to {result.model_dir}.\n")
    for scale_factor in DEMO_SCALE_FACTORS:
        print(f"--- α = {scale_factor} (temperature {1 / scale_factor:g}) ---", flush=True)
        stream_samples(generator, args.prime, args.length, Sampling(scale_factor=scale_factor), seed=args.seed,
                       quiet=True)
        print()
    print(f"More: seqlab charlm generate --model {args.out} --prime \"{args.prime}\" --scale-factor 1.0")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m seqlab.apps.charlm ...`: the same as `seqlab charlm ...`."""
    parser = argparse.ArgumentParser(prog="python -m seqlab.apps.charlm")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["charlm", *(sys.argv[1:] if argv is None else argv)])
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
