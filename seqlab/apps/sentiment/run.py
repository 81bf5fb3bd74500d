"""Train, save and evaluate a sentiment classifier: `train`, `save`, `evaluate`.

`train` reads the data, builds the encoder and the model of a recipe, fits
it (early stopping and a time budget when the recipe asks), scores the test
split and, with `out`, saves the model with its encoder in OUT/model and
`summary.json` (recipe, scores, history, timings) in OUT, beside the run's
settings.json, log.csv and checkpoints (each epoch: `resume=True` goes on).

    >>> from seqlab.apps import sentiment
    >>> run = sentiment.train("imdb", preset="book-bisimplernn-100", split="book", out="runs/imdb-rnn")
    >>> sentiment.evaluate("runs/imdb-rnn").accuracy
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqlab.apps.sentiment.data import DataSource
from seqlab.apps.sentiment.encoding import TextEncoder, batches_for_inference, review_batches
from seqlab.apps.sentiment.evaluation import Evaluation
from seqlab.apps.sentiment.model import (SentimentClassifier, build_model, check_vectors_width, compile_model, load,
                                         start_from_vectors)
from seqlab.apps.sentiment.recipe import Recipe, make_recipe, preset_values
from seqlab.apps.threads import use_threads
from seqlab.apps.run_directory import RunDirectory
from seqlab.embeddings import load_vectors
from seqlab.files import write_atomically
from seqlab.seeding import set_seed
from seqlab.training import CSVLogger, EarlyStopping, ModelCheckpoint, distributed
from seqlab.training.epoch_timer import EpochTimer
from seqlab.training.time_budget import TimeBudget

__all__ = ["TrainResult", "evaluate", "save", "train"]


@dataclass
class TrainResult:
    """What `train` produced: the classifier, its test scores, history and timings."""

    classifier: SentimentClassifier
    recipe: Recipe
    source: DataSource
    test: Evaluation
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    train_seconds: float
    total_seconds: float
    parameters: int
    vocabulary_size: int
    stop_reason: str
    best_epoch: int | None = None
    directory: Path | None = None

    def summary(self) -> dict[str, Any]:
        return {"recipe": dataclasses.asdict(self.recipe), "source": self.source.to_config(),
                "test": self.test.to_dict(), "history": self.history, "epoch_seconds": self.epoch_seconds,
                "epochs_run": len(self.epoch_seconds), "best_epoch": self.best_epoch,
                "train_seconds": self.train_seconds, "total_seconds": self.total_seconds,
                "parameters": self.parameters, "vocabulary_size": self.vocabulary_size,
                "stop_reason": self.stop_reason, "threads": torch.get_num_threads(),
                "torch_version": torch.__version__}

    def report(self) -> str:
        best = f", best epoch {self.best_epoch + 1} restored" if self.best_epoch is not None else ""
        return (f"Test accuracy {self.test.accuracy:.2%} on {self.test.count:,} texts of {self.source.describe()} | "
                f"{len(self.epoch_seconds)} epoch(s) ({self.stop_reason}{best}) | training "
                f"{_minutes(self.train_seconds)}, total {_minutes(self.total_seconds)} | "
                f"{self.parameters:,} parameters, vocabulary {self.vocabulary_size:,}")


RESUMABLE = ("epochs", "max_minutes")  # what a resumed run may be given more of
DATA_FIELDS = ("dataset", "split", "text_column", "label_column", "labels", "delimiter", "quoting", "decode_errors")


def train(dataset: str | DataSource | None = "imdb", *, preset: str | None = None,
          out: str | os.PathLike | None = None, split: str = "official", resume: bool = False,
          overwrite: bool = False, given: dict[str, Any] | None = None, command: str | None = None,
          verbose: int | str = "auto", threads: int | None = None, log=sys.stderr, **options: Any) -> TrainResult:
    """Train a sentiment classifier on `dataset` ("imdb", "nsmc", "csv:PATH" or a `DataSource`), test it, save it.

    `options` are `Recipe` fields (they override the preset). `threads` sets
    torch's CPU threads (1 is the fastest on a busy 2-core machine). With
    `out`, OUT is checked before the data load (`seqlab.apps.run_directory`),
    each epoch ends with a checkpoint in OUT/checkpoints and a row in
    OUT/log.csv, and `resume=True` continues the run there exactly, with its
    own settings (`dataset` may then be None); settings in `given` (default:
    these) that differ from those are refused, except more epochs or time.
    """
    started = time.perf_counter()
    source = dataset if isinstance(dataset, DataSource) or dataset is None else DataSource(dataset, split)
    run_dir = RunDirectory(out, model_dir=Path(out) / "model", owned=("summary.json",)) if out is not None else None
    if resume and run_dir is None:
        raise ValueError("resume=True continues the run in `out`: give out=... .")
    if options.get("embeddings") is not None:  # the vectors' width is the Embedding's
        width = load_vectors(options["embeddings"]).dim
        check_vectors_width(width, options.get("embedding_dim"))
        options = {**options, "embedding_dim": width}
    settings = ({} if source is None else _settings_of(source, make_recipe(preset, source.dataset, **options)))
    if run_dir is not None:
        if given is None and resume:
            data = source.to_config() if isinstance(dataset, DataSource) else {}
            given = resume_given(run_dir, preset, options, data)
        elif given is None:  # the data's checksum is checked by DataSource.from_config, with its own message
            given = {name: value for name, value in settings.items() if name != "sha256"}
        settings = run_dir.prepare(settings, resume=resume, given=given, may_change=RESUMABLE, overwrite=overwrite,
                                   write=distributed.is_main_process())
        if command is not None and distributed.is_main_process():
            run_dir.record_command(command, append=resume)
    with run_dir.discarded_on_failure() if run_dir is not None else contextlib.nullcontext():  # bad data: no trace
        source = DataSource.from_config({name: settings.get(name) for name in (*DATA_FIELDS, "sha256")})
        recipe = Recipe(**{name: value for name, value in settings.items() if name not in (*DATA_FIELDS, "sha256")})
        use_threads(threads)
        set_seed(recipe.seed)
        train_split, validation_split, test_split = source.splits()
        _say(log, f"{source.describe()}: {len(train_split):,} train, {len(validation_split):,} validation, "
                  f"{len(test_split):,} test texts")
        encoder = TextEncoder.build(train_split, recipe, source)
        vocabulary = encoder.vocabulary
        train_ids = encoder.encode_batch(train_split.texts)
        validation_ids = encoder.encode_batch(validation_split.texts)
        model = build_model(recipe, len(vocabulary))
        if recipe.embeddings is not None and not (run_dir is not None and run_dir.continues(resume)):
            found = start_from_vectors(model, recipe, vocabulary)
            _say(log, f"embedding from {recipe.embeddings}: {found:.1%} of the vocabulary's tokens have a vector"
                      f"{' (frozen)' if recipe.freeze_embeddings else ''}")
        compile_model(model, recipe)
        model.tokenizer = encoder
        grams = f" and their 2..{recipe.ngrams}-grams" if recipe.ngrams > 1 else ""
        _say(log, f"vocabulary {len(vocabulary):,} ({recipe.tokenizer} tokens{grams}), "
                  f"{model.count_params():,} parameters")
        timer = EpochTimer(log_key=None)  # summary.json keeps the seconds apart from the history
        stopper = (EarlyStopping("val_accuracy", patience=recipe.patience, restore_best_weights=True)
                   if recipe.patience is not None else None)
        # No epoch starts that would end past the limit, judged by the slowest epoch so far.
        limit = (TimeBudget(recipe.max_minutes, estimate="slowest", stop_mid_epoch=False)
                 if recipe.max_minutes is not None else None)
        train_batches = review_batches(train_ids, train_split.labels, recipe.batch_size, shuffle=recipe.shuffle,
                                       bucket=recipe.bucket, seed=recipe.seed)
        callbacks = [c for c in (timer, stopper, limit) if c is not None]
        checkpoint = None
        if run_dir is not None:  # the log's row, then the checkpoint: a resume drops a row its checkpoint lacks
            checkpoint = ModelCheckpoint(run_dir.checkpoints, monitor="val_accuracy", save_best=False)
            callbacks += [CSVLogger(run_dir.log_file, append=run_dir.continues(resume)), checkpoint]
        fit_started = time.perf_counter()
        history = model.fit(
            train_batches, validation_data=batches_for_inference(encoder, validation_ids, validation_split.labels),
            epochs=recipe.epochs, verbose=verbose, callbacks=callbacks, seed=recipe.seed,
            resume_from=checkpoint if resume else None)
    train_seconds = time.perf_counter() - fit_started
    classifier = SentimentClassifier(model, encoder)
    test = classifier.evaluate(test_split)
    epochs_run = len(timer.seconds)
    stop_reason = ("early stopping" if stopper is not None and stopper.stopped_epoch else
                   "time limit" if limit is not None and limit.stopped else
                   "all epochs" if epochs_run == recipe.epochs else "stopped")
    result = TrainResult(classifier, recipe, source, test, history.history, timer.seconds, train_seconds,
                         time.perf_counter() - started, model.count_params(), len(vocabulary), stop_reason,
                         stopper.best_epoch if stopper is not None else None)
    if out is not None:
        result.directory = save(result, out)
    return result


def resume_given(run_dir: RunDirectory, preset: str | None, options: dict[str, Any],
                 data: dict[str, Any]) -> dict[str, Any]:
    """What a resume was given, to check against the run's settings: the preset's values (for the run's
    dataset), the recipe options not None, and the data options given (`data`, its checksum left out)."""
    dataset = data.get("dataset") or (run_dir.saved_settings() or {}).get("dataset", "imdb")
    return {**preset_values(preset, dataset), **{k: v for k, v in options.items() if v is not None},
            **{k: v for k, v in data.items() if k != "sha256"}}


def _settings_of(source: DataSource, recipe: Recipe) -> dict[str, Any]:
    """A run's settings as settings.json holds them: the data's fields (with its checksum), then the recipe's."""
    return {**source.to_config(), **dataclasses.asdict(recipe)}


