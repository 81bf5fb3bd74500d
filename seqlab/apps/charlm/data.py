"""The character LM's data: the text, its held-out tail, and the batches `fit` reads.

A text of N characters becomes ids; the last `val_fraction` is held out (a
contiguous tail). Unless stateful, each part is cut into non-overlapping
chunks of seq_len + 1 ids (input = the first seq_len, target = the last
seq_len) and the training chunks are read in `tf.data`'s buffered-shuffle
order, a new one each epoch (`seqlab.data.epoch_batches`); stateful training
reads `batch_size` parallel streams in consecutive seq_len windows.

    >>> train_ids, held_out_ids = split_ids(ids, 0.1, seq_len=40)
    >>> batches = chunk_batches(*chunks(train_ids, 40), batch_size=64, shuffle_buffer=10_000, seed=0)
"""

from __future__ import annotations

from typing import Any

import torch

from seqlab.apps.charlm.settings import Settings
from seqlab.data.datasets import load_gutenberg, load_koconovel, load_text_corpus
from seqlab.data.epoch_batches import BufferedShuffle, EpochBatches, InOrder, rows
from seqlab.training import batchify

__all__ = ["chunk_batches", "chunks", "fit_data", "load_text", "split_ids"]


def load_text(settings: Settings) -> str:
    """The text to train on: `--text PATH` (a UTF-8 file or a folder of .txt files) or a named corpus."""
    if settings.text is not None:
        return load_text_corpus(settings.text, errors=settings.decode_errors).text
    if settings.corpus == "mysterious-island":
        return load_gutenberg(1268).text
    return load_koconovel().text


def split_ids(ids: torch.Tensor, val_fraction: float, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(train, held_out)`: the text's ids without and with only its last `val_fraction`."""
    cut = int(len(ids) * (1.0 - val_fraction))
    train, held_out = ids[:cut], ids[cut:]
    if min(len(train), len(held_out)) < seq_len + 1:
        raise ValueError(f"The text has {len(ids):,} characters: with val_fraction={val_fraction} the training "
                         f"part has {len(train):,} and the held-out part {len(held_out):,}, but each needs at "
                         f"least seq_len + 1 = {seq_len + 1}. Use a longer text or a smaller --seq-len.")
    return train, held_out


def chunks(ids: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping chunks of seq_len + 1 ids → `x, y (chunks, seq_len)`, y = x shifted by one.

    The same windows as `seqlab.data.LanguageModelWindows(ids, seq_len)`; a
    tail shorter than a chunk is dropped.
    """
    windows = ids.unfold(0, seq_len + 1, seq_len + 1)
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


def chunk_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle_buffer: int | None = None,
                  seed: int = 0, shuffle: bool = True) -> EpochBatches:
    """Batches `(x, y)` of chunks: epoch e in the buffered-shuffle order of `derive_seed(seed, e)`.

    `shuffle=False` keeps the chunks in text order (held-out data).

        >>> batches = chunk_batches(x, y, batch_size=64, shuffle_buffer=10_000, seed=0)
        >>> model.fit(batches, epochs=20)   # fit calls batches.set_epoch(e) before epoch e
    """
    order = BufferedShuffle(len(x), batch_size, shuffle_buffer, seed) if shuffle else InOrder(len(x), batch_size)
    return EpochBatches(order, rows((x, y)))


def fit_data(train_ids: torch.Tensor, held_out_ids: torch.Tensor, settings: Settings) -> dict[str, Any]:
    """fit's data arguments: shuffled chunks, or parallel streams read in windows (stateful)."""
    if settings.stateful:
        streams = settings.batch_size
        held_out_streams = max(1, min(streams, (len(held_out_ids) - 1) // settings.seq_len))
        return {"x": batchify(train_ids[:-1], streams), "y": batchify(train_ids[1:], streams),
                "validation_data": (batchify(held_out_ids[:-1], held_out_streams),
                                    batchify(held_out_ids[1:], held_out_streams)),
                "tbptt": settings.seq_len}
    train_batches = chunk_batches(*chunks(train_ids, settings.seq_len), settings.batch_size,
                                  settings.shuffle_buffer, settings.seed)
    held_out = chunk_batches(*chunks(held_out_ids, settings.seq_len), settings.batch_size, shuffle=False)
    return {"x": train_batches, "validation_data": held_out}
