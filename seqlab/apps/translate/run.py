"""Train, load and score a translator: `train_translator`, `load_translator`, `evaluate_bleu`.

Training feeds the true previous word (teacher forcing): decoder inputs
`<sos> y_1 … y_n`, targets `y_1 … y_n <eos>`, padding left out of the loss.
BLEU and chrF (sacrebleu) are measured on held-out source sentences that
never occur in training, against all their translations in the file.

    >>> data = load_translation_data("fra-eng", "en", "fr", max_words=10, limit=30_000)
    >>> model, history, seconds = train_translator(data, attention="dot", epochs=8)
    >>> evaluate_bleu(model, data, beam_width=5).bleu
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab.apps.run_directory import RunDirectory, load_trained
from seqlab.apps.translate.data import TranslationData, checksum_of, load_translation_data, pair_batches
from seqlab.apps.translate.model import Translator
from seqlab.apps.translate.transformer_model import TransformerTranslator
from seqlab.apps.translate.settings import PairSettings, Settings
from seqlab.apps.translate.text import build_vocabularies, encode_pairs, make_tokenizer, make_tokenizers
from seqlab.apps.translate.translation import Translation
from seqlab.data import SubwordTokenizer
from seqlab.seeding import set_seed
from seqlab.training import (Adam, CSVLogger, InverseSquareRootDecay, ModelCheckpoint, SparseCategoricalCrossentropy,
                              distributed)

AnyTranslator = Translator | TransformerTranslator

__all__ = ["BleuReport", "TrainedRun", "corpus_bleu", "corpus_chrf", "evaluate_bleu", "load_translator",
           "run_settings", "train", "train_translator"]


def train_translator(data: TranslationData, *, verbose: int | str = "auto", callbacks: Sequence[Any] = (),
                     resume_from: Any = None, **settings: Any) -> tuple[AnyTranslator, Any, float]:
    """Build vocabularies from the training pairs, then fit a `Translator` (`arch="rnn"`) or a
    `TransformerTranslator` (`arch="transformer"`); returns (model, history, seconds).

    `settings` are `Settings` fields (embedding_dim, units, cell, attention, epochs, ...), their defaults
    where not given. `resume_from`: a checkpoint (or the `ModelCheckpoint` among `callbacks`) to go on from.
    """
    known = {f.name for f in dataclasses.fields(Settings)}
    if set(settings) - known:
        raise TypeError(f"unknown settings {sorted(set(settings) - known)}; known: {sorted(known)}.")
    s = Settings(**settings)
    tokenizers = make_tokenizers(data.train_pairs, s.tokenizer, s.vocab_size, s.subword_model, s.joint_vocabulary)
    source_vocabulary, target_vocabulary = build_vocabularies(data.train_pairs, s.min_count, s.max_vocabulary,
                                                              tokenizers, s.joint_vocabulary)
    source, target_in, target_out = encode_pairs(data.train_pairs, source_vocabulary, target_vocabulary)
    set_seed(s.seed)
    training_data = {**data.spec, "min_count": s.min_count, "max_vocabulary": s.max_vocabulary}
    max_output_length = target_out.shape[1] + 5
    if s.arch == "transformer":
        model = TransformerTranslator(source_vocabulary, target_vocabulary, s.embedding_dim, s.heads, s.ff_dim,
                                      s.layers, s.layers, s.dropout, s.positions,
                                      max_length=max(128, max_output_length + 1), max_output_length=max_output_length,
                                      training_data=training_data)
        learning_rate = InverseSquareRootDecay(s.lr, s.warmup_steps)
    else:
        model = Translator(source_vocabulary, target_vocabulary, s.embedding_dim, s.units, s.cell, s.bidirectional,
                           s.attention, dropout=s.dropout, max_output_length=max_output_length,
                           projection_dtype=s.projection_dtype, training_data=training_data)
        learning_rate = s.lr
    model.compile(Adam(learning_rate=learning_rate, global_clipnorm=5.0),
                  SparseCategoricalCrossentropy(from_logits=True, ignore_class=0, label_smoothing=s.label_smoothing),
                  metrics=["accuracy"])
    validation = None
    if s.validation_split:
        cut = int(len(source) * (1.0 - s.validation_split))
        validation = ((source[cut:], target_in[cut:]), target_out[cut:])
        source, target_in, target_out = source[:cut], target_in[:cut], target_out[:cut]
    batches = pair_batches(source, target_in, target_out, s.batch_size, s.seed)
    started = time.perf_counter()
    history = model.fit(batches, epochs=s.epochs, validation_data=validation, seed=s.seed, verbose=verbose,
                        callbacks=list(callbacks), resume_from=resume_from)
    return model, history, time.perf_counter() - started


RESUMABLE = ("epochs",)  # what a resumed run may be given more of
PAIR_FIELDS = ("pairs", "source", "target", "sha256", *(f.name for f in dataclasses.fields(PairSettings)))


@dataclass
class TrainedRun:
    """What `train` produced: the translator, its data, the fit's history and seconds, where it was saved."""

    model: AnyTranslator
    data: TranslationData
    history: Any
    seconds: float
    model_dir: Path


