"""Train, load and score a tagger: `run_settings`, `train`, `load_tagger`, `evaluate_tagger`.

`train` checks OUT before the data load (`seqlab.apps.run_directory`), builds
the vocabularies from the training sentences only, fits a `Tagger` with Adam
(the learning rate halved after 2 epochs without a better dev accuracy, or
dev loss for a CRF, early stopping on it, the best epoch's weights kept; a
checkpoint and a log.csv row each epoch, so `resume=True` goes on exactly),
saves it to OUT/model and writes OUT/summary.json with the test scores
(Viterbi-decoded tags, `seqlab.apps.tag.evaluation`).

    >>> run = train("runs/pos", run_settings(dataset="ud-ewt", char_features="cnn"))
    >>> run.test.accuracy
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqlab.apps.run_directory import RunDirectory, load_trained
from seqlab.apps.tag.data import TaggingData, load_tagged_file, load_tagging_data
from seqlab.apps.tag.encoding import TagEncoder
from seqlab.apps.tag.evaluation import TagScores, score_tags
from seqlab.apps.tag.model import Tagger
from seqlab.apps.tag.settings import DataSettings, Settings
from seqlab.data.datasets.tagged import TaggedSentences
from seqlab.embeddings import load_vectors, vectors_table
from seqlab.files import write_atomically
from seqlab.seeding import set_seed
from seqlab.training import (Adam, CSVLogger, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau,
                             SparseCategoricalCrossentropy, distributed)
from seqlab.training.epoch_timer import EpochTimer
from seqlab.training.time_budget import TimeBudget

__all__ = ["TrainedRun", "evaluate_tagger", "load_tagger", "run_settings", "train"]

RESUMABLE = ("epochs", "max_minutes")  # what a resumed run may be given more of
LR_PATIENCE = 2  # epochs without a better dev accuracy (a CRF: dev loss) before the rate is multiplied by lr_decay
DATA_FIELDS = tuple(f.name for f in dataclasses.fields(DataSettings))
SETTING_FIELDS = tuple(f.name for f in dataclasses.fields(Settings))


@dataclass
class TrainedRun:
    """What `train` produced: the tagger, its data, test scores, the fit's history and timings."""

    model: Tagger
    data: TaggingData
    test: TagScores
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    train_seconds: float
    stop_reason: str
    model_dir: Path

    def summary(self) -> dict[str, Any]:
        return {"data": self.data.spec, "settings": self.model.get_config() | {"encoder": None},
                "test": self.test.to_dict(), "history": self.history, "epoch_seconds": self.epoch_seconds,
                "epochs_run": len(self.epoch_seconds), "train_seconds": self.train_seconds,
                "stop_reason": self.stop_reason, "parameters": parameter_count(self.model),
                "threads": torch.get_num_threads(), "torch_version": torch.__version__}


def run_settings(**options: Any) -> dict[str, Any]:
    """A run's settings as settings.json holds them: every `DataSettings` and `Settings` field (defaults where
    `options` has None or nothing), a user file by absolute path with its SHA-256 (`sha256`)."""
    known = {*DATA_FIELDS, *SETTING_FIELDS}
    if set(options) - known:
        raise TypeError(f"unknown settings {sorted(set(options) - known)}; known: {sorted(known)}.")
    given = {name: value for name, value in options.items() if value is not None}
    data = DataSettings(**{k: v for k, v in given.items() if k in DATA_FIELDS})
    settings = Settings(**{k: v for k, v in given.items() if k in SETTING_FIELDS})
    values = {**dataclasses.asdict(data), "sha256": None, **dataclasses.asdict(settings)}
    if data.dataset.startswith(("conll:", "tsv:")):
        from seqlab.data.fetch import sha256_of
        kind, _, path = data.dataset.partition(":")
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_file():
            raise FileNotFoundError(f"{resolved} is not a file; --dataset {kind}:PATH needs a "
                                    f"{'CoNLL-U' if kind == 'conll' else 'token<TAB>tag'} file")
        values.update(dataset=f"{kind}:{resolved}", sha256=sha256_of(resolved))
    if settings.embeddings is not None:  # the vectors' width is the word embedding's
        width = load_vectors(settings.embeddings).dim
        if options.get("word_dim") not in (None, width):
            raise ValueError(f"--embeddings holds vectors of {width} dimensions but --word-dim is "
                             f"{options['word_dim']}; drop --word-dim (the vectors set it) or give {width}.")
        values.update(embeddings=str(Path(settings.embeddings).expanduser().resolve()), word_dim=width)
    return values


