"""Attention-based translation: a recurrent encoder–decoder over words, trained with teacher forcing.

The model (Luong et al. 2015; the score is Luong's dot product or Bahdanau's additive one):

    encoder   e_1..e_S = BiGRU(Embedding(x))            (batch, S, H), H = 2·units (units if one direction)
              s_0 = [h_fw; h_bw]                          the decoder starts from the encoder's final state
    decoder   h_t = GRU(Embedding(y_{t-1}), h_{t-1})      (batch, T, H)
              a_ts = softmax_s score(h_t, e_s)            over the real source tokens; padding gets 0
              c_t = Σ_s a_ts e_s                          context (batch, T, H)
              h̃_t = tanh(W_c [c_t; h_t])                  attentional state (batch, T, H)
              p(y_t | y_<t, x) = softmax(W_o h̃_t)        (batch, T, target vocabulary)

with score(h, e) = h·e (`attention="dot"`) or v·tanh(W_q h + W_k e) (`"additive"`).
With `attention=None` the logits are W_o h_t: plain seq2seq, whose only view of
the source is s_0. Training feeds the true previous word (teacher forcing):
decoder inputs `<sos> y_1 … y_n`, targets `y_1 … y_n <eos>`, padding left out
of the loss. At inference the encoder runs once and the decoder one step at a
time with its carried state, under greedy decoding or beam search
(`seqlab.decoding`). BLEU (sacrebleu) is measured on held-out source sentences
that never occur in training, against all their translations in the file.

    >>> data = load_translation_data("fra-eng", "en", "fr", max_words=10, limit=30_000)
    >>> model, history, seconds = train_translator(data, attention="dot", epochs=8)
    >>> model.translate(["I am cold."], beam_width=5)[0].text

Command line (`seqlab translate`):

    seqlab translate train --pairs fra-eng --source en --target fr --model runs/fr
    seqlab translate --model runs/fr --beam 5 --show-attention cold.png "I am cold."
    seqlab translate evaluate --model runs/fr --beam 5
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from seqlab.cli import print_help
from seqlab.data import BucketBatchSampler, Vocabulary, WordTokenizer
from seqlab.data.datasets import load_parallel
from seqlab.decoding import Hypothesis, beam_search, greedy_decode
from seqlab.layers import GRU, LSTM, AdditiveAttention, Attention, Bidirectional, Dense, Dropout, Embedding
from seqlab.saving import register_serializable
from seqlab.seeding import set_seed
from seqlab.training import Adam, Model, SparseCategoricalCrossentropy, distributed

__all__ = [
    "BleuReport", "Translation", "TranslationData", "TranslationInputError", "Translator", "add_parser",
    "attention_figure",
    "build_vocabularies", "corpus_bleu", "detokenize", "encode_pairs", "evaluate_bleu", "load_translation_data", "make_tokenizer",
    "save_attention_heatmap", "train_translator",
]

SOS, EOS = "<sos>", "<eos>"
CELLS = {"gru": GRU, "lstm": LSTM}
ATTENTION_KINDS = ("dot", "additive", None)
# --pairs name -> (file key of seqlab.data.datasets.parallel, its two languages: English first)
KNOWN_PAIRS = {"fra-eng": ("fra", ("en", "fr")), "kor-eng": ("kor", ("en", "ko"))}
Weights = torch.Tensor | None   # attention weights, None for a model without attention
JOIN_BOTH, ATTACH_LEFT = frozenset("'’-"), frozenset(".,!?;:)…")


class TranslationInputError(ValueError):
    """A text cannot be translated: it is empty, or none of its words is in the source vocabulary."""


# ============================================================================ the model
@register_serializable
class Translator(Model):
    """Encoder–decoder with optional attention (see the module docstring for the math).

    Input `(source (batch, S), target_in (batch, T))` token ids, 0 = padding;
    output logits `(batch, T, len(target_vocabulary))`. The target vocabulary
    must hold `<sos>` and `<eos>`. Both vocabularies (with their tokenizers)
    travel in the saved config, so `seqlab.load_model(dir)` restores a
    translator that takes text.

    Arguments: `units` per encoder direction (the decoder has H = 2·units
    with `bidirectional`, else units, so its state starts as the encoder's);
    `cell` "gru" or "lstm"; `attention` "dot", "additive" or None;
    `attention_units` the size of W_q, W_k for additive attention (default
    H); `dropout` on embeddings and before the output layer;
    `max_output_length` the default decoding limit; `projection_dtype`
    "bfloat16" runs W_c and W_o under autocast; `training_data` records how
    the training pairs were chosen (for `seqlab translate evaluate`).

        >>> model = Translator(source_vocab, target_vocab, units=64, attention="additive")
        >>> logits = model((source_ids, target_in_ids))          # (batch, T, target vocabulary)
        >>> model.translate(["Hello."], beam_width=3)[0].text
    """

    def __init__(self, source_vocabulary: Vocabulary | dict, target_vocabulary: Vocabulary | dict,
                 embedding_dim: int = 128, units: int = 256, cell: str = "gru", bidirectional: bool = True,
                 attention: str | None = "dot", attention_units: int | None = None, dropout: float = 0.0,
                 max_output_length: int = 30, projection_dtype: str | None = None,
                 training_data: dict[str, Any] | None = None):
        super().__init__()
        self.source_vocabulary = _vocabulary(source_vocabulary, "source_vocabulary")
        self.target_vocabulary = _vocabulary(target_vocabulary, "target_vocabulary")
        self.sos, self.eos = _special_indices(self.target_vocabulary)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}.")
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be 'dot', 'additive' or None (no attention), got {attention!r}.")
        if projection_dtype not in (None, "float32", "bfloat16"):
            raise ValueError(f"projection_dtype must be None (float32) or 'bfloat16', got {projection_dtype!r}.")
        self.embedding_dim, self.units, self.cell, self.bidirectional = embedding_dim, units, cell, bidirectional
        self.attention_kind, self.dropout_rate = attention, dropout
        self.decoder_units = units * (2 if bidirectional else 1)
        self.attention_units = attention_units or self.decoder_units
        self.max_output_length, self.training_data = max_output_length, training_data
        self.projection_dtype = projection_dtype

        def recurrent(size: int):
            return CELLS[cell](size, return_sequences=True, return_state=True)

        self.source_embedding = Embedding(len(self.source_vocabulary), embedding_dim, mask_zero=True)
        self.encoder = Bidirectional(recurrent(units)) if bidirectional else recurrent(units)
        # No mask on the target side: padding comes last, so it never changes an earlier step.
        self.target_embedding = Embedding(len(self.target_vocabulary), embedding_dim)
        self.decoder = recurrent(self.decoder_units)
        self.dropout = Dropout(dropout)
        self.output_layer = Dense(len(self.target_vocabulary))
        if attention == "additive":
            self.query_projection = Dense(self.attention_units, use_bias=False)
            self.key_projection = Dense(self.attention_units, use_bias=False)
        if attention is not None:
            self.attention = Attention() if attention == "dot" else AdditiveAttention()
            self.attentional = Dense(self.decoder_units, activation="tanh")
        self._build()

    def _build(self) -> None:
        """Create every weight now, so that a restored model can load its weights before any call."""
        hidden = self.decoder_units
        self.source_embedding.build(None)
        self.target_embedding.build(None)
        self.encoder.build((None, None, self.embedding_dim))
        self.decoder.build((None, None, self.embedding_dim))
        self.output_layer.build((None, hidden))
        if self.attention_kind is None:
            return
        key_size = self.attention_units if self.attention_kind == "additive" else hidden
        if self.attention_kind == "additive":
            self.query_projection.build((None, hidden))
            self.key_projection.build((None, hidden))
        self.attention.build([(None, None, key_size), (None, None, hidden), (None, None, key_size)])
        self.attentional.build((None, 2 * hidden))

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Teacher forcing: `(source (batch, S), target_in (batch, T))` → logits `(batch, T, vocabulary)`."""
        source, target_in = inputs
        logits, _, _ = self.decode(target_in, self.start(source))
        return logits

    def start(self, source: torch.Tensor) -> dict[str, Any]:
        """Run the encoder once: the decoder's first state.

        Returns `values` (encoder outputs, batch, S, H), `keys` (what queries
        are scored against: the values, or W_k e for additive attention),
        `mask` (batch, S) True at real tokens, and `states` (the decoder's
        recurrent state: `[h]` for a GRU, `[h, c]` for an LSTM, each (batch, H)).
        """
        mask = source != 0
        outputs, *states = self.encoder(self.dropout(self.source_embedding(source)), mask=mask)
        if self.bidirectional:  # [h_fw, (c_fw,) h_bw, (c_bw)] -> [h_fw;h_bw], ([c_fw;c_bw])
            half = len(states) // 2
            states = [torch.cat(pair, dim=-1) for pair in zip(states[:half], states[half:])]
        keys = self.key_projection(outputs) if self.attention_kind == "additive" else outputs
        return {"values": outputs, "keys": keys, "mask": mask, "states": states}

    def decode(self, target_in: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict, Weights]:
        """Decoder over `target_in (batch, T)` from `state`.

        Returns logits `(batch, T, V)`, the state after the last step, and the
        attention weights `(batch, T, S)` (None without attention).
        """
        embedded = self.dropout(self.target_embedding(target_in))
        outputs, *states = self.decoder(embedded, initial_state=state["states"])
        weights = None
        if self.attention_kind is not None:
            query = self.query_projection(outputs) if self.attention_kind == "additive" else outputs
            context, weights = self.attention([query, state["values"], state["keys"]],
                                              mask=[None, state["mask"]], return_attention_scores=True)
        with self._projection_precision(outputs):
            if self.attention_kind is not None:
                outputs = self.attentional(torch.cat([context, outputs], dim=-1))
            logits = self.output_layer(self.dropout(outputs))
        return logits.float(), {**state, "states": states}, weights

    def _projection_precision(self, like: torch.Tensor):
        # The output projection (hidden x vocabulary) is most of the work; bfloat16 matmuls
        # (float32 accumulation) run it about twice as fast on CPUs with AVX512-BF16.
        if self.projection_dtype != "bfloat16":
            return contextlib.nullcontext()
        return torch.autocast(like.device.type, dtype=torch.bfloat16)

    def decode_step(self, tokens: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict, Weights]:
        """One step for `seqlab.decoding`: tokens (batch,) → log-probs (batch, V), state, weights (batch, S)."""
        logits, state, weights = self.decode(tokens[:, None], state)
        return torch.log_softmax(logits[:, 0], dim=-1), state, None if weights is None else weights[:, 0]

    @staticmethod
    def reorder_state(state: dict[str, Any], indices: torch.Tensor) -> dict[str, Any]:
        """The state of the rows `indices` (beam search keeps, repeats and drops prefixes)."""
        return {key: [t.index_select(0, indices) for t in value] if isinstance(value, list)
                else value.index_select(0, indices) for key, value in state.items()}

    # ---------------------------------------------------------------- translate
    def encode_sources(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids `(batch, S)` of `texts`, right-padded; clear errors for texts that cannot be translated."""
        rows = []
        for text in texts:
            ids = self.source_vocabulary.encode(text)
            if not ids:
                raise TranslationInputError(
                    f"Nothing to translate in {text!r}: the text is empty or holds no words. "
                    "Give a sentence, e.g. \"I am cold.\"")
            if all(i == self.source_vocabulary.unknown_index for i in ids):
                raise TranslationInputError(
                    f"None of the words of {text!r} is in the source vocabulary ({len(self.source_vocabulary):,} "
                    f"tokens, lowercased words and punctuation from the training pairs), so the model sees only "
                    f"unknown tokens. Check the input language (the model translates "
                    f"{self._languages()}) and the spelling.")
            rows.append(ids)
        return torch.tensor(_pad(rows), dtype=torch.long, device=_device_of(self))

    @torch.no_grad()
    def translate(self, texts: Sequence[str] | str, beam_width: int = 1, length_penalty: float = 0.0,
                  max_length: int | None = None) -> list["Translation"]:
        """Translate texts: greedy decoding (`beam_width=1`, batched) or beam search (one text at a time)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return []
        max_length = max_length or self.max_output_length
        source = self.encode_sources(texts)
        was_training = self.training
        self.eval()
        try:
            if beam_width == 1:
                hypotheses = greedy_decode(self, self.start(source), len(texts), self.sos, self.eos, max_length)
            else:
                hypotheses = [beam_search(self, self.start(row[None, : int((row != 0).sum())]), self.sos, self.eos,
                                          beam_width, max_length, length_penalty)[0] for row in source]
        finally:
            self.train(was_training)
        return [self._translation(text, row, h) for text, row, h in zip(texts, source.tolist(), hypotheses)]

    def _translation(self, text: str, source_ids: list[int], hypothesis: Hypothesis) -> "Translation":
        tokens = [self.target_vocabulary.token(i) for i in hypothesis.tokens]
        source_tokens = [self.source_vocabulary.token(i) for i in source_ids if i != 0]
        attention = None
        if hypothesis.attention is not None:
            attention = hypothesis.attention[:, : len(source_tokens)].cpu().numpy()
        return Translation(text, source_tokens, tokens, detokenize(tokens), hypothesis.log_probability,
                           hypothesis.finished, attention)

    def _languages(self) -> str:
        data = self.training_data or {}
        return f"{data.get('source', 'the source language')} -> {data.get('target', 'the target language')}"

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        return {
            "source_vocabulary": json.loads(self.source_vocabulary.to_json()),
            "target_vocabulary": json.loads(self.target_vocabulary.to_json()),
            "embedding_dim": self.embedding_dim, "units": self.units, "cell": self.cell,
            "bidirectional": self.bidirectional, "attention": self.attention_kind,
            "attention_units": self.attention_units, "dropout": self.dropout_rate,
            "max_output_length": self.max_output_length, "projection_dtype": self.projection_dtype,
            "training_data": self.training_data,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Translator":
        return cls(**config)


@dataclass
class Translation:
    """One translated text: its source tokens, output tokens and text, log P, attention `(outputs, sources)`.

    `attention[i, j]` is the weight output token i (then `<eos>` when the
    search finished) gave source token j; None without attention.
    """

    source: str
    source_tokens: list[str]
    tokens: list[str]
    text: str          # the tokens joined by `detokenize` (lowercased, as the model works)
    log_probability: float
    finished: bool
    attention: np.ndarray | None = None

    @property
    def output_labels(self) -> list[str]:
        """The heatmap's row labels: the output tokens, and `<eos>` when it was emitted."""
        return self.tokens + ([EOS] if self.finished else [])


# ============================================================================= data
@dataclass
class TranslationData:
    """Training pairs and a held-out test set of source sentences never seen in training.

    `test_references[i]` holds every translation of `test_sources[i]` in the
    (length-filtered) file. `spec` is what rebuilds exactly this split.
    """

    train_pairs: list[tuple[str, str]]
    test_sources: list[str]
    test_references: list[list[str]]
    spec: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        references = sum(map(len, self.test_references))
        return (f"{self.spec.get('source')}->{self.spec.get('target')}: {len(self.train_pairs):,} training pairs, "
                f"{len(self.test_sources):,} held-out source sentences ({references:,} reference translations)")


def detokenize(tokens: Sequence[str]) -> str:
    """Tokens back to text: `'` and `-` join their neighbours, `. , ! ? ; : )` attach to the word before.

        >>> detokenize(["il", "n", "'", "aime", "pas", "ça", "."])
        "il n'aime pas ça."
    """
    text, glue_next = "", True
    for token in tokens:
        text += token if glue_next or token in ATTACH_LEFT or token in JOIN_BOTH else " " + token
        glue_next = token in JOIN_BOTH
    return text


def make_tokenizer() -> WordTokenizer:
    """Lowercased words, each punctuation mark its own token (so '?' and '.' are translated too)."""
    return WordTokenizer(lowercase=True, keep_punctuation=True)


def load_translation_data(pairs: str, source: str | None = None, target: str | None = None, *,
                          max_words: int | None = 10, limit: int | None = None, test_sources: int = 1000,
                          seed: int = 0) -> TranslationData:
    """Sentence pairs for `pairs` ("fra-eng", "kor-eng" or "tsv:PATH") split by source sentence.

    Pairs with more than `max_words` whitespace words on either side are left
    out. The distinct source sentences (compared after tokenization) are
    shuffled with `seed`; the first `test_sources` of them, with all their
    translations, are the test set, the rest's pairs the training set
    (shuffled, at most `limit`). For `tsv:PATH` the first column is the
    source language.
    """
    corpus, source, target = _load_corpus(pairs, source, target, max_words)
    tokenizer = make_tokenizer()
    translations: dict[str, list[tuple[str, str]]] = {}
    for source_text, target_text in corpus.pairs():
        translations.setdefault(" ".join(tokenizer(source_text)), []).append((source_text, target_text))
    keys = list(translations)
    random.Random(seed).shuffle(keys)
    if not 0 < test_sources < len(keys):
        raise ValueError(f"test_sources={test_sources} must be between 1 and {len(keys) - 1}: the data has "
                         f"{len(keys):,} distinct source sentences. Lower test_sources or use more data.")
    test_keys, train_keys = keys[:test_sources], keys[test_sources:]
    train_pairs = [pair for key in train_keys for pair in translations[key]]
    random.Random(seed + 1).shuffle(train_pairs)
    spec = {"pairs": pairs, "source": source, "target": target, "max_words": max_words, "limit": limit,
            "test_sources": test_sources, "seed": seed}
    return TranslationData(train_pairs[:limit] if limit else train_pairs,
                           [translations[key][0][0] for key in test_keys],
                           [[t for _, t in translations[key]] for key in test_keys], spec)


def _load_corpus(pairs: str, source: str | None, target: str | None, max_words: int | None):
    if pairs.startswith("tsv:"):
        corpus = load_parallel(target or "target", path=pairs[4:], max_length=max_words, progress=False)
        return corpus, source or "source", target or "target"
    if pairs not in KNOWN_PAIRS:
        raise ValueError(f"--pairs must be one of {sorted(KNOWN_PAIRS)} or tsv:PATH (a tab-separated file, "
                         f"source sentence first), got {pairs!r}.")
    key, (english, other) = KNOWN_PAIRS[pairs]
    source = source or english
    target = target or (other if source == english else english)
    if {source, target} != {english, other}:
        raise ValueError(f"{pairs} holds {english} and {other} sentences, so --source/--target must be "
                         f"{english}/{other} or {other}/{english}; got {source}/{target}.")
    corpus = load_parallel(key, reverse=source != english, max_length=max_words, progress=False)
    return corpus, source, target


def build_vocabularies(pairs: Sequence[tuple[str, str]], min_count: int = 1,
                       max_size: int | None = None) -> tuple[Vocabulary, Vocabulary]:
    """Source vocabulary and target vocabulary (with `<sos>`, `<eos>`) of the training pairs."""
    tokenizer = make_tokenizer()
    source = Vocabulary.build((s for s, _ in pairs), min_freq=min_count, max_size=max_size, tokenizer=tokenizer)
    target = Vocabulary.build((t for _, t in pairs), min_freq=min_count, max_size=max_size,
                              specials=(SOS, EOS), tokenizer=tokenizer)
    return source, target


def encode_pairs(pairs: Sequence[tuple[str, str]], source_vocabulary: Vocabulary,
                 target_vocabulary: Vocabulary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`source (N, S)`, decoder input `<sos> y (N, T)` and target `y <eos> (N, T)`, right-padded with 0."""
    sos, eos = _special_indices(target_vocabulary)
    sources = [source_vocabulary.encode(s) for s, _ in pairs]
    targets = [target_vocabulary.encode(t) for _, t in pairs]
    return (np.array(_pad(sources), dtype=np.int64), np.array(_pad([[sos, *t] for t in targets]), dtype=np.int64),
            np.array(_pad([[*t, eos] for t in targets]), dtype=np.int64))


# ========================================================================= training
def train_translator(data: TranslationData, *, embedding_dim: int = 128, units: int = 256, cell: str = "gru",
                     bidirectional: bool = True, attention: str | None = "dot", dropout: float = 0.1,
                     epochs: int = 10, batch_size: int = 64, learning_rate: float = 1e-3, min_count: int = 1,
                     max_vocabulary: int | None = None, validation_split: float = 0.0,
                     projection_dtype: str | None = None, seed: int = 0, verbose: int | str = "auto",
                     callbacks: Sequence[Any] = ()) -> tuple[Translator, Any, float]:
    """Build vocabularies from the training pairs, then fit a `Translator`; returns (model, history, seconds)."""
    source_vocabulary, target_vocabulary = build_vocabularies(data.train_pairs, min_count, max_vocabulary)
    source, target_in, target_out = encode_pairs(data.train_pairs, source_vocabulary, target_vocabulary)
    set_seed(seed)
    model = Translator(source_vocabulary, target_vocabulary, embedding_dim, units, cell, bidirectional, attention,
                       dropout=dropout, max_output_length=target_out.shape[1] + 5, projection_dtype=projection_dtype,
                       training_data={**data.spec, "min_count": min_count, "max_vocabulary": max_vocabulary})
    model.compile(Adam(learning_rate=learning_rate, global_clipnorm=5.0),
                  SparseCategoricalCrossentropy(from_logits=True, ignore_class=0), metrics=["accuracy"])
    validation = None
    if validation_split:
        cut = int(len(source) * (1.0 - validation_split))
        validation = ((source[cut:], target_in[cut:]), target_out[cut:])
        source, target_in, target_out = source[:cut], target_in[:cut], target_out[:cut]
    started = time.perf_counter()
    history = model.fit(BucketedPairs(source, target_in, target_out, batch_size, seed), epochs=epochs,
                        validation_data=validation, seed=seed, verbose=verbose, callbacks=list(callbacks))
    return model, history, time.perf_counter() - started


class BucketedPairs:
    """Training batches `((source, target_in), target_out)` of pairs of similar length, cut to their longest.

    Random batches of ≤10-word sentences are about half padding; grouping by
    length (`seqlab.data.BucketBatchSampler`: shuffled pools sorted by length,
    batches in random order, a new order each epoch from `seed`) nearly
    removes it, which halves the time per epoch. Iterating starts the next epoch.
    """

    def __init__(self, source: np.ndarray, target_in: np.ndarray, target_out: np.ndarray, batch_size: int,
                 seed: int = 0):
        self.arrays = [torch.as_tensor(a) for a in (source, target_in, target_out)]
        self.source_lengths = (self.arrays[0] != 0).sum(1)
        self.target_lengths = (self.arrays[1] != 0).sum(1)
        order_key = self.target_lengths * (source.shape[1] + 1) + self.source_lengths
        self.sampler = BucketBatchSampler(order_key.tolist(), batch_size, seed=seed)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for rows in self.sampler:
            rows = torch.as_tensor(rows)
            source_width, target_width = int(self.source_lengths[rows].max()), int(self.target_lengths[rows].max())
            source, target_in, target_out = (a[rows] for a in self.arrays)
            yield (source[:, :source_width], target_in[:, :target_width]), target_out[:, :target_width]


# ========================================================================= BLEU
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


# ====================================================================== heatmaps
def save_attention_heatmap(translation: Translation, path: str | Path, title: str | None = None) -> Path:
    """Save the attention weights of `translation` as a PNG: source tokens across, output tokens down."""
    import matplotlib.pyplot as plt

    figure = attention_figure(translation, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def attention_figure(translation: Translation, title: str | None = None):
    """A matplotlib figure of `translation.attention` `(outputs, sources)` with the tokens on its axes."""
    if translation.attention is None:
        raise ValueError("This translation has no attention weights: the model was trained without attention "
                         "(attention=None). Train with --attention dot or additive to see them.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, columns = translation.output_labels, translation.source_tokens
    figure, axes = plt.subplots(figsize=(1.6 + 0.5 * len(columns), 1.2 + 0.4 * len(rows)), dpi=100)
    image = axes.imshow(translation.attention, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(columns)), columns, rotation=60, ha="right")
    axes.set_yticks(range(len(rows)), rows)
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    axes.set_title(title or translation.text, fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.05)
    figure.tight_layout()
    return figure


# ======================================================================= command
def add_parser(subcommands: Any) -> argparse.ArgumentParser:
    """Add `seqlab translate` with `train`, `run` (also the default) and `evaluate`."""
    parser = subcommands.add_parser(
        "translate", help="train and run attention-based translation models",
        description="Attention-based translation. `seqlab translate --model DIR TEXT...` is `translate run`.")
    parser.register("action", "parsers", _CommandOrText)
    _add_run_options(parser)
    parser.set_defaults(handler=lambda args: print_help(parser))
    commands = parser.add_subparsers(dest="translate_command", metavar="{train,run,evaluate}")

    train = commands.add_parser("train", help="train a translator on sentence pairs and save it")
    train.add_argument("--pairs", required=True, help="fra-eng, kor-eng, or tsv:PATH (source<TAB>target lines)")
    train.add_argument("--source", help="source language (default en)")
    train.add_argument("--target", help="target language (default the pair's other language)")
    train.add_argument("--model", required=True, help="directory to save the trained model in")
    train.add_argument("--max-words", type=int, default=10, help="keep pairs of at most this many words (10)")
    train.add_argument("--limit", type=int, help="use at most this many training pairs (default all)")
    train.add_argument("--test-sources", type=int, default=1000, help="held-out source sentences (1000)")
    train.add_argument("--cell", choices=sorted(CELLS), default="gru")
    train.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=True)
    train.add_argument("--attention", choices=["dot", "additive", "none"], default="dot")
    train.add_argument("--embedding-dim", type=int, default=128)
    train.add_argument("--units", type=int, default=256, help="encoder units per direction (256)")
    train.add_argument("--dropout", type=float, default=0.1)
    train.add_argument("--min-count", type=int, default=1, help="drop words seen fewer times (1)")
    train.add_argument("--max-vocabulary", type=int, help="keep at most this many words per language")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--validation-split", type=float, default=0.0)
    train.add_argument("--projection-dtype", choices=["float32", "bfloat16"], default="float32",
                       help="run the output projection in bfloat16 (about 2x faster on CPUs with AVX512-BF16)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=True,
                       help="report BLEU on the held-out sentences after training (greedy)")
    train.set_defaults(handler=_train)

    run = commands.add_parser("run", help="translate texts with a saved model")
    _add_run_options(run)
    run.add_argument("texts", nargs="+", help="texts to translate")
    run.set_defaults(handler=_run)

    evaluate = commands.add_parser("evaluate", help="BLEU on the held-out sentences of the model's training data")
    evaluate.add_argument("--model", required=True, help="a directory written by `seqlab translate train`")
    evaluate.add_argument("--beam", type=int, default=1, help="beam width (1: greedy decoding)")
    evaluate.add_argument("--length-penalty", type=float, default=0.0, help="GNMT length penalty alpha (0)")
    evaluate.add_argument("--examples", type=int, default=5, help="print this many example translations")
    evaluate.set_defaults(handler=_evaluate)
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="a directory written by `seqlab translate train`")
    parser.add_argument("--beam", type=int, default=1, help="beam width (1: greedy decoding)")
    parser.add_argument("--length-penalty", type=float, default=0.0, help="GNMT length penalty alpha (0)")
    parser.add_argument("--max-length", type=int, help="most output tokens (default: the model's)")
    parser.add_argument("--show-attention", metavar="PNG",
                        help="save the attention heatmap (several texts: PNG gets _1, _2, ... suffixes)")


class _CommandOrText(argparse._SubParsersAction):
    """`translate`'s subcommands, where a first word that names none is a text for `run`."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.choices = _AnyWord(self._name_parser_map)

    def __call__(self, parser, namespace, values, option_string=None):
        if values[0] in self._name_parser_map:
            return super().__call__(parser, namespace, values, option_string)
        run = self._name_parser_map["run"]
        run.parse_args(values, namespace)   # keeps options given before the text (namespace has them)
        namespace.translate_command, namespace.handler = "run", run.get_default("handler")


class _AnyWord(dict):
    """argparse checks the first word against the choices; every word is acceptable here."""

    def __init__(self, names: dict):
        super().__init__()
        self.names = names

    def __contains__(self, word: object) -> bool:
        return True

    def __iter__(self):
        return iter(self.names)


def _reports_errors(handler):
    """Print what went wrong (bad input, missing data or model) as one line on stderr and return 1."""
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (ValueError, FileNotFoundError, ImportError) as error:
            print(f"seqlab translate: {error}", file=sys.stderr)
            return 1

    return run


@_reports_errors
def _train(args: argparse.Namespace) -> int:
    data = load_translation_data(args.pairs, args.source, args.target, max_words=args.max_words,
                                 limit=args.limit, test_sources=args.test_sources, seed=args.seed)
    distributed.print_main(data.summary())
    model, history, seconds = train_translator(
        data, embedding_dim=args.embedding_dim, units=args.units, cell=args.cell, bidirectional=args.bidirectional,
        attention=None if args.attention == "none" else args.attention, dropout=args.dropout, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, min_count=args.min_count,
        max_vocabulary=args.max_vocabulary, validation_split=args.validation_split,
        projection_dtype=None if args.projection_dtype == "float32" else args.projection_dtype, seed=args.seed)
    distributed.on_main_then_wait(lambda: model.save(args.model))
    if not distributed.is_main_process():
        return 0  # rank 0 reports, and scores the held-out sentences
    epochs = len(history.history.get("loss", []))
    print(f"trained {epochs} epochs in {seconds:.0f} s; saved to {args.model}")
    if args.evaluate:
        _print_bleu(evaluate_bleu(model, data), beam=1, examples=5)
    return 0


@_reports_errors
def _run(args: argparse.Namespace) -> int:
    texts = getattr(args, "texts", None)
    if not args.model or not texts:
        print("seqlab translate: give --model DIR and the texts to translate, e.g. "
              "seqlab translate --model runs/fr \"I am cold.\"", file=sys.stderr)
        return 2
    model = _load_translator(args.model)
    translations = model.translate(texts, args.beam, args.length_penalty, args.max_length)
    for index, translation in enumerate(translations, 1):
        print(translation.text)
        if args.show_attention:
            path = Path(args.show_attention)
            if len(translations) > 1:
                path = path.with_name(f"{path.stem}_{index}{path.suffix or '.png'}")
            save_attention_heatmap(translation, path)
            print(f"  attention heatmap: {path}", file=sys.stderr)
    return 0


@_reports_errors
def _evaluate(args: argparse.Namespace) -> int:
    model = _load_translator(args.model)
    spec = {k: v for k, v in (model.training_data or {}).items() if k not in ("min_count", "max_vocabulary")}
    if not spec:
        print(f"seqlab translate evaluate: {args.model} does not record its training data; evaluate models "
              "written by `seqlab translate train`.", file=sys.stderr)
        return 1
    data = load_translation_data(spec.pop("pairs"), spec.pop("source"), spec.pop("target"), **spec)
    _print_bleu(evaluate_bleu(model, data, args.beam, args.length_penalty), args.beam, args.examples)
    return 0


def _print_bleu(report: BleuReport, beam: int, examples: int) -> None:
    search = "greedy" if beam == 1 else f"beam {beam}"
    print(f"BLEU {report.bleu:.1f} (all references), {report.bleu_single_reference:.1f} (first reference only) "
          f"on {report.sentences:,} held-out sentences, {search}, {report.seconds:.0f} s")
    for translation in report.translations[:examples]:
        print(f"  {translation.source}  ->  {translation.text}")


def _load_translator(directory: str) -> Translator:
    from seqlab.saving import load_model

    model = load_model(directory, compile=False)
    if not isinstance(model, Translator):
        raise ValueError(f"{directory} holds a {type(model).__name__}, not a Translator; give a directory "
                         "written by `seqlab translate train`.")
    return model


# ======================================================================== helpers
def _vocabulary(value: Vocabulary | dict, what: str) -> Vocabulary:
    if isinstance(value, Vocabulary):
        return value
    if isinstance(value, dict):
        return Vocabulary.from_json(json.dumps(value))
    raise TypeError(f"{what} must be a seqlab Vocabulary (or its saved JSON as a dict), got {type(value).__name__}.")


def _special_indices(vocabulary: Vocabulary) -> tuple[int, int]:
    if SOS not in vocabulary or EOS not in vocabulary:
        raise ValueError(f"The target vocabulary needs the specials {SOS} and {EOS} (start and end of a "
                         f"sentence); it has {list(vocabulary.specials)}. Build it with "
                         f"Vocabulary.build(texts, specials=('{SOS}', '{EOS}'), tokenizer=...).")
    return vocabulary.index(SOS), vocabulary.index(EOS)


def _pad(rows: Sequence[Sequence[int]]) -> list[list[int]]:
    width = max(map(len, rows))
    return [list(row) + [0] * (width - len(row)) for row in rows]


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
