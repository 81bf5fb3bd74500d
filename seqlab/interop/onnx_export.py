"""seqlab models to ONNX: `export_onnx(model, "model.onnx")`, run by onnxruntime.

What is exported, with dynamic batch and sequence sizes (the names are the
graph's input and output names):

    sequence   a Sequential (or an imported Keras graph): `inputs (batch, time)` token
               ids (int64), or `(batch, time, features)` floats → `outputs`. Padding
               id 0 is honoured inside the graph when the Embedding has `mask_zero`.
    step       a language model (Sequential: Embedding → unidirectional RNN layers
               returning sequences → Dense/Dropout, the last Dense as wide as the
               vocabulary; mode="step" forces it for other such stacks): one generation step,
               `ids (batch,), h (layers, batch, units)[, c]` → `logits (batch, vocabulary),
               next_h[, next_c]` (`c` for LSTMs). Start from zeros; feed next_h back as h.
    translator a model that describes its own graph: its public `onnx_plan(example_inputs)`
               returns the `ExportPlan` (module to trace, inputs, names, dynamic axes);
               seqlab.apps.translate.Translator's is `source (batch, S), target_in (batch, T)`
               ids, 0 = padding → `logits (batch, T, V)`.

`mode="auto"` uses a model's own plan when it has one, picks step for a
language model and sequence otherwise. A stateful layer's carried state is not part of any graph:
the sequence graph starts every run from zero states (as seqlab does after
`reset_states()`), the step graph from the states it is given. Exporting
leaves the model as it was (training flag, carried states).

How recurrent layers get into the graph: PyTorch's exporter traces Python, so
a time loop would be unrolled to the traced length and its mask handling
frozen. Instead each recurrent layer is traced as one placeholder node, which
is then replaced by an ONNX `Scan` over time whose body is the cell's
equation, exactly as the reference loop in `seqlab.kernels.reference_loop` writes
it: any mask (left or right padding), `go_backwards`, initial states,
`return_sequences`/`return_state`, Keras' held outputs at padded steps, every
cell option (GRU `reset_after` either way, LSTM peepholes, any activation).
Everything else is traced by `torch.onnx.export` (its TorchScript exporter).

After writing, the graph is checked with `onnx.checker` and, when onnxruntime
is installed, run on an example batch with padding and compared with seqlab
(`verify=True`): an export that does not reproduce the model is an error,
never a silent file.

    >>> export_onnx(model, "sentiment.onnx")                  # a Sequential classifier
    >>> import onnxruntime
    >>> session = onnxruntime.InferenceSession("sentiment.onnx")
    >>> session.run(None, {"inputs": ids})[0]                 # == model(ids) within 1e-4
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from seqlab import activations
from seqlab.kernels.equations import Form
from seqlab.layers import Activation, Dense, Dropout, Embedding, InputLayer, Layer, LayerNormalization, TimeDistributed
from seqlab.layers.recurrent import RNN
from seqlab.model import Sequential
from seqlab.saving import write_atomically

__all__ = ["MODES", "ExportPlan", "OnnxExportError", "export_onnx", "own_plan_of"]

MODES = ("auto", "sequence", "step", "translator")
DEFAULT_OPSET = 17
TOLERANCE = 1e-4
_DOMAIN = "seqlab"
_PLACEHOLDER = "Recurrent"


class OnnxExportError(RuntimeError):
    """The model cannot be exported, or the exported graph does not reproduce it."""


# ============================================================================ public entry
def export_onnx(model: nn.Module, path: str | os.PathLike, *, mode: str = "auto", opset: int = DEFAULT_OPSET,
                example_inputs: Sequence[torch.Tensor] | None = None, verify: bool = True) -> Path:
    """Write `model` as an ONNX graph to `path` (atomically) and return the path.

    `mode`: "auto", "sequence", "step" or "translator" (see the module docstring).
    `example_inputs`: tensors to trace with, for models seqlab cannot describe
    itself (input names are then `input_0`, `input_1`, ..., batch and time axes
    dynamic). `verify`: run the written graph in onnxruntime (if installed) on
    the example inputs and require seqlab's outputs within 1e-4.
    """
    _require_onnx()
    import onnx

    plan = make_plan(model, mode, example_inputs)
    path = Path(path)
    with _as_the_graph_runs(model):
        expected = _as_list(plan.module(*plan.example_inputs))
        graph = _trace(plan, opset)
    expand_recurrent_placeholders(graph)
    try:
        onnx.checker.check_model(graph)
    except onnx.checker.ValidationError as error:  # a bug here, not the user's: say so
        raise OnnxExportError(f"The exported graph of {type(model).__name__} is not valid ONNX: {error}") from None
    data = graph.SerializeToString()
    if verify:
        verify_onnx(data, plan, expected)
    write_atomically(path, data)
    return path


@contextlib.contextmanager
def _as_the_graph_runs(model: nn.Module) -> Iterator[None]:
    """Call `model` inside as the exported graph computes it, leaving the model as it was.

    Inference mode without gradients, and every stateful recurrent layer
    starting from zero states: the graph carries no state between runs (the
    step graph takes it as inputs). Afterwards the training flag and each
    layer's `carried_states` are restored, so exporting never advances or
    forgets the state of a stateful model.
    """
    recurrent = [layer for layer in model.modules() if isinstance(layer, RNN)]
    carried = [layer.carried_states for layer in recurrent]
    was_training = model.training
    model.eval()
    try:
        for layer in recurrent:
            layer.carried_states = None
        with torch.no_grad():
            yield
    finally:
        for layer, states in zip(recurrent, carried):
            layer.carried_states = states
        model.train(was_training)


# ============================================================================ what to export
@dataclass
class ExportPlan:
    """The module to trace, its example inputs, and the graph's names and dynamic axes."""

    module: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    mode: str = "sequence"