def train(out: str | Path, settings: dict[str, Any] | None, *, resume: bool = False, overwrite: bool = False,
          given: dict[str, Any] | None = None, command: str | None = None, verbose: int | str = "auto",
          log=sys.stderr) -> TrainedRun:
    """Train a tagger into OUT (see the module docstring); `settings` as `run_settings` makes them."""
    out = Path(out)
    run_dir = RunDirectory(out, model_dir=out / "model", owned=("summary.json",))
    if settings is None and not resume:
        raise ValueError("train needs settings, unless it resumes a run (resume=True).")
    values = run_dir.prepare(settings or {}, resume=resume, given=given, may_change=RESUMABLE, overwrite=overwrite,
                             write=distributed.is_main_process())
    if command is not None and distributed.is_main_process():
        run_dir.record_command(command, append=resume)
    with run_dir.discarded_on_failure():  # bad data leave no run behind
        data = load_tagging_data(**{name: values.get(name) for name in DATA_FIELDS if values.get(name) is not None})
        if values.get("sha256") not in (None, data.spec.get("sha256")):
            raise ValueError(f"{values['dataset']} has changed since the run in {out} started (its SHA-256 differs); "
                             "a resumed run must read the data it started on.")
        s = Settings(**{name: values[name] for name in SETTING_FIELDS if values.get(name) is not None})
        distributed.print_main(data.summary(), file=log)
        vectors = load_vectors(s.embeddings) if s.embeddings is not None else None
        if vectors is not None and vectors.dim != s.word_dim:
            raise ValueError(f"{s.embeddings} now holds vectors of {vectors.dim} dimensions, the run's word "
                             f"embedding has {s.word_dim}; give the vectors it started from.")
        encoder = TagEncoder.build(data.train, s.min_count, s.lowercase, data.tokens)
        set_seed(s.seed)
        model = Tagger(encoder, s.word_dim, s.char_features, s.char_dim, s.char_units, s.units, s.layers,
                       s.dropout, s.word_dropout, s.crf, training_data=data.spec)
        if vectors is not None:
            table, found = vectors_table(vectors, encoder.words, seed=s.seed)
            model.word_embedding.set_weights([table.numpy()])
            model.word_embedding.trainable = not s.freeze_embeddings
            distributed.print_main(f"word embedding from {s.embeddings}: {found:.1%} of the words have a vector",
                                   file=log)
        # A CRF's emission scores are not its answer (the transitions are part of it), so their arg-max
        # accuracy says nothing: a CRF run watches its dev loss, −log p(y | s) per token.
        monitor = "val_loss" if s.crf else "val_accuracy"
        model.compile(Adam(learning_rate=s.lr, global_clipnorm=5.0),
                      SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
                      metrics=[] if s.crf else ["accuracy"], device="cpu")
        distributed.print_main(f"{len(encoder.words):,} words, {len(encoder.chars):,} characters, "
                               f"{len(encoder.tags) - 2} tags; {parameter_count(model):,} parameters", file=log)
        train_batches = encoder.batches(encoder.encode(data.train.sentences, data.train.tags, data.train.name),
                                        s.batch_size, s.seed)
        dev_batches = encoder.batches(encoder.encode(data.dev.sentences, data.dev.tags, data.dev.name), 256,
                                      shuffle=False)
        timer = EpochTimer(log_key=None)
        stopper = EarlyStopping(monitor, patience=s.patience, restore_best_weights=True) \
            if s.patience is not None else None
        limit = TimeBudget(s.max_minutes, estimate="slowest", stop_mid_epoch=False) \
            if s.max_minutes is not None else None
        decay = ReduceLROnPlateau(monitor, factor=s.lr_decay, patience=LR_PATIENCE) \
            if s.lr_decay < 1.0 else None
        checkpoint = ModelCheckpoint(run_dir.checkpoints, monitor=monitor, save_best=False)
        callbacks = [c for c in (timer, decay, stopper, limit) if c is not None]
        callbacks += [CSVLogger(run_dir.log_file, append=run_dir.continues(resume)), checkpoint]
        started = time.perf_counter()
        history = model.fit(train_batches, validation_data=dev_batches, epochs=s.epochs, verbose=verbose,
                            callbacks=callbacks, seed=s.seed, resume_from=checkpoint if resume else None)
        train_seconds = time.perf_counter() - started
    model.save(run_dir.model_dir)
    test = evaluate_tagger(model, data.test)
    stop_reason = ("early stopping" if stopper is not None and stopper.stopped_epoch else
                   "time limit" if limit is not None and limit.stopped else "all epochs")
    result = TrainedRun(model, data, test, history.history, timer.seconds, train_seconds, stop_reason,
                        run_dir.model_dir)
    distributed.on_main_then_wait(lambda: write_atomically(
        out / "summary.json", (json.dumps(result.summary(), indent=2, ensure_ascii=False) + "\n").encode()))
    return result


def parameter_count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def load_tagger(directory: str | Path) -> Tagger:
    """The `Tagger` saved in `directory` (OUT or OUT/model of `seqlab tag train`)."""
    return load_trained(directory, Tagger, "seqlab tag train")


def evaluate_tagger(model: Tagger, data: TaggedSentences) -> TagScores:
    """Tag `data`'s sentences and score them against its tags (an unknown tag is a ValueError)."""
    model.encoder.check_tags(data.tags, data.name)  # before any work
    return score_tags(data.tags, model.tag(data.sentences))


def evaluation_data(model: Tagger, dataset: str | None = None, tagset: str | None = None) -> TaggedSentences:
    """What `seqlab tag evaluate` scores: a user file whole, or the test part of the model's own dataset."""
    spec = dict(model.training_data or {})
    if dataset is None:
        if not spec:
            raise ValueError("this model does not record its training data; give --dataset.")
        dataset = spec["dataset"]
        if dataset.startswith(("conll:", "tsv:")):
            data = load_tagging_data(**{k: v for k, v in spec.items() if k != "sha256"})
            if spec.get("sha256") not in (None, data.spec["sha256"]):
                raise ValueError(f"{dataset[dataset.index(':') + 1:]} has changed since the model was trained on it "
                                 "(its SHA-256 differs), so its test part is no longer held out; give the file "
                                 "as it was, or score a file of your own with --dataset.")
            return data.test
    tagset = tagset or spec.get("tagset", "upos")
    if dataset.startswith(("conll:", "tsv:")):
        return load_tagged_file(dataset, tagset)
    return load_tagging_data(dataset, tagset, spec.get("split_seed", 0)).test
