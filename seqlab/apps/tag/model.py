"""The tagger network: word and character features, stacked BiLSTMs, a per-step softmax or a CRF.

    x_t = [E_word(w_t) ; chars(w_t)]                     (batch, T, word_dim + char features)
    h^1 = BiLSTM(dropout(x)),  h^l = BiLSTM(dropout(h^{l-1}))    (batch, T, 2·units), masked
    s_t = W dropout(h^L_t) + b                            (batch, T, tags)  emission scores

Training minimizes, over the real tokens, the cross-entropy of softmax(s_t)
or, with `crf=True`, the CRF's negative log-likelihood −log p(y | s) summed
over sentences and divided by their tokens (`loss_sum_and_count`), so both
losses are per token. Decoding is Viterbi in both cases: over the CRF's
learned transitions, or over log softmax(s_t) with zero transitions; either
way under the tag set's constraints (never padding or <unk>; for BIO tags no
I-X without a B-X or I-X before it), so an entity is always well formed.

    >>> model = Tagger(encoder, char_features="cnn", crf=True)
    >>> emissions = model((words, chars))                 # (batch, T, len(encoder.tags))
    >>> model.tag([["The", "cat", "sat"]])                # [['DET', 'NOUN', 'VERB']]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from seqlab.apps.tag.char_features import char_features as make_char_features
from seqlab.apps.tag.encoding import TagEncoder
from seqlab.layers import CRF, LSTM, Bidirectional, Dense, Dropout, Embedding, bio_constraints, viterbi_decode
from seqlab.serialization import register_serializable
from seqlab.training import Model

__all__ = ["Tagger"]


@register_serializable
class Tagger(Model):
    """Sequence tagger (see the module docstring for the math).

    Input `(words (batch, T), chars (batch, T, C))` ids from `TagEncoder.collate`,
    0 = padding; output emission scores `(batch, T, len(encoder.tags))`
    carrying the token mask. The encoder (its three vocabularies) travels in
    the saved config, so `seqlab.load_model(dir)` restores a tagger that
    takes tokens. `training_data` records the dataset (for `tag evaluate`).
    """

    def __init__(self, encoder: TagEncoder | dict, word_dim: int = 100, char_features: str = "cnn",
                 char_dim: int = 32, char_units: int = 64, units: int = 192, layers: int = 2,
                 dropout: float = 0.33, word_dropout: float = 0.1, crf: bool = False,
                 training_data: dict[str, Any] | None = None):
        super().__init__()
        self.encoder = encoder if isinstance(encoder, TagEncoder) else TagEncoder.from_config(encoder)
        self.word_dim, self.char_kind, self.char_dim, self.char_units = word_dim, char_features, char_dim, char_units
        self.units, self.layer_count, self.dropout_rate, self.word_dropout = units, layers, dropout, word_dropout
        self.use_crf, self.training_data = crf, training_data
        tags = len(self.encoder.tags)
        self.word_embedding = Embedding(len(self.encoder.words), word_dim)
        self.word_embedding.build(None)
        self.chars = make_char_features(char_features, len(self.encoder.chars), char_dim, char_units)
        width = word_dim + (self.chars.output_dim if self.chars is not None else 0)
        self.encoders = torch.nn.ModuleList()
        for _ in range(layers):
            layer = Bidirectional(LSTM(units, return_sequences=True))
            layer.build((None, None, width))
            self.encoders.append(layer)
            width = 2 * units
        self.dropout = Dropout(dropout)
        self.output_layer = Dense(tags)
        self.output_layer.build((None, width))
        allowed, start, end = self._constraints()
        self.crf = CRF(tags, allowed, start, end) if crf else None
        if self.crf is not None:
            self.crf.build((None, None, tags))
        scores = [torch.zeros(mask.shape).masked_fill(~mask, float("-inf")) for mask in (allowed, start, end)]
        self.register_buffer("constraint_scores", scores[0], persistent=False)
        self.register_buffer("start_scores", scores[1], persistent=False)
        self.register_buffer("end_scores", scores[2], persistent=False)

    def _constraints(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Allowed moves: never padding (0) or <unk> (last); BIO's rules when the tags are BIO."""
        names, excluded = self.encoder.tag_names, (0, len(self.encoder.tags) - 1)
        if self.encoder.is_bio:
            return bio_constraints(names, excluded=excluded)
        allowed = torch.ones(len(names), dtype=torch.bool)
        allowed[list(excluded)] = False
        return allowed[:, None] & allowed[None, :], allowed.clone(), allowed.clone()

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """`(words (batch, T), chars (batch, T, C))` → emission scores (batch, T, tags), masked."""
        words, chars = inputs
        mask = words != 0
        if self.training and self.word_dropout > 0:
            dropped = (torch.rand(words.shape, device=words.device) < self.word_dropout) & mask
            words = words.masked_fill(dropped, self.encoder.words.unknown_index)
        features = self.word_embedding(words)
        if self.chars is not None:
            features = torch.cat([features, self.chars(chars, mask)], dim=-1)
        hidden = self.dropout(features)
        for layer in self.encoders:
            hidden = self.dropout(layer(hidden, mask=mask))
        emissions = self.output_layer(hidden)
        emissions._keras_mask = mask
        return emissions

    def loss_sum_and_count(self, loss, y_true, y_pred, sample_weight, mask):
        """Softmax: the compiled cross-entropy. CRF: (Σ_sentences −log p(y | s), real tokens)."""
        if self.crf is None:
            return super().loss_sum_and_count(loss, y_true, y_pred, sample_weight, mask)
        tokens = y_true != 0
        negative_log_likelihood = self.crf.negative_log_likelihood(y_pred.float(), y_true, tokens)
        if sample_weight is not None:
            negative_log_likelihood = negative_log_likelihood * sample_weight.reshape(-1)
        return negative_log_likelihood.sum(), tokens.sum()

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The best tag path of each sentence under the constraints: (batch, T) ids, 0 at padding."""
        if self.crf is not None:
            return self.crf.decode(emissions.float(), mask)[0]
        scores = torch.log_softmax(emissions.float(), dim=-1)
        return viterbi_decode(scores, mask, self.constraint_scores, self.start_scores, self.end_scores)[0]

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def tag(self, sentences: Sequence[Sequence[str]], batch_size: int = 256) -> list[list[str]]:
        """The tags of each sentence (a list of tokens)."""
        self.eval()
        device = next(self.parameters()).device
        names = self.encoder.tag_names
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        result: list[list[str]] = [[] for _ in sentences]
        for start in range(0, len(order), batch_size):
            rows = [i for i in order[start:start + batch_size] if sentences[i]]
            if not rows:
                continue
            (words, chars), _ = self.encoder.collate(self.encoder.encode([sentences[i] for i in rows]))
            words, chars = words.to(device), chars.to(device)
            paths = self.decode(self((words, chars)), words != 0).cpu()
            for row, path in zip(rows, paths):
                result[row] = [names[int(tag)] for tag in path[:len(sentences[row])]]
        return result

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        return {"encoder": self.encoder.to_config(), "word_dim": self.word_dim, "char_features": self.char_kind,
                "char_dim": self.char_dim, "char_units": self.char_units, "units": self.units,
                "layers": self.layer_count, "dropout": self.dropout_rate, "word_dropout": self.word_dropout,
                "crf": self.use_crf, "training_data": self.training_data}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Tagger":
        return cls(**config)
