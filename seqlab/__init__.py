"""seqlab: Keras-style sequence models (Embedding, SimpleRNN, LSTM, GRU,
Bidirectional, attention) on PyTorch, verified against TensorFlow-Keras.

    >>> import seqlab
    >>> from seqlab import layers
    >>> model = seqlab.Sequential([layers.Embedding(1000, 32), layers.LSTM(32), layers.Dense(1, "sigmoid")])
"""

__version__ = "0.1.0"

from seqlab import activations, constraints, initializers, layers, regularizers  # noqa: E402
from seqlab.model import Sequential  # noqa: E402
from seqlab.saving import load_model  # noqa: E402
from seqlab.seeding import set_seed  # noqa: E402
from seqlab.training import Model  # noqa: E402

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
