"""Keras' summary table: one row per layer (or top-level module), its output shape, its parameters.

    Model: "sequential"
    _________________________________________________________________
     Layer (type)                Output Shape              Param #
    =================================================================
     embedding (Embedding)       (None, 10, 32)            32,000
     simple_rnn (SimpleRNN)      (None, 32)                2,080
     dense (Dense)               (None, 1)                 33
    =================================================================
    Total params: 34,113
    Trainable params: 34,113
    Non-trainable params: 0
    _________________________________________________________________

`stack_rows` gives the rows of a stack of layers (`Sequential`), whose
output shapes follow from the input shape; `parameter_table` tables any
`torch.nn.Module` by its top-level children, with "?" for the output shapes
(as Keras prints for a subclassed model it has not run). Both are drawn by
`render`. This module imports no seqlab class.

    >>> print(parameter_table(model, print_fn=None))
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import torch

__all__ = ["Row", "parameter_table", "render", "stack_rows"]

PrintFn = Callable[[str], Any] | None


class Row(NamedTuple):
    label: str  # "name (Type)"
    output_shape: str
    params: int


def stack_rows(layers: Sequence[Any], input_shape: Any, *, hidden: tuple[type, ...] = ()) -> list[Row]:
    """Rows of layers applied in order to inputs of `input_shape`; layers of a `hidden` type are left out."""
    rows, shape = [], input_shape
    for layer in layers:
        shape = layer.compute_output_shape(shape)
        if not isinstance(layer, hidden):
            rows.append(Row(f"{layer.name} ({type(layer).__name__})", format_shape(shape), layer.count_params()))
    return rows


def parameter_table(model: torch.nn.Module, print_fn: PrintFn = print, line_length: int = 65) -> str:
    """Print (and return) the table of `model`'s top-level children and their parameter counts."""
    rows = [Row(f"{name} ({type(child).__name__})", "?", sum(p.numel() for p in child.parameters()))
            for name, child in model.named_children()]
    own = sum(p.numel() for p in model.parameters(recurse=False))
    if own:
        rows.append(Row("(own parameters)", "", own))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    title = getattr(model, "name", None) or type(model).__name__
    return render(title, rows, total=total, trainable=trainable, line_length=line_length, print_fn=print_fn)


def render(title: str, rows: Sequence[Row], *, total: int, trainable: int, line_length: int = 65,
           print_fn: PrintFn = print) -> str:
    """Keras' table of `rows` with the totals; printed through `print_fn` (None: only returned)."""
    widths = (max(int(line_length * 0.45), 2 + max((len(r.label) for r in rows), default=0)),
              max(int(line_length * 0.39), 2 + max((len(r.output_shape) for r in rows), default=0)))
    line_length = max(line_length, sum(widths) + 10)
    lines = [f'Model: "{title}"', "_" * line_length,
             _columns(("Layer (type)", "Output Shape", "Param #"), widths), "=" * line_length]
    lines += [_columns((row.label, row.output_shape, f"{row.params:,}"), widths) for row in rows]
    lines += ["=" * line_length, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}", "_" * line_length]
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text


def format_shape(shape: Any) -> str:
    """Keras' spelling of a shape: `(None, 10, 32)`, `(5,)`; a list of shapes in brackets."""
    if isinstance(shape, list):
        return "[" + ", ".join(format_shape(s) for s in shape) + "]"
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _columns(cells: tuple[str, str, str], widths: tuple[int, int]) -> str:
    return f" {cells[0]:<{widths[0] - 1}}{cells[1]:<{widths[1]}}{cells[2]}"