def save(result: TrainResult, directory: str | os.PathLike) -> Path:
    """Write the model (with its encoder) to DIRECTORY/model and DIRECTORY/summary.json (recipe, scores,
    history, timings); returns DIRECTORY.

    In a distributed run rank 0 writes and the other processes wait until it has.
    """
    directory = Path(directory)
    result.classifier.model.save(directory / "model", tokenizer=result.classifier.encoder)
    distributed.on_main_then_wait(
        lambda: write_atomically(directory / "summary.json", (json.dumps(result.summary(), indent=2) + "\n").encode()))
    return directory


def evaluate(model: str | os.PathLike | SentimentClassifier, dataset: str | DataSource | None = None,
             split: str = "official") -> Evaluation:
    """Score a saved model (or a classifier) on a dataset's test split, or every row of a CSV.

    Without `dataset`, the test split of the data it was trained on.
    """
    classifier = model if isinstance(model, SentimentClassifier) else load(model)
    if dataset is None:
        if classifier.encoder.source is None:
            raise ValueError("This model does not record the data it was trained on; pass dataset=... .")
        source = DataSource.from_config(classifier.encoder.source)
        test = source.splits()[2]
    else:
        source = dataset if isinstance(dataset, DataSource) else DataSource(dataset, split)
        test = source.test_split()
    return classifier.evaluate(test)


def _say(log, text: str) -> None:
    if log is not None:
        distributed.print_main(text, file=log, flush=True)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"

