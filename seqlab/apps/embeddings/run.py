"""Train word vectors into a run directory, resumably: `train(settings, out)`.

OUT holds what every app's run holds (`seqlab.apps.run_directory`):
settings.json, command.txt, log.csv (one row per epoch: words, words kept
after subsampling, mean loss per target, seconds, words/s), checkpoints/last (the input and output rows and the
epochs done, after each epoch), history.json, and the vectors in OUT/vectors
(`seqlab.embeddings.save_vectors`). `resume=True` continues from the last
epoch saved with the run's own settings; the corpus is checked against the
SHA-256 recorded at the start. With one thread a resumed run ends with the
vectors an uninterrupted one gives, bit for bit; with more, Hogwild's races
make every run differ a little anyway.

    >>> result = train(Settings(corpus="imdb", epochs=5), "runs/imdb-vectors")
    >>> result.vectors.most_similar("great", topn=5)
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from safetensors.torch import load as load_tensors, save as save_tensors

from seqlab.apps.embeddings.corpus import corpus_texts, tokenized
from seqlab.apps.embeddings.settings import Settings
from seqlab.apps.run_directory import RunDirectory
from seqlab.embeddings import Word2Vec, WordVectors, build_corpus, is_vectors_directory, save_vectors
from seqlab.embeddings.storage import OWNED as VECTOR_FILES
from seqlab.files import check_writable_directory, owned_directory, write_atomically, write_new_file
from seqlab.saving import STATE_FILE, STATE_TENSORS_FILE
from seqlab.training.progress import make_progress

__all__ = ["TrainResult", "train"]

LOG_COLUMNS = ("epoch", "words", "kept_words", "loss", "seconds", "words_per_second")


@dataclass
class TrainResult:
    vectors: WordVectors
    history: list[dict]
    vectors_dir: Path
    settings: Settings


def train(settings: Settings | None, out: str | Path, *, resume: bool = False, overwrite: bool = False,
          given: dict | None = None, command: str | None = None, verbose: int | str = "auto",
          log: TextIO | None = None) -> TrainResult:
    """Train as `settings` say (None when resuming), checkpointing each epoch; save OUT/vectors."""
    out, log = Path(out), log or sys.stderr
    if settings is None and not resume:
        raise ValueError("train needs settings, unless it resumes a run (resume=True).")
    run_dir = RunDirectory(out, model_dir=out / "vectors", owned=("history.json",),
                           check_model_dir=_check_vectors_dir, model_saved=is_vectors_directory)
    fields = dataclasses.asdict(settings) if settings is not None else {}
    settings = Settings(**run_dir.prepare(fields, resume=resume, given=given, overwrite=overwrite))
    if command is not None:
        run_dir.record_command(command, append=resume)
    with run_dir.discarded_on_failure():  # a bad corpus leaves no run behind
        texts = corpus_texts(settings)
        vocabulary, corpus = build_corpus(tokenized(texts, settings.tokenizer), settings.min_count,
                                          settings.max_vocabulary)
        settings = run_dir.pin_checksum(settings, "corpus_sha256", hashlib.sha256(corpus.ids.numpy().tobytes())
                                        .hexdigest(), f"corpus {settings.corpus}")
        trainer = Word2Vec(settings.word2vec())
        trainer.prepare(vocabulary, corpus)
        if run_dir.continues(resume):
            trainer.restore(_read_checkpoint(run_dir.checkpoints / "last"))
        print(f"Corpus: {len(texts):,} texts, {vocabulary.corpus_words:,} words; {len(vocabulary):,} words seen "
              f"{settings.min_count}+ times ({corpus.words:,} of the text's words). Training {settings.architecture}"
              f"{' with subwords' if settings.subwords else ''}, {settings.dim} dimensions, "
              f"{settings.epochs} epochs{f', from epoch {trainer.epochs_done + 1}' if trainer.epochs_done else ''}.",
              file=log, flush=True)
        progress = make_progress(verbose, stream=log)
        try:
            while trainer.epochs_done < settings.epochs:
                progress.begin(f"Epoch {trainer.epochs_done + 1}/{settings.epochs}", trainer.blocks_per_epoch)
                report = trainer.train_epoch(lambda p: progress.advance(
                    {"alpha": p["alpha"]}, p["words"] - progress.units, "words"))  # words/s and the learning rate
                progress.end({"loss": report.loss, "alpha": trainer.current_alpha})
                _write_checkpoint(run_dir.checkpoints / "last", trainer.state())
                _write_log(run_dir.log_file, trainer.history)
        finally:
            progress.close()
    vectors = trainer.vectors()
    history = [dataclasses.asdict(report) for report in trainer.history]
    save_vectors(vectors, run_dir.model_dir, training={"settings": dataclasses.asdict(settings), "history": history})
    write_atomically(out / "history.json", (json.dumps({"history": history}, indent=2) + "\n").encode())
    return TrainResult(vectors, history, run_dir.model_dir, settings)


def _check_vectors_dir(directory: Path) -> Path:
    return check_writable_directory(directory, is_vectors_directory, "word vectors", VECTOR_FILES)


def _write_checkpoint(directory: Path, state: dict) -> None:
    tensors = {"input": state["input"].contiguous(), "output": state["output"].contiguous()}
    skeleton = {"epoch": state["epochs_done"], "history": state["history"]}
    with owned_directory(directory, (STATE_FILE, STATE_TENSORS_FILE)) as staging:
        write_new_file(staging / STATE_TENSORS_FILE, save_tensors(tensors))
        write_new_file(staging / STATE_FILE, json.dumps(skeleton).encode())


def _read_checkpoint(directory: Path) -> dict:
    try:
        skeleton = json.loads((directory / STATE_FILE).read_text())
        tensors = load_tensors((directory / STATE_TENSORS_FILE).read_bytes())
    except Exception as error:
        raise ValueError(f"the checkpoint {directory} cannot be read ({error}); start a new run (--overwrite)") \
            from None
    return {**tensors, "epochs_done": skeleton["epoch"], "history": skeleton["history"]}


def _write_log(path: Path, history) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(LOG_COLUMNS)
    for report in history:
        writer.writerow([report.epoch, report.words, report.kept_words, f"{report.loss:.6f}",
                         f"{report.seconds:.3f}", f"{report.words_per_second:.0f}"])
    write_atomically(path, text.getvalue().encode())
