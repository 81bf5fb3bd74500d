"""Test accuracy of saved unmasked sentiment models read two ways, to tell the test protocol from the training.

"alone": seqlab's reading since issue 22, batches of reviews of one length, so
each review gets the answer it gets alone. "batch-mixed": the tutorial's
`padded_batch(32)`, batches of 32 in the test set's order padded to their
longest review, so a review's score depends on its neighbours.

    SEQLAB_DATA_DIR=/work/shared/datasets python benchmarks/sentiment_test_protocols.py \\
        runs/sentiment-results/book-bilstm-book runs/sentiment-results/book-bisimplernn-100-book
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from seqlab.apps import sentiment
from seqlab.apps.sentiment.encoding import review_batches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="OUT directories of `seqlab sentiment train` on IMDb's book split")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    test = sentiment.DataSource("imdb", "book").splits()[2]
    labels = np.asarray(test.labels)
    print("| run | alone | batch-mixed |\n|---|---:|---:|")
    for run in args.runs:
        classifier = sentiment.load(run)
        alone = classifier.evaluate(test).accuracy
        ids = classifier.encoder.encode_batch(test.texts)
        batches = review_batches(ids, None, classifier.encoder.batch_size, shuffle=False)
        positive = classifier.model.predict(batches, verbose=0).reshape(-1)
        mixed = float(((positive > 0.5).astype(int) == labels).mean())
        print(f"| `{run}` | {alone:.2%} | {mixed:.2%} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
