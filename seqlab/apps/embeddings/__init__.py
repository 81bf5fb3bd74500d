"""The embeddings application: `seqlab embeddings train | similar | analogy | evaluate | export | plot`.

Trains Word2Vec or fastText vectors (`seqlab.embeddings`) on a known corpus
(IMDb, NSMC, The Mysterious Island, KoCoNovel) or the user's text, into a
resumable run directory, and asks the vectors what they learned.

    >>> from seqlab.apps.embeddings import Settings, train
    >>> result = train(Settings(corpus="nsmc", subwords=True), "runs/nsmc-vectors")
"""

from seqlab.apps.embeddings.cli import add_parser, main
from seqlab.apps.embeddings.run import TrainResult, train
from seqlab.apps.embeddings.settings import Settings

__all__ = ["Settings", "TrainResult", "add_parser", "main", "train"]