def make_plan(model: nn.Module, mode: str = "auto", example_inputs: Sequence[torch.Tensor] | None = None) -> ExportPlan:
    """Decide what to export for `model` (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    own_plan = own_plan_of(model)
    if own_plan is not None and mode in ("auto", "translator"):
        plan = own_plan(example_inputs)
        if mode == "auto" or plan.mode == mode:
            return plan
    if mode == "translator":
        raise OnnxExportError(
            f"mode='translator' needs an encoder-decoder that gives its own export plan through "
            f"onnx_plan(example_inputs) (as seqlab.apps.translate.Translator does), got {type(model).__name__}.")
    if mode == "auto":
        mode = "step" if is_language_model(model) else "sequence"
    if mode == "step":
        return _step_plan(model)
    return _sequence_plan(model, example_inputs)


def own_plan_of(model: nn.Module) -> Callable[[Sequence[torch.Tensor] | None], ExportPlan] | None:
    """The model's public `onnx_plan(example_inputs) -> ExportPlan`, if it describes its own graph."""
    plan = getattr(model, "onnx_plan", None)
    return plan if callable(plan) else None


def is_language_model(model: nn.Module, strict: bool = True) -> bool:
    """A Sequential: Embedding, unidirectional recurrent layers returning sequences, then per-step layers.

    `strict` (what mode="auto" asks) also wants what marks a next-token model:
    no padding mask, and as many outputs per step as the Embedding has ids.
    """
    layers = _sequential_layers(model)
    if not layers or not isinstance(layers[0], Embedding):
        return False
    recurrent = [layer for layer in layers if isinstance(layer, RNN)]
    shaped = bool(recurrent) and all(layer.return_sequences and not layer.return_state and not layer.go_backwards
                                     for layer in recurrent) \
        and all(isinstance(layer, (RNN, *_PER_STEP)) for layer in layers[1:])
    if not shaped or not strict:
        return shaped
    last = layers[-1].layer if isinstance(layers[-1], TimeDistributed) else layers[-1]
    return not layers[0].mask_zero and isinstance(last, Dense) and last.units == layers[0].input_dim


def _sequential_layers(model: nn.Module) -> list[Layer] | None:
    if not isinstance(model, Sequential):
        return None
    return [layer for layer in model.layers if not isinstance(layer, InputLayer)]


