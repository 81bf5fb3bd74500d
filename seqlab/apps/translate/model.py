"""The translator network: a recurrent encoder–decoder with attention (Luong et al. 2015).

    encoder   e_1..e_S = BiGRU(Embedding(x))            (batch, S, H), H = 2·units (units if one direction)
              s_0 = [h_fw; h_bw]                          the decoder starts from the encoder's final state
    decoder   h_t = GRU(Embedding(y_{t-1}), h_{t-1})      (batch, T, H)
              a_ts = softmax_s score(h_t, e_s)            over the real source tokens; padding gets 0
              c_t = Σ_s a_ts e_s                          context (batch, T, H)
              h̃_t = tanh(W_c [c_t; h_t])                  attentional state (batch, T, H)
              p(y_t | y_<t, x) = softmax(W_o h̃_t)        (batch, T, target vocabulary)

with score(h, e) = h·e (`attention="dot"`) or v·tanh(W_q h + W_k e) (`"additive"`);
with `attention=None` the logits are W_o h_t (plain seq2seq). `Translator` is
registered under its class name (saved files refer to it), and gives
`seqlab.interop.export_onnx` its own export plan (`onnx_plan`).

    >>> model = Translator(source_vocab, target_vocab, units=64, attention="additive")
    >>> logits = model((source_ids, target_in_ids))          # (batch, T, target vocabulary)
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

import torch

from seqlab.apps.translate.text import special_indices, vocabulary_of
from seqlab.apps.translate.translation import TranslatesText
from seqlab.data import Vocabulary
from seqlab.interop.onnx_export import ExportPlan, OnnxExportError
from seqlab.layers import GRU, LSTM, AdditiveAttention, Attention, Bidirectional, Dense, Dropout, Embedding
from seqlab.serialization import register_serializable
from seqlab.training import Model

__all__ = ["ATTENTION_KINDS", "CELLS", "Translator"]

CELLS = {"gru": GRU, "lstm": LSTM}
ATTENTION_KINDS = ("dot", "additive", None)
Weights = torch.Tensor | None   # attention weights, None for a model without attention


@register_serializable
class Translator(TranslatesText, Model):
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
        self.source_vocabulary = vocabulary_of(source_vocabulary, "source_vocabulary")
        self.target_vocabulary = vocabulary_of(target_vocabulary, "target_vocabulary")
        self.sos, self.eos = special_indices(self.target_vocabulary)
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
        """One step for `seqlab.generation.decoding`: tokens (batch,) → log-probs (batch, V), state, weights (batch, S)."""
        logits, state, weights = self.decode(tokens[:, None], state)
        return torch.log_softmax(logits[:, 0], dim=-1), state, None if weights is None else weights[:, 0]

    @staticmethod
    def reorder_state(state: dict[str, Any], indices: torch.Tensor) -> dict[str, Any]:
        """The state of the rows `indices` (beam search keeps, repeats and drops prefixes)."""
        return {key: [t.index_select(0, indices) for t in value] if isinstance(value, list)
                else value.index_select(0, indices) for key, value in state.items()}

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


    # ---------------------------------------------------------------- export
    def onnx_plan(self, example_inputs: Sequence[torch.Tensor] | None = None) -> ExportPlan:
        """What `export_onnx` traces: `(source (batch, S), target_in (batch, T))` ids → `logits (batch, T, V)`.

        Without `example_inputs`, three random sources (one padded) and targets.
        """
        if self.projection_dtype not in (None, "float32"):
            raise OnnxExportError(
                f"This translator projects in {self.projection_dtype}, which onnxruntime's CPU kernels do not run. "
                "Set model.projection_dtype = None before exporting (the weights are float32 either way).")
        if example_inputs is None:
            generator = torch.Generator().manual_seed(0)
            source = torch.randint(1, len(self.source_vocabulary), (3, 6), generator=generator)
            source[1, -2:] = 0
            target_in = torch.randint(1, len(self.target_vocabulary), (3, 5), generator=generator)
            example_inputs = (source, target_in)
        axes = {"source": {0: "batch", 1: "source_time"}, "target_in": {0: "batch", 1: "target_time"},
                "logits": {0: "batch", 1: "target_time"}}
        return ExportPlan(_PairInputs(self), tuple(example_inputs), ["source", "target_in"], ["logits"], axes,
                          "translator")


class _PairInputs(torch.nn.Module):
    """The translator called on two positional inputs, as the ONNX graph takes them."""

    def __init__(self, model: Translator):
        super().__init__()
        self.model = model

    def forward(self, source: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        return self.model((source, target_in))
