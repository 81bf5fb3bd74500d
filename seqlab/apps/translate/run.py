"""Train, load and score a translator: `train_translator`, `load_translator`, `evaluate_bleu`.

Training feeds the true previous word (teacher forcing): decoder inputs
`<sos> y_1 … y_n`, targets `y_1 … y_n <eos>`, padding left out of the loss.
BLEU (sacrebleu) is measured on held-out source sentences that never occur
in training, against all their translations in the file.

    >>> data = load_translation_data("fra-eng", "en", "fr", max_words=10, limit=30_000)
    >>> model, history, seconds = train_translator(data, attention="dot", epochs=8)
    >>> evaluate_bleu(model, data, beam_width=5).bleu
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from seqlab.apps.translate.data import TranslationData, pair_batches
from seqlab.apps.translate.model import Translator
from seqlab.apps.translate.settings import Settings
from seqlab.apps.translate.text import build_vocabularies, encode_pairs, make_tokenizer
from seqlab.apps.translate.translation import Translation
from seqlab.saving import load_model
from seqlab.seeding import set_seed
from seqlab.training import Adam, SparseCategoricalCrossentropy

__all__ = ["BleuReport", "corpus_bleu", "evaluate_bleu", "load_translator", "train_translator"]


def train_translator(data: TranslationData, *, verbose: int | str = "auto", callbacks: Sequence[Any] = (),
                     **settings: Any) -> tuple[Translator, Any, float]:
    """Build vocabularies from the training pairs, then fit a `Translator`; returns (model, history, seconds).

    `settings` are `Settings` fields (embedding_dim, units, cell, attention, epochs, ...), their defaults
    where not given.
    """
    known = {f.name for f in dataclasses.fields(Settings)}
    if set(settings) - known:
        raise TypeError(f"unknown settings {sorted(set(settings) - known)}; known: {sorted(known)}.")
    s = Settings(**settings)
    source_vocabulary, target_vocabulary = build_vocabularies(data.train_pairs, s.min_count, s.max_vocabulary)
    source, target_in, target_out = encode_pairs(data.train_pairs, source_vocabulary, target_vocabulary)
    set_seed(s.seed)
    model = Translator(source_vocabulary, target_vocabulary, s.embedding_dim, s.units, s.cell, s.bidirectional,
                       s.attention, dropout=s.dropout, max_output_length=target_out.shape[1] + 5,
                       projection_dtype=s.projection_dtype,
                       training_data={**data.spec, "min_count": s.min_count, "max_vocabulary": s.max_vocabulary})
    model.compile(Adam(learning_rate=s.learning_rate, global_clipnorm=5.0),
                  SparseCategoricalCrossentropy(from_logits=True, ignore_class=0), metrics=["accuracy"])
    validation = None
    if s.validation_split:
        cut = int(len(source) * (1.0 - s.validation_split))
        validation = ((source[cut:], target_in[cut:]), target_out[cut:])
        source, target_in, target_out = source[:cut], target_in[:cut], target_out[:cut]
    batches = pair_batches(source, target_in, target_out, s.batch_size, s.seed)
    started = time.perf_counter()
    history = model.fit(batches, epochs=s.epochs, validation_data=validation, seed=s.seed, verbose=verbose,
                        callbacks=list(callbacks))
    return model, history, time.perf_counter() - started


def load_translator(directory: str) -> Translator:
    """The `Translator` saved in `directory` (by `seqlab translate train` or `model.save`)."""
    model = load_model(directory, compile=False)
    if not isinstance(model, Translator):
        raise ValueError(f"{directory} holds a {type(model).__name__}, not a Translator; give a directory "
                         "written by `seqlab translate train`.")
    return model


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, str]:
    """sacrebleu's corpus BLEU and its signature; each hypothesis may have any number (>= 1) of references."""
    try:
        import sacrebleu
    except ImportError:
        raise ImportError("BLEU needs sacrebleu: pip install sacrebleu") from None
    streams = max(map(len, references))
    reference_streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(streams)]
    metric = sacrebleu.BLEU(force=True)   # force: the texts are tokenized on purpose (lowercased words)
    score = metric.corpus_score(list(hypotheses), reference_streams)
    return score.score, str(metric.get_signature())


@dataclass
class BleuReport:
    """BLEU on the held-out set against all references and against the first one only."""

    bleu: float
    bleu_single_reference: float
    sentences: int
    seconds: float
    signature: str
    translations: list["Translation"]


def evaluate_bleu(model: Translator, data: TranslationData, beam_width: int = 1, length_penalty: float = 0.0,
                  batch_size: int = 256) -> BleuReport:
    """Translate the held-out sources and score them with BLEU (texts lowercased and word-tokenized)."""
    started = time.perf_counter()
    translations: list[Translation] = []
    for start in range(0, len(data.test_sources), batch_size):
        translations += model.translate(data.test_sources[start:start + batch_size], beam_width, length_penalty)
    tokenizer = make_tokenizer()
    hypotheses = [" ".join(t.tokens) for t in translations]
    references = [[" ".join(tokenizer(r)) for r in refs] for refs in data.test_references]
    bleu, signature = corpus_bleu(hypotheses, references)
    single, _ = corpus_bleu(hypotheses, [refs[:1] for refs in references])
    return BleuReport(bleu, single, len(hypotheses), time.perf_counter() - started, signature, translations)

