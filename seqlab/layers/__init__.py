"""seqlab's layers: Keras' names, arguments and weight layouts, as `torch.nn.Module`s.

    >>> from seqlab import layers
    >>> rnn = layers.SimpleRNN(3)
    >>> rnn(torch.randn(2, 10, 5)).shape
    torch.Size([2, 3])
"""

from seqlab.layers.attention import AdditiveAttention, Attention, SelfAttention
from seqlab.layers.attention_cache import AttentionCache, DecoderCache
from seqlab.layers.base import Layer
from seqlab.layers.cells import GRUCell, LSTMCell, RecurrentCell, SimpleRNNCell
from seqlab.layers.convolutional import Conv1D
from seqlab.layers.core import Activation, Dense, Dropout
from seqlab.layers.crf import CRF, bio_constraints, viterbi_decode
from seqlab.layers.embedding import Embedding, one_hot
from seqlab.layers.input_layer import Input, InputLayer
from seqlab.layers.multi_head_attention import MultiHeadAttention
from seqlab.layers.normalization import LayerNormalization
from seqlab.layers.pooling import GlobalAveragePooling1D, GlobalMaxPooling1D
from seqlab.layers.positional import PositionalEncoding, PositionEmbedding
from seqlab.layers.recurrent import GRU, LSTM, RNN, SimpleRNN
from seqlab.layers.serialization import deserialize, serialize
from seqlab.layers.transformer import TransformerBlock, transformer_stack
from seqlab.layers.transformer_decoder import TransformerDecoderBlock
from seqlab.layers.wrappers import Bidirectional, TimeDistributed

__all__ = [
    "Activation", "Bidirectional", "Conv1D", "Dense", "Dropout", "Embedding", "GRU", "GRUCell", "Input",
    "InputLayer", "LSTM", "LSTMCell", "Layer", "RNN", "RecurrentCell", "SimpleRNN", "SimpleRNNCell",
    "TimeDistributed", "deserialize", "one_hot", "serialize",
    "AdditiveAttention", "Attention", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "LayerNormalization",
    "MultiHeadAttention", "PositionEmbedding", "PositionalEncoding", "SelfAttention", "TransformerBlock",
    "transformer_stack", "CRF", "bio_constraints", "viterbi_decode", "AttentionCache", "DecoderCache",
    "TransformerDecoderBlock",
]
