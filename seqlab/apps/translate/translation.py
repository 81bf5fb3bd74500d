"""Text in, text out: `Translation`, the text-facing methods of a translator, and attention heatmaps.

`TranslatesText` gives a translator (`start`, `decode_step`, vocabularies)
`translate(texts)`: greedy decoding or beam search, batched
(`seqlab.generation.decoding`), each result a `Translation` with its tokens, text,
log-probability and attention weights `(outputs, sources)`, which
`save_attention_heatmap` draws.

    >>> translation = model.translate(["I am cold."], beam_width=5)[0]
    >>> save_attention_heatmap(translation, "cold.png")
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqlab.apps.translate.text import EOS, TranslationInputError, pad_rows, text_of
from seqlab.files import write_atomically
from seqlab.generation.decoding import Hypothesis, beam_search_batch, greedy_decode

__all__ = ["TranslatesText", "Translation", "attention_figure", "save_attention_heatmap"]


@dataclass
class Translation:
    """One translated text: its source tokens, output tokens and text, log P, attention `(outputs, sources)`.

    `attention[i, j]` is the weight output token i (then `<eos>` when the
    search finished) gave source token j; None without attention. A
    transformer with `attention_heads = "each"` gives every head's weights,
    `attention[i, h, j]` `(outputs, heads, sources)`.
    """

    source: str
    source_tokens: list[str]
    tokens: list[str]
    text: str          # the tokens as text (`text_of`: lowercased, as the model works)
    log_probability: float
    finished: bool
    attention: np.ndarray | None = None

    @property
    def output_labels(self) -> list[str]:
        """The heatmap's row labels: the output tokens, and `<eos>` when it was emitted."""
        return self.tokens + ([EOS] if self.finished else [])




class TranslatesText:
    """`translate(texts)` for an encoder–decoder with `start`, `decode_step`, `sos`, `eos` and vocabularies."""

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
                    f"tokens from the training pairs), so the model sees only "
                    f"unknown tokens. Check the input language (the model translates "
                    f"{self._languages()}) and the spelling.")
            rows.append(ids)
        return torch.tensor(pad_rows(rows), dtype=torch.long, device=_device_of(self))

    @torch.no_grad()
    def translate(self, texts: Sequence[str] | str, beam_width: int = 1, length_penalty: float = 0.0,
                  max_length: int | None = None) -> list["Translation"]:
        """Translate texts: greedy decoding (`beam_width=1`) or beam search, both batched over the texts."""
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
                hypotheses = [found[0] for found in beam_search_batch(self, self.start(source), len(texts), self.sos,
                                                                      self.eos, beam_width, max_length,
                                                                      length_penalty)]
        finally:
            self.train(was_training)
        return [self._translation(text, row, h) for text, row, h in zip(texts, source.tolist(), hypotheses)]

    def _translation(self, text: str, source_ids: list[int], hypothesis: Hypothesis) -> "Translation":
        tokens = [self.target_vocabulary.token(i) for i in hypothesis.tokens]
        source_tokens = [self.source_vocabulary.token(i) for i in source_ids if i != 0]
        attention = None
        if hypothesis.attention is not None:
            attention = hypothesis.attention[..., : len(source_tokens)].cpu().numpy()
        return Translation(text, source_tokens, tokens, text_of(tokens, self.target_vocabulary.tokenizer),
                           hypothesis.log_probability, hypothesis.finished, attention)

    def _languages(self) -> str:
        data = self.training_data or {}
        return f"{data.get('source', 'the source language')} -> {data.get('target', 'the target language')}"


def save_attention_heatmap(translation: Translation, path: str | Path, title: str | None = None) -> Path:
    """Save the attention weights of `translation` as a PNG: source tokens across, output tokens down."""
    import matplotlib.pyplot as plt

    figure = attention_figure(translation, title)
    path = Path(path)
    image = io.BytesIO()
    figure.savefig(image, format=path.suffix[1:].lower() or "png", bbox_inches="tight")
    plt.close(figure)
    write_atomically(path, image.getvalue())  # a directory of that name is refused, not replaced
    return path


def attention_figure(translation: Translation, title: str | None = None):
    """A matplotlib figure of `translation.attention` `(outputs, sources)` with the tokens on its axes; for
    `(outputs, heads, sources)`, one heatmap per head side by side."""
    if translation.attention is None:
        raise ValueError("This translation has no attention weights: the model was trained without attention "
                         "(attention=None). Train with --attention dot or additive to see them.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, columns = translation.output_labels, translation.source_tokens
    maps = translation.attention[:, None] if translation.attention.ndim == 2 else translation.attention
    heads = maps.shape[1]
    figure, all_axes = plt.subplots(1, heads, squeeze=False, dpi=100,
                                    figsize=(heads * (1.2 + 0.5 * len(columns)) + 0.4, 1.2 + 0.4 * len(rows)))
    for head, axes in enumerate(all_axes[0]):
        image = axes.imshow(maps[:, head], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        axes.set_xticks(range(len(columns)), columns, rotation=60, ha="right")
        axes.set_yticks(range(len(rows)), rows if head == 0 else [])
        axes.set_xlabel("source" if heads == 1 else f"source (head {head + 1})")
    all_axes[0, 0].set_ylabel("output")
    figure.suptitle(title or translation.text, fontsize=9)
    figure.colorbar(image, ax=list(all_axes[0]), fraction=0.05 / heads)
    return figure


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