def run_settings(pairs: str, source: str | None = None, target: str | None = None, **options: Any) -> dict[str, Any]:
    """A run's settings as settings.json holds them: the pairs (a TSV by absolute path, with its SHA-256),
    then every `PairSettings` and `Settings` field (defaults where `options` has None or nothing)."""
    known = {f.name for f in dataclasses.fields(PairSettings)} | {f.name for f in dataclasses.fields(Settings)}
    if set(options) - known:
        raise TypeError(f"unknown settings {sorted(set(options) - known)}; known: {sorted(known)}.")
    given = {name: value for name, value in options.items() if value is not None}
    pair_settings = PairSettings(**{k: v for k, v in given.items() if k in PairSettings.__dataclass_fields__})
    settings = Settings(**{k: v for k, v in given.items() if k in Settings.__dataclass_fields__})
    values: dict[str, Any] = {"pairs": pairs, "source": source, "target": target, "sha256": None}
    if pairs.startswith("tsv:"):
        values["pairs"] = f"tsv:{Path(pairs[4:]).resolve()}"
        values["sha256"] = checksum_of(Path(pairs[4:]))
    return {**values, **dataclasses.asdict(pair_settings), **dataclasses.asdict(settings)}


def train(out: str | Path, settings: dict[str, Any] | None, *, resume: bool = False, overwrite: bool = False,
          given: dict[str, Any] | None = None, command: str | None = None, verbose: int | str = "auto",
          log=sys.stderr) -> TrainedRun:
    """Train a translator into OUT: settings.json, a checkpoint and a log.csv row each epoch, OUT/model.

    `settings` as `run_settings` makes them (None when resuming). OUT is
    checked before any data loads (`seqlab.apps.run_directory`); `resume=True`
    continues the run there exactly, with its settings (more epochs may be given).
    """
    out = Path(out)
    run_dir = RunDirectory(out, model_dir=out / "model")
    if settings is None and not resume:
        raise ValueError("train needs settings, unless it resumes a run (resume=True).")
    values = run_dir.prepare(settings or {}, resume=resume, given=given, may_change=RESUMABLE, overwrite=overwrite,
                             write=distributed.is_main_process())
    if command is not None and distributed.is_main_process():
        run_dir.record_command(command, append=resume)
    # Settings a run recorded before they existed are missing (None): they take their defaults.
    pair_settings = {name: values[name] for name in PAIR_FIELDS if values.get(name) is not None}
    with run_dir.discarded_on_failure():  # bad pairs leave no run behind
        data = load_translation_data(pair_settings.pop("pairs"), pair_settings.pop("source", None),
                                     pair_settings.pop("target", None), seed=values["seed"], **pair_settings)
        distributed.print_main(data.summary(), file=log)
        checkpoint = ModelCheckpoint(run_dir.checkpoints, monitor="val_loss", save_best=False)
        # The log's row first, then the checkpoint: see CSVLogger.
        callbacks = [CSVLogger(run_dir.log_file, append=run_dir.continues(resume)), checkpoint]
        model, history, seconds = train_translator(
            data, verbose=verbose, callbacks=callbacks, resume_from=checkpoint if resume else None,
            **{name: value for name, value in values.items() if name not in PAIR_FIELDS})
    model.save(run_dir.model_dir)
    return TrainedRun(model, data, history, seconds, run_dir.model_dir)


def load_translator(directory: str | Path) -> AnyTranslator:
    """The translator saved in `directory` (OUT or OUT/model of `seqlab translate train`, or `model.save`)."""
    return load_trained(directory, (Translator, TransformerTranslator), "seqlab translate train")


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, str]:
    """sacrebleu's corpus BLEU and its signature; each hypothesis may have any number (>= 1) of references."""
    metric = _sacrebleu().BLEU(force=True)   # force: the texts are tokenized on purpose (lowercased words)
    score = metric.corpus_score(list(hypotheses), _reference_streams(references))
    return score.score, str(metric.get_signature())


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, str]:
    """sacrebleu's corpus chrF (character 6-grams, β = 2, 0–100) and its signature; any number of references.

    chrF scores characters, so a Korean output with the right stem and a
    different ending earns part of the word, where BLEU counts it wrong.
    """
    metric = _sacrebleu().CHRF()
    score = metric.corpus_score(list(hypotheses), _reference_streams(references))
    return score.score, str(metric.get_signature())


def _reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    streams = max(map(len, references))
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(streams)]


def _sacrebleu():
    try:
        import sacrebleu
    except ImportError:
        raise ImportError("BLEU and chrF need sacrebleu: pip install sacrebleu") from None
    return sacrebleu


@dataclass
class BleuReport:
    """BLEU on the held-out set against all references and against the first one only; chrF against all."""

    bleu: float
    bleu_single_reference: float
    chrf: float
    sentences: int
    seconds: float
    signature: str
    chrf_signature: str
    translations: list["Translation"]


def evaluate_bleu(model: AnyTranslator, data: TranslationData, beam_width: int = 1, length_penalty: float = 0.0,
                  batch_size: int = 256) -> BleuReport:
    """Translate the held-out sources and score them: BLEU over lowercased words and punctuation marks
    (`make_tokenizer`: a word model's own tokens, a subword model's decoded text tokenized into words, so
    both are scored alike), chrF over the texts against the lowercased references."""
    started = time.perf_counter()
    translations: list[Translation] = []
    for start in range(0, len(data.test_sources), batch_size):
        translations += model.translate(data.test_sources[start:start + batch_size], beam_width, length_penalty)
    seconds = time.perf_counter() - started
    tokenizer = make_tokenizer()
    subwords = isinstance(model.target_vocabulary.tokenizer, SubwordTokenizer)
    hypotheses = [" ".join(tokenizer(t.text) if subwords else t.tokens) for t in translations]
    references = [[" ".join(tokenizer(r)) for r in refs] for refs in data.test_references]
    bleu, signature = corpus_bleu(hypotheses, references)
    single, _ = corpus_bleu(hypotheses, [refs[:1] for refs in references])
    chrf, chrf_signature = corpus_chrf([t.text for t in translations],
                                       [[r.lower() for r in refs] for refs in data.test_references])
    return BleuReport(bleu, single, chrf, len(hypotheses), seconds, signature, chrf_signature, translations)
