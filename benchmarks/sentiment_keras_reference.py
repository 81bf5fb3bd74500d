"""The tutorial's two recipes trained by real TensorFlow-Keras on seqlab's data.

Is a `book-bisimplernn-100` or `book-bilstm` result a property of the recipe
or of seqlab? This script feeds Keras exactly the data `seqlab sentiment train
--preset PRESET --split book` reads (the tutorial's split, vocabulary, each
review's last 100 tokens for the SimpleRNN, batches of 32 post-padded to their
longest, in the same fixed order every epoch as the tutorial's `padded_batch`)
and trains the tutorial's Keras model:

    Embedding(V, 20) → Bidirectional(SimpleRNN(64) or LSTM(64)) → Dense(64, relu) → Dense(1, sigmoid)
    Adam(1e-3), binary cross-entropy, 10 epochs, no masking

then prints validation accuracy per epoch and the test accuracy after epoch 10
(one JSON line per seed). Needs tensorflow (the test extra installs it).

    SEQLAB_DATA_DIR=../shared/datasets python benchmarks/sentiment_keras_reference.py --seeds 0 1
    SEQLAB_DATA_DIR=../shared/datasets python benchmarks/sentiment_keras_reference.py --preset book-bilstm
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from seqlab.apps import sentiment


def padded_batches(sequences, labels, batch_size: int, rng: np.random.Generator | None):
    """Batches `(ids (batch, longest), labels (batch, 1))`, shuffled when `rng` is given, post-padded with 0."""
    order = rng.permutation(len(sequences)) if rng is not None else np.arange(len(sequences))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        longest = max(len(sequences[i]) for i in rows)
        ids = np.zeros((len(rows), longest), dtype=np.int32)
        for row, index in enumerate(rows):
            ids[row, :len(sequences[index])] = sequences[index]
        yield ids, np.asarray(labels, dtype=np.float32)[rows][:, None]


def dataset(tf, sequences, labels, batch_size: int, seed: int | None):
    """A tf.data pipeline over `padded_batches` (reshuffled each epoch when `seed` is given)."""
    epoch = [0]

    def generate():
        rng = np.random.default_rng([seed, epoch[0]]) if seed is not None else None
        epoch[0] += 1
        yield from padded_batches(sequences, labels, batch_size, rng)

    signature = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, 1), tf.float32))
    return tf.data.Dataset.from_generator(generate, output_signature=signature)


PRESETS = ("book-bisimplernn-100", "book-bilstm")


def run(preset: str, seed: int, epochs: int, threads: int) -> dict:
    import tensorflow as tf
    import keras

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(seed)
    recipe = sentiment.make_recipe(preset)
    cell = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM}[recipe.cell]
    train, validation, test = sentiment.DataSource("imdb", "book").splits()
    encoder = sentiment.TextEncoder.build(train, recipe)
    encoded = {name: (encoder.encode_batch(split.texts), split.labels)
               for name, split in (("train", train), ("validation", validation), ("test", test))}
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(len(encoder.vocabulary), recipe.embedding_dim),
        keras.layers.Bidirectional(cell(recipe.units)),
        keras.layers.Dense(recipe.dense_units, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    order_seed = seed if recipe.shuffle else None  # the tutorial reads one fixed order every epoch
    history = model.fit(dataset(tf, *encoded["train"], recipe.batch_size, order_seed),
                        validation_data=dataset(tf, *encoded["validation"], recipe.batch_size, None),
                        epochs=epochs, verbose=2)
    seconds = time.perf_counter() - started
    _, accuracy = model.evaluate(dataset(tf, *encoded["test"], recipe.batch_size, None), verbose=0)
    return {"preset": preset, "seed": seed, "test_accuracy": round(float(accuracy), 4), "epochs": epochs,
            "val_accuracy": [round(float(a), 4) for a in history.history["val_accuracy"]],
            "train_seconds": round(seconds, 1), "parameters": model.count_params(),
            "keras": keras.__version__, "tensorflow": tf.__version__}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=PRESETS, default=PRESETS[0], help=f"the recipe (default {PRESETS[0]})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (default 1)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default 10, the tutorial's)")
    args = parser.parse_args(argv)
    for seed in args.seeds:
        print(json.dumps(run(args.preset, seed, args.epochs, args.threads)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