# ------------------------------------------------------------------ sequence (classifiers, taggers)
class _Outputs(nn.Module):
    """Call `model` on positional inputs; one tensor in, tensors out (lists flattened)."""

    def __init__(self, model: nn.Module, packed: bool):
        super().__init__()
        self.model, self.packed = model, packed

    def forward(self, *inputs: torch.Tensor):
        outputs = self.model(list(inputs) if self.packed else inputs[0])
        return tuple(outputs) if isinstance(outputs, (list, tuple)) else outputs


def _sequence_plan(model: nn.Module, example_inputs) -> ExportPlan:
    if example_inputs is None:
        example_inputs = _example_inputs_of(model)
    example_inputs = tuple(example_inputs)
    module = _Outputs(model, packed=len(example_inputs) > 1)
    with _as_the_graph_runs(model):
        outputs = _as_list(module(*example_inputs))
    single = len(example_inputs) == 1
    input_names = ["inputs"] if single else [f"input_{i}" for i in range(len(example_inputs))]
    output_names = ["outputs"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    axes = {name: _batch_time_axes(tensor) for name, tensor in zip(input_names, example_inputs)}
    time_steps = {tensor.shape[1] for tensor in example_inputs if tensor.dim() >= 2}
    for name, tensor in zip(output_names, outputs):  # an output axis of the input's length is that length
        axes[name] = {0: "batch", **({1: "time"} if tensor.dim() >= 2 and tensor.shape[1] in time_steps
                                     and len(time_steps) == 1 else {})}
    return ExportPlan(module, example_inputs, input_names, output_names, axes, "sequence")


def _batch_time_axes(tensor: torch.Tensor) -> dict[int, str]:
    return {0: "batch", 1: "time"} if tensor.dim() >= 2 else {0: "batch"}


def _example_inputs_of(model: nn.Module) -> tuple[torch.Tensor, ...]:
    """A padded example batch for a Sequential or an imported Keras graph."""
    generator = torch.Generator().manual_seed(0)
    if hasattr(model, "input_shapes") and hasattr(model, "input_is_ids"):  # an imported Keras graph
        return tuple(_example_tensor(shape, model.input_is_ids(i), model, generator)
                     for i, shape in enumerate(model.input_shapes))
    layers = _sequential_layers(model)
    if layers is None:
        raise OnnxExportError(
            f"seqlab cannot tell what {type(model).__name__} takes as input. Pass example_inputs=(tensor, ...) "
            "to export_onnx (batch and time axes become dynamic).")
    shape = model.build_input_shape or (None, None)
    return (_example_tensor(shape, isinstance(layers[0], Embedding), model, generator),)


def _example_tensor(shape, ids: bool, model: nn.Module, generator: torch.Generator) -> torch.Tensor:
    sizes = [3 if i == 0 else 7 if i == 1 and size is None else size for i, size in enumerate(shape)]
    if None in sizes:
        raise OnnxExportError(f"Cannot make an example input of shape {tuple(shape)}: pass example_inputs=.")
    if not ids:
        return torch.randn(*sizes, generator=generator)
    vocabulary = min(layer.input_dim for layer in model.modules() if isinstance(layer, Embedding))
    tensor = torch.randint(1, max(vocabulary, 2), sizes, generator=generator)
    if len(sizes) == 2 and sizes[1] > 2:
        tensor[1, -2:] = 0  # one padded row, so verification covers the mask
    return tensor


# ------------------------------------------------------------------ step (language models)
_PER_STEP = (Dense, Dropout, Activation, LayerNormalization, TimeDistributed)


class LanguageModelStep(nn.Module):
    """One generation step of a language model: `ids (batch,), h[, c]` → `logits, next_h[, next_c]`.

    `h` and `c` stack the recurrent layers' states: `(layers, batch, units)`.
    Each recurrent layer runs its cell once; the layers after it act on the step.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        layers = _sequential_layers(model)
        if layers is None or not is_language_model(model, strict=False):
            raise OnnxExportError(
                f"mode='step' exports a language model: a Sequential of Embedding, unidirectional recurrent "
                f"layers with return_sequences=True (no return_state, no go_backwards), then Dense/Dropout/"
                f"Activation/LayerNormalization/TimeDistributed layers. {type(model).__name__} "
                f"({', '.join(type(layer).__name__ for layer in layers or [])}) is not one; use mode='sequence'.")
        self.model = model
        self.stack = layers
        cells = [layer.cell for layer in layers if isinstance(layer, RNN)]
        kinds, sizes = {type(cell) for cell in cells}, {cell.units for cell in cells}
        if len(kinds) > 1 or len(sizes) > 1:
            raise OnnxExportError(
                "mode='step' stacks the recurrent states as (layers, batch, units), so every recurrent layer must "
                f"be of one kind with one size; this model has {[type(c).__name__ for c in cells]} with units "
                f"{[c.units for c in cells]}.")
        self.cell_count, self.units = len(cells), cells[0].units
        self.state_count = len(cells[0].state_size)

    @property
    def vocabulary_size(self) -> int:
        return self.stack[0].input_dim

    def forward(self, ids: torch.Tensor, *states: torch.Tensor):
        x = self.stack[0](ids)
        next_states: list[list[torch.Tensor]] = [[] for _ in range(self.state_count)]
        index = 0
        for layer in self.stack[1:]:
            if isinstance(layer, RNN):
                x, new = layer.cell(x, [state[index] for state in states])
                for kind, value in enumerate(new):
                    next_states[kind].append(value)
                index += 1
            elif isinstance(layer, TimeDistributed):
                x = layer.layer(x)
            else:
                x = layer(x)
        return (x, *[torch.stack(values) for values in next_states])


def _step_plan(model: nn.Module) -> ExportPlan:
    step = LanguageModelStep(model)
    batch = 3
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, step.vocabulary_size, (batch,), generator=generator)
    states = tuple(torch.randn(step.cell_count, batch, step.units, generator=generator) * 0.5
                   for _ in range(step.state_count))
    state_names = ["h", "c"][: step.state_count]
    next_names = [f"next_{name}" for name in state_names]
    axes = {"ids": {0: "batch"}, "logits": {0: "batch"}, **{name: {1: "batch"} for name in state_names + next_names}}
    return ExportPlan(step, (ids, *states), ["ids", *state_names], ["logits", *next_names], axes, "step")


# ============================================================================ tracing
def _trace(plan: ExportPlan, opset: int):
    import onnx

    buffer = io.BytesIO()
    with _traceable_layers(plan.module), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings for shape checks; the exporter's deprecation notice
        torch.onnx.export(plan.module, plan.example_inputs, buffer, dynamo=False, opset_version=opset,
                          input_names=plan.input_names, output_names=plan.output_names,
                          dynamic_axes=plan.dynamic_axes, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


@contextlib.contextmanager
def _traceable_layers(module: nn.Module) -> Iterator[None]:
    """Trace every recurrent layer of `module` as one `seqlab.Recurrent` node (restored afterwards).

    LayerNormalization is traced with its weights' (static) shape as the
    normalised shape: the tracer would record the input's size, which the
    exporter cannot pass to ONNX's LayerNormalization.
    """
    recurrent = [m for m in module.modules() if isinstance(m, RNN)]
    norms = [m for m in module.modules() if isinstance(m, LayerNormalization) and (m.scale or m.center)]
    saved = [(layer, layer.execution) for layer in recurrent]
    try:
        for layer in recurrent:
            layer.execution = "reference"  # keeps Bidirectional off its fused native path
            layer.forward = _placeholder_forward(layer)
        for norm in norms:
            norm.forward = _static_layer_norm(norm)
        yield
    finally:
        for layer, execution in saved:
            layer.execution = execution
        for layer in recurrent + norms:
            layer.__dict__.pop("forward", None)


def _static_layer_norm(norm: LayerNormalization) -> Callable:
    original = type(norm).forward

    def forward(inputs, mask=None):
        axes = norm._axes(inputs.dim())
        if axes != list(range(inputs.dim() - len(axes), inputs.dim())):
            return original(norm, inputs, mask)
        gamma, beta = (norm.gamma if norm.scale else None), (norm.beta if norm.center else None)
        shape = tuple((gamma if gamma is not None else beta).shape)
        return torch.nn.functional.layer_norm(inputs, shape, gamma, beta, norm.epsilon)

    return forward


def _placeholder_forward(layer: RNN) -> Callable:
    def forward(inputs, mask=None, training=None, initial_state=None):
        inputs = layer.check_inputs(inputs)
        if mask is not None and layer.time_major:
            raise OnnxExportError(f"{layer.name}: exporting a time_major layer with a mask is not supported; "
                                  "use batch-major inputs (time_major=False).")
        if mask is not None:
            batch, time = inputs.shape[0], inputs.shape[1]
            mask = layer.analyse_mask(mask, batch, time).given
        states = [] if initial_state is None else (
            [initial_state] if isinstance(initial_state, torch.Tensor) else list(initial_state))
        weights = layer.cell.own_weights()
        function = _placeholder_function(layer, mask is not None, len(states), len(weights))
        results = function.apply(inputs, *([mask] if mask is not None else []), *states, *weights)
        if not layer.return_state:
            return results
        return list(results)

    return forward


def _placeholder_function(layer: RNN, has_mask: bool, state_inputs: int, weight_inputs: int):
    """An autograd Function computing `layer` (reference path) whose ONNX symbolic is one placeholder node."""
    spec = _recurrent_spec(layer, has_mask, state_inputs, weight_inputs)
    outputs = 1 + (len(layer.cell.state_size) if layer.return_state else 0)

    def forward(ctx, inputs, *rest):
        mask = rest[0] if has_mask else None
        states = list(rest[int(has_mask): int(has_mask) + state_inputs]) or \
            layer.cell.get_initial_state(inputs.shape[1 if layer.time_major else 0], inputs.dtype, inputs.device)
        result = RNN.forward(layer, inputs, mask=mask, training=False, initial_state=states)
        return tuple(result) if layer.return_state else result

    def symbolic(g, inputs, *rest):
        values = g.op(f"{_DOMAIN}::{_PLACEHOLDER}", inputs, *rest, spec_s=json.dumps(spec), outputs=outputs)
        values = list(values) if outputs > 1 else [values]
        sizes = _varying_sizes(inputs)
        batch, time = (sizes[1], sizes[0]) if layer.time_major else (sizes[0], sizes[1])
        sequence = [time, batch, layer.units] if layer.time_major else [batch, time, layer.units]
        shapes = [sequence if layer.return_sequences else [batch, layer.units]]
        shapes += [[batch, size] for size in layer.cell.state_size][: outputs - 1]
        for value, shape in zip(values, shapes):
            value.setType(inputs.type().with_sizes(shape))
        return tuple(values) if outputs > 1 else values[0]

    return type(f"Recurrent_{layer.name}", (torch.autograd.Function,),
                {"forward": staticmethod(forward), "symbolic": staticmethod(symbolic)})


def _varying_sizes(value) -> list[int | None]:
    try:
        sizes = value.type().varyingSizes()
    except RuntimeError:
        sizes = None
    return list(sizes) if sizes else [None, None, None]


def _recurrent_spec(layer: RNN, has_mask: bool, state_inputs: int, weight_inputs: int) -> dict[str, Any]:
    """What the Scan expansion needs to know about `layer`, as JSON."""
    cell = layer.cell
    equation = cell.equation  # what the Scan body must compute: the cell's declared equation, nothing else
    if equation is None:
        raise OnnxExportError(
            f"{layer.name}: ONNX export writes the equations of SimpleRNN, LSTM and GRU cells; "
            f"{type(cell).__name__} computes its own step, which it cannot write.")
    kind = "SimpleRNN" if equation.form is Form.SIMPLE else "LSTM" if equation.form.is_lstm else "GRU"
    if cell.kernel.dtype != torch.float32:
        raise OnnxExportError(f"{layer.name}: ONNX export writes float32 graphs; this layer's weights are "
                              f"{cell.kernel.dtype}. Convert the model with model.float() first.")
    spec = {
        "name": layer.name, "cell": kind, "units": cell.units, "use_bias": cell.use_bias,
        "activation": _activation_name(equation.activation, layer.name),
        "recurrent_activation": _activation_name(equation.recurrent_activation, layer.name),
        "reset_after": equation.form is Form.GRU_RESET_AFTER, "peephole": equation.form is Form.LSTM_PEEPHOLE,
        "go_backwards": layer.go_backwards, "return_sequences": layer.return_sequences,
        "return_state": layer.return_state, "zero_output_for_mask": layer.zero_output_for_mask,
        "time_major": layer.time_major, "has_mask": has_mask, "state_inputs": state_inputs,
        "weight_inputs": weight_inputs, "state_count": len(cell.state_size),
    }
    return spec


def _activation_name(function, layer: str) -> str | None:
    if function is None:
        return None
    try:
        name = activations.serialize(function)
    except ValueError:
        name = None
    if name not in _ACTIVATIONS:
        raise OnnxExportError(f"{layer}: its activation {function!r} has no ONNX form here "
                              f"(known: {', '.join(sorted(_ACTIVATIONS))}).")
    return name


# ============================================================================ Scan expansion
def expand_recurrent_placeholders(graph) -> None:
    """Replace every `seqlab.Recurrent` node of the ONNX model `graph` by a Scan over time, in place."""
    nodes = list(graph.graph.node)
    del graph.graph.node[:]
    for index, node in enumerate(nodes):
        if node.domain == _DOMAIN and node.op_type == _PLACEHOLDER:
            spec = json.loads(next(a.s for a in node.attribute if a.name == "spec").decode())
            graph.graph.node.extend(_ScanExpansion(spec, node, f"/recurrent_{index}").nodes())
        else:
            graph.graph.node.append(node)
    kept = [entry for entry in graph.opset_import if entry.domain != _DOMAIN]
    del graph.opset_import[:]
    graph.opset_import.extend(kept)


class _Nodes:
    """Accumulates ONNX nodes with unique names under a prefix."""

    def __init__(self, prefix: str):
        self.prefix, self.list, self.count = prefix, [], 0

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}/{hint}_{self.count}"

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attributes):
        from onnx import helper

        names = [self.fresh(op_type) for _ in range(outputs)]
        self.list.append(helper.make_node(op_type, list(inputs), names, name=self.fresh(op_type + "_node"),
                                          **attributes))
        return names[0] if outputs == 1 else names

    def const(self, values, dtype=np.float32) -> str:
        from onnx import numpy_helper

        return self.op("Constant", value=numpy_helper.from_array(np.asarray(values, dtype=dtype)))

    def activation(self, name: str, x: str) -> str:
        return _ACTIVATIONS[name](self, x)


_ACTIVATIONS: dict[str, Callable[[_Nodes, str], str]] = {
    "linear": lambda n, x: n.op("Identity", x),
    "tanh": lambda n, x: n.op("Tanh", x),
    "sigmoid": lambda n, x: n.op("Sigmoid", x),
    "hard_sigmoid": lambda n, x: n.op("HardSigmoid", x, alpha=1.0 / 6.0, beta=0.5),  # relu6(x + 3) / 6
    "relu": lambda n, x: n.op("Relu", x),
    "relu6": lambda n, x: n.op("Clip", x, n.const(0.0), n.const(6.0)),
    "elu": lambda n, x: n.op("Elu", x, alpha=1.0),
    "selu": lambda n, x: n.op("Selu", x),
    "softplus": lambda n, x: n.op("Softplus", x),
    "softsign": lambda n, x: n.op("Softsign", x),
    "swish": lambda n, x: n.op("Mul", x, n.op("Sigmoid", x)),
    "silu": lambda n, x: n.op("Mul", x, n.op("Sigmoid", x)),
    "exponential": lambda n, x: n.op("Exp", x),
    "leaky_relu": lambda n, x: n.op("LeakyRelu", x, alpha=0.2),
    "gelu": lambda n, x: n.op("Mul", n.op("Mul", x, n.const(0.5)),
                              n.op("Add", n.const(1.0), n.op("Erf", n.op("Mul", x, n.const(2 ** -0.5))))),
}


class _ScanExpansion:
    """The ONNX nodes computing one recurrent layer: input projection, Scan over time, outputs.

    Mirrors `RNN.forward` with the reference loop: `projected = x W + b` for all
    steps at once, then per step the cell's recurrent half; with a mask, padded
    steps keep the states and repeat the previous output (or zeros).
    """

    def __init__(self, spec: dict[str, Any], node, prefix: str):
        self.spec, self.node, self.outer = spec, node, _Nodes(prefix)
        inputs = list(node.input)
        self.x = inputs.pop(0)
        self.mask = inputs.pop(0) if spec["has_mask"] else None
        self.initial = [inputs.pop(0) for _ in range(spec["state_inputs"])]
        self.weights = inputs
        self.units = spec["units"]

    def nodes(self) -> list:
        from onnx import TensorProto, helper

        spec, outer, units = self.spec, self.outer, self.units
        kernel, recurrent_kernel, *rest = self.weights
        bias = rest.pop(0) if spec["use_bias"] else None
        self.peepholes = rest if spec["peephole"] else []
        time_axis = 0 if spec["time_major"] else 1
        projected = outer.op("MatMul", self.x, kernel)
        self.recurrent_bias = None
        if bias is not None:
            if spec["cell"] == "GRU" and spec["reset_after"]:
                projected = outer.op("Add", projected, outer.op("Gather", bias, outer.const(0, np.int64), axis=0))
                self.recurrent_bias = outer.op("Gather", bias, outer.const(1, np.int64), axis=0)
            else:
                projected = outer.op("Add", projected, bias)
        self.recurrent_kernel = recurrent_kernel
        if spec["cell"] == "GRU" and not spec["reset_after"]:
            self.gates_kernel = outer.op("Slice", recurrent_kernel, outer.const([0], np.int64),
                                         outer.const([2 * units], np.int64), outer.const([1], np.int64))
            self.candidate_kernel = outer.op("Slice", recurrent_kernel, outer.const([2 * units], np.int64),
                                             outer.const([3 * units], np.int64), outer.const([1], np.int64))
        batch_axis = 1 - time_axis
        batch = outer.op("Shape", self.x, start=batch_axis, end=batch_axis + 1)
        zeros = outer.op("ConstantOfShape", outer.op("Concat", batch, outer.const([units], np.int64), axis=0),
                         value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
        initial = self.initial or [zeros] * spec["state_count"]
        scan_inputs = [projected]
        if self.mask is not None:
            scan_inputs.append(outer.op("Unsqueeze", self.mask, outer.const([2], np.int64)))
        count = len(scan_inputs)
        directions = {"scan_input_directions": [1] * count} if spec["go_backwards"] else {}
        results = outer.op("Scan", *initial, zeros, *scan_inputs, outputs=spec["state_count"] + 2,
                           body=self._body(), num_scan_inputs=count, scan_input_axes=[time_axis] * count,
                           scan_output_axes=[time_axis], **directions)
        final_states, last_output, sequence = results[:-2], results[-2], results[-1]
        outputs = [sequence if spec["return_sequences"] else last_output]
        if spec["return_state"]:
            outputs += final_states
        for value, name in zip(outputs, self.node.output):
            outer.list.append(helper.make_node("Identity", [value], [name], name=outer.fresh("Identity_node")))
        return outer.list

    def _body(self):
        from onnx import TensorProto, helper

        spec, body = self.spec, _Nodes(self.outer.prefix + "/step")
        states = [body.fresh("state") for _ in range(spec["state_count"])]
        previous, projected = body.fresh("previous_output"), body.fresh("projected")
        keep = body.fresh("keep") if self.mask is not None else None
        output, new_states = self._step(body, projected, states)
        if keep is not None:
            new_states = [body.op("Where", keep, new, old) for new, old in zip(new_states, states)]
            held = body.const(0.0) if spec["zero_output_for_mask"] else previous
            output = body.op("Where", keep, output, held)
        carried = body.op("Identity", output)
        emitted = body.op("Identity", output)
        float_info = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, None)  # noqa: E731
        inputs = [float_info(name) for name in (*states, previous, projected)]
        if keep is not None:
            inputs.append(helper.make_tensor_value_info(keep, TensorProto.BOOL, None))
        outputs = [float_info(name) for name in (*new_states, carried, emitted)]
        return helper.make_graph(body.list, f"{spec['name']}_step", inputs, outputs)

    def _step(self, n: _Nodes, projected: str, states: list[str]) -> tuple[str, list[str]]:
        """One time step of the cell, as `seqlab.layers.cells` writes it: (output, new states)."""
        spec, units = self.spec, self.units
        act = lambda x: n.activation(spec["activation"], x)  # noqa: E731
        gate = lambda x: n.activation(spec["recurrent_activation"], x)  # noqa: E731
        if spec["cell"] == "SimpleRNN":
            h = act(n.op("Add", projected, n.op("MatMul", states[0], self.recurrent_kernel)))
            return h, [h]
        if spec["cell"] == "LSTM":
            h_prev, c_prev = states
            z = n.op("Add", projected, n.op("MatMul", h_prev, self.recurrent_kernel))
            z_i, z_f, z_c, z_o = n.op("Split", z, n.const([units] * 4, np.int64), axis=-1, outputs=4)
            if self.peepholes:
                p_i, p_f, p_o = self.peepholes
                z_i = n.op("Add", z_i, n.op("Mul", p_i, c_prev))
                z_f = n.op("Add", z_f, n.op("Mul", p_f, c_prev))
            i, f = gate(z_i), gate(z_f)
            c = n.op("Add", n.op("Mul", f, c_prev), n.op("Mul", i, act(z_c)))
            if self.peepholes:
                z_o = n.op("Add", z_o, n.op("Mul", p_o, c))
            h = n.op("Mul", gate(z_o), act(c))
            return h, [h, c]
        (h_prev,) = states
        x_z, x_r, x_h = n.op("Split", projected, n.const([units] * 3, np.int64), axis=-1, outputs=3)
        if spec["reset_after"]:
            inner = n.op("MatMul", h_prev, self.recurrent_kernel)
            if self.recurrent_bias is not None:
                inner = n.op("Add", inner, self.recurrent_bias)
            r_z, r_r, r_h = n.op("Split", inner, n.const([units] * 3, np.int64), axis=-1, outputs=3)
        else:
            r_z, r_r = n.op("Split", n.op("MatMul", h_prev, self.gates_kernel), n.const([units] * 2, np.int64),
                            axis=-1, outputs=2)
        z = gate(n.op("Add", x_z, r_z))
        r = gate(n.op("Add", x_r, r_r))
        if spec["reset_after"]:
            candidate = act(n.op("Add", x_h, n.op("Mul", r, r_h)))
        else:
            candidate = act(n.op("Add", x_h, n.op("MatMul", n.op("Mul", r, h_prev), self.candidate_kernel)))
        h = n.op("Add", n.op("Mul", z, h_prev), n.op("Mul", n.op("Sub", n.const(1.0), z), candidate))
        return h, [h]


# ============================================================================ verification, files
def verify_onnx(data: bytes, plan: ExportPlan, expected: list[torch.Tensor]) -> None:
    """Run the graph in onnxruntime on the plan's example inputs; require `expected` within 1e-4."""
    try:
        import onnxruntime
    except ImportError:
        return
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    feeds = {name: tensor.numpy() for name, tensor in zip(plan.input_names, plan.example_inputs)}
    results = session.run(None, feeds)
    for name, ours, theirs in zip(plan.output_names, expected, results):
        ours = ours.detach().float().numpy()
        if ours.shape != theirs.shape or not np.allclose(ours, theirs, atol=TOLERANCE, rtol=0, equal_nan=True):
            difference = np.abs(ours - theirs).max() if ours.shape == theirs.shape else "shapes differ"
            raise OnnxExportError(
                f"The exported graph does not reproduce the model: output '{name}' differs from seqlab's "
                f"(shape {theirs.shape} vs {ours.shape}, largest difference {difference}). The file was not "
                "written; please report this with the model's config.")




def _as_list(outputs: Any) -> list[torch.Tensor]:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise OnnxExportError("ONNX export needs the onnx package: pip install 'seqlab[onnx]' "
                              "(onnx, and onnxruntime to run and verify the graph).") from None
