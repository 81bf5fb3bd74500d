"""seqlab: Keras-style sequence models (Embedding, SimpleRNN, LSTM, GRU,
Bidirectional, attention) on PyTorch, verified against TensorFlow-Keras.

    >>> import seqlab
    >>> from seqlab import layers
    >>> model = seqlab.Sequential([layers.Embedding(1000, 32), layers.LSTM(32), layers.Dense(1, "sigmoid")])
"""

from seqlab import activations, constraints, initializers, layers, regularizers
from seqlab.model import Sequential
from seqlab.saving import load_model
from seqlab.seeding import set_seed
from seqlab.training import Model
from seqlab.version import __version__

__all__ = [
    "Model",
    "Sequential",
    "load_model",
    "set_seed",
    "__version__",
    "activations",
    "constraints",
    "initializers",
    "layers",
    "regularizers",
]
