"""Stateful single-step execution for generation and streaming.

`Stepper(model)` runs a `Sequential` of the form

    Embedding → one or more recurrent layers (return_sequences=True) → Dense/Dropout/Activation layers

one token at a time, carrying every recurrent layer's state, with all
per-call setup done once:

- the first recurrent layer's input projection is folded into the embedding:
  `table = project_inputs(embeddings)` (`(vocabulary, k*units)`), so a step
  starts with a row lookup instead of a matrix product;
- the rest is each cell's step (on the compiled C++ loop where it computes
  the cell's equation, `seqlab.kernels.fused.CellStep`, else the cell's own `step`) and the
  output layers, in inference mode without autograd.

`precision="bfloat16"` runs each step's recurrent product `h_{t-1} W_h`, the
bulk of a step's work for many streams, from bfloat16 copies of h and W_h
(8-bit mantissas), with the products summed in float32 (oneDNN on a CPU with
AVX512-BF16 runs it about twice as fast as float32; 64 streams of an LSTM(512)
generate about 1.5x as many characters per second); the states,
gates and output layers stay float32, and the gates still run in the C++ loop
where it serves the cell. For a single stream it is slower than float32. On
the Mysterious Island model (LSTM(512)) the next-character distributions move
by a KL divergence of about 2e-5 nats and the validation loss does not change
(docs/performance.md). The copies are taken when the Stepper is made.

`step(ids (batch,)) → outputs (batch, ...)` (the model's last layer, e.g.
logits over the vocabulary), `prime(ids (batch, time))` runs a prompt
through the layers' full-sequence path and keeps the final states. The
results equal running the whole prefix through the model.

    >>> stepper = Stepper(model, batch_size=1)
    >>> logits = stepper.prime(torch.tensor([[5, 9, 2]]))     # (1, vocabulary)
    >>> logits = stepper.step(torch.tensor([7]))
    >>> many = Stepper(model, batch_size=64, precision="bfloat16")  # 64 streams, bfloat16 products

A causal transformer carries keys and values instead of a state:
`seqlab.generation.cached_stepping.CachedStepper` runs one position per step
over each block's cache. `WindowStepper`, the reference it is tested
against, re-reads the last `context` tokens at every step (the window the
model was trained on). `stepper_for(model)` picks `Stepper` or `CachedStepper`.
"""

from __future__ import annotations

from functools import partial

import torch

from seqlab.generation.cached_stepping import CachedStepper
from seqlab.kernels import fused
from seqlab.kernels.fused import PRECISIONS
from seqlab.layers.core import Activation, Dense, Dropout
from seqlab.layers.embedding import Embedding
from seqlab.layers.positional import PositionEmbedding
from seqlab.layers.recurrent import RNN
from seqlab.layers.transformer import TransformerBlock

__all__ = ["PRECISIONS", "Stepper", "WindowStepper", "stepper_for"]


