"""Character-level language model: `seqlab charlm train | generate | demo`.

The model reads a text one character at a time and predicts the next:

    Embedding(V, e) → [LSTM|GRU|SimpleRNN](u, return_sequences=True) (× layers, Dropout after each) → Dense(V)
    ids (batch, time) → logits (batch, time, V),  loss = mean −log softmax(logits)[next character]

or, with `--arch transformer`, a causal (GPT-style, pre-norm) transformer:

    Embedding(V, e) → + PositionEmbedding(seq_len) → TransformerBlock(e, heads, ff = u, causal) × layers
                    → LayerNorm → Dense(V)

where position t attends to positions ≤ t only, so one window trains all its
next-character predictions at once, as the recurrent model does.

V counts the text's distinct characters plus the vocabulary's padding (0) and
unknown (V − 1) indices, which never occur as targets. Training data is the
text without its last `val_fraction` (a contiguous held-out tail): cut into
non-overlapping chunks of seq_len + 1 characters (input = the first seq_len,
target = the last seq_len), shuffled through a buffer as `tf.data` does, or,
with `--stateful`, laid out as `batch_size` parallel streams that stateful
layers read in consecutive seq_len windows (truncated BPTT). Each epoch reports
the loss (nats per character) and bits per character = loss / ln 2 on both
parts. Checkpoints go to OUT/checkpoints (`--resume` continues), the model
and its vocabulary to OUT/model, the per-epoch results to OUT/log.csv and
OUT/history.json, the settings to OUT/settings.json and the command to
OUT/command.txt.

Generation (`seqlab.generation`) runs the prime once, then one recurrent step
per character; several samples run as one batch. A transformer has no
carried state: each character re-reads the last `seq_len` characters.

    $ seqlab charlm train --preset book --corpus mysterious-island --out runs/book
    $ seqlab charlm generate --model runs/book --prime "The island" --length 500 --scale-factor 2.0
    $ seqlab charlm demo          # the main job: a few minutes of training, then samples at α = 2, 1, 0.5

The package: `settings` (Settings, PRESETS), `data` (the text, its held-out
tail, batches), `model` (build_model, CharVocabulary), `run` (train,
load_generator, stream_samples) and `cli` (the commands). Importing it
registers `CharVocabulary`, so `seqlab.load_model` restores a saved model's
vocabulary.
"""

from seqlab.apps.charlm.cli import add_parser, command_line, main, settings_from_args
from seqlab.apps.charlm.data import chunk_batches, chunks, fit_data, load_text, split_ids
from seqlab.apps.charlm.model import CharVocabulary, build_model, compile_model
from seqlab.apps.charlm.run import TrainResult, load_generator, resolve_model_dir, stream_samples, train
from seqlab.apps.charlm.settings import CELLS, CORPORA, PRESETS, Settings
from seqlab.data.epoch_batches import buffered_shuffle_order

__all__ = ["CELLS", "CORPORA", "PRESETS", "CharVocabulary", "Settings", "TrainResult", "add_parser",
           "buffered_shuffle_order", "build_model", "chunk_batches", "chunks", "command_line", "compile_model",
           "fit_data", "load_generator", "load_text", "main", "resolve_model_dir", "settings_from_args",
           "split_ids", "stream_samples", "train"]
