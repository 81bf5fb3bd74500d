"""Sentiment classification: train a recurrent classifier on labeled texts, evaluate it, predict.

The model is the tutorial's: token ids `(batch, time)` → `Embedding` →
(Bidirectional) SimpleRNN / LSTM / GRU → `Dense` → `Dense(1, sigmoid)`, the
probability that a text is positive, trained with binary cross-entropy:

    p(positive | text) = σ(w · RNN(E[ids]) + b),    label = positive if p > 0.5

Variants: pooling over time instead of the last output, and with
`layers=0` no recurrent layer at all (`ngrams=2` then gives fastText's
masked mean of word and bigram embeddings). `arch="transformer"` replaces
the recurrent layers with transformer blocks, as in the Keras
text-classification example (positions added to the embeddings, multi-head
self-attention over the text, then average pooling over time):

    p(positive | text) = σ(w · mean_t TransformerBlock^layers(E[ids] + P)_t + b)

Data: IMDb (`split="official"` or the tutorial's `"book"`), NSMC (Korean), or
any CSV/TSV with a text and a two-valued label column. Presets name recipes:
`book-bilstm` and `book-bisimplernn-100` are the tutorial's exactly (case-
sensitive words, one fixed batch order); `best` is the best measured recipe
for a small CPU (see docs/results/sentiment.md); `transformer` is the Keras
example's transformer classifier.
A saved model directory carries everything needed to read raw text again:
tokenizer, vocabulary, `max_len`, label names (config.json, "tokenizer").

    >>> from seqlab.apps import sentiment
    >>> run = sentiment.train("imdb", preset="book-bisimplernn-100", split="book", out="runs/imdb-rnn")
    >>> sentiment.load("runs/imdb-rnn").predict(["A moving, beautifully acted film."])[0].label
    'pos'

The package: `recipe` (Recipe, PRESETS, make_recipe), `data` (DataSource),
`encoding` (TextEncoder, batches), `model` (build_model, SentimentClassifier,
load), `evaluation` (Prediction, Evaluation), `run` (train, save, evaluate)
and `cli` (the commands). Importing it registers `SentimentTextEncoder`, so
`seqlab.load_model` restores a saved model's encoder.
"""

from seqlab.apps.sentiment.cli import add_parser, main
from seqlab.apps.sentiment.data import DATA_SEED, DataSource, SentimentDataError
from seqlab.apps.sentiment.encoding import (TextEncoder, batches_for_inference, kept_tokens, label_names_of,
                                            review_batches, with_ngrams)
from seqlab.apps.sentiment.evaluation import Evaluation, Prediction
from seqlab.apps.sentiment.model import SentimentClassifier, build_model, compile_model, load
from seqlab.apps.sentiment.recipe import CELLS, POOLINGS, PRESETS, TOKENIZERS, Recipe, make_recipe, preset_values
from seqlab.apps.sentiment.run import TrainResult, evaluate, save, train
from seqlab.data.datasets import TextLabelSplit

__all__ = ["CELLS", "DATA_SEED", "POOLINGS", "PRESETS", "TOKENIZERS", "DataSource", "Evaluation", "Prediction",
           "Recipe", "SentimentClassifier", "SentimentDataError", "TextEncoder", "TextLabelSplit", "TrainResult",
           "add_parser", "batches_for_inference", "build_model", "compile_model", "evaluate", "kept_tokens",
           "label_names_of", "load", "main", "make_recipe", "preset_values", "review_batches", "save", "train",
           "with_ngrams"]
