"""Train, load and sample a character LM: `train`, `load_generator`, `stream_samples`.

`train` writes into OUT: checkpoints (OUT/checkpoints, `resume=True`
continues), the model and its vocabulary (OUT/model), per-epoch results
(OUT/log.csv, OUT/history.json) and the settings (OUT/settings.json). Each
epoch reports the loss (nats per character) and bits per character =
loss / ln 2 on both parts of the text.

Generation (`seqlab.generation`) runs the prime once, then one recurrent step
per character; several samples run as one batch. A transformer has no
carried state: each character re-reads the last `seq_len` characters.

    >>> result = train(Settings(**PRESETS["quick"]), "runs/quick")
    >>> load_generator("runs/quick").generate("The island", 100, Sampling(), seed=1)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import torch

from seqlab.apps.charlm.data import fit_data, load_text, split_ids
from seqlab.apps.charlm.model import CharVocabulary, build_model, compile_model
from seqlab.apps.charlm.settings import Settings
from seqlab.apps.run_directory import RunDirectory, resolve_model_dir
from seqlab.data.tokenizers import CharTokenizer
from seqlab.data.vocabulary import Vocabulary
from seqlab.generation import Sampling, TextGenerator
from seqlab.model import Sequential
from seqlab.files import write_atomically
from seqlab.saving import ModelDirectoryError, load_model, read_config
from seqlab.seeding import set_seed
from seqlab.training import Callback, CSVLogger, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, distributed
from seqlab.training.epoch_timer import EpochTimer
from seqlab.training.time_budget import TimeBudget

__all__ = ["TrainResult", "load_generator", "resolve_model_dir", "stream_samples", "train"]


@dataclass
class TrainResult:
    """What `train` produced: the model, its vocabulary, the per-epoch history and where it was saved."""

    model: Sequential
    vocabulary: Vocabulary
    history: dict[str, list[float]]
    model_dir: Path
    stop_reason: str | None
    settings: Settings


RESUMABLE = ("epochs", "max_minutes", "max_steps")  # what a resumed run may be given more of


def train(settings: Settings | None, out: str | Path, *, resume: bool = False, overwrite: bool = False,
          given: dict | None = None, command: str | None = None, verbose: int | str = "auto",
          log: TextIO | None = None) -> TrainResult:
    """Train a character LM as `settings` say; write OUT/settings.json, checkpoints, log.csv, history.json, model.

    OUT is checked before the text loads (`seqlab.apps.run_directory`): a
    fresh run into an earlier run's OUT needs `overwrite=True`. With
    `resume=True` the run continues from OUT/checkpoints/last (from its start
    if no epoch had ended) with the settings it started with (`settings` may be
    None); settings that differ from those are refused, except more epochs,
    minutes or steps. `given` (default: `settings`) are the settings to check
    that way; `command` is appended to OUT/command.txt. Under torchrun only
    rank 0 prints and writes; the others return once its files are written.

        >>> result = train(Settings(**PRESETS["quick"]), "runs/quick")
        >>> result.history["val_bpc"][-1]
    """
    out, log = Path(out), log or sys.stderr
    if settings is None and not resume:
        raise ValueError("train needs settings, unless it resumes a run (resume=True).")
    run_dir = RunDirectory(out, model_dir=out / "model", owned=("history.json",))
    fields = dataclasses.asdict(settings) if settings is not None else {}
    settings = Settings(**run_dir.prepare(fields, resume=resume, given=given, may_change=RESUMABLE,
                                          overwrite=overwrite, write=distributed.is_main_process()))
    if command is not None and distributed.is_main_process():
        run_dir.record_command(command, append=resume)
    with run_dir.discarded_on_failure():  # a bad text leaves no run behind
        text = load_text(settings)
        settings = run_dir.pin_checksum(settings, "text_sha256", hashlib.sha256(text.encode("utf-8")).hexdigest(),
                                        f"text {settings.text or settings.corpus}",
                                        write=distributed.is_main_process())
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

        checkpoint = ModelCheckpoint(run_dir.checkpoints, monitor="val_loss")
        budget = TimeBudget(settings.max_minutes, settings.max_steps)
        callbacks: list[Callback] = [EpochTimer(), budget]
        if settings.patience is not None:
            callbacks.append(EarlyStopping("val_loss", patience=settings.patience, restore_best_weights=True))
        if settings.reduce_lr_patience is not None:
            callbacks.append(ReduceLROnPlateau("val_loss", factor=0.5, patience=settings.reduce_lr_patience,
                                               min_lr=1e-5))
        # The logger last: it sees what the others add to the logs.
        callbacks.append(CSVLogger(run_dir.log_file, append=run_dir.continues(resume)))
        data = fit_data(train_ids, held_out_ids, settings)
        history = model.fit(**data, epochs=settings.epochs, verbose=verbose, callbacks=[*callbacks, checkpoint],
                            seed=settings.seed, resume_from=checkpoint if resume else None)

    model_dir = out / "model"
    model.save(model_dir, tokenizer=model.tokenizer)
    stop_reason = budget.reason or history.stop_reason
    distributed.on_main_then_wait(lambda: write_atomically(out / "history.json", (json.dumps(
        {"history": history.history, "epochs": [e + 1 for e in history.epoch], "stop_reason": stop_reason,
         "parameters": model.count_params(), "vocabulary_size": len(vocabulary)}, indent=2) + "\n").encode()))
    return TrainResult(model, vocabulary, history.history, model_dir, stop_reason, settings)


# --------------------------------------------------------------- generation
def load_generator(directory: str | Path, precision: str = "float32") -> TextGenerator:
    """A `TextGenerator` for the model saved in `directory` (an OUT of `train`, OUT/model, or a checkpoint).

    precision: "float32", or "bfloat16" for the recurrent products (`seqlab.generation.Stepper`).
    """
    model_dir = resolve_model_dir(directory)
    model = load_model(model_dir, compile=False)
    saved = getattr(model, "tokenizer", None)
    if not isinstance(saved, CharVocabulary):
        kind = (read_config(model_dir).get("tokenizer") or {}).get("class_name")
        what = f"its tokenizer is {kind}" if kind else f"it holds a {type(model).__name__} without a tokenizer"
        raise ModelDirectoryError(f"{model_dir} has no character vocabulary in config.json ({what}); "
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


