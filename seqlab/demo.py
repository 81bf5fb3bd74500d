"""`seqlab demo`: what the tutorials show about the layers, computed live.

1. The weight shapes of SimpleRNN, LSTM and GRU (Keras' layout).
2. The parameter tables of the tutorials' models.
3. An Embedding lookup equals one-hot vectors times a Dense kernel.
4. A SimpleRNN step computed by hand equals the layer's output.
"""

from __future__ import annotations

import torch
from rich.console import Console
from rich.table import Table

from seqlab import layers
from seqlab.model import Sequential


def main(console: Console | None = None) -> None:
    console = console or Console()
    torch.manual_seed(0)
    _weight_shapes(console)
    _parameter_tables(console)
    _embedding_is_one_hot_times_dense(console)
    _simple_rnn_by_hand(console)


def _weight_shapes(console: Console) -> None:
    console.rule("1. Weight shapes (Keras layout), 10 input features, 3 units")
    table = Table("layer", "weight", "shape", "parameters")
    for layer in (layers.SimpleRNN(3), layers.LSTM(3), layers.GRU(3), layers.GRU(3, reset_after=False)):
        layer.build((None, None, 10))
        label = type(layer).__name__ + ("(reset_after=False)" if getattr(layer, "reset_after", True) is False else "")
        for path, weight in zip(layer.weight_paths(), layer.get_weights()):
            table.add_row(label, path.split("/")[-1], str(weight.shape), f"{weight.size:,}")
        table.add_row("", "[b]total[/b]", "", f"[b]{layer.count_params():,}[/b]", end_section=True)
    console.print(table)


def _parameter_tables(console: Console) -> None:
    console.rule("2. The tutorials' models")
    models = {
        "stacked SimpleRNN": (Sequential([layers.Embedding(1000, 32), layers.SimpleRNN(32, return_sequences=True),
                                          layers.SimpleRNN(32), layers.Dense(1)]), (None, None)),
        "character LM": (Sequential([layers.Embedding(80, 256), layers.LSTM(512, return_sequences=True),
                                     layers.Dense(80)]), (None, 40)),
        "sentiment Bi-LSTM": (Sequential([layers.Embedding(10000, 20), layers.Bidirectional(layers.LSTM(64)),
                                          layers.Dense(64, activation="relu"),
                                          layers.Dense(1, activation="sigmoid")]), (None, None)),
    }
    for title, (model, input_shape) in models.items():
        console.print(f"[b]{title}[/b]")
        model.build(input_shape)
        model.summary(print_fn=console.print)


def _embedding_is_one_hot_times_dense(console: Console) -> None:
    console.rule("3. Embedding = one-hot x Dense(use_bias=False)")
    embedding = layers.Embedding(5, 3)
    ids = torch.tensor([[0, 3, 1, 3]])
    looked_up = embedding(ids)
    dense = layers.Dense(3, use_bias=False)
    dense.build((None, 5))
    dense.set_weights(embedding.get_weights())
    multiplied = dense(layers.one_hot(ids, 5))
    console.print(f"ids {ids.tolist()}\nlookup rows:\n{looked_up[0].detach().numpy().round(4)}")
    console.print(f"one_hot(ids) @ kernel:\n{multiplied[0].detach().numpy().round(4)}")
    console.print(f"equal: [b]{torch.equal(looked_up, multiplied)}[/b]")


def _simple_rnn_by_hand(console: Console) -> None:
    console.rule("4. SimpleRNN by hand: h_t = tanh(x_t W_x + h_{t-1} W_h + b)")
    rnn = layers.SimpleRNN(2, return_sequences=True)
    x = torch.randn(1, 3, 4)
    outputs = rnn(x)
    w_x, w_h, b = (torch.as_tensor(w) for w in rnn.get_weights())
    h = torch.zeros(1, 2)
    for t in range(3):
        h = torch.tanh(x[:, t] @ w_x + h @ w_h + b)
        console.print(f"t={t}: by hand {h[0].numpy().round(6)}   layer {outputs[0, t].detach().numpy().round(6)}")
    difference = (outputs[0, -1] - h[0]).abs().max().item()
    console.print(f"max difference: [b]{difference:.2e}[/b] "
                  f"(equal within float32 rounding: [b]{difference < 1e-6}[/b])")