class Stepper:
    """Run an Embedding → RNN(s) → output-layers model one step at a time (see module docstring)."""

    def __init__(self, model, batch_size: int = 1, precision: str = "float32"):
        layers = list(model.layers) if hasattr(model, "layers") else list(model)
        self.embedding, self.recurrent, self.head = _split(layers)
        unbuilt = [layer.name for layer in layers if not getattr(layer, "built", True)]
        if unbuilt:
            raise ValueError(f"Stepper needs a built model ({', '.join(unbuilt)} not built yet): call "
                             "model.build((None, None)) or run the model on a batch first.")
        self.batch_size = batch_size
        with torch.no_grad():
            first = self.recurrent[0].cell
            self.table = first.project_inputs(self.embedding.embeddings).contiguous()
        self.precision = precision
        self.cell_steps = _cell_steps(self.recurrent, self.table, precision, batch_size)
        # Embedding(mask_zero=True): a 0 id is padding, where every layer holds its states and repeats
        # its last output, as the whole model does on the sequence.
        self.masking = bool(self.embedding.mask_zero)
        self.reset(batch_size)

    @property
    def device(self) -> torch.device:
        return self.table.device

    def initial_states(self, batch_size: int) -> list[list[torch.Tensor]]:
        return [layer.cell.get_initial_state(batch_size) for layer in self.recurrent]

    def reset(self, batch_size: int | None = None) -> None:
        """Zero every state (optionally for a new batch size)."""
        self.batch_size = batch_size or self.batch_size
        self.states = self.initial_states(self.batch_size)
        self.last_outputs = [states[0].new_zeros(states[0].shape) for states in self.states]

    @torch.no_grad()
    def prime(self, ids: torch.Tensor) -> torch.Tensor:
        """Run a prompt `(batch, time)` from the current states; returns the last step's outputs."""
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise ValueError(f"prime() takes a prompt of shape (batch, time >= 1), got {tuple(ids.shape)}.")
        if ids.shape[0] != self.batch_size:
            self.reset(ids.shape[0])
        hidden = self.embedding(ids)
        mask = ids != 0 if self.masking else None
        for index, layer in enumerate(self.recurrent):
            sequence, *states = _run_with_state(layer, hidden, self.states[index], mask)
            self.states[index] = states
            self.last_outputs[index] = sequence[:, -1]
            hidden = sequence
        return self._head(hidden[:, -1])

    @torch.no_grad()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Advance every stream by one token `ids (batch,)`; returns the outputs `(batch, ...)`."""
        projected = self.table.index_select(0, ids)  # a quarter of `table[ids]`'s time for 64 rows
        keep = (ids != 0)[:, None] if self.masking else None
        hidden = None
        for index, layer in enumerate(self.recurrent):
            if index:
                projected = layer.cell.project_inputs(hidden)
            hidden, states = self.cell_steps[index](projected, self.states[index])
            if keep is not None:  # padding: hold the states, repeat the last output
                states = [torch.where(keep, new, old) for new, old in zip(states, self.states[index])]
                hidden = torch.where(keep, hidden, self.last_outputs[index])
                self.last_outputs[index] = hidden
            self.states[index] = states
        return self._head(hidden)

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        # Each layer's own math (`forward`), built when the Stepper was: a layer's call adds input checks,
        # masks and activity losses that a step does not need, about 10 µs per layer (a tenth of a
        # one-stream step of the book model). Dropout is the identity in inference.
        for layer in self.head:
            if not isinstance(layer, Dropout):
                hidden = layer.forward(hidden)
        return hidden


class WindowStepper:
    """Run a stateless causal model (Embedding → causal transformer → Dense) token by token over a sliding window.

    `prime(ids (batch, time))` and `step(ids (batch,))` return the outputs at
    the last position, computed from the last `context` tokens (default: the
    model's `PositionEmbedding` length). Within the window this equals running
    the whole prefix; beyond it, the oldest tokens drop out.

        >>> stepper = WindowStepper(model)             # model with PositionEmbedding(sequence_length=128)
        >>> logits = stepper.prime(torch.tensor([[5, 9, 2]]))
        >>> logits = stepper.step(torch.tensor([7]))   # reads [5, 9, 2, 7]
    """

    def __init__(self, model, context: int | None = None):
        self.model = model
        self.context = context or _position_limit(model)
        if self.context is None or self.context < 1:
            raise ValueError("WindowStepper needs context=N (tokens the model reads at once) for a model "
                             "without a PositionEmbedding.")
        self.window: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prime(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise ValueError(f"prime() takes a prompt of shape (batch, time >= 1), got {tuple(ids.shape)}.")
        self.window = ids[:, -self.context:]
        return self._last_outputs()

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        if self.window is None:
            raise RuntimeError("call prime() before step(): the window is empty.")
        self.window = torch.cat([self.window, ids[:, None].to(self.window)], dim=1)[:, -self.context:]
        return self._last_outputs()

    @torch.no_grad()
    def _last_outputs(self) -> torch.Tensor:
        return self.model(self.window, training=False)[:, -1]


def stepper_for(model, batch_size: int = 1, precision: str = "float32") -> Stepper | CachedStepper:
    """`Stepper` for a recurrent model, `CachedStepper` for a causal transformer (float32 only)."""
    layers = list(model.layers) if hasattr(model, "layers") else list(model)
    if any(isinstance(layer, RNN) for layer in layers):
        return Stepper(model, batch_size=batch_size, precision=precision)
    blocks = [layer for layer in layers if isinstance(layer, TransformerBlock)]
    if blocks and all(block.causal for block in blocks):
        if precision != "float32":
            raise ValueError(f"precision={precision!r} applies to recurrent models; a transformer generates "
                             "in float32 (leave precision at 'float32').")
        return CachedStepper(model)
    raise ValueError("Generation needs a recurrent model (Embedding → RNN layers → Dense) or a causal "
                     "transformer (TransformerBlock(causal=True)); this model is neither.")


def _position_limit(model) -> int | None:
    layers = list(model.layers) if hasattr(model, "layers") else list(model)
    limits = [layer.sequence_length for layer in layers if isinstance(layer, PositionEmbedding)]
    return min(limits) if limits else None


def _run_with_state(layer: RNN, inputs: torch.Tensor, states: list[torch.Tensor], mask: torch.Tensor | None):
    """The layer's own (fast) sequence path from `states`, returning [sequence, *final_states]."""
    saved = layer.return_sequences, layer.return_state, layer.stateful
    layer.return_sequences, layer.return_state, layer.stateful = True, True, False
    try:
        return layer(inputs, mask=mask, initial_state=states, training=False)
    finally:
        layer.return_sequences, layer.return_state, layer.stateful = saved


def _cell_steps(recurrent: list[RNN], table: torch.Tensor, precision: str, batch_size: int) -> list:
    """Each recurrent layer's step function `(projected, states) -> (h, states)` for `precision`.

    On the C++ loop where it serves the cell (no per-step Python; its kernel prepared for
    `batch_size` rows), else the cell's own step; with bfloat16, either is given a bfloat16 copy
    of the cell's recurrent kernel.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}.")
    if precision == "bfloat16" and table.dtype != torch.float32:
        raise ValueError(f"precision='bfloat16' computes from a float32 model; this one is {table.dtype}. "
                         "Use precision='float32'.")
    steps = []
    for layer in recurrent:
        kernel = None  # the cell's own
        if precision == "bfloat16":
            if layer.cell.equation is None:  # its own step, which need not take a recurrent_kernel
                raise ValueError(f"precision='bfloat16' needs SimpleRNN, LSTM or GRU cells; {layer.name} has a "
                                 f"{type(layer.cell).__name__} with its own step. Use precision='float32'.")
            kernel = layer.cell.recurrent_kernel.detach().to(torch.bfloat16)
        if fused.supports(layer.cell, table):
            steps.append(fused.CellStep(layer.cell, table, kernel, batch_size))
        else:  # a custom cell's step need not take recurrent_kernel: pass it only for bfloat16
            steps.append(layer.cell.step if kernel is None else partial(layer.cell.step, recurrent_kernel=kernel))
    return steps


def _split(layers):
    if not layers or not isinstance(layers[0], Embedding):
        raise ValueError("Stepper needs a model that starts with an Embedding layer (token ids in).")
    recurrent = []
    index = 1
    while index < len(layers) and isinstance(layers[index], (RNN, Dropout)):
        if isinstance(layers[index], RNN):
            if layers[index].go_backwards:
                raise ValueError(f"{layers[index].name} reads backwards, so it cannot run step by step.")
            recurrent.append(layers[index])
        index += 1
    if not recurrent:
        raise ValueError("Stepper needs at least one recurrent layer after the Embedding.")
    head = layers[index:]
    for layer in head:
        if not isinstance(layer, (Dense, Dropout, Activation)):
            raise ValueError(
                f"Stepper can apply Dense, Dropout and Activation layers after the recurrent ones, "
                f"not {type(layer).__name__} ({layer.name})."
            )
    return layers[0], recurrent, head
